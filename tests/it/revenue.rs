//! Revenue recognition end to end: the contract set in `data-samples/revenue/` through a
//! whole run, compared with expectations computed independently of billrun
//! (`data-samples/revenue/expected/compute.py`, exact fractions) and checked by hand
//! (`HAND-CHECK.md` there), and the exported journal tied out with hledger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use billrun_engine::CarveOrder;
use rust_decimal::Decimal;
use sha2::Digest;

use crate::common::{
    assert_same_rows, bill_october, billrun, copy_dir, format_rows, hledger, money, read_csv, rows,
};

fn revenue_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-samples/revenue/input")
}

fn expected(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data-samples/revenue/expected")
        .join(name)
}

fn run_revenue(out: &Path, carve_order: CarveOrder) {
    bill_october(&revenue_input(), out, carve_order);
}

/// Bills October 2026 of a copy of the revenue sample with `appended` lines added to the
/// end of the named files; the outputs are in `out/` of the returned folder.
fn bill_sample_with(appended: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&revenue_input(), &data);
    for (file, lines) in appended {
        let path = data.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(lines);
        std::fs::write(&path, text).unwrap();
    }
    bill_october(
        &data,
        &dir.path().join("out"),
        CarveOrder::AllocateThenCarve,
    );
    dir
}

/// The default run (allocate, then carve), done once for the tests that only read it.
pub(crate) fn revenue_out() -> PathBuf {
    static RUN: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        run_revenue(&dir.path().join("out"), CarveOrder::AllocateThenCarve);
        dir
    });
    dir.path().join("out")
}

/// Rows of `sql`, with the money columns `money_columns` printed in the currency of
/// column `currency_column`.
fn money_rows(
    out: &Path,
    sql: &str,
    currency_column: usize,
    money_columns: &[usize],
) -> Vec<Vec<String>> {
    rows(out, sql)
        .into_iter()
        .map(|mut r| {
            let currency = r[currency_column].clone();
            for &c in money_columns {
                r[c] = money(&r[c], &currency);
            }
            r
        })
        .collect()
}

const ALLOCATIONS_SQL: &str = "SELECT contract_id, order_id, line_id, product_id, method, \
     stated_price, allocated, revenue_account, deferral_account, carve_rule_id, currency \
     FROM revenue_allocations ORDER BY contract_id, order_id, line_id, revenue_account";

fn allocations(out: &Path) -> Vec<Vec<String>> {
    money_rows(out, ALLOCATIONS_SQL, 10, &[5, 6])
        .into_iter()
        .map(|mut r| {
            r.pop();
            r
        })
        .collect()
}

#[test]
fn allocate_then_carve_matches_the_hand_computed_contracts() {
    assert_same_rows(
        "revenue_allocations.csv",
        &allocations(&revenue_out()),
        &read_csv(&expected("revenue_allocations.csv")),
    );
    assert_eq!(
        manifest_of(&revenue_out())["carve_order"],
        "allocate-then-carve"
    );
}

#[test]
fn carve_then_allocate_gives_what_that_order_implies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_revenue(&out, CarveOrder::CarveThenAllocate);
    let actual = allocations(&out);
    assert_same_rows(
        "revenue_allocations_carve_then_allocate.csv",
        &actual,
        &read_csv(&expected("revenue_allocations_carve_then_allocate.csv")),
    );
    // The two orders really differ on the bundle: 720/280/200 against 740/275/185.
    assert_ne!(actual, allocations(&revenue_out()));
    assert_eq!(manifest_of(&out)["carve_order"], "carve-then-allocate");
}

fn manifest_of(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn the_command_line_carve_order_reaches_the_allocations_and_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = billrun(&[
        "run",
        "--data",
        revenue_input().to_str().unwrap(),
        "--period",
        "2026-10",
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
        "--carve-order",
        "carve-then-allocate",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_rows(
        "revenue_allocations_carve_then_allocate.csv",
        &allocations(&out),
        &read_csv(&expected("revenue_allocations_carve_then_allocate.csv")),
    );
    assert_eq!(manifest_of(&out)["carve_order"], "carve-then-allocate");
}

fn revenue_schedule(out: &Path) -> Vec<Vec<String>> {
    money_rows(
        out,
        "SELECT invoice_id, order_id, line_id, customer_id, product_id, recognition_date, \
                amount, currency, status, contract_id, method, revenue_account, \
                deferral_account, condition_id \
         FROM revenue_schedule \
         ORDER BY contract_id, order_id, line_id, revenue_account, recognition_date",
        7,
        &[6],
    )
}

#[test]
fn revenue_schedule_matches_row_for_row() {
    assert_same_rows(
        "revenue_schedule.csv",
        &revenue_schedule(&revenue_out()),
        &read_csv(&expected("revenue_schedule.csv")),
    );
}

#[test]
fn every_schedule_adds_up_to_its_allocation_and_price_changes() {
    // Paired invariant: Σ schedule of a piece = its allocation (+ the price change of a
    // modified line), exactly.
    let mismatches = rows(
        &revenue_out(),
        "WITH s AS (SELECT order_id, line_id, revenue_account, sum(amount) AS scheduled \
                    FROM revenue_schedule GROUP BY order_id, line_id, revenue_account), \
              changes AS (SELECT contract_id, sum(amount) AS changed FROM contract_billings \
                          WHERE modification_id IS NOT NULL GROUP BY contract_id) \
         SELECT a.order_id, a.line_id, a.revenue_account, a.allocated, s.scheduled \
         FROM revenue_allocations a JOIN s USING (order_id, line_id, revenue_account) \
         LEFT JOIN changes c ON c.contract_id = a.contract_id AND a.carve_rule_id IS NULL \
         WHERE a.allocated + coalesce(c.changed, 0) <> s.scheduled",
    );
    assert_eq!(mismatches, Vec::<Vec<String>>::new());
    // And every contract's allocation is its price (Σ stated prices) to the cent.
    let unbalanced = rows(
        &revenue_out(),
        "SELECT contract_id FROM revenue_allocations WHERE method <> 'as_consumed' \
         GROUP BY contract_id HAVING sum(stated_price) <> sum(allocated)",
    );
    assert_eq!(unbalanced, Vec::<Vec<String>>::new());
}

#[test]
fn contract_billings_and_the_deferred_roll_forward_match() {
    let out = revenue_out();
    let billings = money_rows(
        &out,
        "SELECT billing_id, contract_id, customer_id, currency, billed_on, amount, tax, total, \
                modification_id FROM contract_billings ORDER BY billing_id",
        3,
        &[5, 6, 7],
    );
    assert_same_rows(
        "contract_billings.csv",
        &billings,
        &read_csv(&expected("contract_billings.csv")),
    );
    let roll_forward = money_rows(
        &out,
        "SELECT month, currency, account, opening, billed, recognised, closing \
         FROM deferred_revenue ORDER BY month, currency, account",
        1,
        &[3, 4, 5, 6],
    );
    assert_same_rows(
        "deferred_revenue.csv",
        &roll_forward,
        &read_csv(&expected("deferred_revenue.csv")),
    );
}

#[test]
fn bad_contract_rows_are_rejected_with_file_row_and_reason() {
    let rejects = rows(
        &revenue_out(),
        "SELECT source_file, row_number, \"column\", code, reason FROM rejects",
    );
    let contract_rejects: Vec<Vec<String>> = [
        [
            "orders/orders.csv",
            "9",
            "contract_id",
            "invalid_contract",
            "contract `K-BAD` is not recognised: no SSP for product `GIZ` in USD on 2026-10-05 (add it to ssp or products.ssp)",
        ],
        [
            "orders/orders.csv",
            "10",
            "customer_id",
            "unknown_reference",
            "customer `R999` is not in customers",
        ],
        [
            "carve_rules/carve_rules.csv",
            "3",
            "to_product_id",
            "invalid_contract",
            "give exactly one of `to_product_id` and `to_account`",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|c| (*c).to_string()).collect())
    .collect();
    assert_eq!(rejects, contract_rejects);

    // Conditions cannot hold as-consumed revenue (it is booked when its usage is
    // invoiced): one on K-USAGE's API line, or on its whole order, is rejected.
    let dir = bill_sample_with(&[(
        "conditions/conditions.csv",
        "ACC-3,O-200,L1,usage acceptance,\nACC-4,O-200,,order acceptance,2026-10-05\n",
    )]);
    let out = dir.path().join("out");
    let rejects = rows(
        &out,
        "SELECT source_file, row_number, \"column\", code, reason FROM rejects",
    );
    let conditions: Vec<Vec<String>> = [
        [
            "conditions/conditions.csv",
            "3",
            "line_id",
            "invalid_contract",
            "order `O-200` line `L1` (`API`) is recognised as consumed, when its usage is invoiced, so condition `ACC-3` cannot hold it",
        ],
        [
            "conditions/conditions.csv",
            "4",
            "line_id",
            "invalid_contract",
            "order `O-200` line `L1` (`API`) is recognised as consumed, when its usage is invoiced, so condition `ACC-4` cannot hold the whole order; give the `line_id` of each line it holds",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|c| (*c).to_string()).collect())
    .collect();
    assert_eq!(rejects.len(), 5);
    assert_eq!(rejects[..3], contract_rejects[..]);
    assert_eq!(rejects[3..], conditions[..]);
    // Nothing else changes: not even K-USAGE's platform fee is held.
    assert_same_rows(
        "revenue_schedule.csv",
        &revenue_schedule(&out),
        &read_csv(&expected("revenue_schedule.csv")),
    );
}

/// The rows of `out/<table>/part-00000.parquet` in file order, formatted as `rows` does.
fn parquet_rows(out: &Path, table: &str) -> Vec<Vec<String>> {
    let file = std::fs::File::open(out.join(table).join("part-00000.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    format_rows(&batches)
}

/// Postings and entries of the default run's journal: R002's usage invoice is two
/// entries (its 8.00 of revenue accrued on 2026-10-31: 2 postings; the invoice on
/// 2026-11-01: receivable 5.00 and customer credits 3.00 against unbilled receivable
/// 8.00), beside 11 entries (29 postings) of contracts, payments, the credit memo and
/// the balances brought forward.
const JOURNAL_POSTINGS: usize = 34;
const JOURNAL_ENTRIES: usize = 13;

#[test]
fn the_journal_csv_is_the_parquet_journal_row_for_row() {
    let out = revenue_out();
    let mut reader = csv::Reader::from_path(out.join("journal.csv")).unwrap();
    // The published journal columns, in their order.
    let journal = billrun_schemas::outputs::OutputTable::Journal.schema();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        journal
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
    );
    let csv_rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(csv_rows.len(), JOURNAL_POSTINGS);
    assert_eq!(csv_rows, parquet_rows(&out, "journal"));

    // Money is the Parquet decimal's text: the bundle's licence recognised in October.
    assert!(
        csv_rows.iter().any(|r| r[0] == "JE-REV-202610-K-BUNDLE"
            && r[2] == "revenue:4000"
            && r[3] == "0.0000"
            && r[4] == "720.0000"),
        "{csv_rows:?}"
    );

    // Every entry balances in its currency, read back from the text alone.
    let mut sums: BTreeMap<(String, String), (Decimal, Decimal)> = BTreeMap::new();
    for r in &csv_rows {
        let sum = sums.entry((r[0].clone(), r[5].clone())).or_default();
        sum.0 += r[3].parse::<Decimal>().unwrap();
        sum.1 += r[4].parse::<Decimal>().unwrap();
    }
    let unbalanced: Vec<&(String, String)> = sums
        .iter()
        .filter(|(_, (debit, credit))| debit != credit)
        .map(|(key, _)| key)
        .collect();
    assert_eq!(unbalanced, Vec::<&(String, String)>::new());
    assert_eq!(sums.len(), JOURNAL_ENTRIES);
    // Σ debits per currency, added up by hand from the entries (USD: 6166.56 before
    // revenue was accrued, plus the accrual's 8.00 debit of unbilled receivable).
    let mut debits: BTreeMap<&str, Decimal> = BTreeMap::new();
    for ((_, currency), (debit, _)) in &sums {
        *debits.entry(currency.as_str()).or_default() += debit;
    }
    assert_eq!(
        debits,
        BTreeMap::from([
            ("EUR", "1900.21".parse().unwrap()),
            ("USD", "6174.56".parse().unwrap())
        ])
    );

    // The manifest records it with its rows and digest.
    let manifest = manifest_of(&out);
    let record = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["file"] == "journal.csv")
        .unwrap();
    assert_eq!(record["rows"], JOURNAL_POSTINGS as u64);
    let bytes = std::fs::read(out.join("journal.csv")).unwrap();
    assert_eq!(record["bytes"], bytes.len() as u64);
    assert_eq!(record["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
}

/// `account → currency → balance` from `hledger balance --flat -O csv`.
fn hledger_balances(csv_text: &str) -> BTreeMap<String, BTreeMap<String, Decimal>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(csv_text.as_bytes());
    let mut out: BTreeMap<String, BTreeMap<String, Decimal>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.unwrap();
        let account = record[0].to_string();
        if account == "total" {
            continue;
        }
        for amount in record[1].split(", ") {
            let (number, currency) = amount.split_once(' ').unwrap();
            out.entry(account.clone())
                .or_default()
                .insert(currency.to_string(), number.parse().unwrap());
        }
    }
    out
}

/// Every account of the journal declares an hledger type, so hledger's balance sheet
/// (with equity) and income statement between them list every account: deferred
/// revenue and credit memos used to drop out of both.
#[test]
fn hledger_reports_place_every_account_of_the_journal() {
    let journal = revenue_out().join("journal.ledger");
    let text = std::fs::read_to_string(&journal).unwrap();
    let declared: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("account "))
        .map(|l| l.split("  ;").next().unwrap().to_string())
        .collect();
    assert!(
        declared.contains("liabilities:deferred revenue"),
        "{declared:?}"
    );
    let f = |s: &str| std::ffi::OsString::from(s);
    let report = |name: &str| {
        hledger(&[
            &f("-f"),
            journal.as_os_str(),
            &f(name),
            &f("--flat"),
            &f("-E"),
            &f("-O"),
            &f("csv"),
        ])
    };
    let (Some(balance_sheet), Some(income_statement)) =
        (report("balancesheetequity"), report("incomestatement"))
    else {
        return;
    };
    let listed = |csv: &str| -> BTreeMap<String, String> {
        csv.lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim_matches('"').split("\",\"").collect();
                (cells.len() == 2 && declared.contains(cells[0]))
                    .then(|| (cells[0].to_string(), cells[1].to_string()))
            })
            .collect()
    };
    let (assets_and_liabilities, revenue) = (listed(&balance_sheet), listed(&income_statement));
    let both: BTreeSet<String> = assets_and_liabilities
        .keys()
        .chain(revenue.keys())
        .cloned()
        .collect();
    assert_eq!(both, declared);
    // The roll-forward's USD closing of the default deferral account (see
    // deferred_revenue.csv), and the credit memo issued in October.
    assert_eq!(
        assets_and_liabilities["liabilities:deferred revenue"],
        "500.55 USD"
    );
    assert_eq!(revenue["revenue:credit memos"], "-3.00 USD");
}

#[test]
fn the_journal_balances_and_ties_out_with_hledger() {
    let out = revenue_out();
    // Every entry balances.
    let unbalanced = rows(
        &out,
        "SELECT entry_id FROM journal GROUP BY entry_id HAVING sum(debit) <> sum(credit)",
    );
    assert_eq!(unbalanced, Vec::<Vec<String>>::new());

    let journal = out.join("journal.ledger");
    let f = |s: &str| std::ffi::OsString::from(s);
    let Some(_) = hledger(&[&f("-f"), journal.as_os_str(), &f("check"), &f("--strict")]) else {
        return;
    };
    let text = hledger(&[
        &f("-f"),
        journal.as_os_str(),
        &f("balance"),
        &f("--flat"),
        &f("-O"),
        &f("csv"),
    ])
    .unwrap();
    let hledger = hledger_balances(&text);

    // hledger's balance of every account equals billrun's trial balance.
    let trial: Vec<Vec<String>> = rows(
        &out,
        "SELECT account, currency, sum(debit) - sum(credit) FROM journal \
         GROUP BY account, currency HAVING sum(debit) <> sum(credit) ORDER BY account, currency",
    );
    let mut billrun_balances: BTreeMap<String, BTreeMap<String, Decimal>> = BTreeMap::new();
    for r in &trial {
        billrun_balances
            .entry(r[0].clone())
            .or_default()
            .insert(r[1].clone(), r[2].parse::<Decimal>().unwrap().normalize());
    }
    let normalized: BTreeMap<String, BTreeMap<String, Decimal>> = hledger
        .iter()
        .map(|(a, m)| {
            (
                a.clone(),
                m.iter().map(|(c, v)| (c.clone(), v.normalize())).collect(),
            )
        })
        .filter(|(_, m): &(String, BTreeMap<String, Decimal>)| m.values().any(|v| !v.is_zero()))
        .collect();
    assert_eq!(normalized, billrun_balances);

    // Deferred revenue: each account's balance is minus the roll-forward's closing.
    let closing = rows(
        &out,
        "SELECT account, currency, closing FROM deferred_revenue \
         WHERE month = DATE '2026-10-01' ORDER BY account, currency",
    );
    assert_eq!(closing.len(), 4);
    for r in &closing {
        let expected_balance = -r[2].parse::<Decimal>().unwrap();
        assert_eq!(
            hledger[&r[0]][&r[1]].normalize(),
            expected_balance.normalize(),
            "{} {}",
            r[0],
            r[1]
        );
    }

    // Receivable = invoices + contract billings of the month − payments of the month
    // (invoice totals are already net of the credit memos they apply).
    let receivable = rows(
        &out,
        "SELECT currency, sum(amount) FROM ( \
           SELECT currency, total AS amount FROM invoices \
           UNION ALL SELECT currency, total FROM contract_billings \
             WHERE billed_on >= DATE '2026-10-01' AND billed_on < DATE '2026-11-01' \
           UNION ALL SELECT currency, -credit FROM journal \
             WHERE account = 'assets:receivable' AND entry_id LIKE 'JE-P-%') \
         GROUP BY currency ORDER BY currency",
    );
    assert_eq!(
        receivable
            .iter()
            .map(|r| (r[0].clone(), money(&r[1], &r[0])))
            .collect::<Vec<_>>(),
        [
            ("EUR".to_string(), "0.00".to_string()),
            ("USD".to_string(), "5.00".to_string())
        ]
    );
    // Hand-checked (HAND-CHECK.md): the balances hledger reports.
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    assert_eq!(hledger["assets:receivable"]["USD"], d("5.00"));
    assert_eq!(hledger["liabilities:deferred revenue"]["USD"], d("-500.55"));
    assert_eq!(
        hledger["liabilities:deferred revenue:2410"]["EUR"],
        d("-1096.51")
    );
    assert_eq!(hledger["revenue:4000"]["USD"], d("-1720.00"));
    // CM-1 was issued (credit 3.00) and applied on R002's invoice (debit 3.00).
    assert!(!billrun_balances.contains_key("liabilities:customer credits"));
    assert_eq!(hledger["revenue:credit memos"]["USD"], d("3.00"));
}

#[test]
fn the_reports_print_from_the_command_line() {
    let out = revenue_out();
    let report = |which: &str| {
        let output = billrun(&[
            "report",
            which,
            "--out",
            out.to_str().unwrap(),
            "--format",
            "csv",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let deferred = report("deferred-revenue");
    assert!(deferred.starts_with("month,currency,account,opening,billed,recognised,closing\n"));
    assert!(
        deferred
            .contains("2026-10-01,USD,liabilities:deferred revenue,1602.47,720.00,1821.92,500.55"),
        "{deferred}"
    );
    let waterfall = report("revenue-waterfall");
    let header = waterfall.lines().next().unwrap();
    assert!(
        header.starts_with("booked_month,currency,2026-01,"),
        "{header}"
    );
    assert!(header.ends_with(",2027-09,total"), "{header}");
    // The bundle booked in October 2026: 720 + 23.78 + 67.39 recognised that month.
    let bundle = waterfall
        .lines()
        .find(|l| l.starts_with("2026-10-01,USD,"))
        .unwrap();
    assert!(bundle.contains(",811.17,"), "{bundle}");
    assert!(bundle.ends_with(",1200.00"), "{bundle}");
    let trial = report("trial-balance");
    assert!(
        trial.contains("assets:receivable,USD,1325.00,1320.00,5.00"),
        "{trial}"
    );
}

#[test]
fn gl_references_are_checked_against_the_chart_of_accounts() {
    // 9999 is not in the chart; 2410 is a liability, not a revenue account.
    let dir = bill_sample_with(&[
        ("rev_policies/rev_policies.csv", "GIZ,point_in_time,9999,\n"),
        ("carve_rules/carve_rules.csv", "CR-3,,LIC,,2410,5,,\n"),
    ]);
    let out = dir.path().join("out");
    let rejects = rows(
        &out,
        "SELECT source_file, row_number, \"column\", code, reason FROM rejects \
         WHERE code = 'unknown_reference' AND source_file <> 'orders/orders.csv' \
         ORDER BY source_file, row_number",
    );
    assert_eq!(
        rejects,
        [
            [
                "carve_rules/carve_rules.csv",
                "4",
                "to_account",
                "unknown_reference",
                "GL account `2410` (Deferred revenue - support) is a liability account, not a revenue account"
            ],
            [
                "rev_policies/rev_policies.csv",
                "7",
                "deferral_account",
                "unknown_reference",
                "GL account `9999` is not in gl_accounts"
            ],
        ]
        .iter()
        .map(|r| r.iter().map(|c| (*c).to_string()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    // The journal declares the chart's accounts with their hledger types.
    let ledger = std::fs::read_to_string(out.join("journal.ledger")).unwrap();
    assert!(
        ledger.contains("account revenue:4100\n    ; type:R, gl:4100, gl_name:Support revenue\n")
    );
    assert!(ledger.contains(
        "account liabilities:deferred revenue:2410\n    ; type:L, gl:2410, gl_name:Deferred revenue - support\n"
    ));
    // billrun's own accounts, mapped by gl_accounts.billrun_account.
    assert!(ledger.contains(
        "account assets:receivable\n    ; type:A, gl:1200, gl_name:Accounts receivable\n"
    ));
}

/// Each contract rule that spans rows, broken by one appended row of a copy of the
/// revenue sample: the row is rejected with its file, row, column and reason, and the
/// sample's own three rejects are still the only others.
#[test]
fn each_cross_row_contract_rule_rejects_the_row_that_breaks_it() {
    // (file, appended line, then the reject expected of it: row, column, code, reason)
    let cases: [(&str, &str, [&str; 4]); 5] = [
        (
            "orders/orders.csv",
            "O-700,L1,K-NEW,R001,SUP,USD,1,100.00,2026-10-01,,2026-10-01",
            [
                "11",
                "service_end",
                "missing_value",
                "product `SUP` is recognised ratably, so its order lines need a `service_end`",
            ],
        ),
        (
            "orders/orders.csv",
            "O-701,L1,K-NEW,R001,SUP,USD,1,100.00,2026-10-01,2026-09-01,2026-10-01",
            [
                "11",
                "service_end",
                "out_of_range",
                "`service_end` 2026-09-01 is not after `service_start` 2026-10-01 (service_end is exclusive)",
            ],
        ),
        (
            "modifications/modifications.csv",
            "MOD-2,O-300,L1,2026-11-01,2027-12-01,100.00,extended again",
            [
                "2",
                "modification_id",
                "invalid_contract",
                "order `O-300` line `L1` already has a modification; one per line is supported, so this one is not applied",
            ],
        ),
        (
            "modifications/modifications.csv",
            "MOD-3,O-999,L1,2026-11-01,2027-12-01,100.00,no such line",
            [
                "2",
                "line_id",
                "unknown_reference",
                "order `O-999` line `L1` is not an accepted order line",
            ],
        ),
        (
            "carve_rules/carve_rules.csv",
            "CR-3,K-HOLD,TRN,,4600,,25.00,",
            [
                "4",
                "currency",
                "missing_value",
                "a carve of a fixed `amount` needs its `currency`",
            ],
        ),
    ];
    let of_file = |out: &Path, file: &str| {
        rows(
            out,
            &format!(
                "SELECT row_number, \"column\", code, reason FROM rejects \
                 WHERE source_file = '{file}' ORDER BY row_number"
            ),
        )
    };
    for (file, line, reject) in cases {
        let dir = bill_sample_with(&[(file, &format!("{line}\n"))]);
        let out = dir.path().join("out");
        let mut expected = of_file(&revenue_out(), file);
        expected.push(reject.iter().map(|c| (*c).to_string()).collect());
        assert_eq!(of_file(&out, file), expected, "{file}: {line}");
    }
}
