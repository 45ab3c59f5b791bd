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

runs=20
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --quick) quick=true; runs=2; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
date=$(date -u +%FT%TZ)

if $quick; then
  # What `cargo test --workspace` builds (bench/tests runs this binary): after the tests, as in
  # CI, nothing is rebuilt.
  cargo test --workspace --locked --no-run
  "$target_dir/debug/wasabi-profile" --runs "$runs" --small --commit "$commit" --date "$date" \
    --json bench/results/wasabi-profiles-quick.json --markdown bench/results/wasabi-profiles-quick.md
else
  cargo build --release --workspace --bins --locked
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$target_dir/release/wasabi-profile" --runs "$runs" --commit "$commit" --date "$date" \
    --json bench/results/wasabi-profiles.json --markdown bench/results/wasabi-profiles.md
fi
