#!/usr/bin/env bash
# Builds billrun and runs the October 2026 bill run on the bundled sample dataset,
# then shows the invoices it produced.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
./target/release/billrun run --data data-samples/sample/input --out out/sample --period 2026-10
./target/release/billrun query --out out/sample \
    "SELECT invoice_id, currency, subtotal, discount, tax, credits, total FROM invoices ORDER BY invoice_id"
