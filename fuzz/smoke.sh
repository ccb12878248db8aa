#!/usr/bin/env bash
# A short fuzz run, as CI does it: build every target, then run each for a
# bounded time on a temporary copy of its seed corpus, so nothing is written
# into the repository. Exits non-zero on the first crash, leak or timeout;
# libFuzzer leaves the reproducer under fuzz/artifacts/<target>/.
#
# usage: fuzz/smoke.sh [seconds per target, default 30]
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds per target, default 30]" >&2
    exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")"
# cargo-fuzz passes nightly-only flags to rustc; this lets stable accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build
targets="$(cargo fuzz list)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in $targets; do
    corpus="$work/$target"
    mkdir -p "$corpus"
    if [[ -d "corpus/$target" ]]; then
        cp -R "corpus/$target/." "$corpus/"
    fi
    echo "== fuzz $target for ${seconds}s"
    # -timeout: one input running this long is a hang, reported as a crash.
    cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=25 -print_final_stats=1
done
