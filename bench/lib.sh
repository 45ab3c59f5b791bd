# Sourced by the bench/*.sh drivers, right after `set -euo pipefail`: where things are, the
# command-line chores every driver has, and the build a run uses. It changes no directory, so a
# driver resolves its own path arguments before its `cd "$repo"`.
#
# Sets: bench_dir (this folder), repo (the checkout), target_dir ($CARGO_TARGET_DIR or
# <repo>/target) and commit (short hash, or "unknown" outside git).

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)

# Prints the driver's header comment (its usage) and exits 0: the `-h|--help` arm.
bench_help() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 0
}

# Rejects an argument the driver does not know and exits 2: the `*)` arm.
bench_unknown() {
  echo "unknown argument: $1 (see --help)" >&2
  exit 2
}

# Builds what a run needs and sets bin to the folder of its binaries:
# - `bench_build debug`: what `cargo test --workspace` builds (the same features, guests and the
#   bench binaries included), so after the tests, as in CI, nothing is rebuilt;
# - `bench_build release`: every binary of the workspace in release mode (the guests are built
#   by crates/wasmpod-guests/build.rs either way).
bench_build() {
  case "$1" in
    debug) cargo test --workspace --locked --no-run; bin="$target_dir/debug" ;;
    release) cargo build --release --workspace --bins --locked; bin="$target_dir/release" ;;
    *) echo "bench_build: debug or release, not $1" >&2; exit 2 ;;
  esac
}

# The build and the results of a run, for a driver with a --quick mode: `bench_mode QUICK NAME`
# (QUICK is true or false) builds as `bench_build debug` for a quick run, release otherwise, and
# sets out to bench/results/NAME-quick (git ignores those) or bench/results/NAME, and quick_args
# to what the driver passes on to its Python harness (`--quick`, or nothing).
bench_mode() {
  if "$1"; then
    bench_build debug
    out=bench/results/$2-quick
    quick_args=(--quick)
  else
    bench_build release
    out=bench/results/$2
    quick_args=()
  fi
}

# Prints the folder of the wasm32-wasip1 test guest NAME.wasm (crates/wasmpod-guests/build.rs
# builds them into <repo>/target/guests), or fails saying how to build it.
bench_guests() {
  local found
  found=$(find "$repo/target/guests" -name "$1.wasm" -path '*wasm32-wasip1*' 2>/dev/null | head -n1)
  [ -n "$found" ] || { echo "guest $1.wasm not built (cargo test --no-run builds the guests)" >&2; exit 1; }
  dirname "$found"
}
