#!/usr/bin/env bash
# The simulator checked against a real pod: calibrate a mixed workload's functions alone, then
# replay one seeded open-loop arrival trace per load level (0.5x, 1x, 1.5x capacity) against a
# real `wasmpod serve` (--repeats times, a fresh pod each time) and through `wasmpod simulate pod`,
# and report the error per figure against the real runs' mean, beside how far apart the real runs
# were (bench/README.md).
#
#   bench/sim-check.sh [--duration SECONDS] [--repeats N] [--quick]
#
# Results: bench/results/sim-check.{md,json,svg} and sim-check.profiles.json (45 s per level and
# run, three real runs: about 8 minutes after the release build). A --quick run (debug build, 8 s
# per level, one real run; CI runs it) writes bench/results/sim-check-quick.*, which git ignores;
# it fails if the check breaks, not on the error (debug timings are noisy).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

duration=45
samples=100
repeats=3
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --quick) quick=true; duration=8; samples=10; repeats=1; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

if $quick; then
  bench_build debug
  out=bench/results/sim-check-quick
  extra=(--quick)
else
  bench_build release
  out=bench/results/sim-check
  extra=()
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
guests=$(bench_guests cpu)
python3 bench/sim_check.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" --guests "$guests" \
  --duration "$duration" --samples "$samples" --repeats "$repeats" --out "$out" --commit "$commit" "${extra[@]}"
