#!/usr/bin/env python3
"""The measuring half of `scripts/bench-vs-peer.sh`: runs the `oxio bench` matrix
against oxio and a peer S3 server, interleaved, and writes the comparison table.

Subcommands:
  ports N              print N free port bases (each the start of 400 free ports)
  wait-ready ...       retry a tiny PUT run until the endpoint answers without errors
  matrix ...           run the matrix and write the markdown table (and raw JSON)

Server CPU time comes from /proc/PID/stat (utime + stime of the whole process, every
thread). The measured phase of each `oxio bench` run is found from its progress line:
its stderr is a pseudo-terminal, and each phase (prepare, measure, cleanup) ends with
a lone "clear line" sequence; the server's CPU counter is read at that instant. Peak
RSS is the server's VmHWM, reset before each run through /proc/PID/clear_refs.
"""

import argparse
import datetime
import json
import os
import platform
import pty
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

CLEAR = b"\r\x1b[2K"
PROGRESS = re.compile(rb"^[a-z]+: +[0-9]")
TAIL_BYTES = 8192
PORT_SPAN = 400
CLK_TCK = os.sysconf("SC_CLK_TCK")
BUCKET = "oxio-bench-peer"


# ---------------------------------------------------------------- /proc readings


def proc_cpu_s(pid):
    """User + system CPU seconds of process `pid` (all its threads, live and gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss(pid):
    """Resets VmHWM (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))


# ---------------------------------------------------------------- free ports


def span_free(base):
    for port in range(base, base + PORT_SPAN):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def cmd_ports(args):
    bases = []
    for _ in range(500):
        base = random.randrange(20000, 50000 - PORT_SPAN, 10)
        if all(abs(base - b) >= PORT_SPAN for b in bases) and span_free(base):
            bases.append(base)
            if len(bases) == args.count:
                print(" ".join(map(str, bases)))
                return 0
    print("no free port range found", file=sys.stderr)
    return 1


# ---------------------------------------------------------------- one bench run


class Target:
    def __init__(self, name, endpoint, pid, key, secret):
        self.name, self.endpoint, self.pid, self.key, self.secret = name, endpoint, int(pid), key, secret
        self.rss_reset = True
        # A second instance of the same server started under `taskset -c 0`, which
        # takes the pinned cases: a server pinned only after it started keeps the
        # thread pools it sized for every core, all crowded onto one.
        self.pinned_twin = None

    def attach_pinned_twin(self, twin):
        if twin.name != self.name:
            raise SystemExit("the pinned target of %s is named %s" % (self.name, twin.name))
        cpus = cpu_list(os.sched_getaffinity(twin.pid))
        if cpus != "0":
            raise SystemExit("the pinned %s (pid %d) may run on cores %s, not only core 0"
                             % (twin.name, twin.pid, cpus))
        self.pinned_twin = twin


def bench_cmd(oxio, target, op, size, objects, concurrency, stop, keep=False):
    cmd = [
        oxio, "bench", "--endpoint", target.endpoint, "--access-key", target.key,
        "--secret-key", target.secret, "--bucket", BUCKET, "--op", op, "--size", size,
        "--objects", str(objects), "--concurrency", str(concurrency), "--json",
    ]
    cmd += stop
    if keep:
        cmd.append("--keep")
    return cmd


def run_bench(cmd, server_pid, phases_before_measure):
    """Runs one `oxio bench --json` with stderr on a pty; returns (report or None,
    CPU seconds of the server in the measured phase, 'measured' | 'whole run', text)."""
    master, slave = pty.openpty()
    marks = []
    tail = bytearray()
    start_cpu = proc_cpu_s(server_pid)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)

    def reader():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            now, cpu = time.monotonic(), proc_cpu_s(server_pid)
            for piece in chunk.split(CLEAR)[1:]:
                if not PROGRESS.match(piece):
                    marks.append((now, cpu))
            tail.extend(chunk)
            del tail[:-TAIL_BYTES]

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        out, _ = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    end_cpu = proc_cpu_s(server_pid)
    t.join(timeout=5)
    os.close(master)
    text = re.sub(rb"\r\x1b\[2K", b"", bytes(tail)).decode(errors="replace").strip()
    report = None
    if proc.returncode == 0:
        try:
            report = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            text += "\n(unparsable output) " + out.decode(errors="replace")[-400:]
    else:
        text += "\n(exit status %d)" % proc.returncode
    need = phases_before_measure + 1
    if len(marks) >= need and None not in (start_cpu, end_cpu):
        begin = marks[phases_before_measure - 1][1] if phases_before_measure else start_cpu
        cpu, window = marks[need - 1][1] - begin, "measured"
    elif None not in (start_cpu, end_cpu):
        cpu, window = end_cpu - start_cpu, "whole run"
    else:
        cpu, window = None, "n/a"
    return report, cpu, window, text, time.monotonic() - start


def cmd_wait_ready(args):
    target = Target("t", args.endpoint, os.getpid(), args.access_key, args.secret_key)
    deadline = time.monotonic() + args.deadline
    cmd = bench_cmd(args.oxio, target, "put", "4KiB", 0, 2, ["--count", "8"], keep=True)
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode == 0:
            try:
                rep = json.loads(proc.stdout.strip().splitlines()[-1])
                if rep.get("errors") == 0:
                    return 0
                last = json.dumps(rep.get("errors_by_kind"))
            except (ValueError, IndexError):
                last = proc.stdout[-300:]
        else:
            last = (proc.stderr or proc.stdout)[-300:]
        time.sleep(1)
    print("endpoint %s not ready after %ss: %s" % (args.endpoint, args.deadline, last), file=sys.stderr)
    return 1


# ---------------------------------------------------------------- the matrix


class Case:
    def __init__(self, key, label, op, size, concurrency, objects, ceiling=False):
        self.key, self.label, self.op, self.size = key, label, op, size
        self.concurrency, self.objects, self.ceiling = concurrency, objects, ceiling


def every_case(args):
    return [
        Case("put-4k-c16", "4 KiB PUT c16", "put", "4KiB", 16, 0),
        Case("put-4k-c64", "4 KiB PUT c64", "put", "4KiB", 64, 0),
        Case("get-4k-c16", "4 KiB GET c16", "get", "4KiB", 16, args.small_objects),
        Case("get-4k-c64", "4 KiB GET c64", "get", "4KiB", 64, args.small_objects),
        Case("get-1m-c16", "1 MiB GET c16", "get", "1MiB", 16, args.mib_objects),
        Case("put-16m-c4", "16 MiB PUT c4", "put", "16MiB", 4, 0),
        Case("get-16m-c4", "16 MiB GET c4", "get", "16MiB", 4, args.big_objects, ceiling=True),
        Case("list", "LIST %s keys c4" % format(args.list_keys, ","), "list", "0", 4, args.list_keys),
    ]


def cases(args):
    """The matrix, or only the cases `--cases` names (in matrix order)."""
    every = every_case(args)
    if not args.cases:
        return every
    wanted = [k.strip() for k in args.cases.split(",") if k.strip()]
    unknown = sorted(set(wanted) - {c.key for c in every})
    if unknown:
        raise SystemExit("unknown case(s) %s; known: %s" % (", ".join(unknown), ", ".join(c.key for c in every)))
    return [c for c in every if c.key in wanted]


def one_run(args, server, case, pinned, log):
    target = server.pinned_twin if pinned else server
    server.rss_reset = reset_peak_rss(target.pid) and server.rss_reset
    cmd = bench_cmd(args.oxio, target, case.op, case.size, case.objects, case.concurrency,
                    ["--duration", args.duration])
    if pinned:
        cmd = ["taskset", "-c", "1"] + cmd
    report, cpu, window, text, wall = run_bench(cmd, target.pid, 1 if case.objects else 0)
    row = {
        "system": target.name, "case": case.key, "pinned": pinned, "server_cpu_s": cpu,
        "cpu_window": window, "peak_rss_kb": proc_status_kb(target.pid, "VmHWM"), "wall_s": round(wall, 2),
    }
    if report is None:
        row.update({"failed": True, "detail": text[-1500:]})
        log("  %-8s %-16s %-8s FAILED: %s" % (target.name, case.key, "pinned" if pinned else "free", text[-300:]))
        return row
    lat = report.get("latency_ms", {})
    row.update({
        "ops_per_s": report.get("ops_per_s"), "mib_per_s": report.get("mib_per_s"),
        "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"), "errors": report.get("errors", 0),
        "errors_by_kind": report.get("errors_by_kind", {}), "error_details": report.get("error_details", {}),
        "client_cpu_s": report.get("client_cpu_s"),
        "ops": report.get("ops"), "cleanup": report.get("cleanup"),
    })
    log("  %-8s %-16s %-6s %9.1f ops/s %9.1f MiB/s p99 %8.2f ms  errors %d  server CPU %s s (%s)" % (
        target.name, case.key, "pinned" if pinned else "free", row["ops_per_s"] or 0, row["mib_per_s"] or 0,
        row["p99_ms"] or 0, row["errors"], "%.2f" % cpu if cpu is not None else "?", window))
    for kind, said in sorted(row["error_details"].items()):
        log("           %s: %s" % (kind, said))
    return row


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return format(v, ",.%df" % digits)


def summarize(args, rows, oxio, peer, null):
    def pick(system, case, pinned, field):
        return [r.get(field) for r in rows if r["system"] == system and r["case"] == case.key
                and r["pinned"] == pinned and not r.get("failed")]

    def fails(system, case, pinned):
        return sum(1 for r in rows if r["system"] == system and r["case"] == case.key and r["pinned"] == pinned
                   and r.get("failed"))

    def errors(system, case, pinned):
        return sum(pick(system, case, pinned, "errors")) + fails(system, case, pinned)

    summary = {}
    for case in cases(args):
        for pinned in (False, True):
            s = {}
            for sysname in (oxio.name, peer.name) + ((null.name,) if null and case.ceiling else ()):
                s[sysname] = {
                    "ops_per_s": med(pick(sysname, case, pinned, "ops_per_s")),
                    "mib_per_s": med(pick(sysname, case, pinned, "mib_per_s")),
                    "p99_ms": med(pick(sysname, case, pinned, "p99_ms")),
                    "cpu_s": med(pick(sysname, case, pinned, "server_cpu_s")),
                    "cpu_whole": any(w != "measured" for w in pick(sysname, case, pinned, "cpu_window")),
                    "rss_kb": max([v for v in pick(sysname, case, pinned, "peak_rss_kb") if v] or [0]) or None,
                    "errors": errors(sysname, case, pinned),
                }
            ratios = []
            for r in range(args.rounds):
                a = [x for x in rows if x["system"] == oxio.name and x["case"] == case.key and x["pinned"] == pinned
                     and x.get("round") == r and not x.get("failed")]
                b = [x for x in rows if x["system"] == peer.name and x["case"] == case.key and x["pinned"] == pinned
                     and x.get("round") == r and not x.get("failed")]
                if a and b and b[0]["ops_per_s"]:
                    ratios.append(a[0]["ops_per_s"] / b[0]["ops_per_s"])
            s["ratio"] = med(ratios)
            summary[(case.key, pinned)] = s
    return summary


def table(args, summary, oxio, peer):
    o, p = oxio.name, peer.name
    lines = [
        "| case | pinning | %s ops/s | %s MiB/s | %s p99 ms | %s ops/s | %s MiB/s | %s p99 ms | %s/%s | "
        "%s CPU s | %s CPU s | %s peak RSS MiB | %s peak RSS MiB | errors %s / %s |" % (o, o, o, p, p, p, o, p, o, p, o, p, o, p),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for case in cases(args):
        for pinned in (False, True):
            s = summary[(case.key, pinned)]
            a, b = s[o], s[p]

            def cpu(x):
                return fmt(x["cpu_s"], 2) + ("*" if x["cpu_whole"] and x["cpu_s"] is not None else "")

            def rss(x):
                return fmt(x["rss_kb"] / 1024 if x["rss_kb"] else None)

            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |" % (
                case.label, "server core 0, client core 1" if pinned else "none",
                fmt(a["ops_per_s"]), fmt(a["mib_per_s"], 1), fmt(a["p99_ms"], 2),
                fmt(b["ops_per_s"]), fmt(b["mib_per_s"], 1), fmt(b["p99_ms"], 2),
                ("%.2f×" % s["ratio"]) if s["ratio"] is not None else "–",
                cpu(a), cpu(b), rss(a), rss(b), a["errors"], b["errors"]))
    return lines


def big_get_targets(g, pin, o, p, null, row):
    ceil = g.get(null.name, {}).get("mib_per_s") if null else None
    mine = g[o]["mib_per_s"]
    row("16 MiB GET ≥ 90 %% of the do-nothing ceiling (%s MiB/s)" % fmt(ceil), pin,
        "%s MiB/s = %s %%" % (fmt(mine), fmt(100 * mine / ceil if mine and ceil else None)),
        None if not (mine and ceil) else mine >= 0.9 * ceil)
    row("16 MiB GET ≥ %s" % p, pin, "%s vs %s MiB/s" % (fmt(mine), fmt(g[p]["mib_per_s"])),
        None if mine is None or g[p]["mib_per_s"] is None else mine >= g[p]["mib_per_s"])


# Bytes on disk per byte of a 16 MiB PUT: `oxiod dev` writes EC 4+2.
EC_WRITES = 1.5


def big_put_targets(w, pin, o, p, disk_mib, files_mib, writers, row):
    mine = w[o]["mib_per_s"]
    goal = 0.8 * disk_mib / EC_WRITES if disk_mib else None
    row("16 MiB PUT ≥ 80 %% of disk fdatasync rate ÷ 1.5 (%s MiB/s)" % fmt(goal), pin, "%s MiB/s" % fmt(mine),
        None if not (mine and goal) else mine >= goal)
    if files_mib:
        # Context, not a target: the same writes measured as the PUTs lay them out.
        on_disk = EC_WRITES * mine if mine else None
        row("(context) 16 MiB PUT's disk writes (× 1.5) against %d fdatasync'd 4 MiB files at once (%s MiB/s)"
            % (writers, fmt(files_mib)), pin,
            "%s MiB/s = %s %%" % (fmt(on_disk), fmt(100 * on_disk / files_mib if on_disk else None)), None)
    row("16 MiB PUT ≥ %s" % p, pin, "%s vs %s MiB/s" % (fmt(mine), fmt(w[p]["mib_per_s"])),
        None if mine is None or w[p]["mib_per_s"] is None else mine >= w[p]["mib_per_s"])


def targets(args, summary, oxio, peer, null, peak_oxio_kb):
    o, p = oxio.name, peer.name
    out = ["| target | pinning | measured | met |", "|---|---|---|---|"]

    def row(name, pinned, measured, ok):
        verdict = "n/a" if ok is None else ("yes" if ok else "**no**")
        out.append("| %s | %s | %s | %s |" % (name, pinned, measured, verdict))

    disk_mib = args.disk_mbps * 1e6 / 2**20 if args.disk_mbps else None
    files_mib = args.disk_files_mbps * 1e6 / 2**20 if args.disk_files_mbps else None
    for pinned in (False, True):
        pin = "pinned" if pinned else "none"
        ran = {key for (key, pin_of) in summary if pin_of == pinned}
        for key, label in (("get-4k-c16", "4 KiB GET c16"), ("get-4k-c64", "4 KiB GET c64")):
            if key not in ran:
                continue
            r = summary[(key, pinned)]["ratio"]
            row("%s ops/s ≥ 2× %s" % (label, p), pin, "%.2f×" % r if r is not None else "–", None if r is None else r >= 2)
        if "get-4k-c16" in ran:
            p99 = summary[("get-4k-c16", pinned)][o]["p99_ms"]
            row("4 KiB GET c16 p99 ≤ 2 ms", pin, "%s ms" % fmt(p99, 2), None if p99 is None else p99 <= 2)
        if "put-4k-c64" in ran:
            r = summary[("put-4k-c64", pinned)]["ratio"]
            row("4 KiB PUT c64 ops/s ≥ 1.5× %s (durable)" % p, pin, "%.2f×" % r if r is not None else "–",
                None if r is None else r >= 1.5)
        if "get-16m-c4" in ran:
            big_get_targets(summary[("get-16m-c4", pinned)], pin, o, p, null, row)
        if "put-16m-c4" in ran:
            big_put_targets(summary[("put-16m-c4", pinned)], pin, o, p, disk_mib, files_mib, args.chunk_writers, row)
    idle = args.oxio_idle_rss_kb
    row("idle `oxiod dev` RSS ≤ 400 MB", "–", "%s MB" % fmt(idle * 1024 / 1e6 if idle else None),
        None if not idle else idle * 1024 <= 400e6)
    row("`oxiod dev` peak RSS under the matrix ≤ 1 GB", "–",
        "%s MB" % fmt(peak_oxio_kb * 1024 / 1e6 if peak_oxio_kb else None),
        None if not peak_oxio_kb else peak_oxio_kb * 1024 <= 1e9)
    return out


def machine_facts():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = proc_status_kb_meminfo()
    return "%d CPU cores (%s), %s GiB RAM, Linux %s, loopback only" % (
        os.cpu_count() or 0, model, fmt(mem / 2**20 if mem else None, 1), platform.release())


def proc_status_kb_meminfo():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def error_notes(rows):
    """Markdown lines for the runs that failed and the runs that got errors (counts by
    kind, and what the first error of each kind said)."""
    doc = []
    failed = [r for r in rows if r.get("failed")]
    if failed:
        doc += ["### Failed runs", ""]
        doc += ["- %s %s %s round %d: `%s`" % (r["system"], r["case"], "pinned" if r["pinned"] else "unpinned",
                                               r["round"] + 1, r["detail"][-300:].replace("\n", " ").replace("`", "'"))
                for r in failed]
        doc.append("")
    erred = [r for r in rows if not r.get("failed") and r.get("errors")]
    if erred:
        doc += ["### Runs with errors", ""]
        for r in erred:
            kinds = ", ".join("%s ×%d" % (k, n) for k, n in sorted(r["errors_by_kind"].items()))
            said = "; ".join("%s: %s" % (k, d) for k, d in sorted(r.get("error_details", {}).items()))
            doc.append("- %s %s %s round %d: %s%s" % (
                r["system"], r["case"], "pinned" if r["pinned"] else "unpinned", r["round"] + 1, kinds,
                (" — `%s`" % said[:600].replace("`", "'")) if said else ""))
        doc.append("")
    return doc


def cmd_matrix(args):
    oxio = Target(*args.oxio_target)
    peer = Target(*args.peer_target)
    null = Target(*args.null_target) if args.null_target else None
    if null and not args.null_pinned_target:
        print("--null-target needs --null-pinned-target", file=sys.stderr)
        return 2
    for server, twin in ((oxio, args.oxio_pinned_target), (peer, args.peer_pinned_target),
                         (null, args.null_pinned_target)):
        if server:
            server.attach_pinned_twin(Target(*twin))
    if len(os.sched_getaffinity(0)) < 2:
        print("pinned runs need two cores; this process may use only %s" % cpu_list(os.sched_getaffinity(0)),
              file=sys.stderr)
        return 1
    rows = []
    started = datetime.datetime.now(datetime.timezone.utc)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    all_cases = cases(args)
    total = args.rounds * len(all_cases) * 2
    n = 0
    for rnd in range(args.rounds):
        for case in all_cases:
            for pinned in (False, True):
                n += 1
                log("[%d/%d] round %d, %s, %s" % (n, total, rnd + 1, case.label, "pinned" if pinned else "unpinned"))
                order = [oxio, peer] + ([null] if null and case.ceiling else [])
                for target in order:
                    row = one_run(args, target, case, pinned, log)
                    row["round"] = rnd
                    rows.append(row)
    peak_oxio = max([r["peak_rss_kb"] for r in rows if r["system"] == oxio.name and r.get("peak_rss_kb")] or [0])
    summary = summarize(args, rows, oxio, peer, null)
    doc = [
        "## Run of %s" % started.strftime("%Y-%m-%d %H:%M UTC"),
        "",
        "- Machine: %s." % machine_facts(),
        "- oxio: `%s` binaries from `%s`; %s" % (args.oxio_profile, args.oxio_bin_dir, args.oxio_durability),
        "- %s: %s; %s" % (peer.name, args.peer_version, args.peer_durability),
        "- Client: `oxio bench`, %d round(s) interleaved (%s then %s for every case), %s per case%s." % (
            args.rounds, oxio.name, peer.name, args.duration, " (quick mode)" if args.quick else ""),
        "- Pinned cases: `oxio bench` on core 1 (`taskset -c 1`) against a second instance of each server "
        "started under `taskset -c 0`, so that it sizes its threads for one core.",
        "- Disk under the data folders: %s MB/s sequential writes of 16 MiB with O_DIRECT + fdatasync; "
        "%s MB/s written as 16 MiB PUT c4 lays out its chunks (%d writers at once, 4 MiB files with "
        "O_DIRECT, an fdatasync per file); %s fsync'd 4 KiB writes/s one at a time." % (
            fmt(args.disk_mbps), fmt(args.disk_files_mbps), args.chunk_writers, fmt(args.fsync_iops)),
        "- Do-nothing S3 endpoint (`scripts/null_s3.py`), 16 MiB GET c4: %s MiB/s unpinned, %s MiB/s pinned." % (
            fmt(summary.get(("get-16m-c4", False), {}).get(null.name, {}).get("mib_per_s") if null else None),
            fmt(summary.get(("get-16m-c4", True), {}).get(null.name, {}).get("mib_per_s") if null else None)),
        "",
        "Medians over the rounds; the ratio is the median of the per-round ops/s ratios. CPU s is the "
        "server's CPU time (user + system, all threads) during the measured phase%s; peak RSS is the server's "
        "VmHWM over the run (prepare and clean-up included)%s." % (
            "" if all(r.get("cpu_window") == "measured" for r in rows if not r.get("failed"))
            else " (* = whole run, prepare and clean-up included: the phase ends were not seen)",
            "" if oxio.rss_reset and peer.rss_reset else " (not reset between runs: peak since start)"),
        "",
    ]
    doc += table(args, summary, oxio, peer)
    doc += ["", "### Targets", ""] + targets(args, summary, oxio, peer, null, peak_oxio) + [""]
    failed = [r for r in rows if r.get("failed")]
    doc += error_notes(rows)
    text = "\n".join(doc)
    with open(args.out, "w") as f:
        f.write(text)
    with open(args.out + ".json", "w") as f:
        json.dump({"started": started.isoformat(), "rows": rows}, f, indent=1)
    print(text)
    return 0 if not failed else 2


def main():
    ap = argparse.ArgumentParser(description="oxio vs peer benchmark helper")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("count", type=int)
    p = sub.add_parser("wait-ready")
    p.add_argument("--oxio", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--deadline", type=float, default=120)
    p = sub.add_parser("matrix")
    p.add_argument("--oxio", required=True, help="the oxio CLI binary")
    target = dict(nargs=5, metavar=("NAME", "ENDPOINT", "PID", "ACCESS_KEY", "SECRET_KEY"))
    p.add_argument("--oxio-target", required=True, **target)
    p.add_argument("--peer-target", required=True, **target)
    p.add_argument("--null-target", **target)
    p.add_argument("--oxio-pinned-target", required=True, **target,
                   help="an instance started under `taskset -c 0` for the pinned cases")
    p.add_argument("--peer-pinned-target", required=True, **target)
    p.add_argument("--null-pinned-target", **target)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", default="10s")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default="", help="comma-separated case keys (default: the whole matrix)")
    p.add_argument("--small-objects", type=int, default=1000)
    p.add_argument("--mib-objects", type=int, default=64)
    p.add_argument("--big-objects", type=int, default=8)
    p.add_argument("--list-keys", type=int, default=10000)
    p.add_argument("--disk-mbps", type=float)
    p.add_argument("--disk-files-mbps", type=float,
                   help="MB/s of --chunk-writers writers of fdatasync'd 4 MiB files at once")
    p.add_argument("--chunk-writers", type=int, default=24)
    p.add_argument("--fsync-iops", type=float)
    p.add_argument("--oxio-idle-rss-kb", type=int)
    p.add_argument("--oxio-profile", default="release")
    p.add_argument("--oxio-bin-dir", default="?")
    p.add_argument("--oxio-durability", default="")
    p.add_argument("--peer-version", default="")
    p.add_argument("--peer-durability", default="")
    p.add_argument("--out", default="bench-results.md")
    args = ap.parse_args()
    return {"ports": cmd_ports, "wait-ready": cmd_wait_ready, "matrix": cmd_matrix}[args.cmd](args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
