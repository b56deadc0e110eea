"""The `oxio` admin CLI reads a running grid: services, containers, objects."""

import json
import os
import subprocess

OXIO = os.environ.get("OXIO") or os.path.join(os.path.dirname(os.environ.get("OXIOD", "oxiod")), "oxio")


def oxio(grid, *args, check=True):
    env = dict(os.environ, OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"], OXIO_DIRECTORY=grid.env["OXIO_DIRECTORY"])
    r = subprocess.run([OXIO, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"oxio {' '.join(args)} failed: {r.stderr}")
    return r


def test_cluster_list_shows_every_service(grid):
    services = json.loads(oxio(grid, "cluster", "list", "--format", "json").stdout)
    rawx = [s for s in services if s["type"] == "rawx"]
    assert sorted(s["id"] for s in rawx) == [f"rawx-{i}" for i in range(6)]
    assert sorted(s["location"] for s in rawx) == [f"local.rack1.host1.vol{i}" for i in range(6)]
    for s in rawx:
        assert s["up"] is True and s["locked"] is False and 0 < s["score"] <= 100
        assert s["addr"].startswith("127.0.0.1:")
    assert any(s["type"] == "directory" for s in services)
    table = oxio(grid, "cluster", "list", "rawx").stdout.splitlines()
    assert table[0].split() == ["TYPE", "ID", "ADDR", "LOCATION", "SCORE", "UP", "LOCKED"]
    assert len(table) == 7


def test_container_and_object_list(grid, s3, bucket):
    for k in ["x/1", "x/2", "y"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"data" * (10000 if k == "y" else 1))
    containers = json.loads(oxio(grid, "container", "list", "--format", "json").stdout)
    assert bucket in [c["name"] for c in containers]
    objects = json.loads(oxio(grid, "object", "list", bucket, "--format", "json").stdout)
    assert [o["key"] for o in objects] == ["x/1", "x/2", "y"]
    assert [o["size"] for o in objects] == [4, 4, 40000]
    # 40,000 bytes: chunked but under the 256 KiB size rule.
    assert objects[2]["policy"] == "THREECOPIES" and objects[0]["policy"] == "INLINE"
    pref = json.loads(oxio(grid, "object", "list", bucket, "--prefix", "x/", "--format", "json").stdout)
    assert [o["key"] for o in pref] == ["x/1", "x/2"]


def test_cli_errors_are_clear(grid):
    r = oxio(grid, "object", "list", "no-such-container", check=False)
    assert r.returncode == 1
    assert "does not exist" in r.stderr and "panicked" not in r.stderr
    env = dict(os.environ, OXIO_CONSCIENCE="127.0.0.1:1")
    r = subprocess.run([OXIO, "cluster", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is the grid running" in r.stderr
