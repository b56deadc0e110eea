"""S3 multipart uploads through boto3 against a real grid: completion, ETags, ranges
across part boundaries, reads of one part by PartNumber, part replacement, the
validation errors, abort, listings."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def code(exc):
    return exc.value.response["Error"]["Code"]


def md5_of_md5s(parts):
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def upload(s3, bucket, key, upload_id, n, data):
    r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)
    return {"PartNumber": n, "ETag": r["ETag"]}


def test_complete_read_back_and_ranges(s3, bucket):
    key = "big/object.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1 * MIB)]
    mpu = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="application/x-test", Metadata={"color": "blue"}
    )
    uid = mpu["UploadId"]
    listed = [upload(s3, bucket, key, uid, i + 1, p) for i, p in enumerate(parts)]
    for part, data in zip(listed, parts):
        assert part["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    # Not visible before completion.
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": listed}
    )
    assert done["ETag"] == md5_of_md5s(parts)

    whole = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ETag"] == md5_of_md5s(parts)
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue"}
    assert got["ContentLength"] == len(whole)
    assert got["Body"].read() == whole
    # A range across the first part boundary, and one across the second.
    for start, end in [(5 * MIB - 100, 5 * MIB + 99), (10 * MIB - 1, 10 * MIB + 4096)]:
        r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        assert r["Body"].read() == whole[start : end + 1]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 11 * MIB
    # The upload is gone.
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert code(e) == "NoSuchUpload"


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_get_and_head_by_part_number(s3, bucket):
    # Parts uploaded as 2, 5 and 9: a read's PartNumber counts them 1, 2, 3.
    key = "parts/by-number.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 17), os.urandom(300_000)]
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    listed = [upload(s3, bucket, key, uid, n, p) for n, p in zip((2, 5, 9), parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": listed})
    whole = b"".join(parts)
    start = 0
    for n, data in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        assert got["ContentLength"] == len(data)
        assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{len(whole)}"
        assert got["ETag"] == md5_of_md5s(parts), "the whole object's ETag"
        assert got["Body"].read() == data, f"part {n}"
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=n)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (head["ContentLength"], head["PartsCount"]) == (len(data), 3)
        start += len(data)
    # Without PartNumber: the whole object, and no parts count (as S3).
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=4)
    assert (code(e), status(e)) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=1, Range="bytes=0-9")
    assert (code(e), status(e)) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=10_001)
    assert (code(e), status(e)) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key, PartNumber=4)
    assert status(e) == 416


def test_an_object_put_in_one_piece_is_its_own_part_one(s3, bucket):
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="single", Body=data)
    got = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert got["Body"].read() == data
    assert "PartsCount" not in got
    assert s3.head_object(Bucket=bucket, Key="single", PartNumber=1)["ContentLength"] == len(data)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=2)
    assert (code(e), status(e)) == ("InvalidPartNumber", 416)


def test_reuploading_a_part_replaces_it_and_unlisted_parts_go(s3, bucket):
    key = "replaced"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    first = os.urandom(5 * MIB)
    upload(s3, bucket, key, uid, 1, first)
    second = os.urandom(5 * MIB + 17)
    p1 = upload(s3, bucket, key, uid, 1, second)
    p2 = upload(s3, bucket, key, uid, 2, b"tail")
    upload(s3, bucket, key, uid, 3, b"never listed")
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB + 17), (2, 4), (3, 12)]
    assert parts[0]["ETag"] == p1["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": [p1, p2]})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == second + b"tail"


def test_validation_errors(s3, bucket):
    key = "invalid"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    small = upload(s3, bucket, key, uid, 1, b"x" * 1024)
    big = upload(s3, bucket, key, uid, 2, os.urandom(5 * MIB))
    last = upload(s3, bucket, key, uid, 3, b"end")

    def complete(parts):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts})
        return code(e)

    assert complete([big, small]) == "InvalidPartOrder"
    assert complete([{"PartNumber": 2, "ETag": small["ETag"]}]) == "InvalidPart"
    assert complete([big, {"PartNumber": 9, "ETag": last["ETag"]}]) == "InvalidPart"
    assert complete([small, big, last]) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=10001, Body=b"x")
    assert code(e) == "InvalidArgument"
    # The failed completions changed nothing.
    assert len(s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]) == 3
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key=key, UploadId="0" * 32, PartNumber=1, Body=b"x")
    assert code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId="0" * 32, MultipartUpload={"Parts": [big]}
        )
    assert code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId="0" * 32)
    assert code(e) == "NoSuchUpload"
    # A valid list still completes.
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": [big, last]})
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 5 * MIB + 3


def test_abort_removes_the_upload_and_its_parts(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    upload(s3, bucket, "aborted", uid, 1, os.urandom(1 * MIB))
    ids = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert ids == [uid]
    # An upload in progress keeps the bucket.
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert code(e) == "BucketNotEmpty"
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=uid)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="aborted", UploadId=uid)
    assert code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="aborted")


def test_list_parts_and_uploads_paginate(s3, bucket):
    key = "paged"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    for n in range(1, 8):
        upload(s3, bucket, key, uid, n, f"part {n}".encode())
    seen, marker = [], 0
    for _ in range(10):
        page = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid, MaxParts=3, PartNumberMarker=marker)
        seen += [p["PartNumber"] for p in page["Parts"]]
        if not page["IsTruncated"]:
            break
        assert len(page["Parts"]) == 3
        marker = page["NextPartNumberMarker"]
    assert seen == list(range(1, 8))

    others = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in ["a", "b", "b"]]
    page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2)
    assert page["IsTruncated"]
    assert [(u["Key"], u["UploadId"]) for u in page["Uploads"]] == [("a", others[0]), ("b", others[1])]
    page = s3.list_multipart_uploads(
        Bucket=bucket, MaxUploads=2, KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"]
    )
    assert [(u["Key"], u["UploadId"]) for u in page["Uploads"]] == [("b", others[2]), (key, uid)]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="b")["Uploads"]] == ["b", "b"]
    for k, u in zip(["a", "b", "b", key], others + [uid]):
        s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=u)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_list_uploads_with_a_delimiter(s3, bucket):
    keys = ["a", "logs/1", "logs/2", "logs/2", "m", "photos/2026/x", "photos/y", "z"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    try:
        page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
        assert [u["Key"] for u in page["Uploads"]] == ["a", "m", "z"]
        assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["logs/", "photos/"]
        assert page["Delimiter"] == "/" and not page["IsTruncated"]
        # Pages of two entries, a common prefix counting as one, each listed once.
        seen, kw = [], {}
        for _ in range(10):
            page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/", MaxUploads=2, **kw)
            entries = [u["Key"] for u in page.get("Uploads", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            assert len(entries) <= 2
            seen += entries
            if not page["IsTruncated"]:
                break
            kw = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page.get("NextUploadIdMarker", "")}
        assert sorted(seen) == ["a", "logs/", "m", "photos/", "z"]
        # Under a prefix the roll-up starts after it.
        page = s3.list_multipart_uploads(Bucket=bucket, Prefix="photos/", Delimiter="/")
        assert [u["Key"] for u in page["Uploads"]] == ["photos/y"]
        assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["photos/2026/"]
    finally:
        for k, u in zip(keys, ids):
            s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=u)
