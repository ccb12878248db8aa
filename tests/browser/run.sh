#!/usr/bin/env bash
# The browser test of `plex serve`'s page: installs Chromium (Debian's) and
# playwright-core when missing, builds `plex`, and runs the test, which
# leaves a screenshot in target/browser/serve-page.png.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
cargo build -q -p plex-cli
node --test serve-page.test.mjs
