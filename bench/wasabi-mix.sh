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

duration=40
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --quick) quick=true; duration=3; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if $quick; then
  # What `cargo test --workspace` builds (bench/tests runs loadgen): after the tests, as in CI,
  # nothing is rebuilt.
  cargo test --workspace --locked --no-run
  bin="$target_dir/debug"
  out=bench/results/wasabi-mix-quick
  extra=(--quick)
else
  cargo build --release --workspace --bins --locked
  bin="$target_dir/release"
  out=bench/results/wasabi-mix
  extra=()
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
# crates/wasmpod-guests/build.rs always builds the functions into <repo>/target/guests.
python3 bench/wasabi_mix.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" \
  --guests "$repo/target/guests/wasm32-wasip1/wasabi" --profiles bench/results/wasabi-profiles.json \
  --duration "$duration" --out "$out" --commit "$commit" "${extra[@]}"
