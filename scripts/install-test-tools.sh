#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust: hledger (checks the exported journal)
# and aiosmtpd (the loopback SMTP server of the notification tests, scripts/smtp-sink.py).
# Idempotent; needs root (or sudo) for apt-get the first time.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
APT_UPDATED=""

if ! command -v hledger >/dev/null 2>&1; then
    echo "installing hledger from Debian packages..." >&2
    $SUDO apt-get update -qq
    APT_UPDATED=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends hledger >/dev/null
    hledger --version >&2
fi

if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
    echo "installing aiosmtpd from PyPI..." >&2
    # A system Python may refuse pip (PEP 668); Debian's package is the fallback.
    if ! python3 -m pip install --quiet --disable-pip-version-check aiosmtpd >&2; then
        [ -n "$APT_UPDATED" ] || $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-aiosmtpd >/dev/null
    fi
    python3 -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)" >&2
fi
