"""S3 operations through boto3 against a real grid: behaviour and error codes."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_bucket_lifecycle(s3):
    name = "lifecycle-bucket"
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert code(e) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert code(e) == "BucketNotEmpty" and status(e) == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status(e) == 404


def test_missing_bucket_and_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="missing")
    assert code(e) == "NoSuchKey" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="missing")
    assert status(e) == 404
    # Deleting a missing key succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="missing")


def test_invalid_bucket_name(s3):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Invalid_Name")
    assert code(e) == "InvalidBucketName"


@pytest.mark.parametrize("size", [0, 1, 4096, 31 * 1024, 33 * 1024, 3 * 1024 * 1024 + 17])
def test_put_get_round_trip(s3, bucket, size):
    data = os.urandom(size)
    r = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    assert got["Body"].read() == data
    assert got["ContentLength"] == size
    assert got["ETag"] == r["ETag"]
    head = s3.head_object(Bucket=bucket, Key=f"obj-{size}")
    assert head["ContentLength"] == size and head["ETag"] == r["ETag"]


def test_overwrite_replaces(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first" * 10000)
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"


def test_range_reads(s3, bucket):
    data = os.urandom(2 * 1024 * 1024 + 12345)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    small = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="small", Body=small)
    cases = [(0, 0), (0, 99), (1024 * 1024 - 5, 1024 * 1024 + 5), (len(data) - 10, len(data) - 1), (262143, 262145)]
    for a, b in cases:
        r = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={a}-{b}")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["ContentRange"] == f"bytes {a}-{b}/{len(data)}"
        assert r["Body"].read() == data[a : b + 1]
    assert s3.get_object(Bucket=bucket, Key="big", Range="bytes=-100")["Body"].read() == data[-100:]
    assert s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={len(data) - 7}-")["Body"].read() == data[-7:]
    assert s3.get_object(Bucket=bucket, Key="small", Range="bytes=10-19")["Body"].read() == small[10:20]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="small", Range="bytes=5000-6000")
    assert code(e) == "InvalidRange" and status(e) == 416


def test_content_md5_checked(s3, bucket):
    data = b"hello oxio" * 5000
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="ok", Body=data, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    for key, body in [("bad-small", b"tiny"), ("bad-big", data)]:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=bad)
        assert code(e) == "BadDigest"
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=key)


def test_user_metadata_and_content_type(s3, bucket):
    s3.put_object(
        Bucket=bucket,
        Key="m",
        Body=b"x" * 40000,
        Metadata={"color": "blue", "owner-id": "42"},
        ContentType="application/x-test",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="m.bin"',
    )
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["Metadata"] == {"color": "blue", "owner-id": "42"}
    assert h["ContentType"] == "application/x-test"
    assert h["CacheControl"] == "max-age=60"
    g = s3.get_object(Bucket=bucket, Key="m")
    assert g["Metadata"] == {"color": "blue", "owner-id": "42"}
    assert g["ContentDisposition"] == 'attachment; filename="m.bin"'


def test_keys_stored_literally(s3, bucket):
    keys = ["with space", "plus+sign", "eq=ual", "per%cent", "unicodé/ключ/鍵", "dots/../up", "a/b/c.txt"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed, key=lambda s: s.encode()) == listed
    assert set(listed) == set(keys)


def test_list_prefix_delimiter(s3, bucket):
    for k in ["a/1", "a/2", "a/b/3", "b/4", "c", "d/5"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in r.get("Contents", [])] == ["c"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "d/"]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="a/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2", "a/b/3"]
    # Pages of 2 with a delimiter: common prefixes count toward max-keys.
    seen, token = [], None
    while True:
        kw = dict(Bucket=bucket, Delimiter="/", MaxKeys=2)
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        seen += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        assert r["KeyCount"] <= 2
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b/", "c", "d/"]
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="b/4")
    assert [o["Key"] for o in r["Contents"]] == ["c", "d/5"]


def test_pagination_2500_keys(s3, bucket):
    from concurrent.futures import ThreadPoolExecutor

    keys = [f"k/{i:05d}" for i in range(2500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"v"), keys))
    got, pages = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        pages += 1
        got += [o["Key"] for o in page.get("Contents", [])]
    assert got == keys
    assert pages == 3
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=100)
    assert len(r["Contents"]) == 100 and r["IsTruncated"]


def test_bad_credentials(grid, bucket):
    wrong_secret = grid.client(secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        wrong_secret.list_objects_v2(Bucket=bucket)
    assert code(e) == "SignatureDoesNotMatch" and status(e) == 403
    unknown = grid.client(access_key="OXIONOSUCHKEY0000000", secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert code(e) == "InvalidAccessKeyId" and status(e) == 403


def test_delete_objects_batch(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d{i}", Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"d{i}"} for i in range(5)] + [{"Key": "none"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d0", "d1", "d2", "d3", "d4", "none"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_quiet_lists_only_errors(s3, bucket):
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"q{i}", Body=b"x")
    objects = [{"Key": f"q{i}"} for i in range(3)] + [{"Key": "none"}, {"Key": "q0", "VersionId": "not-a-version"}]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    assert not r.get("Deleted")
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("q0", "InvalidArgument")]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # Verbose, the same request lists every key and the same error.
    s3.put_object(Bucket=bucket, Key="q1", Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": False})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["none", "q0", "q1", "q2"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("q0", "InvalidArgument")]


def test_delete_objects_limit(s3, bucket):
    objects = [{"Key": f"k{i}"} for i in range(1001)]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    assert e.value.response["Error"]["Code"] == "MalformedXML"
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[:1000], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors")
