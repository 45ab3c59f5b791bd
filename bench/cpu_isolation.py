#!/usr/bin/env python3
"""CPU quotas two ways: the runtime's epoch-based throttle (the default) and the kernel's, with
`--cgroup-cpu`. Accuracy: the CPU share a CPU-bound request held to a quota gets, against the
quota. Per-request cost: the latency of a tiny request with and without a `cpu_quota` header.
Also times WasmBox's per-request cgroup (mkdir, quota, move the thread in and out, rmdir) on this
machine, for scale.

Run by bench/cpu-isolation.sh, which builds the binary; `bench/README.md` explains the method.
Both servers run at once and are measured in alternation, so a change in the machine's load hits
both. Standard library only.
"""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

QUOTAS = [100, 250, 500]
MODES = ["runtime", "cgroup"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wasmpod", required=True)
    ap.add_argument("--guests", required=True, help="directory holding cpu.wasm and hello.wasm")
    ap.add_argument("--iters", type=int, default=200_000_000, help="CPU guest rounds per request")
    ap.add_argument("--rounds", type=int, default=3, help="accuracy repetitions per mode and quota")
    ap.add_argument("--requests", type=int, default=2000, help="tiny requests per mode and header")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True, help="result file prefix (.md and .json are added)")
    ap.add_argument("--commit", default="unknown")
    args = ap.parse_args()
    if args.quick:
        args.iters, args.rounds, args.requests = 20_000_000, 1, 100

    load = open("/proc/loadavg").read().split()[:3]
    with tempfile.TemporaryDirectory(prefix="cpu-isolation-") as work:
        folder = os.path.join(work, "functions")
        os.mkdir(folder)
        for name in ["cpu", "hello"]:
            os.symlink(os.path.join(args.guests, name + ".wasm"), os.path.join(folder, name + ".wasm"))
        servers = {mode: Server(args.wasmpod, work, folder, mode) for mode in MODES}
        try:
            if servers["cgroup"].mechanism is None:
                print(f"--cgroup-cpu is unavailable here: {servers['cgroup'].quota_line}", file=sys.stderr)
                sys.exit(0 if args.quick else 1)
            # Warm up: compile caches, worker thread w0, connections.
            for server in servers.values():
                server.get("/hello", {"cpu_quota": "1000"})
                server.get(f"/cpu?iters={args.iters // 10}", {})
            alone = measure_alone(servers["runtime"], args.iters)
            accuracy = measure_accuracy(servers, args)
            overhead = measure_overhead(servers, args.requests)
            churn = wasmbox_cgroup_churn(servers["cgroup"].cgroup, 200 if not args.quick else 20)
        finally:
            for server in servers.values():
                server.stop()

    report = {
        "commit": args.commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": load,
        "cores": os.cpu_count(),
        "mechanism": servers["cgroup"].mechanism,
        "iters": args.iters,
        "unthrottled": alone,
        "accuracy": accuracy,
        "overhead": overhead,
        "wasmbox_cgroup_per_request_us": churn,
    }
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with open(args.out + ".md", "w") as f:
        f.write(markdown(report))
    print(markdown(report))


class Server:
    """A `wasmpod serve` on 127.0.0.1:0, `--cgroup-cpu` in mode "cgroup"; one keep-alive connection."""

    def __init__(self, wasmpod, work, folder, mode):
        self.mode = mode
        log_path = os.path.join(work, mode + ".log")
        log = open(log_path, "w")  # exists before the child starts
        flags = ["--cgroup-cpu"] if mode == "cgroup" else []
        env = dict(os.environ, RUST_LOG="info")
        self.process = subprocess.Popen(
            [wasmpod, "serve", folder, "-l", "127.0.0.1:0", "--timeout", "600"] + flags,
            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        address = None
        for line in self.process.stdout:
            m = re.match(r"Ready: serving on http://(\S+):(\d+)", line)
            if m:
                address = (m.group(1), int(m.group(2)))
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                break
        text = open(log_path).read()
        if address is None:
            self.stop()
            sys.exit(f"wasmpod did not start:\n{text}")
        self.quota_line = next((l for l in text.splitlines() if "cpu quotas:" in l), "")
        self.mechanism = None
        self.cgroup = self.accounting = None
        m = re.search(r"cpu quotas: (cgroup v[12][^(]*)", self.quota_line)
        if m:
            self.mechanism = m.group(1).strip().rstrip(",")
            self.cgroup = re.search(r"cgroup=(\S+)", self.quota_line).group(1)
            self.accounting = re.search(r"accounting=(\S+)", self.quota_line).group(1)
        self.connection = http.client.HTTPConnection(*address, timeout=600)

    def get(self, path, headers):
        self.connection.request("GET", path, headers=dict(headers, **{"Memory-Request": "16"}))
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"{self.mode} {path}: status {response.status}")

    def cpu_seconds(self):
        """The server's user + system CPU time."""
        stat = open(f"/proc/{self.process.pid}/stat").read()
        fields = stat[stat.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def worker_usage(self):
        """CPU seconds the cgroup workers have used, from their own accounting."""
        total = 0.0
        for entry in os.listdir(self.accounting):
            path = os.path.join(self.accounting, entry)
            if entry.startswith("w") and os.path.isdir(path):
                if os.path.exists(os.path.join(path, "cpuacct.usage")):
                    total += int(open(os.path.join(path, "cpuacct.usage")).read()) / 1e9
                else:
                    stat = open(os.path.join(path, "cpu.stat")).read()
                    total += int(re.search(r"usage_usec (\d+)", stat).group(1)) / 1e6
        return total

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_alone(server, iters):
    """One unthrottled CPU request: the CPU time the work takes, and its share of a core."""
    cpu, wall = server.cpu_seconds(), time.monotonic()
    server.get(f"/cpu?iters={iters}", {})
    wall, cpu = time.monotonic() - wall, server.cpu_seconds() - cpu
    return {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "share": round(cpu / wall, 3)}


def measure_accuracy(servers, args):
    """Per quota and mode: the share of a core a lone CPU-bound request got (median of rounds),
    by the server's CPU time and, for cgroups, by the workers' own accounting."""
    out = {}
    for quota in QUOTAS:
        rows = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:  # alternated
                server = servers[mode]
                usage = server.worker_usage() if mode == "cgroup" else 0.0
                cpu, wall = server.cpu_seconds(), time.monotonic()
                server.get(f"/cpu?iters={args.iters}", {"cpu_quota": str(quota)})
                wall, cpu = time.monotonic() - wall, server.cpu_seconds() - cpu
                row = {"wall_s": wall, "share": cpu / wall}
                if mode == "cgroup":
                    row["cgroup_share"] = (server.worker_usage() - usage) / wall
                rows[mode].append(row)
        out[str(quota)] = {
            mode: {key: round(statistics.median(r[key] for r in rows[mode]), 3) for key in rows[mode][0]}
            for mode in MODES
        }
    return out


def measure_overhead(servers, requests):
    """Latency of a tiny request (hello), without and with `cpu_quota: 1000` (never throttled),
    in alternating batches; for cgroups also with the quota alternating 1000/999, so the
    worker's quota file is rewritten on every request."""
    cases = [("none", lambda i: {}), ("quota", lambda i: {"cpu_quota": "1000"}),
             ("quota-changing", lambda i: {"cpu_quota": "1000" if i % 2 else "999"})]
    samples = {(mode, case): [] for mode in MODES for case, _ in cases}
    batch = 100
    for start in range(0, requests, batch):
        for mode in MODES:
            for case, headers in cases:
                server = servers[mode]
                for i in range(start, min(start + batch, requests)):
                    h = headers(i)
                    t = time.perf_counter()
                    server.get("/hello", h)
                    samples[(mode, case)].append(time.perf_counter() - t)
    out = {}
    for (mode, case), values in samples.items():
        values.sort()
        out.setdefault(mode, {})[case] = {
            "p50_us": round(values[len(values) // 2] * 1e6, 1),
            "p99_us": round(values[int(len(values) * 0.99)] * 1e6, 1),
        }
    return out


def wasmbox_cgroup_churn(parent, n):
    """WasmBox's per-request cgroup, as its code does it, timed here (microseconds, median):
    create the group, write its quota, move a thread in, move it back, remove the group."""
    if parent is None:
        return None
    base = os.path.dirname(parent.rstrip("/")) if os.path.basename(parent).startswith("wasmpod-") else parent
    quota_file = "cpu.max" if os.path.exists(os.path.join(base, "cpu.max")) else "cpu.cfs_quota_us"
    tasks = "cgroup.threads" if quota_file == "cpu.max" else "tasks"
    quota = "25000 100000" if quota_file == "cpu.max" else "25000"
    tid = str(threading.get_native_id())
    times = []
    for i in range(n):
        group = os.path.join(base, f"wasmpod-{os.getpid()}-probe{i}")
        t = time.perf_counter()
        os.mkdir(group)
        if quota_file == "cpu.max":
            with open(os.path.join(group, "cgroup.type"), "w") as f:
                f.write("threaded")
        with open(os.path.join(group, quota_file), "w") as f:
            f.write(quota)
        with open(os.path.join(group, tasks), "w") as f:
            f.write(tid)
        with open(os.path.join(base, tasks), "w") as f:
            f.write(tid)
        os.rmdir(group)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1e6, 1)


def markdown(r):
    lines = [
        "# CPU quotas: the runtime's throttle and `--cgroup-cpu`",
        "",
        f"commit {r['commit']}, {r['date']}, {r['cores']} cores, load average {' '.join(r['load_average'])}"
        f" at start; cgroups: {r['mechanism']}",
        "",
        f"## Accuracy: a lone CPU-bound request (`/cpu?iters={r['iters']}`), median of rounds",
        "",
        f"Unthrottled, the same request used {r['unthrottled']['cpu_s']} s of CPU in "
        f"{r['unthrottled']['wall_s']} s ({r['unthrottled']['share']} of a core): the most this "
        "machine gave one thread then.",
        "",
        "| quota | target | runtime: share (/target) | cgroup: share (/target) | cgroup's own accounting | wall runtime / cgroup |",
        "|---|---|---|---|---|---|",
    ]
    for quota, row in r["accuracy"].items():
        target = int(quota) / 1000
        rt, cg = row["runtime"], row["cgroup"]
        lines.append(
            f"| {quota} | {target:.2f} | {rt['share']:.3f} ({rt['share'] / target:.2f}) | "
            f"{cg['share']:.3f} ({cg['share'] / target:.2f}) | {cg['cgroup_share']:.3f} | "
            f"{rt['wall_s']:.2f} s / {cg['wall_s']:.2f} s |")
    lines += [
        "",
        "## Per-request cost: a tiny request (`/hello`), latency from a keep-alive client",
        "",
        "| mode | no `cpu_quota` p50 / p99 | `cpu_quota: 1000` p50 / p99 | quota changing every request p50 / p99 |",
        "|---|---|---|---|",
    ]
    for mode, cases in r["overhead"].items():
        cells = [f"{cases[c]['p50_us']:.0f} / {cases[c]['p99_us']:.0f} µs" for c in ("none", "quota", "quota-changing")]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    if r["wasmbox_cgroup_per_request_us"] is not None:
        lines += ["", f"WasmBox's per-request cgroup (mkdir, quota, thread in, thread out, rmdir), "
                      f"timed here: {r['wasmbox_cgroup_per_request_us']:.0f} µs median."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
