//! Helpers shared by the end-to-end test modules.

use std::path::{Path, PathBuf};

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

/// The loopback SMTP server of `scripts/smtp-sink.py`, stopped when dropped.
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Closing stdin stops the server; kill is the fallback.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message the SMTP sink received.
#[derive(Debug)]
pub struct Mail {
    /// Envelope: `mail_from`, `rcpt_tos`, `auth_user`.
    pub envelope: serde_json::Value,
    pub subject: String,
    /// The body, decoded from its transfer encoding.
    pub body: String,
}

impl SmtpSink {
    /// The `n`th message (from 1), waiting up to 10 s for it.
    pub fn mail(&self, n: usize) -> Mail {
        let base = self.maildir.path().join(format!("{n:04}"));
        let meta = base.with_extension("json");
        for _ in 0..100 {
            if meta.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let envelope: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
        Mail {
            subject: envelope["subject"].as_str().unwrap_or_default().to_string(),
            body: std::fs::read_to_string(base.with_extension("body.txt")).unwrap(),
            envelope,
        }
    }

    /// How many messages have arrived.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count()
    }
}

/// Starts the SMTP sink requiring `auth` (`user:password`); `None` (with a note) when
/// it cannot start and `BILLRUN_REQUIRE_SMTP` is unset. CI sets it.
pub fn start_smtp(auth: &str) -> Option<SmtpSink> {
    use std::io::BufRead as _;
    let required = std::env::var_os("BILLRUN_REQUIRE_SMTP").is_some();
    let maildir = tempfile::tempdir().unwrap();
    let spawned = std::process::Command::new("python3")
        .arg(repo("scripts/smtp-sink.py"))
        .arg("--dir")
        .arg(maildir.path())
        .arg("--auth")
        .arg(auth)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("skipping: cannot start python3 for the SMTP server: {e}");
            return None;
        }
        Err(e) => panic!("BILLRUN_REQUIRE_SMTP is set but python3 cannot start: {e}"),
    };
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().parse::<u16>() {
        Ok(port) => Some(SmtpSink {
            child,
            port,
            maildir,
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                !required,
                "BILLRUN_REQUIRE_SMTP is set but the SMTP server did not start \
                 (is aiosmtpd installed? scripts/install-test-tools.sh installs it)"
            );
            eprintln!("skipping: the SMTP server did not start (pip install aiosmtpd)");
            None
        }
    }
}

/// One HTTP request as received: request line, headers (lower-case names), body.
#[derive(Debug)]
pub struct Received {
    pub request_line: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A webhook receiver: accepts `count` requests on `listener`, one connection each,
/// answers each `200 OK`, and returns them in the order they came.
pub fn serve_webhook(
    listener: std::net::TcpListener,
    count: usize,
) -> std::thread::JoinHandle<Vec<Received>> {
    use std::io::{BufRead as _, Read as _, Write as _};
    std::thread::spawn(move || {
        let mut received = Vec::with_capacity(count);
        for _ in 0..count {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = std::collections::BTreeMap::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
            let length: usize = headers["content-length"].parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            received.push(Received {
                request_line: request_line.trim_end().to_string(),
                headers,
                body,
            });
        }
        received
    })
}

/// `sha256=<hex HMAC-SHA256>`, computed here independently of billrun's own code.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
