#!/usr/bin/env bash
# Cold start: process start -> first 200 response for 1, 100 and 1,000 functions, with no artifact
# cache, an empty one and a warm one (target: <= 100 ms warm with 1,000 functions).
#
#   bench/cold-start.sh [--counts 1,100,1000] [--runs 3]
#
# Builds the release binary, then runs bench/cold_start.py, which prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p wasmpod
exec python3 bench/cold_start.py --wasmpod target/release/wasmpod "$@"
