"""Bucket quotas set with `oxio container set --quota`: a PUT, a part or a completion
that would take the stored bytes over the quota is refused with 403 QuotaExceeded
and stores nothing; deletes free room; `container show` reports the quota and the
versioning state."""

import os

import pytest
from botocore.exceptions import ClientError

from test_cli import assert_clear_error, oxio, oxio_json

KIB = 1024


def refused(exc):
    err = exc.value.response
    return err["Error"]["Code"] == "QuotaExceeded" and err["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_quota_refuses_writes_past_it_and_deletes_free_room(grid, s3, bucket):
    shown = oxio_json(grid, "container", "show", bucket)
    assert shown["quota_bytes"] is None and shown["versioning"] == "Unversioned"
    shown = oxio_json(grid, "container", "set", bucket, "--quota", "100KiB")
    assert shown["quota_bytes"] == 100 * KIB

    s3.put_object(Bucket=bucket, Key="inline", Body=os.urandom(10 * KIB))
    s3.put_object(Bucket=bucket, Key="chunked", Body=os.urandom(60 * KIB))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="too-much", Body=os.urandom(40 * KIB))
    assert refused(e)
    with pytest.raises(ClientError) as e:  # inline objects count too
        s3.put_object(Bucket=bucket, Key="small-too-much", Body=os.urandom(31 * KIB))
    assert refused(e)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["chunked", "inline"]
    assert oxio_json(grid, "container", "show", bucket)["bytes"] == 70 * KIB
    # What fits exactly is taken; then only a delete makes room.
    s3.put_object(Bucket=bucket, Key="exact", Body=os.urandom(30 * KIB))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="one-more", Body=b"x")
    assert refused(e)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")  # nothing to store
    s3.delete_object(Bucket=bucket, Key="chunked")
    s3.put_object(Bucket=bucket, Key="after-delete", Body=os.urandom(50 * KIB))
    assert s3.head_object(Bucket=bucket, Key="after-delete")["ContentLength"] == 50 * KIB

    # Multipart: the completion counts the whole object; a refused one stays open.
    # 90 KiB stored: an 8 KiB part fits, then a 5 KiB object, and the completion no longer does.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up, PartNumber=1, Body=os.urandom(8 * KIB))["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    s3.put_object(Bucket=bucket, Key="filler", Body=os.urandom(5 * KIB))
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up, MultipartUpload=parts)
    assert refused(e)
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [up]
    with pytest.raises(ClientError) as e:  # a part that can never fit
        s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up, PartNumber=2, Body=os.urandom(200 * KIB))
    assert refused(e)

    # Without the quota, everything goes through.
    shown = oxio_json(grid, "container", "unset", bucket, "--quota")
    assert shown["quota_bytes"] is None
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up, MultipartUpload=parts)
    s3.put_object(Bucket=bucket, Key="too-much", Body=os.urandom(40 * KIB))
    assert oxio_json(grid, "container", "show", bucket)["bytes"] == (10 + 30 + 50 + 5 + 8 + 40) * KIB


def test_quota_settings_are_checked(grid, s3, bucket):
    r = oxio(grid, "container", "set", bucket, "--quota", "lots", check=False)
    assert_clear_error(r, 2, "--quota", "500GiB")
    r = oxio(grid, "container", "set", bucket, check=False)
    assert r.returncode == 2 and "--policy" in r.stderr and "--quota" in r.stderr
    # Both at once, and the versioning state as it changes.
    shown = oxio_json(grid, "container", "set", bucket, "--quota", "1MiB", "--policy", "TWOCOPIES")
    assert (shown["quota_bytes"], shown["policy"]) == (1 << 20, "TWOCOPIES")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert oxio_json(grid, "container", "show", bucket)["versioning"] == "Enabled"
    # Every stored version counts against the quota.
    s3.put_object(Bucket=bucket, Key="v", Body=os.urandom(600 * KIB))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="v", Body=os.urandom(600 * KIB))
    assert refused(e)
    shown = oxio_json(grid, "container", "unset", bucket, "--quota", "--policy")
    assert shown["quota_bytes"] is None and shown["policy"] is None
    versions = s3.list_object_versions(Bucket=bucket)
    for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
