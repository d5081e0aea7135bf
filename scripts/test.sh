#!/usr/bin/env bash
# billrun's whole test suite: formatting, lints, and every test of every crate
# (engine property tests, validation, the end-to-end bill run over data-samples/ with its
# hand-checked golden files, hledger's check of the exported journal, job files and
# notifications against a loopback SMTP server and webhook listener).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-tools.sh
# Tests that need hledger or the S3 server must not skip in CI.
export BILLRUN_REQUIRE_TOOLS=1
export BILLRUN_REQUIRE_S3=1
# Nor may the e-mail test skip because the SMTP server (aiosmtpd) cannot start.
export BILLRUN_REQUIRE_SMTP=1

# CI builds from scratch: incremental caches would only cost disk (gigabytes with DataFusion).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# billrun's invoices against the DuckDB and Polars baselines, exactly (small scale).
scripts/differential.sh
