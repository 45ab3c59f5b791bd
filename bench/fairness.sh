#!/usr/bin/env bash
# Tenant fairness: a light tenant's p50/p99 alone and while another tenant floods the pod at 10x
# its capacity, alternated in one run, as ratios (target: p99 within 2x). See bench/fairness.py.
#
#   bench/fairness.sh [--duration S] [--rounds N] [--debug]
#
# Writes bench/results/fairness.{md,json}. --debug uses the debug build (what `cargo test`
# builds; no release build needed) and writes fairness-debug.{md,json}: the server is slower,
# so its figures are not the release ones. 127.0.0.1 only; about 4 x --duration seconds (15 s).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

duration=15
rounds=2
debug=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --debug) debug=true; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

if $debug; then
  bench_build debug
  out=bench/results/fairness-debug
  build=debug
else
  bench_build release
  out=bench/results/fairness
  build=release
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/fairness.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --guests "$(bench_guests sleep)" --duration "$duration" --rounds "$rounds" \
  --out "$out" --commit "$commit" --build "$build"
