#!/usr/bin/env python3
"""The Wasabi mixed-load test: the five functions at once, open loop, below, at and above the
pod's capacity, with admission and (above capacity) without it.

Run by bench/wasabi-mix.sh, which builds the binaries; `bench/README.md` explains the method
and the outputs. Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import stop

FUNCTIONS = ["genpdf", "imageblur", "json-compression", "rsa-keygen", "scrypt"]
# Used when no profiles file exists yet: MB per function, and p50 ms at full size.
FALLBACK_MEMORY_MB = {f: 128 for f in FUNCTIONS}
FALLBACK_RUN_MS = {f: 500.0 for f in FUNCTIONS}
# --quick: small cases (the size parameter) so that a debug build finishes in seconds.
QUICK_PARAMETERS = {"genpdf": "50", "imageblur": "100", "json-compression": "20000",
                    "rsa-keygen": "512", "scrypt": "50"}
SCRAPE_INTERVAL = 0.25
GAUGES = ["wasmpod_inflight_memory_mb", "wasmpod_queued_memory_mb",
          "wasmpod_inflight_requests", "wasmpod_queued_requests"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wasmpod", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--guests", required=True, help="directory holding <function>.wasm")
    ap.add_argument("--profiles", help="bench/results/wasabi-profiles.json (Memory-Request, run time)")
    ap.add_argument("--duration", type=float, default=40.0, help="seconds of arrivals per run")
    ap.add_argument("--levels", default="0.5,1.0,1.5", help="load levels, as multiples of capacity")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True, help="result file prefix (.md, .svg, .json are added)")
    ap.add_argument("--commit", default="unknown")
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    # One artifact cache for every server start: the modules are compiled once per script run.
    cache = tempfile.TemporaryDirectory(prefix="wasabi-mix-cache-")
    args.cache_dir = cache.name
    memory_mb, run_ms = dict(FALLBACK_MEMORY_MB), dict(FALLBACK_RUN_MS)
    source = "fallback guesses (no profiles file)"
    if args.profiles and os.path.exists(args.profiles):
        with open(args.profiles) as f:
            profiles = json.load(f)
        for name, p in profiles["functions"].items():
            memory_mb[name] = int(p["memory_request_mb"])
            run_ms[name] = float(p["run_ms"]["p50"])
        source = f"{args.profiles} (commit {profiles.get('commit', '?')})"
    parameters = QUICK_PARAMETERS if args.quick else {f: "" for f in FUNCTIONS}

    # Capacity: the rate at which the machine's cores finish the mix (equal weights), measured
    # one call at a time. --quick measures its small cases instead of trusting profiles.
    if args.quick:
        run_ms = measure_small_cases(args, memory_mb, parameters)
    mean_ms = sum(run_ms[f] for f in FUNCTIONS) / len(FUNCTIONS)
    capacity_rps = cores * 1000.0 / mean_ms
    # Admission: room for about two requests of the mix per core (the rest queue), and a queue
    # that holds about as much again; past it, or after waiting --queue-timeout, a 503.
    mean_mb = sum(memory_mb[f] for f in FUNCTIONS) / len(FUNCTIONS)
    capacity_mb = max(int(2 * cores * mean_mb), max(memory_mb.values()))
    queue_depth_mb = 2 * capacity_mb
    queue_timeout = max(2.0, 4 * mean_ms / 1000.0)
    guest_timeout = max(30.0, 20 * max(run_ms.values()) / 1000.0)

    levels = [float(x) for x in args.levels.split(",")]
    runs = [(lvl, True) for lvl in levels] + [(max(levels), False)]
    results = []
    with tempfile.TemporaryDirectory(prefix="wasabi-mix-") as work:
        folder = os.path.join(work, "functions")
        os.mkdir(folder)
        for f in FUNCTIONS:
            shutil.copy(os.path.join(args.guests, f + ".wasm"), os.path.join(folder, f + ".wasm"))
        targets = os.path.join(work, "targets.json")
        with open(targets, "w") as out:
            json.dump([{"name": f, "method": "POST", "path": "/" + f,
                        "body": json.dumps({"parameter": parameters[f]}) if RAW else parameters[f],
                        "headers": {"Memory-Request": str(memory_mb[f])}} for f in FUNCTIONS], out)
        for i, (level, admission) in enumerate(runs):
            rate = level * capacity_rps
            label = f"{level:g}x capacity" + ("" if admission else ", no admission")
            print(f"run {i + 1}/{len(runs)}: {label}, {rate:.2f} req/s for {args.duration:g} s",
                  file=sys.stderr)
            flags = ["--timeout", f"{guest_timeout:g}"]
            if admission:
                flags += ["--concurrent-resource-request", str(capacity_mb),
                          "--queue-depth-resource-units", str(queue_depth_mb),
                          "--queue-timeout", f"{queue_timeout:g}"]
            else:
                flags += ["--no-admission"]
            result = one_run(args, work, folder, targets, flags, rate, f"run{i}")
            result.update(level=level, admission=admission, label=label, rate=rate)
            results.append(result)

    report = {
        "commit": args.commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": cores, "quick": args.quick, "profiles": source, "duration_s": args.duration,
        "capacity_rps": capacity_rps, "capacity_mb": capacity_mb, "queue_depth_mb": queue_depth_mb,
        "queue_timeout_s": queue_timeout, "memory_request_mb": memory_mb, "run_ms": run_ms,
        "runs": results,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(report, os.path.basename(args.out) + ".svg"))
    with open(args.out + ".svg", "w") as f:
        f.write(svg(report))
    print(open(args.out + ".md").read())


# Whether the server speaks the raw interface to these functions (JSON `{"parameter": ...}`
# bodies); set by start_server from what the folder is served as.
RAW = False


def measure_small_cases(args, memory_mb, parameters):
    """p50 of three calls of each small case on an idle server (for --quick's capacity)."""
    with tempfile.TemporaryDirectory(prefix="wasabi-mix-measure-") as work:
        folder = os.path.join(work, "functions")
        os.mkdir(folder)
        for f in FUNCTIONS:
            shutil.copy(os.path.join(args.guests, f + ".wasm"), os.path.join(folder, f + ".wasm"))
        server, base, _ = start_server(args, work, folder, ["--no-admission"], "measure")
        try:
            out = {}
            for f in FUNCTIONS:
                times = []
                for _ in range(3):
                    body = parameters[f].encode()
                    started = time.monotonic()
                    post(base + "/" + f, body, {"Memory-Request": str(memory_mb[f])})
                    times.append((time.monotonic() - started) * 1000)
                out[f] = sorted(times)[1]
            return out
        finally:
            stop(server)


def one_run(args, work, folder, targets, flags, rate, name):
    server, base, log = start_server(args, work, folder, flags, name)
    samples, stop_scrape = [], threading.Event()
    scraper = threading.Thread(target=scrape, args=(base, server.pid, samples, stop_scrape))
    scraper.start()
    csv_path = os.path.join(work, name + ".csv")
    try:
        out = subprocess.run(
            [args.loadgen, "--base", base, "--targets", targets, "--rate", f"{rate:.4f}",
             "--duration", f"{args.duration:g}", "--seed", "7", "--timeout", "300",
             "--csv", csv_path],
            check=True, capture_output=True, text=True)
    finally:
        stop_scrape.set()
        scraper.join()
        peak_rss_kb = read_status(server.pid).get("VmHWM", 0)
        stop(server)
    summary = json.loads(out.stdout)
    latency_over_time = []
    with open(csv_path) as f:
        next(f)
        for line in f:
            sched, target, status, latency, _ = line.rstrip("\n").split(",", 4)
            latency_over_time.append((float(sched) / 1000, target, int(status), float(latency)))
    return {"summary": summary, "samples": samples, "peak_rss_mb": peak_rss_kb / 1024,
            "requests": latency_over_time}


def start_server(args, work, folder, flags, name):
    """Starts `wasmpod serve` on 127.0.0.1:0 and waits for its Ready line."""
    log_path = os.path.join(work, name + ".log")
    log = open(log_path, "w")  # exists before the child starts
    env = dict(os.environ, RUST_LOG="warn")
    server = subprocess.Popen([args.wasmpod, "serve", folder, "-l", "127.0.0.1:0",
                               "--cache-dir", args.cache_dir] + flags,
                              stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    deadline = time.monotonic() + 300
    for line in server.stdout:
        m = re.match(r"Ready: serving on (http://\S+)", line)
        if m:
            threading.Thread(target=server.stdout.read, daemon=True).start()
            return server, m.group(1), log_path
        if time.monotonic() > deadline:
            break
    stop(server)
    sys.exit(f"wasmpod did not start:\n{open(log_path).read()}")


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()
        if r.status != 200:
            sys.exit(f"{url}: status {r.status}")


def scrape(base, pid, samples, stop_event):
    """Every SCRAPE_INTERVAL: the admission gauges from /metrics and the server's RSS."""
    started = time.monotonic()
    while not stop_event.is_set():
        try:
            with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
                text = r.read().decode()
            values = {}
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in GAUGES:
                    values[parts[0]] = float(parts[1])
            values["rss_mb"] = read_status(pid).get("VmRSS", 0) / 1024
            values["t"] = time.monotonic() - started
            samples.append(values)
        except OSError:
            pass
        stop_event.wait(SCRAPE_INTERVAL)


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def markdown(report, svg_name):
    lines = [
        f"# Wasabi mixed load ({'quick smoke run, not a result' if report['quick'] else 'result'})",
        "",
        f"Commit {report['commit']}, {report['date']}, {report['cores']} cores. Five functions, equal "
        f"weights, Poisson arrivals for {report['duration_s']:g} s per run. Capacity "
        f"{report['capacity_rps']:.2f} req/s (cores / mean p50 run time); admission "
        f"{report['capacity_mb']} MB in flight, {report['queue_depth_mb']} MB running + queued, "
        f"queue timeout {report['queue_timeout_s']:g} s. Memory-Request per function (MB): "
        + ", ".join(f"{f} {report['memory_request_mb'][f]}" for f in FUNCTIONS)
        + f"; from {report['profiles']}.",
        "",
        "| run | offered (req/s) | throughput (req/s) | goodput 2xx (req/s) | 503s | other non-2xx | peak RSS (MB) | max in-flight MB | max queued MB |"
        + "".join(f" {f} p50/p99 (ms) |" for f in FUNCTIONS),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(FUNCTIONS),
    ]
    for run in report["runs"]:
        s = run["summary"]
        statuses = {}
        for t in s["targets"].values():
            for code, n in t["status"].items():
                statuses[code] = statuses.get(code, 0) + n
        n503 = statuses.get("503", 0)
        other = sum(n for code, n in statuses.items() if not code.startswith("2") and code != "503")
        max_in = max((x.get("wasmpod_inflight_memory_mb", 0) for x in run["samples"]), default=0)
        max_q = max((x.get("wasmpod_queued_memory_mb", 0) for x in run["samples"]), default=0)
        cells = "".join(
            f" {fmt(s['targets'][f]['p50_ms'])}/{fmt(s['targets'][f]['p99_ms'])} |" if f in s["targets"] else " - |"
            for f in FUNCTIONS)
        lines.append(
            f"| {run['label']} | {run['rate']:.2f} | {s['throughput_rps']:.2f} | {s['goodput_rps']:.2f} | "
            f"{n503} | {other} | {run['peak_rss_mb']:.0f} | {max_in:.0f} | {max_q:.0f} |{cells}")
    lines += ["", f"![in-flight and queued memory, and latency, over time]({svg_name})", ""]
    lines.append("Without admission there is no queue: every arrival runs at once, so the in-flight "
                 "gauges stay at 0 and the memory is in the RSS column.")
    return "\n".join(lines) + "\n"


def fmt(x):
    return "-" if x is None else f"{x:.0f}"


def svg(report):
    """One row per run: in-flight and queued memory (MB) over time, and each request's latency
    (dots, by arrival time)."""
    runs = report["runs"]
    width, row_h, pad = 900, 170, 50
    height = pad + len(runs) * (row_h + 40)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="20" font-size="14">Wasabi mix: admission memory (lines, left axis, MB) '
           'and request latency (dots, right axis, s) over time</text>']
    t_max = max([report["duration_s"]] + [r["requests"][-1][0] if r["requests"] else 0 for r in runs]
                + [s["t"] for r in runs for s in r["samples"]]) or 1
    mem_max = max([1.0] + [max(s.get("wasmpod_inflight_memory_mb", 0), s.get("wasmpod_queued_memory_mb", 0))
                           for r in runs for s in r["samples"]])
    lat_max = max([0.001] + [q[3] / 1000 for r in runs for q in r["requests"] if q[2] != 0])
    plot_w = width - 2 * pad - 40
    for i, run in enumerate(runs):
        top = pad + i * (row_h + 40)
        x0, y0 = pad, top + row_h
        out.append(f'<text x="{x0}" y="{top - 6}" font-size="12">{run["label"]} '
                   f'({run["rate"]:.2f} req/s)</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{plot_w}" height="{row_h}" fill="none" stroke="#999"/>')
        for frac in (0, 0.5, 1):
            y = y0 - frac * row_h
            out.append(f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end">{mem_max * frac:.0f}</text>')
            out.append(f'<text x="{x0 + plot_w + 4}" y="{y + 4}">{lat_max * frac:.1f}</text>')
        for sec in range(0, int(t_max) + 1, max(1, int(t_max / 8))):
            x = x0 + sec / t_max * plot_w
            out.append(f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="middle">{sec}s</text>')
        for q in run["requests"]:
            if q[2] == 0:
                continue
            x = x0 + q[0] / t_max * plot_w
            y = y0 - min(q[3] / 1000 / lat_max, 1) * row_h
            colour = "#d62728" if q[2] == 503 else ("#2ca02c" if 200 <= q[2] < 300 else "#ff7f0e")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.6" fill="{colour}" fill-opacity="0.5"/>')
        for key, colour in (("wasmpod_inflight_memory_mb", "#1f77b4"), ("wasmpod_queued_memory_mb", "#9467bd")):
            pts = " ".join(f'{x0 + s["t"] / t_max * plot_w:.1f},{y0 - s.get(key, 0) / mem_max * row_h:.1f}'
                           for s in run["samples"])
            if pts:
                out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    legend_y = height - 12
    for j, (text, colour) in enumerate((("in-flight MB", "#1f77b4"), ("queued MB", "#9467bd"),
                                        ("2xx latency", "#2ca02c"), ("503 latency", "#d62728"))):
        out.append(f'<rect x="{pad + j * 150}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{pad + j * 150 + 14}" y="{legend_y}">{text}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
