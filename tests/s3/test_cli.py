"""The `oxio` admin CLI reads and drives a running grid: services, accounts,
containers, objects, completions, its configuration file, and the Grafana dashboard
built on the documented metrics."""

import glob
import hashlib
import json
import os
import random
import re
import subprocess

OXIO = os.environ.get("OXIO") or os.path.join(os.path.dirname(os.environ.get("OXIOD", "oxiod")), "oxio")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def base_env():
    """The environment without any oxio setting, and no configuration file found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXIO_")}
    env["XDG_CONFIG_HOME"] = "/nonexistent/oxio-test-config"
    return env


def oxio(grid, *args, check=True, env=None, binary=False):
    if env is None:
        env = dict(base_env(), OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"], OXIO_DIRECTORY=grid.env["OXIO_DIRECTORY"])
    r = subprocess.run([OXIO, *args], env=env, capture_output=True, text=not binary, timeout=120)
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
        # The key stats: the base ones and the rawx's own.
        assert {"cpu", "io", "space", "chunks", "reqs_per_s"} <= set(s["stats"]), s["stats"]
        assert 0 <= s["stats"]["space"] <= 100
    directories = [s for s in services if s["type"] == "directory"]
    assert directories and all({"groups_led", "apply_lag"} <= set(d["stats"]) for d in directories)
    table = oxio(grid, "cluster", "list", "rawx").stdout.splitlines()
    assert table[0].split() == ["TYPE", "ID", "ADDR", "LOCATION", "SCORE", "UP", "LOCKED", "STATS"]
    assert len(table) == 7
    assert all("chunks=" in line.split()[-1] and "space=" in line.split()[-1] for line in table[1:])


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


def oxio_json(grid, *args, **kw):
    return json.loads(oxio(grid, *args, "--format", "json", **kw).stdout)


def unique(prefix):
    return f"{prefix}-{random.randrange(1 << 30):x}"


def assert_clear_error(r, code, *needles):
    """A failure with exit `code`, whose message names every needle and is no Rust dump."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert "panicked" not in r.stderr and "Error {" not in r.stderr and "Status {" not in r.stderr, r.stderr


def write_random(path, size, seed):
    data = random.Random(seed).randbytes(size)
    with open(path, "wb") as f:
        f.write(data)
    return data


def test_account_show_sums_its_containers(grid, tmp_path):
    account = unique("acct")
    oxio(grid, "account", "create", account)
    for c in ["c1", "c2"]:
        created = oxio_json(grid, "container", "create", c, "--account", account)
        assert created["name"] == c and created["objects"] == 0
    sizes = {"a": 10, "b": 70000, "c": 300}
    for i, (key, size) in enumerate(sizes.items()):
        path = tmp_path / key
        write_random(path, size, i)
        oxio(grid, "object", "create", "c1" if key != "c" else "c2", str(path), "--account", account, "--no-progress")
    shown = oxio_json(grid, "account", "show", account)
    assert shown["account"] == account
    assert (shown["containers"], shown["objects"], shown["bytes"]) == (2, 3, sum(sizes.values()))
    table = oxio(grid, "account", "show", account).stdout
    assert re.search(r"^bytes\s+70310$", table, re.M), table
    r = oxio(grid, "account", "show", unique("no-such-account"), check=False)
    assert_clear_error(r, 1, "does not exist", "oxio account create")


def test_container_create_show_locate_delete(grid):
    name = unique("ctr")
    created = oxio_json(grid, "container", "create", name)
    cid = created["cid"]
    assert len(cid) == 64 and created["account"] == "dev"
    shown = oxio_json(grid, "container", "show", name)
    assert shown["cid"] == cid and shown["objects"] == 0 and shown["bytes"] == 0
    assert shown["meta2_members"] and all("@127.0.0.1:" in m for m in shown["meta2_members"])
    assert shown["meta2_leader"].startswith("127.0.0.1:")
    hops = oxio_json(grid, "container", "locate", name)
    assert [h["hop"] for h in hops] == ["meta0", "meta1", "meta2"]
    assert hops[0]["group"] == 0 and f"prefix {cid[:4]}" in hops[0]["maps"]
    assert hops[0]["maps"].endswith(f"meta1 group {hops[1]['group']}")
    assert cid in hops[1]["maps"] and hops[1]["maps"].endswith(f"meta2 group {shown['meta2_group']}")
    assert hops[2]["group"] == shown["meta2_group"]
    for h in hops:
        assert h["members"] and h["leader"], h
    table = oxio(grid, "container", "locate", name).stdout.splitlines()
    assert table[0].split() == ["HOP", "GROUP", "MAPS", "MEMBERS", "LEADER"] and len(table) == 4
    r = oxio(grid, "container", "create", name, check=False)
    assert_clear_error(r, 1, "already exists", name)
    r = oxio(grid, "container", "create", "x", "--account", unique("nobody"), check=False)
    assert_clear_error(r, 1, "does not exist", "oxio account create")
    assert oxio_json(grid, "container", "delete", name)["deleted"] is True
    r = oxio(grid, "container", "show", name, check=False)
    assert_clear_error(r, 1, "does not exist", name)
    r = oxio(grid, "container", "locate", name, check=False)
    assert_clear_error(r, 1, "does not exist")


def test_object_round_trip(grid, s3, bucket, tmp_path):
    src = tmp_path / "src.bin"
    data = write_random(src, 300_000, 7)
    made = oxio_json(grid, "object", "create", bucket, str(src), "--key", "dir/obj", "--policy", "THREECOPIES",
                     "--content-type", "application/x-test", "--meta", "color=blue", "--no-progress")
    assert made["size"] == len(data) and made["etag"] == hashlib.md5(data).hexdigest()
    shown = oxio_json(grid, "object", "show", bucket, "dir/obj")
    assert shown["policy"] == "THREECOPIES" and shown["size"] == len(data)
    assert shown["content_type"] == "application/x-test" and shown["metadata"] == {"color": "blue"}
    assert shown["chunks"] == 3 and shown["metachunks"] == 1 and shown["version"] > 0 and shown["mtime_ms"] > 0
    assert re.search(r"^etag\s+" + made["etag"] + "$", oxio(grid, "object", "show", bucket, "dir/obj").stdout, re.M)
    # The S3 gateway sees the object the CLI wrote.
    head = s3.head_object(Bucket=bucket, Key="dir/obj")
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"color": "blue"}
    chunks = oxio_json(grid, "object", "locate", bucket, "dir/obj")
    assert [c["position"] for c in chunks] == ["0.0", "0.1", "0.2"]
    assert len({c["rawx_id"] for c in chunks}) == 3
    for c in chunks:
        assert c["size"] == len(data) and c["hash"].startswith("crc32c:") and len(c["chunk_id"]) == 64
    out = tmp_path / "out.bin"
    saved = oxio_json(grid, "object", "save", bucket, "dir/obj", "--file", str(out), "--no-progress")
    assert saved["bytes"] == len(data) and out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith("oxio-part")] == []
    streamed = oxio(grid, "object", "save", bucket, "dir/obj", binary=True)
    assert streamed.stdout == data and streamed.stderr == b""
    # Default key: the file name.
    oxio(grid, "object", "create", bucket, str(src), "--no-progress")
    assert oxio_json(grid, "object", "show", bucket, "src.bin")["size"] == len(data)
    assert oxio_json(grid, "object", "delete", bucket, "dir/obj")["deleted"] is True
    r = oxio(grid, "object", "show", bucket, "dir/obj", check=False)
    assert_clear_error(r, 1, "does not exist", '"dir/obj"')
    assert [o["key"] for o in oxio_json(grid, "object", "list", bucket)] == ["src.bin"]


def chunk_file(grid, chunk_id):
    cid = chunk_id.upper()
    found = glob.glob(os.path.join(grid.data, "rawx", "vol*", cid[:3], cid))
    assert len(found) == 1, (chunk_id, found)
    return found[0]


def test_object_locate_check_finds_a_missing_chunk(grid, bucket, tmp_path):
    src = tmp_path / "ec.bin"
    data = write_random(src, 500_000, 11)
    oxio(grid, "object", "create", bucket, str(src), "--key", "ec", "--policy", "EC42", "--no-progress")
    checked = oxio_json(grid, "object", "locate", bucket, "ec", "--check")
    assert len(checked) == 6 and [c["state"] for c in checked] == ["ok"] * 6
    victim = checked[2]
    os.remove(chunk_file(grid, victim["chunk_id"]))
    checked = oxio_json(grid, "object", "locate", bucket, "ec", "--check")
    states = {c["chunk_id"]: c["state"] for c in checked}
    assert states.pop(victim["chunk_id"]) == "missing"
    assert set(states.values()) == {"ok"}
    table = oxio(grid, "object", "locate", bucket, "ec", "--check").stdout.splitlines()
    assert table[0].split()[-2:] == ["STATE", "DETAIL"]
    assert [line for line in table if " missing" in line] == [l for l in table if victim["chunk_id"] in l]
    # Erasure coding still serves every byte.
    out = tmp_path / "back.bin"
    oxio(grid, "object", "save", bucket, "ec", "--file", str(out), "--no-progress")
    assert out.read_bytes() == data


def test_inline_object_has_no_chunks(grid, bucket, tmp_path):
    src = tmp_path / "small"
    src.write_bytes(b"tiny")
    oxio(grid, "object", "create", bucket, str(src), "--no-progress")
    assert oxio_json(grid, "object", "locate", bucket, "small", "--check") == []
    assert "inline" in oxio(grid, "object", "locate", bucket, "small").stdout
    assert oxio(grid, "object", "save", bucket, "small", binary=True).stdout == b"tiny"


def test_missing_container_and_key_are_clear_errors(grid, bucket, tmp_path):
    for args in (["object", "show", "no-such-container", "k"],
                 ["object", "save", "no-such-container", "k"],
                 ["object", "locate", "no-such-container", "k", "--check"],
                 ["container", "delete", "no-such-container"]):
        r = oxio(grid, *args, check=False)
        assert_clear_error(r, 1, '"no-such-container" does not exist', "oxio container")
    for args in (["object", "show", bucket, "no/key"], ["object", "delete", bucket, "no/key"],
                 ["object", "locate", bucket, "no/key"]):
        r = oxio(grid, *args, check=False)
        assert_clear_error(r, 1, '"no/key" does not exist', f"oxio object list {bucket}")
    out = tmp_path / "never"
    r = oxio(grid, "object", "save", bucket, "no/key", "--file", str(out), check=False)
    assert_clear_error(r, 1, "does not exist")
    assert not out.exists()
    r = oxio(grid, "object", "create", bucket, str(tmp_path / "absent.bin"), check=False)
    assert_clear_error(r, 2, "cannot open", "absent.bin")
    r = oxio(grid, "object", "create", bucket, str(out), "--policy", "EC", check=False)
    assert_clear_error(r, 2, "invalid storage policy")
    r = oxio(grid, "object", "frobnicate", check=False)
    assert r.returncode == 2


def test_completion_scripts(grid):
    for shell, needle in (("bash", "complete"), ("zsh", "#compdef oxio"), ("fish", "complete -c oxio")):
        r = oxio(grid, "completion", shell)
        assert needle in r.stdout and "locate" in r.stdout, shell
    r = oxio(grid, "completion", "tcsh", check=False)
    assert r.returncode == 2


def test_config_file_and_its_precedence(grid, tmp_path):
    account = unique("cfg")
    oxio(grid, "account", "create", account)
    oxio(grid, "container", "create", "only-in-cfg", "--account", account)
    cfg = tmp_path / "oxio.toml"
    cfg.write_text(
        f'conscience = "{grid.env["OXIO_CONSCIENCE"]}"\n'
        f'directory = {json.dumps(grid.env["OXIO_DIRECTORY"].split(","))}\n'
        f'account = "{account}"\n'
    )
    env = base_env()

    def names(*args, env=env):
        return [c["name"] for c in oxio_json(grid, "container", "list", *args, env=env)]

    # The file alone is enough: addresses and account.
    assert names("--config", str(cfg)) == ["only-in-cfg"]
    assert names(env=dict(env, OXIO_CONFIG=str(cfg))) == ["only-in-cfg"]
    # The default file, found under the config home.
    home = tmp_path / "home"
    (home / ".config" / "oxio").mkdir(parents=True)
    (home / ".config" / "oxio" / "config.toml").write_text(cfg.read_text())
    default_env = dict(env, HOME=str(home))
    default_env.pop("XDG_CONFIG_HOME")
    assert names(env=default_env) == ["only-in-cfg"]
    # The environment wins over the file, a flag over both.
    assert "only-in-cfg" not in names("--config", str(cfg), env=dict(env, OXIO_ACCOUNT="dev"))
    assert "only-in-cfg" not in names("--config", str(cfg), "--account", "dev", env=dict(env, OXIO_ACCOUNT=account))
    bad_addr = tmp_path / "bad-addr.toml"
    bad_addr.write_text('conscience = "127.0.0.1:1"\ndirectory = "127.0.0.1:1"\n')
    r = oxio(grid, "cluster", "list", "--config", str(bad_addr), env=env, check=False)
    assert_clear_error(r, 1, "127.0.0.1:1", "is the grid running")
    r = oxio(grid, "cluster", "list", "--config", str(bad_addr), "--conscience", grid.env["OXIO_CONSCIENCE"], env=env)
    assert "rawx-0" in r.stdout
    r = oxio(grid, "cluster", "list", env=dict(env, OXIO_CONFIG=str(bad_addr), OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"]))
    assert "rawx-0" in r.stdout
    # A bad file names itself and the key at fault.
    for text, key in (("conscience = 5\n", "`conscience`"), ('acount = "x"\n', "`acount`"),
                      ('directory = ["nohostport"]\n', "`directory`")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        r = oxio(grid, "container", "list", "--config", str(bad), env=env, check=False)
        assert_clear_error(r, 2, str(bad), key)
    r = oxio(grid, "container", "list", "--config", str(tmp_path / "missing.toml"), env=env, check=False)
    assert_clear_error(r, 2, "missing.toml")


def documented_metrics():
    """Metric names of docs/metrics.md, and which of them are histograms."""
    names, histograms = set(), set()
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        for line in f:
            m = re.match(r"\|\s*`(oxio_[a-z0-9_]+)`\s*\|\s*([a-z]+)", line)
            if m:
                names.add(m.group(1))
                if m.group(2) == "histogram":
                    histograms.add(m.group(1))
    return names, histograms


def test_grafana_dashboard_uses_documented_metrics():
    names, histograms = documented_metrics()
    assert "oxio_s3_http_request_duration_seconds" in histograms and len(names) > 20
    allowed = set(names)
    for h in histograms:
        allowed |= {h + "_bucket", h + "_sum", h + "_count"}
    with open(os.path.join(ROOT, "deploy", "grafana", "oxio.json")) as f:
        dash = json.load(f)
    assert [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    used = set()
    for e in exprs:
        found = re.findall(r"\boxio_[a-z0-9_]+", e)
        assert found, e
        unknown = [m for m in found if m not in allowed]
        assert not unknown, (e, unknown)
        used.update(found)
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
    for needed in ("oxio_s3_http_request_duration_seconds_bucket", "oxio_s3_http_received_bytes_total",
                   "oxio_rawx_volume_chunks", "oxio_rawx_chunk_checksum_failures_total",
                   "oxio_rawx_scrub_checked_chunks", "oxio_conscience_registry_score",
                   "oxio_s3_sdk_degraded_reads_total", "oxio_directory_grpc_requests_total",
                   "oxio_directory_raft_apply_lag_entries", "oxio_directory_raft_groups_led",
                   "oxio_conscience_grpc_requests_total"):
        assert needed in used, needed


def test_yaml_format_matches_json(grid):
    import yaml

    as_json = json.loads(oxio(grid, "cluster", "list", "rawx", "--format", "json").stdout)
    as_yaml = yaml.safe_load(oxio(grid, "cluster", "list", "rawx", "--format", "yaml").stdout)
    assert [s["id"] for s in as_yaml] == [s["id"] for s in as_json]
    assert set(as_yaml[0]) == set(as_json[0])


def test_volume_gc_removes_old_orphans_only(grid, s3, bucket):
    import urllib.request

    s3.put_object(Bucket=bucket, Key="kept", Body=os.urandom(300_000))
    rawx = {s["id"]: s for s in json.loads(oxio(grid, "cluster", "list", "rawx", "--format", "json").stdout)}
    addr = rawx["rawx-0"]["addr"]
    vol = os.path.join(grid.data, "rawx", "vol0")
    old_id, young_id = "E7" * 32, "E8" * 32
    for cid in (old_id, young_id):
        req = urllib.request.Request(f"http://{addr}/{cid}", data=b"orphan" * 100, method="PUT")
        assert urllib.request.urlopen(req, timeout=10).status == 201
    old_path = os.path.join(vol, old_id[:3], old_id)
    week_ago = os.path.getmtime(old_path) - 7 * 86400
    os.utime(old_path, (week_ago, week_ago))

    dry = json.loads(oxio(grid, "volume", "gc", "rawx-0", "--dry-run", "--format", "json").stdout)
    assert (dry["orphans"], dry["deleted"], dry["dry_run"]) == (1, 0, True)
    assert dry["young"] >= 1 and dry["recorded"] >= 1
    assert os.path.exists(old_path)
    done = json.loads(oxio(grid, "volume", "gc", "rawx-0", "--format", "json").stdout)
    assert (done["orphans"], done["deleted"], done["failed"]) == (1, 1, 0)
    assert not os.path.exists(old_path)
    young_path = os.path.join(vol, young_id[:3], young_id)
    assert os.path.exists(young_path), "a chunk younger than the grace period is kept"
    assert s3.get_object(Bucket=bucket, Key="kept")["ContentLength"] == 300_000
    # Clean the planted young chunk so later tests see only recorded chunks.
    oxio(grid, "volume", "gc", "rawx-0", "--grace", "0s")
    assert not os.path.exists(young_path)

    r = oxio(grid, "volume", "gc", "rawx-77", check=False)
    assert r.returncode == 1 and "rawx-77" in r.stderr


def wait_until(what, predicate, deadline_s, pause_s=0.5):
    """Polls `predicate` until it returns a true value, failing after `deadline_s`."""
    import time

    deadline = time.monotonic() + deadline_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {deadline_s}s")
        time.sleep(pause_s)


# The S3 gateway trusts a looked-up secret for this long (s3-proxy `KEY_TTL`); a
# deleted key may keep working that long, plus a margin for slow machines.
KEY_CACHE_DEADLINE_S = 30 + 20


def test_key_delete_stops_the_key_at_the_gateway(grid):
    from botocore.exceptions import ClientError

    account = unique("keydel")
    oxio(grid, "account", "create", account)
    kept = oxio_json(grid, "key", "create", account)[0]
    key = oxio_json(grid, "key", "create", account)[0]
    s3 = grid.client(key["access_key"], key["secret_key"])
    s3.list_buckets()  # Works, and puts the secret in the gateway's cache.

    deleted = oxio_json(grid, "key", "delete", key["access_key"])
    assert deleted == [{"access_key": key["access_key"], "account": account, "deleted": True}]
    listed = [k["access_key"] for k in oxio_json(grid, "key", "list", account)]
    assert listed == [kept["access_key"]]

    def refused():
        try:
            s3.list_buckets()
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            return True
        return False

    wait_until("the gateway refuses the deleted key", refused, KEY_CACHE_DEADLINE_S)
    # The other key of the account still signs.
    grid.client(kept["access_key"], kept["secret_key"]).list_buckets()

    r = oxio(grid, "key", "delete", key["access_key"], check=False)
    assert_clear_error(r, 1, f'no access key "{key["access_key"]}"')
    yaml_out = oxio(grid, "key", "delete", kept["access_key"], "--format", "yaml").stdout
    assert f"access_key: {kept['access_key']}" in yaml_out and "deleted: true" in yaml_out
    assert oxio_json(grid, "key", "list", account) == []
    oxio(grid, "account", "delete", account)


def test_account_delete_refuses_while_not_empty(grid):
    account = unique("acctdel")
    oxio(grid, "account", "create", account)
    keys = sorted(oxio_json(grid, "key", "create", account)[0]["access_key"] for _ in range(2))
    oxio(grid, "container", "create", "c1", "--account", account)

    r = oxio(grid, "account", "delete", account, check=False)
    assert_clear_error(r, 1, f'account "{account}" is not empty', "1 container(s) (c1)", "2 access key(s)", "oxio container delete")
    # --force deletes keys, never containers.
    r = oxio(grid, "account", "delete", account, "--force", check=False)
    assert_clear_error(r, 1, "1 container(s) (c1)")
    assert "access key" not in r.stderr
    assert sorted(k["access_key"] for k in oxio_json(grid, "key", "list", account)) == keys
    assert account in [a["account"] for a in oxio_json(grid, "account", "list")]

    oxio(grid, "container", "delete", "c1", "--account", account)
    r = oxio(grid, "account", "delete", account, check=False)
    assert_clear_error(r, 1, "2 access key(s)", keys[0], "--force")
    assert "container(s)" not in r.stderr

    done = oxio_json(grid, "account", "delete", account, "--force")
    assert len(done) == 1 and done[0]["account"] == account
    assert sorted(done[0]["keys_deleted"]) == keys
    assert account not in [a["account"] for a in oxio_json(grid, "account", "list")]
    assert oxio_json(grid, "key", "list", account) == []
    r = oxio(grid, "account", "delete", account, check=False)
    assert_clear_error(r, 1, f'no account "{account}"')

    # An empty account goes without --force; the table names it.
    empty = unique("acctdel")
    oxio(grid, "account", "create", empty)
    table = oxio(grid, "account", "delete", empty).stdout.splitlines()
    assert table[0].split() == ["ACCOUNT", "CREATED_MS", "KEYS_DELETED"] and empty in table[1]


def test_cluster_deregister(grid):
    # A lock naming a service that never registered is forgotten with it.
    ghost = unique("ghost")
    oxio(grid, "cluster", "lock", "rawx", ghost, "--score", "0")
    rows = oxio_json(grid, "cluster", "deregister", "rawx", ghost)
    assert [(r["type"], r["id"], r["registered"], r["lock_state_changed"]) for r in rows] == [
        ("rawx", ghost, False, True)
    ]
    assert rows[0]["conscience"] == grid.env["OXIO_CONSCIENCE"]
    r = oxio(grid, "cluster", "deregister", "rawx", ghost, check=False)
    assert_clear_error(r, 1, f"no service rawx/{ghost} is known", "oxio cluster list")

    # A running service is forgotten, then registers again at its next heartbeat.
    def rawx_ids():
        return {s["id"] for s in oxio_json(grid, "cluster", "list", "rawx")}

    assert "rawx-5" in rawx_ids()
    rows = oxio_json(grid, "cluster", "deregister", "rawx", "rawx-5")
    assert rows[0]["registered"] is True
    wait_until("rawx-5 registers again", lambda: "rawx-5" in rawx_ids(), 20)
    oxio(grid, "cluster", "wait", "rawx", "--score", "1", "--timeout", "30s")

    help_text = oxio(grid, "cluster", "deregister", "--help").stdout
    assert "re-registers at its" in help_text and "next heartbeat" in help_text

    env = dict(base_env(), OXIO_CONSCIENCE=f"{grid.env['OXIO_CONSCIENCE']},127.0.0.1:1")
    env["OXIO_DIRECTORY"] = grid.env["OXIO_DIRECTORY"]
    oxio(grid, "cluster", "lock", "rawx", ghost, "--score", "0", env=dict(env, OXIO_CONSCIENCE=grid.env["OXIO_CONSCIENCE"]))
    r = oxio(grid, "cluster", "deregister", "rawx", ghost, check=False, env=env)
    assert_clear_error(r, 1, "deregister not applied on 1 of 2 conscience(s)", "127.0.0.1:1")
    # The reachable replica did forget it.
    r = oxio(grid, "cluster", "deregister", "rawx", ghost, check=False)
    assert_clear_error(r, 1, f"no service rawx/{ghost} is known")
