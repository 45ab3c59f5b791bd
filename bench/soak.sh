#!/usr/bin/env bash
# The soak: one `wasmpod serve FOLDER` under a bounded mixed load (hello, CPU-bound, memory-heavy,
# trapping and timing-out guests, 413 and 503 refusals) for 30 minutes, with functions replaced
# in the folder every 30 s; RSS, open fds, threads and pool slots sampled every 10 s.
#
#   bench/soak.sh [--duration SECONDS] [--rate REQ_PER_S] [--reload-interval SECONDS | --no-reload]
#                 [--out DIR] [--quick]
#
# Writes bench/results/soak-latest/{README.md,soak.json,soak.svg} (or --out DIR). --quick (what
# CI runs: the debug binaries the tests built, 150 s, a reload every 15 s) writes
# bench/results/soak-quick/, which git ignores. --no-reload (--reload-interval 0) replaces no
# function: the run that tells memory kept per reload from memory kept per request. Either fails
# when the fds or threads grow, on any answer a route does not expect (an unexpected 5xx, a
# missing answer) or a reload that is never served (bench/README.md).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

duration=1800
rate=25
reload_interval=30
quick=false
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --reload-interval) reload_interval="$2"; shift 2 ;;
    --no-reload) reload_interval=0; shift ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=true; duration=150; rate=15; reload_interval=15; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"
commit="$commit$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"

if $quick; then
  bench_build debug
  build=debug
  out=${out:-bench/results/soak-quick}
else
  bench_build release
  build=release
  out=${out:-bench/results/soak-latest}
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
python3 "$bench_dir/soak.py" --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --guests "$(bench_guests hello)" --duration "$duration" --rate "$rate" \
  --reload-interval "$reload_interval" --out "$out" --commit "$commit" --build "$build" \
  $($quick && echo --quick)
