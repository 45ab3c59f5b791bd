#!/usr/bin/env bash
# Builds every fuzz target of fuzz/ (libFuzzer, through cargo-fuzz on nightly) and runs each for
# FUZZ_SECONDS (default 10), printing the executions per target. A crash fails the script; its
# input is left in fuzz/artifacts/<target>/. FUZZ_CORPUS=DIR keeps the corpora there (long runs);
# by default each run starts from an empty temporary corpus. See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-10}
corpus_root=${FUZZ_CORPUS:+$(realpath -m "$FUZZ_CORPUS")}
cargo_fuzz_version=0.13.2

started=$SECONDS
rustup toolchain install nightly --profile minimal >/dev/null
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
echo "fuzz: toolchain ready in $((SECONDS - started)) s"

cd fuzz
cargo fmt -- --check
started=$SECONDS
cargo +nightly fuzz build -O
echo "fuzz: targets built in $((SECONDS - started)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  corpus=${corpus_root:+$corpus_root/$target}
  corpus=${corpus:-$scratch/corpus-$target}
  mkdir -p "$corpus"
  log=$scratch/$target.log
  if ! cargo +nightly fuzz run -O "$target" "$corpus" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -60 "$log" >&2
    echo "fuzz: $target failed (input in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $target: ${executions:-?} executions in ${seconds} s"
done
