#!/usr/bin/env python3
"""The soak: one `wasmpod serve FOLDER` under a bounded, mixed, open-loop load for a long time,
with the folder's functions replaced now and then, sampling the process every 10 s.

Run by bench/soak.sh, which builds the binaries; `bench/README.md` explains the mix, the checks
and the outputs. Standard library only.

It fails (exit 1) when the open file descriptors or the threads grow (the largest value of the
second half of the run above the largest of the first half by more than a small slack), when any
request gets an answer its route does not expect (a 5xx from the hello route, a 200 from the trap
route, no answer at all; a 503 the server logged as an admission refusal is the pod shedding load
and is counted apart, as refused under load), or when a reload is not served.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from benchlib import clean_env, serve, stop

# The served folder: route name -> guest file under target/guests/wasm32-wasip1/release.
GUESTS = {"hello": "hello.wasm", "cpu": "cpu.wasm", "hog": "hog.wasm", "trap": "trap.wasm",
          "spin": "spin.wasm", "gate": "sleep.wasm"}
# Pod admission: capacity and queue depth (MB), and every tenant's caps. Each top-level file is
# its own tenant, so `gate`'s requests (600 MB each, above its 500 MB queue cap) run one at a
# time and any that arrives while one runs gets 503 at once.
CAPACITY_MB = 2000
QUEUE_DEPTH_MB = 4000
TENANT_INFLIGHT_MB = 1000
TENANT_QUEUED_MB = 500
SPIN_TIMEOUT_S = 0.2
# The mix: name, weight, path, Memory-Request, the statuses the route is expected to answer.
MIX = [
    ("hello", 10, "/hello", 10, {200}),
    ("cpu", 3, "/cpu?iters=5000000", 16, {200}),
    ("hog", 2, "/hog?mb=48", 64, {200}),
    ("reload", 3, "/reload", 10, {200}),
    ("trap", 1, "/trap", 10, {500}),
    ("timeout", 0.4, "/spin", 10, {504}),
    ("too-large", 1, "/hello", CAPACITY_MB + 1000, {413}),
    ("queue-full", 2.5, "/gate?ms=400", 600, {200, 503}),
]
# The function (route as configured) each target reaches, to match the server log's refusals.
FUNCTIONS = {"hello": "/hello/...", "cpu": "/cpu/...", "hog": "/hog/...", "reload": "/reload/...",
             "trap": "/trap/...", "timeout": "/spin/...", "too-large": "/hello/...",
             "queue-full": "/gate/..."}
# Routes whose 2xx latency is the p99 that must stay stable (the others answer by design
# after a timeout, a trap, or at once with a refusal).
STABLE_ROUTES = ["hello", "cpu", "hog", "reload"]
# Flatness: growth allowed from the first half's largest value to the second half's.
FD_SLACK = 16
THREAD_SLACK = 4
RSS_SLACK = 0.25  # a fraction of the first half's largest RSS (reported, not a failure)
# p99 stability: the median of the last third's per-minute p99s over the first third's.
P99_RATIO_LIMIT = 2.0
METRICS = ["wasmpod_instances_in_use", "wasmpod_inflight_requests", "wasmpod_queued_requests",
           "wasmpod_inflight_memory_mb", "wasmpod_guest_memory_bytes", "wasmpod_pool_warm_slots",
           "wasmpod_pool_idle_resident_bytes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wasmpod")
    ap.add_argument("--loadgen")
    ap.add_argument("--guests", help="directory holding the WAGI guests (*.wasm)")
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of load")
    ap.add_argument("--rate", type=float, default=25.0, help="requests per second, whole mix")
    ap.add_argument("--sample-interval", type=float, default=10.0)
    ap.add_argument("--reload-interval", type=float, default=30.0)
    ap.add_argument("--out", required=True, help="result directory (soak.json, README.md, soak.svg)")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--build", default="release")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only write README.md and soak.svg again from --out's soak.json")
    args = ap.parse_args()
    if args.render:
        with open(os.path.join(args.out, "soak.json")) as f:
            report = json.load(f)
        judge(report)
        write_outputs(args.out, report)
        return
    if not (args.wasmpod and args.loadgen and args.guests):
        ap.error("--wasmpod, --loadgen and --guests are required")

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        folder = os.path.join(work, "functions")
        os.mkdir(folder)
        for name, guest in GUESTS.items():
            shutil.copy(os.path.join(args.guests, guest), os.path.join(folder, name + ".wasm"))
        with open(os.path.join(folder, "spin.toml"), "w") as f:
            f.write(f"timeout = {SPIN_TIMEOUT_S}\n")
        write_reload_module(folder, 0)
        targets = os.path.join(work, "targets.json")
        with open(targets, "w") as f:
            json.dump([{"name": n, "weight": w, "path": p, "headers": {"Memory-Request": str(mb)}}
                       for n, w, p, mb, _ in MIX], f)

        server, base, log_path = start_server(args, work, folder)
        try:
            report = soak(args, server, base, folder, targets, work)
        finally:
            stop(server)
        report["server_log"] = summarize_log(log_path)

    report.update(commit=args.commit, build=args.build, quick=args.quick,
                  date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cores=os.cpu_count(),
                  rate=args.rate, duration_s=args.duration, sample_interval_s=args.sample_interval,
                  reload_interval_s=args.reload_interval,
                  mix=[{"name": n, "weight": w, "path": p, "memory_request_mb": mb,
                        "expected": sorted(e)} for n, w, p, mb, e in MIX],
                  settings={"capacity_mb": CAPACITY_MB, "queue_depth_mb": QUEUE_DEPTH_MB,
                            "tenant_max_inflight_mb": TENANT_INFLIGHT_MB,
                            "tenant_max_queued_mb": TENANT_QUEUED_MB, "spin_timeout_s": SPIN_TIMEOUT_S})
    judge(report)
    write_outputs(args.out, report)


def write_outputs(out, report):
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(markdown(report))
    with open(os.path.join(out, "soak.svg"), "w") as f:
        f.write(svg(report))
    print(markdown(report))
    if report["failures"]:
        for failure in report["failures"]:
            print(f"soak FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("soak passed: flat fds and threads, no unexpected answers, every reload served", file=sys.stderr)


def soak(args, server, base, folder, targets, work):
    samples = []
    started = time.monotonic()
    samples.append(sample(base, server.pid, 0.0, "idle"))
    csv_path = os.path.join(work, "requests.csv")
    loadgen = subprocess.Popen(
        [args.loadgen, "--base", base, "--targets", targets, "--rate", f"{args.rate:g}",
         "--duration", f"{args.duration:g}", "--seed", "11", "--timeout", "60",
         "--max-in-flight", "512", "--csv", csv_path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load_started = time.monotonic()
    reloads = []
    next_sample = load_started + args.sample_interval
    next_reload = load_started + args.reload_interval
    version = 0
    while loadgen.poll() is None:
        now = time.monotonic()
        if now >= next_sample:
            samples.append(sample(base, server.pid, now - load_started, "load"))
            next_sample += args.sample_interval
        if args.reload_interval > 0 and now >= next_reload and now - load_started < args.duration - 5:
            version += 1
            reloads.append(reload(base, folder, version, now - load_started))
            next_reload += args.reload_interval
        time.sleep(0.2)
    out, err = loadgen.communicate()
    if loadgen.returncode != 0:
        sys.exit(f"loadgen failed ({loadgen.returncode}):\n{err}")
    load_seconds = time.monotonic() - load_started
    # Idle again: wait (bounded) for the last requests to leave, then one more sample.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        values = scrape(base)
        if values.get("wasmpod_inflight_requests", 0) == 0 and values.get("wasmpod_queued_requests", 0) == 0:
            break
        time.sleep(0.2)
    samples.append(sample(base, server.pid, time.monotonic() - load_started, "after"))
    requests = read_csv(csv_path)
    return {"summary": json.loads(out), "samples": samples, "reloads": reloads,
            "load_seconds": load_seconds, "wall_seconds": time.monotonic() - started,
            "routes": route_figures(requests), "per_minute_p99_ms": per_minute_p99(requests),
            "peak_rss_mb": read_status(server.pid).get("VmHWM", 0) / 1024}


def write_reload_module(folder, version):
    """`reload.wat`, a hello whose body names its version, published atomically (written under
    a hidden name, then renamed into place), as the README says a deployer should."""
    text = f"content-type: text/plain\n\nversion {version:06d}\n"
    body = text.replace("\n", "\\n")
    wat = ("(module\n"
           '  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))\n'
           '  (memory (export "memory") 1)\n'
           f'  (data (i32.const 16) "{body}")\n'
           '  (func (export "_start")\n'
           f"    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const {len(text)}))\n"
           "    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))\n")
    hidden = os.path.join(folder, ".reload.wat")
    with open(hidden, "w") as f:
        f.write(wat)
    os.rename(hidden, os.path.join(folder, "reload.wat"))


def replace_with_custom_section(folder, name, version):
    """Replaces `<name>.wasm` by the same module with a custom section naming `version`
    appended: new bytes (a recompile and a swap under load), the same behaviour."""
    path = os.path.join(folder, name + ".wasm")
    # The original is kept beside the folder, so each version carries exactly one marker.
    original = os.path.join(os.path.dirname(folder), name + ".original.wasm")
    if not os.path.exists(original):
        shutil.copy(path, original)
    with open(original, "rb") as f:
        data = f.read()
    marker = b"soak-version"
    payload = bytes([len(marker)]) + marker + f"{version:06d}".encode()
    section = b"\x00" + leb128(len(payload)) + payload
    hidden = os.path.join(folder, "." + name + ".wasm")
    with open(hidden, "wb") as f:
        f.write(data + section)
    os.rename(hidden, path)


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def reload(base, folder, version, at):
    """Publishes reload.wat version `version` (and every other time a new hog.wasm), then waits
    (at most 60 s) until /reload answers with that version: the time until it is served."""
    started = time.monotonic()
    write_reload_module(folder, version)
    replaced = ["reload.wat"]
    if version % 2 == 1:
        replace_with_custom_section(folder, "hog", version)
        replaced.append("hog.wasm")
    want = f"version {version:06d}"
    served = False
    while time.monotonic() - started < 60:
        try:
            with urllib.request.urlopen(base + "/reload", timeout=10) as r:
                if want in r.read().decode(errors="replace"):
                    served = True
                    break
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.05)
    return {"version": version, "at_s": round(at, 1), "files": replaced, "served": served,
            "served_after_ms": round((time.monotonic() - started) * 1000, 1)}


def start_server(args, work, folder):
    """Starts `wasmpod serve FOLDER` on 127.0.0.1:0 (logging at info, which the log summary
    reads) and waits for its Ready line."""
    log_path = os.path.join(work, "server.log")
    flags = ["--concurrent-resource-request", str(CAPACITY_MB),
             "--queue-depth-resource-units", str(QUEUE_DEPTH_MB),
             "--tenant-max-inflight-mb", str(TENANT_INFLIGHT_MB),
             "--tenant-max-queued-mb", str(TENANT_QUEUED_MB),
             "--timeout", "30", "--drain-seconds", "0"]
    server, base = serve(args.wasmpod, [folder, "-l", "127.0.0.1:0"] + flags, log_path,
                         {**clean_env(), "RUST_LOG": "info"}, timeout=600)
    return server, base, log_path


def scrape(base):
    """The gauges of /metrics, and `wasmpod_function_loads_total` by result."""
    values = {}
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return values
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        if parts[0] in METRICS:
            values[parts[0]] = float(parts[1])
        m = re.match(r'wasmpod_function_loads_total\{result="(\w+)"\}', parts[0])
        if m:
            values["loads_" + m.group(1)] = float(parts[1])
    return values


def sample(base, pid, t, phase):
    status = read_status(pid)
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = None
    values = scrape(base)
    values.update(t=round(t, 1), phase=phase, rss_mb=round(status.get("VmRSS", 0) / 1024, 1),
                  fds=fds, threads=status.get("Threads"), **read_memory(pid))
    return values


def read_memory(pid):
    """Where the resident memory is (MB), from /proc/PID/status and /proc/PID/smaps: anonymous,
    file-backed (the binary) and shared (the modules' copy-on-write images); of the anonymous
    memory, the instance pool's (every anonymous mapping inside the span of its reservations,
    the inaccessible mappings of 1 GiB or more: linear memories, tables, stacks), the compiled
    code's (anonymous executable mappings) and the rest, the heap (mimalloc's arenas, thread
    stacks)."""
    status = read_status(pid)
    out = {"rss_anon_mb": status.get("RssAnon"), "rss_file_mb": status.get("RssFile"),
           "rss_shmem_mb": status.get("RssShmem")}
    out = {k: round(v / 1024, 1) for k, v in out.items() if v is not None}
    try:
        with open(f"/proc/{pid}/smaps") as f:
            text = f.read()
    except OSError:
        return out
    vmas = []  # [start, end, perms, anonymous, rss_kb]
    for line in text.splitlines():
        head = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$", line)
        if head:
            vmas.append([int(head.group(1), 16), int(head.group(2), 16), head.group(3),
                         head.group(4) == "0" and not head.group(5), 0])
        elif vmas and line.startswith("Rss:"):
            vmas[-1][4] = int(line.split()[1])
    reserved = [v for v in vmas if v[3] and v[2].startswith("---") and v[1] - v[0] >= 1 << 30]
    low = min((v[0] for v in reserved), default=0)
    high = max((v[1] for v in reserved), default=0)
    pool_kb = code_kb = heap_kb = 0
    for v_start, v_end, perms, anonymous, rss in vmas:
        if not anonymous:
            continue
        if low <= v_start and v_end <= high:
            pool_kb += rss
        elif perms[2] == "x":
            code_kb += rss
        else:
            heap_kb += rss
    out.update(pool_mb=round(pool_kb / 1024, 1), code_mb=round(code_kb / 1024, 1),
               heap_mb=round(heap_kb / 1024, 1))
    return out


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                value = value.strip()
                if value.endswith("kB"):
                    out[key] = int(value.split()[0])
                elif key == "Threads":
                    out[key] = int(value)
    except OSError:
        pass
    return out


def read_csv(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            sched, target, status, latency, _ = line.rstrip("\n").split(",", 4)
            rows.append((float(sched) / 1000, target, int(status), float(latency)))
    return rows


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values) + 0.5)) - 1))]


def route_figures(requests):
    expected = {n: e for n, _, _, _, e in MIX}
    out = {}
    for name, *_ in MIX:
        rows = [r for r in requests if r[1] == name]
        statuses = {}
        for r in rows:
            statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
        ok = [r[3] for r in rows if r[2] in expected[name]]
        unexpected = {code: n for code, n in statuses.items() if int(code) not in expected[name]}
        out[name] = {"sent": len(rows), "status": statuses, "expected": sorted(expected[name]),
                     "unexpected": unexpected,
                     "p50_ms": percentile(ok, 0.5), "p99_ms": percentile(ok, 0.99),
                     "max_ms": max(ok) if ok else None}
    return out


def per_minute_p99(requests):
    """Per minute of arrivals: the p99 of the 2xx answers of each stable route, and of them all."""
    minutes = {}
    for t, target, status, latency in requests:
        if target in STABLE_ROUTES and 200 <= status < 300:
            minute = minutes.setdefault(int(t // 60), {})
            minute.setdefault(target, []).append(latency)
            minute.setdefault("all", []).append(latency)
    return [{"minute": m, **{k: round(percentile(v, 0.99), 2) for k, v in sorted(minutes[m].items())},
             "count": len(minutes[m]["all"])}
            for m in sorted(minutes)]


def summarize_log(path):
    """The server log's WARN and ERROR events, counted by level and `kind` (or message start)."""
    levels, events, refusals = {}, {}, {}
    with open(path, errors="replace") as f:
        text = f.read()
    # One event per timestamped line; a multi-line message (a trap's backtrace) continues it.
    for event in re.split(r"\n(?=\d{4}-\d\d-\d\dT)", text):
        m = re.match(r"\S+\s+(ERROR|WARN|INFO|DEBUG|TRACE) ([\w:]+): (.*)", event, re.S)
        if not m:
            continue
        level, _, message = m.groups()
        levels[level] = levels.get(level, 0) + 1
        refused = re.match(r"refused: .*?\bfunction=(\S+).*?\bstatus=503\b", message, re.S)
        if refused:
            refusals[refused.group(1)] = refusals.get(refused.group(1), 0) + 1
        if level in ("ERROR", "WARN"):
            kind = re.search(r'\bkind="?(\w+)', message)
            key = f"{level} kind={kind.group(1)}" if kind else f"{level} {re.split(r' [a-z_]+=', message.splitlines()[0])[0][:90]}"
            events[key] = events.get(key, 0) + 1
    return {"lines_by_level": levels, "warn_error_events": events, "bytes": len(text.encode()),
            "refusals_503_by_function": refusals}


def figures(samples, key):
    load = [s[key] for s in samples if s["phase"] == "load" and s.get(key) is not None]
    idle = [s[key] for s in samples if s["phase"] == "idle" and s.get(key) is not None]
    after = [s[key] for s in samples if s["phase"] == "after" and s.get(key) is not None]
    if not load:
        return None
    half = len(load) // 2
    first, second = load[:max(half, 1)], load[half:] or load
    return {"idle": idle[0] if idle else None, "start": load[0], "end": load[-1], "max": max(load),
            "min": min(load), "after": after[0] if after else None,
            "first_half_max": max(first), "second_half_max": max(second),
            "first_half_median": sorted(first)[len(first) // 2],
            "second_half_median": sorted(second)[len(second) // 2]}


def judge(report):
    failures = []
    samples = report["samples"]
    flat = {}
    for key, slack in (("fds", FD_SLACK), ("threads", THREAD_SLACK)):
        f = figures(samples, key)
        report[key] = f
        ok = f is not None and f["second_half_max"] <= f["first_half_max"] + slack
        flat[key] = ok
        if not ok:
            failures.append(f"{key} grew: {f}")
    rss = figures(samples, "rss_mb")
    report["rss_mb"] = rss
    # RSS swings with the memory-heavy requests in flight at the instant of the sample, so its
    # level is the median: a leak raises it, a large request caught in one sample does not.
    flat["rss_mb"] = rss is not None and rss["second_half_median"] <= rss["first_half_median"] * (1 + RSS_SLACK)
    for key in ("wasmpod_instances_in_use", "wasmpod_inflight_requests", "wasmpod_guest_memory_bytes",
                "wasmpod_pool_warm_slots", "pool_mb", "heap_mb", "rss_file_mb", "code_mb"):
        report[key] = figures(samples, key)
    report["flat"] = flat
    # A 503 that admission logged as a refusal (a queue full, a queue timeout) is the pod shedding
    # load when the machine cannot keep up, not a fault: it is counted per route as refused under
    # load. The refusals a route expects (`queue-full`'s) are matched first.
    left = dict(report.get("server_log", {}).get("refusals_503_by_function", {}))
    for name, r in report["routes"].items():
        if 503 in r["expected"]:
            f = FUNCTIONS[name]
            left[f] = left.get(f, 0) - r["status"].get("503", 0)
    for name, r in report["routes"].items():
        unexpected_503 = r["unexpected"].get("503", 0)
        explained = min(unexpected_503, max(0, left.get(FUNCTIONS[name], 0)))
        if explained:
            left[FUNCTIONS[name]] -= explained
            r["refused_under_load"] = r.get("refused_under_load", 0) + explained
            r["unexpected"]["503"] = unexpected_503 - explained
            if not r["unexpected"]["503"]:
                del r["unexpected"]["503"]
    report["refused_under_load"] = sum(r.get("refused_under_load", 0) for r in report["routes"].values())
    unexpected = {name: r["unexpected"] for name, r in report["routes"].items() if r["unexpected"]}
    report["unexpected"] = unexpected
    report["unexpected_5xx"] = sum(n for u in unexpected.values() for code, n in u.items()
                                   if code.startswith("5"))
    if unexpected:
        failures.append(f"unexpected answers by route: {unexpected}")
    bad_reloads = [r for r in report["reloads"] if not r["served"]]
    if bad_reloads:
        failures.append(f"reloads never served: {bad_reloads}")
    if not report["reloads"] and report["reload_interval_s"] > 0:
        failures.append("no reload happened (run longer than the reload interval)")
    minutes = [m for m in report["per_minute_p99_ms"] if "all" in m]
    # The last minute is partial (arrivals stop mid-minute), so it is left out of the ratio.
    full = minutes[:-1] if len(minutes) > 2 else minutes
    third = max(1, len(full) // 3)
    first = sorted(m["all"] for m in full[:third])
    last = sorted(m["all"] for m in full[-third:])
    ratio = (last[len(last) // 2] / first[len(first) // 2]) if first and last and first[len(first) // 2] else None
    report["p99_stability"] = {
        "first_third_median_p99_ms": first[len(first) // 2] if first else None,
        "last_third_median_p99_ms": last[len(last) // 2] if last else None,
        "ratio": round(ratio, 3) if ratio else None,
        "limit": P99_RATIO_LIMIT,
        "stable": ratio is not None and ratio <= P99_RATIO_LIMIT,
        "min_minute_p99_ms": min((m["all"] for m in full), default=None),
        "max_minute_p99_ms": max((m["all"] for m in full), default=None),
    }
    served = sum(r["sent"] - r["status"].get("0", 0) for r in report["routes"].values())
    report["requests_answered"] = served
    report["requests_sent"] = sum(r["sent"] for r in report["routes"].values())
    report["failures"] = failures


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def markdown(report):
    title = "quick run (CI smoke, debug build: not a result)" if report["quick"] else "result"
    s = report["settings"]
    lines = [
        f"# Soak ({title})",
        "",
        f"Commit {report['commit']} ({report['build']} build), {report['date']}, {report['cores']} cores, "
        f"shared with other work. `wasmpod serve FOLDER` under {report['rate']:g} req/s of open-loop "
        f"Poisson arrivals (`loadgen`, seed 11) for {report['duration_s']:g} s "
        f"({report['load_seconds']:.0f} s with the last answers); the process sampled every "
        f"{report['sample_interval_s']:g} s; "
        + (f"a function replaced every {report['reload_interval_s']:g} s. " if report["reload_interval_s"] > 0
           else "no function replaced (`--no-reload`). ") +
        f"Admission: {s['capacity_mb']} MB capacity, {s['queue_depth_mb']} MB queue depth, "
        f"{s['tenant_max_inflight_mb']} MB in flight and {s['tenant_max_queued_mb']} MB queued per tenant.",
        "",
        "**Verdict:** " + ("passed" if not report["failures"] else "FAILED: " + "; ".join(report["failures"])),
        "",
    ]
    if report.get("note"):
        lines += [f"**Note:** {report['note']}", ""]
    lines += [
        "## The process",
        "",
        "| figure | idle | start | end | max | growth, second half over first | after the load | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, label, digits in (("rss_mb", "RSS (MB)", 1),
                               ("pool_mb", "of which the instance pool's (MB)", 1),
                               ("heap_mb", "of which the heap's (MB)", 1),
                               ("rss_file_mb", "of which file-backed (MB)", 1),
                               ("code_mb", "of which compiled code (MB)", 1),
                               ("fds", "open fds", 0), ("threads", "threads", 0),
                               ("wasmpod_instances_in_use", "instance pool slots in use", 0),
                               ("wasmpod_pool_warm_slots", "idle pool slots kept warm", 0),
                               ("wasmpod_inflight_requests", "requests in flight", 0)):
        f = report.get(key)
        if not f:
            continue
        growth = (f["second_half_median"] - f["first_half_median"] if key.endswith("_mb")
                  else f["second_half_max"] - f["first_half_max"])
        flat = report["flat"].get(key)
        lines.append(f"| {label} | {fmt(f['idle'], digits)} | {fmt(f['start'], digits)} | {fmt(f['end'], digits)} | "
                     f"{fmt(f['max'], digits)} | {fmt(growth, digits)} | {fmt(f['after'], digits)} | "
                     f"{'-' if flat is None else ('yes' if flat else 'NO')} |")
    lines += [
        "",
        f"Peak RSS (VmHWM) {report['peak_rss_mb']:.1f} MB. Flat means: the largest fd and thread counts "
        f"of the second half of the run are at most the first half's plus {FD_SLACK} fds and "
        f"{THREAD_SLACK} threads (the growth column: the difference of the two maxima); the median RSS "
        f"of the second half is at most the first half's plus {RSS_SLACK:.0%} (the growth column: the "
        "difference of the medians; a sample swings by the 48 MB `hog` requests in flight at that "
        "instant). `start` is the first sample under load, `after` the one taken once the last request "
        "had left.",
        "",
        "## Requests",
        "",
        f"{report['requests_sent']} sent, {report['requests_answered']} answered; "
        f"unexpected 5xx: {report['unexpected_5xx']}; refused under load (503s admission logged as a "
        f"queue full or queue timeout on a route that does not expect them): "
        f"{report.get('refused_under_load', 0)}.",
        "",
        "| route | path | Memory-Request | sent | answers by status | expected | refused under load | unexpected | p50 (ms) | p99 (ms) |",
        "|---|---|---:|---:|---|---|---:|---|---:|---:|",
    ]
    mix = {m["name"]: m for m in report["mix"]}
    for name, r in report["routes"].items():
        statuses = ", ".join(f"{c}: {n}" for c, n in sorted(r["status"].items()))
        unexpected = ", ".join(f"{c}: {n}" for c, n in sorted(r["unexpected"].items())) or "0"
        lines.append(f"| {name} | `{mix[name]['path']}` | {mix[name]['memory_request_mb']} | {r['sent']} | "
                     f"{statuses} | {', '.join(map(str, r['expected']))} | {r.get('refused_under_load', 0)} | "
                     f"{unexpected} | "
                     f"{fmt(r['p50_ms'], 1)} | {fmt(r['p99_ms'], 1)} |")
    p = report["p99_stability"]
    lines += [
        "",
        "Latency is from the scheduled arrival (no coordinated omission), over the answers the route "
        "expects. `timeout` runs a guest that never ends under a "
        f"{report['settings']['spin_timeout_s']:g} s timeout (504); `too-large` declares more than the "
        "capacity (413); `queue-full` declares 600 MB against a 1000 MB tenant in-flight cap and a "
        "500 MB tenant queue cap, so one runs at a time and the others get 503 at once.",
        "",
        "## p99 stability",
        "",
        f"Per-minute p99 of the 2xx answers of {', '.join(STABLE_ROUTES)} together: median "
        f"{fmt(p['first_third_median_p99_ms'], 1)} ms over the first third of the minutes, "
        f"{fmt(p['last_third_median_p99_ms'], 1)} ms over the last third: ratio {fmt(p['ratio'], 2)} "
        f"(stable when at most {p['limit']:g}: {'yes' if p['stable'] else 'no'}); per-minute p99 from "
        f"{fmt(p['min_minute_p99_ms'], 1)} to {fmt(p['max_minute_p99_ms'], 1)} ms.",
        "",
        "| minute | requests | all p99 (ms) | " + " | ".join(f"{r} p99" for r in STABLE_ROUTES) + " |",
        "|---:|---:|---:|" + "---:|" * len(STABLE_ROUTES),
    ]
    for m in report["per_minute_p99_ms"]:
        lines.append(f"| {m['minute']} | {m['count']} | {fmt(m.get('all'), 1)} | "
                     + " | ".join(fmt(m.get(r), 1) for r in STABLE_ROUTES) + " |")
    reloads = report["reloads"]
    served = [r["served_after_ms"] for r in reloads if r["served"]]
    lines += [
        "",
        "## Reloads",
        "",
        f"{len(reloads)} reloads (`reload.wat` each time, written under a hidden name and renamed into "
        f"place; `hog.wasm` with a new custom section every other time), {len(served)} served; time from "
        f"the rename to the new version answering: median {fmt(percentile(served, 0.5), 0)} ms, max "
        f"{fmt(max(served) if served else None, 0)} ms.",
    ]
    loads = figures(report["samples"], "loads_ok")
    if loads:
        lines.append(f"`wasmpod_function_loads_total{{result=\"ok\"}}`: {fmt(loads['idle'])} at start, "
                     f"{fmt(loads['after'])} after the run.")
    log = report["server_log"]
    lines += [
        "",
        "## Server log",
        "",
        f"{log['bytes']} bytes; lines by level: "
        + ", ".join(f"{k} {v}" for k, v in sorted(log["lines_by_level"].items())) + ". WARN and "
        "ERROR events by `kind` (or the message's start):",
        "",
        "| event | count |",
        "|---|---:|",
    ]
    lines += [f"| {k.replace('|', '/')} | {v} |" for k, v in sorted(log["warn_error_events"].items())]
    lines += [
        "",
        "![RSS, fds, threads, pool slots and per-minute p99 over time](soak.svg)",
        "",
        "Reproduce: `bash bench/soak.sh` (30 minutes, release build); `bash bench/soak.sh --quick` "
        "(CI, 150 s, debug build).",
    ]
    return "\n".join(lines) + "\n"


def svg(report):
    """Four panels over time (minutes): RSS; fds and threads; pool slots and in-flight requests;
    per-minute p99 of the stable routes."""
    samples = [s for s in report["samples"] if s["phase"] != "idle"]
    width, panel_h, pad_l, pad_r, gap = 900, 150, 60, 120, 45
    panels = [
        ("RSS (MB): all, the instance pool's, the heap's", [("rss_mb", "#1f77b4", 1), ("pool_mb", "#9467bd", 1),
                                                            ("heap_mb", "#8c564b", 1)]),
        ("open fds, threads", [("fds", "#2ca02c", 1), ("threads", "#d62728", 1)]),
        ("pool slots in use and warm, requests in flight", [("wasmpod_instances_in_use", "#9467bd", 1),
                                                             ("wasmpod_pool_warm_slots", "#17becf", 1),
                                                             ("wasmpod_inflight_requests", "#ff7f0e", 1)]),
        ("per-minute p99 (ms), 2xx", None),
    ]
    height = 40 + len(panels) * (panel_h + gap)
    t_max = max([report["duration_s"]] + [s["t"] for s in samples]) / 60 or 1
    plot_w = width - pad_l - pad_r
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14">Soak: {report["rate"]:g} req/s for '
           f'{report["duration_s"] / 60:.3g} min ({report["build"]} build, commit {report["commit"]})</text>']
    colours = {"all": "#000000", "hello": "#1f77b4", "cpu": "#2ca02c", "hog": "#d62728", "reload": "#9467bd"}
    for i, (title, series) in enumerate(panels):
        top = 40 + i * (panel_h + gap) + 15
        y0 = top + panel_h
        if series is None:
            minutes = report["per_minute_p99_ms"]
            lines = [(k, colours[k], [(m["minute"] + 0.5, m.get(k)) for m in minutes])
                     for k in ["all"] + STABLE_ROUTES]
        else:
            lines = [(k, c, [(s["t"] / 60, s.get(k)) for s in samples]) for k, c, _ in series]
        y_max = max([1.0] + [v for _, _, pts in lines for _, v in pts if v is not None]) * 1.1
        out.append(f'<text x="{pad_l}" y="{top - 5}" font-size="12">{title}</text>')
        out.append(f'<rect x="{pad_l}" y="{top}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>')
        for frac in (0, 0.5, 1):
            y = y0 - frac * panel_h
            out.append(f'<text x="{pad_l - 4}" y="{y + 4}" text-anchor="end">{y_max * frac:.{0 if y_max >= 10 else 1}f}</text>')
        step = max(1, int(t_max / 10))
        for minute in range(0, int(t_max) + 1, step):
            x = pad_l + minute / t_max * plot_w
            out.append(f'<text x="{x:.1f}" y="{y0 + 13}" text-anchor="middle">{minute} min</text>')
        for j, (key, colour, pts) in enumerate(lines):
            coords = " ".join(f"{pad_l + t / t_max * plot_w:.1f},{y0 - v / y_max * panel_h:.1f}"
                              for t, v in pts if v is not None)
            if coords:
                out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
            if series is None:  # one point a minute: mark each
                for point in coords.split():
                    x, y = point.split(",")
                    out.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{colour}"/>')
            ly = top + 12 + j * 14
            out.append(f'<rect x="{pad_l + plot_w + 10}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
            out.append(f'<text x="{pad_l + plot_w + 24}" y="{ly}">{key.replace("wasmpod_", "")}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
