#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium`) for the browser test, when
# missing. Needs root (CI and the development machines run as root).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
test -x /usr/bin/chromium || { echo "install.sh: /usr/bin/chromium is still missing" >&2; exit 1; }
