#!/usr/bin/env bash
# Reload latency: from a module file's write to the first 200 from its new version, with 1 and
# with 1,000 functions loaded (folder mode), sizes alternated in one run. See bench/reload.py.
#
#   bench/reload.sh [--rounds N] [--sizes 1,1000] [--quick]
#
# Writes bench/results/reload.{md,json} (release build). --quick uses the debug build `cargo test`
# leaves, 1 and 20 functions and 3 rounds, and writes reload-quick.{md,json} (ignored by git): what
# CI runs, so the script cannot rot. 127.0.0.1 only; about a minute.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

rounds=20
sizes=1,1000
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --quick) quick=true; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

if $quick; then
  bench_build debug
  out=bench/results/reload-quick
  build=debug
  rounds=3
  sizes=1,20
else
  bench_build release
  out=bench/results/reload
  build=release
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/reload.py --wasmpod "$bin/wasmpod" --sizes "$sizes" --rounds "$rounds" \
  --out "$out" --commit "$commit" --build "$build"
