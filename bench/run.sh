#!/usr/bin/env bash
# The load suite: hello-world throughput and latency of wasmpod against a plain hyper server (the
# ceiling) on this machine, at concurrency 1, 10 and 100, with wrk on 127.0.0.1.
#
#   bench/run.sh [--duration SECONDS] [--repeats N] [--quick | --smoke]
#
# Within each repeat and concurrency the targets run one after the other (A B C A B C ...), so slow
# drift in the machine's load hits every target alike; bench/summarize.py takes medians over the
# repeats and computes every ratio to the ceiling within one repeat before taking its median.
# Results: bench/results/<date>-<host>.{md,svg}, copied to latest.{md,svg} (a --quick run writes
# *-quick.* files instead, which git ignores: they prove the script works, not a number).
# --smoke (what CI runs, seconds): debug binaries, 1 s at 10 connections, no peer, nothing
# written to bench/results; it fails if any target answers anything but 200.
set -euo pipefail

duration=10
repeats=3
quick=false
smoke=false
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --quick) quick=true; duration=2; repeats=1; shift ;;
    --smoke) smoke=true; duration=1; repeats=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
concurrencies=(1 10 100)
if $smoke; then concurrencies=(10); fi
# wrk threads, at most one per connection; client and server share the machine's cores.
wrk_threads=${WRK_THREADS:-2}

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench_dir/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

profile=release
if $smoke; then
  # A smoke run proves the script works, not a number: debug binaries (CI has built them).
  echo "building debug binaries and guests" >&2
  # What `cargo test --workspace` builds (the same features): after the tests, as in CI, nothing
  # is rebuilt.
  cargo test --workspace --locked --no-run
  profile=debug
else
  echo "building release binaries and guests" >&2
  cargo build --release -p wasmpod -p wasmpod-bench
  cargo build -p wasmpod-guests
fi
wasmpod="$target_dir/$profile/wasmpod"
hyper_hello="$target_dir/$profile/hyper-hello"
# crates/wasmpod-guests/build.rs always builds into <repo>/target/guests.
rust_hello="$repo/target/guests/wasm32-wasip1/release/hello.wasm"
# The wasi:http hello: guests/http answers `.../hello` under any route.
component="$repo/target/guests/wasm32-wasip2/release/http_guest.wasm"
wat_hello="$repo/guests/wat/hello.wat"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/modules.toml" <<EOF
[[module]]
route = "/"
module = "$wat_hello"

[[module]]
route = "/rust"
module = "$rust_hello"

[[module]]
route = "/http/..."
module = "$component"
EOF

# start NAME COMMAND...: runs a server that prints "Ready: serving on http://ADDR" and sets $addr.
start() {
  local name=$1; shift
  # Created before the child starts: the loop below reads them at once (the child's own
  # redirection may not have happened yet).
  : >"$work/$name.out"
  : >"$work/$name.err"
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 1 600); do
    addr=$(sed -n 's|^Ready: serving on http://||p' "$work/$name.out")
    [ -n "$addr" ] && return 0
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name did not become ready:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

# Targets in run order: the ceiling first. Each line: name url.
targets=()
start hyper-hello "$hyper_hello" --listen 127.0.0.1:0
targets+=("hyper-hello http://$addr/")
# --drain-seconds 0: the cleanup's SIGTERM stops it at once (no clients are left by then).
start wasmpod env RUST_LOG=warn "$wasmpod" serve -c "$work/modules.toml" -l 127.0.0.1:0 --drain-seconds 0
targets+=("wasmpod-wat http://$addr/" "wasmpod-rust http://$addr/rust" "wasmpod-component http://$addr/http/hello")

notes=()
# The peer: `wasmtime serve` (a fresh instance per request, its default) on the same component.
# `cargo install wasmtime-cli --version <ours> --locked` puts it on PATH (about 10 minutes).
wasmtime_version=$(sed -n 's/^wasmtime = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if $smoke; then
  notes+=("smoke run: no peer.")
elif ! command -v wasmtime >/dev/null 2>&1; then
  notes+=("wasmtime-serve skipped: no \`wasmtime\` on PATH (\`cargo install wasmtime-cli --version $wasmtime_version --locked\`).")
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # -Scli: the component imports wasi:cli (environment, stdio), as Rust components built with
  # the `wasi` crate do; wasmpod links it for every component.
  wasmtime serve -Scli --addr "127.0.0.1:$port" "$component" >"$work/wasmtime.out" 2>"$work/wasmtime.err" &
  pids+=($!)
  ready=false
  for _ in $(seq 1 600); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$port/hello" 2>/dev/null; then ready=true; break; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! $ready; then
    echo "wasmtime serve did not become ready:" >&2
    cat "$work/wasmtime.err" >&2
    exit 1
  fi
  targets+=("wasmtime-serve http://127.0.0.1:$port/hello")
  notes+=("wasmtime-serve: $(wasmtime --version), same component as wasmpod-component.")
fi

# Every target must answer 200 before it is measured.
for t in "${targets[@]}"; do
  read -r name url <<<"$t"
  code=$(curl -sS -o "$work/$name.body" -w '%{http_code}' "$url")
  [ "$code" = 200 ] || { echo "$name ($url) answered $code" >&2; exit 1; }
  echo "$name: $(tr -d '\n' <"$work/$name.body")" >&2
done

if ! $smoke; then
  echo "warming up" >&2
  for t in "${targets[@]}"; do
    read -r name url <<<"$t"
    wrk -t "$wrk_threads" -c 10 -d 1s "$url" >/dev/null
  done
fi

runs="$work/runs.tsv"
: >"$runs"
for repeat in $(seq 1 "$repeats"); do
  for c in "${concurrencies[@]}"; do
    threads=$((c < wrk_threads ? c : wrk_threads))
    for t in "${targets[@]}"; do
      read -r name url <<<"$t"
      out="$work/wrk-$repeat-$c-$name.txt"
      echo "repeat $repeat/$repeats  c=$c  $name" >&2
      wrk --latency --timeout 10s -t "$threads" -c "$c" -d "${duration}s" "$url" >"$out"
      printf '%s\t%s\t%s\t%s\n' "$repeat" "$c" "$name" "$out" >>"$runs"
    done
  done
done

if $smoke; then
  # Every run answered only 200s, and summarize.py reads what wrk printed.
  failed=false
  while IFS=$'\t' read -r _ c name out; do
    if grep -qE 'Non-2xx|Socket errors' "$out" || ! grep -q 'Requests/sec' "$out"; then
      echo "smoke: $name at c=$c:" >&2; cat "$out" >&2; failed=true
    fi
  done <"$runs"
  python3 "$bench_dir/summarize.py" "$runs" --ceiling hyper-hello --duration "$duration" --repeats 1 \
    --quick true --markdown "$work/smoke.md" --svg "$work/smoke.svg"
  cat "$work/smoke.md"
  if $failed; then exit 1; fi
  echo "smoke: every target answered 200 under load" >&2
  exit 0
fi

stem="$(date +%F-%H%M)-$(hostname -s)"
latest=latest
if $quick; then stem="$stem-quick"; latest=latest-quick; fi
mkdir -p "$bench_dir/results"
note_args=()
for n in "${notes[@]}"; do note_args+=(--note "$n"); done
python3 "$bench_dir/summarize.py" "$runs" \
  --ceiling hyper-hello --duration "$duration" --repeats "$repeats" --quick "$quick" \
  --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo '+dirty')" \
  --wrk "$(wrk --version 2>&1 | awk 'NR==1 {print $1, $2}')" \
  "${note_args[@]}" --pair wasmpod-component:wasmtime-serve \
  --markdown "$bench_dir/results/$stem.md" --svg "$bench_dir/results/$stem.svg"
cp "$bench_dir/results/$stem.md" "$bench_dir/results/$latest.md"
cp "$bench_dir/results/$stem.svg" "$bench_dir/results/$latest.svg"
echo "wrote bench/results/$stem.md and .svg (and $latest.*)" >&2
