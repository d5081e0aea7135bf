#!/usr/bin/env bash
# Differential test: billrun's invoices must equal, to the minor unit, those of two
# independent implementations of the same rules (benches/baselines: DuckDB SQL and
# Polars) on a generated dataset with every pricing model, plan versions changing
# inside the window, proration, discounts, commitments, tax, credit memos, duplicates,
# bad rows and four currencies. Small scale so that it runs in CI; no timings asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${BILLRUN_DIFF_EVENTS:-20000}"
CUSTOMERS="${BILLRUN_DIFF_CUSTOMERS:-300}"
SEED="${BILLRUN_DIFF_SEED:-11}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cargo build --locked -q -p billrun --bin billrun
B=target/debug/billrun
$B generate --customers "$CUSTOMERS" --events "$EVENTS" --seed "$SEED" --out "$WORK/data" >/dev/null
$B run --data "$WORK/data" --out "$WORK/billrun" --period 2026-10 >/dev/null
python3 benches/baselines/run_baselines.py --data "$WORK/data" --period 2026-10 \
    --work "$WORK/baselines" --engines duckdb,polars --check "$WORK/billrun"
