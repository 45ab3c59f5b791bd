#!/usr/bin/env bash
# The soak: one `wasmpod serve FOLDER` under a bounded mixed load (hello, CPU-bound, memory-heavy,
# trapping and timing-out guests, 413 and 503 refusals) for 30 minutes, with functions replaced
# in the folder every 30 s; RSS, open fds, threads and pool slots sampled every 10 s.
#
#   bench/soak.sh [--duration SECONDS] [--rate REQ_PER_S] [--reload-interval SECONDS | --no-reload]
#                 [--out DIR] [--quick]
#
# Writes bench/results/soak-latest/{README.md,soak.json,soak.svg} (or --out DIR). --quick (what
# CI runs: the debug binaries the tests built, 150 s, a reload every 15 s) writes
# bench/results/soak-quick/, which git ignores. --no-reload (--reload-interval 0) replaces no
# function: the run that tells memory kept per reload from memory kept per request. Either fails
# when the fds or threads grow, on any answer a route does not expect (an unexpected 5xx, a
# missing answer) or a reload that is never served (bench/README.md).
set -euo pipefail

duration=1800
rate=25
reload_interval=30
quick=false
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --reload-interval) reload_interval="$2"; shift 2 ;;
    --no-reload) reload_interval=0; shift ;;
    --out) out="$2"; shift 2 ;;
    --quick) quick=true; duration=150; rate=15; reload_interval=15; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')"

if $quick; then
  # What `cargo test --workspace` builds (the same features, guests included): after the tests,
  # as in CI, nothing is rebuilt.
  cargo test --workspace --locked --no-run
  build=debug
  out=${out:-bench/results/soak-quick}
else
  # The build bench/wasabi.sh and bench/fairness.sh use (the workspace's features, so nothing
  # else is compiled); crates/wasmpod-guests builds the guests on the way.
  cargo build --release --workspace --bins --locked
  build=release
  out=${out:-bench/results/soak-latest}
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
fi
# crates/wasmpod-guests/build.rs always builds the guests into <repo>/target/guests.
python3 "$bench_dir/soak.py" --wasmpod "$target_dir/$build/wasmpod" --loadgen "$target_dir/$build/loadgen" \
  --guests "$repo/target/guests/wasm32-wasip1/release" --duration "$duration" --rate "$rate" \
  --reload-interval "$reload_interval" --out "$out" --commit "$commit" --build "$build" \
  $($quick && echo --quick)
