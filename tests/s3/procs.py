"""Grids of separate `oxiod run` processes, for tests that kill one service alone.

Each `Proc` runs `oxiod run FILE` with its own TOML host file, waits for "oxiod ready"
and can be stopped, killed with SIGKILL and started again on the same file and data.
"""

import json
import os
import signal
import subprocess
import time

from conftest import OXIOD

OXIO = os.environ.get("OXIO") or os.path.join(os.path.dirname(OXIOD), "oxio")


class Proc:
    def __init__(self, name, config, data):
        self.name = name
        self.config = config
        self.log_path = os.path.join(data, f"{name}.log")
        self.proc = None

    def start(self, deadline_s=120):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [OXIOD, "run", self.config],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")),
        )
        log.close()
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if "oxiod ready" in line:
                return self
            if line == "" and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}; see {self.log_path}")
        raise RuntimeError(f"{self.name} not ready after {deadline_s} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def oxio(env, *args, check=True):
    """Runs `oxio ARGS --format json`; the parsed output (None when it failed and
    `check` is off)."""
    r = subprocess.run([OXIO, *args, "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        assert not check, f"oxio {' '.join(args)} exited {r.returncode}: {r.stderr}"
        return None
    return json.loads(r.stdout)


def wait_rawx(env, up, deadline_s=60):
    """Waits until `up` rawx are up with a score above 0."""
    end = time.monotonic() + deadline_s
    while True:
        states = oxio(env, "cluster", "list", "rawx", check=False) or []
        ready = [s["id"] for s in states if s["up"] and s["score"] > 0]
        if len(ready) >= up:
            return
        assert time.monotonic() < end, f"only {ready} ready"
        time.sleep(0.2)
