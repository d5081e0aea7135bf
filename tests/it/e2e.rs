//! End-to-end tests: the bundled sample dataset through a whole bill run, compared with
//! its hand-checked expectations in `data-samples/sample/expected/`.
//!
//! The expected files were computed by hand (see `HAND-CHECK.md` beside them), not by
//! billrun, so these tests are a differential check against an independent model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use billrun_pipeline::{Manifest, RunOptions, run_bill};

use crate::common::{
    assert_same_rows, bill, billrun, copy_dir, money, october, plain, read_csv, rows, runtime,
};

fn sample_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/sample/input")
}

fn expected(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data-samples/sample/expected")
        .join(name)
}

fn run_sample(out: &Path, threads: usize) -> Manifest {
    bill(RunOptions {
        threads: Some(threads),
        ..october(&sample_input(), out)
    })
}

/// The sample run, done once and shared by the tests that only read it.
fn sample_run() -> &'static (tempfile::TempDir, Manifest) {
    static RUN: std::sync::OnceLock<(tempfile::TempDir, Manifest)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = run_sample(&dir.path().join("out"), 2);
        (dir, manifest)
    })
}

pub(crate) fn sample_out() -> PathBuf {
    sample_run().0.path().join("out")
}

#[test]
fn invoices_match_the_hand_checked_totals() {
    let out = sample_out();
    let actual: Vec<Vec<String>> = rows(
        &out,
        "SELECT invoice_id, customer_id, currency, period_start, period_end, issue_date, due_date, \
                subtotal, discount, credits, tax, total FROM invoices ORDER BY invoice_id",
    )
    .into_iter()
    .map(|mut r| {
        let currency = r[2].clone();
        for cell in &mut r[7..] {
            *cell = money(cell, &currency);
        }
        r
    })
    .collect();
    assert_same_rows(
        "invoices.csv",
        &actual,
        &read_csv(&expected("invoices.csv")),
    );
}

#[test]
fn invoice_lines_match_the_hand_checked_lines() {
    let out = sample_out();
    let actual: Vec<Vec<String>> = rows(
        &out,
        "SELECT invoice_id, line_no, kind, subscription_id, product_id, credit_memo_id, \
                quantity, amount, currency FROM invoice_lines ORDER BY invoice_id, line_no",
    )
    .into_iter()
    .map(|mut r| {
        let currency = r.pop().unwrap();
        r[6] = plain(&r[6]);
        r[7] = money(&r[7], &currency);
        r
    })
    .collect();
    assert_same_rows(
        "invoice_lines.csv",
        &actual,
        &read_csv(&expected("invoice_lines.csv")),
    );
}

#[test]
fn every_rated_event_carries_its_hand_checked_amount() {
    let out = sample_out();
    let actual: Vec<Vec<String>> = rows(
        &out,
        "SELECT event_id, customer_id, product_id, subscription_id, plan_id, ts, quantity, amount \
         FROM rated_usage ORDER BY event_id",
    )
    .into_iter()
    .map(|mut r| {
        r[5] = r[5].replace('Z', "").trim_end_matches("+00:00").to_string();
        r[6] = plain(&r[6]);
        r[7] = plain(&r[7]);
        r
    })
    .collect();
    let mut want = read_csv(&expected("rated_usage.csv"));
    for r in &mut want {
        r[5] = r[5].trim_end_matches('Z').to_string();
    }
    want.sort();
    assert_eq!(actual, want);
}

#[test]
fn rated_totals_per_subscription_match() {
    let out = sample_out();
    let actual: Vec<Vec<String>> = rows(
        &out,
        "SELECT subscription_id, product_id, count(*), sum(quantity), sum(amount) \
         FROM rated_usage GROUP BY subscription_id, product_id ORDER BY subscription_id, product_id",
    )
    .into_iter()
    .map(|mut r| {
        r[3] = plain(&r[3]);
        r[4] = plain(&r[4]);
        r
    })
    .collect();
    assert_same_rows(
        "rated_usage_totals.csv",
        &actual,
        &read_csv(&expected("rated_usage_totals.csv")),
    );
}

#[test]
fn unrated_rejects_and_open_credits_match() {
    let out = sample_out();
    assert_same_rows(
        "unrated.csv",
        &rows(&out, "SELECT event_id, code FROM unrated ORDER BY event_id"),
        &read_csv(&expected("unrated.csv")),
    );
    let rejects: Vec<Vec<String>> = rows(
        &out,
        "SELECT \"table\", source_file, row_number, \"column\", code FROM rejects \
         ORDER BY source_file, row_number",
    );
    assert_same_rows("rejects.csv", &rejects, &read_csv(&expected("rejects.csv")));
    let open: Vec<Vec<String>> = rows(
        &out,
        "SELECT credit_memo_id, customer_id, currency, remaining FROM open_credits ORDER BY credit_memo_id",
    )
    .into_iter()
    .map(|mut r| {
        r[3] = money(&r[3], &r[2]);
        r
    })
    .collect();
    assert_same_rows(
        "open_credits.csv",
        &open,
        &read_csv(&expected("open_credits.csv")),
    );
}

#[test]
fn every_usage_row_is_accounted_for() {
    let (_, manifest) = sample_run();
    let u = &manifest.usage;
    let want = &read_csv(&expected("counts.csv"))[0];
    let got = [u.read, u.rated, u.unrated, u.rejected, u.outside_period].map(|n| n.to_string());
    assert_eq!(got.as_slice(), want.as_slice());
    assert_eq!(u.read, u.rated + u.unrated + u.rejected + u.outside_period);
}

/// Retries by the thousand: the same 9 000 events sent in three files. Their candidate
/// rows are read back sorted, and groups of three straddle the query engine's batches,
/// so this also checks that a group split across batches keeps only its first row.
#[test]
fn retries_sent_three_times_are_rated_once_and_rejected_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&sample_input(), &data);
    let mut retry = String::from("event_id,customer_id,product_id,ts,quantity\n");
    for i in 0..9_000 {
        retry.push_str(&format!("RB{i:05},C001,P-API,2026-10-20T00:00:00Z,1\n"));
    }
    for name in ["2026-10-r1.csv", "2026-10-r2.csv", "2026-10-r3.csv"] {
        std::fs::write(data.join("usage").join(name), &retry).unwrap();
    }
    let out = dir.path().join("out");
    let manifest = bill(october(&data, &out));
    let sample = &sample_run().1.usage;
    let u = &manifest.usage;
    assert_eq!(u.read, sample.read + 27_000);
    assert_eq!(u.rejected, sample.rejected + 18_000);
    assert_eq!(u.rated, sample.rated + 9_000);
    assert_eq!(u.read, u.rated + u.unrated + u.rejected + u.outside_period);
    let by_file = rows(
        &out,
        "SELECT source_file, code, count(*) FROM rejects WHERE raw LIKE 'RB%' \
         GROUP BY source_file, code ORDER BY source_file",
    );
    assert_eq!(
        by_file,
        vec![
            vec!["usage/2026-10-r2.csv", "duplicate_event", "9000"],
            vec!["usage/2026-10-r3.csv", "duplicate_event", "9000"],
        ]
    );
    let rated = rows(
        &out,
        "SELECT count(*), count(DISTINCT event_id), min(event_id), max(event_id) \
         FROM rated_usage WHERE event_id LIKE 'RB%'",
    );
    assert_eq!(rated, vec![vec!["9000", "9000", "RB00000", "RB08999"]]);
}

#[test]
fn lines_add_up_to_invoice_totals_and_journal_balances() {
    let out = sample_out();
    let mismatched = rows(
        &out,
        "SELECT i.invoice_id FROM invoices i JOIN \
           (SELECT invoice_id, sum(amount) AS s FROM invoice_lines GROUP BY invoice_id) l \
           ON i.invoice_id = l.invoice_id WHERE i.total <> l.s",
    );
    assert!(mismatched.is_empty(), "{mismatched:?}");
    let unbalanced = rows(
        &out,
        "SELECT entry_id FROM journal GROUP BY entry_id HAVING sum(debit) <> sum(credit)",
    );
    assert!(unbalanced.is_empty(), "{unbalanced:?}");
    // Receivables in the journal equal what the invoices say is owed.
    let receivable = rows(
        &out,
        "SELECT currency, sum(debit) - sum(credit) FROM journal WHERE account = 'assets:receivable' \
         GROUP BY currency ORDER BY currency",
    );
    let owed = rows(
        &out,
        "SELECT currency, sum(total) FROM invoices WHERE total <> 0 GROUP BY currency ORDER BY currency",
    );
    assert_eq!(receivable, owed);
    // GL numbers from products.revenue_account land under `revenue:`.
    let revenue = rows(
        &out,
        "SELECT account, sum(credit) FROM journal WHERE currency = 'USD' AND account LIKE 'revenue:4%' \
         GROUP BY account ORDER BY account",
    );
    assert_eq!(
        revenue,
        [
            ["revenue:4000".to_string(), "406.4500".to_string()],
            ["revenue:4100".to_string(), "633.8100".to_string()],
            ["revenue:4110".to_string(), "39.5000".to_string()],
        ]
    );
}

#[test]
fn the_manifest_lists_inputs_and_outputs_with_hashes() {
    let out = sample_out();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let inputs = manifest["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 9);
    let usage_a = inputs
        .iter()
        .find(|i| i["file"] == "usage/2026-10-a.csv")
        .unwrap();
    assert_eq!(usage_a["rows"], 38);
    assert_eq!(usage_a["sha256"].as_str().unwrap().len(), 64);
    let outputs: BTreeMap<String, u64> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["table"].as_str().unwrap().to_string(),
                o["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(outputs["invoices"], 21);
    assert_eq!(outputs["invoice_lines"], 56);
    assert_eq!(outputs["rated_usage"], 54);
    assert_eq!(outputs["unrated"], 9);
    assert_eq!(outputs["rejects"], 10);
    assert_eq!(outputs["open_credits"], 3);
    // The sample has no orders: the revenue tables are written, empty.
    for table in [
        "revenue_allocations",
        "revenue_schedule",
        "contract_billings",
        "deferred_revenue",
        "revenue_waterfall",
    ] {
        assert_eq!(outputs[table], 0, "{table}");
    }
    let stages: Vec<&str> = manifest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "read",
            "validate",
            "dedupe",
            "rate",
            "invoice",
            "recognise",
            "journal",
            "write"
        ]
    );
    // On Linux every stage records the high-water mark so far: it never goes down.
    if cfg!(target_os = "linux") {
        let peaks: Vec<u64> = manifest["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["peak_rss_bytes"].as_u64().expect("peak_rss_bytes"))
            .collect();
        assert!(peaks[0] > 0);
        // The kernel counts resident pages per thread and folds them in lazily (up to
        // 64 pages a thread), so two readings may differ by a little either way: allow
        // 4 MiB, far below what any stage allocates.
        assert!(
            peaks.windows(2).all(|w| w[0] <= w[1] + (4 << 20)),
            "{peaks:?}"
        );
    }
}

fn table_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walk(out) {
        let name = entry
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".parquet") || name.ends_with(".ledger") || name.ends_with(".csv") {
            files.insert(name, std::fs::read(&entry).unwrap());
        }
    }
    files
}

/// Asserts that two runs wrote the same 14 files (12 tables, `journal.ledger` and
/// `journal.csv`) byte for byte; returns the first run's.
fn assert_same_tables(a: &Path, b: &Path, how: &str) -> BTreeMap<String, Vec<u8>> {
    let (a, b) = (table_files(a), table_files(b));
    assert_eq!(a.len(), 14);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs {how}");
    }
    a
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn reruns_are_byte_identical_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    let four = dir.path().join("four");
    run_sample(&one, 1);
    run_sample(&four, 4);
    let a = assert_same_tables(&one, &four, "between 1 and 4 threads");
    // Re-running into the same folder replaces the previous run in one step.
    run_sample(&one, 2);
    assert_eq!(table_files(&one), a);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging folders left behind: {leftovers:?}"
    );
}

/// Bills October 2026 of a generated dataset under `memory_limit`.
fn run_generated(data: &Path, out: &Path, memory_limit: Option<usize>) -> Manifest {
    bill(RunOptions {
        memory_limit,
        ..october(data, out)
    })
}

#[test]
fn a_run_under_a_small_memory_limit_spills_and_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let generated = billrun_samples::generate(
        &billrun_samples::GenerateOptions {
            customers: 300,
            events: 60_000,
            seed: 7,
            out: data.clone(),
            usage_files: 3,
            period: (2026, 10),
            event_id_prefix: String::new(),
        },
        &|_| {},
    )
    .unwrap();
    let roomy = run_generated(&data, &dir.path().join("roomy"), None);
    // 8 MiB: events are dealt into buckets of 512 KiB and 2 MiB of them are held in
    // memory at most, so most go through scratch files before they are sorted.
    let tight = run_generated(&data, &dir.path().join("tight"), Some(8 << 20));
    assert_eq!(roomy.rating_order.buckets, 1);
    assert_eq!(roomy.rating_order.spill_files, 0);
    assert_eq!(tight.rating_order.buckets, 11);
    assert!(tight.rating_order.spill_files > tight.rating_order.buckets);
    assert!(tight.rating_order.spill_bytes > 2 << 20);
    assert_eq!(tight.rating_order.external_sorts, 0);
    assert_eq!(roomy.usage, tight.usage);
    // Every row as the generator planted it: duplicates and bad rows rejected, unknown
    // customers unrated, the rest rated or outside the period.
    let usage = &roomy.usage;
    assert_eq!(usage.read, generated.events_written);
    assert_eq!(usage.duplicates, generated.duplicates);
    assert_eq!(usage.rejected, generated.duplicates + generated.bad_rows);
    assert_eq!(usage.outside_period, generated.outside_window_rows);
    assert_eq!(usage.unrated, generated.unknown_customer_rows);
    assert_eq!(
        usage.rated,
        generated.events_written
            - usage.rejected
            - generated.outside_window_rows
            - generated.unknown_customer_rows
    );
    assert_same_tables(
        &dir.path().join("roomy"),
        &dir.path().join("tight"),
        "under the small memory limit",
    );
}

fn run_err(data: &Path, out: &Path) -> String {
    let err = runtime()
        .block_on(run_bill(october(data, out)))
        .unwrap_err();
    err.to_string()
}

#[test]
fn a_missing_required_column_fails_the_run_naming_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&sample_input(), &data);
    std::fs::write(
        data.join("usage/2026-10-z.csv"),
        "event_id,customer_id,ts,quantity\nX1,C001,2026-10-02T00:00:00Z,1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    assert_eq!(
        run_err(&data, &out),
        "usage/2026-10-z.csv: required column `product_id` of table `usage` is missing"
    );
    assert!(!out.exists(), "a failed run must publish nothing");
}

#[test]
fn a_float_money_column_in_parquet_is_refused() {
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&sample_input(), &data);
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new("ts", DataType::Utf8, false),
        Field::new("quantity", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(vec!["F1"])),
            Arc::new(StringArray::from(vec!["C001"])),
            Arc::new(StringArray::from(vec!["P-API"])),
            Arc::new(StringArray::from(vec!["2026-10-02T00:00:00Z"])),
            Arc::new(Float64Array::from(vec![0.1])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(data.join("usage/float.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    assert_eq!(
        run_err(&data, &dir.path().join("out")),
        "usage/float.parquet: column `quantity` of table `usage` is stored as Float64; \
         money and quantities must be decimals, never binary floats"
    );
}

#[test]
fn a_folder_that_is_not_a_billrun_output_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let message = run_err(&sample_input(), &out);
    assert!(message.contains("is not a billrun output"), "{message}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Revenue lands in the month it was earned: accrued on the billing window's last day,
/// so hledger's October revenue (credit memos aside) is the subtotal less discount of
/// every invoice whose window ends in October, from the hand-checked `invoices.csv`:
/// 991.28 USD, 128.18 EUR, 4525 JPY and 2.500 KWD (C010 and C019 bill windows ending
/// on 2026-11-14 and count in November). Before, the invoices were booked on their
/// issue date and October showed no billed revenue at all.
#[test]
fn hledger_reports_october_revenue_in_october() {
    let journal = sample_out().join("journal.ledger");
    let f = |s: &str| std::ffi::OsString::from(s);
    let Some(text) = crate::common::hledger(&[
        &f("-f"),
        journal.as_os_str(),
        &f("balance"),
        &f("-p"),
        &f("2026-10"),
        &f("^revenue"),
        &f("not:credit memos"),
        &f("--flat"),
        &f("-O"),
        &f("csv"),
    ]) else {
        return;
    };
    let total = text.lines().last().unwrap_or_default();
    assert_eq!(
        total, r#""total","-128.18 EUR, -4525 JPY, -2.500 KWD, -991.28 USD""#,
        "{text}"
    );
}

/// `hledger check --strict` on the exported journal. CI installs hledger and sets
/// `BILLRUN_REQUIRE_TOOLS=1`, so there this test cannot pass by skipping.
#[test]
fn hledger_accepts_the_journal() {
    let out = sample_out();
    let journal = out.join("journal.ledger");
    let f = |s: &str| std::ffi::OsString::from(s);
    let Some(_) =
        crate::common::hledger(&[&f("-f"), journal.as_os_str(), &f("check"), &f("--strict")])
    else {
        return;
    };
    // And hledger's own balance of the receivable equals billrun's invoices.
    let text = crate::common::hledger(&[
        &f("-f"),
        journal.as_os_str(),
        &f("balance"),
        &f("assets:receivable"),
        &f("--flat"),
        &f("--no-total"),
        &f("-O"),
        &f("csv"),
    ])
    .unwrap();
    let owed = rows(
        &out,
        "SELECT currency, sum(total) FROM invoices GROUP BY currency ORDER BY currency",
    );
    for row in owed {
        let amount = money(&row[1], &row[0]);
        if amount.trim_start_matches(['0', '.']).is_empty() {
            continue;
        }
        assert!(
            text.contains(&format!("{amount} {}", row[0])),
            "hledger balance lacks {amount} {}:\n{text}",
            row[0]
        );
    }
}

#[test]
fn the_command_line_runs_and_queries_a_period() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = sample_input();
    let run = billrun(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--period",
        "2026-10",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(
            "usage: 74 read, 54 rated, 9 unrated, 5 rejected (2 duplicates), 6 outside the period"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("invoices: 21 ("), "{stdout}");

    let query = billrun(&[
        "query",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT invoice_id, total FROM invoices WHERE customer_id IN ('C001', 'C013') ORDER BY invoice_id",
    ]);
    assert!(
        query.status.success(),
        "{}",
        String::from_utf8_lossy(&query.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&query.stdout),
        "invoice_id,total\nINV-202610-C001-USD,248.5600\nINV-202610-C013-JPY,4978.0000\n"
    );
}

#[test]
fn the_command_line_explains_bad_options_and_exits_2() {
    let bad_period = billrun(&["run", "--data", ".", "--out", "x", "--period", "2026-13"]);
    assert_eq!(bad_period.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_period.stderr);
    assert!(
        stderr.starts_with("billrun: error: --period `2026-13` is not a month like 2026-10"),
        "{stderr}"
    );
    let no_run = billrun(&["query", "--out", "/nonexistent/billrun", "SELECT 1"]);
    assert_eq!(no_run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_run.stderr).contains("holds no billrun run"));
}

#[test]
fn billrun_query_only_reads_and_prints_headers_strings_and_nulls() {
    let out = sample_out();
    let before = table_files(&out);
    for sql in [
        "INSERT INTO invoices SELECT * FROM invoices",
        "COPY (SELECT 1) TO '/tmp/billrun-query-escape.csv'",
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let output = billrun(&["query", "--out", out.to_str().unwrap(), sql]);
        assert_eq!(output.status.code(), Some(2), "{sql}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("`billrun query` only reads a run's tables"),
            "{sql}: {stderr}"
        );
    }
    assert_eq!(table_files(&out), before, "a query changed the run");
    assert!(!Path::new("/tmp/billrun-query-escape.csv").exists());
    let csv = billrun(&[
        "query",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT invoice_id, total FROM invoices WHERE total < 0",
    ]);
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "invoice_id,total\n");
    let json = billrun(&[
        "query",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
        "SELECT invoice_id, total, corrects_invoice_id FROM invoices WHERE invoice_id = 'INV-202610-C001-USD'",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        value,
        serde_json::json!([{"invoice_id": "INV-202610-C001-USD", "total": "248.5600", "corrects_invoice_id": null}])
    );
}

fn stdout_of(args: &[&str]) -> String {
    let output = billrun(args);
    assert!(
        output.status.success(),
        "billrun {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Where a row names its currency, money is shown at the currency's minor unit (the
/// hand-checked totals of `expected/invoices.csv`: 248.56 USD, 4978 JPY, 2.500 KWD),
/// in every format; a value with digits below the minor unit keeps them all.
#[test]
fn query_shows_money_at_the_currency_minor_unit_and_never_rounds() {
    let out = sample_out();
    let out = out.to_str().unwrap();
    let sql = "SELECT invoice_id, currency, total FROM invoices \
               WHERE customer_id IN ('C001', 'C013', 'C014') ORDER BY invoice_id";
    assert_eq!(
        stdout_of(&["query", "--out", out, "--format", "csv", sql]),
        "invoice_id,currency,total\nINV-202610-C001-USD,USD,248.56\n\
         INV-202610-C013-JPY,JPY,4978\nINV-202610-C014-KWD,KWD,2.500\n"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&[
        "query", "--out", out, "--format", "json", sql,
    ]))
    .unwrap();
    assert_eq!(
        json[1],
        serde_json::json!({"invoice_id": "INV-202610-C013-JPY", "currency": "JPY", "total": "4978"})
    );
    let table = stdout_of(&["query", "--out", out, sql]);
    assert!(
        table.contains("| INV-202610-C014-KWD | KWD      | 2.500  |"),
        "{table}"
    );
    // A third of 248.56 has digits below the cent: shown with all four.
    assert_eq!(
        stdout_of(&[
            "query",
            "--out",
            out,
            "--format",
            "csv",
            "SELECT currency, CAST(total / 3 AS DECIMAL(38, 4)) AS third FROM invoices WHERE invoice_id = 'INV-202610-C001-USD'",
        ]),
        "currency,third\nUSD,82.8533\n"
    );
}

/// The trial balance's totals row per currency: debits equal credits, and both equal
/// the journal table's sums computed here from `journal.csv`.
#[test]
fn the_trial_balance_ends_with_a_totals_row_per_currency() {
    let out = sample_out();
    let table = stdout_of(&["report", "trial-balance", "--out", out.to_str().unwrap()]);
    let mut debits: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    let journal = read_csv(&out.join("journal.csv"));
    for row in &journal[..] {
        // entry_id, date, account, debit, credit, currency, source_id, memo
        *debits.entry(row[5].clone()).or_default() +=
            row[3].parse::<rust_decimal::Decimal>().unwrap();
    }
    assert_eq!(debits.len(), 4);
    for (currency, debit) in debits {
        let minor = match currency.as_str() {
            "JPY" => 0,
            "KWD" => 3,
            _ => 2,
        };
        let zero = format!("{:.minor$}", rust_decimal::Decimal::ZERO);
        let debit = format!("{debit:.minor$}");
        let line = table
            .lines()
            .find(|l| l.starts_with("| total ") && l.contains(&format!("| {currency} ")))
            .unwrap_or_else(|| panic!("no {currency} totals row:\n{table}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(
            cells[3..6],
            [debit.as_str(), debit.as_str(), zero.as_str()],
            "{line}"
        );
    }
    // CSV stays one row per account and currency: no totals row.
    let csv = stdout_of(&[
        "report",
        "trial-balance",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(!csv.contains("total,"), "{csv}");
}

/// The dataset's tables are queryable beside the outputs, in the schema `data`.
#[test]
fn query_joins_the_outputs_with_the_dataset_tables() {
    let out = sample_out();
    let data = sample_input();
    let query = |sql: &str| {
        stdout_of(&[
            "query",
            "--out",
            out.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--format",
            "csv",
            sql,
        ])
    };
    let text = query(
        "SELECT i.invoice_id, c.name FROM invoices i JOIN data.customers c USING (customer_id) \
         WHERE i.customer_id = 'C001'",
    );
    let name = &read_csv(&data.join("customers/customers.csv"))
        .into_iter()
        .find(|r| r[0] == "C001")
        .unwrap()[1];
    assert_eq!(
        text,
        format!("invoice_id,name\nINV-202610-C001-USD,{name}\n")
    );
    let tables = query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'data' ORDER BY 1",
    );
    assert!(tables.starts_with("table_name\n"), "{tables}");
    for table in ["customers", "price_plans", "products", "subscriptions"] {
        assert!(
            tables.contains(&format!("\n{table}\n")),
            "{table} missing: {tables}"
        );
    }
    assert!(
        !tables.contains("\nusage\n"),
        "usage is not registered: {tables}"
    );
}

/// A result of many batches is written as it comes: one header, every row once.
#[test]
fn a_large_query_result_streams_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    billrun_samples::generate(
        &billrun_samples::GenerateOptions {
            customers: 100,
            events: 30_000,
            seed: 11,
            out: data.clone(),
            usage_files: 2,
            period: (2026, 10),
            event_id_prefix: String::new(),
        },
        &|_| {},
    )
    .unwrap();
    run_generated(&data, &out, None);
    let csv = stdout_of(&[
        "query",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT event_id FROM rated_usage ORDER BY event_id",
    ]);
    let rated = rows(&out, "SELECT count(*) FROM rated_usage")[0][0]
        .parse::<usize>()
        .unwrap();
    assert!(rated > 20_000, "too few rows to span batches: {rated}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "event_id");
    assert_eq!(lines.len(), rated + 1);
    assert_eq!(lines.iter().filter(|l| **l == "event_id").count(), 1);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&[
        "query",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
        "SELECT event_id FROM rated_usage",
    ]))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), rated);
}

#[test]
fn version_names_the_commit_and_logs_follow_verbosity_and_format() {
    let version = stdout_of(&["--version"]);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        // Built from this checkout: the commit it was built at (HEAD, unless a commit
        // landed after the build, which a test run does not do).
        Some(head) => assert_eq!(
            version,
            format!("billrun {} (commit {head})\n", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(version.contains("(commit "), "{version}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = sample_input();
    let verbose = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .args([
            "-v",
            "--log-format",
            "json",
            "run",
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap(), "--period", "2026-10"])
        .env_remove("BILLRUN_LOG")
        .output()
        .unwrap();
    assert!(verbose.status.success());
    let stderr = String::from_utf8(verbose.stderr).unwrap();
    let stages: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["fields"]["message"] == "stage done")
        .collect();
    assert!(
        stages.iter().any(|v| v["fields"]["stage"] == "rate"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no colour codes off a terminal");
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_billrun"))
        .args([
            "--log-format",
            "json",
            "run",
            "--data",
            "/nonexistent/billrun-data",
        ])
        .args(["--out", out.to_str().unwrap(), "--period", "2026-10"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(65));
    let line: serde_json::Value = serde_json::from_slice(&failed.stderr).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["exit_code"], 65);
}

/// Each input file's `rows_rejected` counts every reject of its rows, those of the rules
/// across rows (the sample's two repeated event ids) included: per table they sum to
/// `rejects_by_table`, and the sample's 10 rejects are all accounted for.
#[test]
fn manifest_rejects_per_file_add_up_to_rejects_by_table() {
    for out in [sample_out(), crate::revenue::revenue_out()] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let mut per_table: BTreeMap<String, u64> = BTreeMap::new();
        for input in manifest["inputs"].as_array().unwrap() {
            let n = input["rows_rejected"].as_u64().unwrap();
            if n > 0 {
                *per_table
                    .entry(input["table"].as_str().unwrap().to_string())
                    .or_default() += n;
            }
        }
        let by_table: BTreeMap<String, u64> =
            serde_json::from_value(manifest["rejects_by_table"].clone()).unwrap();
        assert_eq!(per_table, by_table, "{}", out.display());
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample_out().join("manifest.json")).unwrap())
            .unwrap();
    let total: u64 = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["rows_rejected"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);
}

/// Paired with the writers, which hash each file as they write it: every file the
/// manifest lists has the size and SHA-256 the manifest gives, computed here from the
/// file as published, and every file of the output but the manifest is listed.
#[test]
fn the_manifest_digest_of_every_output_is_that_of_its_file() {
    use sha2::Digest as _;
    let out = sample_out();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&serde_json::Value> = manifest["outputs"].as_array().unwrap().iter().collect();
    let mut files = std::collections::BTreeSet::new();
    for record in &listed {
        let file = record["file"].as_str().unwrap();
        let bytes = std::fs::read(out.join(file)).unwrap();
        assert_eq!(record["bytes"], bytes.len() as u64, "{file}");
        assert_eq!(
            record["sha256"],
            hex::encode(sha2::Sha256::digest(&bytes)),
            "{file}"
        );
        files.insert(file.to_string());
    }
    let mut on_disk = std::collections::BTreeSet::new();
    let mut folders = vec![out.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path
                    .strip_prefix(&out)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if relative != "manifest.json" {
                    on_disk.insert(relative);
                }
            }
        }
    }
    assert_eq!(files, on_disk);
    // Parquet tables, the three journal texts: both writers' paths are covered.
    for file in [
        "invoices/part-00000.parquet",
        "journal.ledger",
        "journal.csv",
        "journal.beancount",
    ] {
        assert!(files.contains(file), "{file} not in the manifest");
    }
}
