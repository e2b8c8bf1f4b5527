#!/usr/bin/env bash
# Install Debian's chromium for the browser tests of the HTML reports (tests/report/).
# Idempotent: does nothing when a chromium binary is already on PATH; fails loudly otherwise.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "ci: $(chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi
SUDO=''
if [ "$(id -u)" -ne 0 ]; then
    SUDO='sudo'
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
if ! command -v chromium >/dev/null 2>&1; then
    echo "ci: chromium was not installed; the browser tests will fail" >&2
    exit 1
fi
echo "ci: installed $(chromium --version)"
