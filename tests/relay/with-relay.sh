#!/usr/bin/env bash
# Runs COMMAND... with the URL of a fresh Syncthing relay (strelaysrv) on
# loopback appended as its last argument, then stops the relay.
#
#   bash tests/relay/with-relay.sh cargo run -q -p plex-tokio --example relay_echo
#
# The relay listens on 127.0.0.1 only, joins no public pool, runs no status
# server and no UPnP. It needs strelaysrv: see tests/relay/install.sh.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if ! command -v strelaysrv >/dev/null 2>&1; then
    echo "strelaysrv is missing: run bash tests/relay/install.sh" >&2
    exit 1
fi

work="$(mktemp -d)"
port="${PLEX_RELAY_PORT:-22467}"
strelaysrv -listen="127.0.0.1:$port" -keys="$work" -pools="" -status-srv="" -nat=false \
    >"$work/log" 2>&1 &
relay=$!
trap 'kill "$relay" 2>/dev/null || true; wait "$relay" 2>/dev/null || true; rm -rf "$work"' EXIT

# The URI line comes before the bind: wait for both.
for _ in $(seq 1 200); do
    if grep -q "URI: relay://" "$work/log" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$relay" 2>/dev/null; then
        cat "$work/log" >&2
        exit 1
    fi
    sleep 0.05
done
id="$(grep -o 'URI: relay://[^ ]*' "$work/log" | sed -e 's/.*?id=//' -e 's/&.*//')"
"$@" "relay://127.0.0.1:$port/?relay=$id"
