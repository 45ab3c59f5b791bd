#!/usr/bin/env bash
# CPU quotas two ways, measured in one run with both servers up and alternated: the runtime's
# epoch-based throttle (the default) and the kernel's (`--cgroup-cpu`). Accuracy (the share of a
# core a request held to 100/250/500 millicores gets) and per-request cost (a tiny request's
# latency with and without `cpu_quota`), plus WasmBox's per-request cgroup timed here.
#
#   bench/cpu-isolation.sh [--quick]
#
# Needs a writable cgroup filesystem (root in a VM or a privileged container); elsewhere it says
# why and stops. Results: bench/results/cpu-isolation.{md,json}. A --quick run (debug build, a
# few requests) writes bench/results/cpu-isolation-quick.*, which git ignores.
set -euo pipefail

quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  out=bench/results/cpu-isolation-quick
  extra=(--quick)
else
  cargo build --release --workspace --bins --locked
  bin="$target_dir/release"
  out=bench/results/cpu-isolation
  extra=()
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# crates/wasmpod-guests/build.rs always builds the guests into <repo>/target/guests.
python3 bench/cpu_isolation.py --wasmpod "$bin/wasmpod" \
  --guests "$repo/target/guests/wasm32-wasip1/release" --out "$out" --commit "$commit" "${extra[@]}"
