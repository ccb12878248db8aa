#!/bin/sh
# Runs the JS test peer against itself: server + client over TCP and over
# WebSocket. Exits non-zero if any scenario fails or a server misbehaves.
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
for listen in tcp://127.0.0.1:0 ws://127.0.0.1:0/plex; do
  rm -f "$tmp/in"
  mkfifo "$tmp/in"
  node peer.js server --listen "$listen" < "$tmp/in" > "$tmp/out" 2> "$tmp/err" &
  server_pid=$!
  exec 3> "$tmp/in" # the server's stdin: closing it stops the server

  url=""
  i=0
  while [ -z "$url" ] && [ $i -lt 100 ]; do
    url=$(sed -n 's/^LISTENING //p' "$tmp/out")
    [ -n "$url" ] || sleep 0.1
    i=$((i + 1))
  done
  if [ -z "$url" ]; then
    echo "FAIL server on $listen did not print LISTENING" >&2
    cat "$tmp/err" >&2
    exit 1
  fi

  echo "== client against $url"
  node peer.js client --connect "$url" || status=1
  echo "== bench-client against $url (1 s)"
  node peer.js bench-client --connect "$url" --seconds 1 --inflight 16 || status=1

  exec 3>&- # EOF on stdin
  i=0
  while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL server on $listen still running after its stdin closed" >&2
    status=1
  fi
  if [ -s "$tmp/err" ]; then
    echo "server stderr:" >&2
    cat "$tmp/err" >&2
  fi
  server_pid=""
done

if [ $status -eq 0 ]; then echo "check.sh: all passed"; else echo "check.sh: FAILED" >&2; fi
exit $status
