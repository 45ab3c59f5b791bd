#!/usr/bin/env python3
"""Learned admission weights on a real pod: one over-declaring mix, open loop, under three
admission settings, in one run:

- `declared`: admit by Memory-Request (Wasabi's rule);
- `static`: Wasabi's static overbooking, capacity 1.43x the pod's real memory budget;
- `learned`: `--admission-weight learned` (admit by the observed p99 peak x 1.25).

Every function declares 2-10x the memory it uses and holds it for a while (the hog guest with
`mb` and `ms`). The pod's real memory budget is the same in all three. Reports admitted
throughput (2xx per second), p50/p99 of the 2xx, 503s, and requests lost to memory pressure
(`wasmpod_memory_pressure_total`). Run by bench/learned.sh; standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchlib import clean_env, metrics, serve, stop

# (name, MiB used, ms held, MB declared): 2x to 10x over-declared.
MIX = [
    ("small", 4, 200, 40),
    ("medium", 12, 200, 64),
    ("large", 24, 200, 48),
]
BUDGET_MB = 400


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wasmpod", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--hog", required=True, help="the hog guest (.wasm)")
    ap.add_argument("--rates", default="80,150",
                    help="arrivals per second, comma-separated: each rate runs all three settings")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals per setting")
    ap.add_argument("--out", required=True, help="result file prefix (.md and .json are added)")
    ap.add_argument("--commit", default="unknown")
    args = ap.parse_args()

    settings = [
        ("declared", ["--concurrent-resource-request", str(BUDGET_MB)]),
        ("static 1.43x", ["--concurrent-resource-request", str(int(BUDGET_MB * 1.43))]),
        ("learned", ["--concurrent-resource-request", str(BUDGET_MB), "--admission-weight", "learned"]),
    ]
    common = ["--memory-budget", str(BUDGET_MB), "--queue-depth-resource-units", str(4 * BUDGET_MB),
              "--queue-timeout", "2", "--max-instances", "512"]
    results = []
    with tempfile.TemporaryDirectory(prefix="wasmpod-learned-") as work:
        config = os.path.join(work, "modules.toml")
        with open(config, "w") as f:
            # One function per route (the same guest file): weights are learned per function, so
            # three query shapes of one route would share one weight, the largest one's.
            for name, _, _, _ in MIX:
                f.write(f'[[module]]\nroute = "/{name}"\nmodule = "{args.hog}"\n\n')
        targets = os.path.join(work, "targets.json")
        with open(targets, "w") as f:
            json.dump([{"name": name, "method": "GET", "path": f"/{name}?mb={mb}&ms={ms}",
                        "headers": {"Memory-Request": str(declared)}}
                       for name, mb, ms, declared in MIX], f)
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
        runs = [(rate, label, flags) for rate in rates for label, flags in settings]
        for i, (rate, label, flags) in enumerate(runs):
            print(f"run {i + 1}/{len(runs)}: {label}, {rate:g} req/s for {args.duration:g} s "
                  f"(load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
            results.append(dict(label=label, rate=rate, flags=flags + common,
                                **one_run(args, rate, work, config, targets, flags + common, f"run{i}")))

    report = {"commit": args.commit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "rates": rates, "loadavg_end": list(os.getloadavg()), "duration_s": args.duration, "budget_mb": BUDGET_MB,
              "mix": [dict(name=n, used_mb=mb, held_ms=ms, declared_mb=d) for n, mb, ms, d in MIX],
              "runs": results}
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(markdown(report))
    print(open(args.out + ".md").read())


def one_run(args, rate, work, config, targets, flags, name):
    server, base = start_server(args, work, config, flags, name)
    try:
        # Warm-up at a low rate: 25 requests per function so each has a learned weight.
        warm = subprocess.run([args.loadgen, "--base", base, "--targets", targets, "--rate", "30",
                               "--duration", "10", "--max-requests", str(25 * len(MIX)),
                               "--arrival", "uniform", "--seed", "3", "--timeout", "60"],
                              check=True, capture_output=True, text=True)
        warm = json.loads(warm.stdout)
        before = metrics(base)
        out = subprocess.run([args.loadgen, "--base", base, "--targets", targets,
                              "--rate", f"{rate:g}", "--duration", f"{args.duration:g}",
                              "--seed", "7", "--timeout", "60"],
                             check=True, capture_output=True, text=True)
        after = metrics(base)
        peak_rss_kb = read_vmhwm(server.pid)
    finally:
        stop(server)
    summary = json.loads(out.stdout)
    statuses = {}
    for t in summary["targets"].values():
        for code, n in t["status"].items():
            statuses[code] = statuses.get(code, 0) + n
    pressure = after.get("wasmpod_memory_pressure_total", 0) - before.get("wasmpod_memory_pressure_total", 0)
    weights = {k: v for k, v in after.items() if k.startswith("wasmpod_admission_weight_mb")}
    return {"summary": summary, "warmup_goodput": warm["goodput_rps"], "statuses": statuses,
            "goodput_rps": summary["goodput_rps"], "pressure_503": pressure,
            "p50_ms": merged(summary, "p50_ms"), "p99_ms": merged(summary, "p99_ms"),
            "learned_weights": weights, "peak_rss_mb": peak_rss_kb / 1024}


def merged(summary, key):
    """The largest per-function value (a conservative p50/p99 of the mix)."""
    values = [t[key] for t in summary["targets"].values() if t[key] is not None]
    return max(values) if values else None


def start_server(args, work, config, flags, name):
    serve_args = ["-c", config, "-l", "127.0.0.1:0", "--drain-seconds", "0"] + flags
    return serve(args.wasmpod, serve_args, os.path.join(work, name + ".log"), clean_env())


def read_vmhwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def markdown(report):
    rates = ", ".join(f"{r:g}" for r in report["rates"])
    lines = [
        f"# Learned admission weights on a real pod (commit {report['commit']}, {report['date']})",
        "",
        f"Open loop at {rates} req/s, {report['duration_s']:g} s per setting, one pod, "
        f"real-memory budget {report['budget_mb']} MB in every setting; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in report['loadavg_end'])}. The mix (three functions, one "
        "route each, on the hog guest; each declares 2-10x what it uses):",
        "",
        "| function | uses (MiB) | holds it (ms) | declares (MB) |",
        "|---|---|---|---|",
    ]
    for m in report["mix"]:
        lines.append(f"| {m['name']} | {m['used_mb']} | {m['held_ms']} | {m['declared_mb']} |")
    lines += ["", "| offered req/s | admission | 2xx/s | vs declared | p50 ms | p99 ms | 503s | lost to memory pressure | peak RSS MB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        base = next(b for b in report["runs"] if b["label"] == "declared" and b["rate"] == r["rate"])
        ratio = r["goodput_rps"] / base["goodput_rps"] if base["goodput_rps"] else float("nan")
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.0f}"
        p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.0f}"
        lines.append(f"| {r['rate']:g} | {r['label']} | {r['goodput_rps']:.1f} | {ratio:.2f}x | {p50} | {p99} | "
                     f"{r['statuses'].get('503', 0)} | {r['pressure_503']:.0f} | {r['peak_rss_mb']:.0f} |")
    learned = next(r for r in reversed(report["runs"]) if r["label"] == "learned")
    if learned["learned_weights"]:
        lines += ["", "Learned weights (MB): " + ", ".join(
            f"{k.split('=')[-1].rstrip('}')} {v:.0f}" for k, v in sorted(learned["learned_weights"].items()))]
    lines += ["", "p50/p99 are the largest of the three functions' values over their 2xx answers, "
              "measured from each request's scheduled arrival (no coordinated omission)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
