#!/usr/bin/env python3
"""Tenant fairness: a light tenant's latency alone and while another tenant floods the pod.

One `wasmpod serve` on 127.0.0.1 serves a folder with two tenants: `a/sleep.wasm` (the flooder:
each request sleeps --a-sleep-ms holding 100 MB) and `b/hello.wasm` (the light tenant: a hello
world declaring 100 MB). Tenant caps: 500 MB in flight and 200 MB queued per tenant, so A may
run 5 requests at once. Phases alternate, `--rounds` times: B alone at --b-rate, then B at the
same rate while A arrives at ten times its capacity (10 x 5 / sleep). Both load generators are
`loadgen` (open loop, latency from the scheduled arrival). Reports B's p50/p99 (2xx) in each
condition over all rounds, their ratios (flood / alone), B's non-2xx count, and A's answers.

Bounded: every phase lasts --duration seconds and each loadgen stops by itself.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import clean_env, serve, stop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wasmpod", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--guests", required=True, help="folder holding sleep.wasm and hello.wasm")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--b-rate", type=float, default=50.0)
    parser.add_argument("--a-sleep-ms", type=int, default=100)
    parser.add_argument("--out", required=True, help="output path without extension")
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--build", default="release")
    args = parser.parse_args()

    a_capacity = 5  # 500 MB tenant cap / 100 MB per request
    a_rate = 10 * a_capacity * 1000.0 / args.a_sleep_ms
    with tempfile.TemporaryDirectory(prefix="fairness-") as work:
        folder = os.path.join(work, "functions")
        for tenant, guest in (("a", "sleep"), ("b", "hello")):
            os.makedirs(os.path.join(folder, tenant))
            shutil.copy(os.path.join(args.guests, guest + ".wasm"),
                        os.path.join(folder, tenant, guest + ".wasm"))
        targets = {
            "a": [{"name": "a", "path": f"/a/sleep?ms={args.a_sleep_ms}",
                   "headers": {"Memory-Request": "100"}}],
            "b": [{"name": "b", "path": "/b/hello", "headers": {"Memory-Request": "100"}}],
        }
        for name, target in targets.items():
            with open(os.path.join(work, name + ".json"), "w") as out:
                json.dump(target, out)
        server, base = start_server(args, work, folder)
        try:
            b_alone, b_flood, a_status, b_bad = [], [], {}, {}
            for round_ in range(args.rounds):
                for flood in (False, True):
                    phase = f"r{round_}-{'flood' if flood else 'alone'}"
                    print(f"{phase}: B at {args.b_rate:g}/s"
                          + (f", A at {a_rate:g}/s" if flood else "") + f" for {args.duration:g} s",
                          file=sys.stderr)
                    a = loadgen(args, work, base, "a", a_rate, phase, seed=round_ + 11) if flood else None
                    b = loadgen(args, work, base, "b", args.b_rate, phase, seed=round_ + 1)
                    b_records = wait_loadgen(b)
                    if a is not None:
                        for status, _ in wait_loadgen(a):
                            a_status[status] = a_status.get(status, 0) + 1
                    for status, latency in b_records:
                        if 200 <= status < 300:
                            (b_flood if flood else b_alone).append(latency)
                        else:
                            b_bad[status] = b_bad.get(status, 0) + 1
        finally:
            stop(server)
        alone = percentiles(b_alone)
        flooded = percentiles(b_flood)
        report = {
            "commit": args.commit, "build": args.build,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cores": os.cpu_count(), "load_average": open("/proc/loadavg").read().split()[:3],
            "duration_s": args.duration, "rounds": args.rounds, "b_rate": args.b_rate,
            "a_rate": a_rate, "a_sleep_ms": args.a_sleep_ms,
            "b_alone": alone, "b_flood": flooded,
            "p50_ratio": flooded["p50_ms"] / alone["p50_ms"],
            "p99_ratio": flooded["p99_ms"] / alone["p99_ms"],
            "b_non_2xx": b_bad, "a_status": {str(k): v for k, v in sorted(a_status.items())},
        }
    with open(args.out + ".json", "w") as out:
        json.dump(report, out, indent=1)
    with open(args.out + ".md", "w") as out:
        out.write(markdown(report))
    print(markdown(report))
    return 0 if not b_bad else 1


def start_server(args, work, folder):
    """Starts `wasmpod serve` on 127.0.0.1:0 and waits for its Ready line."""
    return serve(args.wasmpod,
                 [folder, "-l", "127.0.0.1:0",
                  "--concurrent-resource-request", "1000", "--queue-depth-resource-units", "2000",
                  "--tenant-max-inflight-mb", "500", "--tenant-max-queued-mb", "200"],
                 os.path.join(work, "server.log"), clean_env(), timeout=120)


def loadgen(args, work, base, name, rate, phase, seed):
    csv_path = os.path.join(work, f"{phase}-{name}.csv")
    process = subprocess.Popen(
        [args.loadgen, "--base", base, "--targets", os.path.join(work, name + ".json"),
         "--rate", f"{rate}", "--duration", f"{args.duration}", "--seed", str(seed),
         "--timeout", "30", "--max-in-flight", "2000", "--csv", csv_path],
        stdout=subprocess.DEVNULL)
    return process, csv_path


def wait_loadgen(started):
    process, csv_path = started
    if process.wait() != 0:
        sys.exit(f"loadgen failed ({process.returncode})")
    with open(csv_path) as f:
        return [(int(row["status"]), float(row["latency_ms"])) for row in csv.DictReader(f)]


def percentiles(latencies):
    ordered = sorted(latencies)
    if not ordered:
        sys.exit("no 2xx answers to compute percentiles from")

    def rank(q):
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]

    return {"n": len(ordered), "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": ordered[-1]}


def markdown(r):
    a_total = sum(r["a_status"].values())
    return "\n".join([
        f"# Tenant fairness ({r['build']} build)",
        "",
        f"Commit {r['commit']}, {r['date']}, {r['cores']} cores, load average "
        f"{' '.join(r['load_average'])} at the end. Tenant caps 500 MB in flight, 200 MB queued; "
        f"pod 1000 MB in flight, 2000 MB running + queued; every request declares 100 MB. "
        f"{r['rounds']} rounds of {r['duration_s']:g} s alone then {r['duration_s']:g} s flooded.",
        "",
        f"B: `/b/hello`, {r['b_rate']:g} req/s (Poisson). A: `/a/sleep?ms={r['a_sleep_ms']}`, "
        f"{r['a_rate']:g} req/s = 10x what its cap lets it run.",
        "",
        "| B's latency (2xx) | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| alone | {r['b_alone']['n']} | {r['b_alone']['p50_ms']:.2f} | {r['b_alone']['p99_ms']:.2f} "
        f"| {r['b_alone']['max_ms']:.2f} |",
        f"| A flooding | {r['b_flood']['n']} | {r['b_flood']['p50_ms']:.2f} | "
        f"{r['b_flood']['p99_ms']:.2f} | {r['b_flood']['max_ms']:.2f} |",
        f"| **ratio** | | **{r['p50_ratio']:.2f}x** | **{r['p99_ratio']:.2f}x** (target <= 2x) | |",
        "",
        f"B's answers other than 2xx: {r['b_non_2xx'] or 'none'}. "
        f"A's answers ({a_total}): " + ", ".join(f"{k}: {v}" for k, v in r["a_status"].items()) + ".",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
