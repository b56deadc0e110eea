"""`oxiod dev --log-json` logs one JSON object per line on stderr, and an S3 request's
`x-amz-request-id` (fresh, or chosen by the client in `x-request-id`) is a field of
the log lines of the gateway, of the rawx it touched and of the directory and
conscience RPCs it made. Text logs written to a file carry no terminal colour escapes."""

import json
import os
import shutil
import tempfile

import pytest

from conftest import Grid, free_port_base


@pytest.fixture(scope="module")
def json_grid():
    data = tempfile.mkdtemp(prefix="oxio-logjson-")
    saved = os.environ.get("RUST_LOG")
    # Access lines of the gateway and the rawx are info-level lines of target
    # oxio_access, which an explicit `info` lets through; the RPC lines of the
    # directory and the conscience are at debug.
    os.environ["RUST_LOG"] = "info,oxio_proto::rpc=debug"
    try:
        g = Grid(data=data, port_base=free_port_base(), extra_args=["--log-json"]).start()
    finally:
        if saved is None:
            os.environ.pop("RUST_LOG", None)
        else:
            os.environ["RUST_LOG"] = saved
    yield g
    g.stop()
    shutil.rmtree(data, ignore_errors=True)


def log_records(grid):
    with open(grid.log_path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"log line is not JSON: {line!r}")
        assert isinstance(rec, dict), line
        records.append(rec)
    return records


def request_ids(rec):
    """The request ids a log record carries: its own fields and its spans' fields."""
    out = set()
    for part in [rec.get("fields", {}), rec.get("span", {}), *rec.get("spans", [])]:
        if isinstance(part, dict) and "request_id" in part:
            out.add(part["request_id"])
    return out


def test_every_stderr_line_is_a_json_object(json_grid):
    records = log_records(json_grid)
    assert records, "the grid logged nothing"
    for rec in records:
        assert {"timestamp", "level", "target"} <= rec.keys(), rec
    assert any(r.get("fields", {}).get("message") == "conscience listening" for r in records)


def test_request_id_is_logged_by_gateway_and_rawx(json_grid):
    s3 = json_grid.client()
    bucket = "logjson"
    s3.create_bucket(Bucket=bucket)
    # Larger than the inline limit: stored in chunks on rawx.
    resp = s3.put_object(Bucket=bucket, Key="chunked", Body=os.urandom(300_000))
    request_id = resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert request_id

    from test_cli import wait_until

    def tagged():
        origins = [origin(r) for r in log_records(json_grid) if request_id in request_ids(r)]
        gateway = [o for o in origins if o == "gateway"]
        rawx = [o for o in origins if o == "rawx"]
        return (gateway, rawx) if gateway and rawx else None

    gateway, rawx = wait_until(f"log lines with request_id {request_id}", tagged, 20)
    # Replicated to several rawx: one access line each at least.
    assert len(rawx) >= 2, rawx
    s3.delete_object(Bucket=bucket, Key="chunked")
    s3.delete_bucket(Bucket=bucket)


def origin(record):
    """Which service logged `record`: access lines have their own target, so they
    are told apart by their message."""
    target = record["target"]
    message = record.get("fields", {}).get("message")
    if target.startswith("oxio_s3_proxy") or (target == "oxio_access" and message == "s3 access"):
        return "gateway"
    if target.startswith("oxio_rawx") or (target == "oxio_access" and message == "rawx access"):
        return "rawx"
    return target


def rpc_services(records, request_id):
    """The gRPC services whose RPC lines carry `request_id`."""
    out = set()
    for r in records:
        if r["target"] != "oxio_proto::rpc" or request_id not in request_ids(r):
            continue
        for part in [r.get("span", {}), *r.get("spans", [])]:
            if isinstance(part, dict) and part.get("name") == "rpc":
                out.add(part.get("service"))
    return out


def test_a_client_chosen_request_id_follows_the_request(json_grid):
    import uuid

    from test_cli import wait_until

    s3 = json_grid.client()
    bucket = "logjson-client-id"
    s3.create_bucket(Bucket=bucket)
    chosen = f"client-{uuid.uuid4()}"

    def add_id(request, **_):
        request.headers["x-request-id"] = chosen

    s3.meta.events.register("before-sign.s3.PutObject", add_id)
    resp = s3.put_object(Bucket=bucket, Key="chunked", Body=os.urandom(300_000))
    s3.meta.events.unregister("before-sign.s3.PutObject", add_id)
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"] == chosen

    def tagged():
        records = log_records(json_grid)
        origins = [origin(r) for r in records if chosen in request_ids(r)]
        gateway = [o for o in origins if o == "gateway"]
        rawx = [o for o in origins if o == "rawx"]
        services = rpc_services(records, chosen)
        done = gateway and len(rawx) >= 2 and {"oxio.v1.Directory", "oxio.v1.Conscience"} <= services
        return (gateway, rawx, services) if done else None

    wait_until(f"log lines with the client's request id {chosen}", tagged, 20)
    # An id that could not be logged safely is replaced by a fresh one.
    def add_bad(request, **_):
        request.headers["x-request-id"] = "bad id with spaces"

    s3.meta.events.register("before-sign.s3.HeadObject", add_bad)
    head = s3.head_object(Bucket=bucket, Key="chunked")
    s3.meta.events.unregister("before-sign.s3.HeadObject", add_bad)
    got = head["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert got != "bad id with spaces" and len(got) == 32
    s3.delete_object(Bucket=bucket, Key="chunked")
    s3.delete_bucket(Bucket=bucket)


def test_text_log_in_a_file_has_no_colour_escapes(grid, s3, bucket):
    # The session grid logs text to a file: lines are plain, with no terminal escapes.
    s3.put_object(Bucket=bucket, Key="plain-log", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="plain-log")["Body"].read() == b"x"
    with open(grid.log_path, "rb") as f:
        text = f.read()
    assert b"S3 gateway listening" in text, "the grid logs at info"
    assert b"\x1b[" not in text, "terminal escape in a log file"
    if "RUST_LOG" not in os.environ:
        # The default filter leaves out the per-request access lines.
        assert b"s3 access" not in text and b"rawx access" not in text
