"""Storage policies chosen per request (x-amz-storage-class), per bucket (`oxio
container set --policy`) and by size (objects under 256 KiB get THREECOPIES), on a
real `oxiod dev` grid of 6 rawx."""

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

OXIO = os.environ.get("OXIO") or os.path.join(os.path.dirname(os.environ.get("OXIOD", "oxiod")), "oxio")
KIB = 1024
MIB = 1024 * 1024
# The gateway caches a bucket's default policy for 5 s: a change made by the CLI (another
# process) is polled for up to this long.
POLICY_DEADLINE_S = 20


def oxio(grid, *args, check=True):
    env = dict(os.environ, OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"], OXIO_DIRECTORY=grid.env["OXIO_DIRECTORY"])
    r = subprocess.run([OXIO, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"oxio {' '.join(args)} failed: {r.stderr}")
    return r


def policies(grid, bucket):
    objects = json.loads(oxio(grid, "object", "list", bucket, "--format", "json").stdout)
    return {o["key"]: o["policy"] for o in objects}


def body(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


def put_and_check(s3, bucket, key, data, **kw):
    s3.put_object(Bucket=bucket, Key=key, Body=data, **kw)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def put_until_policy(grid, s3, bucket, key, data, want):
    """PUTs `key` until it is stored with `want` (the gateway may serve a cached bucket
    policy for a few seconds), and returns the policy seen last."""
    deadline = time.monotonic() + POLICY_DEADLINE_S
    while True:
        put_and_check(s3, bucket, key, data)
        got = policies(grid, bucket)[key]
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_size_rule_and_default(grid, s3, bucket):
    small, large = body(100 * KIB, 1), body(MIB, 2)
    put_and_check(s3, bucket, "small", small)
    put_and_check(s3, bucket, "large", large)
    put_and_check(s3, bucket, "tiny", b"x" * 100)
    p = policies(grid, bucket)
    assert p == {"small": "THREECOPIES", "large": "EC42", "tiny": "INLINE"}
    # STANDARD is the default class: not stored, not returned.
    assert "StorageClass" not in s3.head_object(Bucket=bucket, Key="large")


def test_storage_class_header(grid, s3, bucket):
    data = body(MIB, 3)
    put_and_check(s3, bucket, "rr", data, StorageClass="REDUCED_REDUNDANCY")
    assert policies(grid, bucket)["rr"] == "TWOCOPIES"
    assert s3.head_object(Bucket=bucket, Key="rr")["StorageClass"] == "REDUCED_REDUNDANCY"
    assert s3.get_object(Bucket=bucket, Key="rr")["StorageClass"] == "REDUCED_REDUNDANCY"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["StorageClass"]) for o in listed] == [("rr", "REDUCED_REDUNDANCY")]
    # The request's class wins over the size rule too.
    put_and_check(s3, bucket, "ia", body(100 * KIB, 4), StorageClass="STANDARD_IA")
    assert policies(grid, bucket)["ia"] == "EC42"

    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, StorageClass="NO_SUCH_CLASS")
    assert e.value.response["Error"]["Code"] == "InvalidStorageClass"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "bad" not in policies(grid, bucket)


def test_bucket_policy_set_unset_and_unplaceable(grid, s3, bucket):
    data = body(MIB, 5)
    shown = json.loads(oxio(grid, "container", "show", bucket, "--format", "json").stdout)
    assert shown["name"] == bucket and shown["policy"] is None
    assert len(shown["cid"]) == 64 and shown["meta2_group"] >= 1000

    r = oxio(grid, "container", "set", bucket, "--policy", "BOGUS", check=False)
    assert r.returncode != 0 and "EC<k><m>" in r.stderr

    shown = json.loads(oxio(grid, "container", "set", bucket, "--policy", "THREECOPIES", "--format", "json").stdout)
    assert shown["policy"] == "THREECOPIES"
    assert put_until_policy(grid, s3, bucket, "big", data, "THREECOPIES") == "THREECOPIES"
    # A request's class still wins over the bucket default.
    put_and_check(s3, bucket, "rr", data, StorageClass="REDUCED_REDUNDANCY")
    assert policies(grid, bucket)["rr"] == "TWOCOPIES"

    shown = json.loads(oxio(grid, "container", "unset", bucket, "--policy", "--format", "json").stdout)
    assert shown["policy"] is None
    assert put_until_policy(grid, s3, bucket, "big", data, "EC42") == "EC42"

    # EC84 needs 12 rawx; the grid has 6: the PUT answers 503 and stores nothing.
    oxio(grid, "container", "set", bucket, "--policy", "EC84")
    deadline = time.monotonic() + POLICY_DEADLINE_S
    code = None
    while time.monotonic() < deadline:
        try:
            s3.put_object(Bucket=bucket, Key="ec84", Body=data)
            s3.delete_object(Bucket=bucket, Key="ec84")  # cached policy still served
            time.sleep(0.5)
        except ClientError as e:
            code = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
            break
    assert code == ("ServiceUnavailable", 503)
    # A server error is logged, with its cause, even though the default filter leaves
    # out access lines.
    from test_cli import wait_until

    path = f"/{bucket}/ec84".encode()

    def logged():
        with open(grid.log_path, "rb") as f:
            lines = f.read().splitlines()
        return [l for l in lines if b"request failed" in l and b"ERROR" in l and b"method=PUT" in l and path in l]

    wait_until("the 503 of the PUT in the grid's log", logged, 10)
    assert "ec84" not in policies(grid, bucket)
    shown = json.loads(oxio(grid, "container", "show", bucket, "--format", "json").stdout)
    assert shown["policy"] == "EC84" and shown["objects"] == 2
    oxio(grid, "container", "unset", bucket, "--policy")

    # Everything stored reads back.
    for key in ["big", "rr"]:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_multipart_uses_the_class_of_create(grid, s3, bucket):
    part = body(5 * MIB, 6)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu", StorageClass="REDUCED_REDUNDANCY")
    etags = []
    for n in (1, 2):
        r = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=n, Body=part)
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], MultipartUpload={"Parts": etags})
    assert policies(grid, bucket)["mpu"] == "TWOCOPIES"
    assert s3.head_object(Bucket=bucket, Key="mpu")["StorageClass"] == "REDUCED_REDUNDANCY"
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == part + part
