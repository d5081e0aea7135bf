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
/// October posted into `dir/books` from `dir/data` (its output in `dir/out-2026-10`):
/// the books and the dataset.
fn october_posted(dir: &Path) -> (PathBuf, PathBuf) {
    let books = dir.join("books");
    let data = dir.join("data");
    dataset_for(&data, "2026-10");
    let out = dir.join("out-2026-10");
    succeeded(&run(&data, &out, "2026-10", books.to_str().unwrap(), &[]));
    (books, data)
}

pub(crate) fn three_periods(books: &str, dir: &Path) -> Vec<PathBuf> {
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
        for name in [
            "receivables",
            "ar_aging",
            "applications",
            "open_credits",
            "customer_balances",
        ] {
            assert_same_rows(
                &format!("{period} {name}"),
                &table(out, name),
                &expected(period, name),
            );
        }
    }
    // Late usage: E9 (B, 50 calls on 10-25) and G2 (C, 30 GPU hours on 10-28) arrive in
    // November, G3 (C, 100 hours on 10-30) in December. Each is rated in October after
    // what October billed and billed as a correction of its October invoice, issued
    // with the customer's invoices of the correcting run and numbered before them
    // (its id sorts first). B's correction uses CM-B1's 15.00 left first. C's tiers
    // (0: 2.00, 50: 1.00) and 150.00 minimum: G2 takes Q from 40 to 70 (10 × 2.00 +
    // 20 × 1.00 = 40.00) and takes 40.00 out of the 70.00 minimum; G3 (100 × 1.00)
    // makes the minimum's 30.00 left unnecessary and adds 7.00 of tax.
    let invoices = |out: &Path| {
        rows(
            out,
            "SELECT invoice_id, invoice_number, CAST(period_start AS VARCHAR), \
             CAST(period_end AS VARCHAR), CAST(issue_date AS VARCHAR), \
             CAST(due_date AS VARCHAR), subtotal, credits, tax, total, corrects_invoice_id \
             FROM invoices ORDER BY invoice_number",
        )
    };
    let row = |cells: [&str; 11]| cells.map(str::to_string).to_vec();
    assert_eq!(
        invoices(&outs[1]),
        [
            row([
                "INV-202610-B-USD-C1",
                "5",
                "2026-10-01",
                "2026-10-31",
                "2026-12-01",
                "2026-12-11",
                "5.0000",
                "5.5000",
                "0.5000",
                "0.0000",
                "INV-202610-B-USD",
            ]),
            row([
                "INV-202610-C-USD-C1",
                "6",
                "2026-10-01",
                "2026-10-31",
                "2026-12-01",
                "2026-12-16",
                "0.0000",
                "0.0000",
                "0.0000",
                "0.0000",
                "INV-202610-C-USD",
            ]),
            // D's volume price: 110 TB at 0.50 = 55.00 against 90 at 1.00: a credit note.
            row([
                "INV-202610-D-USD-C1",
                "7",
                "2026-10-01",
                "2026-10-31",
                "2026-12-01",
                "2026-12-31",
                "-35.0000",
                "0.0000",
                "0.0000",
                "-35.0000",
                "INV-202610-D-USD",
            ]),
            row([
                "INV-202611-A-USD",
                "8",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-21",
                "100.0000",
                "0.0000",
                "0.0000",
                "100.0000",
                "",
            ]),
            row([
                "INV-202611-B-USD",
                "9",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-11",
                "30.0000",
                "9.5000",
                "3.0000",
                "23.5000",
                "",
            ]),
            row([
                "INV-202611-C-USD",
                "10",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-16",
                "150.0000",
                "0.0000",
                "15.0000",
                "165.0000",
                "",
            ]),
            // The credit note is credit from its issue date: posted after it, D's
            // November invoice uses 10.00 of it.
            row([
                "INV-202611-D-USD",
                "11",
                "2026-11-01",
                "2026-11-30",
                "2026-12-01",
                "2026-12-31",
                "10.0000",
                "10.0000",
                "0.0000",
                "0.0000",
                "",
            ]),
        ]
    );
    assert_eq!(
        invoices(&outs[2]),
        [
            row([
                "INV-202610-C-USD-C2",
                "12",
                "2026-10-01",
                "2026-10-31",
                "2027-01-01",
                "2027-01-16",
                "70.0000",
                "0.0000",
                "7.0000",
                "77.0000",
                "INV-202610-C-USD",
            ]),
            row([
                "INV-202612-A-USD",
                "13",
                "2026-12-01",
                "2026-12-31",
                "2027-01-01",
                "2027-01-21",
                "100.0000",
                "0.0000",
                "0.0000",
                "100.0000",
                "",
            ]),
            row([
                "INV-202612-B-USD",
                "14",
                "2026-12-01",
                "2026-12-31",
                "2027-01-01",
                "2027-01-11",
                "10.0000",
                "0.0000",
                "1.0000",
                "11.0000",
                "",
            ]),
            row([
                "INV-202612-C-USD",
                "15",
                "2026-12-01",
                "2026-12-31",
                "2027-01-01",
                "2027-01-16",
                "250.0000",
                "0.0000",
                "25.0000",
                "275.0000",
                "",
            ]),
            row([
                "INV-202612-D-USD",
                "16",
                "2026-12-01",
                "2026-12-31",
                "2027-01-01",
                "2027-01-31",
                "30.0000",
                "25.0000",
                "0.0000",
                "5.0000",
                "",
            ]),
        ]
    );
    let lines = |out: &Path, invoice: &str| {
        rows(
            out,
            &format!(
                "SELECT line_no, kind, subscription_id, quantity, amount, credit_memo_id \
                 FROM invoice_lines WHERE invoice_id = '{invoice}' ORDER BY line_no"
            ),
        )
    };
    assert_eq!(
        lines(&outs[1], "INV-202610-B-USD-C1"),
        [
            ["1", "usage", "S-B", "50.000000000000", "5.0000", ""],
            ["2", "tax", "", "", "0.5000", ""],
            ["3", "credit", "", "", "-5.5000", "CM-B1"],
        ]
    );
    assert_eq!(
        lines(&outs[1], "INV-202610-C-USD-C1"),
        [
            ["1", "usage", "S-C", "30.000000000000", "40.0000", ""],
            ["2", "minimum", "S-C", "", "-40.0000", ""],
        ]
    );
    assert_eq!(
        lines(&outs[2], "INV-202610-C-USD-C2"),
        [
            ["1", "usage", "S-C", "100.000000000000", "100.0000", ""],
            ["2", "minimum", "S-C", "", "-30.0000", ""],
            ["3", "tax", "", "", "7.0000", ""],
        ]
    );
    // rated_usage of the correcting run lists the late events with their period.
    let rated = |out: &Path| {
        rows(
            out,
            "SELECT event_id, CAST(period_start AS VARCHAR), amount FROM rated_usage \
             ORDER BY event_id",
        )
    };
    assert_eq!(
        rated(&outs[1]),
        [
            ["E3", "2026-11-01", "30.000000000000"],
            ["E9", "2026-10-01", "5.000000000000"],
            ["G2", "2026-10-01", "40.000000000000"],
            ["G4", "2026-11-01", "110.000000000000"],
            // Q from 90 to 110 moves every TB to the 0.50 tier: 55.00 - 90.00.
            ["V2", "2026-10-01", "-35.000000000000"],
            ["V3", "2026-11-01", "10.000000000000"],
        ]
    );
    assert_eq!(
        rated(&outs[2]),
        [
            ["E4", "2026-12-01", "10.000000000000"],
            ["G3", "2026-10-01", "100.000000000000"],
            ["G5", "2026-12-01", "250.000000000000"],
            ["V4", "2026-12-01", "30.000000000000"],
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
    // U1 (A has no API subscription) is unrated in October and stays open.
    assert_eq!(usage(&outs[0]), [5, 4, 1, 0, 0, 0, 0]);
    // E3, G4, V3 and the late E9, G2 and V2 rated, E2 a duplicate across runs;
    // October's four billed rows settled, U1 unrated again.
    assert_eq!(usage(&outs[1]), [12, 6, 1, 1, 1, 0, 4]);
    assert_eq!(manifest(&outs[1])["usage"]["late"], 3);
    // Every other row of the October and November files is settled, the late ones as
    // billed.
    assert_eq!(usage(&outs[2]), [16, 4, 1, 0, 0, 0, 11]);
    assert_eq!(manifest(&outs[2])["usage"]["late"], 1);
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
    // November's payments file is settled (its three payments posted) and not read
    // again; December's PAY-2 is refused against the posted one.
    assert_eq!(
        rows(
            &outs[2],
            "SELECT source_file, row_number, \"column\", reason FROM rejects"
        ),
        [[
            "payments/2026-12.csv",
            "2",
            "payment_id",
            "payment_id `PAY-2` is already posted with other amount: a payment id is posted once; send a new id for a new payment",
        ]]
    );
    let settled_payments: Vec<(String, u64)> = manifest(&outs[2])["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["table"] == "payments")
        .map(|i| {
            (
                i["file"].as_str().unwrap().to_string(),
                i["rows_settled"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        settled_payments,
        [
            ("payments/2026-11.csv".to_string(), 3),
            ("payments/2026-12.csv".to_string(), 0)
        ]
    );
    // U1 is tried again by every run and unrated for the same reason: October's master
    // data, which prices it, does not change.
    for out in &outs {
        assert_eq!(
            rows(out, "SELECT event_id, code FROM unrated"),
            [["U1", "no_active_subscription"]]
        );
    }
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
        [
            ["INV-202610-A-USD", ""],
            ["INV-202610-B-USD", ""],
            ["INV-202610-C-USD", ""],
            ["INV-202610-D-USD", ""]
        ]
    );
    // A posting afterwards writes what the preview showed, numbers aside.
    let posted = dir.path().join("posted");
    succeeded(&run(&data, &posted, "2026-10", b, &[]));
    assert_eq!(
        rows(&posted, "SELECT total, open FROM receivables"),
        rows(&preview, "SELECT total, open FROM receivables")
    );
}

/// Late usage is priced with the master data its posted run used: PL-API's price
/// raised to 0.20 from 2026-01-01 after October was posted (October's history edited)
/// prices November's calls, not October's late ones.
#[test]
fn late_usage_is_priced_with_the_master_data_of_its_posted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (books, data) = october_posted(dir.path());
    let b = books.to_str().unwrap();
    dataset_for(&data, "2026-11");
    let plans = data.join("price_plans/price_plans.csv");
    let text = std::fs::read_to_string(&plans).unwrap();
    std::fs::write(
        &plans,
        text.replace(
            "PL-API,API,USD,per_unit,0,0.10",
            "PL-API,API,USD,per_unit,0,0.20",
        ),
    )
    .unwrap();
    let out = dir.path().join("out-11");
    succeeded(&run(&data, &out, "2026-11", b, &[]));
    // E9: 50 × 0.10 = 5.00, tax 0.50; E3: 300 × 0.20 = 60.00, tax 6.00.
    assert_eq!(
        rows(
            &out,
            "SELECT invoice_id, subtotal, tax FROM invoices WHERE customer_id = 'B' \
             ORDER BY invoice_id"
        ),
        [
            ["INV-202610-B-USD-C1", "5.0000", "0.5000"],
            ["INV-202611-B-USD", "60.0000", "6.0000"],
        ]
    );
    // A kept master-data file that changed fails the next run with late usage, naming
    // it, and posts nothing.
    let kept: Vec<PathBuf> = std::fs::read_dir(books.join("master"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Six files read by October (five base tables and credit_memos), the changed
    // price_plans by November.
    assert_eq!(kept.len(), 7, "{kept:?}");
    for file in &kept {
        std::fs::write(file, "damaged").unwrap();
    }
    dataset_for(&data, "2026-12");
    let failed = run(&data, &dir.path().join("out-12"), "2026-12", b, &[]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("master/") && stderr.contains("does not hold the content"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(books.join("log")).unwrap().count(), 2);
}

#[test]
fn a_killed_posting_leaves_nothing_the_next_run_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (books, data) = october_posted(dir.path());
    let b = books.to_str().unwrap();
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
         A,USD,2026-12-03,100.00,40.00,0.00,0.00,0.00,140.00\n\
         B,USD,2026-12-03,3.50,0.00,0.00,0.00,0.00,3.50\n\
         C,USD,2026-12-03,165.00,0.00,0.00,0.00,0.00,165.00\n\
         D,USD,2026-12-03,0.00,90.00,0.00,0.00,0.00,90.00"
    );
    // Without --on: as of the last posting, the last run's own ar_aging.
    let last = billrun(&["report", "ar-aging", "--books", b, "--format", "csv"]);
    let mut expected_csv =
        std::fs::read_to_string(repo("data-samples/books/expected/2026-12/ar_aging.csv")).unwrap();
    expected_csv.truncate(expected_csv.trim_end().len());
    // The table's money (USD, stored at four decimals) as the command line shows it: cents.
    let at_cents: Vec<String> = expected_csv
        .lines()
        .map(|line| {
            line.split(',')
                .map(|cell| match cell.split_once('.') {
                    Some((_, fraction)) if fraction.len() == 4 && fraction.ends_with("00") => {
                        cell[..cell.len() - 2].to_string()
                    }
                    _ => cell.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(succeeded(&last).trim_end(), at_cents.join("\n"));
}

/// The reports on the books over the three months, worked by hand from
/// `HAND-CHECK.md`: accuracy (October's B, C and D corrected), DSO (open after each
/// posting ÷ what its run invoiced × days; three months in December), statements (the
/// totals after credit, the payments as paid) and the register's open amounts.
#[test]
fn the_reports_on_the_books_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let books = dir.path().join("books");
    let b = books.to_str().unwrap();
    three_periods(b, dir.path());
    let report = |args: &[&str]| {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--books", b, "--format", "csv"]);
        succeeded(&billrun(&all)).trim_end().to_string()
    };
    assert_eq!(
        report(&["invoice-accuracy"]),
        "period,invoices,corrected,accuracy_percent\n\
         2026-10,4,3,25.00\n\
         2026-11,4,0,100.00\n\
         2026-12,4,0,100.00"
    );
    // October: 355.00 open of 355.00 invoiced × 31 days. November: 398.50 of 253.50
    // (0 + 0 − 35 + 100 + 23.50 + 165 + 0) × 30 = 47.159… December: 716.50 of 468.00
    // × 31 = 47.460…; over three months 716.50 of 1,076.50 × 92 = 61.233…
    assert_eq!(
        report(&["dso"]),
        "period,currency,receivables,invoiced,days,dso,invoiced_3m,days_3m,dso_3m\n\
         2026-10,USD,355.00,355.00,31,31.00,,,\n\
         2026-11,USD,398.50,253.50,30,47.16,,,\n\
         2026-12,USD,716.50,468.00,31,47.46,1076.50,92,61.23"
    );
    assert_eq!(
        report(&["statement", "--from", "2026-12-01", "--to", "2026-12-31"]),
        "customer_id,currency,date,kind,reference,amount,balance\n\
         A,USD,2026-12-01,opening,,40.00,40.00\n\
         A,USD,2026-12-01,invoice,INV-202611-A-USD,100.00,140.00\n\
         A,USD,2026-12-05,payment,PAY-3,-150.00,-10.00\n\
         A,USD,2026-12-31,closing,,-10.00,-10.00\n\
         B,USD,2026-12-01,opening,,-20.00,-20.00\n\
         B,USD,2026-12-01,correction,INV-202610-B-USD-C1,0.00,-20.00\n\
         B,USD,2026-12-01,invoice,INV-202611-B-USD,23.50,3.50\n\
         B,USD,2026-12-31,closing,,3.50,3.50\n\
         C,USD,2026-12-01,opening,,0.00,0.00\n\
         C,USD,2026-12-01,correction,INV-202610-C-USD-C1,0.00,0.00\n\
         C,USD,2026-12-01,invoice,INV-202611-C-USD,165.00,165.00\n\
         C,USD,2026-12-31,closing,,165.00,165.00\n\
         D,USD,2026-12-01,opening,,90.00,90.00\n\
         D,USD,2026-12-01,invoice,INV-202611-D-USD,0.00,90.00\n\
         D,USD,2026-12-31,closing,,90.00,90.00"
    );
    // The whole of D: the credit note is not a line, its 35.00 is in the totals of
    // the invoices that used it (10.00 → 0.00, 30.00 → 5.00).
    assert_eq!(
        report(&["statement", "--customer", "D"]),
        "customer_id,currency,date,kind,reference,amount,balance\n\
         D,USD,2026-10-01,opening,,0.00,0.00\n\
         D,USD,2026-11-01,invoice,INV-202610-D-USD,90.00,90.00\n\
         D,USD,2026-12-01,invoice,INV-202611-D-USD,0.00,90.00\n\
         D,USD,2027-01-01,invoice,INV-202612-D-USD,5.00,95.00\n\
         D,USD,2027-01-01,closing,,95.00,95.00"
    );
    // Tax by the month invoices were issued in: B and C in region T at 10 %, A and D
    // without a region. November: B 50.00 / 5.00, C 150.00 / 15.00; A 100, D 90.
    // December: the corrections B-C1 5.00 / 0.50, C-C1 0 (usage +40, minimum −40),
    // B 30.00 / 3.00, C 150.00 / 15.00; D-C1 −35, A 100, D 10. January: C-C2 70.00 /
    // 7.00, B 10.00 / 1.00, C 250.00 / 25.00; A 100, D 30. Σ tax 71.50, as the journal.
    assert_eq!(
        report(&["tax"]),
        "month,currency,tax_region,tax_rate,invoices,taxable,tax\n\
         2026-11,USD,,,2,190.00,0.00\n\
         2026-11,USD,T,0.100000,2,200.00,20.00\n\
         2026-12,USD,,,3,75.00,0.00\n\
         2026-12,USD,T,0.100000,4,185.00,18.50\n\
         2027-01,USD,,,2,130.00,0.00\n\
         2027-01,USD,T,0.100000,3,330.00,33.00"
    );
    // Only A pays a recurring fee (100.00 a month; C's minimum is not recurring).
    assert_eq!(
        report(&["mrr"]),
        "period,currency,customers,mrr,new,expansion,contraction,churn,arr\n\
         2026-10,USD,1,100.00,100.00,0.00,0.00,0.00,1200.00\n\
         2026-11,USD,1,100.00,0.00,0.00,0.00,0.00,1200.00\n\
         2026-12,USD,1,100.00,0.00,0.00,0.00,0.00,1200.00"
    );
    // The register on 2026-12-03: November's invoices issued, PAY-3 (12-05) not paid
    // yet; the open amounts are those of the ar-aging report on that day.
    let register = report(&["invoice-register", "--on", "2026-12-03"]);
    let open: Vec<String> = register
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{} {} {} {}", f[0], f[1], f[10], f[12])
        })
        .collect();
    assert_eq!(
        open,
        [
            "1 INV-202610-A-USD 40.00 12",
            "2 INV-202610-B-USD 0.00 0",
            "3 INV-202610-C-USD 0.00 0",
            "4 INV-202610-D-USD 90.00 2",
            "5 INV-202610-B-USD-C1 0.00 0",
            "6 INV-202610-C-USD-C1 0.00 0",
            "7 INV-202610-D-USD-C1 0.00 0",
            "8 INV-202611-A-USD 100.00 0",
            "9 INV-202611-B-USD 3.50 0",
            "10 INV-202611-C-USD 165.00 0",
            "11 INV-202611-D-USD 0.00 0",
        ]
    );
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
        ("assets:receivable", "716.50 USD"),
        ("assets:cash", "395.00 USD"),
        ("liabilities:tax payable", "-71.50 USD"),
        // 50 + 5 (late) + 30 + 10; GPU: 150 + 0 + 150 + 70 (late) + 250.
        ("revenue:API", "-95.00 USD"),
        ("revenue:GPU", "-620.00 USD"),
        // 90 - 35 (the credit note) + 10 + 30.
        ("revenue:VOL", "-95.00 USD"),
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
        for name in [
            "receivables",
            "ar_aging",
            "applications",
            "customer_balances",
        ] {
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
