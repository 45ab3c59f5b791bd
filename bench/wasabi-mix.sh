#!/usr/bin/env bash
# The Wasabi mixed load: the five functions at once, open loop, at 0.5x, 1x and 1.5x the pod's
# capacity with admission, and at 1.5x without it; throughput, p50/p99 per function, 503s, peak
# RSS, and the in-flight and queued memory over time (bench/README.md).
#
#   bench/wasabi-mix.sh [--duration SECONDS] [--quick]
#
# Results: bench/results/wasabi-mix.{md,json,svg}. A --quick run (debug build, small cases, 3 s
# per run; CI runs it) writes bench/results/wasabi-mix-quick.*, which git ignores.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

duration=40
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --quick) quick=true; duration=3; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

bench_mode "$quick" wasabi-mix
$quick || echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/wasabi_mix.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --guests "$(bench_guests genpdf)" --profiles bench/results/wasabi-profiles.json \
  --duration "$duration" --out "$out" --commit "$commit" "${quick_args[@]}"
