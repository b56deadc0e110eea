"""`oxiod dev --log-json` logs one JSON object per line on stderr, and an S3 request's
`x-amz-request-id` is a field of the gateway's and the rawx's log lines for it."""

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
    # Access lines of the gateway and the rawx are logged at info.
    os.environ["RUST_LOG"] = "info"
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
        targets = [r["target"] for r in log_records(json_grid) if request_id in request_ids(r)]
        gateway = [t for t in targets if t.startswith("oxio_s3_proxy")]
        rawx = [t for t in targets if t.startswith("oxio_rawx")]
        return (gateway, rawx) if gateway and rawx else None

    gateway, rawx = wait_until(f"log lines with request_id {request_id}", tagged, 20)
    # Replicated to several rawx: one access line each at least.
    assert len(rawx) >= 2, rawx
    s3.delete_object(Bucket=bucket, Key="chunked")
    s3.delete_bucket(Bucket=bucket)
