//! Loopback servers for tests, shared by `tests/it/` and `jobs/tests/` (each includes
//! this file with `#[path]`): the SMTP sink of `scripts/smtp-sink.py` and a webhook
//! receiver on a `TcpListener`.
#![allow(dead_code)] // each test crate uses its own subset

/// `scripts/smtp-sink.py`, found from whichever package includes this file.
fn smtp_sink_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("scripts/smtp-sink.py"))
        .find(|script| script.is_file())
        .expect("scripts/smtp-sink.py above the package")
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
        .arg(smtp_sink_script())
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
/// answers each with `status` (such as `200 OK`), and returns them in the order they came.
pub fn serve_http(
    listener: std::net::TcpListener,
    count: usize,
    status: &'static str,
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
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
