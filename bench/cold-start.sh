#!/usr/bin/env bash
# Cold start: process start -> first 200 response for 1, 100, 1,000 and 10,000 functions, with no
# artifact cache, an empty one and a warm one (targets: <= 50 ms warm with 1,000 functions, flat in
# the number of functions; 10,000 ready <= 500 ms).
#
#   bench/cold-start.sh [--counts 1,100,1000,10000] [--runs 3] [--cases none,empty,warm]
#   bench/cold-start.sh --smoke      # what CI runs: the debug binary, 1 and 10 functions, seconds
#
# Builds the release binary (the debug one for --smoke), then runs bench/cold_start.py, which
# prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
for arg in "$@"; do
  if [ "$arg" = --smoke ]; then profile=debug; fi
done
if [ "$profile" = release ]; then
  cargo build --release -p wasmpod
else
  # What `cargo test --workspace` builds: after the tests, as in CI, nothing is rebuilt.
  cargo test --workspace --locked --no-run
fi
exec python3 bench/cold_start.py --wasmpod "target/$profile/wasmpod" "$@"
