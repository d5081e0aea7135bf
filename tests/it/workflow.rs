//! The nightly workflow as a billing team runs it: files dropped in an inbox (the sample
//! dataset's tables and a CRM account export), `billrun job run` sweeping them with the
//! real import, billing the period, and leaving its summary in the outbox — then run
//! again, loading nothing twice.

use std::path::{Path, PathBuf};

use crate::common::copy_dir;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn job_file(dir: &Path) -> PathBuf {
    let sql = std::fs::read_to_string(repo("data-samples/crm/accounts.sql")).unwrap();
    let text = format!(
        r#"name = "nightly-test"
inbox = "inbox"
dataset = "dataset"
out = "out/{{period}}"
period = "2026-10"
steps = ["import", "rate", "notify"]

[[mappings]]
name = "crm accounts"
file_pattern = "crm/accounts*.csv"
table = "customers"
sql = """
{sql}
"""

[[notify]]
kind = "outbox"
path = "outbox"
on = ["job_finished"]
"#
    );
    let path = dir.join("nightly-test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_job(file: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .args(["--quiet", "job", "run"])
        .arg(file)
        .output()
        .unwrap()
}

/// The JSON summaries in the outbox, oldest first.
fn summaries(outbox: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect()
}

#[test]
fn the_nightly_job_sweeps_bills_and_reports_and_a_rerun_loads_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    copy_dir(&repo("data-samples/sample/input"), &inbox);
    std::fs::create_dir_all(inbox.join("crm")).unwrap();
    std::fs::copy(
        repo("data-samples/crm/accounts-2026-10.csv"),
        inbox.join("crm/accounts-2026-10.csv"),
    )
    .unwrap();
    let files_dropped = 1 + std::fs::read_dir(repo("data-samples/sample/input"))
        .unwrap()
        .map(|t| std::fs::read_dir(t.unwrap().path()).unwrap().count())
        .sum::<usize>();
    let job = job_file(dir.path());

    let first = run_job(&job);
    assert!(
        first.status.success(),
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    let outbox = dir.path().join("outbox");
    let reports = summaries(&outbox);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let import = &report["import"];
    assert_eq!(import["files_loaded"], files_dropped as u64, "{import:#}");
    assert_eq!(import["files_failed"], 0);
    // customers: the sample's 2 bad rows (rows 21 and 22 of customers.csv, see
    // expected/rejects.csv) and 1 of the CRM export (billing day 31 is out of 1..28).
    assert_eq!(
        import["rows_by_table"]["customers"]["rejected"], 3,
        "{import:#}"
    );
    // The bill run: the CRM's new customers have no subscriptions, so the invoices and
    // totals are the hand-checked sample's (data-samples/sample/expected/invoices.csv).
    let run = &report["run"];
    assert_eq!(run["invoices"], 21, "{run:#}");
    assert_eq!(run["billed"]["USD"], "933.18");
    assert_eq!(run["billed"]["EUR"], "132.40");
    assert_eq!(run["billed"]["JPY"], "4978");
    assert_eq!(run["billed"]["KWD"], "2.500");
    assert!(dir.path().join("out/2026-10/manifest.json").is_file());

    // The inbox is empty but for processed/; dropping a file again loads nothing twice.
    std::fs::create_dir_all(inbox.join("usage")).unwrap();
    std::fs::copy(
        repo("data-samples/sample/input/usage/2026-10-a.csv"),
        inbox.join("usage/2026-10-a-resent.csv"),
    )
    .unwrap();
    // Outbox files are named to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = run_job(&job);
    assert!(second.status.success());
    let reports = summaries(&outbox);
    let report = reports.last().unwrap();
    assert_eq!(report["import"]["files_loaded"], 0, "{report:#}");
    assert_eq!(report["import"]["files_already_loaded"], 1);
    assert_eq!(report["run"]["billed"]["USD"], "933.18");
}
