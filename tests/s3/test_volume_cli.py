"""`oxio volume rebuild | scrub --repair | drain | repair-missing` run as an operator
runs them, against their own `oxiod dev` grid of eight rawx (EC 4+2 needs a seventh
rawx to rebuild a lost fragment on): JSON summaries, the data afterwards, and exit
status 4 when some chunks could not be done."""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import Grid, free_port_base
from test_cli import OXIO, base_env

RAWX = 8
# Chunks made garbage by a delete are removed by the directory's purge, every second.
PURGE_DEADLINE_S = 30
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def grid8():
    data = tempfile.mkdtemp(prefix="oxio-volcli-")
    g = Grid(data=data, port_base=free_port_base(rawx=RAWX), rawx=RAWX).start()
    yield g
    g.stop()
    shutil.rmtree(data, ignore_errors=True)


def run(g, *args, code=0):
    env = dict(base_env(), OXIO_CONSCIENCE=g.env["OXIO_CONSCIENCE"], OXIO_DIRECTORY=g.env["OXIO_DIRECTORY"])
    r = subprocess.run([OXIO, *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    assert "panicked" not in r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def volume(g, rawx_id):
    return os.path.join(g.data, "rawx", f"vol{rawx_id.split('-')[1]}")


def chunk_files(g, rawx_id):
    return [p for p in glob.glob(os.path.join(volume(g, rawx_id), "*", "*")) if not p.endswith(".pending")]


def chunk_file(g, rawx_id, chunk_id):
    cid = chunk_id.upper()
    return os.path.join(volume(g, rawx_id), cid[:3], cid)


def locate(g, bucket, key, check=False):
    args = ["object", "locate", bucket, key] + (["--check"] if check else [])
    return run(g, *args)[0]


def assert_whole(g, bucket, key):
    states = [c["state"] for c in locate(g, bucket, key, check=True)]
    assert states and set(states) == {"ok"}, (key, states)


def put_objects(s3, bucket, n, size=MIB):
    objects = {f"o{i}": os.urandom(size) for i in range(n)}
    for k, v in objects.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    return objects


def test_rebuild_restores_a_lost_volume_and_exits_4_when_it_cannot(grid8):
    s3 = grid8.client()
    bucket = "rebuild-cli"
    s3.create_bucket(Bucket=bucket)
    objects = put_objects(s3, bucket, 4)
    objects["small"] = os.urandom(100 * 1024)  # THREECOPIES under the size rule
    s3.put_object(Bucket=bucket, Key="small", Body=objects["small"])
    chunks = {k: locate(grid8, bucket, k) for k in objects}
    victim = chunks["o0"][0]["rawx_id"]
    on_victim = [k for k, cs in chunks.items() if any(c["rawx_id"] == victim for c in cs)]
    # The volume is lost: every chunk file of it gone.
    lost = chunk_files(grid8, victim)
    assert lost
    for p in lost:
        os.remove(p)
    # o0 also loses two more fragments: three of six, past what EC 4+2 survives.
    others = [c for c in chunks["o0"] if c["rawx_id"] != victim][:2]
    for c in others:
        os.remove(chunk_file(grid8, c["rawx_id"], c["chunk_id"]))

    report, err = run(grid8, "volume", "rebuild", victim, "--no-progress", code=4)
    assert report["rawx_id"] == victim and report["total"] == len(lost)
    assert report["failed"] == 1 and report["rebuilt"] == len(lost) - 1, report
    assert [f["key"] for f in report["failures"]] == ["o0"]
    assert "could not" in err or "failed" in err, err
    for k in on_victim:
        if k != "o0":
            assert_whole(grid8, bucket, k)
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == objects[k]
            assert all(c["rawx_id"] != victim for c in locate(grid8, bucket, k))

    # Once the unrecoverable object is gone, a second run has nothing left to do.
    s3.delete_object(Bucket=bucket, Key="o0")
    report, _ = run(grid8, "volume", "rebuild", victim, "--no-progress")
    assert (report["total"], report["failed"]) == (0, 0), report
    for k in objects:
        if k != "o0":
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == objects[k]


def flip_byte(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))


def test_scrub_repair_regenerates_a_corrupt_chunk(grid8):
    s3 = grid8.client()
    bucket = "scrub-cli"
    s3.create_bucket(Bucket=bucket)
    objects = put_objects(s3, bucket, 1)
    target = locate(grid8, bucket, "o0")[1]
    flip_byte(chunk_file(grid8, target["rawx_id"], target["chunk_id"]))
    doc, _ = run(
        grid8, "volume", "scrub", target["rawx_id"], "--wait", "--repair", "--no-progress", "--timeout", "120s"
    )
    assert doc["rawx_id"] == target["rawx_id"]
    assert target["chunk_id"].upper() in [c["chunk_id"].upper() for c in doc["corrupt"]], doc
    repair = doc["repair"]
    assert repair["failed"] == 0 and repair["done"] >= 1, repair
    assert repair["deleted"] >= 1
    assert_whole(grid8, bucket, "o0")
    assert target["chunk_id"] not in [c["chunk_id"] for c in locate(grid8, bucket, "o0")]
    assert s3.get_object(Bucket=bucket, Key="o0")["Body"].read() == objects["o0"]


def test_drain_empties_a_live_rawx(grid8):
    s3 = grid8.client()
    bucket = "drain-cli"
    s3.create_bucket(Bucket=bucket)
    objects = put_objects(s3, bucket, 3)
    drained = locate(grid8, bucket, "o0")[0]["rawx_id"]
    live = {
        chunk_file(grid8, drained, c["chunk_id"])
        for k in objects
        for c in locate(grid8, bucket, k)
        if c["rawx_id"] == drained
    }
    assert live and live <= set(chunk_files(grid8, drained))
    try:
        report, _ = run(grid8, "volume", "drain", drained, "--no-progress")
        assert report["failed"] == 0 and report["done"] == report["total"] > 0, report
        assert report["copied"] + report["regenerated"] == report["done"]
        # The drain deletes every chunk it moved before it returns.
        assert live.isdisjoint(chunk_files(grid8, drained))
        # What else the volume held was garbage of earlier tests' deletes, which the
        # directory's purge removes in the background.
        deadline = time.monotonic() + PURGE_DEADLINE_S
        while chunk_files(grid8, drained) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert chunk_files(grid8, drained) == []
        shown, _ = run(grid8, "cluster", "show", drained)
        assert shown["locked"] is True and shown["score"] == 0
        for k, v in objects.items():
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v
            assert_whole(grid8, bucket, k)
    finally:
        # Locked by the drain; the next tests place on every rawx.
        run(grid8, "cluster", "unlock", "rawx", drained)


def test_repair_missing_completes_what_a_put_left_short(grid8):
    s3 = grid8.client()
    bucket = "missing-cli"
    s3.create_bucket(Bucket=bucket)
    # Every rawx but one is locked, so the next put lands on six known rawx, one of
    # which cannot write (its volume folder is replaced by a file): 5 of 6 is a quorum.
    services, _ = run(grid8, "cluster", "list", "rawx")
    ids = sorted(s["id"] for s in services)
    keep = ids[:6]
    broken = keep[0]
    for i in ids[6:]:
        run(grid8, "cluster", "lock", "rawx", i, "--score", "0")
    vol = volume(grid8, broken)
    aside = vol + ".aside"
    os.rename(vol, aside)
    try:
        with open(vol, "w") as f:
            f.write("not a folder")
        data = os.urandom(MIB)
        s3.put_object(Bucket=bucket, Key="short", Body=data)
    finally:
        os.remove(vol)
        os.rename(aside, vol)
        for i in ids[6:]:
            run(grid8, "cluster", "unlock", "rawx", i)
    assert len(locate(grid8, bucket, "short")) == 5
    report, _ = run(grid8, "volume", "repair-missing", "--no-progress")
    assert report["failed"] == 0 and report["done"] >= 1, report
    assert len(locate(grid8, bucket, "short")) == 6
    assert_whole(grid8, bucket, "short")
    assert s3.get_object(Bucket=bucket, Key="short")["Body"].read() == data
    # Nothing is left for a second run.
    report, _ = run(grid8, "volume", "repair-missing", "--no-progress")
    assert (report["total"], report["failed"]) == (0, 0), report
