"""Bucket versioning through boto3 and the aws cli against a real grid: the bucket
state (unversioned, Enabled, Suspended), versions readable by id, delete markers,
deleting a version for good (its chunk files leave the disk, the other versions stay
readable), the `null` version of a suspended bucket, ListObjectVersions paging, a
multipart completion adding a version, and unversioned buckets left as they were."""

import json
import os
import random
import re
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

CHUNKED = 300 * 1024  # above the inline threshold: stored in rawx chunks
CHUNK_NAME = re.compile(r"^[0-9A-F]{64}$")


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def headers(exc):
    return exc.value.response["ResponseMetadata"]["HTTPHeaders"]


def chunk_files(grid):
    """Names of the complete chunk files of every rawx of the grid."""
    names = set()
    for i in range(grid.rawx):
        for _root, _dirs, files in os.walk(os.path.join(grid.data, "rawx", f"vol{i}")):
            names.update(f for f in files if CHUNK_NAME.match(f))
    return names


def wait_until(cond, deadline_s=15):
    deadline = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def all_versions(s3, bucket, **kw):
    """Every page of (key, version id, is latest, is marker), following the next
    markers (a page lists versions and markers apart: use MaxKeys=1 to keep order)."""
    out = []
    args = {"Bucket": bucket, **kw}
    for _ in range(1000):
        page = s3.list_object_versions(**args)
        entries = [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in page.get("Versions", [])]
        entries += [(m["Key"], m["VersionId"], m["IsLatest"], True) for m in page.get("DeleteMarkers", [])]
        out.append(entries)
        if not page["IsTruncated"]:
            break
        args["KeyMarker"] = page["NextKeyMarker"]
        if page.get("NextVersionIdMarker"):
            args["VersionIdMarker"] = page["NextVersionIdMarker"]
        else:
            args.pop("VersionIdMarker", None)
    return out


def empty_versions(s3, bucket):
    for _ in range(100):
        page = s3.list_object_versions(Bucket=bucket)
        items = page.get("Versions", []) + page.get("DeleteMarkers", [])
        for v in items:
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        if not items:
            return


@pytest.fixture
def vbucket(s3):
    """A bucket with versioning enabled, emptied of every version afterwards."""
    name = f"t-versioned-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    empty_versions(s3, name)
    s3.delete_bucket(Bucket=name)


def test_bucket_versioning_state(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # There is no way back to unversioned.
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Disabled"})
    assert code(e) == "MalformedXML" and status(e) == 400
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="no-such-bucket-versioning")
    assert code(e) == "NoSuchBucket"


def test_every_put_is_a_version_readable_by_id(s3, vbucket):
    bodies = [os.urandom(CHUNKED), b"small inline", os.urandom(CHUNKED + 7)]
    ids = [s3.put_object(Bucket=vbucket, Key="k", Body=b)["VersionId"] for b in bodies]
    assert len(set(ids)) == 3 and "null" not in ids
    for vid, body in zip(ids, bodies):
        got = s3.get_object(Bucket=vbucket, Key="k", VersionId=vid)
        assert got["Body"].read() == body
        assert got["VersionId"] == vid
        assert s3.head_object(Bucket=vbucket, Key="k", VersionId=vid)["ContentLength"] == len(body)
    latest = s3.get_object(Bucket=vbucket, Key="k")
    assert latest["VersionId"] == ids[-1] and latest["Body"].read() == bodies[-1]
    # One key in the plain listing, three versions in the version listing.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=vbucket)["Contents"]] == ["k"]
    versions = s3.list_object_versions(Bucket=vbucket)["Versions"]
    assert [v["VersionId"] for v in versions] == ids[::-1]
    assert [v["IsLatest"] for v in versions] == [True, False, False]
    assert [v["Size"] for v in versions] == [len(b) for b in bodies[::-1]]
    # Unknown and malformed version ids.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="00000000000000ff")
    assert code(e) == "NoSuchVersion" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId="not-a-version")
    assert code(e) == "InvalidArgument" and status(e) == 400


def test_delete_marker_hides_and_removing_it_restores(s3, vbucket):
    put = s3.put_object(Bucket=vbucket, Key="k", Body=b"kept")
    d = s3.delete_object(Bucket=vbucket, Key="k")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    assert marker not in ("", "null", put["VersionId"])
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k")
    assert code(e) == "NoSuchKey" and status(e) == 404
    assert headers(e)["x-amz-delete-marker"] == "true"
    assert headers(e)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=vbucket, Key="k")
    assert status(e) == 404
    # GET naming the marker: 405 as AWS.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert status(e) == 405 and headers(e)["x-amz-delete-marker"] == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=vbucket)
    listed = s3.list_object_versions(Bucket=vbucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(put["VersionId"], False)]
    # The older version is still readable by id.
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=put["VersionId"])["Body"].read() == b"kept"
    # Removing the marker brings the object back.
    d = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert d["DeleteMarker"] is True and d["VersionId"] == marker
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"kept"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=vbucket)["Contents"]] == ["k"]


def test_deleting_a_version_removes_its_chunks_only(grid, s3, vbucket):
    before = chunk_files(grid)
    a, b = os.urandom(CHUNKED), os.urandom(CHUNKED)
    va = s3.put_object(Bucket=vbucket, Key="k", Body=a)["VersionId"]
    chunks_a = chunk_files(grid) - before
    vb = s3.put_object(Bucket=vbucket, Key="k", Body=b)["VersionId"]
    chunks_b = chunk_files(grid) - before - chunks_a
    assert chunks_a and chunks_b
    # An overwrite in a versioned bucket deletes nothing.
    time.sleep(0.5)
    assert chunks_a <= chunk_files(grid)
    # Deleting the latest version for good: its chunks go, the previous one is back.
    d = s3.delete_object(Bucket=vbucket, Key="k", VersionId=vb)
    assert d["VersionId"] == vb and "DeleteMarker" not in d
    assert wait_until(lambda: not (chunks_b & chunk_files(grid))), "chunks of the deleted version remain"
    assert chunks_a <= chunk_files(grid)
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["VersionId"] == va and got["Body"].read() == a
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=vb)
    assert code(e) == "NoSuchVersion"
    # Deleting a version that is gone succeeds (nothing to do).
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=vb)
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=va)
    assert wait_until(lambda: not (chunks_a & chunk_files(grid)))
    assert s3.list_object_versions(Bucket=vbucket).get("Versions") is None


def test_suspended_bucket_writes_the_null_version(grid, s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"v1")["VersionId"]
    s3.put_bucket_versioning(Bucket=vbucket, VersioningConfiguration={"Status": "Suspended"})
    before = chunk_files(grid)
    p = s3.put_object(Bucket=vbucket, Key="k", Body=os.urandom(CHUNKED))
    assert p["VersionId"] == "null"
    null_chunks = chunk_files(grid) - before
    assert null_chunks
    # A second write replaces the null version (its chunks go), v1 stays.
    body = os.urandom(CHUNKED)
    s3.put_object(Bucket=vbucket, Key="k", Body=body)
    assert wait_until(lambda: not (null_chunks & chunk_files(grid)))
    got = s3.get_object(Bucket=vbucket, Key="k", VersionId="null")
    assert got["Body"].read() == body and got["VersionId"] == "null"
    assert s3.get_object(Bucket=vbucket, Key="k", VersionId=v1)["Body"].read() == b"v1"
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=vbucket)["Versions"]]
    assert ids == ["null", v1]
    # DELETE: a null delete marker replaces the null version.
    d = s3.delete_object(Bucket=vbucket, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    listed = s3.list_object_versions(Bucket=vbucket)
    assert [m["VersionId"] for m in listed["DeleteMarkers"]] == ["null"]
    assert [v["VersionId"] for v in listed["Versions"]] == [v1]
    # Removing the null marker makes v1 the latest again.
    s3.delete_object(Bucket=vbucket, Key="k", VersionId="null")
    assert s3.get_object(Bucket=vbucket, Key="k")["VersionId"] == v1


def test_list_object_versions_pages_one_by_one(s3, vbucket):
    expected = []
    for key in ["a", "b/x", "b/y", "c"]:
        ids = [s3.put_object(Bucket=vbucket, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(2)]
        expected += [(key, ids[1], True, False), (key, ids[0], False, False)]
    marker = s3.delete_object(Bucket=vbucket, Key="c")["VersionId"]
    expected = [e for e in expected if e[0] != "c"] + [
        ("c", marker, True, True),
    ] + [(k, v, False, m) for (k, v, _l, m) in expected if k == "c"]
    pages = all_versions(s3, vbucket, MaxKeys=1)
    assert all(len(p) == 1 for p in pages)
    assert [e for p in pages for e in p] == expected
    # Delimiter: b/ rolls up into one common prefix.
    page = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [c["Prefix"] for c in page["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in page["Versions"]} == {"a", "c"}
    page = s3.list_object_versions(Bucket=vbucket, Prefix="b/", MaxKeys=3)
    assert page["IsTruncated"] and len(page["Versions"]) == 3
    assert page["NextKeyMarker"] == "b/y"
    # encoding-type=url encodes keys.
    s3.put_object(Bucket=vbucket, Key="sp ace", Body=b"x")
    raw = s3.list_object_versions(Bucket=vbucket, Prefix="sp", EncodingType="url")
    assert [v["Key"] for v in raw["Versions"]] == ["sp%20ace"]
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=vbucket, VersionIdMarker="null")
    assert code(e) == "InvalidArgument"


def test_multipart_completion_adds_a_version(s3, vbucket):
    first = s3.put_object(Bucket=vbucket, Key="mp", Body=b"before")["VersionId"]
    up = s3.create_multipart_upload(Bucket=vbucket, Key="mp")
    part = os.urandom(5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=vbucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=part)["ETag"]
    e2 = s3.upload_part(Bucket=vbucket, Key="mp", UploadId=up["UploadId"], PartNumber=2, Body=b"tail")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=vbucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert done["VersionId"] not in (first, "null")
    assert s3.get_object(Bucket=vbucket, Key="mp")["Body"].read() == part + b"tail"
    assert s3.get_object(Bucket=vbucket, Key="mp", VersionId=first)["Body"].read() == b"before"


def test_copy_from_a_version_and_tags_of_a_version(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="src", Body=b"one", Tagging="v=1")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="src", Body=b"two", Tagging="v=2")
    c = s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": v1})
    assert c["CopySourceVersionId"] == v1 and c["VersionId"]
    assert s3.get_object(Bucket=vbucket, Key="dst")["Body"].read() == b"one"
    tags = s3.get_object_tagging(Bucket=vbucket, Key="src", VersionId=v1)
    assert tags["TagSet"] == [{"Key": "v", "Value": "1"}] and tags["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=vbucket, Key="src")["TagSet"] == [{"Key": "v", "Value": "2"}]
    # Restoring an old version by copying it onto its own key.
    s3.copy_object(Bucket=vbucket, Key="src", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": v1})
    assert s3.get_object(Bucket=vbucket, Key="src")["Body"].read() == b"one"


def test_unversioned_bucket_beside_a_versioned_one(grid, s3, bucket, vbucket):
    before = chunk_files(grid)
    s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(CHUNKED))
    first = chunk_files(grid) - before
    p = s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert "VersionId" not in p
    # The overwrite garbages the first object's chunks, as before versioning existed.
    assert wait_until(lambda: not (first & chunk_files(grid)))
    s3.put_object(Bucket=vbucket, Key="k", Body=b"versioned")
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert "DeleteMarker" not in d and "VersionId" not in d
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    listed = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in listed and "DeleteMarkers" not in listed
    assert s3.get_object(Bucket=vbucket, Key="k")["Body"].read() == b"versioned"
    # DeleteObjects with and without version ids.
    s3.put_object(Bucket=vbucket, Key="m", Body=b"m")
    v = s3.put_object(Bucket=vbucket, Key="n", Body=b"n")["VersionId"]
    out = s3.delete_objects(Bucket=vbucket, Delete={"Objects": [{"Key": "m"}, {"Key": "n", "VersionId": v}]})
    by_key = {d["Key"]: d for d in out["Deleted"]}
    assert by_key["m"]["DeleteMarker"] is True and by_key["m"]["DeleteMarkerVersionId"]
    assert by_key["n"]["VersionId"] == v
    # A versioned bucket holding only old versions is not empty.
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=vbucket)
    assert code(e) == "BucketNotEmpty"


def test_awscli_versioning(grid, s3, tmp_path):
    env = grid.cli_env(str(tmp_path))

    def aws(*args):
        r = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout

    name = f"t-awscli-versions-{random.randrange(1 << 30):x}"
    aws("s3api", "create-bucket", "--bucket", name)
    try:
        aws("s3api", "put-bucket-versioning", "--bucket", name, "--versioning-configuration", "Status=Enabled")
        assert json.loads(aws("s3api", "get-bucket-versioning", "--bucket", name))["Status"] == "Enabled"
        src = tmp_path / "f.txt"
        for body in ("one", "two"):
            src.write_text(body)
            aws("s3api", "put-object", "--bucket", name, "--key", "f.txt", "--body", str(src))
        listed = json.loads(aws("s3api", "list-object-versions", "--bucket", name))
        assert [v["IsLatest"] for v in listed["Versions"]] == [True, False]
        old = listed["Versions"][1]["VersionId"]
        out = tmp_path / "out.txt"
        aws("s3api", "get-object", "--bucket", name, "--key", "f.txt", "--version-id", old, str(out))
        assert out.read_text() == "one"
    finally:
        empty_versions(s3, name)
        s3.delete_bucket(Bucket=name)
