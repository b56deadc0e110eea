"""Presigned (query string SigV4) GET and PUT with curl, and expiry."""

import subprocess
import time


def curl(*args):
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def test_presigned_get_put_and_expiry(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a b+c.txt", Body=b"hello presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a b+c.txt"}, ExpiresIn=60)
    assert curl(url) == (200, "hello presigned")

    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "by-curl"}, ExpiresIn=60)
    code, _ = curl("-X", "PUT", "--data-binary", "uploaded-by-curl", put)
    assert code == 200
    assert s3.get_object(Bucket=bucket, Key="by-curl")["Body"].read() == b"uploaded-by-curl"

    # A signature for another key is refused.
    code, body = curl(url.replace("a%20b%2Bc.txt", "by-curl"))
    assert code == 403 and "SignatureDoesNotMatch" in body

    expiring = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a b+c.txt"}, ExpiresIn=1)
    deadline = time.monotonic() + 30
    while True:
        code, body = curl(expiring)
        if code == 403:
            break
        assert time.monotonic() < deadline, "presigned URL still valid long after expiry"
        time.sleep(0.5)
    assert "AccessDenied" in body and "expired" in body


def test_presigned_validity_is_at_most_seven_days(s3, bucket):
    s3.put_object(Bucket=bucket, Key="week", Body=b"seven days")
    week = 7 * 24 * 3600
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=week)
    assert curl(url) == (200, "seven days")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=week + 1)
    code, body = curl(url)
    assert code == 400, body
    assert "<Code>AuthorizationQueryParametersError</Code>" in body and "604800" in body
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "late"}, ExpiresIn=week + 1)
    code, body = curl("-X", "PUT", "--data-binary", "nope", put)
    assert code == 400 and "AuthorizationQueryParametersError" in body
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="late")