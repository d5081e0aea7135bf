//! Helpers shared by the end-to-end test modules.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use billrun_pipeline::query::query;
use rust_decimal::Decimal;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Rows of a SQL result as strings (NULL as empty).
pub fn rows(out: &Path, sql: &str) -> Vec<Vec<String>> {
    let batches: Vec<RecordBatch> = runtime().block_on(query(out, sql)).unwrap();
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    rows
}

pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// A decimal without trailing zeros (`150.000000000000` → `150`).
pub fn plain(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    s.parse::<Decimal>().unwrap().normalize().to_string()
}

/// Money with exactly the currency's minor digits (`325.0000` USD → `325.00`).
pub fn money(s: &str, currency: &str) -> String {
    let minor = billrun_engine::minor_units(currency).unwrap() as usize;
    let d: Decimal = s.parse().unwrap();
    assert_eq!(
        d.round_dp(minor as u32),
        d,
        "{s} has more digits than {currency} allows"
    );
    format!("{d:.minor$}")
}

/// Runs the `billrun` binary quietly.
pub fn billrun(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

/// Runs hledger with `args`; `None` when hledger is not installed and
/// `BILLRUN_REQUIRE_HLEDGER` is not set (CI sets it, so there the check always runs).
pub fn hledger(args: &[&std::ffi::OsStr]) -> Option<String> {
    match std::process::Command::new("hledger").args(args).output() {
        Err(e) if std::env::var_os("BILLRUN_REQUIRE_HLEDGER").is_none() => {
            eprintln!("hledger not available ({e}); skipped — CI runs this check");
            None
        }
        Err(e) => panic!("hledger is required but could not run: {e}"),
        Ok(output) => {
            assert!(
                output.status.success(),
                "hledger {args:?} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Some(String::from_utf8_lossy(&output.stdout).into_owned())
        }
    }
}

/// Copies a dataset folder, so a test can change one of its files.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
