"""Conditional writes through boto3 against a real grid: `If-None-Match: *` on
PutObject and CompleteMultipartUpload, `If-Match` on PutObject. The directory checks
the condition in the same Raft command that stores the object, so concurrent
create-only writers of one key cannot both succeed, and a refused write leaves no
chunk behind."""

import os
import re
import threading
import time

import pytest
from botocore.exceptions import ClientError

CHUNK_NAME = re.compile(r"^[0-9A-F]{64}$", re.IGNORECASE)
CHUNKED_BYTES = 300 * 1024  # above the inline threshold: stored in rawx chunks
MIB5 = 5 * 1024 * 1024


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def chunk_files(grid):
    """Names of the complete chunk files of every rawx of the grid."""
    names = set()
    for i in range(grid.rawx):
        for _root, _dirs, files in os.walk(os.path.join(grid.data, "rawx", f"vol{i}")):
            names.update(f for f in files if CHUNK_NAME.match(f))
    return names


def settled_new_chunks(grid, before, expected, deadline_s=15):
    """Polls until the chunk files created since `before` number `expected` (background
    deletions finish), and returns how many there are at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        new = len(chunk_files(grid) - before)
        if new == expected or time.monotonic() > deadline:
            return new
        time.sleep(0.1)


def chunks_of_one_object(grid, s3, bucket, size):
    """How many chunk files one object of `size` bytes makes."""
    before = chunk_files(grid)
    s3.put_object(Bucket=bucket, Key="probe", Body=os.urandom(size))
    n = len(chunk_files(grid) - before)
    assert n > 0
    return n


def test_if_none_match_star_creates_once(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert code(e) == "PreconditionFailed"
    assert status(e) == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_refused_chunked_put_leaves_no_chunk(grid, s3, bucket):
    per_object = chunks_of_one_object(grid, s3, bucket, CHUNKED_BYTES)
    original = os.urandom(CHUNKED_BYTES)
    before = chunk_files(grid)
    s3.put_object(Bucket=bucket, Key="k", Body=original)
    assert settled_new_chunks(grid, before, per_object) == per_object
    before = chunk_files(grid)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(CHUNKED_BYTES), IfNoneMatch="*")
    assert status(e) == 412
    # The refused put's chunks were written, then deleted.
    assert settled_new_chunks(grid, before, 0) == 0
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == original


def test_if_match_compares_the_current_etag(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert code(e) == "PreconditionFailed"
    assert status(e) == 412
    etag2 = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    # The first ETag no longer matches: a compare-and-swap loses against the update.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=etag)
    assert status(e) == 412
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == etag2


def test_if_match_on_a_missing_key_is_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="missing", Body=b"x", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert code(e) == "NoSuchKey"
    assert status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="missing")
    assert status(e) == 404


def _upload(s3, bucket, key, body):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=body)
    return up["UploadId"], [{"PartNumber": 1, "ETag": part["ETag"]}]


def test_complete_multipart_upload_if_none_match(s3, bucket):
    upload_id, parts = _upload(s3, bucket, "new", b"a" * 1000)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="new", UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
    )
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"a" * 1000

    upload_id, parts = _upload(s3, bucket, "new", b"b" * 1000)
    try:
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="new", UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        assert code(e) == "PreconditionFailed"
        assert status(e) == 412
        # The refused completion left the upload in place and the object unchanged.
        assert len(s3.list_parts(Bucket=bucket, Key="new", UploadId=upload_id)["Parts"]) == 1
        assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == b"a" * 1000
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="new", UploadId=upload_id)


def test_concurrent_create_only_puts_have_one_winner(grid, bucket):
    s3 = grid.client()
    per_object = chunks_of_one_object(grid, s3, bucket, CHUNKED_BYTES)
    writers = 8
    bodies = [os.urandom(CHUNKED_BYTES) for _ in range(writers)]
    clients = [grid.client(max_pool_connections=2) for _ in range(writers)]
    start = threading.Barrier(writers)
    results = [None] * writers
    before = chunk_files(grid)

    def put(i):
        start.wait()
        try:
            clients[i].put_object(Bucket=bucket, Key="race", Body=bodies[i], IfNoneMatch="*")
            results[i] = 200
        except ClientError as e:
            results[i] = e.response["ResponseMetadata"]["HTTPStatusCode"]

    threads = [threading.Thread(target=put, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [200] + [412] * (writers - 1), results
    winner = results.index(200)
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == bodies[winner]
    # Only the winner's chunks remain; the losers' were deleted.
    assert settled_new_chunks(grid, before, per_object) == per_object


def test_copy_object_destination_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="taken", Body=b"taken")
    # If-None-Match: * copies only onto a free key.
    s3.copy_object(Bucket=bucket, Key="free", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="free")["Body"].read() == b"source"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert code(e) == "PreconditionFailed" and status(e) == 412
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"taken"
    # If-Match compares the destination's current ETag.
    etag = s3.head_object(Bucket=bucket, Key="taken")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"},
            IfMatch='"0123456789abcdef0123456789abcdef"',
        )
    assert code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"taken"
    s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"}, IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"source"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="missing", CopySource={"Bucket": bucket, "Key": "src"}, IfMatch=etag)
    assert code(e) == "NoSuchKey" and status(e) == 404
