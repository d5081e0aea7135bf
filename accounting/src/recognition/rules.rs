//! The contract rules checked across rows: modifications of order lines, conditions
//! holding their revenue, and carve rules.

use std::collections::{BTreeMap, BTreeSet};

use billrun_engine::{CarveShare, RecognitionMethod};
use billrun_schemas::{Reject, RejectCode};

use super::book::{CarveRule, CarveTo, ConditionRow, ModificationRow, OrderLine};
use super::{money_on_grid, named_revenue_account};
use crate::catalog::Catalog;
use crate::ledger::{GlAccountType, GlChart};
use crate::reasons;
use crate::rows::ValidatedRows;

/// `modifications`: of a known ratable line, one each.
pub(super) fn modifications(
    lines: &BTreeMap<(String, String), &OrderLine>,
    table: ValidatedRows<'_>,
    rejects: &mut Vec<Reject>,
) -> BTreeMap<(String, String), ModificationRow> {
    // modifications: of a known ratable line, one each.
    let mut modifications = BTreeMap::new();
    for row in table.iter() {
        let at = row.origin();
        let key = (row.req("order_id"), row.req("line_id"));
        let modification = ModificationRow {
            modification_id: row.req("modification_id"),
            effective: row.date("effective_date").unwrap_or_default(),
            new_end: row.date("new_service_end").unwrap_or_default(),
            price_change: row.decimal("price_change").unwrap_or_default(),
        };
        let reject =
            |column: &str, code: RejectCode, reason: String| at.reject(Some(column), code, reason);
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
                    reasons::more_decimals_than(
                        "price_change",
                        modification.price_change,
                        &line.currency,
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
    modifications
}

/// `conditions`: on a known order (and line), holding no as-consumed line.
pub(super) fn conditions(
    lines: &BTreeMap<(String, String), &OrderLine>,
    table: ValidatedRows<'_>,
    rejects: &mut Vec<Reject>,
) -> Vec<ConditionRow> {
    let orders: BTreeSet<&str> = lines.keys().map(|(o, _)| o.as_str()).collect();
    let mut accepted = Vec::new();
    // conditions: on a known order (and line), holding no as-consumed line.
    for row in table.iter() {
        let at = row.origin();
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
            rejects.push(at.reject(Some("line_id"), RejectCode::InvalidContract, reason));
        } else if known {
            accepted.push(condition);
        } else {
            rejects.push(at.reject(
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

    accepted
}

/// `carve_rules`: one target, one share, known products and contract.
pub(super) fn carve_rules(
    catalog: &Catalog,
    contracts: &BTreeMap<String, Vec<OrderLine>>,
    table: ValidatedRows<'_>,
    chart: &GlChart,
    rejects: &mut Vec<Reject>,
) -> Vec<CarveRule> {
    // carve_rules: one target, one share, known products and contract.
    let mut carves = Vec::new();
    for row in table.iter() {
        let at = row.origin();
        let reject = |column: &str, code: RejectCode, reason: &str| {
            at.reject(Some(column), code, reason.to_string())
        };
        let to = match (row.text("to_product_id"), row.text("to_account")) {
            (Some(p), None) => Ok(CarveTo::Product(p)),
            (None, Some(a)) if chart.check(&a, GlAccountType::Revenue).is_err() => Err(reject(
                "to_account",
                RejectCode::UnknownReference,
                &chart
                    .check(&a, GlAccountType::Revenue)
                    .err()
                    .unwrap_or_default(),
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
                    &reasons::not_in("product", &rule.from_product, "products"),
                ));
            }
            if let CarveTo::Product(p) = &rule.to
                && !catalog.products.contains_key(p)
            {
                return Err(reject(
                    "to_product_id",
                    RejectCode::UnknownReference,
                    &reasons::not_in("product", p, "products"),
                ));
            }
            if let (CarveShare::Amount(a), Some(c)) = (rule.share, &rule.currency)
                && !money_on_grid(a, c)
            {
                return Err(reject(
                    "amount",
                    RejectCode::TooManyDecimals,
                    &reasons::more_decimals_than("amount", a, c),
                ));
            }
            if let Some(contract_id) = &rule.contract_id {
                let Some(lines) = contracts.get(contract_id) else {
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
    carves
}
