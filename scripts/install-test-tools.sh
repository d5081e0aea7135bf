#!/usr/bin/env bash
# Installs what billrun's tests need besides Rust: hledger (checks the exported journal)
# and the Python packages of the baselines the differential test compares against
# (benches/baselines/requirements.txt: duckdb, polars).
# Idempotent; needs root (or sudo) for apt-get the first time.
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
