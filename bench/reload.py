#!/usr/bin/env python3
"""Reload latency: the time from a module file's write to the first 200 from its new version.

A folder of N functions (each a distinct WAT module, so each is compiled on its own) is served by
`wasmpod serve FOLDER`. Then, `--rounds` times, one function's file is replaced by a new version
(written beside it and renamed over it, the way deploy tools do) while a client polls that
function's route over one keep-alive connection; the latency is from just before the rename to the
first 200 whose body names the new version. Rounds alternate between two functions (the first and
the last in the folder), and N alternates between the sizes asked for, so a change in the
machine's load hits every size. Every other function is checked after the run: all still 200.

The watcher waits for changes to settle (100 ms, `RELOAD_DEBOUNCE` in wasmpod-server) before it
reloads: that debounce is part of every figure, as a user sees it.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from benchlib import clean_env, serve, stop

WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{output}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def module(name, version):
    """A WAGI module answering `<name> v<version>`: distinct bytes per function and version."""
    body = f"{name} v{version}\n"
    output = f"content-type: text/plain\n\n{body}"
    text = WAT.format(output=output.replace("\n", "\\n"), length=len(output.encode()))
    return text, body


def write_atomically(folder, name, version):
    """Writes `<name>.wat` beside its place as a hidden file, then renames it over the old one.
    Returns the monotonic time just before the rename."""
    text, body = module(name, version)
    tmp = os.path.join(folder, f".{name}.wat.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    started = time.monotonic()
    os.rename(tmp, os.path.join(folder, f"{name}.wat"))
    return started, body


def start_server(args, work, folder, size):
    """Starts `wasmpod serve` on 127.0.0.1:0 and waits for its Ready line: (process, (host, port),
    seconds to ready)."""
    started = time.monotonic()
    server, base = serve(args.wasmpod, [folder, "-l", "127.0.0.1:0", "--compile-threads", "1"],
                         os.path.join(work, f"server-{size}.log"), {**clean_env(), "RUST_LOG": "info"},
                         timeout=600)
    host, _, port = base.removeprefix("http://").rpartition(":")
    return server, (host, int(port)), time.monotonic() - started


def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read().decode(errors="replace")


def round_trip(address, folder, name, version, timeout):
    """One reload: polls `/<name>` until it answers the new version; returns the latency in ms and
    the number of polls (every answer before the new one must be the old version's 200)."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    status, old = get(conn, f"/{name}")
    if status != 200:
        sys.exit(f"/{name} answered {status} before the reload: {old}")
    started, body = write_atomically(folder, name, version)
    polls = 0
    while True:
        status, text = get(conn, f"/{name}")
        polls += 1
        now = time.monotonic()
        if status == 200 and text == body:
            conn.close()
            return (now - started) * 1000, polls
        if status != 200 or text != old:
            sys.exit(f"/{name} answered {status} {text!r} during its reload (old {old!r}, new {body!r})")
        if now - started > timeout:
            sys.exit(f"/{name} still served its old version {timeout} s after the write")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wasmpod", required=True)
    p.add_argument("--sizes", default="1,1000", help="functions loaded, comma-separated")
    p.add_argument("--rounds", type=int, default=20, help="reloads per size")
    p.add_argument("--out", required=True, help="output path without extension (.md and .json)")
    p.add_argument("--commit", default="unknown")
    p.add_argument("--build", default="release")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = tempfile.mkdtemp(prefix="wasmpod-reload-")
    servers = {}
    try:
        for size in sizes:
            folder = os.path.join(work, f"fns-{size}")
            os.makedirs(folder)
            for i in range(size):
                text, _ = module(f"f{i}", 1)
                with open(os.path.join(folder, f"f{i}.wat"), "w") as f:
                    f.write(text)
            server, address, startup = start_server(args, work, folder, size)
            servers[size] = {"server": server, "address": address, "folder": folder,
                             "startup_s": startup, "latencies_ms": [], "polls": []}
            print(f"{size} functions: ready in {startup:.2f} s", file=sys.stderr)
        version = 1
        for r in range(args.rounds):
            version += 1
            for size in (sizes if r % 2 == 0 else list(reversed(sizes))):
                s = servers[size]
                name = "f0" if r % 2 == 0 else f"f{size - 1}"
                ms, polls = round_trip(s["address"], s["folder"], name, version, timeout=60)
                s["latencies_ms"].append(ms)
                s["polls"].append(polls)
        # Every function still answers after the reloads.
        for size, s in servers.items():
            conn = http.client.HTTPConnection(*s["address"], timeout=10)
            for i in range(size):
                status, text = get(conn, f"/f{i}")
                if status != 200:
                    sys.exit(f"{size} functions: /f{i} answered {status} after the reloads: {text}")
            conn.close()
    finally:
        for s in servers.values():
            stop(s["server"])
        shutil.rmtree(work, ignore_errors=True)

    result = {"commit": args.commit, "build": args.build, "rounds": args.rounds,
              "loadavg": open("/proc/loadavg").read().split()[:3], "debounce_ms": 100, "sizes": []}
    for size in sizes:
        lat = servers[size]["latencies_ms"]
        result["sizes"].append({
            "functions": size, "startup_s": round(servers[size]["startup_s"], 3),
            "p50_ms": round(statistics.median(lat), 1), "p99_ms": round(percentile(lat, 99), 1),
            "min_ms": round(min(lat), 1), "max_ms": round(max(lat), 1),
            "latencies_ms": [round(x, 1) for x in lat]})
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    lines = [f"# Reload latency ({args.build} build, commit {args.commit})", "",
             "From a module file's rename over the old one to the first 200 from the new version,",
             f"{args.rounds} reloads per size, sizes alternated in one run; includes the watcher's",
             f"100 ms debounce. Load average at the end: {' '.join(result['loadavg'])}.", "",
             "| functions loaded | start-up s | p50 ms | p99 ms | min ms | max ms |",
             "|---:|---:|---:|---:|---:|---:|"]
    for s in result["sizes"]:
        lines.append(f"| {s['functions']:,} | {s['startup_s']:.2f} | {s['p50_ms']} | {s['p99_ms']} | "
                     f"{s['min_ms']} | {s['max_ms']} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
