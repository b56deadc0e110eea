"""The aws cli as a user runs it: mb, cp up and down, ls with prefixes, rm, rb."""

import filecmp
import os
import subprocess

import pytest

SIZES = [0, 1, 4096, 31 * 1024, 33 * 1024, 5 * 1024 * 1024, 100 * 1024 * 1024]


def aws(env, *args, check=True):
    r = subprocess.run(["aws", *args], env=env, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


@pytest.fixture
def cli(grid, tmp_path):
    return grid.cli_env(str(tmp_path))


def test_cp_round_trip_and_ls(cli, tmp_path):
    b = "s3://awscli-bucket"
    aws(cli, "s3", "mb", b)
    up, down = tmp_path / "up", tmp_path / "down"
    up.mkdir()
    down.mkdir()
    for size in SIZES:
        src = up / f"file-{size}.bin"
        with open(src, "wb") as f:
            left = size
            while left:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
        aws(cli, "s3", "cp", str(src), f"{b}/data/file-{size}.bin")
    aws(cli, "s3", "cp", str(up / "file-1.bin"), f"{b}/other/one.bin")
    for size in SIZES:
        dst = down / f"file-{size}.bin"
        aws(cli, "s3", "cp", f"{b}/data/file-{size}.bin", str(dst))
        assert filecmp.cmp(up / f"file-{size}.bin", dst, shallow=False), f"size {size} differs"
        assert dst.stat().st_size == size

    top = aws(cli, "s3", "ls", f"{b}/").stdout
    assert "PRE data/" in top and "PRE other/" in top
    listed = aws(cli, "s3", "ls", f"{b}/data/").stdout
    for size in SIZES:
        assert f"file-{size}.bin" in listed
    assert "one.bin" not in listed
    rec = aws(cli, "s3", "ls", "--recursive", f"{b}/").stdout
    assert "other/one.bin" in rec and "data/file-104857600.bin" in rec
    buckets = aws(cli, "s3", "ls").stdout
    assert "awscli-bucket" in buckets

    # rb refuses a non-empty bucket; rm then rb works.
    r = aws(cli, "s3", "rb", b, check=False)
    assert r.returncode != 0 and "BucketNotEmpty" in r.stderr
    aws(cli, "s3", "rm", f"{b}/other/one.bin")
    aws(cli, "s3", "rm", "--recursive", f"{b}/data/")
    assert aws(cli, "s3", "ls", "--recursive", f"{b}/").stdout.strip() == ""
    aws(cli, "s3", "rb", b)
    assert "awscli-bucket" not in aws(cli, "s3", "ls").stdout


def test_cp_multipart_with_default_thresholds(cli, tmp_path):
    """200 MiB with the aws cli's default settings: uploaded in 8 MiB parts."""
    b = "s3://awscli-multipart"
    aws(cli, "s3", "mb", b)
    src, dst = tmp_path / "big.bin", tmp_path / "back.bin"
    with open(src, "wb") as f:
        for _ in range(25):
            f.write(os.urandom(8 << 20))
    aws(cli, "s3", "cp", str(src), f"{b}/big.bin")
    head = aws(cli, "s3api", "head-object", "--bucket", "awscli-multipart", "--key", "big.bin").stdout
    assert '-25\\"' in head, head
    aws(cli, "s3", "cp", f"{b}/big.bin", str(dst))
    assert filecmp.cmp(src, dst, shallow=False)
    aws(cli, "s3", "rm", f"{b}/big.bin")
    aws(cli, "s3", "rb", b)


def tree(root):
    """Relative path → bytes of every file under `root`."""
    out = {}
    for d, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def write_tree(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_sync_tree_up_and_back_with_delete(cli, tmp_path):
    b = "s3://awscli-sync"
    aws(cli, "s3", "mb", b)
    up, down = tmp_path / "up", tmp_path / "down"
    files = {
        "top.txt": b"top level\n",
        "empty.bin": b"",
        "a/one.bin": os.urandom(1000),
        "a/b/two.bin": os.urandom(40 * 1024),
        "a/b/c/deep.bin": os.urandom(9 * 1024 * 1024),  # multipart with the defaults
        "x y/space é.txt": "unicode and spaces\n".encode(),
        "gone/soon.txt": b"deleted locally before the second sync\n",
    }
    write_tree(up, files)
    aws(cli, "s3", "sync", str(up), f"{b}/tree")
    listed = aws(cli, "s3", "ls", "--recursive", f"{b}/tree/").stdout
    for rel in files:
        assert f"tree/{rel}" in listed, rel

    # A local deletion, a change and an addition; --delete removes the remote copy.
    os.remove(up / "gone" / "soon.txt")
    os.rmdir(up / "gone")
    files.pop("gone/soon.txt")
    files["a/one.bin"] = os.urandom(2000)
    files["a/new.txt"] = b"added\n"
    write_tree(up, {"a/one.bin": files["a/one.bin"], "a/new.txt": files["a/new.txt"]})
    out = aws(cli, "s3", "sync", "--delete", str(up), f"{b}/tree").stdout
    assert "delete: s3://awscli-sync/tree/gone/soon.txt" in out, out
    listed = aws(cli, "s3", "ls", "--recursive", f"{b}/tree/").stdout
    assert "gone/soon.txt" not in listed

    # Back down into an empty folder: the same tree, byte for byte.
    aws(cli, "s3", "sync", f"{b}/tree", str(down))
    assert tree(down) == files
    # Nothing left to do either way.
    assert aws(cli, "s3", "sync", str(up), f"{b}/tree").stdout.strip() == ""
    assert aws(cli, "s3", "sync", f"{b}/tree", str(down)).stdout.strip() == ""

    # A remote deletion synced down with --delete removes the local file.
    aws(cli, "s3", "rm", f"{b}/tree/a/b/two.bin")
    aws(cli, "s3", "sync", "--delete", f"{b}/tree", str(down))
    files.pop("a/b/two.bin")
    assert tree(down) == files

    aws(cli, "s3", "rm", "--recursive", f"{b}/")
    aws(cli, "s3", "rb", b)


def test_s3api_object_and_bucket_tagging(cli, tmp_path):
    import json

    bucket = "awscli-tagging"
    aws(cli, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "obj.bin"
    src.write_bytes(os.urandom(100 * 1024))
    aws(cli, "s3", "cp", str(src), f"s3://{bucket}/obj.bin")
    aws(
        cli, "s3api", "put-object-tagging", "--bucket", bucket, "--key", "obj.bin",
        "--tagging", json.dumps({"TagSet": [{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "prod"}]}),
    )
    got = json.loads(aws(cli, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "obj.bin").stdout)
    assert {t["Key"]: t["Value"] for t in got["TagSet"]} == {"team": "data", "env": "prod"}
    aws(cli, "s3api", "delete-object-tagging", "--bucket", bucket, "--key", "obj.bin")
    got = json.loads(aws(cli, "s3api", "get-object-tagging", "--bucket", bucket, "--key", "obj.bin").stdout)
    assert got["TagSet"] == []

    r = aws(cli, "s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchTagSet" in r.stderr
    aws(
        cli, "s3api", "put-bucket-tagging", "--bucket", bucket,
        "--tagging", json.dumps({"TagSet": [{"Key": "cost-center", "Value": "42"}]}),
    )
    got = json.loads(aws(cli, "s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert got["TagSet"] == [{"Key": "cost-center", "Value": "42"}]
    aws(cli, "s3api", "delete-bucket-tagging", "--bucket", bucket)
    r = aws(cli, "s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchTagSet" in r.stderr

    # The object is untouched by the tag changes.
    dst = tmp_path / "back.bin"
    aws(cli, "s3", "cp", f"s3://{bucket}/obj.bin", str(dst))
    assert filecmp.cmp(src, dst, shallow=False)
    aws(cli, "s3", "rm", f"s3://{bucket}/obj.bin")
    aws(cli, "s3", "rb", f"s3://{bucket}")


def test_s3api_bucket_acl(cli):
    import json

    bucket = "awscli-acl"
    aws(cli, "s3api", "create-bucket", "--bucket", bucket, "--acl", "public-read")
    got = json.loads(aws(cli, "s3api", "get-bucket-acl", "--bucket", bucket).stdout)
    perms = sorted(g["Permission"] for g in got["Grants"])
    assert perms == ["FULL_CONTROL", "READ"]
    aws(cli, "s3api", "put-bucket-acl", "--bucket", bucket, "--acl", "private")
    got = json.loads(aws(cli, "s3api", "get-bucket-acl", "--bucket", bucket).stdout)
    assert [g["Permission"] for g in got["Grants"]] == ["FULL_CONTROL"]
    aws(cli, "s3", "rb", f"s3://{bucket}")
