"""The comparison half of `scripts/bench-vs-peer.sh`: how `scripts/bench_peer.py` turns
runs into medians, ratios and target verdicts (on made-up runs, so that each verdict
is checked on both sides of its threshold), and `scripts/null_s3.py`, the do-nothing
endpoint whose figure is the 16 MiB GET ceiling, driven by `oxio bench` and boto3."""

import argparse
import importlib.util
import os
import socket
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config

from test_bench import run_bench

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "scripts")


def load_bench_peer():
    spec = importlib.util.spec_from_file_location("bench_peer", os.path.join(SCRIPTS, "bench_peer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bp = load_bench_peer()
OXIO = bp.Target("oxio", "http://127.0.0.1:1", 1, "k", "s")
PEER = bp.Target("seaweedfs", "http://127.0.0.1:2", 2, "k", "s")
NULL = bp.Target("null", "http://127.0.0.1:3", 3, "k", "s")


def args(**over):
    a = argparse.Namespace(
        rounds=3, cases="", small_objects=10, mib_objects=4, big_objects=2, list_keys=100,
        disk_mbps=None, disk_files_mbps=None, chunk_writers=24, oxio_idle_rss_kb=None,
    )
    for k, v in over.items():
        setattr(a, k, v)
    return a


def row(system, case, rnd, ops, mib=None, p99=1.0, pinned=False, **extra):
    r = {
        "system": system, "case": case, "pinned": pinned, "round": rnd, "ops_per_s": ops,
        "mib_per_s": mib, "p99_ms": p99, "server_cpu_s": 1.0, "cpu_window": "measured",
        "peak_rss_kb": 1000, "errors": 0,
    }
    r.update(extra)
    return r


def verdicts(lines):
    """{target name: (measured, verdict)} from the targets table."""
    out = {}
    for line in lines[2:]:
        name, pin, measured, met = [c.strip() for c in line.strip("|").split("|")]
        out[(name, pin)] = (measured, met)
    return out


def find(table, start, pin="none"):
    hits = [v for (name, p), v in table.items() if name.startswith(start) and p == pin]
    assert len(hits) == 1, (start, pin, table)
    return hits[0]


def test_the_ratio_is_the_median_of_the_per_round_ratios_and_failed_runs_count_as_errors():
    a = args(cases="get-4k-c16")
    rows = [
        row("oxio", "get-4k-c16", 0, 100), row("seaweedfs", "get-4k-c16", 0, 50),
        row("oxio", "get-4k-c16", 1, 300), row("seaweedfs", "get-4k-c16", 1, 100),
        row("oxio", "get-4k-c16", 2, 200), row("seaweedfs", "get-4k-c16", 2, 200),
        # A fourth oxio run that failed: left out of the medians, counted as an error.
        row("oxio", "get-4k-c16", 2, 1, failed=True),
    ]
    s = bp.summarize(a, rows, OXIO, PEER, None)[("get-4k-c16", False)]
    assert s["ratio"] == 2.0  # per round 2, 3 and 1
    assert s["oxio"]["ops_per_s"] == 200
    assert s["seaweedfs"]["ops_per_s"] == 100
    assert s["oxio"]["errors"] == 1
    assert s["seaweedfs"]["errors"] == 0


def summary_for(case, oxio, peer, null=None, pinned=False):
    s = {"oxio": oxio, "seaweedfs": peer, "ratio": None}
    if null is not None:
        s["null"] = null
    return {(case, pinned): s}


def figures(mib=None, p99=None):
    return {"ops_per_s": None, "mib_per_s": mib, "p99_ms": p99}


@pytest.mark.parametrize("mine,met", [(900.0, "yes"), (899.0, "**no**")])
def test_big_get_is_held_to_ninety_percent_of_the_ceiling(mine, met):
    summary = summary_for("get-16m-c4", figures(mine), figures(500.0), figures(1000.0))
    t = verdicts(bp.targets(args(cases="get-16m-c4"), summary, OXIO, PEER, NULL, None))
    measured, verdict = find(t, "16 MiB GET ≥ 90 %")
    assert verdict == met, measured
    assert measured == "%s MiB/s = %s %%" % (format(mine, ",.0f"), format(mine / 10, ",.0f"))
    assert find(t, "16 MiB GET ≥ seaweedfs")[1] == "yes"


def test_big_get_without_a_ceiling_has_no_verdict():
    summary = summary_for("get-16m-c4", figures(900.0), figures(500.0))
    t = verdicts(bp.targets(args(cases="get-16m-c4"), summary, OXIO, PEER, None, None))
    assert find(t, "16 MiB GET ≥ 90 %")[1] == "n/a"


@pytest.mark.parametrize("mine,met", [(534.0, "yes"), (533.0, "**no**")])
def test_big_put_is_held_to_eighty_percent_of_the_disk_rate_over_one_and_a_half(mine, met):
    # 1,048.576 MB/s is 1,000 MiB/s: the goal is 0.8 × 1,000 ÷ 1.5 = 533.3 MiB/s.
    a = args(cases="put-16m-c4", disk_mbps=1048.576, disk_files_mbps=2 * 1048.576)
    summary = summary_for("put-16m-c4", figures(mine), figures(600.0))
    t = verdicts(bp.targets(a, summary, OXIO, PEER, None, None))
    assert find(t, "16 MiB PUT ≥ 80 %")[1] == met
    measured, verdict = find(t, "(context) 16 MiB PUT")
    assert verdict == "n/a", "the chunk-file row is context, not a target"
    assert measured.endswith("= %s %%" % format(mine * 1.5 / 20, ",.0f")), measured
    assert find(t, "16 MiB PUT ≥ seaweedfs")[1] == "**no**"


@pytest.mark.parametrize("p99,met", [(2.0, "yes"), (2.01, "**no**")])
def test_small_get_p99_is_held_to_two_milliseconds(p99, met):
    summary = summary_for("get-4k-c16", figures(p99=p99), figures(), pinned=True)
    summary[("get-4k-c16", True)]["ratio"] = 2.0
    t = verdicts(bp.targets(args(cases="get-4k-c16"), summary, OXIO, PEER, None, None))
    assert find(t, "4 KiB GET c16 p99", "pinned")[1] == met
    assert find(t, "4 KiB GET c16 ops/s ≥ 2×", "pinned")[1] == "yes"


def test_memory_targets_in_megabytes():
    # 390,625 KiB is 400 MB exactly; one KiB more is over.
    for idle_kb, met in ((390_625, "yes"), (390_626, "**no**")):
        t = verdicts(bp.targets(args(cases="list", oxio_idle_rss_kb=idle_kb), {}, OXIO, PEER, None, 976_563))
        assert find(t, "idle `oxiod dev` RSS", "–")[1] == met
        assert find(t, "`oxiod dev` peak RSS", "–")[1] == "**no**"  # 1,000,000,512 bytes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def null_s3():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(SCRIPTS, "null_s3.py"), "--port", str(port), "--max-bytes", str(64 << 20)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "null-s3 ready" in line, line
        yield "http://127.0.0.1:%d" % port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_do_nothing_endpoint_serves_what_was_put(null_s3):
    s3 = boto3.client(
        "s3", endpoint_url=null_s3, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="b")
    body = os.urandom((1 << 20) + 7)
    s3.put_object(Bucket="b", Key="k", Body=body)
    assert s3.get_object(Bucket="b", Key="k")["Body"].read() == body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="b").get("Contents", [])]
    assert keys == ["k"]


def test_oxio_bench_measures_the_do_nothing_endpoint(null_s3):
    env = dict(os.environ)
    r = run_bench(env, "--endpoint", null_s3, "--access-key", "x", "--secret-key", "y", "--bucket", "ceiling",
                  "--op", "get", "--size", "1MiB", "--objects", "2", "--concurrency", "2", "--count", "8")
    assert r["ops"] == 8 and r["errors"] == 0, r
    assert r["bytes"] == 8 << 20
    assert r["mib_per_s"] > 0
