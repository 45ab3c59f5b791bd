#!/usr/bin/env python3
"""Density: what an idle function and an in-flight instance cost in resident memory.

1. Idle: RSS of a wasmpod serving N distinct functions (default 10,000 WAT modules), minus the RSS
   of one serving a single function, per function; split into anonymous memory (heap, compiled code
   when it is not mmap'd from the artifact cache) and file-backed memory (mmap'd artifacts).
2. In flight: RSS while K requests (default 5,000) sleep inside their guests at once, minus the
   idle RSS, per instance.

The pool is left at its default size (derived from the admission capacity the script sets), and
every in-flight request must be answered 200: the script exits non-zero otherwise.

Bounded: every server and client runs on 127.0.0.1 and stops by itself. Usage:
    python3 bench/density.py [--functions 10000] [--inflight 5000] [--binary target/release/wasmpod]
    python3 bench/density.py --smoke   # what CI runs: 20 functions, 50 in flight, debug binary
"""

import argparse
import asyncio
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELLO_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "content-type: text/plain\\n\\nfunction {n:08}\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 43))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def status_kb(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            m = re.match(r"(VmRSS|RssAnon|RssFile|RssShmem):\s+(\d+) kB", line)
            if m:
                fields[m.group(1)] = int(m.group(2))
    return fields


def start(binary, args, cwd, env=None):
    proc = subprocess.Popen(
        [binary, "serve", "-l", "127.0.0.1:0", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "warn", **(env or {})},
        text=True,
    )
    deadline = time.time() + 600
    for line in proc.stdout:
        if line.startswith("Ready: serving on http://"):
            host, port = line.strip().rsplit("/", 1)[1].split(":")
            return proc, int(port)
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit(f"server did not start: {args}")


def folder_with(n, base):
    d = os.path.join(base, f"fns{n}")
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, f"f{i:05}.wat"), "w") as f:
            f.write(HELLO_WAT.format(n=i))
    return d


async def get(port, path, headers=""):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def settle(pid):
    time.sleep(1.0)
    return status_kb(pid)


def idle(binary, n, base, cache_args):
    results = {}
    for count in (1, n):
        d = folder_with(count, base)
        t0 = time.time()
        proc, port = start(binary, [d, "--no-admission", "--max-instances", "64", *cache_args], base)
        ready = time.time() - t0
        asyncio.run(get(port, "/f00000"))
        results[count] = (settle(proc.pid), ready)
        proc.kill()
        proc.wait()
    (one, _), (many, ready) = results[1], results[n]
    per = {k: (many[k] - one[k]) * 1024 / (n - 1) for k in ("VmRSS", "RssAnon", "RssFile")}
    return one, many, per, ready


def inflight(binary, k, base, sleep_ms):
    sleep_wasm = os.path.join(ROOT, "target/guests/wasm32-wasip1/release/sleep.wasm")
    if not os.path.exists(sleep_wasm):
        raise SystemExit(f"{sleep_wasm} missing: run cargo build -p wasmpod-guests")
    d = os.path.join(base, "sleep")
    os.makedirs(d, exist_ok=True)
    os.link(sleep_wasm, os.path.join(d, "sleep.wasm")) if not os.path.exists(os.path.join(d, "sleep.wasm")) else None
    # The Rust sleep guest starts with ~1.1 MB of linear memory, so each request declares 2 MB.
    mb = 2
    proc, port = start(
        binary,
        [d, "--concurrent-resource-request", str(mb * k + 100), "--queue-depth-resource-units", str(2 * mb * k + 200)],
        base,
    )
    asyncio.run(get(port, "/sleep?ms=1"))
    before = settle(proc.pid)

    async def run():
        tasks = [asyncio.create_task(get(port, f"/sleep?ms={sleep_ms}", f"Memory-Request: {mb}\r\n")) for _ in range(k)]
        peak = dict(before)
        inflight_seen = 0
        deadline = time.time() + max(sleep_ms / 1000 - 1, 0.5)
        while time.time() < deadline:
            await asyncio.sleep(0.25)
            m = (await get(port, "/metrics")).decode(errors="replace")
            found = re.search(r"^wasmpod_inflight_requests (\d+)", m, re.M)
            inflight_seen = max(inflight_seen, int(found.group(1)) if found else 0)
            now = status_kb(proc.pid)
            if now["VmRSS"] > peak["VmRSS"]:
                peak = now
        done = await asyncio.gather(*tasks, return_exceptions=True)
        ok = sum(1 for r in done if isinstance(r, bytes) and r.startswith(b"HTTP/1.1 200"))
        others = {}
        for r in done:
            if not (isinstance(r, bytes) and r.startswith(b"HTTP/1.1 200")):
                key = r.split(b"\r\n", 1)[0].decode(errors="replace") if isinstance(r, bytes) else repr(r)
                others[key] = others.get(key, 0) + 1
        return peak, inflight_seen, ok, others

    peak, seen, ok, others = asyncio.run(run())
    proc.kill()
    proc.wait()
    per = {key: (peak[key] - before[key]) * 1024 / max(seen, 1) for key in ("VmRSS", "RssAnon", "RssFile")}
    return before, peak, seen, ok, others, per


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--functions", type=int, default=10000)
    p.add_argument("--inflight", type=int, default=5000)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/wasmpod"))
    p.add_argument("--cache-dir", default=None, help="pass --cache-dir to wasmpod (artifact cache)")
    p.add_argument("--sleep-ms", type=int, default=8000, help="how long each in-flight request sleeps")
    p.add_argument("--smoke", action="store_true", help="20 functions, 50 in flight, the debug binary")
    a = p.parse_args()
    if a.smoke:
        a.functions, a.inflight, a.sleep_ms = 20, 50, 1500
        if a.binary == p.get_default("binary"):
            a.binary = os.path.join(ROOT, "target/debug/wasmpod")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.inflight + 1000)), hard))
    cache_args = ["--cache-dir", a.cache_dir] if a.cache_dir else []
    with tempfile.TemporaryDirectory() as base:
        one, many, per, ready = idle(a.binary, a.functions, base, cache_args)
        print(f"## Density ({time.strftime('%Y-%m-%d')}, {os.uname().nodename}, {os.cpu_count()} cores)\n")
        print("| measurement | VmRSS | RssAnon | RssFile |")
        print("|---|---|---|---|")
        print(f"| 1 function, idle | {one['VmRSS']/1024:.1f} MB | {one['RssAnon']/1024:.1f} MB | {one['RssFile']/1024:.1f} MB |")
        print(f"| {a.functions} functions, idle (ready in {ready:.1f} s) | {many['VmRSS']/1024:.1f} MB | {many['RssAnon']/1024:.1f} MB | {many['RssFile']/1024:.1f} MB |")
        print(f"| per idle function | {per['VmRSS']/1024:.1f} KB | {per['RssAnon']/1024:.1f} KB | {per['RssFile']/1024:.1f} KB |")
        before, peak, seen, ok, others, per_i = inflight(a.binary, a.inflight, base, a.sleep_ms)
        print(f"| sleep guest, idle | {before['VmRSS']/1024:.1f} MB | {before['RssAnon']/1024:.1f} MB | {before['RssFile']/1024:.1f} MB |")
        print(f"| {seen} requests in flight (peak; {ok}/{a.inflight} answered 200) | {peak['VmRSS']/1024:.1f} MB | {peak['RssAnon']/1024:.1f} MB | {peak['RssFile']/1024:.1f} MB |")
        print(f"| per in-flight instance | {per_i['VmRSS']/1024:.1f} KB | {per_i['RssAnon']/1024:.1f} KB | {per_i['RssFile']/1024:.1f} KB |")
        if ok != a.inflight:
            print(f"\nFAILED: {a.inflight - ok} of {a.inflight} in-flight requests were not answered 200: {others}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
