#!/usr/bin/env bash
# tests/browser/install-chromium.sh -- the browser the admin UI tests drive:
# Debian's chromium package (Playwright is told to launch it; it never
# downloads a browser of its own). Does nothing when it is already installed.
# Installing needs root (apt-get); the package lists are refreshed once, first.
set -euo pipefail

CHROMIUM=${BROKER_TEST_CHROMIUM:-/usr/bin/chromium}

if [[ -x $CHROMIUM ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-chromium.sh: $CHROMIUM is missing; as root: apt-get install chromium" >&2
  exit 1
fi
echo "install-chromium.sh: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >&2
"$CHROMIUM" --version >&2 2>/dev/null || true
[[ -x $CHROMIUM ]]
