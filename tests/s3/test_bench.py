"""`oxio bench` against a real `oxiod dev` grid: every S3 operation, JSON report,
clean-up of what it wrote, and one `--local` rawx run."""

import json
import os
import random
import subprocess

import pytest
from botocore.exceptions import ClientError

BENCH_TIMEOUT_S = 240


def oxio_bin():
    return os.path.join(os.path.dirname(os.environ["OXIOD"]), "oxio")


def run_bench(env, *args):
    proc = subprocess.run(
        [oxio_bin(), "bench", "--json", "--no-progress", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"oxio bench failed ({proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture
def bench_env(grid):
    env = dict(os.environ)
    env.update(grid.env)
    return env


def bucket_exists(s3, name):
    try:
        s3.head_bucket(Bucket=name)
        return True
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchBucket"), e.response
        return False


def check_report(r, op, ops, payload=True):
    assert r["op"] == op
    assert r["ops"] == ops, r
    assert r["errors"] == 0, r["errors_by_kind"]
    assert r["errors_by_kind"] == {}
    assert r["ops_per_s"] > 0
    if payload:
        assert r["mib_per_s"] > 0
        assert r["bytes"] == ops * 4096
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"] < 60_000
    assert lat["mean"] > 0
    assert r["duration_s"] > 0
    assert r["client_cpu_s"] >= 0 and r["client_cpu_pct"] >= 0
    assert r["cleanup"]["kept"] is False and r["cleanup"]["errors"] == 0


@pytest.mark.parametrize(
    "op,extra,payload",
    [
        ("put", [], True),
        ("get", ["--objects", "50"], True),
        ("mixed", ["--objects", "50"], True),
        ("list", ["--objects", "2500"], False),
    ],
)
def test_bench_s3_ops_clean_up(grid, s3, bench_env, op, extra, payload):
    name = f"bench-{op}-{random.randrange(1 << 30):x}"
    r = run_bench(
        bench_env,
        "--bucket", name, "--op", op, "--count", "200", "--size", "4KiB",
        "--concurrency", "8", *extra,
    )
    check_report(r, op, 200, payload)
    assert r["bucket"] == name
    if op == "mixed":
        assert r["by_op"]["get"]["ops"] + r["by_op"]["put"]["ops"] == 200
        assert r["by_op"]["get"]["ops"] > r["by_op"]["put"]["ops"]
    expected_deleted = 200 if op == "put" else int(extra[1])
    assert r["cleanup"]["deleted"] == expected_deleted
    assert r["cleanup"]["bucket_deleted"] is True
    assert not bucket_exists(s3, name), "the bucket the run created is still there"


def test_bench_keep_and_existing_bucket(grid, s3, bench_env, bucket):
    r = run_bench(
        bench_env,
        "--bucket", bucket, "--op", "put", "--count", "20", "--size", "4KiB",
        "--concurrency", "4", "--keep",
    )
    check_report({**r, "cleanup": {"kept": False, "errors": 0}}, "put", 20)
    assert r["cleanup"]["kept"] is True
    keys = s3.list_objects_v2(Bucket=bucket, Prefix="oxio-bench/")["Contents"]
    assert len(keys) == 20 and all(k["Size"] == 4096 for k in keys)
    # Without --keep, an existing bucket stays; only the run's objects go.
    r = run_bench(
        bench_env,
        "--bucket", bucket, "--op", "put", "--count", "10", "--size", "4KiB",
        "--concurrency", "4",
    )
    assert r["cleanup"]["deleted"] == 10 and r["cleanup"]["bucket_deleted"] is False
    assert bucket_exists(s3, bucket)
    left = s3.list_objects_v2(Bucket=bucket, Prefix="oxio-bench/")["KeyCount"]
    assert left == 20


def test_bench_rejects_bad_options(grid, bench_env):
    proc = subprocess.run(
        [oxio_bin(), "bench", "--bucket", "x-bad", "--op", "put", "--count", "5",
         "--concurrency", "2000"],
        env=bench_env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "concurrency" in proc.stderr


def test_bench_local_rawx(tmp_path):
    r = run_bench(
        dict(os.environ),
        "--local", "--volume", str(tmp_path / "vol"), "--op", "put", "--count", "50",
        "--size", "1MiB", "--concurrency", "4",
    )
    assert r["op"] == "put" and r["ops"] == 50 and r["errors"] == 0, r
    assert r["bytes"] == 50 << 20 and r["mib_per_s"] > 0
    assert r["target"].startswith("local rawx 127.0.0.1:")
    assert r["server_cpu_s"] is not None
    assert r["cleanup"]["deleted"] == 50
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["max"]


def test_bench_reports_what_errors_said(grid, bench_env):
    """With a rawx locked at 0, EC 4+2 PUTs get 503: the report counts them by kind and
    gives what the first one said (the conscience's reason)."""
    oxio = [oxio_bin(), "cluster"]
    subprocess.run([*oxio, "lock", "rawx", "rawx-4"], env=bench_env, check=True,
                   capture_output=True, timeout=60)
    try:
        proc = subprocess.run(
            [oxio_bin(), "bench", "--json", "--no-progress", "--bucket", "bench-refused",
             "--op", "put", "--count", "4", "--size", "1MiB", "--concurrency", "2"],
            env=bench_env, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
        )
    finally:
        subprocess.run([*oxio, "unlockall"], env=bench_env, check=True, capture_output=True, timeout=60)
        subprocess.run([*oxio, "wait", "--score", "1", "--timeout", "30s", "rawx"], env=bench_env,
                       check=True, capture_output=True, timeout=60)
    r = json.loads(proc.stdout)
    assert r["ops"] == 0 and r["errors"] == 4, r
    assert r["errors_by_kind"] == {"http_503:ServiceUnavailable": 4}, r["error_details"]
    said = r["error_details"]["http_503:ServiceUnavailable"]
    assert "6 needed, 5 eligible" in said and "1 locked at score 0" in said, said
