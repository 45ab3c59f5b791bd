#!/usr/bin/env bash
# The cluster simulator's speed and its policy table: `wasmpod simulate` on the synthetic workload
# (10,000 functions, 2 simulated hours, all four policies, one thread per policy), timed.
#
#   bench/simulate.sh [--functions N] [--minutes N] [--seed N] [--quick]
#
# Results: bench/results/simulate-<date>-<host>/ (report.md with the timing, result.json,
# pods.svg, latency-cdf.svg), copied to bench/results/simulate-latest/. --quick runs 300 functions
# for 5 minutes on the debug binary and writes under target/ (it proves the script works, not a
# number).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

functions=10000
minutes=120
seed=1
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --functions) functions="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --quick) quick=true; functions=300; minutes=5; shift ;;
    -h|--help) bench_help ;;
    *) bench_unknown "$1" ;;
  esac
done

cd "$repo"

stamp=$(date -u +%Y-%m-%d-%H%M)
if $quick; then
  bench_build debug
  binary=$bin/wasmpod
  out=$target_dir/simulate-quick
else
  bench_build release
  binary=$bin/wasmpod
  out=bench/results/simulate-$stamp-$(hostname)
fi
mkdir -p "$out"

echo "wasmpod simulate --functions $functions --minutes $minutes --seed $seed" >&2
TIMEFORMAT='%R %U %S'
{ time "$binary" simulate --functions "$functions" --minutes "$minutes" --seed "$seed" \
    --out "$out" --json >"$out/stdout.json" 2>"$out/stderr.log"; } 2>"$out/time.txt"
read -r wall user sys <"$out/time.txt"
cmp -s "$out/stdout.json" "$out/result.json" || { echo "--json output differs from result.json" >&2; exit 1; }
rm "$out/stdout.json"

{
  echo "# Simulator: $functions functions, $minutes minutes, all policies ($stamp UTC, $(hostname))"
  echo
  echo "- commit: \`$(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)\`"
  echo "- machine: $(nproc) logical CPUs; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- command: \`wasmpod simulate --functions $functions --minutes $minutes --seed $seed\` ($(basename "$(dirname "$binary")") build)"
  echo "- time: **${wall} s wall**, ${user} s user CPU, ${sys} s system CPU (four policies, one thread each)"
  echo
  cat "$out/report.md"
  echo
  echo "![pods over time](pods.svg)"
  echo
  echo "![latency CDF](latency-cdf.svg)"
} >"$out/README.md"
rm "$out/time.txt"
cat "$out/README.md"

if ! $quick; then
  rm -rf bench/results/simulate-latest
  cp -r "$out" bench/results/simulate-latest
fi
