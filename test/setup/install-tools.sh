#!/usr/bin/env bash
# Installs the real programs the test suite talks to (Debian packages): aria2, transmission-daemon
# (+ transmission-cli) and python3-libtorrent (independent BitTorrent clients for the interop tests,
# test/agent-{aria2,transmission,libtorrent}.test.ts), chromium (fleet page screenshot), Glance +
# Keystone (the glance target), iproute2 (network namespaces) and gcc (the bench's delay hub,
# test/bench-delay-hub.test.ts), systemd + strace
# (deploy-systemd.test.ts checks the units with systemd-analyze and the agent's system calls
# against its SystemCallFilter; deploy-systemd-pid1.test.ts boots /lib/systemd/systemd as PID 1
# of a container made with util-linux's unshare and starts both units). Idempotent; packaged services are kept from starting.
# Without root (and without sudo) it says so loudly; the tests that need a missing tool then
# skip with a message naming it.
set -euo pipefail
PKGS=(aria2 transmission-daemon transmission-cli python3-libtorrent curl chromium iproute2 gcc libc6-dev sqlite3 systemd strace glance-api python3-glance keystone python3-keystone uwsgi uwsgi-plugin-python3)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "install-tools: all present (${PKGS[*]})"; exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-tools: WARNING: not root and no sudo; cannot install: ${missing[*]}" >&2
    echo "install-tools: WARNING: tests needing these will SKIP (each says which tool is missing)" >&2
    exit 0
  fi
fi
echo "install-tools: installing ${missing[*]}"
# Keep the packaged daemons (glance-api, keystone, uwsgi, transmission-daemon) from starting: the
# tests run their own.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
$SUDO chmod 755 /usr/sbin/policy-rc.d
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/imgdist-apt.log 2>&1 || {
  echo "install-tools: apt-get install failed; see /tmp/imgdist-apt.log" >&2; tail -20 /tmp/imgdist-apt.log >&2; exit 1; }
$SUDO rm -f /usr/sbin/policy-rc.d
echo "install-tools: done"
