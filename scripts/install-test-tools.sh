#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust, idempotently:
# - hledger (checks the exported journal), from Debian packages; needs root or sudo;
# - moto's S3 server (the S3-compatible store of the import tests) and boto3, from PyPI;
# - the Python packages of the baselines the differential test compares against
#   (benches/baselines/requirements.txt: duckdb, polars), from PyPI.
# Servers are started by the tests themselves, on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hledger >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "installing hledger from Debian packages..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends hledger >/dev/null
    hledger --version >&2
fi

if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c "import boto3" 2>/dev/null; then
    echo "installing moto (S3 server for tests) from PyPI..." >&2
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
    # pyenv keeps console scripts behind shims that need a rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash
    fi
fi

# The pinned versions, or install them (pip is idempotent, but slow to ask the index).
REQUIREMENTS=benches/baselines/requirements.txt
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
    echo "installing the baselines' Python packages ($REQUIREMENTS)..." >&2
    python3 -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
fi
