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

duration=15
rounds=2
debug=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --debug) debug=true; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if $debug; then
  # Builds the guests too (wasmpod-guests' build script), as the tests do.
  cargo test --workspace --locked --no-run
  bin="$target_dir/debug"
  out=bench/results/fairness-debug
  build=debug
else
  cargo build --release --workspace --bins --locked
  cargo build -p wasmpod-guests --locked
  bin="$target_dir/release"
  out=bench/results/fairness
  build=release
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/fairness.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --guests "$repo/target/guests/wasm32-wasip1/release" --duration "$duration" --rounds "$rounds" \
  --out "$out" --commit "$commit" --build "$build"
