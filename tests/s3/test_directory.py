"""A grid whose directory runs three nodes (`oxiod dev --directory-replicas 3`): S3
works, every Raft group has three members and one leader, and a restart keeps
everything."""

import hashlib
import json
import os
import signal
import subprocess
import time

from conftest import OXIOD, Grid, free_port_base

OXIO = os.path.join(os.path.dirname(OXIOD), "oxio") if os.path.dirname(OXIOD) else "oxio"
REPLICAS = 3
STATUS_DEADLINE_S = 60


def replicated_grid(data, base):
    """`oxiod dev` with three directory nodes (ports base+1..base+3, which
    `free_port_base` checks too)."""
    return Grid(data=data, port_base=base, extra_args=["--directory-replicas", str(REPLICAS)])


def oxio(g, *args):
    env = dict(os.environ)
    env["OXIO_CONSCIENCE"] = g.env["OXIO_CONSCIENCE"]
    env["OXIO_DIRECTORY"] = g.env["OXIO_DIRECTORY"]
    return subprocess.run(
        [OXIO, *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def directory_status(g):
    out = oxio(g, "directory", "status")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for_healthy_status(g):
    """Polls `oxio directory status` until every group of every node has three
    members and each group has exactly one leader; returns the rows."""
    deadline = time.monotonic() + STATUS_DEADLINE_S
    while True:
        rows = directory_status(g)
        problems = []
        if any(r["error"] for r in rows):
            problems.append("a node did not answer")
        nodes = {r["node_id"] for r in rows}
        if len(nodes) != REPLICAS:
            problems.append(f"nodes {nodes}")
        groups = {}
        for r in rows:
            if len(r["members"]) != REPLICAS:
                problems.append(f"group {r['group']} on {r['node']} has {r['members']}")
            groups.setdefault(r["group"], []).append(r)
        for gid, rs in groups.items():
            leaders = [r for r in rs if r["is_leader"]]
            if len(rs) != REPLICAS or len(leaders) != 1:
                problems.append(f"group {gid}: {len(rs)} replicas, {len(leaders)} leaders")
        if not problems and groups:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"directory not healthy: {problems[:5]}")
        time.sleep(0.2)


def test_replicated_directory_serves_s3_and_survives_restart(scratch):
    data = scratch
    base = free_port_base()
    g = replicated_grid(data, base).start()
    objects = {f"d/{n}": os.urandom(n) for n in [0, 10, 40000, 1_500_000]}
    try:
        assert len(g.env["OXIO_DIRECTORY"].split(",")) == REPLICAS
        assert os.path.isdir(os.path.join(data, "directory", "node3", "db"))
        s3 = g.client()
        s3.create_bucket(Bucket="replicated")
        for k, v in objects.items():
            s3.put_object(Bucket="replicated", Key=k, Body=v)
        for k, v in objects.items():
            got = s3.get_object(Bucket="replicated", Key=k)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(v).digest(), k
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="replicated")["Contents"]]
        assert keys == sorted(objects)

        rows = wait_for_healthy_status(g)
        kinds = {r["kind"] for r in rows}
        assert kinds == {"meta0", "meta1", "meta2"}
        lags = [r["lag"] for r in rows if r["lag"] is not None]
        assert lags and all(lag >= 0 for lag in lags)
        # What the nodes tell the conscience agrees: each hosts all 9 groups, each
        # group is led by exactly one of them, and no node lags once settled.
        deadline = time.monotonic() + STATUS_DEADLINE_S
        while True:
            out = oxio(g, "cluster", "list", "directory")
            assert out.returncode == 0, out.stderr
            stats = [d["stats"] for d in json.loads(out.stdout)]
            hosted = [st.get("groups_hosted") for st in stats]
            led = sum(st.get("groups_led", 0) for st in stats)
            lag = max((st.get("apply_lag", 1) for st in stats), default=1)
            if len(stats) == REPLICAS and hosted == [9] * REPLICAS and led == 9 and lag == 0:
                break
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)

        # Bootstrapping again (nodes found through the conscience) changes nothing.
        out = oxio(g, "directory", "bootstrap", "--replicas", "3")
        assert out.returncode == 0, out.stderr
        groups = json.loads(out.stdout)
        assert len(groups) == 1 + 4 + 4
        assert all(r["existed"] and len(r["members"]) == REPLICAS for r in groups)
        # Growing to six meta2 groups adds two, led and recorded in meta0; again: none.
        out = oxio(g, "directory", "grow", "--meta2-groups", "6")
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        meta2 = [r for r in rows if r["kind"] == "meta2"]
        assert len(meta2) == 6 and sum(r["added"] for r in rows) == 2, rows
        assert all(len(r["members"]) == REPLICAS for r in meta2)
        out = oxio(g, "directory", "grow", "--meta2-groups", "6")
        assert out.returncode == 0 and not any(r["added"] for r in json.loads(out.stdout))
        sizes = [r["size_bytes"] for r in directory_status(g) if r["size_bytes"] is not None]
        assert sizes and all(isinstance(s, int) and s >= 0 for s in sizes)
        # More replicas than nodes is refused with the reason.
        out = oxio(g, "directory", "bootstrap", "--replicas", "4")
        assert out.returncode == 1
        assert "need 4 directory nodes up, found 3" in out.stderr, out.stderr
        creds = (g.env["AWS_ACCESS_KEY_ID"], g.env["AWS_SECRET_ACCESS_KEY"])
    finally:
        g.stop(signal.SIGINT)
    assert g.proc.returncode == 0, g.tail_log()

    g2 = replicated_grid(data, base).start()
    try:
        assert (g2.env["AWS_ACCESS_KEY_ID"], g2.env["AWS_SECRET_ACCESS_KEY"]) == creds
        s3 = g2.client()
        assert "replicated" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        for k, v in objects.items():
            got = s3.get_object(Bucket="replicated", Key=k)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(v).digest(), k
        s3.put_object(Bucket="replicated", Key="after-restart", Body=b"x")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="replicated")["Contents"]]
        assert keys == sorted(list(objects) + ["after-restart"])
        wait_for_healthy_status(g2)
    finally:
        g2.stop()
