//! Contracts and their rules, checked across rows and against the catalog: the
//! policies, SSPs and order lines each contract is recognised from.

use std::collections::{BTreeMap, BTreeSet};

use billrun_engine::{CarveShare, RecognitionMethod};
use billrun_schemas::{Reject, RejectCode};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{
    AccountingTables, DEFAULT_DEFERRAL_ACCOUNT, default_method, deferral_account, gl_problem,
    money_on_grid, named_revenue_account, rules,
};
use crate::catalog::{Catalog, ProductKind};
use crate::ledger::{GlAccountType, GlChart, revenue_account};
use crate::reasons;
use crate::rows::{RowOrigin, ValidatedRows};

/// Unit SSPs per (product, currency), by effective_from.
pub(super) type SspVersions = BTreeMap<(String, String), BTreeMap<NaiveDate, Decimal>>;

/// How a product's revenue is recognised and booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Policy {
    pub(super) method: RecognitionMethod,
    pub(super) revenue_account: String,
    pub(super) deferral_account: String,
}

/// One order line: a performance obligation.
#[derive(Debug, Clone)]
pub(super) struct OrderLine {
    pub(super) order_id: String,
    pub(super) line_id: String,
    pub(super) contract_id: String,
    pub(super) customer_id: String,
    pub(super) product_id: String,
    pub(super) currency: String,
    pub(super) quantity: Decimal,
    pub(super) price: Decimal,
    pub(super) service_start: NaiveDate,
    pub(super) service_end: Option<NaiveDate>,
    pub(super) order_date: Option<NaiveDate>,
    pub(super) policy: Policy,
    pub(super) at: RowOrigin,
}

impl OrderLine {
    pub(super) fn key(&self) -> (String, String) {
        (self.order_id.clone(), self.line_id.clone())
    }
}

#[derive(Debug, Clone)]
pub(super) enum CarveTo {
    Product(String),
    Account(String),
}

#[derive(Debug, Clone)]
pub(super) struct CarveRule {
    pub(super) rule_id: String,
    pub(super) contract_id: Option<String>,
    pub(super) from_product: String,
    pub(super) to: CarveTo,
    pub(super) share: CarveShare,
    pub(super) currency: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct ModificationRow {
    pub(super) modification_id: String,
    pub(super) effective: NaiveDate,
    pub(super) new_end: NaiveDate,
    pub(super) price_change: Decimal,
}

#[derive(Debug, Clone)]
pub(super) struct ConditionRow {
    pub(super) condition_id: String,
    pub(super) order_id: String,
    pub(super) line_id: Option<String>,
    pub(super) satisfied_on: Option<NaiveDate>,
}

/// Contracts and their rules, checked across rows and ready to recognise.
#[derive(Debug, Default)]
pub struct ContractBook {
    pub(super) contracts: BTreeMap<String, Vec<OrderLine>>,
    /// Unit SSPs per (product, currency), by effective_from.
    pub(super) ssp: SspVersions,
    pub(super) carves: Vec<CarveRule>,
    pub(super) modifications: BTreeMap<(String, String), ModificationRow>,
    pub(super) conditions: Vec<ConditionRow>,
}

impl ContractBook {
    /// Checks the accounting tables across rows and against the catalog. Rows that break
    /// a rule come back as rejects; everything else is kept.
    pub fn build(
        catalog: &Catalog,
        tables: &AccountingTables<'_>,
        chart: &GlChart,
    ) -> (ContractBook, Vec<Reject>) {
        let mut rejects = Vec::new();
        let policies = policies(catalog, tables.rev_policies, chart, &mut rejects);
        let ssp = ssp_versions(catalog, tables.ssp, &mut rejects);
        let contracts = contracts(catalog, tables.orders, &policies, &mut rejects);
        let lines: BTreeMap<(String, String), &OrderLine> =
            contracts.values().flatten().map(|l| (l.key(), l)).collect();
        let modifications = rules::modifications(&lines, tables.modifications, &mut rejects);
        let conditions = rules::conditions(&lines, tables.conditions, &mut rejects);
        let carves =
            rules::carve_rules(catalog, &contracts, tables.carve_rules, chart, &mut rejects);
        let book = ContractBook {
            contracts,
            ssp,
            carves,
            modifications,
            conditions,
        };
        (book, rejects)
    }

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

    pub(super) fn unit_ssp(
        &self,
        catalog: &Catalog,
        line: &OrderLine,
        on: NaiveDate,
    ) -> Option<Decimal> {
        self.ssp
            .get(&(line.product_id.clone(), line.currency.clone()))
            .and_then(|versions| versions.range(..=on).next_back().map(|(_, v)| *v))
            .or_else(|| catalog.products.get(&line.product_id).and_then(|p| p.ssp))
    }
}

pub(super) fn reject_contract(
    rejects: &mut Vec<Reject>,
    contract_id: &str,
    lines: &[OrderLine],
    why: &str,
) {
    for line in lines {
        rejects.push(line.at.reject(
            Some("contract_id"),
            RejectCode::InvalidContract,
            format!("contract `{contract_id}` is not recognised: {why}"),
        ));
    }
}

/// `rev_policies`: one per product.
fn policies(
    catalog: &Catalog,
    table: ValidatedRows<'_>,
    chart: &GlChart,
    rejects: &mut Vec<Reject>,
) -> BTreeMap<String, Policy> {
    // rev_policies: one per product.
    let mut policies: BTreeMap<String, Policy> = BTreeMap::new();
    for row in table.iter() {
        let at = row.origin();
        let product_id = row.req("product_id");
        let Some(product) = catalog.products.get(&product_id) else {
            rejects.push(at.reject(
                Some("product_id"),
                RejectCode::UnknownReference,
                reasons::not_in("product", &product_id, "products"),
            ));
            continue;
        };
        if policies.contains_key(&product_id) {
            rejects.push(at.reject(
                Some("product_id"),
                RejectCode::DuplicateKey,
                reasons::appears_more_than_once("product_id", &product_id),
            ));
            continue;
        }
        let gl = gl_problem(
            chart,
            row.text("deferral_account").as_deref(),
            GlAccountType::Liability,
        )
        .map(|why| ("deferral_account", why))
        .or_else(|| {
            gl_problem(
                chart,
                row.text("revenue_account").as_deref(),
                GlAccountType::Revenue,
            )
            .map(|why| ("revenue_account", why))
        });
        if let Some((column, why)) = gl {
            rejects.push(at.reject(Some(column), RejectCode::UnknownReference, why));
            continue;
        }
        let method = RecognitionMethod::parse(&row.req("method"))
            .unwrap_or_else(|| default_method(product.kind));
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
    policies
}

/// The policy of `product_id`: its `rev_policies` row, or the default of its kind.
fn policy_of(catalog: &Catalog, policies: &BTreeMap<String, Policy>, product_id: &str) -> Policy {
    policies.get(product_id).cloned().unwrap_or_else(|| Policy {
        method: default_method(
            catalog
                .products
                .get(product_id)
                .map_or(ProductKind::OneTime, |p| p.kind),
        ),
        revenue_account: revenue_account(catalog, product_id),
        deferral_account: DEFAULT_DEFERRAL_ACCOUNT.to_string(),
    })
}

/// `ssp`: unit SSPs per product and currency, effective-dated.
fn ssp_versions(
    catalog: &Catalog,
    table: ValidatedRows<'_>,
    rejects: &mut Vec<Reject>,
) -> SspVersions {
    let mut ssp = SspVersions::new();
    // ssp: per product and currency, effective-dated.
    for row in table.iter() {
        let at = row.origin();
        let product_id = row.req("product_id");
        if !catalog.products.contains_key(&product_id) {
            rejects.push(at.reject(
                Some("product_id"),
                RejectCode::UnknownReference,
                reasons::not_in("product", &product_id, "products"),
            ));
            continue;
        }
        let from = row.date("effective_from").unwrap_or_default();
        let versions = ssp
            .entry((product_id.clone(), row.req("currency")))
            .or_default();
        if versions.contains_key(&from) {
            rejects.push(at.reject(Some("effective_from"),
                    RejectCode::DuplicateKey,
                    format!("product `{product_id}` has two SSPs from {from} in this currency; the first row is kept"),
                ));
            continue;
        }
        versions.insert(from, row.decimal("ssp").unwrap_or_default());
    }

    ssp
}

/// `orders`: every line checked on its own, then every contract as a whole.
fn contracts(
    catalog: &Catalog,
    table: ValidatedRows<'_>,
    policies: &BTreeMap<String, Policy>,
    rejects: &mut Vec<Reject>,
) -> BTreeMap<String, Vec<OrderLine>> {
    let mut accepted = BTreeMap::new();
    // orders: every line checked on its own, then every contract as a whole.
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut contracts: BTreeMap<String, Vec<OrderLine>> = BTreeMap::new();
    for row in table.iter() {
        let at = row.origin();
        let reject =
            |column: &str, code: RejectCode, reason: String| at.reject(Some(column), code, reason);
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
            policy: policy_of(catalog, policies, &row.req("product_id")),
            at: at.clone(),
        };
        let problem = if !catalog.customers.contains_key(&line.customer_id) {
            Some(reject(
                "customer_id",
                RejectCode::UnknownReference,
                reasons::not_in("customer", &line.customer_id, "customers"),
            ))
        } else if !catalog.products.contains_key(&line.product_id) {
            Some(reject(
                "product_id",
                RejectCode::UnknownReference,
                reasons::not_in("product", &line.product_id, "products"),
            ))
        } else if !money_on_grid(line.price, &line.currency) {
            Some(reject(
                "transaction_price",
                RejectCode::TooManyDecimals,
                reasons::more_decimals_than("transaction_price", line.price, &line.currency),
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
        } else if line.policy.method == RecognitionMethod::Ratable && line.service_end.is_none() {
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
            Some(why) => reject_contract(rejects, &contract_id, &lines, &why),
            None => {
                accepted.insert(contract_id, lines);
            }
        }
    }
    accepted
}
