#!/usr/bin/env bash
# Builds billrun and runs the October 2026 bill run on the bundled sample datasets:
# data-samples/sample/input (usage, invoices) and data-samples/revenue/input (contracts
# recognised under ASC 606), then shows the invoices and the deferred-revenue roll-forward.
# The debug build is used on purpose: it is the one the tests build too, and the sample
# is small. For large datasets use `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --bin billrun
./target/debug/billrun run --data data-samples/sample/input --out out/sample --period 2026-10
./target/debug/billrun query --out out/sample \
    "SELECT invoice_id, currency, subtotal, discount, tax, credits, total FROM invoices ORDER BY invoice_id"

./target/debug/billrun run --data data-samples/revenue/input --out out/revenue --period 2026-10
./target/debug/billrun report deferred-revenue --out out/revenue
