#!/usr/bin/env bash
# Plasmite's own CLI (1.2.1) against `plex serve`: fetch, follow, pool list
# and pool info over http://127.0.0.1:PORT/POOL, with their outputs checked.
# Outside the default test run (it installs plasmite, a few minutes' build,
# into target/plasmite-cli on first use). Usage: tests/plasmite/cli.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

plasmite=$root/target/plasmite-cli/bin/plasmite
if [ ! -x "$plasmite" ]; then
    cargo install plasmite --version 1.2.1 --locked \
        --root "$root/target/plasmite-cli" --target-dir "$root/target/plasmite-build"
fi
cargo build -q -p plex-cli
plex=$root/target/debug/plex

tmp=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# Plasmite keeps saved connections under HOME: start from none.
export HOME=$tmp/home
mkdir -p "$HOME"
pools=$tmp/pools

failures=0
check() { # check NAME EXPECTED ACTUAL
    if [ "$2" == "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1"
        echo "     expected: $2"
        echo "     actual:   $3"
        failures=$((failures + 1))
    fi
}
# Runs a command, recording its stdout in $out and its exit code in $code.
run() {
    set +e
    out=$("$@" 2>"$tmp/stderr")
    code=$?
    set -e
}

"$plex" --dir "$pools" pool create demo other --size 1M > /dev/null
"$plex" --dir "$pools" feed demo --tag cli '{"n":1}' > /dev/null
"$plex" --dir "$pools" feed demo --tag cli '{"n":2,"s":"two"}' > /dev/null
"$plex" --dir "$pools" feed demo '{"n":3}' > /dev/null

"$plex" --dir "$pools" serve --http http://127.0.0.1:0 --listen tcp://127.0.0.1:0 > "$tmp/url" 2> "$tmp/serve.log" &
server=$!
for _ in $(seq 200); do
    [ -s "$tmp/url" ] && break
    sleep 0.05
done
url=$(head -n 1 "$tmp/url")
echo "plex serve at $url; $("$plasmite" version)"

run "$plasmite" fetch "$url/demo" 2 --format json
check "fetch: exit 0" 0 "$code"
check "fetch: data" '{"n":2,"s":"two"}' "$(jq -c .data <<<"$out")"
check "fetch: seq and tags" '2 ["cli"]' "$(jq -c '.seq, .meta.tags' <<<"$out" | paste -sd' ')"
check "fetch: same message as plex fetch" \
    "$("$plex" --dir "$pools" fetch demo 2 | jq -cS .)" "$(jq -cS . <<<"$out")"

run "$plasmite" fetch "$url/demo" 99 --format json
check "fetch of a missing seq: exit 3 (NotFound)" 3 "$code"
run "$plasmite" fetch "$url/nope" 1 --format json
check "fetch from a missing pool: exit 3 (NotFound)" 3 "$code"

run "$plasmite" follow "$url/demo" --no-follow --format json
check "follow --no-follow: exit 0" 0 "$code"
check "follow --no-follow: every message" "1 2 3" "$(jq -r .seq <<<"$out" | paste -sd' ')"

run "$plasmite" follow "$url/demo" --tail 2 --no-follow --format json
check "follow --tail 2 --no-follow: the last two" "2 3" "$(jq -r .seq <<<"$out" | paste -sd' ')"

run "$plasmite" follow "$url/demo" --no-follow --where '.meta.tags[]? == "cli"' --format json
check "follow --where on tags" "1 2" "$(jq -r .seq <<<"$out" | paste -sd' ')"

# A live follow: the last message, then one appended while it waits, then
# exit 124 when --timeout passes without another.
set +e
"$plasmite" follow "$url/demo" --tail 1 --timeout 2s --format json > "$tmp/follow" 2> "$tmp/follow.err" &
follower=$!
set -e
for _ in $(seq 200); do
    [ -s "$tmp/follow" ] && break
    sleep 0.05
done
"$plex" --dir "$pools" feed demo --tag live '{"n":4}' > /dev/null
set +e
wait "$follower"
code=$?
set -e
check "follow --tail 1 --timeout 2s: exit 124 at the timeout" 124 "$code"
check "follow --tail 1 --timeout 2s: old then live" "3 4" "$(jq -r .seq < "$tmp/follow" | paste -sd' ')"
check "follow: live message's data and tags" '{"n":4} ["live"]' \
    "$(tail -n 1 "$tmp/follow" | jq -c '.data, .meta.tags' | paste -sd' ')"

run "$plasmite" pool list "$url" --format json
check "pool list: exit 0" 0 "$code"
check "pool list: names" "demo other" "$(jq -r '.. | objects | select(has("name")) | .name' <<<"$out" | paste -sd' ')"

run "$plasmite" pool info "$url/demo" --format json
check "pool info: exit 0" 0 "$code"
# Plasmite's CLI names the pool by the ref it was given.
check "pool info: name and bounds" "$url/demo 1 4" \
    "$(jq -r '[.name, .bounds.oldest, .bounds.newest] | join(" ")' <<<"$out")"
check "pool info: file size" 1048576 "$(jq -r .file_size <<<"$out")"
check "pool info: path" "$(realpath "$pools")/demo.plasmite" "$(jq -r .path <<<"$out")"
run "$plasmite" pool info "$url/nope" --format json
check "pool info of a missing pool: exit 3 (NotFound)" 3 "$code"

# `feed` sends Lite3 (append_lite3), which plex serve does not offer.
run "$plasmite" feed "$url/demo" '{"n":5}'
check "feed (Lite3 only): refused with exit 2 (Usage)" 2 "$code"
echo "     plasmite feed said: $(head -c 300 "$tmp/stderr" | tr '\n' ' ')"

kill -TERM "$server"
set +e
wait "$server"
code=$?
set -e
server=
check "plex serve: exit 0 on SIGTERM" 0 "$code"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed; plex serve's log:"
    cat "$tmp/serve.log"
    exit 1
fi
echo "all checks passed"
