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
