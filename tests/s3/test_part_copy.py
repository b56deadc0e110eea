"""UploadPartCopy through boto3 against a real grid: parts made from byte ranges of
existing objects (read and written inside the gateway), the copy-source conditions,
and AWS's error codes."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def upload(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")
    state = {"id": up["UploadId"], "done": False}
    yield state
    if not state["done"]:
        s3.abort_multipart_upload(Bucket=bucket, Key="dst", UploadId=state["id"])


def complete(s3, bucket, upload, etags):
    parts = [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload["id"], MultipartUpload={"Parts": parts})
    upload["done"] = True


def test_object_built_from_two_ranges_of_another(s3, bucket, upload):
    src = os.urandom(12 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload["id"],
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{6 * MIB - 1}",
    )["CopyPartResult"]
    second = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload["id"],
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes={8 * MIB + 3}-{12 * MIB - 1}",
    )["CopyPartResult"]
    expected = src[: 6 * MIB] + src[8 * MIB + 3 :]
    assert first["ETag"].strip('"') == hashlib.md5(src[: 6 * MIB]).hexdigest()
    assert second["ETag"].strip('"') == hashlib.md5(src[8 * MIB + 3 :]).hexdigest()
    parts = s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload["id"])["Parts"]
    assert [p["Size"] for p in parts] == [6 * MIB, 4 * MIB - 3]
    complete(s3, bucket, upload, [first["ETag"], second["ETag"]])
    got = s3.get_object(Bucket=bucket, Key="dst")["Body"].read()
    assert len(got) == len(expected)
    assert got == expected


def test_whole_object_part_copy_across_buckets(s3, bucket, upload):
    other = f"{bucket[:50]}-src"
    s3.create_bucket(Bucket=other)
    try:
        body = b"small inline source " * 10
        s3.put_object(Bucket=other, Key="k", Body=body)
        part = s3.upload_part_copy(
            Bucket=bucket, Key="dst", UploadId=upload["id"], PartNumber=1, CopySource=f"{other}/k"
        )["CopyPartResult"]
        complete(s3, bucket, upload, [part["ETag"]])
        assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == body
    finally:
        s3.delete_object(Bucket=other, Key="k")
        s3.delete_bucket(Bucket=other)


@pytest.mark.parametrize("rng", ["bytes=5-3", "bytes=-5", "bytes=5-", "0-5"])
def test_malformed_ranges_are_invalid_arguments(s3, bucket, upload, rng):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x" * 100)
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload["id"],
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange=rng,
        )
    assert code(e) == "InvalidArgument"
    assert status(e) == 400


def test_range_past_the_end_is_invalid_range(s3, bucket, upload):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x" * 100)
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload["id"],
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange="bytes=0-100",
        )
    assert code(e) == "InvalidRange"
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload["id"]).get("Parts", []) == []


def test_copy_source_conditions(s3, bucket, upload):
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"y" * 10)["ETag"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload["id"],
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch='"0123456789abcdef0123456789abcdef"',
        )
    assert code(e) == "PreconditionFailed"
    assert status(e) == 412
    part = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload["id"],
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceIfMatch=etag,
    )["CopyPartResult"]
    assert part["ETag"] == etag


def test_missing_source_and_missing_upload(s3, bucket, upload):
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload["id"],
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "nope"},
        )
    assert code(e) == "NoSuchKey"
    s3.put_object(Bucket=bucket, Key="src", Body=b"z")
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId="0" * 32,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
        )
    assert code(e) == "NoSuchUpload"
