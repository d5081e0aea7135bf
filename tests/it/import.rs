//! The import workflow end to end: inbox sweeps into datasets on a local folder and on a
//! real S3-compatible server (moto, started here on loopback), exactly once, with bad
//! files failing one by one, a sweep killed half-way and run again, and the swept
//! dataset billed to the same invoices as the hand-checked sample.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::RecordBatch;
use billrun_engine::CarveOrder;
use billrun_pipeline::Progress;
use billrun_pipeline::import::{FileStatus, ImportOptions, ImportSummary, Mapping, sweep};
use billrun_schemas::Table;
use chrono::NaiveDate;

use crate::common::{
    bill_october, billrun, billrun_run, copy_dir, read_csv, repo, rows, runtime, s3_env, s3_tool,
    start_s3, stdout_of_success,
};

const TODAY: &str = "2026-11-02";

fn today() -> NaiveDate {
    NaiveDate::parse_from_str(TODAY, "%Y-%m-%d").unwrap()
}

fn sweep_local(inbox: &Path, dataset: &Path, mappings: Vec<Mapping>) -> ImportSummary {
    runtime()
        .block_on(sweep(&ImportOptions {
            inbox: inbox.to_string_lossy().into_owned(),
            dataset: dataset.to_string_lossy().into_owned(),
            mappings,
            today: today(),
            progress: Progress::hidden(),
        }))
        .unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Rows of every Parquet file of a dataset table.
pub fn dataset_rows(dataset: &Path, table: &str) -> usize {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dataset.join(table)) else {
        return 0;
    };
    for entry in entries {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        total += reader
            .map(|b: Result<RecordBatch, _>| b.unwrap().num_rows())
            .sum::<usize>();
    }
    total
}

fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

const USAGE_A: &str = "event_id,customer_id,product_id,ts,quantity\n\
    e1,C1,API,2026-10-03T00:00:00Z,10\n\
    e2,C1,API,2026-10-04T00:00:00Z,-1\n\
    e3,C1,API,2026-10-05T00:00:00Z,5\n\
    e4,C2,API,2026-10-06T00:00:00Z,7\n";

#[test]
fn a_sweep_loads_good_files_once_and_fails_bad_ones_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    write(
        &inbox.join("customers-2026-10.csv"),
        b"customer_id,name,currency,billing_day\nC1,One,USD,1\nC2,Two,EUR,15\nC3,Three,usd,1\n",
    );
    write(
        &inbox.join("customers/wrong-header.csv"),
        b"customer_id,name,billing_day\nC9,Nine,1\n",
    );
    write(&inbox.join("mystery/data.csv"), b"a,b\n1,2\n");
    write(&inbox.join("usage/2026-10-a.csv"), USAGE_A.as_bytes());
    // The same content again, under another name: loaded once only.
    write(&inbox.join("usage/2026-10-b.csv"), USAGE_A.as_bytes());
    write(&inbox.join("usage/empty.csv"), b"");
    write(&inbox.join("usage/evil..csv"), USAGE_A.as_bytes());
    write(
        &inbox.join("usage/latin1.csv"),
        b"event_id,customer_id,product_id,ts,quantity\ne9,C1,API,2026-10-03T00:00:00Z,1 caf\xe9\n",
    );
    write(
        &inbox.join("usage/truncated.parquet"),
        b"PAR1\x15\x04garbage",
    );

    let summary = sweep_local(&inbox, &dataset, Vec::new());
    let outcomes: Vec<(String, FileStatus, u64, u64, String)> = summary
        .files
        .iter()
        .map(|f| {
            (
                f.file.clone(),
                f.status.clone(),
                f.rows_loaded,
                f.rows_rejected,
                f.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    let loaded = FileStatus::Loaded;
    let failed = FileStatus::Failed;
    let expected = vec![
        ("customers-2026-10.csv", loaded.clone(), 2, 1, ""),
        (
            "customers/wrong-header.csv",
            failed.clone(),
            0,
            0,
            "customers/wrong-header.csv: required column `currency` of table `customers` is missing",
        ),
        (
            "mystery/data.csv",
            failed.clone(),
            0,
            0,
            "no table is named by its folder or file name",
        ),
        ("usage/2026-10-a.csv", loaded, 3, 1, ""),
        ("usage/2026-10-b.csv", FileStatus::AlreadyLoaded, 0, 0, ""),
        (
            "usage/empty.csv",
            failed.clone(),
            0,
            0,
            "the file is empty (0 bytes)",
        ),
        (
            "usage/evil..csv",
            failed.clone(),
            0,
            0,
            "the file name contains `..`",
        ),
        (
            "usage/latin1.csv",
            failed.clone(),
            0,
            0,
            "not UTF-8 text (invalid byte at offset 80)",
        ),
        (
            "usage/truncated.parquet",
            failed,
            0,
            0,
            "usage/truncated.parquet: cannot read Parquet file",
        ),
    ];
    assert_eq!(outcomes.len(), expected.len(), "{outcomes:#?}");
    for (actual, expected) in outcomes.iter().zip(&expected) {
        assert_eq!(actual.0, expected.0);
        assert_eq!(actual.1, expected.1, "{}", actual.0);
        assert_eq!(
            (actual.2, actual.3),
            (expected.2, expected.3),
            "{}",
            actual.0
        );
        assert!(
            actual.4.starts_with(expected.4),
            "{}: {:?} does not start with {:?}",
            actual.0,
            actual.4,
            expected.4
        );
    }
    assert_eq!(
        summary.rows_by_table,
        BTreeMap::from([
            ("customers".to_string(), (2, 1)),
            ("usage".to_string(), (3, 1))
        ])
    );
    assert_eq!(
        summary.top_reject_reasons,
        [
            ("negative_quantity".to_string(), 1),
            ("unknown_currency".to_string(), 1)
        ]
    );

    // What moved where: every file left the inbox, failed ones with a reason beside them.
    let moved = files_under(&inbox);
    let d = TODAY;
    let expected_moved: Vec<String> = [
        format!("failed/{d}/customers/wrong-header.csv"),
        format!("failed/{d}/customers/wrong-header.csv.reason.txt"),
        format!("failed/{d}/mystery/data.csv"),
        format!("failed/{d}/mystery/data.csv.reason.txt"),
        format!("failed/{d}/usage/empty.csv"),
        format!("failed/{d}/usage/empty.csv.reason.txt"),
        format!("failed/{d}/usage/evil__csv"),
        format!("failed/{d}/usage/evil__csv.reason.txt"),
        format!("failed/{d}/usage/latin1.csv"),
        format!("failed/{d}/usage/latin1.csv.reason.txt"),
        format!("failed/{d}/usage/truncated.parquet"),
        format!("failed/{d}/usage/truncated.parquet.reason.txt"),
        format!("processed/{d}/customers-2026-10.csv"),
        format!("processed/{d}/usage/2026-10-a.csv"),
        format!("processed/{d}/usage/2026-10-b.csv"),
    ]
    .into_iter()
    .collect();
    assert_eq!(moved, expected_moved);
    let reason =
        std::fs::read_to_string(inbox.join(format!("failed/{d}/usage/empty.csv.reason.txt")))
            .unwrap();
    assert_eq!(reason, "usage/empty.csv: the file is empty (0 bytes)\n");

    // The dataset: 2 customers, 3 usage rows (not 6), rejects kept with their reasons.
    assert_eq!(dataset_rows(&dataset, "customers"), 2);
    assert_eq!(dataset_rows(&dataset, "usage"), 3);
    assert_eq!(dataset_rows(&dataset, "_rejects/usage"), 1);
    assert_eq!(dataset_rows(&dataset, "_rejects/customers"), 1);

    // Dropping the same usage again, and a customer update: nothing twice, C2 upserted.
    write(&inbox.join("usage/again.csv"), USAGE_A.as_bytes());
    write(
        &inbox.join("customers/update.csv"),
        b"customer_id,name,currency,billing_day\nC2,Two Renamed,EUR,15\nC4,Four,JPY,1\n",
    );
    let second = sweep_local(&inbox, &dataset, Vec::new());
    let statuses: Vec<(&str, &FileStatus)> = second
        .files
        .iter()
        .map(|f| (f.file.as_str(), &f.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("customers/update.csv", &FileStatus::Loaded),
            ("usage/again.csv", &FileStatus::AlreadyLoaded)
        ]
    );
    assert_eq!(dataset_rows(&dataset, "usage"), 3);
    assert_eq!(dataset_rows(&dataset, "customers"), 3);
    assert_eq!(dataset_rows(&dataset, "_history/customers"), 2);
}

/// The run in `out` billed every invoice of the hand-checked sample, to the minor unit.
pub fn assert_sample_invoices(out: &Path) {
    let totals: Vec<Vec<String>> = rows(
        out,
        "SELECT invoice_id, total, currency FROM invoices ORDER BY invoice_id",
    )
    .into_iter()
    .map(|r| vec![r[0].clone(), crate::common::money(&r[1], &r[2])])
    .collect();
    let expected: Vec<Vec<String>> = read_csv(&repo("data-samples/sample/expected/invoices.csv"))
        .into_iter()
        .map(|r| vec![r[0].clone(), r[11].clone()])
        .collect();
    assert_eq!(totals, expected);
}

#[test]
fn a_swept_sample_bills_exactly_like_the_hand_checked_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    copy_dir(&repo("data-samples/sample/input"), &inbox);
    let summary = sweep_local(&inbox, &dataset, Vec::new());
    assert_eq!(summary.failed_files(), 0, "{}", summary.render_text());
    // Row-level rejects are found at import; cross-row ones (duplicates, unknown
    // references, invalid plans) by the bill run, as before.
    let row_level: std::collections::BTreeSet<&str> = [
        "missing_value",
        "bad_decimal",
        "too_many_decimals",
        "bad_integer",
        "bad_date",
        "bad_timestamp",
        "bad_enum",
        "bad_id",
        "unknown_currency",
        "negative_quantity",
        "out_of_range",
        "malformed_row",
    ]
    .into();
    let mut expected_rejected: BTreeMap<String, u64> = BTreeMap::new();
    let expected_rejects = read_csv(&repo("data-samples/sample/expected/rejects.csv"));
    let header = csv::Reader::from_path(repo("data-samples/sample/expected/rejects.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .clone();
    let (table_col, code_col) = (
        header.iter().position(|h| h == "table").unwrap(),
        header.iter().position(|h| h == "code").unwrap(),
    );
    for r in &expected_rejects {
        if row_level.contains(r[code_col].as_str()) {
            *expected_rejected.entry(r[table_col].clone()).or_default() += 1;
        }
    }
    let actual_rejected: BTreeMap<String, u64> = summary
        .rows_by_table
        .iter()
        .filter(|(_, (_, rejected))| *rejected > 0)
        .map(|(t, (_, rejected))| (t.clone(), *rejected))
        .collect();
    assert_eq!(actual_rejected, expected_rejected);

    let out = dir.path().join("out");
    bill_october(&dataset, &out, CarveOrder::default());
    assert_sample_invoices(&out);
}

#[test]
fn a_mapping_turns_a_crm_export_into_customers() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    std::fs::create_dir_all(inbox.join("crm")).unwrap();
    std::fs::copy(
        repo("data-samples/crm/accounts-2026-10.csv"),
        inbox.join("crm/accounts-2026-10.csv"),
    )
    .unwrap();
    let sql = std::fs::read_to_string(repo("data-samples/crm/accounts.sql")).unwrap();
    let mapping = Mapping {
        name: "crm accounts".into(),
        file_pattern: "crm/accounts*.csv".into(),
        table: Table::Customers,
        sql,
    };
    let summary = sweep_local(&inbox, &dataset, vec![mapping]);
    assert_eq!(summary.files.len(), 1);
    let f = &summary.files[0];
    assert_eq!(
        (f.status.clone(), f.rows_loaded, f.rows_rejected),
        (FileStatus::Loaded, 2, 1)
    );
    assert_eq!(
        summary.top_reject_reasons,
        [("out_of_range".to_string(), 1)]
    );
    // The loaded customers, read back through a bill run's validation.
    let file = std::fs::File::open(dataset.join("customers/customers.parquet")).unwrap();
    let batches: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    for expected in [
        "| 001A000001  | Northwind Traders | USD      | 1           | 30                 | US-CA      | ap@northwind.example     |",
        "| 001A000002  | Contoso Pharma    | EUR      | 15          | 45                 |            | invoices@contoso.example |",
    ] {
        assert!(text.contains(expected), "{text}");
    }
}

#[test]
fn a_second_sweep_of_a_locked_inbox_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    write(&inbox.join("usage/a.csv"), USAGE_A.as_bytes());
    let since = chrono::Utc::now().to_rfc3339();
    write(
        &inbox.join("_billrun/sweep.lock"),
        format!("{{\"pid\": 4242, \"host\": \"other\", \"since\": \"{since}\"}}").as_bytes(),
    );
    let output = billrun(&[
        "import",
        "--inbox",
        inbox.to_str().unwrap(),
        "--dataset",
        dataset.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is being swept by another billrun") && stderr.contains("\"pid\": 4242"),
        "{stderr}"
    );
    // Nothing was touched.
    assert!(inbox.join("usage/a.csv").is_file());
    assert_eq!(dataset_rows(&dataset, "usage"), 0);
}

#[test]
fn a_sweep_killed_half_way_loads_every_row_exactly_once_when_run_again() {
    for failpoint in ["after_load", "after_marker"] {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
        write(&inbox.join("usage/a.csv"), USAGE_A.as_bytes());
        write(
            &inbox.join("usage/b.csv"),
            b"event_id,customer_id,product_id,ts,quantity\nf1,C1,API,2026-10-07T00:00:00Z,1\nf2,C1,API,2026-10-08T00:00:00Z,2\n",
        );
        let args = [
            "import",
            "--inbox",
            inbox.to_str().unwrap(),
            "--dataset",
            dataset.to_str().unwrap(),
        ];
        let killed = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
            .arg("--quiet")
            .args(args)
            .env("BILLRUN_FAILPOINT", failpoint)
            .output()
            .unwrap();
        assert!(
            !killed.status.success(),
            "{failpoint}: the sweep was not killed"
        );
        // Killed with the first file loaded but not (fully) recorded, and its lock left;
        // the lock names a process of this host that is gone, so the next sweep breaks
        // it at once instead of waiting for it to go stale.
        assert!(inbox.join("usage/a.csv").is_file(), "{failpoint}");
        assert!(inbox.join("_billrun/sweep.lock").is_file(), "{failpoint}");
        let again = billrun(&args);
        assert!(
            again.status.success(),
            "{failpoint}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        // a.csv has 3 good rows and b.csv 2: 5 rows, each once.
        assert_eq!(dataset_rows(&dataset, "usage"), 5, "{failpoint}");
        assert_eq!(
            files_under(&inbox),
            [
                format!("processed/{}/usage/a.csv", chrono::Utc::now().date_naive()),
                format!("processed/{}/usage/b.csv", chrono::Utc::now().date_naive()),
            ],
            "{failpoint}"
        );
    }
}

#[test]
fn the_workflow_runs_against_an_s3_compatible_server() {
    let Some(s3) = start_s3() else {
        return;
    };
    let e = s3.endpoint.as_str();
    s3_tool(e, &["mb", "billing"]);
    let sample = repo("data-samples/sample/input");
    let mut uploaded = 0;
    for table in std::fs::read_dir(&sample).unwrap() {
        let table = table.unwrap().path();
        for file in std::fs::read_dir(&table).unwrap() {
            let file = file.unwrap().path();
            let key = format!(
                "inbox/{}/{}",
                table.file_name().unwrap().to_string_lossy(),
                file.file_name().unwrap().to_string_lossy()
            );
            s3_tool(e, &["put", "billing", &key, file.to_str().unwrap()]);
            uploaded += 1;
        }
    }
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), b"nothing,billrun,knows\n1,2,3\n").unwrap();
    s3_tool(
        e,
        &[
            "put",
            "billing",
            "inbox/unknown-table.csv",
            bad.path().to_str().unwrap(),
        ],
    );

    let with_s3_env = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
            .arg("--quiet")
            .args(args)
            .envs(s3_env(e))
            .output()
            .unwrap();
        stdout_of_success(output, &format!("billrun {args:?}"))
    };
    let report = with_s3_env(&[
        "import",
        "--inbox",
        "s3://billing/inbox",
        "--dataset",
        "s3://billing/dataset",
    ]);
    assert!(
        report.contains(&format!(
            "{uploaded} files loaded, 0 already loaded, 1 failed"
        )),
        "{report}"
    );
    // Every file moved out of the inbox; the failed one with its reason.
    let keys = s3_tool(e, &["ls", "billing", "inbox/"]);
    let day = chrono::Utc::now().date_naive();
    assert!(
        keys.lines()
            .all(|k| k.starts_with("inbox/processed/") || k.starts_with("inbox/failed/")),
        "{keys}"
    );
    assert_eq!(
        keys.lines()
            .filter(|k| k.starts_with(&format!("inbox/processed/{day}/")))
            .count(),
        uploaded
    );
    let reason = s3_tool(
        e,
        &[
            "get",
            "billing",
            &format!("inbox/failed/{day}/unknown-table.csv.reason.txt"),
        ],
    );
    assert!(
        reason.contains("no table is named by its folder or file name"),
        "{reason}"
    );
    // A second sweep finds nothing; the dataset bills to the hand-checked invoices.
    let again = with_s3_env(&[
        "import",
        "--inbox",
        "s3://billing/inbox",
        "--dataset",
        "s3://billing/dataset",
    ]);
    assert!(
        again.contains("0 files loaded, 0 already loaded, 0 failed"),
        "{again}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    with_s3_env(&[
        "run",
        "--data",
        "s3://billing/dataset",
        "--out",
        out.to_str().unwrap(),
        "--period",
        "2026-10",
    ]);
    assert_sample_invoices(&out);
}

#[test]
fn a_past_bill_run_is_repeated_as_it_was_with_as_of() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    copy_dir(&repo("data-samples/sample/input"), &inbox);
    sweep_local(&inbox, &dataset, Vec::new());
    let first = dir.path().join("first");
    bill_october(&dataset, &first, CarveOrder::default());
    assert_sample_invoices(&first);
    let between = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));

    // Later: C002's payment terms change from 45 to 10 days, and a late event arrives.
    write(
        &inbox.join("customers/update.csv"),
        b"customer_id,name,currency,billing_day,payment_terms_days,tax_region,email\n\
          C002,Northwind Telecom LLC,USD,1,10,US-TX,ap@northwind-telecom.example\n",
    );
    write(
        &inbox.join("usage/late.csv"),
        b"event_id,customer_id,product_id,ts,quantity\nEVLATE1,C002,P-API,2026-10-20T00:00:00Z,1000\n",
    );
    sweep_local(&inbox, &dataset, Vec::new());
    assert_eq!(dataset_rows(&dataset, "_history/customers"), 20);

    // As of the instant between the sweeps: the first run's invoices, line for line.
    let repeated = dir.path().join("repeated");
    let at = between.to_rfc3339();
    let output = billrun(&[
        "run",
        "--data",
        dataset.to_str().unwrap(),
        "--out",
        repeated.to_str().unwrap(),
        "--period",
        "2026-10",
        "--as-of",
        &at,
    ]);
    stdout_of_success(output, "billrun run --as-of");
    for sql in [
        "SELECT * FROM invoices ORDER BY invoice_id",
        "SELECT * FROM invoice_lines ORDER BY invoice_id, line_no",
        "SELECT event_id, amount FROM rated_usage ORDER BY event_id",
    ] {
        assert_eq!(rows(&repeated, sql), rows(&first, sql), "{sql}");
    }
    // As it is now: the new terms and the late event.
    let now = dir.path().join("now");
    bill_october(&dataset, &now, CarveOrder::default());
    let c002 = "SELECT due_date FROM invoices WHERE invoice_id = 'INV-202610-C002-USD'";
    assert_eq!(rows(&first, c002), [["2026-12-16"]]);
    assert_eq!(rows(&repeated, c002), [["2026-12-16"]]);
    assert_eq!(rows(&now, c002), [["2026-11-11"]]);
    let late = "SELECT count(*) FROM rated_usage WHERE event_id = 'EVLATE1'";
    assert_eq!(rows(&repeated, late), [["0"]]);
    assert_eq!(rows(&now, late), [["1"]]);

    // Before anything was loaded, the dataset had no customers: said, not billed.
    let output = billrun(&[
        "run",
        "--data",
        dataset.to_str().unwrap(),
        "--out",
        dir.path().join("never").to_str().unwrap(),
        "--period",
        "2026-10",
        "--as-of",
        "2020-01-01",
    ]);
    assert_eq!(output.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("customers"), "{stderr}");
}

#[test]
fn a_file_the_import_loads_is_a_file_the_run_reads_and_a_file_it_skips_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset, out) = (
        dir.path().join("inbox"),
        dir.path().join("dataset"),
        dir.path().join("out"),
    );
    copy_dir(&repo("data-samples/sample/input"), &dataset);
    std::fs::remove_dir_all(dataset.join("usage")).unwrap();
    // A source file whose name starts with `_`: loaded, so it must be billed.
    write(
        &inbox.join("usage/_late.csv"),
        b"event_id,customer_id,product_id,ts,quantity\nL1,C001,P-API,2026-10-20T00:00:00Z,5\nL2,C001,P-API,2026-10-21T00:00:00Z,7\n",
    );
    let summary = sweep_local(&inbox, &dataset, Vec::new());
    assert_eq!(summary.files.len(), 1);
    assert_eq!(summary.files[0].status, FileStatus::Loaded);
    assert_eq!(summary.files[0].rows_loaded, 2);
    let loaded: Vec<String> = files_under(&dataset.join("usage"));
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].starts_with("late-"), "{loaded:?}");
    // A marker file written into the table folder by another tool: not read, reported.
    write(&dataset.join("usage/_SUCCESS"), b"");
    let output = billrun_run(&dataset, &out, "2026-10");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warning = "usage/_SUCCESS was not read: names starting with `.` or `_` are hidden or marker files, never data";
    assert!(stderr.contains(warning), "{stderr}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["usage"]["read"], 2);
    assert_eq!(manifest["usage"]["rated"], 2);
    assert_eq!(manifest["warnings"], serde_json::json!([warning]));
    assert_eq!(
        rows(&out, "SELECT event_id FROM rated_usage ORDER BY event_id"),
        [["L1"], ["L2"]]
    );
}

#[test]
fn a_run_without_any_usage_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (dataset, out) = (dir.path().join("dataset"), dir.path().join("out"));
    copy_dir(&repo("data-samples/sample/input"), &dataset);
    std::fs::remove_dir_all(dataset.join("usage")).unwrap();
    let output = billrun_run(&dataset, &out, "2026-10");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "billrun: warning: no usage file in `usage/`: the run bills recurring fees and minimums only"
        ),
        "{stderr}"
    );
}

#[test]
fn a_file_missing_required_columns_fails_as_a_file_whatever_its_rows_look_like() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, dataset) = (dir.path().join("inbox"), dir.path().join("dataset"));
    // The header lacks product_id and ts; the rows have more fields than the header,
    // so that each would have been a malformed row, and the file "loaded".
    write(
        &inbox.join("usage/short-header.csv"),
        b"event_id,customer_id,quantity\ne1,C1,API,2026-10-03T00:00:00Z,10\ne2,C1,API,2026-10-04T00:00:00Z,5\n",
    );
    write(
        &inbox.join("usage/semicolons.csv"),
        b"event_id;customer_id;product_id;ts;quantity\ne3;C1;API;2026-10-03T00:00:00Z;10\n",
    );
    let summary = sweep_local(&inbox, &dataset, Vec::new());
    let outcomes: Vec<(String, FileStatus, u64, Option<String>)> = summary
        .files
        .iter()
        .map(|f| {
            (
                f.file.clone(),
                f.status.clone(),
                f.rows_rejected,
                f.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "usage/semicolons.csv".to_string(),
                FileStatus::Failed,
                0,
                Some("usage/semicolons.csv: the header `event_id;customer_id;product_id;ts;quantity` is one column: fields of a CSV file of table `usage` are separated by commas, not `;`".to_string())
            ),
            (
                "usage/short-header.csv".to_string(),
                FileStatus::Failed,
                0,
                Some("usage/short-header.csv: required column `product_id` of table `usage` is missing".to_string())
            ),
        ]
    );
    assert_eq!(dataset_rows(&dataset, "usage"), 0);
    assert!(inbox.join("failed").is_dir());
}
