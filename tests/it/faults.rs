//! Faults around a run's outputs: a run killed at each step of publishing leaves the
//! previous run or the new one in `--out`, never neither, and the next run cleans what
//! it left; runs into one `--out` are serialised; scratch folders of killed runs go.

use std::path::Path;

use crate::common::repo;

fn run_into(out: &Path, period: &str, failpoint: Option<&str>) -> std::process::Output {
    run_with(out, period, failpoint, false)
}

/// A run into `out`; with `without_exchange`, published as on a system without an
/// atomic exchange of folders (the move-aside fallback).
fn run_with(
    out: &Path,
    period: &str,
    failpoint: Option<&str>,
    without_exchange: bool,
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"));
    command.arg("--quiet").args([
        "run",
        "--data",
        repo("data-samples/sample/input").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--period",
        period,
    ]);
    if let Some(failpoint) = failpoint {
        command.env("BILLRUN_FAILPOINT", failpoint);
    }
    if without_exchange {
        command.env("BILLRUN_PUBLISH_WITHOUT_EXCHANGE", "1");
    }
    command.output().unwrap()
}

/// The period of the run `out` holds, read from its manifest (written last).
fn period_in(out: &Path) -> Option<String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).ok()?).ok()?;
    Some(manifest["period"].as_str()?.to_string())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_run_killed_at_each_step_of_publishing_leaves_the_old_run_or_the_new_one() {
    // (failpoint, the run `out` holds after the kill)
    for (failpoint, after_kill) in [
        ("publish_before", "2026-10"),
        ("publish_exchanged", "2026-11"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        assert!(run_into(&out, "2026-10", None).status.success());
        let killed = run_into(&out, "2026-11", Some(failpoint));
        assert!(!killed.status.success(), "{failpoint}: not killed");
        assert_eq!(
            period_in(&out).as_deref(),
            Some(after_kill),
            "{failpoint}: `out` must hold a whole run"
        );
        // The killed run left its lock and a staging folder beside `out`.
        let left = names_in(dir.path());
        assert!(
            left.contains(&".out.lock".to_string()),
            "{failpoint}: {left:?}"
        );
        assert_eq!(left.len(), 3, "{failpoint}: {left:?}");
        // The next run breaks the dead run's lock, removes what it left and publishes.
        let again = run_into(&out, "2026-11", None);
        assert!(
            again.status.success(),
            "{failpoint}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(period_in(&out).as_deref(), Some("2026-11"), "{failpoint}");
        assert_eq!(names_in(dir.path()), ["out"], "{failpoint}");
    }
}

#[test]
fn a_second_run_into_one_out_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(run_into(&out, "2026-10", None).status.success());
    // A lock held by a live process of this host: this test.
    let holder = format!(
        r#"{{"pid":{},"host":"{}","since":"2026-12-03T08:00:00Z"}}"#,
        std::process::id(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    );
    std::fs::write(dir.path().join(".out.lock"), &holder).unwrap();
    let refused = run_into(&out, "2026-11", None);
    assert_eq!(refused.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is being written by another billrun run")
            && stderr.contains(&format!("\"pid\":{}", std::process::id())),
        "{stderr}"
    );
    assert_eq!(period_in(&out).as_deref(), Some("2026-10"));
    // Its lock is left alone.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".out.lock")).unwrap(),
        holder
    );
}

#[test]
fn the_scratch_folder_of_a_killed_run_is_removed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let dead = tmp.join("billrun-usage-killed");
    std::fs::create_dir_all(&dead).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    // pid above the kernel's maximum: never a live process.
    std::fs::write(
        dead.join("billrun-owner.json"),
        format!(r#"{{"pid":4194305,"host":"{host}","since":"2026-12-03T08:00:00Z"}}"#),
    )
    .unwrap();
    std::fs::write(dead.join("spill-0.parquet"), b"left behind").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .args([
            "--quiet",
            "run",
            "--data",
            repo("data-samples/sample/input").to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--period",
            "2026-10",
        ])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!dead.exists());
    // The run's own scratch went with it.
    assert!(names_in(&tmp).is_empty(), "{:?}", names_in(&tmp));
}

/// Where folders cannot be exchanged atomically, publishing moves the old run aside,
/// then the new one in: killed between the two, `out` is briefly absent (a reader that
/// finds no manifest.json tries again), and the next run puts the old run back before
/// it publishes its own; without a kill, the old run is replaced and nothing is left.
#[test]
fn the_move_aside_fallback_is_restored_after_a_kill_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(run_with(&out, "2026-10", None, true).status.success());
    assert!(run_with(&out, "2026-11", None, true).status.success());
    assert_eq!(period_in(&out).as_deref(), Some("2026-11"));
    assert_eq!(names_in(dir.path()), ["out"]);

    let killed = run_with(&out, "2026-10", Some("publish_aside"), true);
    assert!(!killed.status.success(), "not killed");
    assert!(!out.exists(), "killed between the renames, `out` is aside");
    let left = names_in(dir.path());
    assert!(
        left.iter().any(|n| n.starts_with(".out.old-")),
        "the previous run is kept aside: {left:?}"
    );
    // The next run puts the old run back first, even one killed before it publishes.
    let again = run_with(&out, "2026-12", Some("publish_before"), true);
    assert!(!again.status.success());
    assert_eq!(period_in(&out).as_deref(), Some("2026-11"), "restored");
    let last = run_with(&out, "2026-12", None, true);
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    assert_eq!(period_in(&out).as_deref(), Some("2026-12"));
    assert_eq!(names_in(dir.path()), ["out"]);
}

/// An S3 endpoint that accepts connections and never answers: the run does not hang in
/// silence. Each request gives up after `BILLRUN_S3_TIMEOUT`, each retry is logged as
/// it happens, and after the retries the run fails as an I/O fault (74) naming the store.
#[test]
fn an_s3_endpoint_that_never_answers_fails_after_the_configured_retries_said_on_stderr() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, reading nothing and answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .args([
            "run",
            "--data",
            "s3://silent-bucket/data",
            "--period",
            "2026-10",
        ])
        .arg("--out")
        .arg(dir.path().join("out"))
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("BILLRUN_S3_TIMEOUT", "1")
        .env("BILLRUN_S3_RETRIES", "2")
        .env("BILLRUN_S3_RETRY_TIMEOUT", "30")
        .env_remove("BILLRUN_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains("retry 1 of 2") && stderr.contains("retry 2 of 2"),
        "{stderr}"
    );
    assert!(stderr.contains("billrun: error: "), "{stderr}");
    // Not the 3 minutes of object_store's defaults: 3 requests of 1 s and two backoffs
    // (a guard against hanging, with room for a slow machine, not a speed target).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(!dir.path().join("out").exists());
}
