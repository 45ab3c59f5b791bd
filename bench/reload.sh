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

rounds=20
sizes=1,1000
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --quick) quick=true; shift ;;
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
  cargo test --workspace --locked --no-run
  bin="$target_dir/debug"
  out=bench/results/reload-quick
  build=debug
  rounds=3
  sizes=1,20
else
  cargo build --release --workspace --bins --locked
  bin="$target_dir/release"
  out=bench/results/reload
  build=release
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/reload.py --wasmpod "$bin/wasmpod" --sizes "$sizes" --rounds "$rounds" \
  --out "$out" --commit "$commit" --build "$build"
