"""Fixtures that start a real `oxiod dev` grid on free ports and give tests real clients.

The grid runs as a child process in a temporary data folder; it is stopped (SIGTERM,
then SIGKILL after a deadline) when the tests that use it are done.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.config import Config

OXIOD = os.environ.get("OXIOD", "oxiod")
START_DEADLINE_S = 180


def _ports_free(base, rawx):
    # gRPC, S3 and metrics ports (N..N+9), directory metrics (N+21..N+23), rawx.
    ports = [base + i for i in range(10)] + [base + 20 + i for i in range(1, 4)] + [base + 200 + i for i in range(rawx)]
    for p in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _ephemeral_start():
    """First port the kernel hands out to port-0 binds and outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base(rawx=6):
    # Below the ephemeral range, so that no outgoing connection or port-0 listener
    # takes a grid's port while the grid (re)starts.
    top = max(10010, _ephemeral_start() - 210 - rawx)
    for _ in range(200):
        base = random.randrange(10000, top, 10)
        if _ports_free(base, rawx):
            return base
    raise RuntimeError("no free port range found")


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                env[k] = v
    return env


@dataclass
class Grid:
    data: str
    port_base: int
    rawx: int = 6
    # More `oxiod dev` options (e.g. ["--directory-replicas", "3"]).
    extra_args: list = field(default_factory=list)
    proc: subprocess.Popen = None
    env: dict = field(default_factory=dict)
    log_path: str = ""

    def start(self):
        self.log_path = os.path.join(self.data, "oxiod.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [OXIOD, "dev", "--data", self.data, "--port-base", str(self.port_base), "--rawx", str(self.rawx)]
            + list(self.extra_args),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"oxiod exited with {self.proc.returncode}; log: {self.tail_log()}")
                continue
            if line.startswith("oxio dev grid ready"):
                self.env = read_env(os.path.join(self.data, "dev.env"))
                return self
        self.kill()
        raise RuntimeError(f"oxiod not ready after {START_DEADLINE_S}s; log: {self.tail_log()}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("oxiod did not stop within the deadline")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail_log(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    @property
    def endpoint(self):
        return self.env["AWS_ENDPOINT_URL"]

    def client(self, access_key=None, secret_key=None, **cfg):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret_key or self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_REGION"],
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}, **cfg),
        )

    def cli_env(self, tmp):
        """Environment for the aws cli: the grid's credentials, default settings, and
        empty config / credentials files so the user's ~/.aws does not leak in."""
        cfg = os.path.join(tmp, "aws-config")
        creds = os.path.join(tmp, "aws-credentials")
        for path in (cfg, creds):
            open(path, "w").close()
        env = dict(os.environ)
        env.update(self.env)
        env["AWS_CONFIG_FILE"] = cfg
        env["AWS_SHARED_CREDENTIALS_FILE"] = creds
        env.pop("AWS_PROFILE", None)
        return env


@pytest.fixture(scope="session")
def grid():
    data = tempfile.mkdtemp(prefix="oxio-test-")
    g = Grid(data=data, port_base=free_port_base()).start()
    yield g
    g.stop()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def scratch():
    """A fresh folder for a test's own grid, removed after the test (pass or fail;
    the test stops its grid first). Not pytest's `tmp_path`: its longer paths would
    push the grid's unix socket names past their length limit."""
    data = tempfile.mkdtemp(prefix="oxio-test-")
    yield data
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def s3(grid):
    return grid.client()


@pytest.fixture
def bucket(s3, request):
    import re

    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{random.randrange(1 << 30):x}"
    s3.create_bucket(Bucket=name)
    yield name
    # Empty and remove what the test left.
    token = None
    while True:
        kw = {"Bucket": name}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=o["Key"])
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
    s3.delete_bucket(Bucket=name)
