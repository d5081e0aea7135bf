//! The nightly workflow as a billing team runs it: files dropped in an inbox (the sample
//! dataset's tables and a CRM account export), `billrun job run` sweeping them with the
//! real import, billing the period, and leaving its summary in the outbox — then run
//! again, loading nothing twice.

use std::path::{Path, PathBuf};

use crate::common::{
    copy_dir, hmac_sha256, repo, s3_env, s3_tool, s3_tool_bytes, serve_http, start_s3, start_smtp,
    stdout_of_success,
};

/// The `[[mappings]]` entry of the shipped CRM account export (`data-samples/crm/`).
fn crm_mapping() -> String {
    let sql = std::fs::read_to_string(repo("data-samples/crm/accounts.sql")).unwrap();
    format!(
        r#"[[mappings]]
name = "crm accounts"
file_pattern = "crm/accounts*.csv"
table = "customers"
sql = """
{sql}
"""
"#
    )
}

fn job_file(dir: &Path) -> PathBuf {
    let mapping = crm_mapping();
    let text = format!(
        r#"name = "nightly-test"
inbox = "inbox"
dataset = "dataset"
out = "out/{{period}}"
period = "2026-10"
steps = ["import", "rate", "notify"]

{mapping}
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

const TODAY: &str = "2026-11-02";
const HOOK_SECRET: &str = "hook secret, only in the environment";

/// The nightly job on S3: inbox, dataset and outbox are prefixes of one bucket; the
/// bill run writes locally; people are told by e-mail and a signed webhook.
fn s3_job_file(dir: &Path, smtp_port: u16, webhook_port: u16) -> PathBuf {
    let mapping = crm_mapping();
    let text = format!(
        r#"name = "nightly-s3"
inbox = "s3://billing/inbox"
dataset = "s3://billing/dataset"
out = "out/{{period}}"
period = "previous"
steps = ["import", "rate", "notify"]

{mapping}
[[notify]]
kind = "email"
to = ["billing-team@example.invalid"]
from = "billrun@example.invalid"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
starttls = false
username_env = "BILLRUN_TEST_SMTP_USER"
password_env = "BILLRUN_TEST_SMTP_PASSWORD"
on = ["job_finished"]

[[notify]]
kind = "webhook"
url = "http://127.0.0.1:{webhook_port}/hooks/billrun"
secret_env = "BILLRUN_TEST_HOOK_SECRET"

[[notify]]
kind = "outbox"
path = "s3://billing/outbox"
"#
    );
    let path = dir.join("nightly-s3.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Rows of every Parquet object under `prefix` (a dataset table's folder on S3).
fn s3_parquet_rows(endpoint: &str, prefix: &str) -> usize {
    let keys = s3_tool(endpoint, &["ls", "billing", prefix]);
    keys.lines()
        .filter(|key| !key.is_empty())
        .map(|key| {
            let bytes = bytes::Bytes::from(s3_tool_bytes(endpoint, &["get", "billing", key]));
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum::<usize>()
        })
        .sum()
}

#[test]
fn the_nightly_job_runs_against_s3_smtp_and_a_webhook_together() {
    let Some(s3) = start_s3() else {
        return;
    };
    let Some(smtp) = start_smtp("billrun:pa55word") else {
        return;
    };
    let e = s3.endpoint.as_str();
    s3_tool(e, &["mb", "billing"]);

    // The drop: the sample's tables, the CRM export and two bad files.
    let mut dropped: Vec<(String, PathBuf)> = Vec::new();
    let sample = repo("data-samples/sample/input");
    for table in std::fs::read_dir(&sample).unwrap() {
        let table = table.unwrap().path();
        for file in std::fs::read_dir(&table).unwrap() {
            let file = file.unwrap().path();
            let name = format!(
                "{}/{}",
                table.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            dropped.push((name, file));
        }
    }
    dropped.push((
        "crm/accounts-2026-10.csv".into(),
        repo("data-samples/crm/accounts-2026-10.csv"),
    ));
    dropped.sort();
    for (name, file) in &dropped {
        s3_tool(
            e,
            &[
                "put",
                "billing",
                &format!("inbox/{name}"),
                file.to_str().unwrap(),
            ],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    s3_tool(
        e,
        &[
            "put",
            "billing",
            "inbox/usage/empty.csv",
            empty.to_str().unwrap(),
        ],
    );
    let mystery = dir.path().join("data.csv");
    std::fs::write(&mystery, b"a,b\n1,2\n").unwrap();
    s3_tool(
        e,
        &[
            "put",
            "billing",
            "inbox/mystery/data.csv",
            mystery.to_str().unwrap(),
        ],
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let webhook_port = listener.local_addr().unwrap().port();
    let hooks = serve_http(listener, 2, "200 OK");
    let job = s3_job_file(dir.path(), smtp.port, webhook_port);
    let run = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
            .args(["--quiet", "job", "run"])
            .arg(&job)
            .args(["--today", TODAY])
            .envs(s3_env(e))
            .env("BILLRUN_TEST_SMTP_USER", "billrun")
            .env("BILLRUN_TEST_SMTP_PASSWORD", "pa55word")
            .env("BILLRUN_TEST_HOOK_SECRET", HOOK_SECRET)
            .output()
            .unwrap();
        stdout_of_success(output, "billrun job run (S3)")
    };
    run();

    // Every file left the inbox: the good ones to processed/<today>/, the bad ones to
    // failed/<today>/ with their reasons beside them.
    let d = TODAY;
    let mut expected_inbox: Vec<String> = dropped
        .iter()
        .map(|(name, _)| format!("inbox/processed/{d}/{name}"))
        .collect();
    expected_inbox.extend([
        format!("inbox/failed/{d}/mystery/data.csv"),
        format!("inbox/failed/{d}/mystery/data.csv.reason.txt"),
        format!("inbox/failed/{d}/usage/empty.csv"),
        format!("inbox/failed/{d}/usage/empty.csv.reason.txt"),
    ]);
    expected_inbox.sort();
    let inbox: Vec<String> = s3_tool(e, &["ls", "billing", "inbox/"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(inbox, expected_inbox);
    let tables: Vec<&str> = billrun_schemas::Table::every()
        .map(billrun_schemas::Table::name)
        .collect();
    let mystery_reason = format!(
        "no table is named by its folder or file name; put it in `<table>/` or name it `<table>-….csv` (tables: {})",
        tables.join(", ")
    );
    assert_eq!(
        s3_tool(
            e,
            &[
                "get",
                "billing",
                &format!("inbox/failed/{d}/mystery/data.csv.reason.txt")
            ]
        ),
        format!("mystery/data.csv: {mystery_reason}\n")
    );
    assert_eq!(
        s3_tool(
            e,
            &[
                "get",
                "billing",
                &format!("inbox/failed/{d}/usage/empty.csv.reason.txt")
            ]
        ),
        "usage/empty.csv: the file is empty (0 bytes)\n"
    );

    // What the dataset holds: each transactional file once, named by source and content;
    // one upserted file per master table; the rejects of the four files that had bad rows.
    let sha16 = |name: &str| {
        let (_, file) = dropped.iter().find(|(n, _)| n == name).unwrap();
        sha256_hex(&std::fs::read(file).unwrap())[..16].to_string()
    };
    let tables_keys: Vec<String> = s3_tool(e, &["ls", "billing", "dataset/"])
        .lines()
        .filter(|k| !k.starts_with("dataset/_"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        tables_keys,
        [
            format!(
                "dataset/credit_memos/credit_memos-{}.parquet",
                sha16("credit_memos/credit_memos.csv")
            ),
            "dataset/customers/customers.parquet".into(),
            "dataset/price_plans/price_plans.parquet".into(),
            "dataset/products/products.parquet".into(),
            "dataset/subscriptions/subscriptions.parquet".into(),
            "dataset/tax_rates/tax_rates.parquet".into(),
            format!(
                "dataset/usage/2026-10-a-{}.parquet",
                sha16("usage/2026-10-a.csv")
            ),
            format!(
                "dataset/usage/2026-10-b-{}.parquet",
                sha16("usage/2026-10-b.csv")
            ),
            format!(
                "dataset/usage/2026-10-c-{}.parquet",
                sha16("usage/2026-10-c.csv")
            ),
        ]
    );
    let rejects_keys: Vec<String> = s3_tool(e, &["ls", "billing", "dataset/_rejects/"])
        .lines()
        .map(str::to_string)
        .collect();
    let mut expected_rejects = vec![
        format!(
            "dataset/_rejects/customers/import-{}.parquet",
            sha16("customers/customers.csv")
        ),
        format!(
            "dataset/_rejects/customers/import-{}.parquet",
            sha16("crm/accounts-2026-10.csv")
        ),
        format!(
            "dataset/_rejects/usage/import-{}.parquet",
            sha16("usage/2026-10-a.csv")
        ),
        format!(
            "dataset/_rejects/usage/import-{}.parquet",
            sha16("usage/2026-10-b.csv")
        ),
    ];
    expected_rejects.sort();
    assert_eq!(rejects_keys, expected_rejects);
    let markers = s3_tool(e, &["ls", "billing", "dataset/_imports/"]);
    assert_eq!(markers.lines().count(), dropped.len(), "{markers}");

    // Rows per table, counted in the store. The rejects are the sample's row-level ones
    // (expected/rejects.csv: customers rows 21 and 22; usage a.csv rows 33 and 36, b.csv
    // row 22) and the CRM's billing day 31; cross-row ones (duplicates, invalid plans,
    // unknown references) are the bill run's, so those rows are loaded.
    let loaded_rejected: [(&str, usize, usize); 7] = [
        ("credit_memos", 7, 0),
        ("customers", 22, 3),
        ("price_plans", 23, 0),
        ("products", 9, 0),
        ("subscriptions", 31, 0),
        ("tax_rates", 12, 0),
        ("usage", 71, 3),
    ];
    for (table, loaded, rejected) in loaded_rejected {
        assert_eq!(
            s3_parquet_rows(e, &format!("dataset/{table}/")),
            loaded,
            "{table}"
        );
        assert_eq!(
            s3_parquet_rows(e, &format!("dataset/_rejects/{table}/")),
            rejected,
            "{table}"
        );
    }

    // The mail: the exact counts, the failed files with their reasons, the totals.
    assert_eq!(smtp.count(), 1);
    let mail = smtp.mail(1);
    assert_eq!(
        mail.envelope["rcpt_tos"],
        serde_json::json!(["billing-team@example.invalid"])
    );
    assert_eq!(mail.envelope["auth_user"], "billrun");
    assert_eq!(mail.subject, "billrun nightly-s3: succeeded (2026-10)");
    let body = mail.body.replace("\r\n", "\n");
    let expected_import = format!(
        "import from s3://billing/inbox into s3://billing/dataset:
  files: 10 loaded, 0 already loaded, 2 failed
  failed file mystery/data.csv: {mystery_reason}
  failed file usage/empty.csv: the file is empty (0 bytes)
  rows by table (loaded / rejected):
    credit_memos     7 / 0
    customers        22 / 3
    price_plans      23 / 0
    products         9 / 0
    subscriptions    31 / 0
    tax_rates        12 / 0
    usage            71 / 3
  most frequent reject reasons:
         2  out_of_range
         1  bad_decimal
         1  bad_timestamp
         1  negative_quantity
         1  unknown_currency

bill run 2026-10 of s3://billing/dataset:
  invoices: 21
  billed EUR: 132.40
  billed JPY: 4978
  billed KWD: 2.500
  billed USD: 933.18
  usage: 71 read, 54 rated, 9 unrated, 2 rejected
  rejected rows, all tables: 5
"
    );
    // The bill run's numbers are the hand-checked sample's (expected/rated_usage.csv: 54
    // rows, unrated.csv: 9; its 2 usage rejects are the duplicates, the other 3 rejects
    // the 2 invalid plan tiers and the subscription of an unknown plan).
    assert!(body.contains(&expected_import), "{body}");

    // The outbox, on S3: the same summary as JSON and as the mail's text.
    let outbox: Vec<String> = s3_tool(e, &["ls", "billing", "outbox/"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    assert!(
        outbox[0].starts_with("outbox/nightly-s3-") && outbox[0].ends_with(".json"),
        "{outbox:?}"
    );
    assert_eq!(outbox[1], outbox[0].replace(".json", ".txt"));
    let outbox_json = s3_tool_bytes(e, &["get", "billing", &outbox[0]]);
    // SMTP's DATA ends the body with one more line break.
    assert_eq!(
        format!("{}\n", s3_tool(e, &["get", "billing", &outbox[1]])),
        body
    );

    // The webhook: the same JSON, signed with the secret the job's `secret_env` names.
    let check_hook = |hook: &crate::common::Received| -> serde_json::Value {
        assert_eq!(hook.request_line, "POST /hooks/billrun HTTP/1.1");
        assert_eq!(hook.headers["content-type"], "application/json");
        assert_eq!(
            hook.headers["x-billrun-signature"],
            hmac_sha256(HOOK_SECRET.as_bytes(), &hook.body)
        );
        serde_json::from_slice(&hook.body).unwrap()
    };

    // Run again with a re-sent usage file: nothing is loaded twice.
    s3_tool(
        e,
        &[
            "put",
            "billing",
            "inbox/usage/2026-10-a-resent.csv",
            repo("data-samples/sample/input/usage/2026-10-a.csv")
                .to_str()
                .unwrap(),
        ],
    );
    // Outbox files are named to the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run();
    let received = hooks.join().unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, outbox_json);
    let first = check_hook(&received[0]);
    let import = &first["import"];
    assert_eq!(
        (
            &import["files_loaded"],
            &import["files_already_loaded"],
            &import["files_failed"]
        ),
        (&10.into(), &0.into(), &2.into())
    );
    assert_eq!(
        import["failed_files"],
        serde_json::json!([
            {"file": "mystery/data.csv", "reason": mystery_reason},
            {"file": "usage/empty.csv", "reason": "the file is empty (0 bytes)"},
        ])
    );
    let rows_by_table: serde_json::Value = loaded_rejected
        .iter()
        .map(|(t, l, r)| {
            (
                t.to_string(),
                serde_json::json!({"loaded": l, "rejected": r}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    assert_eq!(import["rows_by_table"], rows_by_table);
    assert_eq!(first["run"]["invoices"], 21);
    assert_eq!(
        first["run"]["billed"],
        serde_json::json!({"EUR": "132.40", "JPY": "4978", "KWD": "2.500", "USD": "933.18"})
    );

    let second = check_hook(&received[1]);
    assert_eq!(
        (
            &second["import"]["files_loaded"],
            &second["import"]["files_already_loaded"],
            &second["import"]["files_failed"]
        ),
        (&0.into(), &1.into(), &0.into())
    );
    assert_eq!(
        second["import"]["rows_by_table"],
        serde_json::json!({"usage": {"loaded": 0, "rejected": 0}})
    );
    assert_eq!(second["run"]["billed"], first["run"]["billed"]);
    assert_eq!(smtp.count(), 2);
    let again = smtp.mail(2).body.replace("\r\n", "\n");
    assert!(
        again.contains("  files: 0 loaded, 1 already loaded, 0 failed\n"),
        "{again}"
    );
    assert!(again.contains("  billed USD: 933.18\n"), "{again}");
    assert_eq!(s3_parquet_rows(e, "dataset/usage/"), 71);
    assert!(
        s3_tool(e, &["ls", "billing", "inbox/"])
            .lines()
            .any(|k| k == format!("inbox/processed/{d}/usage/2026-10-a-resent.csv"))
    );
    assert_eq!(s3_tool(e, &["ls", "billing", "outbox/"]).lines().count(), 4);
    crate::import::assert_sample_invoices(&dir.path().join("out/2026-10"));
}

#[test]
fn billrun_import_maps_from_the_command_line_and_tells_the_job_files_channels() {
    let Some(smtp) = start_smtp("billrun:pa55word") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    std::fs::create_dir_all(inbox.join("customers")).unwrap();
    std::fs::create_dir_all(inbox.join("usage")).unwrap();
    std::fs::create_dir_all(inbox.join("mystery")).unwrap();
    // A CRM export dropped as customers: read through the mapping given with --mapping.
    std::fs::copy(
        repo("data-samples/crm/accounts-2026-10.csv"),
        inbox.join("customers/accounts-2026-10.csv"),
    )
    .unwrap();
    std::fs::copy(
        repo("data-samples/sample/input/usage/2026-10-c.csv"),
        inbox.join("usage/2026-10-c.csv"),
    )
    .unwrap();
    std::fs::write(inbox.join("mystery/data.csv"), b"a,b\n1,2\n").unwrap();
    // A job file used for its channels only: the outbox always, mail when a file failed.
    let job = dir.path().join("tell.toml");
    std::fs::write(
        &job,
        format!(
            r#"name = "tell"
dataset = "dataset"
steps = ["notify"]

[[notify]]
kind = "outbox"
path = "outbox"

[[notify]]
kind = "email"
to = ["billing-team@example.invalid"]
from = "billrun@example.invalid"
smtp_host = "127.0.0.1"
smtp_port = {}
starttls = false
username_env = "BILLRUN_TEST_SMTP_USER"
password_env = "BILLRUN_TEST_SMTP_PASSWORD"
on = ["import_failed"]
"#,
            smtp.port
        ),
    )
    .unwrap();
    let import = |mapping: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
            .arg("--quiet")
            .arg("import")
            .arg("--inbox")
            .arg(&inbox)
            .arg("--dataset")
            .arg(&dataset)
            .args(["--mapping", mapping, "--today", TODAY, "--notify"])
            .arg(&job)
            .env("BILLRUN_TEST_SMTP_USER", "billrun")
            .env("BILLRUN_TEST_SMTP_PASSWORD", "pa55word")
            .output()
            .unwrap()
    };

    // A mapping naming no table is refused before anything is swept.
    let wrong = import("clients=data-samples/crm/accounts.sql");
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr
            .contains("--mapping `clients=data-samples/crm/accounts.sql`: unknown table `clients`"),
        "{stderr}"
    );
    assert!(inbox.join("usage/2026-10-c.csv").is_file());

    let sql = repo("data-samples/crm/accounts.sql");
    let output = import(&format!("customers={}", sql.display()));
    let stdout = stdout_of_success(output, "billrun import --notify");
    assert!(
        stdout.contains("2 files loaded, 0 already loaded, 1 failed"),
        "{stdout}"
    );
    // The CRM's two good accounts are the dataset's customers.
    assert_eq!(crate::import::dataset_rows(&dataset, "customers"), 2);
    assert_eq!(crate::import::dataset_rows(&dataset, "usage"), 5);

    let outbox: Vec<PathBuf> = {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&outbox[0]).unwrap()).unwrap();
    let text = std::fs::read_to_string(&outbox[1]).unwrap();
    let tables: Vec<&str> = billrun_schemas::Table::every()
        .map(billrun_schemas::Table::name)
        .collect();
    let expected = format!(
        "billrun import: succeeded
started {}, finished {}

steps:
  import     done             2 files loaded, 0 already loaded, 1 failed; 7 rows loaded, 1 rejected

import from {} into {}:
  files: 2 loaded, 0 already loaded, 1 failed
  failed file mystery/data.csv: no table is named by its folder or file name; put it in `<table>/` or name it `<table>-….csv` (tables: {})
  rows by table (loaded / rejected):
    customers        2 / 1
    usage            5 / 0
  most frequent reject reasons:
         1  out_of_range
",
        json["started_at"].as_str().unwrap(),
        json["finished_at"].as_str().unwrap(),
        inbox.display(),
        dataset.display(),
        tables.join(", ")
    );
    assert_eq!(text, expected);
    assert_eq!(
        json["import"]["rows_by_table"],
        serde_json::json!({"customers": {"loaded": 2, "rejected": 1},
                           "usage": {"loaded": 5, "rejected": 0}})
    );
    // A file failed, so `import_failed` mailed the same summary.
    assert_eq!(smtp.count(), 1);
    let mail = smtp.mail(1);
    assert_eq!(mail.subject, "billrun import: succeeded");
    // SMTP's DATA ends the body with one more line break.
    assert_eq!(mail.body.replace("\r\n", "\n"), format!("{expected}\n"));

    // Again, with nothing new: the outbox hears of it, the mail (import_failed) does not.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let output = import(&format!("customers={}", sql.display()));
    let stdout = stdout_of_success(output, "billrun import --notify, again");
    assert!(
        stdout.contains("0 files loaded, 0 already loaded, 0 failed"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count(),
        4
    );
    assert_eq!(smtp.count(), 1);
}
