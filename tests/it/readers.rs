//! Every output table read by the tools analysts use, for real: pyarrow, Polars and
//! DuckDB (`tests/readers/read_every_table.py`) each read every Parquet table of the
//! billing sample, the revenue sample and a posting run with the books, find the rows
//! the manifest lists, see money as decimals (never floats) and agree on every value.

use std::path::Path;

use crate::common::{repo, tool};

/// Whether python3 has the three readers. Without `BILLRUN_REQUIRE_TOOLS` a machine
/// that lacks one skips the check, as it does when python3 itself is missing;
/// `scripts/test.sh` installs them and requires them, so CI always runs it.
fn readers_installed() -> bool {
    if std::env::var_os("BILLRUN_REQUIRE_TOOLS").is_some() {
        return true;
    }
    let installed = std::process::Command::new("python3")
        .args(["-c", "import pyarrow, polars, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "python3 with pyarrow, polars and duckdb not available; skipped — CI runs this check"
        );
    }
    installed
}

fn read_every_table(out: &Path, tables: &[&str]) {
    if !readers_installed() {
        return;
    }
    let script = repo("tests/readers/read_every_table.py");
    let Some(text) = tool("python3", &[script.as_os_str(), out.as_os_str()]) else {
        return;
    };
    let read: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    for table in tables {
        assert!(
            read.contains(table),
            "{table} was not read in {}: {text}",
            out.display()
        );
    }
}

#[test]
fn pyarrow_polars_and_duckdb_read_every_table_alike() {
    read_every_table(
        &crate::e2e::sample_out(),
        &[
            "invoices",
            "invoice_lines",
            "rated_usage",
            "journal",
            "rejects",
            "unrated",
            "open_credits",
        ],
    );
    read_every_table(
        &crate::revenue::revenue_out(),
        &[
            "revenue_allocations",
            "revenue_schedule",
            "contract_billings",
            "deferred_revenue",
            "revenue_waterfall",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let outs = crate::books::three_periods(books.to_str().unwrap(), dir.path());
    read_every_table(
        outs.last().unwrap(),
        &[
            "receivables",
            "ar_aging",
            "applications",
            "customer_balances",
        ],
    );
}
