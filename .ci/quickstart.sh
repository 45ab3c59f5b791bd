#!/usr/bin/env bash
# Runs the README's "Quick start" exactly as written, so the front door cannot break unnoticed.
#
# The commands are not copied here: they are read from the README's fenced `sh` blocks between
# the "## Quick start" heading and the next "## " heading, and each line is run as written, from
# the repository root, in order:
#   - a `cargo run ... -- serve ...` line starts the server in the background (stopping the one
#     before it) and waits for its "Ready: serving on" line;
#   - a `rustup ...` line runs as is; its trailing `# comment` is a description;
#   - any other line runs in the foreground and must succeed; its trailing `# comment`, when it has
#     one, is the output it must print (stdout, trimmed);
#   - a fenced `text` block after a `sh` block (prose may stand between them) is the exact stdout of
#     that `sh` block's last line.
# Exits non-zero, naming the README line, at the first difference.
set -euo pipefail
cd "$(dirname "$0")/.."

readme=README.md
work=$(mktemp -d)
server_pid=""

stop_server() {
  if [ -n "$server_pid" ]; then
    # The server runs in its own session: stop cargo and the wasmpod it started together.
    # SIGINT, as Ctrl-C at a terminal: no drain period (SIGTERM would keep serving for 15 s).
    kill -INT -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 -- "-$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "quickstart: README.md:$1: $2" >&2
  exit 1
}

# Emits "LINE<TAB>KIND<TAB>TEXT" records: KIND is `cmd` for a command line of a `sh` block and
# `out` for a line of a `text` block that follows one (`outend` closes such a block).
extract() {
  awk '
    /^## / { in_section = ($0 == "## Quick start"); next }
    !in_section { next }
    /^```sh[[:space:]]*$/ { block = "sh"; next }
    /^```text[[:space:]]*$/ { if (last == "sh") { block = "text" } else { block = "skip" }; next }
    /^```/ {
      if (block == "text") { printf "%d\toutend\t\n", NR }
      last = block; block = ""; next
    }
    block == "sh" && $0 !~ /^[[:space:]]*$/ { printf "%d\tcmd\t%s\n", NR, $0; next }
    block == "text" { printf "%d\tout\t%s\n", NR, $0; next }
  ' "$readme"
}

records=$(extract)
[ -n "$records" ] || fail 1 'no `sh` block found under "## Quick start"'

last_out=""
last_line=0
expected=""
collecting=0
commands=0
while IFS=$'\t' read -r line kind text; do
  case "$kind" in
    out)
      collecting=1
      expected+="$text"$'\n'
      continue
      ;;
    outend)
      if [ "$(printf '%s' "$last_out")" != "$(printf '%s' "${expected%$'\n'}")" ]; then
        printf 'expected:\n%s\ngot:\n%s\n' "$expected" "$last_out" >&2
        fail "$last_line" "the output differs from the README's text block"
      fi
      echo "ok  README.md:$last_line prints the README's text block"
      expected=""
      collecting=0
      continue
      ;;
  esac
  commands=$((commands + 1))
  # Split off a trailing comment (a `#` preceded by whitespace, outside quotes is assumed).
  command=$(printf '%s' "$text" | sed -E 's/[[:space:]]+#[[:space:]].*$//')
  comment=""
  if [ "$command" != "$text" ]; then
    comment=$(printf '%s' "$text" | sed -E 's/^.*[[:space:]]+#[[:space:]]+//')
  fi
  case "$command" in
    *"cargo run"*"-- serve"*)
      stop_server
      if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
        fail "$line" "port 3000 is already in use; the quick start needs it"
      fi
      log="$work/server-$line.log"
      : >"$log"
      setsid bash -c "$command" >"$log" 2>&1 </dev/null &
      server_pid=$!
      echo "run README.md:$line (background): $command"
      # A fresh clone builds first: allow the release build its time.
      deadline=$((SECONDS + 2400))
      until grep -q 'Ready: serving on' "$log"; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
          cat "$log" >&2
          fail "$line" "the server exited before it was ready"
        fi
        [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$log" >&2; fail "$line" "not ready after 40 minutes"; }
        sleep 0.5
      done
      echo "ok  README.md:$line is serving"
      ;;
    rustup*)
      echo "run README.md:$line: $command"
      bash -c "$command" || fail "$line" "failed: $command"
      ;;
    *)
      echo "run README.md:$line: $command"
      if ! last_out=$(bash -c "$command" 2>"$work/stderr"); then
        cat "$work/stderr" >&2
        fail "$line" "failed: $command"
      fi
      last_line=$line
      if [ -n "$comment" ]; then
        got=$(printf '%s' "$last_out" | sed -e 's/[[:space:]]*$//')
        [ "$got" = "$comment" ] || fail "$line" "printed '$got', the README says '$comment'"
        echo "ok  README.md:$line printed: $comment"
      fi
      ;;
  esac
done <<<"$records"
[ "$collecting" = 0 ] || fail "$last_line" "unterminated text block"
echo "quickstart: all $commands README commands behaved as written"
