#!/usr/bin/env bash
# Every test: installs what the tests need when it is missing (Syncthing's
# relay server for relay://, Chromium for the page of `plex serve`), then
# runs `cargo test` (arguments are passed on) and the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/relay/install.sh
cargo test "$@"
bash tests/browser/run.sh
