"""`oxio cluster` administration against a real grid: lock, unlock, unlockall, show, wait.

Locks change what the shared `grid` fixture places, so every test that locks restores
the grid (`unlockall`) when it ends, pass or fail.
"""

import json
import os
import re
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Grid, free_port_base

OXIO = os.environ.get("OXIO") or os.path.join(os.path.dirname(os.environ.get("OXIOD", "oxiod")), "oxio")
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WAIT_TIMEOUT = 3
MIB = 1024 * 1024
CHUNK_NAME = re.compile(r"^[0-9A-Fa-f]{64}$")


def oxio(grid, *args, check=True, env=None):
    if env is None:
        env = dict(os.environ, OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"], OXIO_DIRECTORY=grid.env["OXIO_DIRECTORY"])
    r = subprocess.run([OXIO, *args], env=env, capture_output=True, text=True, timeout=90)
    if check and r.returncode != 0:
        raise AssertionError(f"oxio {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


def oxio_json(grid, *args):
    return json.loads(oxio(grid, *args, "--format", "json").stdout)


def rawx_states(grid):
    return {s["id"]: s for s in oxio_json(grid, "cluster", "list", "rawx")}


def chunk_files(grid, i):
    """Complete chunk files of rawx `i` (named by 64 hex digits; `.pending` excluded)."""
    vol = os.path.join(grid.data, "rawx", f"vol{i}")
    count = 0
    for _root, _dirs, files in os.walk(vol):
        count += sum(1 for f in files if CHUNK_NAME.match(f))
    return count


@pytest.fixture
def restore_locks(grid):
    yield
    oxio(grid, "cluster", "unlockall")
    oxio(grid, "cluster", "wait", "--score", "1", "--timeout", "30s", "rawx")


def test_help_documents_exit_codes():
    r = subprocess.run([OXIO, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "Exit codes" in r.stdout and "cluster wait" in r.stdout
    r = subprocess.run([OXIO, "cluster", "lock", "rawx"], capture_output=True, text=True, timeout=30)
    assert r.returncode == EXIT_USAGE


def test_lock_show_list_unlock(grid, restore_locks):
    rows = oxio_json(grid, "cluster", "lock", "rawx", "rawx-5")
    assert rows == [rows[0]] and rows[0]["id"] == "rawx-5"
    assert rows[0]["locked"] is True and rows[0]["score"] == 0

    show = oxio_json(grid, "cluster", "show", "rawx-5")
    assert show["type"] == "rawx" and show["id"] == "rawx-5"
    assert show["locked"] is True and show["score"] == 0 and show["up"] is True
    assert show["location"] == "local.rack1.host1.vol5"
    assert show["addr"].startswith("127.0.0.1:")
    assert {"cpu", "io", "space"} <= set(show["stats"])
    assert 0 <= show["last_seen_ms_ago"] < 10_000
    table = oxio(grid, "cluster", "show", "rawx-5").stdout
    assert re.search(r"^stats\.space\s+\S+", table, re.M), table
    assert re.search(r"^locked\s+true$", table, re.M), table

    states = rawx_states(grid)
    assert states["rawx-5"]["locked"] is True and states["rawx-5"]["score"] == 0
    assert all(not s["locked"] for i, s in states.items() if i != "rawx-5")

    rows = oxio_json(grid, "cluster", "lock", "rawx", "rawx-5", "--score", "42")
    assert rows[0]["score"] == 42 and rows[0]["locked"] is True

    rows = oxio_json(grid, "cluster", "unlock", "rawx", "rawx-5")
    assert rows[0]["locked"] is False
    oxio(grid, "cluster", "wait", "--score", "1", "--timeout", "30s", "rawx")
    show = oxio_json(grid, "cluster", "show", "rawx-5", "--type", "rawx")
    assert show["locked"] is False and show["score"] > 0

    r = oxio(grid, "cluster", "show", "no-such-service", check=False)
    assert r.returncode == EXIT_ERROR and "no-such-service" in r.stderr
    r = oxio(grid, "cluster", "lock", "rawx", "rawx-0", "--score", "101", check=False)
    assert r.returncode == EXIT_USAGE


def test_locked_rawx_leaves_too_few_for_ec(grid, s3, bucket, restore_locks):
    """EC 4+2 needs 6 distinct rawx: with one of 6 locked, chunked PUTs are refused."""
    before = os.urandom(MIB)
    s3.put_object(Bucket=bucket, Key="before", Body=before)
    oxio(grid, "cluster", "lock", "rawx", "rawx-0")

    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="refused", Body=os.urandom(MIB))
    assert err.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # The message says why and what to do.
    message = err.value.response["Error"]["Message"]
    assert "6 needed, 5 eligible; 6 registered: 1 locked at score 0 (`oxio cluster unlock`)" in message, message
    # Inline objects need no rawx; data written before (with a fragment on the locked
    # rawx) still reads back.
    s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 100)
    assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == before

    oxio(grid, "cluster", "unlock", "rawx", "rawx-0")
    oxio(grid, "cluster", "wait", "--score", "1", "--timeout", "30s", "rawx")
    after = os.urandom(MIB)
    s3.put_object(Bucket=bucket, Key="after", Body=after)
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == after


def test_unlockall(grid, restore_locks):
    oxio(grid, "cluster", "lock", "rawx", "rawx-1", "--score", "10")
    oxio(grid, "cluster", "lock", "rawx", "rawx-2")
    unlocked = oxio_json(grid, "cluster", "unlockall", "rawx")
    assert sorted(u["id"] for u in unlocked) == ["rawx-1", "rawx-2"]
    assert not any(s["locked"] for s in rawx_states(grid).values())

    oxio(grid, "cluster", "lock", "rawx", "rawx-3", "--score", "5")
    unlocked = oxio_json(grid, "cluster", "unlockall")
    assert [(u["type"], u["id"]) for u in unlocked] == [("rawx", "rawx-3")]
    assert oxio_json(grid, "cluster", "unlockall") == []
    assert not any(s["locked"] for s in rawx_states(grid).values())


def test_wait(grid):
    t0 = time.monotonic()
    ready = oxio_json(grid, "cluster", "wait", "rawx", "--score", "1", "--timeout", "30s")
    assert time.monotonic() - t0 < 10
    assert sorted(s["id"] for s in ready) == [f"rawx-{i}" for i in range(6)]

    t0 = time.monotonic()
    r = oxio(grid, "cluster", "wait", "--score", "101", "--timeout", "2s", "rawx", check=False)
    elapsed = time.monotonic() - t0
    assert r.returncode == EXIT_WAIT_TIMEOUT, r.stderr
    assert 1.5 < elapsed < 15
    assert "timed out" in r.stderr
    for i in range(6):
        assert f"rawx/rawx-{i} (score" in r.stderr

    r = oxio(grid, "cluster", "wait", "--timeout", "1s", "rawx", "no-such-type", check=False)
    assert r.returncode == EXIT_WAIT_TIMEOUT
    assert "no-such-type (no service registered)" in r.stderr and "rawx/" not in r.stderr

    r = oxio(grid, "cluster", "wait", check=False)
    assert r.returncode == EXIT_USAGE
    r = oxio(grid, "cluster", "wait", "--timeout", "soon", "rawx", check=False)
    assert r.returncode == EXIT_USAGE

    env = dict(os.environ, OXIO_CONSCIENCE="127.0.0.1:1")
    r = oxio(grid, "cluster", "wait", "--timeout", "1s", "rawx", check=False, env=env)
    assert r.returncode == EXIT_WAIT_TIMEOUT and "unreachable" in r.stderr


def test_locked_rawx_gets_no_new_chunk(scratch):
    """With 7 rawx, one locked at 0 leaves the 6 that EC 4+2 needs: PUTs succeed and
    no chunk file lands on the locked one."""
    data = scratch
    g = Grid(data=data, port_base=free_port_base(7), rawx=7).start()
    try:
        s3 = g.client()
        s3.create_bucket(Bucket="drain")
        states = rawx_states(g)
        assert len(states) == 7
        oxio(g, "cluster", "lock", "rawx", "rawx-6")
        locked_before = chunk_files(g, 6)
        others_before = sum(chunk_files(g, i) for i in range(6))
        bodies = {f"obj-{n}": os.urandom(MIB) for n in range(8)}
        for key, body in bodies.items():
            s3.put_object(Bucket="drain", Key=key, Body=body)
        assert chunk_files(g, 6) == locked_before
        # Each 1 MiB object is one EC 4+2 metachunk: 6 fragments on the 6 others.
        assert sum(chunk_files(g, i) for i in range(6)) - others_before >= 6 * len(bodies)
        for key, body in bodies.items():
            assert s3.get_object(Bucket="drain", Key=key)["Body"].read() == body

        oxio(g, "cluster", "unlock", "rawx", "rawx-6")
        oxio(g, "cluster", "wait", "--score", "1", "--timeout", "30s", "rawx")
        assert rawx_states(g)["rawx-6"]["locked"] is False
    finally:
        g.stop()


def test_cli_uses_any_live_conscience(grid):
    """With several conscience addresses, an unreachable one is skipped."""
    live = grid.env["OXIO_CONSCIENCE"]
    dead = f"127.0.0.1:{free_port_base()}"
    env = dict(os.environ, OXIO_DIRECTORY=grid.env["OXIO_DIRECTORY"])
    r = oxio(grid, "--conscience", f"{dead},{live}", "cluster", "list", "rawx", "--format", "json", env=env)
    assert len(json.loads(r.stdout)) == 6
    r = oxio(grid, "--conscience", dead, "cluster", "list", "rawx", env=env, check=False)
    assert r.returncode == EXIT_ERROR
    assert dead in r.stderr, r.stderr


def test_directory_reports_its_groups(grid):
    """Directory nodes send type-specific figures with their heartbeats (every second;
    the first one may predate the bootstrap)."""
    deadline = time.monotonic() + 30
    while True:
        stats = oxio_json(grid, "cluster", "show", "directory-1")["stats"]
        # meta0 + 4 meta1 + 4 meta2 in a dev grid; an idle node has applied its log.
        if stats.get("groups_hosted", 0) >= 9 and stats.get("apply_lag") == 0:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    assert stats["groups_led"] == stats["groups_hosted"], "a single node leads every group"
    assert {"cpu", "io", "space"} <= set(stats)
