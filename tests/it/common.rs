//! Helpers shared by the end-to-end test modules.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use billrun_pipeline::query::query;
use rust_decimal::Decimal;

/// Options that bill October 2026 of the dataset at `data` (a folder or URL) into
/// `out` on two threads, with progress hidden and everything else as by default.
pub fn october(data: &Path, out: &Path) -> billrun_pipeline::RunOptions {
    billrun_pipeline::RunOptions {
        as_of: None,
        data: data.to_string_lossy().into_owned(),
        out: out.to_path_buf(),
        period: billrun_engine::BillingMonth::parse("2026-10").unwrap(),
        threads: Some(2),
        carve_order: Default::default(),
        memory_limit: None,
        books: None,
        preview: false,
        progress: billrun_pipeline::Progress::hidden(),
    }
}

/// Runs a bill run; panics if it fails.
pub fn bill(options: billrun_pipeline::RunOptions) -> billrun_pipeline::Manifest {
    runtime()
        .block_on(billrun_pipeline::run_bill(options))
        .unwrap()
}

/// Bills October 2026 of the dataset at `data` (a folder or URL) into `out`.
pub fn bill_october(data: &Path, out: &Path, carve_order: billrun_engine::CarveOrder) {
    bill(billrun_pipeline::RunOptions {
        carve_order,
        ..october(data, out)
    });
}

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
    format_rows(&batches)
}

/// Rows of `batches` as strings, formatted as [`rows`] formats them.
pub fn format_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
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

/// Asserts two tables (header first) hold the same rows in the same order; on a
/// difference it names the table, the first differing row and its columns, instead of
/// printing both tables whole.
#[track_caller]
pub fn assert_same_rows(table: &str, actual: &[Vec<String>], expected: &[Vec<String>]) {
    let header = expected.first().cloned().unwrap_or_default();
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if a != e {
            let columns: Vec<String> = (0..a.len().max(e.len()))
                .filter(|&c| a.get(c) != e.get(c))
                .map(|c| {
                    format!(
                        "{}: {:?} (expected {:?})",
                        header.get(c).map_or("?", String::as_str),
                        a.get(c),
                        e.get(c)
                    )
                })
                .collect();
            panic!(
                "{table}: row {i} differs in {}\n  actual:   {a:?}\n  expected: {e:?}",
                columns.join(", ")
            );
        }
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "{table}: {} rows, expected {} (the first {} agree)",
        actual.len(),
        expected.len(),
        actual.len().min(expected.len())
    );
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
/// `billrun run --data <data> --out <out> --period <period>`, as a user types it.
pub fn billrun_run(data: &Path, out: &Path, period: &str) -> std::process::Output {
    billrun(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--period",
        period,
    ])
}

pub fn billrun(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

/// Runs hledger with `args`, as [`tool`].
pub fn hledger(args: &[&std::ffi::OsStr]) -> Option<String> {
    tool("hledger", args)
}

/// Runs one of the tools the outputs are checked with (hledger, ledger, bean-check,
/// python3 with pyarrow, Polars and DuckDB) and returns its standard output; the tool
/// must succeed. `None` when it is not installed and `BILLRUN_REQUIRE_TOOLS` is not set
/// (`scripts/test.sh` installs them and sets it, so in CI the check always runs).
pub fn tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    program: &str,
    args: &[S],
) -> Option<String> {
    match std::process::Command::new(program).args(args).output() {
        Err(e) if std::env::var_os("BILLRUN_REQUIRE_TOOLS").is_none() => {
            eprintln!("{program} not available ({e}); skipped — CI runs this check");
            None
        }
        Err(e) => panic!("{program} is required but could not run: {e}"),
        Ok(output) => {
            assert!(
                output.status.success(),
                "{program} {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
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

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The standard output of a command that must have succeeded.
pub fn stdout_of_success(output: std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto's S3 server; `None` (with a note) when moto is missing and
/// `BILLRUN_REQUIRE_S3` is unset. CI sets it, so there the test never skips.
pub fn start_s3() -> Option<S3Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("BILLRUN_REQUIRE_S3").is_none() => {
            eprintln!("moto_server not available ({e}); skipped — CI runs this test");
            return None;
        }
        Err(e) => panic!("moto_server is required but could not start: {e}"),
    };
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(server);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("moto_server did not listen on port {port}");
}

/// Runs `scripts/s3_tool.py` against `endpoint`; its standard output as bytes.
pub fn s3_tool_bytes(endpoint: &str, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("python3")
        .arg(repo("scripts/s3_tool.py"))
        .arg(endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "s3_tool {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `scripts/s3_tool.py` against `endpoint` (`mb`, `put`, `ls`, `get`).
pub fn s3_tool(endpoint: &str, args: &[&str]) -> String {
    String::from_utf8(s3_tool_bytes(endpoint, args)).unwrap()
}

/// The `AWS_*` settings that point billrun at the moto server.
pub fn s3_env(endpoint: &str) -> [(&'static str, String); 5] {
    [
        ("AWS_ENDPOINT", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

// The SMTP sink and the webhook receiver, shared with the jobs crate's tests.
#[path = "../support/servers.rs"]
mod servers;
pub use servers::{Received, serve_http, start_smtp};

/// `sha256=<hex HMAC-SHA256>`, computed here independently of billrun's own code.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
