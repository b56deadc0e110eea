"""Prometheus metrics and request ids against a real `oxiod dev` grid.

Scrapes every service's `/metrics` (the S3 gateway's anonymous GET on the S3 port,
each rawx, the conscience, the directory node), does a 1 MiB PUT and a GET with
boto3, scrapes again and checks that the counters moved by at least what the two
requests imply, that the rawx stored the six chunks of an EC 4+2 object, and that
the response's `x-amz-request-id` reached the rawx (it appears in the grid log on a
`rawx_request` line). The GET's fragments are read through the rawx's
local-read sockets, counted by the rawx and by the gateway. A GET decoding around a lost data fragment moves the
gateway's degraded-read counter.
"""

import json
import mmap
import os
import re
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

MIB = 1024 * 1024
LOG_DEADLINE_S = 10


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples_list, name, **labels):
    return sum(value(s, name, **labels) for s in samples_list)


def rawx_urls(grid):
    return [f"http://127.0.0.1:{grid.port_base + 200 + i}/metrics" for i in range(grid.rawx)]


def conscience_url(grid):
    return f"http://127.0.0.1:{grid.port_base + 9}/metrics"


def directory_url(grid):
    return f"http://127.0.0.1:{grid.port_base + 21}/metrics"


def test_metrics_move_and_request_id_reaches_rawx(grid, s3, bucket):
    s3_url = grid.endpoint.rstrip("/") + "/metrics"
    s3_before = scrape(s3_url)
    rawx_before = [scrape(u) for u in rawx_urls(grid)]
    conscience_before = scrape(conscience_url(grid))
    directory_before = scrape(directory_url(grid))
    for samples in rawx_before:
        infos = [k for k in samples if k[0] == "oxio_rawx_service_info"]
        assert len(infos) == 1, infos
        labels = dict(infos[0][1])
        assert labels["driver"] in ("io_uring", "polling")
        assert labels["id"].startswith("rawx-")

    body = os.urandom(MIB)
    put = s3.put_object(Bucket=bucket, Key="metrics-object", Body=body)
    put_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    got = s3.get_object(Bucket=bucket, Key="metrics-object")
    assert got["Body"].read() == body
    get_id = got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert put_id and get_id and put_id != get_id

    s3_after = scrape(s3_url)
    rawx_after = [scrape(u) for u in rawx_urls(grid)]
    conscience_after = scrape(conscience_url(grid))
    directory_after = scrape(directory_url(grid))

    # Every series any service serves is documented and named
    # oxio_<service>_<subsystem>_<name>[_<unit>].
    from test_cli import documented_metrics

    names, histograms = documented_metrics()
    allowed = set(names) | {h + suffix for h in histograms for suffix in ("_bucket", "_sum", "_count")}
    served = {name for scrape_ in [s3_after, conscience_after, directory_after, *rawx_after] for (name, _) in scrape_}
    assert served - allowed == set(), "undocumented metrics"
    pattern = re.compile(r"^oxio_(s3|rawx|conscience|directory)_[a-z0-9]+_[a-z0-9_]+$")
    assert [n for n in served if not pattern.match(n)] == []

    def conscience_moved(name, **labels):
        return value(conscience_after, name, **labels) - value(conscience_before, name, **labels)

    # One placement per metachunk (the 1 MiB object has one), seen as an RPC too.
    assert conscience_moved("oxio_conscience_placement_requests_total", type="rawx") >= 1
    assert conscience_moved("oxio_conscience_grpc_requests_total", method="Place", code="OK") >= 1
    assert conscience_moved("oxio_conscience_grpc_request_duration_seconds_count", method="Place") >= 1
    assert conscience_moved("oxio_conscience_grpc_received_bytes_total", method="Place") > 0
    assert conscience_moved("oxio_conscience_grpc_sent_bytes_total", method="Place") > 0
    assert conscience_moved("oxio_conscience_heartbeats_received_total", type="rawx") >= 0

    def directory_moved(name, **labels):
        return value(directory_after, name, **labels) - value(directory_before, name, **labels)

    assert directory_moved("oxio_directory_grpc_requests_total", method="PutContent", code="OK") >= 1
    # GET reads the header by version (the latest when none is named).
    reads = ("GetContent", "GetContentVersion")
    assert sum(directory_moved("oxio_directory_grpc_requests_total", method=m, code="OK") for m in reads) >= 1
    # The PUT's header lists six chunk records: hundreds of bytes in.
    assert directory_moved("oxio_directory_grpc_received_bytes_total", method="PutContent") >= 300
    assert sum(directory_moved("oxio_directory_grpc_sent_bytes_total", method=m) for m in reads) >= 300

    def moved(name, **labels):
        return value(s3_after, name, **labels) - value(s3_before, name, **labels)

    assert moved("oxio_s3_http_requests_total", operation="PutObject", status="200") >= 1
    assert moved("oxio_s3_http_requests_total", operation="GetObject", status="200") >= 1
    assert moved("oxio_s3_http_request_duration_seconds_count", operation="PutObject") >= 1
    assert moved("oxio_s3_http_received_bytes_total") >= MIB
    assert moved("oxio_s3_http_sent_bytes_total") >= MIB
    assert moved("oxio_s3_objects_stored_total", layout="chunked") >= 1

    def rawx_moved(name, **labels):
        return total(rawx_after, name, **labels) - total(rawx_before, name, **labels)

    # EC 4+2: six fragments written, at least four read back: `oxiod dev` writes
    # them into their files through the rawx's local-write sockets and reads them
    # through the local-read sockets, each counted on both sides; no chunk byte
    # crosses HTTP.
    assert rawx_moved("oxio_rawx_local_writes_total", result="stored") == 6
    assert moved("oxio_s3_sdk_local_writes_total") == 6
    assert rawx_moved("oxio_rawx_http_requests_total", method="PUT", status="201") == 0
    assert rawx_moved("oxio_rawx_local_opens_total", result="open") >= 4
    assert moved("oxio_s3_sdk_local_reads_total") == rawx_moved("oxio_rawx_local_opens_total", result="open")
    assert moved("oxio_s3_sdk_local_read_fallbacks_total") == 0
    assert rawx_moved("oxio_rawx_http_received_bytes_total") < MIB
    assert rawx_moved("oxio_rawx_http_sent_bytes_total") > 0
    # Chunks of earlier tests may still be deleted in the background: count them back.
    deleted = rawx_moved("oxio_rawx_http_requests_total", method="DELETE", status="204")
    assert rawx_moved("oxio_rawx_volume_chunks") + deleted == 6
    assert rawx_moved("oxio_rawx_chunk_checksum_failures_total") == 0

    # The PUT's request id is in the span of the rawx requests it caused.
    deadline = time.monotonic() + LOG_DEADLINE_S
    found = False
    while not found and time.monotonic() < deadline:
        with open(grid.log_path, errors="replace") as f:
            found = any("rawx_request" in line and put_id in line for line in f)
        if not found:
            time.sleep(0.2)
    assert found, f"request id {put_id} not on a rawx request line of {grid.log_path}"


def test_metrics_with_credentials_is_a_bucket_request(grid, s3):
    # Authenticated GET /metrics is ListObjects of bucket "metrics" (absent here).
    try:
        s3.list_objects_v2(Bucket="metrics")
        listed = True
    except s3.exceptions.NoSuchBucket:
        listed = False
    assert not listed


def test_every_response_has_a_request_id(s3, bucket):
    ids = set()
    for i in range(5):
        r = s3.head_bucket(Bucket=bucket)
        ids.add(r["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"])
        assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amz-id-2")
    assert len(ids) == 5


def test_a_degraded_read_is_counted(grid, s3, bucket):
    from test_cli import chunk_file, oxio_json

    intact, damaged = os.urandom(MIB), os.urandom(MIB)
    s3.put_object(Bucket=bucket, Key="intact", Body=intact)
    s3.put_object(Bucket=bucket, Key="degraded", Body=damaged)
    s3_url = grid.endpoint.rstrip("/") + "/metrics"
    before = value(scrape(s3_url), "oxio_s3_sdk_degraded_reads_total")
    # An intact read decodes nothing.
    assert s3.get_object(Bucket=bucket, Key="intact")["Body"].read() == intact
    assert value(scrape(s3_url), "oxio_s3_sdk_degraded_reads_total") == before
    # Without a data fragment, the read decodes from parity, and says so. (An object
    # not read before: the gateway keeps the files of chunks it read open a few
    # seconds, and would read the removed file's bytes from there.)
    chunks = oxio_json(grid, "object", "locate", bucket, "degraded")
    assert len(chunks) == 6, chunks  # EC 4+2
    data_fragment = next(c for c in chunks if c["position"] == "0.0")
    os.remove(chunk_file(grid, data_fragment["chunk_id"]))
    assert s3.get_object(Bucket=bucket, Key="degraded")["Body"].read() == damaged
    assert value(scrape(s3_url), "oxio_s3_sdk_degraded_reads_total") == before + 1


def rawx_info(grid):
    out = []
    for u in rawx_urls(grid):
        with urllib.request.urlopen(u.replace("/metrics", "/info"), timeout=10) as resp:
            out.append(json.loads(resp.read()))
    return out


def takes_o_direct(folder):
    """Whether the file system of `folder` accepts an aligned O_DIRECT write."""
    path = os.path.join(folder, ".o-direct-probe")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    try:
        block = mmap.mmap(-1, 4096)  # page-aligned
        os.write(fd, block)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


def test_rawx_write_chunks_with_o_direct_by_default(grid, s3, bucket):
    """Every rawx of `oxiod dev` writes chunk files with O_DIRECT when the data
    folder's file system takes it (through the page cache otherwise) and reads them
    through the page cache."""
    direct = takes_o_direct(grid.data)
    infos = rawx_info(grid)
    assert infos and all(i["direct_writes"] is direct and i["direct_io"] is False for i in infos), infos
    body = os.urandom(3 * MIB + 5)
    s3.put_object(Bucket=bucket, Key="direct-written", Body=body)
    assert s3.get_object(Bucket=bucket, Key="direct-written")["Body"].read() == body
    got = s3.get_object(Bucket=bucket, Key="direct-written", Range="bytes=1000-2000000")["Body"].read()
    assert got == body[1000:2000001]


def test_no_local_reads_sends_every_chunk_read_over_http():
    """`oxiod dev --no-local-reads` binds no local-read socket: the same GET is
    served by the rawx over HTTP, and the gateway counts no local read. With
    `--buffered-writes` too, chunk files are written through the page cache."""
    import shutil
    import tempfile

    from conftest import Grid, free_port_base

    data = tempfile.mkdtemp(prefix="oxio-test-http-")
    g = Grid(data=data, port_base=free_port_base(), extra_args=["--no-local-reads", "--buffered-writes"]).start()
    try:
        run = os.path.join(data, "run")
        assert not os.path.exists(run) or os.listdir(run) == []
        s3 = g.client()
        s3.create_bucket(Bucket="http-reads")
        body = os.urandom(MIB)
        s3.put_object(Bucket="http-reads", Key="o", Body=body)
        s3_url = g.endpoint.rstrip("/") + "/metrics"
        rawx_before = [scrape(u) for u in rawx_urls(g)]
        assert s3.get_object(Bucket="http-reads", Key="o")["Body"].read() == body
        rawx_after = [scrape(u) for u in rawx_urls(g)]
        gets = total(rawx_after, "oxio_rawx_http_requests_total", method="GET", status="206") - total(
            rawx_before, "oxio_rawx_http_requests_total", method="GET", status="206"
        )
        assert gets >= 4
        assert total(rawx_after, "oxio_rawx_local_opens_total", result="open") == 0
        assert value(scrape(s3_url), "oxio_s3_sdk_local_reads_total") == 0
        # Without local reads there is no local write either: the PUT went over HTTP.
        assert total(rawx_after, "oxio_rawx_http_requests_total", method="PUT", status="201") >= 6
        assert value(scrape(s3_url), "oxio_s3_sdk_local_writes_total") == 0
        assert all(i["direct_writes"] is False for i in rawx_info(g))
    finally:
        g.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_no_local_writes_sends_every_chunk_over_http():
    """`oxiod dev --no-local-writes`: the rawx still offer their write sockets, but
    the gateway sends every new chunk with an HTTP PUT; reads stay local."""
    import shutil
    import tempfile

    from conftest import Grid, free_port_base

    data = tempfile.mkdtemp(prefix="oxio-test-http-writes-")
    g = Grid(data=data, port_base=free_port_base(), extra_args=["--no-local-writes"]).start()
    try:
        assert any(n.endswith(".wsock") for n in os.listdir(os.path.join(data, "run")))
        s3 = g.client()
        s3.create_bucket(Bucket="http-writes")
        body = os.urandom(MIB + 7)
        rawx_before = [scrape(u) for u in rawx_urls(g)]
        s3.put_object(Bucket="http-writes", Key="o", Body=body)
        assert s3.get_object(Bucket="http-writes", Key="o")["Body"].read() == body
        rawx_after = [scrape(u) for u in rawx_urls(g)]

        def moved(name, **labels):
            return total(rawx_after, name, **labels) - total(rawx_before, name, **labels)

        assert moved("oxio_rawx_http_requests_total", method="PUT", status="201") == 6
        assert moved("oxio_rawx_http_received_bytes_total") >= MIB
        assert total(rawx_after, "oxio_rawx_local_writes_total", result="stored") == 0
        s3_url = g.endpoint.rstrip("/") + "/metrics"
        assert value(scrape(s3_url), "oxio_s3_sdk_local_writes_total") == 0
        assert moved("oxio_rawx_local_opens_total", result="open") >= 4
    finally:
        g.stop()
        shutil.rmtree(data, ignore_errors=True)
