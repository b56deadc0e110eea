"""kill -9 of a rawx process during a storm of S3 PUTs.

The grid runs as separate `oxiod run` processes (one for the conscience, the directory
and the gateway, one per rawx), so one rawx can die alone, mid-write. Afterwards every
acknowledged object must read back with its bytes, with the rawx still dead and again
after it restarts; the restarted rawx must have cleared its half-written `.pending`
files (they are never served: a GET only opens published chunk files).
"""

import concurrent.futures
import hashlib
import os
import random
import shutil
import tempfile
import threading
import time

import boto3
import pytest
from botocore.config import Config

from conftest import free_port_base
from procs import Proc, oxio, wait_rawx, write

RAWX = 7
VICTIM = 3
# Inline, THREECOPIES (size rule), and EC 4+2 with one and two metachunk stripes.
SIZES = [2_000, 100_000, 300_000, 1_500_000]
WRITERS = 4
STORM_BEFORE_KILL_S = 2.0
STORM_AFTER_KILL_S = 8.0


@pytest.fixture
def multi_process_grid():
    data = tempfile.mkdtemp(prefix="oxio-kill-")
    base = free_port_base(RAWX)
    addrs = f'conscience-addrs = ["127.0.0.1:{base}"]\ndirectory-addrs = ["127.0.0.1:{base + 1}"]\n'
    main = write(
        os.path.join(data, "main.toml"),
        addrs
        + f"""
[conscience]
listen = "127.0.0.1:{base}"
data-dir = "{data}/conscience"

[directory]
node-id = 1
listen = "127.0.0.1:{base + 1}"
data-dir = "{data}/directory"
location = "local.rack1.host1.meta"
bootstrap-single = true

[s3]
listen = "127.0.0.1:{base + 7}"
""",
    )
    procs = {"main": Proc("main", main, data)}
    for i in range(RAWX):
        cfg = write(
            os.path.join(data, f"rawx-{i}.toml"),
            addrs
            + f"""
[[rawx]]
id = "rawx-{i}"
listen = "127.0.0.1:{base + 200 + i}"
volume = "{data}/vol{i}"
location = "local.rack1.host1.vol{i}"
workers = 1
""",
        )
        procs[f"rawx-{i}"] = Proc(f"rawx-{i}", cfg, data)
    try:
        for p in procs.values():
            p.start()
        env = dict(os.environ, OXIO_CONSCIENCE=f"127.0.0.1:{base}", OXIO_DIRECTORY=f"127.0.0.1:{base + 1}")
        yield {"data": data, "procs": procs, "endpoint": f"http://127.0.0.1:{base + 7}", "env": env}
    finally:
        for p in procs.values():
            p.stop()
        shutil.rmtree(data, ignore_errors=True)


def pending_files(volume):
    return [f for _r, _d, files in os.walk(volume) for f in files if f.endswith(".pending")]


def test_kill9_rawx_during_put_storm(multi_process_grid):
    g = multi_process_grid
    env = g["env"]
    wait_rawx(env, RAWX)
    oxio(env, "account", "create", "storm")
    key = oxio(env, "key", "create", "storm")[0]

    def client():
        return boto3.client(
            "s3",
            endpoint_url=g["endpoint"],
            aws_access_key_id=key["access_key"],
            aws_secret_access_key=key["secret_key"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, read_timeout=60),
        )

    client().create_bucket(Bucket="storm")
    acked = {}  # key -> md5 of the acknowledged body
    failed = []
    killed_at = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w):
        s3 = client()
        rng = random.Random(w)
        n = 0
        while not stop.is_set():
            size = rng.choice(SIZES)
            body = rng.randbytes(size)
            k = f"w{w}/{n:05d}"
            n += 1
            try:
                s3.put_object(Bucket="storm", Key=k, Body=body)
            except Exception as e:  # a PUT cut by the kill may fail; it is then not acknowledged
                with lock:
                    failed.append((k, size, str(e)[:200]))
                continue
            with lock:
                acked[k] = (hashlib.md5(body).hexdigest(), size, bool(killed_at))

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(writer, w) for w in range(WRITERS)]
        time.sleep(STORM_BEFORE_KILL_S)
        g["procs"][f"rawx-{VICTIM}"].kill9()
        killed_at.append(time.monotonic())
        time.sleep(STORM_AFTER_KILL_S)
        stop.set()
        for f in futures:
            f.result()

    after_kill = sum(1 for _m, _s, after in acked.values() if after)
    print(
        f"\nPUT storm: {len(acked)} acknowledged ({after_kill} after the kill -9 of rawx-{VICTIM}), "
        f"{len(failed)} failed"
    )
    for k, size, err in failed[:5]:
        print(f"  failed {k} ({size} B): {err}")
    assert len(acked) >= 20, "the storm must have written something"
    assert after_kill >= 5, "writes must go on after a rawx died"

    def check_all(when):
        s3 = client()
        for k, (md5, size, _after) in sorted(acked.items()):
            body = s3.get_object(Bucket="storm", Key=k)["Body"].read()
            assert len(body) == size, f"{when}: {k} has {len(body)} bytes, {size} acknowledged"
            assert hashlib.md5(body).hexdigest() == md5, f"{when}: {k} differs"

    check_all(f"with rawx-{VICTIM} dead")
    victim_volume = os.path.join(g["data"], f"vol{VICTIM}")
    g["procs"][f"rawx-{VICTIM}"].start()
    assert pending_files(victim_volume) == [], "restart must clear half-written chunks"
    wait_rawx(env, RAWX)
    check_all(f"after rawx-{VICTIM} restarted")
