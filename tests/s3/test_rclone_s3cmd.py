"""rclone and s3cmd, unmodified, against a real grid: rclone copy / check / sync (with
a deletion) of a small tree, s3cmd mb / put / get / ls / del (and a multipart put),
bytes compared after download. Each client gets a generated config file (path-style
addressing, plain http) in a temporary folder."""

import filecmp
import os
import random
import shutil
import subprocess
import sys

import pytest

RCLONE = shutil.which("rclone")
S3CMD = shutil.which("s3cmd") or shutil.which("s3cmd", path=os.path.dirname(sys.executable))
CMD_TIMEOUT_S = 120


def make_tree(root):
    """A small tree: inline-sized and chunked files, nested folders, odd names."""
    files = {
        "a.txt": b"hello rclone\n",
        "empty": b"",
        "dir/b.bin": os.urandom(100 * 1024),
        "dir/sub/c with space.bin": os.urandom(300 * 1024),
        "dir/sub/d+plus.txt": b"d" * 5000,
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return files


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)

    def walk(c):
        if c.left_only or c.right_only or c.diff_files or c.funny_files:
            return False
        # dircmp compares shallowly: compare contents too.
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        return not mismatch and not errors and all(walk(s) for s in c.subdirs.values())

    return walk(cmp)


# ---------------------------------------------------------------------- rclone


@pytest.fixture
def rclone(grid, tmp_path):
    if RCLONE is None:
        pytest.skip("rclone is not installed: sudo apt-get install -y rclone")
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[oxio]\n"
        "type = s3\n"
        "provider = Other\n"
        "env_auth = false\n"
        f"access_key_id = {grid.env['AWS_ACCESS_KEY_ID']}\n"
        f"secret_access_key = {grid.env['AWS_SECRET_ACCESS_KEY']}\n"
        f"region = {grid.env['AWS_REGION']}\n"
        f"endpoint = {grid.endpoint}\n"
        "force_path_style = true\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("RCLONE_")}
    env["RCLONE_CONFIG"] = str(conf)
    env["HOME"] = str(tmp_path)

    def run(*args, check=True):
        r = subprocess.run(
            [RCLONE, "--retries", "1", "--low-level-retries", "1", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )
        if check:
            assert r.returncode == 0, f"rclone {' '.join(args)} exited {r.returncode}: {r.stderr[-3000:]}"
        return r

    return run


def keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_rclone_copy_check_sync(rclone, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    remote = f"oxio:{bucket}/tree"
    rclone("copy", str(src), remote)
    assert keys(s3, bucket) == sorted(f"tree/{k}" for k in files)
    assert s3.get_object(Bucket=bucket, Key="tree/dir/sub/c with space.bin")["Body"].read() == files[
        "dir/sub/c with space.bin"
    ]
    rclone("check", str(src), remote)

    # Change the tree: one file removed, one changed, one added; sync mirrors it.
    os.remove(src / "dir" / "b.bin")
    (src / "a.txt").write_bytes(b"changed content\n")
    (src / "new.bin").write_bytes(os.urandom(64 * 1024))
    # check now sees the differences.
    assert rclone("check", str(src), remote, check=False).returncode != 0
    rclone("sync", str(src), remote)
    assert "tree/dir/b.bin" not in keys(s3, bucket)
    assert "tree/new.bin" in keys(s3, bucket)
    rclone("check", str(src), remote)

    dst = tmp_path / "dst"
    rclone("copy", remote, str(dst))
    # rclone does not create empty folders from object stores; the tree has none.
    assert same_tree(src, dst)


# ----------------------------------------------------------------------- s3cmd


@pytest.fixture
def s3cmd(grid, tmp_path):
    if S3CMD is None:
        pytest.skip("s3cmd is not installed: .venv/bin/pip install s3cmd==2.4.0 (tests/requirements.txt)")
    host = grid.endpoint.split("://", 1)[1]
    conf = tmp_path / "s3cfg"
    conf.write_text(
        "[default]\n"
        f"access_key = {grid.env['AWS_ACCESS_KEY_ID']}\n"
        f"secret_key = {grid.env['AWS_SECRET_ACCESS_KEY']}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        f"bucket_location = {grid.env['AWS_REGION']}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "multipart_chunk_size_mb = 5\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)

    def run(*args):
        r = subprocess.run(
            [sys.executable, S3CMD, "-c", str(conf), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
        )
        assert r.returncode == 0, f"s3cmd {' '.join(args)} exited {r.returncode}: {r.stdout[-2000:]} {r.stderr[-3000:]}"
        return r.stdout

    return run


def test_s3cmd_mb_put_get_ls_del(s3cmd, s3, tmp_path):
    name = f"t-s3cmd-{random.randrange(1 << 30):x}"
    small = tmp_path / "small.txt"
    small.write_bytes(b"s3cmd small object\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024 + 17))  # multipart: 5 MiB parts
    s3cmd("mb", f"s3://{name}")
    try:
        s3cmd("put", str(small), f"s3://{name}/dir/small.txt")
        s3cmd("put", str(big), f"s3://{name}/big.bin")
        listing = s3cmd("ls", "--recursive", f"s3://{name}")
        assert f"s3://{name}/dir/small.txt" in listing
        assert f"s3://{name}/big.bin" in listing
        assert f"s3://{name}/dir/" in s3cmd("ls", f"s3://{name}")
        head = s3.head_object(Bucket=name, Key="big.bin")
        assert head["ContentLength"] == big.stat().st_size
        assert head["ETag"].strip('"').endswith("-3")  # it went through multipart
        out_small = tmp_path / "out-small.txt"
        out_big = tmp_path / "out-big.bin"
        s3cmd("get", f"s3://{name}/dir/small.txt", str(out_small))
        s3cmd("get", f"s3://{name}/big.bin", str(out_big))
        assert out_small.read_bytes() == small.read_bytes()
        assert filecmp.cmp(out_big, big, shallow=False)
        s3cmd("del", f"s3://{name}/dir/small.txt")
        s3cmd("del", f"s3://{name}/big.bin")
        assert s3.list_objects_v2(Bucket=name).get("KeyCount") == 0
        assert f"s3://{name}/" not in s3cmd("ls", "--recursive", f"s3://{name}")
    finally:
        for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=o["Key"])
        for u in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
        s3.delete_bucket(Bucket=name)
