#!/usr/bin/env bash
# The simulator checked against a real pod: calibrate a mixed workload's functions alone, then
# replay one seeded open-loop arrival trace per load level (0.5x, 1x, 1.5x capacity) against a
# real `wasmpod serve` and through `wasmpod simulate pod`, and report the error per figure
# (bench/README.md).
#
#   bench/sim-check.sh [--duration SECONDS] [--quick]
#
# Results: bench/results/sim-check.{md,json,svg} and sim-check.profiles.json (45 s per level,
# about 4 minutes after the release build). A --quick run (debug build, 8 s per level; CI runs
# it) writes bench/results/sim-check-quick.*, which git ignores; it fails if the check breaks,
# not on the error (debug timings are noisy).
set -euo pipefail

duration=45
samples=40
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --quick) quick=true; duration=8; samples=10; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  out=bench/results/sim-check-quick
  extra=(--quick)
else
  cargo build --release --workspace --bins --locked
  bin="$target_dir/release"
  out=bench/results/sim-check
  extra=()
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
# crates/wasmpod-guests/build.rs builds the test guests into <repo>/target/guests.
guests=$(dirname "$(find "$repo/target/guests" -name cpu.wasm -path '*wasm32-wasip1*' | head -n1)")
[ -f "$guests/cpu.wasm" ] || { echo "guests not built (cargo test --no-run builds them)" >&2; exit 1; }
python3 bench/sim_check.py --wasmpod "$bin/wasmpod" --loadgen "$bin/loadgen" --guests "$guests" \
  --duration "$duration" --samples "$samples" --out "$out" --commit "$commit" "${extra[@]}"
