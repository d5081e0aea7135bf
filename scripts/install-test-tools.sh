#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust, idempotently:
# - hledger and ledger (check the exported journal), from Debian packages; needs root
#   or sudo;
# - moto's S3 server (the S3-compatible store of the import tests) and boto3, from PyPI;
# - aiosmtpd (the loopback SMTP server of the notification tests, scripts/smtp-sink.py),
#   from PyPI, or Debian's python3-aiosmtpd where pip is refused;
# - the Python packages of the baselines the differential test compares against
#   (benches/baselines/requirements.txt: duckdb, polars), and of the output checks
#   (tests/requirements.txt: beancount's bean-check, pyarrow), from PyPI.
# Servers are started by the tests themselves, on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

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

if ! command -v ledger >/dev/null 2>&1; then
    echo "installing ledger from Debian packages..." >&2
    [ -n "$APT_UPDATED" ] || $SUDO apt-get update -qq
    APT_UPDATED=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ledger >/dev/null
    ledger --version | head -n 1 >&2
fi

if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c "import boto3" 2>/dev/null; then
    echo "installing moto (S3 server for tests) from PyPI..." >&2
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
    # pyenv keeps console scripts behind shims that need a rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash
    fi
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

# The pinned versions, or install them (pip is idempotent, but slow to ask the index).
for REQUIREMENTS in benches/baselines/requirements.txt tests/requirements.txt; do
    if ! python3 - "$REQUIREMENTS" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        assert version(name) == want, name
PY
    then
        echo "installing the Python packages of $REQUIREMENTS..." >&2
        python3 -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    fi
done
# pyenv keeps console scripts (bean-check) behind shims that need a rehash.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash
fi
