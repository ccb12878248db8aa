#!/usr/bin/env bash
# Installs Syncthing's relay server (`strelaysrv`, Debian package
# syncthing-relaysrv) for the relay:// tests, if it is missing.
#
# The package enables a systemd unit that runs a PUBLIC relay (it joins the
# public pool and tries UPnP): it is disabled and stopped right away. The
# tests start their own strelaysrv on 127.0.0.1 only (tests/src/relay.rs).
set -euo pipefail

if command -v strelaysrv >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Keeps the package from starting the public relay at all while it installs
# (Debian's invoke-rc.d asks policy-rc.d; 101 = action forbidden).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq syncthing-relaysrv
systemctl disable --now syncthing-relaysrv 2>/dev/null || true
command -v strelaysrv
