//! Stage 5b: revenue recognition (ASC 606 / IFRS 15) for contracts booked as orders.
//!
//! Orders are grouped into contracts (`contract_id`); each order line is a performance
//! obligation. A contract's price is allocated to its obligations by standalone selling
//! price, with carves applied before or after the allocation as the run is told
//! ([`CarveOrder`]); each obligation is then recognised month by month by its product's
//! policy: `ratable` by day over the service period, `point_in_time` on the first day of
//! service, `as_consumed` from this run's rated usage. A condition (acceptance, say) holds
//! an obligation's revenue until the month it is satisfied; a modification re-spreads what
//! is left prospectively. The math is `billrun-engine`'s ([`allocate_contract`],
//! [`ratable_schedule`], [`hold_until`]); this stage checks the inputs across rows, gathers
//! each contract's pieces, and lays the results out as tables and journal entries.
//!
//! Bad rows go to `rejects`; a contract that cannot be allocated or scheduled as a whole
//! (no SSP for a line, lines that disagree on customer or currency) has every line rejected
//! with the reason, so nothing is recognised from half a contract.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use billrun_engine::{
    BillingMonth, Carve, CarveOrder, CarveShare, CarveTarget, DateWindow, HeldMonth, Modification,
    MonthAmount, Obligation, RecognitionMethod, allocate_contract, billing_window,
    decimal_from_i128_scaled, hold_until, minor_units, month_start, next_month_start,
    point_in_time_schedule, ratable_schedule, round_money,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{QUANTITY_SCALE, RejectCode, RowRenderer, Table};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::catalog::{Catalog, RowView, rows};
use crate::error::{PipelineError, Result};
use crate::invoice::invoice_id;
use crate::journal::{GlChart, JournalEntry, Posting, accounts, hledger_account, revenue_account};
use crate::load::{LoadedTable, Reject};
use crate::write::{date_array, money_array, quantity_array};

/// The deferred-revenue account when a policy names none.
pub const DEFAULT_DEFERRAL_ACCOUNT: &str = "liabilities:deferred revenue";

/// The validated accounting tables of a run.
#[derive(Debug, Clone, Copy)]
pub struct AccountingTables<'a> {
    pub orders: &'a LoadedTable,
    pub ssp: &'a LoadedTable,
    pub rev_policies: &'a LoadedTable,
    pub carve_rules: &'a LoadedTable,
    pub conditions: &'a LoadedTable,
    pub modifications: &'a LoadedTable,
}

/// Checks a policy's or carve's GL reference against the chart.
fn gl_problem(chart: &GlChart, given: Option<&str>, kind: &str) -> Option<String> {
    given.and_then(|g| chart.check(g, kind).err())
}

/// Where a row came from, to reject it later with its file, row and content.
#[derive(Debug, Clone)]
struct Provenance {
    source_file: String,
    row_number: u64,
    raw: String,
}

impl Provenance {
    fn of(row: &RowView<'_>, file_names: &[String]) -> Self {
        Self {
            source_file: file_names
                .get(row.file_index())
                .cloned()
                .unwrap_or_default(),
            row_number: row.row_number(),
            raw: RowRenderer::new(row.batch).row(row.row),
        }
    }

    fn reject(
        &self,
        table: Table,
        column: Option<&str>,
        code: RejectCode,
        reason: String,
    ) -> Reject {
        Reject {
            table,
            source_file: self.source_file.clone(),
            row_number: Some(self.row_number),
            column: column.map(str::to_string),
            code,
            reason,
            raw: self.raw.clone(),
        }
    }
}

/// How a product's revenue is recognised and booked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    method: RecognitionMethod,
    revenue_account: String,
    deferral_account: String,
}

/// One order line: a performance obligation.
#[derive(Debug, Clone)]
struct OrderLine {
    order_id: String,
    line_id: String,
    contract_id: String,
    customer_id: String,
    product_id: String,
    currency: String,
    quantity: Decimal,
    price: Decimal,
    service_start: NaiveDate,
    service_end: Option<NaiveDate>,
    order_date: Option<NaiveDate>,
    policy: Policy,
    at: Provenance,
}

impl OrderLine {
    fn key(&self) -> (String, String) {
        (self.order_id.clone(), self.line_id.clone())
    }
}

#[derive(Debug, Clone)]
enum CarveTo {
    Product(String),
    Account(String),
}

#[derive(Debug, Clone)]
struct CarveRule {
    rule_id: String,
    contract_id: Option<String>,
    from_product: String,
    to: CarveTo,
    share: CarveShare,
    currency: Option<String>,
}

#[derive(Debug, Clone)]
struct ModificationRow {
    modification_id: String,
    effective: NaiveDate,
    new_end: NaiveDate,
    price_change: Decimal,
}

#[derive(Debug, Clone)]
struct ConditionRow {
    condition_id: String,
    order_id: String,
    line_id: Option<String>,
    satisfied_on: Option<NaiveDate>,
}

/// Contracts and their rules, checked across rows and ready to recognise.
#[derive(Debug, Default)]
pub struct ContractBook {
    contracts: BTreeMap<String, Vec<OrderLine>>,
    /// Unit SSPs per (product, currency), by effective_from.
    ssp: BTreeMap<(String, String), BTreeMap<NaiveDate, Decimal>>,
    carves: Vec<CarveRule>,
    modifications: BTreeMap<(String, String), ModificationRow>,
    conditions: Vec<ConditionRow>,
}

/// The policy of `product_id`: its `rev_policies` row, or the default of its kind
/// (`recurring` ratable, `one_time` point in time, `usage` as consumed).
fn default_method(kind: &str) -> RecognitionMethod {
    match kind {
        "recurring" => RecognitionMethod::Ratable,
        "usage" => RecognitionMethod::AsConsumed,
        _ => RecognitionMethod::PointInTime,
    }
}

/// The hledger name of a deferral account: a name with `:` is kept, a GL number `2400`
/// becomes `liabilities:deferred revenue:2400`.
fn deferral_account(given: Option<&str>) -> String {
    match given.map(hledger_account).filter(|a| !a.is_empty()) {
        Some(account) if account.contains(':') => account,
        Some(account) => format!("{DEFAULT_DEFERRAL_ACCOUNT}:{account}"),
        None => DEFAULT_DEFERRAL_ACCOUNT.to_string(),
    }
}

/// The hledger name of a revenue account given in a policy or carve rule.
fn named_revenue_account(given: &str) -> String {
    let account = hledger_account(given);
    if account.contains(':') {
        account
    } else {
        format!("revenue:{account}")
    }
}

fn money_on_grid(amount: Decimal, currency: &str) -> bool {
    minor_units(currency).is_some_and(|minor| round_money(amount, minor) == amount)
}

impl ContractBook {
    /// Checks the accounting tables across rows and against the catalog. Rows that break
    /// a rule come back as rejects; everything else is kept.
    pub fn build(
        catalog: &Catalog,
        tables: &AccountingTables<'_>,
        chart: &GlChart,
        file_names: &[String],
    ) -> (ContractBook, Vec<Reject>) {
        let mut book = ContractBook::default();
        let mut rejects = Vec::new();

        // rev_policies: one per product.
        let mut policies: BTreeMap<String, Policy> = BTreeMap::new();
        for row in rows(tables.rev_policies) {
            let at = Provenance::of(&row, file_names);
            let product_id = row.req("product_id");
            let Some(product) = catalog.products.get(&product_id) else {
                rejects.push(at.reject(
                    Table::RevPolicies,
                    Some("product_id"),
                    RejectCode::UnknownReference,
                    format!("product `{product_id}` is not in products"),
                ));
                continue;
            };
            if policies.contains_key(&product_id) {
                rejects.push(at.reject(
                    Table::RevPolicies,
                    Some("product_id"),
                    RejectCode::DuplicateKey,
                    format!(
                        "`product_id` `{product_id}` appears more than once; the first row is kept"
                    ),
                ));
                continue;
            }
            let gl = gl_problem(chart, row.text("deferral_account").as_deref(), "liability")
                .map(|why| ("deferral_account", why))
                .or_else(|| {
                    gl_problem(chart, row.text("revenue_account").as_deref(), "revenue")
                        .map(|why| ("revenue_account", why))
                });
            if let Some((column, why)) = gl {
                rejects.push(at.reject(
                    Table::RevPolicies,
                    Some(column),
                    RejectCode::UnknownReference,
                    why,
                ));
                continue;
            }
            let method = RecognitionMethod::parse(&row.req("method"))
                .unwrap_or_else(|| default_method(&product.kind));
            let revenue = row.text("revenue_account").map_or_else(
                || revenue_account(catalog, &product_id),
                |a| named_revenue_account(&a),
            );
            policies.insert(
                product_id,
                Policy {
                    method,
                    revenue_account: revenue,
                    deferral_account: deferral_account(row.text("deferral_account").as_deref()),
                },
            );
        }
        let policy_of = |product_id: &str| -> Policy {
            policies.get(product_id).cloned().unwrap_or_else(|| Policy {
                method: default_method(
                    catalog
                        .products
                        .get(product_id)
                        .map_or("one_time", |p| p.kind.as_str()),
                ),
                revenue_account: revenue_account(catalog, product_id),
                deferral_account: DEFAULT_DEFERRAL_ACCOUNT.to_string(),
            })
        };

        // ssp: per product and currency, effective-dated.
        for row in rows(tables.ssp) {
            let at = Provenance::of(&row, file_names);
            let product_id = row.req("product_id");
            if !catalog.products.contains_key(&product_id) {
                rejects.push(at.reject(
                    Table::Ssp,
                    Some("product_id"),
                    RejectCode::UnknownReference,
                    format!("product `{product_id}` is not in products"),
                ));
                continue;
            }
            let from = row.date("effective_from").unwrap_or_default();
            let versions = book
                .ssp
                .entry((product_id.clone(), row.req("currency")))
                .or_default();
            if versions.contains_key(&from) {
                rejects.push(at.reject(
                    Table::Ssp,
                    Some("effective_from"),
                    RejectCode::DuplicateKey,
                    format!("product `{product_id}` has two SSPs from {from} in this currency; the first row is kept"),
                ));
                continue;
            }
            versions.insert(from, row.decimal("ssp").unwrap_or_default());
        }

        // orders: every line checked on its own, then every contract as a whole.
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let mut contracts: BTreeMap<String, Vec<OrderLine>> = BTreeMap::new();
        for row in rows(tables.orders) {
            let at = Provenance::of(&row, file_names);
            let reject = |column: &str, code: RejectCode, reason: String| {
                at.reject(Table::Orders, Some(column), code, reason)
            };
            let line = OrderLine {
                order_id: row.req("order_id"),
                line_id: row.req("line_id"),
                contract_id: row.req("contract_id"),
                customer_id: row.req("customer_id"),
                product_id: row.req("product_id"),
                currency: row.req("currency"),
                quantity: row.decimal("quantity").unwrap_or_default(),
                price: row.decimal("transaction_price").unwrap_or_default(),
                service_start: row.date("service_start").unwrap_or_default(),
                service_end: row.date("service_end"),
                order_date: row.date("order_date"),
                policy: policy_of(&row.req("product_id")),
                at: at.clone(),
            };
            let problem = if !catalog.customers.contains_key(&line.customer_id) {
                Some(reject(
                    "customer_id",
                    RejectCode::UnknownReference,
                    format!("customer `{}` is not in customers", line.customer_id),
                ))
            } else if !catalog.products.contains_key(&line.product_id) {
                Some(reject(
                    "product_id",
                    RejectCode::UnknownReference,
                    format!("product `{}` is not in products", line.product_id),
                ))
            } else if !money_on_grid(line.price, &line.currency) {
                Some(reject(
                    "transaction_price",
                    RejectCode::TooManyDecimals,
                    format!(
                        "`transaction_price` {} has more decimals than {} allows",
                        line.price, line.currency
                    ),
                ))
            } else if line
                .service_end
                .is_some_and(|end| end <= line.service_start)
            {
                Some(reject(
                    "service_end",
                    RejectCode::OutOfRange,
                    format!(
                        "`service_end` {} is not after `service_start` {} (service_end is exclusive)",
                        line.service_end.unwrap_or_default(),
                        line.service_start
                    ),
                ))
            } else if line.policy.method == RecognitionMethod::Ratable && line.service_end.is_none()
            {
                Some(reject(
                    "service_end",
                    RejectCode::MissingValue,
                    format!(
                        "product `{}` is recognised ratably, so its order lines need a `service_end`",
                        line.product_id
                    ),
                ))
            } else if line.policy.method == RecognitionMethod::AsConsumed && !line.price.is_zero() {
                Some(reject(
                    "transaction_price",
                    RejectCode::InvalidContract,
                    format!(
                        "product `{}` is recognised as consumed: its revenue is its rated usage, so `transaction_price` must be 0, got {}",
                        line.product_id, line.price
                    ),
                ))
            } else if !seen.insert(line.key()) {
                Some(reject(
                    "line_id",
                    RejectCode::DuplicateKey,
                    format!(
                        "order `{}` has line `{}` more than once; the first row is kept",
                        line.order_id, line.line_id
                    ),
                ))
            } else {
                None
            };
            match problem {
                Some(r) => rejects.push(r),
                None => contracts
                    .entry(line.contract_id.clone())
                    .or_default()
                    .push(line),
            }
        }
        for (contract_id, mut lines) in contracts {
            lines.sort_by_key(OrderLine::key);
            let first = &lines[0];
            let mismatch = lines.iter().find_map(|l| {
                if l.customer_id != first.customer_id {
                    Some(format!(
                        "its lines name customers `{}` and `{}`",
                        first.customer_id, l.customer_id
                    ))
                } else if l.currency != first.currency {
                    Some(format!(
                        "its lines are in {} and {}",
                        first.currency, l.currency
                    ))
                } else {
                    None
                }
            });
            match mismatch {
                Some(why) => reject_contract(&mut rejects, &contract_id, &lines, &why),
                None => {
                    book.contracts.insert(contract_id, lines);
                }
            }
        }
        let lines: BTreeMap<(String, String), &OrderLine> = book
            .contracts
            .values()
            .flatten()
            .map(|l| (l.key(), l))
            .collect();
        let orders: BTreeSet<&str> = lines.keys().map(|(o, _)| o.as_str()).collect();

        // modifications: of a known ratable line, one each.
        let mut modifications = BTreeMap::new();
        for row in rows(tables.modifications) {
            let at = Provenance::of(&row, file_names);
            let key = (row.req("order_id"), row.req("line_id"));
            let modification = ModificationRow {
                modification_id: row.req("modification_id"),
                effective: row.date("effective_date").unwrap_or_default(),
                new_end: row.date("new_service_end").unwrap_or_default(),
                price_change: row.decimal("price_change").unwrap_or_default(),
            };
            let reject = |column: &str, code: RejectCode, reason: String| {
                at.reject(Table::Modifications, Some(column), code, reason)
            };
            let problem = match lines.get(&key) {
                None => Some(reject(
                    "line_id",
                    RejectCode::UnknownReference,
                    format!(
                        "order `{}` line `{}` is not an accepted order line",
                        key.0, key.1
                    ),
                )),
                Some(line) if line.policy.method != RecognitionMethod::Ratable => Some(reject(
                    "line_id",
                    RejectCode::InvalidContract,
                    format!(
                        "only ratable obligations can be modified; `{}` is recognised {}",
                        line.product_id,
                        line.policy.method.as_str()
                    ),
                )),
                Some(line) if !money_on_grid(modification.price_change, &line.currency) => {
                    Some(reject(
                        "price_change",
                        RejectCode::TooManyDecimals,
                        format!(
                            "`price_change` {} has more decimals than {} allows",
                            modification.price_change, line.currency
                        ),
                    ))
                }
                Some(line)
                    if modification.effective < line.service_start
                        || line
                            .service_end
                            .is_some_and(|end| modification.effective > end) =>
                {
                    Some(reject(
                        "effective_date",
                        RejectCode::OutOfRange,
                        format!(
                            "`effective_date` {} is outside the line's service {}..{}",
                            modification.effective,
                            line.service_start,
                            line.service_end.unwrap_or_default()
                        ),
                    ))
                }
                Some(_) if modification.new_end < modification.effective => Some(reject(
                    "new_service_end",
                    RejectCode::OutOfRange,
                    format!(
                        "`new_service_end` {} is before `effective_date` {} (a cancellation ends service on the effective date)",
                        modification.new_end, modification.effective
                    ),
                )),
                Some(_) if modifications.contains_key(&key) => Some(reject(
                    "modification_id",
                    RejectCode::InvalidContract,
                    format!(
                        "order `{}` line `{}` already has a modification; one per line is supported, so this one is not applied",
                        key.0, key.1
                    ),
                )),
                Some(_) => None,
            };
            match problem {
                Some(r) => rejects.push(r),
                None => {
                    modifications.insert(key, modification);
                }
            }
        }
        book.modifications = modifications;

        // conditions: on a known order (and line), holding no as-consumed line.
        for row in rows(tables.conditions) {
            let at = Provenance::of(&row, file_names);
            let condition = ConditionRow {
                condition_id: row.req("condition_id"),
                order_id: row.req("order_id"),
                line_id: row.text("line_id"),
                satisfied_on: row.date("satisfied_on"),
            };
            let known = match &condition.line_id {
                Some(line_id) => lines.contains_key(&(condition.order_id.clone(), line_id.clone())),
                None => orders.contains(condition.order_id.as_str()),
            };
            // As-consumed revenue is booked by the invoice that bills the usage, so no
            // condition can hold it: refuse the row rather than ignore it.
            let as_consumed = lines.values().find(|l| {
                l.order_id == condition.order_id
                    && condition.line_id.as_ref().is_none_or(|id| *id == l.line_id)
                    && l.policy.method == RecognitionMethod::AsConsumed
            });
            if let (true, Some(line)) = (known, as_consumed) {
                let reason = match &condition.line_id {
                    Some(_) => format!(
                        "order `{}` line `{}` (`{}`) is recognised as consumed, when its usage is invoiced, so condition `{}` cannot hold it",
                        line.order_id, line.line_id, line.product_id, condition.condition_id
                    ),
                    None => format!(
                        "order `{}` line `{}` (`{}`) is recognised as consumed, when its usage is invoiced, so condition `{}` cannot hold the whole order; give the `line_id` of each line it holds",
                        line.order_id, line.line_id, line.product_id, condition.condition_id
                    ),
                };
                rejects.push(at.reject(
                    Table::Conditions,
                    Some("line_id"),
                    RejectCode::InvalidContract,
                    reason,
                ));
            } else if known {
                book.conditions.push(condition);
            } else {
                rejects.push(at.reject(
                    Table::Conditions,
                    Some(if condition.line_id.is_some() {
                        "line_id"
                    } else {
                        "order_id"
                    }),
                    RejectCode::UnknownReference,
                    format!(
                        "order `{}`{} is not an accepted order",
                        condition.order_id,
                        condition
                            .line_id
                            .as_ref()
                            .map(|l| format!(" line `{l}`"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }

        // carve_rules: one target, one share, known products and contract.
        let mut carves = Vec::new();
        for row in rows(tables.carve_rules) {
            let at = Provenance::of(&row, file_names);
            let reject = |column: &str, code: RejectCode, reason: &str| {
                at.reject(Table::CarveRules, Some(column), code, reason.to_string())
            };
            let to = match (row.text("to_product_id"), row.text("to_account")) {
                (Some(p), None) => Ok(CarveTo::Product(p)),
                (None, Some(a)) if chart.check(&a, "revenue").is_err() => Err(reject(
                    "to_account",
                    RejectCode::UnknownReference,
                    &chart.check(&a, "revenue").err().unwrap_or_default(),
                )),
                (None, Some(a)) => Ok(CarveTo::Account(named_revenue_account(&a))),
                _ => Err(reject(
                    "to_product_id",
                    RejectCode::InvalidContract,
                    "give exactly one of `to_product_id` and `to_account`",
                )),
            };
            let share = match (row.decimal("percent"), row.decimal("amount")) {
                (Some(p), None) => Ok(CarveShare::Percent(p)),
                (None, Some(a)) if row.text("currency").is_some() => Ok(CarveShare::Amount(a)),
                (None, Some(_)) => Err(reject(
                    "currency",
                    RejectCode::MissingValue,
                    "a carve of a fixed `amount` needs its `currency`",
                )),
                _ => Err(reject(
                    "percent",
                    RejectCode::InvalidContract,
                    "give exactly one of `percent` and `amount`",
                )),
            };
            let rule = to.and_then(|to| {
                share.map(|share| CarveRule {
                    rule_id: row.req("rule_id"),
                    contract_id: row.text("contract_id"),
                    from_product: row.req("from_product_id"),
                    to,
                    share,
                    currency: row.text("currency"),
                })
            });
            let rule = rule.and_then(|rule| {
                if !catalog.products.contains_key(&rule.from_product) {
                    return Err(reject(
                        "from_product_id",
                        RejectCode::UnknownReference,
                        &format!("product `{}` is not in products", rule.from_product),
                    ));
                }
                if let CarveTo::Product(p) = &rule.to
                    && !catalog.products.contains_key(p)
                {
                    return Err(reject(
                        "to_product_id",
                        RejectCode::UnknownReference,
                        &format!("product `{p}` is not in products"),
                    ));
                }
                if let (CarveShare::Amount(a), Some(c)) = (rule.share, &rule.currency)
                    && !money_on_grid(a, c)
                {
                    return Err(reject(
                        "amount",
                        RejectCode::TooManyDecimals,
                        &format!("`amount` {a} has more decimals than {c} allows"),
                    ));
                }
                if let Some(contract_id) = &rule.contract_id {
                    let Some(lines) = book.contracts.get(contract_id) else {
                        return Err(reject(
                            "contract_id",
                            RejectCode::UnknownReference,
                            &format!("contract `{contract_id}` has no accepted order lines"),
                        ));
                    };
                    let has = |p: &str| lines.iter().any(|l| l.product_id == p);
                    let missing = if !has(&rule.from_product) {
                        Some(rule.from_product.clone())
                    } else if let CarveTo::Product(p) = &rule.to {
                        (!has(p)).then(|| p.clone())
                    } else {
                        None
                    };
                    if let Some(p) = missing {
                        return Err(reject(
                            "contract_id",
                            RejectCode::InvalidContract,
                            &format!("contract `{contract_id}` has no line of product `{p}`"),
                        ));
                    }
                }
                Ok(rule)
            });
            match rule {
                Ok(rule) => carves.push(rule),
                Err(r) => rejects.push(r),
            }
        }
        carves.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        book.carves = carves;
        (book, rejects)
    }

    /// The (customer, product, currency) whose rated usage is recognised as consumed.
    pub fn consumed_keys(&self) -> BTreeSet<(String, String, String)> {
        self.contracts
            .values()
            .flatten()
            .filter(|l| l.policy.method == RecognitionMethod::AsConsumed)
            .map(|l| {
                (
                    l.customer_id.clone(),
                    l.product_id.clone(),
                    l.currency.clone(),
                )
            })
            .collect()
    }

    fn unit_ssp(&self, catalog: &Catalog, line: &OrderLine, on: NaiveDate) -> Option<Decimal> {
        self.ssp
            .get(&(line.product_id.clone(), line.currency.clone()))
            .and_then(|versions| versions.range(..=on).next_back().map(|(_, v)| *v))
            .or_else(|| catalog.products.get(&line.product_id).and_then(|p| p.ssp))
    }
}

fn reject_contract(rejects: &mut Vec<Reject>, contract_id: &str, lines: &[OrderLine], why: &str) {
    for line in lines {
        rejects.push(line.at.reject(
            Table::Orders,
            Some("contract_id"),
            RejectCode::InvalidContract,
            format!("contract `{contract_id}` is not recognised: {why}"),
        ));
    }
}

/// Rated usage of the (customer, product, currency) keys recognised as consumed, summed
/// per day at full precision while rated usage streams to disk.
#[derive(Debug, Default)]
pub struct ConsumedUsage {
    keys: BTreeSet<(String, String, String)>,
    by_day: BTreeMap<(String, String, String), BTreeMap<NaiveDate, i128>>,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl ConsumedUsage {
    /// Collects usage of `keys` only.
    pub fn new(keys: BTreeSet<(String, String, String)>) -> Self {
        Self {
            keys,
            by_day: BTreeMap::new(),
        }
    }

    /// Adds a batch of rated usage (columns customer_id, product_id, currency, ts, amount).
    ///
    /// # Errors
    /// A batch without those columns, or sums that overflow.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::Internal(format!("rated usage lacks {name}")))
        };
        let customers = col("customer_id")?.as_string::<i32>();
        let products = col("product_id")?.as_string::<i32>();
        let currencies = col("currency")?.as_string::<i32>();
        let ts = col("ts")?.as_primitive::<TimestampMicrosecondType>();
        let amounts = col("amount")?.as_primitive::<Decimal128Type>();
        let mut key: Option<(String, String, String)> = None;
        let mut wanted = false;
        for i in 0..batch.num_rows() {
            let (c, p, cur) = (customers.value(i), products.value(i), currencies.value(i));
            if key
                .as_ref()
                .is_none_or(|(kc, kp, kcur)| kc != c || kp != p || kcur != cur)
            {
                let k = (c.to_string(), p.to_string(), cur.to_string());
                wanted = self.keys.contains(&k);
                key = Some(k);
            }
            if !wanted {
                continue;
            }
            let day = NaiveDate::from_num_days_from_ce_opt(
                i32::try_from(ts.value(i).div_euclid(MICROS_PER_DAY)).unwrap_or(0) + 719_163,
            )
            .ok_or_else(|| PipelineError::Internal("rated usage ts out of range".into()))?;
            let total = self
                .by_day
                .entry(key.clone().unwrap_or_default())
                .or_default()
                .entry(day)
                .or_default();
            *total = total
                .checked_add(amounts.value(i))
                .ok_or_else(|| PipelineError::Internal("consumed usage overflows".into()))?;
        }
        debug_assert_eq!(amounts.null_count(), 0);
        Ok(())
    }

    /// Σ usage of `key` per calendar month over `[start, end)`, at full precision.
    fn by_month(
        &self,
        key: &(String, String, String),
        start: NaiveDate,
        end: Option<NaiveDate>,
    ) -> Result<BTreeMap<NaiveDate, Decimal>> {
        let mut out: BTreeMap<NaiveDate, i128> = BTreeMap::new();
        if let Some(days) = self.by_day.get(key) {
            for (day, amount) in days.range(start..) {
                if end.is_some_and(|end| *day >= end) {
                    break;
                }
                *out.entry(month_start(*day)).or_default() += amount;
            }
        }
        out.into_iter()
            .map(|(m, a)| Ok((m, decimal_from_i128_scaled(a, QUANTITY_SCALE as u32)?)))
            .collect()
    }
}

/// One row of `revenue_allocations`.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationRow {
    pub contract_id: String,
    pub order_id: String,
    pub line_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub currency: String,
    pub method: RecognitionMethod,
    pub stated_price: Decimal,
    pub ssp: Decimal,
    pub allocated: Decimal,
    pub revenue_account: String,
    pub deferral_account: Option<String>,
    pub carve_rule_id: Option<String>,
}

/// Whether a schedule month is recognised as of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScheduleStatus {
    Recognized,
    Deferred,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Recognized => "recognized",
            ScheduleStatus::Deferred => "deferred",
        }
    }
}

/// One row of `revenue_schedule`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub invoice_id: Option<String>,
    pub order_id: String,
    pub line_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub month: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub status: ScheduleStatus,
    pub contract_id: String,
    pub method: RecognitionMethod,
    pub revenue_account: String,
    pub deferral_account: Option<String>,
    pub condition_id: Option<String>,
    /// Held by an open condition.
    pub held: bool,
    /// The month the contract was billed (the waterfall's row).
    pub booked_month: NaiveDate,
}

/// One row of `contract_billings`, with the deferral credits its journal entry makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractBilling {
    pub billing_id: String,
    pub contract_id: String,
    pub customer_id: String,
    pub currency: String,
    pub billed_on: NaiveDate,
    pub amount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub modification_id: Option<String>,
    /// Σ credited per deferral account; adds up to `amount`.
    pub deferred: BTreeMap<String, Decimal>,
}

/// What revenue recognition found.
#[derive(Debug, Default)]
pub struct Recognition {
    pub allocations: Vec<AllocationRow>,
    pub schedule: Vec<ScheduleRow>,
    pub billings: Vec<ContractBilling>,
    pub rejects: Vec<Reject>,
    /// The first day of the run's calendar month.
    pub month: Option<NaiveDate>,
}

/// What recognition is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RecognitionOptions {
    pub period: BillingMonth,
    pub carve_order: CarveOrder,
}

/// A piece of a contract recognised on its own: an obligation's allocation, or an amount
/// carved from it to an account.
struct Piece<'a> {
    line: &'a OrderLine,
    amount: Decimal,
    revenue_account: String,
    carve_rule_id: Option<String>,
    ssp: Decimal,
}

impl ContractBook {
    /// Allocates, carves and schedules every contract as of the end of the run's calendar
    /// month.
    ///
    /// # Errors
    /// [`PipelineError::NoTaxRate`] for a contract billed to a customer whose region has
    /// no rate on the billing date; overflow.
    pub fn recognise(
        &self,
        catalog: &Catalog,
        consumed: &ConsumedUsage,
        options: RecognitionOptions,
    ) -> Result<Recognition> {
        let calendar = billing_window(options.period, 1)?;
        let run_month = calendar.start;
        let as_of = calendar.last_day();
        let mut out = Recognition {
            month: Some(run_month),
            ..Recognition::default()
        };
        for (contract_id, lines) in &self.contracts {
            match self.recognise_contract(
                catalog,
                consumed,
                options,
                contract_id,
                lines,
                run_month,
                as_of,
            ) {
                Ok(outcome) => {
                    out.allocations.extend(outcome.allocations);
                    out.schedule.extend(outcome.schedule);
                    out.billings.extend(outcome.billings);
                }
                Err(ContractError::Reject(why)) => {
                    reject_contract(&mut out.rejects, contract_id, lines, &why);
                }
                Err(ContractError::Fatal(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn recognise_contract(
        &self,
        catalog: &Catalog,
        consumed: &ConsumedUsage,
        options: RecognitionOptions,
        contract_id: &str,
        lines: &[OrderLine],
        run_month: NaiveDate,
        as_of: NaiveDate,
    ) -> std::result::Result<ContractOutcome, ContractError> {
        let first = &lines[0];
        let (customer_id, currency) = (first.customer_id.as_str(), first.currency.as_str());
        let minor = minor_units(currency)
            .ok_or_else(|| ContractError::Reject(format!("{currency} has no minor unit")))?;
        let billed_on = lines
            .iter()
            .map(|l| l.order_date.unwrap_or(l.service_start))
            .min()
            .unwrap_or(first.service_start);
        let booked_month = month_start(billed_on);

        // Allocation over the obligations with a fixed price.
        let fixed: Vec<&OrderLine> = lines
            .iter()
            .filter(|l| l.policy.method != RecognitionMethod::AsConsumed)
            .collect();
        let mut ssps = Vec::with_capacity(fixed.len());
        for line in &fixed {
            let unit = self.unit_ssp(catalog, line, billed_on).ok_or_else(|| {
                ContractError::Reject(format!(
                    "no SSP for product `{}` in {currency} on {billed_on} (add it to ssp or products.ssp)",
                    line.product_id
                ))
            })?;
            ssps.push(
                unit.checked_mul(line.quantity)
                    .ok_or(billrun_engine::EngineError::Overflow { what: "line SSP" })?,
            );
        }
        let mut carves = Vec::new();
        let mut carve_ids = Vec::new();
        for rule in &self.carves {
            if rule
                .contract_id
                .as_deref()
                .is_some_and(|c| c != contract_id)
                || rule.currency.as_deref().is_some_and(|c| c != currency)
            {
                continue;
            }
            let Some(from) = fixed.iter().position(|l| l.product_id == rule.from_product) else {
                continue;
            };
            let to = match &rule.to {
                CarveTo::Account(a) => CarveTarget::Account(a.clone()),
                CarveTo::Product(p) => match fixed.iter().position(|l| &l.product_id == p) {
                    Some(to) => CarveTarget::Obligation(to),
                    None => continue,
                },
            };
            carves.push(Carve {
                from,
                to,
                share: rule.share,
            });
            carve_ids.push(rule.rule_id.clone());
        }
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        if !fixed.is_empty() {
            let obligations: Vec<Obligation> = fixed
                .iter()
                .zip(&ssps)
                .map(|(l, &ssp)| Obligation {
                    price: l.price,
                    ssp,
                })
                .collect();
            let allocation = allocate_contract(&obligations, &carves, options.carve_order, minor)
                .map_err(|e| ContractError::Reject(e.to_string()))?;
            for ((line, amount), ssp) in fixed.iter().zip(allocation.allocated).zip(&ssps) {
                pieces.push(Piece {
                    line,
                    amount,
                    revenue_account: line.policy.revenue_account.clone(),
                    carve_rule_id: None,
                    ssp: *ssp,
                });
            }
            // Carves to accounts, in carve order; the rule is the i-th applied carve.
            let mut account_carves = carves
                .iter()
                .zip(&carve_ids)
                .filter(|(c, _)| matches!(c.to, CarveTarget::Account(_)));
            for carved in allocation.carved_to_accounts {
                let rule_id = account_carves.next().map(|(_, id)| id.clone());
                pieces.push(Piece {
                    line: fixed[carved.from],
                    amount: carved.amount,
                    revenue_account: carved.account,
                    carve_rule_id: rule_id,
                    ssp: Decimal::ZERO,
                });
            }
        }

        let mut allocations = Vec::new();
        let mut schedule = Vec::new();
        let mut billings = Vec::new();
        let status = |month: NaiveDate, held: bool| {
            if !held && month <= run_month {
                ScheduleStatus::Recognized
            } else {
                ScheduleStatus::Deferred
            }
        };
        for piece in &pieces {
            let line = piece.line;
            let modification = self.modifications.get(&line.key());
            let months: Vec<MonthAmount> = match line.policy.method {
                RecognitionMethod::Ratable => {
                    let service = DateWindow {
                        start: line.service_start,
                        end: line.service_end.unwrap_or(line.service_start),
                    };
                    let change = modification.map(|m| Modification {
                        effective: m.effective,
                        new_end: m.new_end,
                        // Only the obligation's own piece is re-priced; carved pieces
                        // follow the new service period.
                        price_change: if piece.carve_rule_id.is_none() {
                            m.price_change
                        } else {
                            Decimal::ZERO
                        },
                    });
                    ratable_schedule(piece.amount, service, change.as_ref(), minor)
                        .map_err(|e| ContractError::Reject(e.to_string()))?
                }
                RecognitionMethod::PointInTime => {
                    point_in_time_schedule(piece.amount, line.service_start)
                }
                RecognitionMethod::AsConsumed => unreachable!("as-consumed lines are not pieces"),
            };
            let (condition_id, satisfied_on) = self.condition_of(line, as_of);
            let held = if condition_id.is_some() {
                hold_until(&months, satisfied_on)?
            } else {
                months
                    .iter()
                    .map(|m| HeldMonth {
                        month: m.month,
                        amount: m.amount,
                        held: false,
                    })
                    .collect()
            };
            for m in held {
                schedule.push(ScheduleRow {
                    invoice_id: None,
                    order_id: line.order_id.clone(),
                    line_id: line.line_id.clone(),
                    customer_id: customer_id.to_string(),
                    product_id: line.product_id.clone(),
                    month: m.month,
                    amount: m.amount,
                    currency: currency.to_string(),
                    status: status(m.month, m.held),
                    contract_id: contract_id.to_string(),
                    method: line.policy.method,
                    revenue_account: piece.revenue_account.clone(),
                    deferral_account: Some(line.policy.deferral_account.clone()),
                    condition_id: condition_id.clone(),
                    held: m.held,
                    booked_month,
                });
            }
            allocations.push(AllocationRow {
                contract_id: contract_id.to_string(),
                order_id: line.order_id.clone(),
                line_id: line.line_id.clone(),
                customer_id: customer_id.to_string(),
                product_id: line.product_id.clone(),
                currency: currency.to_string(),
                method: line.policy.method,
                stated_price: if piece.carve_rule_id.is_none() {
                    line.price
                } else {
                    Decimal::ZERO
                },
                ssp: piece.ssp,
                allocated: piece.amount,
                revenue_account: piece.revenue_account.clone(),
                deferral_account: Some(line.policy.deferral_account.clone()),
                carve_rule_id: piece.carve_rule_id.clone(),
            });
        }

        // As consumed: this run's rated usage, by month, rounded once per month.
        let invoice = invoice_id(
            BillingMonth {
                year: chrono::Datelike::year(&run_month),
                month: chrono::Datelike::month(&run_month),
            },
            customer_id,
            currency,
        );
        for line in lines
            .iter()
            .filter(|l| l.policy.method == RecognitionMethod::AsConsumed)
        {
            let key = (
                line.customer_id.clone(),
                line.product_id.clone(),
                line.currency.clone(),
            );
            let mut total = Decimal::ZERO;
            for (month, amount) in consumed.by_month(&key, line.service_start, line.service_end)? {
                let amount = round_money(amount, minor);
                total += amount;
                schedule.push(ScheduleRow {
                    invoice_id: Some(invoice.clone()),
                    order_id: line.order_id.clone(),
                    line_id: line.line_id.clone(),
                    customer_id: customer_id.to_string(),
                    product_id: line.product_id.clone(),
                    month,
                    amount,
                    currency: currency.to_string(),
                    status: ScheduleStatus::Recognized,
                    contract_id: contract_id.to_string(),
                    method: RecognitionMethod::AsConsumed,
                    revenue_account: line.policy.revenue_account.clone(),
                    deferral_account: None,
                    condition_id: None,
                    held: false,
                    booked_month: month,
                });
            }
            allocations.push(AllocationRow {
                contract_id: contract_id.to_string(),
                order_id: line.order_id.clone(),
                line_id: line.line_id.clone(),
                customer_id: customer_id.to_string(),
                product_id: line.product_id.clone(),
                currency: currency.to_string(),
                method: RecognitionMethod::AsConsumed,
                stated_price: Decimal::ZERO,
                ssp: Decimal::ZERO,
                allocated: total,
                revenue_account: line.policy.revenue_account.clone(),
                deferral_account: None,
                carve_rule_id: None,
            });
        }

        // Billing: the contract on its order date, each price change on its date.
        let tax_rate = |on: NaiveDate| -> std::result::Result<Decimal, ContractError> {
            let customer = catalog.customers.get(customer_id);
            match customer.and_then(|c| c.tax_region.as_deref()) {
                None => Ok(Decimal::ZERO),
                Some(region) => catalog.tax_rate(region, on).ok_or_else(|| {
                    ContractError::Fatal(PipelineError::NoTaxRate {
                        customer_id: customer_id.to_string(),
                        tax_region: region.to_string(),
                        date: on,
                    })
                }),
            }
        };
        let bill = |billing_id: String,
                    on: NaiveDate,
                    deferred: BTreeMap<String, Decimal>,
                    modification_id: Option<String>|
         -> std::result::Result<ContractBilling, ContractError> {
            let amount: Decimal = deferred.values().copied().sum();
            let tax = round_money(amount * tax_rate(on)?, minor);
            Ok(ContractBilling {
                billing_id,
                contract_id: contract_id.to_string(),
                customer_id: customer_id.to_string(),
                currency: currency.to_string(),
                billed_on: on,
                amount: round_money(amount, minor),
                tax,
                total: round_money(amount + tax, minor),
                modification_id,
                deferred,
            })
        };
        if !pieces.is_empty() {
            let mut deferred: BTreeMap<String, Decimal> = BTreeMap::new();
            for piece in &pieces {
                *deferred
                    .entry(piece.line.policy.deferral_account.clone())
                    .or_default() += piece.amount;
            }
            billings.push(bill(
                format!("CB-{contract_id}"),
                billed_on,
                deferred,
                None,
            )?);
        }
        for line in &fixed {
            if let Some(m) = self.modifications.get(&line.key())
                && !m.price_change.is_zero()
            {
                let deferred =
                    BTreeMap::from([(line.policy.deferral_account.clone(), m.price_change)]);
                billings.push(bill(
                    format!("CB-{}", m.modification_id),
                    m.effective,
                    deferred,
                    Some(m.modification_id.clone()),
                )?);
            }
        }
        Ok(ContractOutcome {
            allocations,
            schedule,
            billings,
        })
    }

    /// The condition holding `line`, if any, and when it was satisfied (as of `as_of`):
    /// with several, revenue is released when the last one is satisfied.
    fn condition_of(
        &self,
        line: &OrderLine,
        as_of: NaiveDate,
    ) -> (Option<String>, Option<NaiveDate>) {
        let applying: Vec<&ConditionRow> = self
            .conditions
            .iter()
            .filter(|c| {
                c.order_id == line.order_id && c.line_id.as_ref().is_none_or(|l| *l == line.line_id)
            })
            .collect();
        if applying.is_empty() {
            return (None, None);
        }
        let open = applying
            .iter()
            .find(|c| c.satisfied_on.is_none_or(|d| d > as_of));
        match open {
            Some(c) => (Some(c.condition_id.clone()), None),
            None => {
                let last = applying
                    .iter()
                    .max_by_key(|c| (c.satisfied_on, c.condition_id.clone()))
                    .copied();
                (
                    last.map(|c| c.condition_id.clone()),
                    last.and_then(|c| c.satisfied_on),
                )
            }
        }
    }
}

/// What one contract adds to the run's recognition.
struct ContractOutcome {
    allocations: Vec<AllocationRow>,
    schedule: Vec<ScheduleRow>,
    billings: Vec<ContractBilling>,
}

enum ContractError {
    /// The contract cannot be recognised; its lines are rejected with this reason.
    Reject(String),
    /// The run cannot go on.
    Fatal(PipelineError),
}

impl From<billrun_engine::EngineError> for ContractError {
    fn from(e: billrun_engine::EngineError) -> Self {
        ContractError::Fatal(e.into())
    }
}

impl From<PipelineError> for ContractError {
    fn from(e: PipelineError) -> Self {
        ContractError::Fatal(e)
    }
}

/// One row of the deferred-revenue roll-forward.
#[derive(Debug, Clone, PartialEq)]
pub struct RollForwardRow {
    pub month: NaiveDate,
    pub currency: String,
    pub account: String,
    pub opening: Decimal,
    pub billed: Decimal,
    pub recognised: Decimal,
    pub closing: Decimal,
}

/// One row of the revenue waterfall.
#[derive(Debug, Clone, PartialEq)]
pub struct WaterfallRow {
    pub booked_month: NaiveDate,
    pub recognition_month: NaiveDate,
    pub currency: String,
    pub amount: Decimal,
    pub status: ScheduleStatus,
}

impl Recognition {
    /// Deferred revenue per month, currency and account, from the first month anything
    /// was billed or recognised to the run's month: opening + billed − recognised =
    /// closing. Held revenue stays deferred; as-consumed revenue never was.
    pub fn roll_forward(&self) -> Result<Vec<RollForwardRow>> {
        let Some(run_month) = self.month else {
            return Ok(Vec::new());
        };
        let mut moves: BTreeMap<(String, String), BTreeMap<NaiveDate, (Decimal, Decimal)>> =
            BTreeMap::new();
        for b in &self.billings {
            let month = month_start(b.billed_on);
            for (account, amount) in &b.deferred {
                let m = moves
                    .entry((b.currency.clone(), account.clone()))
                    .or_default()
                    .entry(month)
                    .or_default();
                m.0 += amount;
            }
        }
        for row in &self.schedule {
            let Some(account) = &row.deferral_account else {
                continue;
            };
            if row.held {
                continue;
            }
            let m = moves
                .entry((row.currency.clone(), account.clone()))
                .or_default()
                .entry(row.month)
                .or_default();
            m.1 += row.amount;
        }
        let mut out = Vec::new();
        for ((currency, account), months) in moves {
            let Some(first) = months.keys().next().copied() else {
                continue;
            };
            let minor = minor_units(&currency).unwrap_or(2);
            let mut month = first;
            let mut closing = Decimal::ZERO;
            while month <= run_month {
                let (billed, recognised) = months.get(&month).copied().unwrap_or_default();
                let opening = closing;
                closing = opening + billed - recognised;
                out.push(RollForwardRow {
                    month,
                    currency: currency.clone(),
                    account: account.clone(),
                    opening: round_money(opening, minor),
                    billed: round_money(billed, minor),
                    recognised: round_money(recognised, minor),
                    closing: round_money(closing, minor),
                });
                month = next_month_start(month)?;
            }
        }
        out.sort_by(|a, b| {
            (a.month, &a.currency, &a.account).cmp(&(b.month, &b.currency, &b.account))
        });
        Ok(out)
    }

    /// Revenue of contracts by month booked (billed) and month recognised, split by
    /// status. As-consumed revenue is not booked in advance and is left out.
    pub fn waterfall(&self) -> Vec<WaterfallRow> {
        let mut sums: BTreeMap<(NaiveDate, NaiveDate, String, ScheduleStatus), Decimal> =
            BTreeMap::new();
        for row in self
            .schedule
            .iter()
            .filter(|r| r.deferral_account.is_some())
        {
            *sums
                .entry((
                    row.booked_month,
                    row.month,
                    row.currency.clone(),
                    row.status,
                ))
                .or_default() += row.amount;
        }
        sums.into_iter()
            .map(
                |((booked_month, recognition_month, currency, status), amount)| WaterfallRow {
                    booked_month,
                    recognition_month,
                    currency,
                    amount,
                    status,
                },
            )
            .collect()
    }

    /// The run's journal entries for contracts: an opening balance of deferred revenue
    /// per currency, each billing dated in the run's month, and one recognition entry per
    /// contract dated on the month's last day. Each entry balances.
    ///
    /// # Errors
    /// An entry that does not balance (a bug).
    pub fn journal_entries(&self) -> Result<Vec<JournalEntry>> {
        let Some(run_month) = self.month else {
            return Ok(Vec::new());
        };
        let next = next_month_start(run_month)?;
        let month_end = next.pred_opt().unwrap_or(run_month);
        let in_month = |d: NaiveDate| run_month <= d && d < next;
        let yyyymm = run_month.format("%Y%m");
        let mut entries = Vec::new();

        let mut opening: BTreeMap<String, Vec<(String, Decimal)>> = BTreeMap::new();
        for row in self.roll_forward()? {
            if row.month == run_month && !row.opening.is_zero() {
                opening
                    .entry(row.currency.clone())
                    .or_default()
                    .push((row.account.clone(), row.opening));
            }
        }
        for (currency, balances) in opening {
            let mut e = EntryBuilder::default();
            for (account, amount) in balances {
                e.credit(&account, amount);
                e.debit(accounts::OPENING_BALANCES, amount);
            }
            entries.push(e.finish(
                format!("JE-OPEN-{yyyymm}-{currency}"),
                run_month,
                &currency,
                format!("OPEN-{yyyymm}"),
                format!(
                    "deferred revenue brought forward to {}",
                    run_month.format("%Y-%m")
                ),
            )?);
        }
        for b in self.billings.iter().filter(|b| in_month(b.billed_on)) {
            let mut e = EntryBuilder::default();
            e.debit(accounts::RECEIVABLE, b.total);
            for (account, amount) in &b.deferred {
                e.credit(account, *amount);
            }
            e.credit(accounts::TAX_PAYABLE, b.tax);
            entries.push(e.finish(
                format!("JE-{}", b.billing_id),
                b.billed_on,
                &b.currency,
                b.billing_id.clone(),
                match &b.modification_id {
                    Some(m) => format!("contract {} modified ({m})", b.contract_id),
                    None => format!("contract {} billed to {}", b.contract_id, b.customer_id),
                },
            )?);
        }
        let mut by_contract: BTreeMap<(&str, &str), EntryBuilder> = BTreeMap::new();
        for row in &self.schedule {
            let Some(deferral) = &row.deferral_account else {
                continue;
            };
            if row.month != run_month || row.held {
                continue;
            }
            let e = by_contract
                .entry((row.contract_id.as_str(), row.currency.as_str()))
                .or_default();
            e.debit(deferral, row.amount);
            e.credit(&row.revenue_account, row.amount);
        }
        for ((contract_id, currency), e) in by_contract {
            entries.push(e.finish(
                format!("JE-REV-{yyyymm}-{contract_id}"),
                month_end,
                currency,
                contract_id.to_string(),
                format!(
                    "revenue of contract {contract_id} recognised in {}",
                    run_month.format("%Y-%m")
                ),
            )?);
        }
        entries.retain(|e| !e.postings.is_empty());
        Ok(entries)
    }
}

/// Builds a journal entry from signed movements: debits positive, credits negative,
/// netted per account (in first-posted order) and split into debit and credit columns.
#[derive(Debug, Default)]
pub(crate) struct EntryBuilder {
    net: Vec<(String, Decimal)>,
}

impl EntryBuilder {
    pub(crate) fn debit(&mut self, account: &str, amount: Decimal) {
        match self.net.iter_mut().find(|(a, _)| a == account) {
            Some((_, net)) => *net += amount,
            None => self.net.push((account.to_string(), amount)),
        }
    }

    pub(crate) fn credit(&mut self, account: &str, amount: Decimal) {
        self.debit(account, -amount);
    }

    /// A two-posting entry: `amount` from `credit` to `debit`.
    pub(crate) fn transfer(debit: &str, credit: &str, amount: Decimal) -> Self {
        let mut e = Self::default();
        e.debit(debit, amount);
        e.credit(credit, amount);
        e
    }

    pub(crate) fn finish(
        self,
        entry_id: String,
        date: NaiveDate,
        currency: &str,
        source_id: String,
        memo: String,
    ) -> Result<JournalEntry> {
        let postings: Vec<Posting> = self
            .net
            .into_iter()
            .filter(|(_, net)| !net.is_zero())
            .map(|(account, net)| Posting {
                account,
                debit: net.max(Decimal::ZERO),
                credit: (-net).max(Decimal::ZERO),
            })
            .collect();
        let debits: Decimal = postings.iter().map(|p| p.debit).sum();
        let credits: Decimal = postings.iter().map(|p| p.credit).sum();
        if debits != credits {
            return Err(PipelineError::Internal(format!(
                "journal entry {entry_id} does not balance: debits {debits}, credits {credits}"
            )));
        }
        Ok(JournalEntry {
            entry_id,
            date,
            currency: currency.to_string(),
            source_id,
            memo,
            postings,
        })
    }
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn opt_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn dates(values: impl Iterator<Item = NaiveDate>) -> ArrayRef {
    date_array(values)
}

impl Recognition {
    /// The `revenue_allocations` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn allocations_batch(&self) -> Result<RecordBatch> {
        let r = &self.allocations;
        Ok(RecordBatch::try_new(
            OutputTable::RevenueAllocations.schema(),
            vec![
                strings(r.iter().map(|a| a.contract_id.as_str())),
                strings(r.iter().map(|a| a.order_id.as_str())),
                strings(r.iter().map(|a| a.line_id.as_str())),
                strings(r.iter().map(|a| a.customer_id.as_str())),
                strings(r.iter().map(|a| a.product_id.as_str())),
                strings(r.iter().map(|a| a.currency.as_str())),
                strings(r.iter().map(|a| a.method.as_str())),
                money_array(r.iter().map(|a| a.stated_price))?,
                quantity_array(r.iter().map(|a| a.ssp))?,
                money_array(r.iter().map(|a| a.allocated))?,
                strings(r.iter().map(|a| a.revenue_account.as_str())),
                opt_strings(r.iter().map(|a| a.deferral_account.as_deref())),
                opt_strings(r.iter().map(|a| a.carve_rule_id.as_deref())),
            ],
        )?)
    }

    /// The `revenue_schedule` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn schedule_batch(&self) -> Result<RecordBatch> {
        let r = &self.schedule;
        Ok(RecordBatch::try_new(
            OutputTable::RevenueSchedule.schema(),
            vec![
                opt_strings(r.iter().map(|s| s.invoice_id.as_deref())),
                strings(r.iter().map(|s| s.order_id.as_str())),
                strings(r.iter().map(|s| s.line_id.as_str())),
                strings(r.iter().map(|s| s.customer_id.as_str())),
                strings(r.iter().map(|s| s.product_id.as_str())),
                dates(r.iter().map(|s| s.month)),
                money_array(r.iter().map(|s| s.amount))?,
                strings(r.iter().map(|s| s.currency.as_str())),
                strings(r.iter().map(|s| s.status.as_str())),
                strings(r.iter().map(|s| s.contract_id.as_str())),
                strings(r.iter().map(|s| s.method.as_str())),
                strings(r.iter().map(|s| s.revenue_account.as_str())),
                opt_strings(r.iter().map(|s| s.deferral_account.as_deref())),
                opt_strings(r.iter().map(|s| s.condition_id.as_deref())),
            ],
        )?)
    }

    /// The `contract_billings` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn billings_batch(&self) -> Result<RecordBatch> {
        let r = &self.billings;
        Ok(RecordBatch::try_new(
            OutputTable::ContractBillings.schema(),
            vec![
                strings(r.iter().map(|b| b.billing_id.as_str())),
                strings(r.iter().map(|b| b.contract_id.as_str())),
                strings(r.iter().map(|b| b.customer_id.as_str())),
                strings(r.iter().map(|b| b.currency.as_str())),
                dates(r.iter().map(|b| b.billed_on)),
                money_array(r.iter().map(|b| b.amount))?,
                money_array(r.iter().map(|b| b.tax))?,
                money_array(r.iter().map(|b| b.total))?,
                opt_strings(r.iter().map(|b| b.modification_id.as_deref())),
            ],
        )?)
    }

    /// The `deferred_revenue` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn roll_forward_batch(&self) -> Result<RecordBatch> {
        let r = self.roll_forward()?;
        Ok(RecordBatch::try_new(
            OutputTable::DeferredRevenue.schema(),
            vec![
                dates(r.iter().map(|x| x.month)),
                strings(r.iter().map(|x| x.currency.as_str())),
                strings(r.iter().map(|x| x.account.as_str())),
                money_array(r.iter().map(|x| x.opening))?,
                money_array(r.iter().map(|x| x.billed))?,
                money_array(r.iter().map(|x| x.recognised))?,
                money_array(r.iter().map(|x| x.closing))?,
            ],
        )?)
    }

    /// The `revenue_waterfall` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn waterfall_batch(&self) -> Result<RecordBatch> {
        let r = self.waterfall();
        Ok(RecordBatch::try_new(
            OutputTable::RevenueWaterfall.schema(),
            vec![
                dates(r.iter().map(|x| x.booked_month)),
                dates(r.iter().map(|x| x.recognition_month)),
                strings(r.iter().map(|x| x.currency.as_str())),
                money_array(r.iter().map(|x| x.amount))?,
                strings(r.iter().map(|x| x.status.as_str())),
            ],
        )?)
    }
}
