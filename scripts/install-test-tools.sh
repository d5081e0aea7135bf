#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust: hledger (checks the exported journal).
# Idempotent; needs root (or sudo) for apt-get the first time.
set -euo pipefail

if command -v hledger >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing hledger from Debian packages..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends hledger >/dev/null
hledger --version >&2
