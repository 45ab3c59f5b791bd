#!/usr/bin/env bash
# The Wasabi functions at full size: run time p50/p99, peak linear memory, instantiate and
# compile time, artifact size, and the same calls under WasmBox's per-request design.
#
#   bench/wasabi.sh [--runs N] [--quick]
#
# Writes bench/results/wasabi-profiles.json (read by the cluster simulator and by
# bench/wasabi-mix.sh) and bench/results/wasabi-profiles.md. A --quick run (small cases, 2 calls,
# debug build) writes wasabi-profiles-quick.{json,md}, which git ignores: it proves the script
# works, not a number.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

runs=20
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --quick) quick=true; runs=2; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"
date=$(date -u +%FT%TZ)

if $quick; then
  bench_build debug
  "$bin/wasabi-profile" --runs "$runs" --small --commit "$commit" --date "$date" \
    --json bench/results/wasabi-profiles-quick.json --markdown bench/results/wasabi-profiles-quick.md
else
  bench_build release
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$bin/wasabi-profile" --runs "$runs" --commit "$commit" --date "$date" \
    --json bench/results/wasabi-profiles.json --markdown bench/results/wasabi-profiles.md
fi
