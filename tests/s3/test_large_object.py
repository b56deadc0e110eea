"""A 4 GiB object through the S3 gateway in one PUT and one GET: bytes intact, and the
server's resident memory bounded by the data path's fixed buffers, not by the object.

The body is generated on the fly (a 1 MiB random block, each MiB stamped with its
index), so the test needs no 4 GiB file and every MiB of the answer is checked for
its place. The figure asserted is the peak resident set (VmHWM) of the `oxiod dev`
process, which runs the gateway, the directory and the six rawx together.
"""

import hashlib
import io
import os
import random
import shutil
import tempfile

import pytest

from conftest import Grid, free_port_base

GIB = 1 << 30
MIB = 1 << 20
SIZE = 4 * GIB
# Peak RSS bound for the whole `oxiod dev` process while moving a 4 GiB object.
RSS_BOUND_MIB = 256


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def vm_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc status")


class Generated(io.RawIOBase):
    """A seekable read-only file of `size` bytes: MiB `i` is `BLOCK` with its first 8
    bytes replaced by `i`."""

    def __init__(self, size, block):
        self.size = size
        self.block = block
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, off, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, min(self.size, base + off))
        return self.pos

    def readinto(self, b):
        n = min(len(b), self.size - self.pos)
        done = 0
        while done < n:
            i, off = divmod(self.pos, MIB)
            take = min(n - done, MIB - off)
            piece = mib(self.block, i)[off : off + take]
            b[done : done + take] = piece
            done += take
            self.pos += take
        return n


def mib(block, i):
    return i.to_bytes(8, "little") + block[8:]


@pytest.fixture(scope="module")
def big_grid():
    data = tempfile.mkdtemp(prefix="oxio-large-")
    g = Grid(data=data, port_base=free_port_base()).start()
    yield g
    g.stop()
    shutil.rmtree(data, ignore_errors=True)


def test_4gib_put_and_get_with_bounded_memory(big_grid):
    pid = big_grid.proc.pid
    s3 = big_grid.client()
    s3.create_bucket(Bucket="large")
    # Warm the data path with a small chunked object first.
    s3.put_object(Bucket="large", Key="warm", Body=os.urandom(8 * MIB))
    assert len(s3.get_object(Bucket="large", Key="warm")["Body"].read()) == 8 * MIB
    before = vm_hwm_mib(pid)

    block = random.Random(4).randbytes(MIB)
    expected = hashlib.md5()
    for i in range(SIZE // MIB):
        expected.update(mib(block, i))
    r = s3.put_object(Bucket="large", Key="big", Body=Generated(SIZE, block), ContentLength=SIZE)
    after_put = vm_hwm_mib(pid)
    assert r["ETag"].strip('"') == expected.hexdigest()
    head = s3.head_object(Bucket="large", Key="big")
    assert head["ContentLength"] == SIZE

    body = s3.get_object(Bucket="large", Key="big")["Body"]
    got = hashlib.md5()
    pos = 0
    pending = b""
    for piece in body.iter_chunks(MIB):
        pending += piece
        while len(pending) >= MIB:
            i = pos // MIB
            assert pending[:MIB] == mib(block, i), f"MiB {i} differs"
            got.update(pending[:MIB])
            pending = pending[MIB:]
            pos += MIB
    assert pending == b"" and pos == SIZE, f"read {pos + len(pending)} of {SIZE} bytes"
    assert got.hexdigest() == expected.hexdigest()
    after_get = vm_hwm_mib(pid)
    print(
        f"\noxiod dev peak RSS: {before:.0f} MiB before, {after_put:.0f} MiB after a 4 GiB PUT, "
        f"{after_get:.0f} MiB after its GET (now {vm_rss_mib(pid):.0f} MiB); bound {RSS_BOUND_MIB} MiB"
    )
    assert after_get < RSS_BOUND_MIB, f"peak RSS {after_get:.0f} MiB above {RSS_BOUND_MIB} MiB"
    s3.delete_object(Bucket="large", Key="big")
