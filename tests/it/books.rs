//! The books across three periods (`data-samples/books`, worked out by hand in its
//! HAND-CHECK.md): payments partial, full, over and unassigned; a credit memo spanning
//! two periods; files read again; a duplicate re-sent a period later; a re-run of the
//! last posted period; refused periods; the continuing journal.

use std::path::{Path, PathBuf};

use crate::common::{assert_same_rows, billrun, copy_dir, read_csv, repo, rows};

const PERIODS: [&str; 3] = ["2026-10", "2026-11", "2026-12"];

/// The scenario's dataset as it stands when `period` is billed: the base and every
/// period's files up to it (a dataset keeps every file).
fn dataset_for(data: &Path, period: &str) {
    let sample = repo("data-samples/books");
    copy_dir(&sample.join("base"), data);
    copy_dir(&sample.join(period), data);
}

fn run(data: &Path, out: &Path, period: &str, books: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--period",
        period,
        "--books",
        books,
    ];
    args.extend_from_slice(extra);
    billrun(&args)
}

#[track_caller]
fn succeeded(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "billrun failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A table of a run with its header row, as `rows` formats it.
fn table(out: &Path, name: &str) -> Vec<Vec<String>> {
    let header: Vec<String> = read_csv_header(&repo(&format!(
        "data-samples/books/expected/{}/{name}.csv",
        PERIODS[0]
    )));
    let mut all = vec![header.clone()];
    all.extend(rows(
        out,
        &format!("SELECT {} FROM {name}", header.join(", ")),
    ));
    all
}

fn read_csv_header(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

fn expected(period: &str, name: &str) -> Vec<Vec<String>> {
    let path = repo(&format!("data-samples/books/expected/{period}/{name}.csv"));
    let mut all = vec![read_csv_header(&path)];
    all.extend(read_csv(&path));
    all
}

/// Posts the three periods into fresh books; returns (temp dir, outputs by period).
fn three_periods(books: &str, dir: &Path) -> Vec<PathBuf> {
    let data = dir.join("data");
    PERIODS
        .iter()
        .map(|p| {
            dataset_for(&data, p);
            let out = dir.join(format!("out-{p}"));
            let stdout = succeeded(&run(&data, &out, p, books, &[]));
            assert!(stdout.contains("books: posted version"), "{stdout}");
            out
        })
        .collect()
}

#[test]
fn three_periods_carry_payments_credit_and_receivables_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let outs = three_periods(books.to_str().unwrap(), dir.path());
    for (period, out) in PERIODS.iter().zip(&outs) {
        for name in ["receivables", "ar_aging", "applications", "open_credits"] {
            assert_same_rows(
                &format!("{period} {name}"),
                &table(out, name),
                &expected(period, name),
            );
        }
    }
    let numbers = |out: &Path| {
        rows(
            out,
            "SELECT invoice_id, invoice_number, total FROM invoices ORDER BY invoice_number",
        )
    };
    assert_eq!(
        numbers(&outs[2]),
        [
            ["INV-202612-A-USD", "6", "100.0000"],
            ["INV-202612-B-USD", "7", "11.0000"],
        ]
    );
    // E9 (50 calls on 10-25) is late for October: rated after E1 and E2 there and
    // billed by the November run as a correction of INV-202610-B-USD, issued with B's
    // November invoice; CM-B1's 15.00 left pays it first (it is posted first).
    assert_eq!(
        rows(
            &outs[1],
            "SELECT invoice_id, invoice_number, CAST(period_start AS VARCHAR), \
             CAST(period_end AS VARCHAR), CAST(issue_date AS VARCHAR), \
             CAST(due_date AS VARCHAR), subtotal, credits, tax, total, corrects_invoice_id \
             FROM invoices ORDER BY invoice_number"
        ),
        [
            [
                "INV-202610-B-USD-C1",
                "3",
                "2026-10-01",
                "2026-10-31",
                "2026-12-01",
                "2026-12-11",
                "5.0000",
                "5.5000",
                "0.5000",
                "0.0000",
                "INV-202610-B-USD",
            ],
            [
                "INV-202611-A-USD",
                "4",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-21",
                "100.0000",
                "0.0000",
                "0.0000",
                "100.0000",
                "",
            ],
            [
                "INV-202611-B-USD",
                "5",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-11",
                "30.0000",
                "9.5000",
                "3.0000",
                "23.5000",
                "",
            ],
        ]
    );
    assert_eq!(
        rows(
            &outs[1],
            "SELECT line_no, kind, subscription_id, quantity, amount, credit_memo_id \
             FROM invoice_lines WHERE invoice_id = 'INV-202610-B-USD-C1' ORDER BY line_no"
        ),
        [
            ["1", "usage", "S-B", "50.000000000000", "5.0000", ""],
            ["2", "tax", "", "", "0.5000", ""],
            ["3", "credit", "", "", "-5.5000", "CM-B1"],
        ]
    );
    assert_eq!(
        rows(
            &outs[1],
            "SELECT event_id, CAST(period_start AS VARCHAR), amount FROM rated_usage \
             ORDER BY event_id"
        ),
        [
            ["E3", "2026-11-01", "30.000000000000"],
            ["E9", "2026-10-01", "5.000000000000"],
        ]
    );
    // Files read again are settled; the duplicate names the invoice that billed it.
    let manifest = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
    };
    let usage = |out: &Path| {
        let m = manifest(out);
        let u = &m["usage"];
        [
            "read",
            "rated",
            "unrated",
            "rejected",
            "duplicates",
            "outside_period",
            "settled",
        ]
        .map(|k| u[k].as_u64().unwrap())
    };
    assert_eq!(usage(&outs[0]), [2, 2, 0, 0, 0, 0, 0]);
    // E3 and E9 (late) rated, E2 a duplicate across runs; October's two rows settled.
    assert_eq!(usage(&outs[1]), [5, 2, 0, 1, 1, 0, 2]);
    assert_eq!(manifest(&outs[1])["usage"]["late"], 1);
    // Every row of the October and November files is settled, E9 as billed late.
    assert_eq!(usage(&outs[2]), [6, 1, 0, 0, 0, 0, 5]);
    assert_eq!(
        rows(
            &outs[1],
            "SELECT source_file, row_number, code, reason FROM rejects"
        ),
        [[
            "usage/2026-11.csv",
            "2",
            "duplicate_event",
            "event_id `E2` was billed in period 2026-10 on invoice INV-202610-B-USD (a retry: same values)",
        ]]
    );
    assert_eq!(
        rows(
            &outs[2],
            "SELECT source_file, row_number, \"column\" FROM rejects"
        ),
        [["payments/2026-12.csv", "2", "payment_id"]]
    );
    assert_eq!(rows(&outs[2], "SELECT count(*) FROM unrated"), [["0"]]);
}

#[test]
fn the_last_posted_period_runs_again_to_the_same_bytes_and_older_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let b = books.to_str().unwrap();
    let outs = three_periods(b, dir.path());
    let data = dir.path().join("data");
    let again = dir.path().join("again");
    let stdout = succeeded(&run(&data, &again, "2026-12", b, &[]));
    assert!(
        stdout.contains("was posted already (version 3)"),
        "{stdout}"
    );
    for name in [
        "invoices/part-00000.parquet",
        "receivables/part-00000.parquet",
        "applications/part-00000.parquet",
        "rated_usage/part-00000.parquet",
        "journal.ledger",
    ] {
        assert_eq!(
            std::fs::read(outs[2].join(name)).unwrap(),
            std::fs::read(again.join(name)).unwrap(),
            "{name} differs on the re-run"
        );
    }
    let log: Vec<_> = std::fs::read_dir(books.join("log")).unwrap().collect();
    assert_eq!(log.len(), 3, "the re-run posted something");

    let older = run(&data, &dir.path().join("nov"), "2026-11", b, &[]);
    assert!(!older.status.success());
    let message = String::from_utf8_lossy(&older.stderr);
    assert!(
        message.contains("period 2026-11 is already posted")
            && message.contains("corrections by the run of 2027-01"),
        "{message}"
    );
    let gap = run(&data, &dir.path().join("feb"), "2027-02", b, &[]);
    assert!(String::from_utf8_lossy(&gap.stderr).contains("post 2027-01 first"));

    // Changed inputs for the last posted period are refused, naming the file.
    std::fs::write(
        data.join("usage/2026-12-extra.csv"),
        "event_id,customer_id,product_id,ts,quantity\nE5,B,API,2026-12-04T00:00:00Z,1\n",
    )
    .unwrap();
    let changed = run(&data, &dir.path().join("changed"), "2026-12", b, &[]);
    let message = String::from_utf8_lossy(&changed.stderr);
    assert!(
        !changed.status.success()
            && message.contains("usage/2026-12-extra.csv")
            && message.contains("corrections by the run of 2027-01"),
        "{message}"
    );
}

#[test]
fn a_preview_posts_nothing_and_leaves_new_invoices_unnumbered() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let b = books.to_str().unwrap();
    let data = dir.path().join("data");
    dataset_for(&data, "2026-10");
    let preview = dir.path().join("preview");
    let stdout = succeeded(&run(&data, &preview, "2026-10", b, &["--preview"]));
    assert!(stdout.contains("preview only"), "{stdout}");
    assert!(!books.join("log").exists(), "a preview wrote a commit");
    assert_eq!(
        rows(
            &preview,
            "SELECT invoice_id, invoice_number FROM receivables"
        ),
        [["INV-202610-A-USD", ""], ["INV-202610-B-USD", ""]]
    );
    // A posting afterwards writes what the preview showed, numbers aside.
    let posted = dir.path().join("posted");
    succeeded(&run(&data, &posted, "2026-10", b, &[]));
    assert_eq!(
        rows(&posted, "SELECT total, open FROM receivables"),
        rows(&preview, "SELECT total, open FROM receivables")
    );
}

#[test]
fn a_killed_posting_leaves_nothing_the_next_run_sees() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let b = books.to_str().unwrap();
    let data = dir.path().join("data");
    dataset_for(&data, "2026-10");
    succeeded(&run(&data, &dir.path().join("oct"), "2026-10", b, &[]));
    // A posting of November killed after its files and before its commit.
    let orphan = books.join("v0000000002-deadbeefdeadbeef");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("state.json"), b"{\"half\": ").unwrap();
    dataset_for(&data, "2026-11");
    let out = dir.path().join("nov");
    let stdout = succeeded(&run(&data, &out, "2026-11", b, &[]));
    assert!(stdout.contains("posted version 2"), "{stdout}");
    assert_same_rows(
        "receivables",
        &table(&out, "receivables"),
        &expected("2026-11", "receivables"),
    );
}

#[test]
fn books_of_another_format_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    std::fs::create_dir_all(&books).unwrap();
    let marker = books.join("_billrun_books.json");
    std::fs::write(&marker, br#"{"format": 9, "created_by": "billrun 9.0.0"}"#).unwrap();
    let data = dir.path().join("data");
    dataset_for(&data, "2026-10");
    let output = run(
        &data,
        &dir.path().join("out"),
        "2026-10",
        books.to_str().unwrap(),
        &[],
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && message.contains("format 9")
            && message.contains("_billrun_books.json"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&books).unwrap().count(), 1);
}

#[test]
fn the_ar_aging_report_ages_the_books_on_any_day() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let b = books.to_str().unwrap();
    three_periods(b, dir.path());
    // On 2026-12-03: invoices issued by then, cash applied before it (PAY-3 is 12-05).
    let output = billrun(&[
        "report",
        "ar-aging",
        "--books",
        b,
        "--on",
        "2026-12-03",
        "--format",
        "csv",
    ]);
    assert_eq!(
        succeeded(&output).trim_end(),
        "customer_id,currency,as_of,current,past_due_1_30,past_due_31_60,past_due_61_90,past_due_over_90,total\n\
         A,USD,2026-12-03,100.0000,40.0000,0.0000,0.0000,0.0000,140.0000\n\
         B,USD,2026-12-03,3.5000,0.0000,0.0000,0.0000,0.0000,3.5000"
    );
    // Without --on: as of the last posting, the last run's own ar_aging.
    let last = billrun(&["report", "ar-aging", "--books", b, "--format", "csv"]);
    let mut expected_csv =
        std::fs::read_to_string(repo("data-samples/books/expected/2026-12/ar_aging.csv")).unwrap();
    expected_csv.truncate(expected_csv.trim_end().len());
    assert_eq!(succeeded(&last).trim_end(), expected_csv);
}

/// The posting runs' journals concatenated are the books' journal, and hledger's
/// balances over them are the books' (receivables open less unapplied cash).
#[test]
fn hledger_over_the_concatenated_journals_reports_the_books_balances() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let outs = three_periods(books.to_str().unwrap(), dir.path());
    let mut joined = String::new();
    for out in &outs {
        joined.push_str(&std::fs::read_to_string(out.join("journal.ledger")).unwrap());
    }
    let books_journal = crate::common::runtime().block_on(async {
        let b = billrun_pipeline::books::Books::open(books.to_str().unwrap()).unwrap();
        let commits = b.commits().await.unwrap();
        b.journal(&commits).await.unwrap()
    });
    assert_eq!(joined, books_journal);
    let file = dir.path().join("all.ledger");
    std::fs::write(&file, &joined).unwrap();
    let f = |s: &str| std::ffi::OsString::from(s);
    let Some(_) =
        crate::common::hledger(&[&f("-f"), file.as_os_str(), &f("check"), &f("--strict")])
    else {
        return;
    };
    let text = crate::common::hledger(&[
        &f("-f"),
        file.as_os_str(),
        &f("balance"),
        &f("--flat"),
        &f("--no-total"),
        &f("-O"),
        &f("csv"),
    ])
    .unwrap();
    for (account, amount) in [
        ("assets:receivable", "104.50 USD"),
        ("assets:cash", "230.00 USD"),
        ("liabilities:tax payable", "-9.50 USD"),
    ] {
        assert!(
            text.contains(&format!("\"{account}\",\"{amount}\"")),
            "hledger: {account} is not {amount}:\n{text}"
        );
    }
    assert!(
        !text.contains("\"liabilities:customer credits\"")
            || text.contains("\"liabilities:customer credits\",\"0\""),
        "customer credit left over:\n{text}"
    );
}

/// The same three periods with the dataset and the books on S3 (moto).
#[test]
fn the_books_post_to_s3() {
    let Some(s3) = crate::common::start_s3() else {
        return;
    };
    let e = s3.endpoint.as_str();
    crate::common::s3_tool(e, &["mb", "billing"]);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("data");
    for period in PERIODS {
        dataset_for(&local, period);
        upload(e, &local, &local, "dataset");
        let out = dir.path().join(format!("out-{period}"));
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
            .args(["--quiet", "run", "--data", "s3://billing/dataset", "--out"])
            .arg(&out)
            .args(["--period", period, "--books", "s3://billing/books"])
            .envs(crate::common::s3_env(e))
            .output()
            .unwrap();
        succeeded(&output);
        for name in ["receivables", "ar_aging", "applications"] {
            assert_same_rows(
                &format!("s3 {period} {name}"),
                &table(&out, name),
                &expected(period, name),
            );
        }
    }
    let listing = crate::common::s3_tool(e, &["ls", "billing", "books/log/"]);
    assert_eq!(listing.lines().count(), 3, "{listing}");
}

fn upload(endpoint: &str, root: &Path, dir: &Path, prefix: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            upload(endpoint, root, &path, prefix);
        } else {
            let key = format!(
                "{prefix}/{}",
                path.strip_prefix(root).unwrap().to_string_lossy()
            );
            crate::common::s3_tool(endpoint, &["put", "billing", &key, path.to_str().unwrap()]);
        }
    }
}
