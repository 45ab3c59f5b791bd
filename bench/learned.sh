#!/usr/bin/env bash
# Learned admission weights on a real pod: declared, Wasabi's static 1.43x overbooking and
# learned weights, on one over-declaring mix, open loop, in one run (bench/README.md).
#
#   bench/learned.sh [--rates RPS,RPS,...] [--duration SECONDS]
#
# Results: bench/results/learned-weights.{md,json}. About 4 minutes after the release build.
set -euo pipefail

rates=80,150
duration=20
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
cargo build --release --workspace --bins --locked
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# crates/wasmpod-guests/build.rs builds the test guests into <repo>/target/guests.
hog=$(find "$repo/target/guests" -name hog.wasm -path '*wasm32-wasip1*' | head -n1)
[ -n "$hog" ] || { echo "hog.wasm not built (cargo test --no-run builds the guests)" >&2; exit 1; }
python3 bench/learned.py --wasmpod "$target_dir/release/wasmpod" --loadgen "$target_dir/release/loadgen" \
  --hog "$hog" --rates "$rates" --duration "$duration" --out bench/results/learned-weights \
  --commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
