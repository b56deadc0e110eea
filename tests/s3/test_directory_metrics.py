"""Prometheus metrics of the directory against a real `oxiod dev` grid.

Each directory node serves `/metrics` on port base+20+i. The tests scrape it, do S3
writes and reads with boto3, scrape again and check that the PutContent and GetContent
(or GetContentVersion) request counters and latency histograms moved, that every meta2
group is led by the single node with one voter, and that the applied index of the meta2
groups grew with the PUT. With three directory nodes, every group has exactly one leader over the three
scrapes, three voters on each node, and the Raft transport is counted as `Raft`.
"""

import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Grid, free_port_base

DEV_META2_GROUPS = 4
DEV_GROUPS = 1 + 4 + DEV_META2_GROUPS
LEADER_DEADLINE_S = 60


def metrics_port(base, node):
    return base + 20 + node


def port_base_with_metrics_free(nodes):
    """A base `free_port_base` accepts whose directory metrics ports are free too."""
    for _ in range(50):
        base = free_port_base()
        ok = True
        for i in range(1, nodes + 1):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", metrics_port(base, i)))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no port base with free directory metrics ports")


def scrape(grid, node=1):
    url = f"http://127.0.0.1:{metrics_port(grid.port_base, node)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_group(samples, name, kind=None):
    """{group id: value} of a per-group series, optionally of one kind."""
    out = {}
    for (n, labels), v in samples.items():
        labels = dict(labels)
        if n == name and (kind is None or labels["kind"] == kind):
            out[int(labels["group"])] = v
    return out


def start_grid(nodes):
    data = tempfile.mkdtemp(prefix="oxio-test-dirmetrics-")
    extra = ["--directory-replicas", str(nodes)] if nodes > 1 else []
    return Grid(data=data, port_base=port_base_with_metrics_free(nodes), extra_args=extra).start()


@pytest.fixture(scope="module")
def single():
    g = start_grid(1)
    yield g
    g.stop()
    shutil.rmtree(g.data, ignore_errors=True)


def test_directory_metrics_follow_s3_requests(single):
    s3 = single.client()
    before, types = scrape(single)
    for family, kind in [
        ("oxio_directory_grpc_requests", "counter"),
        ("oxio_directory_grpc_request_duration_seconds", "histogram"),
        ("oxio_directory_raft_term", "gauge"),
        ("oxio_directory_raft_is_leader", "gauge"),
        ("oxio_directory_raft_last_log_index", "gauge"),
        ("oxio_directory_raft_applied_index", "gauge"),
        ("oxio_directory_raft_apply_lag_entries", "gauge"),
        ("oxio_directory_raft_snapshot_index", "gauge"),
        ("oxio_directory_raft_voters", "gauge"),
        ("oxio_directory_raft_groups_hosted", "gauge"),
        ("oxio_directory_raft_groups_led", "gauge"),
        ("oxio_directory_raft_snapshots_built", "counter"),
        ("oxio_directory_raft_snapshots_installed", "counter"),
        ("oxio_directory_rocksdb_live_sst_files_size_bytes", "gauge"),
        ("oxio_directory_rocksdb_memtables_size_bytes", "gauge"),
    ]:
        assert types.get(family) == kind, (family, types.get(family))

    leaders = by_group(before, "oxio_directory_raft_is_leader", kind="meta2")
    assert len(leaders) == DEV_META2_GROUPS and all(v == 1 for v in leaders.values()), leaders
    assert len(by_group(before, "oxio_directory_raft_is_leader")) == DEV_GROUPS
    voters = by_group(before, "oxio_directory_raft_voters")
    assert set(voters.values()) == {1}, voters
    assert value(before, "oxio_directory_raft_groups_hosted", kind="meta2") == DEV_META2_GROUPS
    assert value(before, "oxio_directory_raft_groups_led", kind="meta2") == DEV_META2_GROUPS
    assert value(before, "oxio_directory_raft_groups_hosted", kind="meta0") == 1

    bucket = "dirmetrics"
    s3.create_bucket(Bucket=bucket)
    mid, _ = scrape(single)
    body = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    after, after_types = scrape(single)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("oxio_directory_grpc_requests_total", method="PutContent", code="OK") >= 1
    # A GET reads the content header with GetContent, or GetContentVersion when the
    # gateway resolves a version.
    reads = sum(
        moved("oxio_directory_grpc_requests_total", method=m, code="OK")
        for m in ("GetContent", "GetContentVersion")
    )
    assert reads >= 1
    # The gateway runs in the directory's process: its GetContentVersion reads are
    # answered typed (no protobuf encoding) and still counted as gRPC requests.
    assert after_types.get("oxio_directory_typed_calls") == "counter"
    typed = moved("oxio_directory_typed_calls_total", method="GetContentVersion")
    assert typed >= 1
    assert typed <= sum(
        moved("oxio_directory_grpc_requests_total", method="GetContentVersion", code=c)
        for c in ("OK", "NotFound")
    )
    assert moved("oxio_directory_grpc_received_bytes_total", method="GetContentVersion") > 0
    assert moved("oxio_directory_grpc_requests_total", method="CreateContainer", code="OK") >= 1
    assert moved("oxio_directory_grpc_request_duration_seconds_count", method="PutContent") >= 1
    assert moved("oxio_directory_grpc_request_duration_seconds_sum", method="PutContent") > 0

    # The PUT went through one meta2 group: its applied index grew; none went back.
    applied_mid = by_group(mid, "oxio_directory_raft_applied_index", kind="meta2")
    applied_after = by_group(after, "oxio_directory_raft_applied_index", kind="meta2")
    assert applied_after.keys() == applied_mid.keys()
    grew = [g for g in applied_mid if applied_after[g] > applied_mid[g]]
    assert len(grew) >= 1, (applied_mid, applied_after)
    assert all(applied_after[g] >= applied_mid[g] for g in applied_mid)
    leaders = by_group(after, "oxio_directory_raft_is_leader", kind="meta2")
    assert all(v == 1 for v in leaders.values()), leaders
    lag = by_group(after, "oxio_directory_raft_apply_lag_entries")
    assert all(v >= 0 for v in lag.values())
    assert value(after, "oxio_directory_rocksdb_memtables_size_bytes") > 0

    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)


def test_directory_metrics_answer_only_get_metrics(single):
    base = f"http://127.0.0.1:{metrics_port(single.port_base, 1)}"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/other", timeout=10)
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(base + "/metrics", data=b"x", method="POST"), timeout=10)
    assert e.value.code == 405


def test_replicated_directory_metrics_show_one_leader_per_group():
    nodes = 3
    g = start_grid(nodes)
    try:
        deadline = time.monotonic() + LEADER_DEADLINE_S
        while True:
            scrapes = [scrape(g, node=i)[0] for i in range(1, nodes + 1)]
            led = {}
            for s in scrapes:
                for group, v in by_group(s, "oxio_directory_raft_is_leader").items():
                    led[group] = led.get(group, 0) + v
            if len(led) == DEV_GROUPS and all(v == 1 for v in led.values()):
                break
            assert time.monotonic() < deadline, f"leaders per group: {led}"
            time.sleep(0.2)
        for s in scrapes:
            voters = by_group(s, "oxio_directory_raft_voters")
            assert len(voters) == DEV_GROUPS and set(voters.values()) == {nodes}, voters
        total_led = sum(
            value(s, "oxio_directory_raft_groups_led", kind=k)
            for s in scrapes
            for k in ("meta0", "meta1", "meta2")
        )
        assert total_led == DEV_GROUPS
        # Followers receive appends and votes through the Raft transport RPC.
        raft_ok = [value(s, "oxio_directory_grpc_requests_total", method="Raft", code="OK") for s in scrapes]
        assert all(v > 0 for v in raft_ok), raft_ok
    finally:
        g.stop()
        shutil.rmtree(g.data, ignore_errors=True)
