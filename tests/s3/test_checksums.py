"""Flexible checksums against a real grid: boto3 uploads with every S3 checksum
algorithm (aws-chunked bodies with a trailer checksum, as boto3 sends them by
default), the stored checksum returned by GET / HEAD with ChecksumMode=ENABLED, and
hand-built requests (http.client + botocore's SigV4 signer) proving that a wrong
trailer checksum answers BadDigest and that a tampered chunk signature answers
SignatureDoesNotMatch, with nothing stored in either case."""

import base64
import hashlib
import hmac
import http.client
import os
import urllib.parse
import zlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

try:
    from awscrt import checksums as crt_checksums
except ImportError:  # botocore computes CRC32C and CRC64NVME only with awscrt
    crt_checksums = None

NEEDS_CRT = pytest.mark.skipif(
    crt_checksums is None,
    reason="botocore computes this checksum only with the optional awscrt package: "
    ".venv/bin/pip install awscrt==0.32.2 (tests/requirements.txt lists it)",
)
ALGORITHMS = [
    "CRC32",
    pytest.param("CRC32C", marks=NEEDS_CRT),
    "SHA1",
    "SHA256",
    pytest.param("CRC64NVME", marks=NEEDS_CRT),
]
SIZES = [1000, 300 * 1024]  # inline, and chunked in rawx
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def code(exc):
    return exc.value.response["Error"]["Code"]


def b64(raw):
    return base64.b64encode(raw).decode()


def checksum(algorithm, data):
    if algorithm == "CRC32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "CRC32C":
        return b64(crt_checksums.crc32c(data).to_bytes(4, "big"))
    if algorithm == "CRC64NVME":
        return b64(crt_checksums.crc64nvme(data).to_bytes(8, "big"))
    if algorithm == "SHA1":
        return b64(hashlib.sha1(data).digest())
    return b64(hashlib.sha256(data).digest())


@pytest.mark.parametrize("size", SIZES, ids=["inline", "chunked"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_put_object_checksum_is_verified_stored_and_returned(s3, bucket, algorithm, size):
    data = os.urandom(size)
    want = checksum(algorithm, data)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == want
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == want
    assert got["Body"].read() == data  # botocore also checks the body against it
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == want
    # Without the mode, no checksum is returned; a range never carries one.
    assert f"Checksum{algorithm}" not in s3.head_object(Bucket=bucket, Key="k")
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert ranged["Body"].read() == data[:10]
    assert f"Checksum{algorithm}" not in ranged


def test_default_put_object_sends_and_gets_a_crc32(s3, bucket):
    seen = []
    s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: seen.append(dict(request.headers)))
    data = b"default checksum " * 100
    s3.put_object(Bucket=bucket, Key="k", Body=data)
    sent = {k.lower(): v for k, v in seen[0].items()}
    announced = sent.get("x-amz-trailer") or next(k for k in sent if k.startswith("x-amz-checksum-"))
    assert "crc32" in announced
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == checksum("CRC32", data)
    assert got["Body"].read() == data


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_upload_part_checksum(s3, bucket, algorithm):
    data = os.urandom(200 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ChecksumAlgorithm=algorithm)
    try:
        part = s3.upload_part(
            Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=1, Body=data, ChecksumAlgorithm=algorithm
        )
        assert part[f"Checksum{algorithm}"] == checksum(algorithm, data)
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mpu",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up["UploadId"])
        raise
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == data


# ------------------------------------------------------------ hand-built requests


def _url(grid, bucket, key):
    return f"{grid.endpoint}/{bucket}/{urllib.parse.quote(key)}"


def _sign(grid, url, headers):
    """Signs a PUT with SigV4 in headers, keeping the given x-amz-content-sha256."""
    creds = Credentials(grid.env["AWS_ACCESS_KEY_ID"], grid.env["AWS_SECRET_ACCESS_KEY"])
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(creds, "s3", grid.env["AWS_REGION"]).add_auth(req)
    return dict(req.headers.items())


def _send(grid, url, headers, body):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("PUT", u.path, body=body, headers={**headers, "Content-Length": str(len(body))})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _unsigned_trailer_put(grid, bucket, key, data, crc32_b64):
    url = _url(grid, bucket, key)
    headers = _sign(
        grid,
        url,
        {
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
    )
    body = b"%x\r\n" % len(data) + data + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{crc32_b64}\r\n\r\n".encode()
    return _send(grid, url, headers, body)


@pytest.mark.parametrize("size", SIZES, ids=["inline", "chunked"])
def test_wrong_trailer_checksum_is_bad_digest(grid, s3, bucket, size):
    data = os.urandom(size)
    # The same request with the right checksum is accepted: the request is well formed.
    status, text = _unsigned_trailer_put(grid, bucket, "good", data, checksum("CRC32", data))
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == data
    wrong = checksum("CRC32", data + b"x")
    status, text = _unsigned_trailer_put(grid, bucket, "bad", data, wrong)
    assert status == 400, text
    assert "<Code>BadDigest</Code>" in text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _signed_streaming_put(grid, bucket, key, data, chunk_bytes, tamper):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload; `tamper` flips one hex digit of the
    first chunk's signature."""
    url = _url(grid, bucket, key)
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] + [b""]
    encoded_len = sum(len(b"%x;chunk-signature=" % len(c)) + 64 + 2 + len(c) + 2 for c in chunks)
    headers = _sign(
        grid,
        url,
        {
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(encoded_len),
        },
    )
    auth = headers["Authorization"]
    seed = auth.split("Signature=")[1].strip()
    scope = auth.split("Credential=")[1].split(",")[0].split("/", 1)[1]
    amz_date = headers["X-Amz-Date"]
    date, region, service, _ = scope.split("/")
    key_bytes = _hmac(("AWS4" + grid.env["AWS_SECRET_ACCESS_KEY"]).encode(), date)
    for part in (region, service, "aws4_request"):
        key_bytes = _hmac(key_bytes, part)
    prev = seed
    body = b""
    for i, c in enumerate(chunks):
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256, hashlib.sha256(c).hexdigest()]
        )
        sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if tamper and i == 0:
            sig = ("1" if sig[0] != "1" else "2") + sig[1:]
        body += b"%x;chunk-signature=%s\r\n" % (len(c), sig.encode()) + c + b"\r\n"
    assert len(body) == encoded_len
    return _send(grid, url, headers, body)


def test_tampered_chunk_signature_is_refused(grid, s3, bucket):
    data = os.urandom(100 * 1024)
    status, text = _signed_streaming_put(grid, bucket, "good", data, 64 * 1024, tamper=False)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="good")["Body"].read() == data
    status, text = _signed_streaming_put(grid, bucket, "bad", data, 64 * 1024, tamper=True)
    assert status == 403, text
    assert "<Code>SignatureDoesNotMatch</Code>" in text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
