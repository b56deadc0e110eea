"""Object and bucket tagging through boto3 against a real grid: the tagging
operations, tags given with PutObject, CopyObject (COPY / REPLACE directive) and
CreateMultipartUpload, x-amz-tagging-count on GET / HEAD, and AWS's validation codes.
A tag change must keep the object (same bytes, same ETag) readable: it edits the
stored header in place and never deletes chunks."""

import os
import time

import pytest
from botocore.exceptions import ClientError

CHUNKED = os.urandom(300 * 1024)  # above the inline threshold: stored in rawx chunks

def code(exc):
    return exc.value.response["Error"]["Code"]

def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]

def tagset(**kv):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in kv.items()]}

def as_dict(resp):
    return {t["Key"]: t["Value"] for t in resp["TagSet"]}

def test_put_get_delete_object_tagging_keeps_the_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=CHUNKED)
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(team="data", env="prod é"))
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"team": "data", "env": "prod é"}
    # Replacing the set replaces every tag.
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(only="one"))
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"only": "one"}
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 1
    assert got["ETag"] == put["ETag"]
    assert got["Body"].read() == CHUNKED
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {}
    got = s3.get_object(Bucket=bucket, Key="k")
    assert "TagCount" not in got
    assert got["Body"].read() == CHUNKED
    # Still one object, same size: the tag changes made no new version.
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("k", len(CHUNKED))]

def test_tag_changes_never_delete_chunks(s3, bucket):
    s3.put_object(Bucket=bucket, Key="big", Body=CHUNKED)
    for i in range(5):
        s3.put_object_tagging(Bucket=bucket, Key="big", Tagging=tagset(round=str(i)))
    # Chunk deletions run in the background: read several times over a short while.

    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == CHUNKED
        time.sleep(0.2)

def test_tagging_header_on_put_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"small", Tagging="a=1&b%20c=x%2By&empty=")
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"a": "1", "b c": "x+y", "empty": ""}
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3

def test_copy_object_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x" * 100, Tagging="s=1")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="copied")) == {"s": "1"}
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="n=2&m=3",
    )
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="replaced")) == {"n": "2", "m": "3"}
    s3.copy_object(
        Bucket=bucket,
        Key="cleared",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
    )
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="cleared")) == {}

def test_multipart_upload_tags_end_up_on_the_object(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu", Tagging="phase=upload")
    try:
        part = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1000)
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mpu",
            UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    except Exception:
        s3.abort_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up["UploadId"])
        raise
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="mpu")) == {"phase": "upload"}
    assert s3.head_object(Bucket=bucket, Key="mpu")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"

@pytest.mark.parametrize(
    "tags",
    [
        [{"Key": f"k{i}", "Value": "v"} for i in range(11)],
        [{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}],
        [{"Key": "k" * 129, "Value": "v"}],
        [{"Key": "k", "Value": "v" * 257}],
    ],
    ids=["eleven-tags", "duplicate-key", "long-key", "long-value"],
)
def test_invalid_object_tag_sets_are_refused(s3, bucket, tags):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    assert code(e) == "InvalidTag"
    assert status(e) == 400
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"keep": "me"}

def test_tag_limits_count_unicode_characters(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    tags = [{"Key": "é" * 128, "Value": "ü" * 256}] + [{"Key": f"k{i}", "Value": "v"} for i in range(9)]
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    assert len(s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]) == 10

def test_invalid_tagging_header_is_refused_and_nothing_stored(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&a=2")
    assert code(e) == "InvalidTag"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert status(e) == 404

def test_object_tagging_of_a_missing_key(s3, bucket):
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket, Key="missing"),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=tagset(a="1")),
        lambda: s3.delete_object_tagging(Bucket=bucket, Key="missing"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "NoSuchKey"
        assert status(e) == 404

def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(e) == "NoSuchTagSet"
    assert status(e) == 404
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(owner="ml", cost="42"))
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)) == {"owner": "ml", "cost": "42"}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(owner="infra"))
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)) == {"owner": "infra"}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
        )
    assert code(e) == "InvalidTag"
    fifty = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(50)]}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=fifty)
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
    assert code(e) == "InvalidTag"
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(e) == "NoSuchTagSet"

def test_bucket_tagging_of_a_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket="no-such-bucket-for-tags")
    assert code(e) == "NoSuchBucket"
