#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust, idempotently:
# - hledger (checks the exported journal), from Debian packages; needs root or sudo;
# - moto's S3 server (the S3-compatible store of the import tests) and boto3, from PyPI.
# Servers are started by the tests themselves, on loopback ports.
set -euo pipefail

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
