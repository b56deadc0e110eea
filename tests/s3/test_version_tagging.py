"""Tags of older versions through boto3 against a real grid: PutObjectTagging,
GetObjectTagging and DeleteObjectTagging with the `versionId` of a noncurrent version
rewrite that version in place (the latest and the other versions keep their tags,
every version keeps its bytes, no version is added), the `null` version of a
suspended bucket included; a delete marker answers MethodNotAllowed and an unknown id
NoSuchVersion."""

import os
import random

import pytest
from botocore.exceptions import ClientError

CHUNKED = os.urandom(300 * 1024)  # above the inline threshold: stored in rawx chunks


def code(exc):
    return exc.value.response["Error"]["Code"]


def tagset(**kv):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in kv.items()]}


def tags_of(s3, bucket, key, vid=None):
    kw = {"VersionId": vid} if vid else {}
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def versions(s3, bucket):
    page = s3.list_object_versions(Bucket=bucket)
    return [(v["VersionId"], v["IsLatest"], v["Size"]) for v in page.get("Versions", [])], [
        m["VersionId"] for m in page.get("DeleteMarkers", [])
    ]


@pytest.fixture
def vbucket(s3):
    name = f"t-vtags-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for _ in range(100):
        page = s3.list_object_versions(Bucket=name)
        items = page.get("Versions", []) + page.get("DeleteMarkers", [])
        for v in items:
            s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
        if not items:
            break
    s3.delete_bucket(Bucket=name)


def test_tags_of_an_older_version_change_in_place(s3, vbucket):
    old = s3.put_object(Bucket=vbucket, Key="k", Body=CHUNKED, Tagging="gen=old")["VersionId"]
    mid = s3.put_object(Bucket=vbucket, Key="k", Body=b"middle", Tagging="gen=mid")["VersionId"]
    new = s3.put_object(Bucket=vbucket, Key="k", Body=b"newest", Tagging="gen=new")["VersionId"]
    before = versions(s3, vbucket)

    put = s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=old, Tagging=tagset(gen="old2", x="1"))
    assert put["VersionId"] == old
    assert tags_of(s3, vbucket, "k", old) == {"gen": "old2", "x": "1"}
    assert tags_of(s3, vbucket, "k", mid) == {"gen": "mid"}
    assert tags_of(s3, vbucket, "k", new) == {"gen": "new"}
    assert tags_of(s3, vbucket, "k") == {"gen": "new"}
    # Same versions, same bytes, the tag count follows.
    assert versions(s3, vbucket) == before
    got = s3.get_object(Bucket=vbucket, Key="k", VersionId=old)
    assert got["Body"].read() == CHUNKED and got["TagCount"] == 2

    # The latest version named by its id is the latest version.
    s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=new, Tagging=tagset(gen="new2"))
    assert tags_of(s3, vbucket, "k") == {"gen": "new2"}

    deleted = s3.delete_object_tagging(Bucket=vbucket, Key="k", VersionId=mid)
    assert deleted["VersionId"] == mid
    assert tags_of(s3, vbucket, "k", mid) == {}
    assert tags_of(s3, vbucket, "k", old) == {"gen": "old2", "x": "1"}
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=mid)["Body"].read() == b"middle"
    assert versions(s3, vbucket) == before


def test_version_tags_behind_a_delete_marker(s3, vbucket):
    vid = s3.put_object(Bucket=vbucket, Key="k", Body=b"data")["VersionId"]
    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=vid, Tagging=tagset(kept="yes"))
    assert tags_of(s3, vbucket, "k", vid) == {"kept": "yes"}
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId=marker, Tagging=tagset(a="b"))
    assert code(e) == "MethodNotAllowed"
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=vbucket, Key="k", VersionId="00000000000000ff", Tagging=tagset(a="b"))
    assert code(e) == "NoSuchVersion"
    # Restoring the version by removing the marker brings its new tags back.
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert tags_of(s3, vbucket, "k") == {"kept": "yes"}


def test_tags_of_the_null_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"null version")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    newer = s3.put_object(Bucket=bucket, Key="k", Body=b"newer")["VersionId"]
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId="null", Tagging=tagset(v="null"))
    assert tags_of(s3, bucket, "k", "null") == {"v": "null"}
    assert tags_of(s3, bucket, "k") == {}
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null version"
    for vid in (newer, "null"):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=vid)
