#!/usr/bin/env python3
"""Cold start of a wasmpod pod: process start -> first 200 response, for N functions.

Each function is a copy of guests/wat/hello.wat whose body text differs (so each is a different
module with its own cache entry), served from a folder. Three cases per N:

  no cache     `wasmpod serve DIR` (compiles everything, writes nothing)
  empty cache  `--cache-dir` pointing at a fresh directory (compiles and writes every entry)
  warm cache   the same directory again (every entry is used: the log must show no compile)

Prints a Markdown table of medians. Run through bench/cold-start.sh, which builds the release binary.
`--smoke` (what CI runs, seconds): 1 and 10 functions, one run each, whatever binary is given.
"""

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "guests" / "wat" / "hello.wat"
BODY = r"Oh hi world\n"  # 12 bytes in the guest; each copy gets another 12-byte body


def write_functions(folder: Path, count: int) -> None:
    text = HELLO.read_text()
    if BODY not in text:
        sys.exit(f"{HELLO}: body {BODY!r} not found; update bench/cold_start.py")
    for i in range(count):
        (folder / f"f{i}.wat").write_text(text.replace(BODY, rf"fn {i:08d}\n"))


def first_response_ms(wasmpod: str, folder: Path, cache: Path | None, log: Path) -> float:
    """Spawns the server and returns the time until GET /f0 answers 200."""
    args = [wasmpod, "serve", str(folder), "-l", "127.0.0.1:0"]
    if cache is not None:
        args += ["--cache-dir", str(cache)]
    env = dict(os.environ, RUST_LOG="info")
    env.pop("PORT", None)
    env.pop("WASMPOD_CACHE_DIR", None)
    with open(log, "w") as log_file:
        started = time.perf_counter()
        server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, env=env, text=True)
        try:
            address = None
            for line in server.stdout:
                if line.startswith("Ready: serving on http://"):
                    address = line.strip().removeprefix("Ready: serving on http://")
                    break
            if address is None:
                sys.exit(f"wasmpod exited before it was ready; log: {log}")
            host, port = address.rsplit(":", 1)
            while True:
                try:
                    connection = http.client.HTTPConnection(host, int(port), timeout=5)
                    connection.request("GET", "/f0")
                    status = connection.getresponse().status
                    connection.close()
                    if status == 200:
                        return (time.perf_counter() - started) * 1000
                except OSError:
                    pass
                time.sleep(0.001)
        finally:
            server.kill()
            server.wait()


def compiled_in(log: str) -> int:
    """How many modules the server compiled, from its "modules ready" info line (`compiled=N`).
    Fails if there is no such line, so that a change of the server's log cannot make the check
    pass vacuously."""
    found = re.search(r"modules ready.*?\bcompiled=(\d+)", log)
    if found is None:
        sys.exit('the server log has no "modules ready ... compiled=N" line: update bench/cold_start.py')
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wasmpod", default=str(ROOT / "target" / "release" / "wasmpod"))
    parser.add_argument("--counts", default="1,100,1000,10000", help="function counts (comma-separated)")
    parser.add_argument("--cases", default="none,empty,warm", help="which of none,empty,warm to run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (the median is shown)")
    parser.add_argument("--smoke", action="store_true", help="1 and 10 functions, one run: proves the script works")
    args = parser.parse_args()
    if args.smoke:
        args.counts, args.runs = "1,10", 1

    rows = []
    for count in (int(c) for c in args.counts.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"wasmpod-cold-{count}-"))
        try:
            folder = work / "functions"
            folder.mkdir()
            write_functions(folder, count)
            log = work / "server.log"
            cache = work / "cache"

            cases = set(args.cases.split(","))
            none = [first_response_ms(args.wasmpod, folder, None, log) for _ in range(args.runs) if "none" in cases]
            empty = []
            for _ in range(args.runs if "empty" in cases else 0):
                shutil.rmtree(cache, ignore_errors=True)
                empty.append(first_response_ms(args.wasmpod, folder, cache, log))
            if "warm" in cases and not cache.exists():
                # Fill the cache once (not measured).
                first_response_ms(args.wasmpod, folder, cache, log)
            warm = []
            for _ in range(args.runs if "warm" in cases else 0):
                warm.append(first_response_ms(args.wasmpod, folder, cache, log))
                compiled = compiled_in(log.read_text())
                if compiled != 0:
                    sys.exit(f"warm run: {compiled} of {count} modules were compiled, not taken from the cache; log: {log}")
            median = lambda xs: statistics.median(xs) if xs else None
            rows.append((count, median(none), median(empty), median(warm)))
            print(f"{count} functions: done", file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    cores = os.cpu_count()
    print(f"\nProcess start -> first 200 (median of {args.runs}; {cores} CPUs; page cache warm)\n")
    print("| functions | no cache (ms) | empty cache (ms) | warm cache (ms) |")
    print("|---:|---:|---:|---:|")
    show = lambda ms: "-" if ms is None else f"{ms:.0f}"
    for count, none, empty, warm in rows:
        print(f"| {count} | {show(none)} | {show(empty)} | {show(warm)} |")


if __name__ == "__main__":
    main()
