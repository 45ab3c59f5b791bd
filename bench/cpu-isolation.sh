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
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

bench_mode "$quick" cpu-isolation
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 bench/cpu_isolation.py --wasmpod "$bin/wasmpod" \
  --guests "$(bench_guests cpu)" --out "$out" --commit "$commit" "${quick_args[@]}"
