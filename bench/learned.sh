#!/usr/bin/env bash
# Learned admission weights on a real pod: declared, Wasabi's static 1.43x overbooking and
# learned weights, on one over-declaring mix, open loop, in one run (bench/README.md).
#
#   bench/learned.sh [--rates RPS,RPS,...] [--duration SECONDS]
#
# Results: bench/results/learned-weights.{md,json}. About 4 minutes after the release build.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

rates=80,150
duration=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"
bench_build release
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/learned.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --hog "$(bench_guests hog)/hog.wasm" --rates "$rates" --duration "$duration" \
  --out bench/results/learned-weights --commit "$commit"
