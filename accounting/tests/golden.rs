//! The accounting rules on the bundled samples, without DataFusion: the sample's master
//! data and its hand-checked rated totals (`data-samples/sample/expected/`, see
//! `HAND-CHECK.md` there) must give the hand-checked invoices to the cent, and the
//! contract set of `data-samples/revenue/` the allocations of its independent model
//! (`data-samples/revenue/expected/compute.py`), in both carve orders.
//!
//! Files are read as a bill run reads them (every cell as text, then the template's
//! validation), so these tests see the same validated rows the pipeline hands over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use billrun_accounting::ValidatedRows;
use billrun_accounting::catalog::{Catalog, MasterTables, build_catalog};
use billrun_accounting::invoicing::{UsageTotals, build_invoices};
use billrun_accounting::ledger::{GlChart, accounts, check_balanced, journal_entries};
use billrun_accounting::recognition::{
    AccountingTables, ConsumedUsage, ContractBook, RecognitionOptions,
};
use billrun_engine::{BillingMonth, CarveOrder};
use billrun_schemas::{Reject, Table, validate_batch};
use rust_decimal::Decimal;

const OCTOBER: BillingMonth = BillingMonth {
    year: 2026,
    month: 10,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every row of a CSV file as strings, header first.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// One input table of a sample dataset, validated as a bill run validates it.
struct Loaded {
    table: Table,
    batches: Vec<RecordBatch>,
    rejects: Vec<Reject>,
}

/// The tables of `dataset`, each file numbered in the order read (its provenance
/// index), with the file names as the manifest writes them (`<table>/<file>`).
fn load(dataset: &Path, tables: &[Table]) -> (BTreeMap<Table, Loaded>, Vec<String>) {
    let mut loaded = BTreeMap::new();
    let mut file_names = Vec::new();
    for &table in tables {
        let mut entry = Loaded {
            table,
            batches: Vec::new(),
            rejects: Vec::new(),
        };
        let dir = dataset.join(table.name());
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        for file in files {
            let name = format!(
                "{}/{}",
                table.name(),
                file.file_name().unwrap().to_str().unwrap()
            );
            let rows = read_csv(&file);
            let (header, body) = rows.split_first().expect("a header");
            let columns: Vec<ArrayRef> = (0..header.len())
                .map(|c| {
                    Arc::new(StringArray::from_iter(
                        body.iter()
                            .map(|r| Some(r[c].as_str()).filter(|v| !v.is_empty())),
                    )) as ArrayRef
                })
                .collect();
            let schema = Schema::new(
                header
                    .iter()
                    .map(|h| Field::new(h, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            );
            let text = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
            let validated = validate_batch(table, &text, file_names.len() as u32, 1)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            entry
                .rejects
                .extend(validated.rejects.into_iter().map(|r| Reject {
                    table,
                    source_file: name.clone(),
                    row_number: Some(r.row_index as u64 + 1),
                    column: r.column.map(str::to_string),
                    code: r.code,
                    reason: r.reason,
                    raw: r.raw,
                }));
            entry.batches.push(validated.batch);
            file_names.push(name);
        }
        loaded.insert(table, entry);
    }
    (loaded, file_names)
}

fn rows<'a>(
    loaded: &'a BTreeMap<Table, Loaded>,
    file_names: &'a [String],
    table: Table,
) -> ValidatedRows<'a> {
    let t = &loaded[&table];
    ValidatedRows::new(t.table, &t.batches, file_names)
}

fn catalog_of(loaded: &BTreeMap<Table, Loaded>, file_names: &[String]) -> (Catalog, Vec<Reject>) {
    let r = |t| rows(loaded, file_names, t);
    build_catalog(&MasterTables {
        customers: r(Table::Customers),
        products: r(Table::Products),
        price_plans: r(Table::PricePlans),
        subscriptions: r(Table::Subscriptions),
        tax_rates: r(Table::TaxRates),
        credit_memos: r(Table::CreditMemos),
        refused_price_plans: &[],
        refused_tax_rates: &[],
    })
    .unwrap()
}

fn decimal(text: &str) -> Decimal {
    text.parse()
        .unwrap_or_else(|e| panic!("`{text}` is not a decimal: {e}"))
}

/// (table, file, row, column, code) of a reject, as `expected/rejects.csv` lists it.
type RejectKey = (String, String, String, String, String);

fn key_of(r: &Reject) -> RejectKey {
    (
        r.table.name().to_string(),
        r.source_file.clone(),
        r.row_number.map(|n| n.to_string()).unwrap_or_default(),
        r.column.clone().unwrap_or_default(),
        r.code.as_str().to_string(),
    )
}

const MASTER: [Table; 6] = [
    Table::Customers,
    Table::Products,
    Table::PricePlans,
    Table::Subscriptions,
    Table::TaxRates,
    Table::CreditMemos,
];

#[test]
fn the_sample_master_data_and_rated_totals_give_the_hand_checked_invoices() {
    let sample = repo().join("data-samples/sample");
    let (loaded, file_names) = load(&sample.join("input"), &MASTER);
    let (catalog, catalog_rejects) = catalog_of(&loaded, &file_names);

    // Rejects of master data: cell problems and rules across rows, exactly those of the
    // hand check (usage is rejected by the pipeline, not here).
    let found: BTreeSet<RejectKey> = loaded
        .values()
        .flat_map(|t| t.rejects.iter())
        .chain(&catalog_rejects)
        .map(key_of)
        .collect();
    let expected: BTreeSet<RejectKey> = read_csv(&sample.join("expected/rejects.csv"))
        .into_iter()
        .skip(1)
        .filter(|r| r[0] != "usage")
        .map(|r| {
            (
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
            )
        })
        .collect();
    assert_eq!(found, expected);

    let usage: BTreeMap<(String, String), UsageTotals> =
        read_csv(&sample.join("expected/rated_usage_totals.csv"))
            .into_iter()
            .skip(1)
            .map(|r| {
                (
                    (r[0].clone(), r[1].clone()),
                    UsageTotals {
                        events: r[2].parse().unwrap(),
                        quantity: decimal(&r[3]),
                        amount: decimal(&r[4]),
                    },
                )
            })
            .collect();
    let windows = catalog.billing_windows(OCTOBER).unwrap();
    let invoicing = build_invoices(&catalog, OCTOBER, &windows, &usage).unwrap();

    let expected = read_csv(&sample.join("expected/invoices.csv"));
    let header = &expected[0];
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let expected: Vec<InvoiceTotals> = expected[1..]
        .iter()
        .map(|r| InvoiceTotals {
            ids: ["invoice_id", "currency", "issue_date", "due_date"].map(|c| r[at(c)].clone()),
            money: ["subtotal", "discount", "credits", "tax", "total"].map(|c| decimal(&r[at(c)])),
        })
        .collect();
    let mut found: Vec<InvoiceTotals> = invoicing
        .invoices
        .iter()
        .map(|i| {
            let c = &i.composed;
            InvoiceTotals {
                ids: [
                    i.invoice_id.clone(),
                    i.currency.clone(),
                    i.issue_date.to_string(),
                    i.due_date.to_string(),
                ],
                money: [c.subtotal, c.discount, c.credits, c.tax, c.total],
            }
        })
        .collect();
    found.sort_by(|a, b| a.ids.cmp(&b.ids));
    assert_eq!(found, expected);

    // Every invoice's lines sum to its total.
    for i in &invoicing.invoices {
        let lines: Decimal = i.composed.lines.iter().map(|l| l.amount).sum();
        assert_eq!(lines, i.composed.total, "{}", i.invoice_id);
    }

    // The manifest's `billed`, per currency, from the hand-checked totals.
    let billed = invoicing.billed_by_currency().unwrap();
    let mut by_currency: BTreeMap<String, Decimal> = BTreeMap::new();
    for i in &expected {
        *by_currency.entry(i.ids[1].clone()).or_default() += i.money[4];
    }
    assert_eq!(billed, by_currency);
    assert_eq!(
        billed.get("USD").copied(),
        Some(decimal("933.18")),
        "{billed:?}"
    );

    // The journal of those invoices: each entry balances, and the receivable it books is
    // what was billed, per currency.
    let entries = journal_entries(&catalog, &invoicing.invoices).unwrap();
    // An invoice of nothing (C015: no line with an amount) books nothing.
    let booked: BTreeSet<&str> = entries.iter().map(|e| e.source_id.as_str()).collect();
    let with_amounts: BTreeSet<&str> = invoicing
        .invoices
        .iter()
        .filter(|i| i.composed.lines.iter().any(|l| !l.amount.is_zero()))
        .map(|i| i.invoice_id.as_str())
        .collect();
    assert_eq!(booked, with_amounts);
    assert_eq!(booked.len(), 20);
    let mut receivable: BTreeMap<String, Decimal> = BTreeMap::new();
    for e in &entries {
        check_balanced(&e.entry_id, &e.postings).unwrap();
        for p in e
            .postings
            .iter()
            .filter(|p| p.account == accounts::RECEIVABLE)
        {
            *receivable.entry(e.currency.clone()).or_default() += p.debit - p.credit;
        }
    }
    assert_eq!(receivable, by_currency);

    // Revenue is accrued on the window's last day and moved to the receivable when the
    // invoice is issued: per invoice, unbilled receivable comes back to zero, and what
    // was accrued is the invoice's subtotal less its discount.
    for i in &invoicing.invoices {
        let of_invoice = entries.iter().filter(|e| e.source_id == i.invoice_id);
        let mut unbilled = Decimal::ZERO;
        let mut accrued = Decimal::ZERO;
        for e in of_invoice {
            for p in e
                .postings
                .iter()
                .filter(|p| p.account == accounts::UNBILLED_RECEIVABLE)
            {
                unbilled += p.debit - p.credit;
                if e.entry_id.starts_with("JE-ACR-") {
                    assert_eq!(e.date, i.window.last_day(), "{}", e.entry_id);
                    accrued += p.debit - p.credit;
                }
            }
        }
        assert_eq!(unbilled, Decimal::ZERO, "{}", i.invoice_id);
        assert_eq!(
            accrued,
            i.composed.subtotal - i.composed.discount,
            "{}",
            i.invoice_id
        );
    }
}

/// An invoice's ids and dates, and its money by value (`0` equals `0.00`):
/// subtotal, discount, credits, tax, total.
#[derive(Debug, PartialEq)]
struct InvoiceTotals {
    ids: [String; 4],
    money: [Decimal; 5],
}

/// An allocation's ids, method and carve rule, and its stated and allocated price.
#[derive(Debug, PartialEq)]
struct Allocation {
    ids: [String; 6],
    money: [Decimal; 2],
}

/// The revenue sample's allocations under `carve_order`, as
/// sorted by their ids.
fn allocations(carve_order: CarveOrder) -> Vec<Allocation> {
    let every: Vec<Table> = Table::every().collect();
    let (loaded, file_names) = load(&repo().join("data-samples/revenue/input"), &every);
    let r = |t| rows(&loaded, &file_names, t);
    let (catalog, _) = catalog_of(&loaded, &file_names);
    let (chart, _) = GlChart::build(r(Table::GlAccounts)).unwrap();
    let (contracts, _) = ContractBook::build(
        &catalog,
        &AccountingTables {
            orders: r(Table::Orders),
            ssp: r(Table::Ssp),
            rev_policies: r(Table::RevPolicies),
            carve_rules: r(Table::CarveRules),
            conditions: r(Table::Conditions),
            modifications: r(Table::Modifications),
        },
        &chart,
    );
    // No usage is rated here: an as-consumed obligation is allocated what was consumed,
    // which `tests/it/revenue.rs` checks through a real bill run; every other line's
    // allocation does not depend on consumption.
    let recognition = contracts
        .recognise(
            &catalog,
            &ConsumedUsage::new(BTreeSet::new()),
            RecognitionOptions {
                period: OCTOBER,
                carve_order,
            },
        )
        .unwrap();
    let mut found: Vec<Allocation> = recognition
        .allocations
        .iter()
        .map(|a| Allocation {
            ids: [
                a.contract_id.clone(),
                a.order_id.clone(),
                a.line_id.clone(),
                a.product_id.clone(),
                a.method.as_str().to_string(),
                a.carve_rule_id.clone().unwrap_or_default(),
            ],
            money: [a.stated_price, a.allocated],
        })
        .collect();
    found.retain(|a| a.ids[4] != "as_consumed");
    found.sort_by(|a, b| a.ids.cmp(&b.ids));
    found
}

fn expected_allocations(file: &str) -> Vec<Allocation> {
    let rows = read_csv(&repo().join("data-samples/revenue/expected").join(file));
    let header = &rows[0];
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut expected: Vec<Allocation> = rows[1..]
        .iter()
        .map(|r| Allocation {
            ids: [
                "contract_id",
                "order_id",
                "line_id",
                "product_id",
                "method",
                "carve_rule_id",
            ]
            .map(|c| r[at(c)].clone()),
            money: ["stated_price", "allocated"].map(|c| decimal(&r[at(c)])),
        })
        .collect();
    expected.retain(|a| a.ids[4] != "as_consumed");
    expected.sort_by(|a, b| a.ids.cmp(&b.ids));
    expected
}

#[test]
fn the_revenue_sample_allocates_as_its_independent_model_in_both_carve_orders() {
    let expected = expected_allocations("revenue_allocations.csv");
    assert_eq!(expected.len(), 8, "{expected:?}");
    assert_eq!(allocations(CarveOrder::AllocateThenCarve), expected);
    let expected = expected_allocations("revenue_allocations_carve_then_allocate.csv");
    assert_eq!(allocations(CarveOrder::CarveThenAllocate), expected);
}
