//! The catalog's builder: one pass per master table, in dependency order (customers and
//! products before the plans and subscriptions that name them).

use std::collections::HashSet;

use billrun_engine::minor_units;
use billrun_schemas::{Reject, RejectCode};
use rust_decimal::Decimal;

use super::{
    ById, Catalog, CreditMemoEntry, Customer, Product, ProductKind, RefusedRow, RefusedVersion,
    Subscription,
};
use crate::error::{AccountingError, Result};
use crate::reasons;
use crate::rows::{RowView, ValidatedRows};

#[derive(Debug, Default)]
pub(super) struct Builder<'a> {
    pub(super) catalog: Catalog,
    pub(super) rejects: Vec<Reject>,
    /// The ids of `catalog.customers`, borrowed from the customers table: looked up by
    /// hash for each of millions of subscriptions instead of searched in the map.
    customer_ids: HashSet<&'a str>,
}

impl<'a> Builder<'a> {
    pub(super) fn reject(
        &mut self,
        row: &RowView<'_>,
        column: Option<&str>,
        code: RejectCode,
        reason: String,
    ) {
        self.rejects.push(row.reject(column, code, reason));
    }

    /// The row's `customer_id` when it names a customer kept in the catalog; otherwise
    /// the row is rejected.
    fn known_customer(&mut self, row: &RowView<'_>) -> Option<String> {
        let customer_id = row.req("customer_id");
        if self.customer_ids.contains(customer_id.as_str()) {
            return Some(customer_id);
        }
        self.reject(
            row,
            Some("customer_id"),
            RejectCode::UnknownReference,
            reasons::not_in_or_rejected("customer", &customer_id, "customers"),
        );
        None
    }

    fn duplicate_key(&mut self, row: &RowView<'_>, key_column: &str, key: &str) {
        self.reject(
            row,
            Some(key_column),
            RejectCode::DuplicateKey,
            reasons::appears_more_than_once(key_column, key),
        );
    }

    pub(super) fn customers(&mut self, table: ValidatedRows<'a>) {
        // Kept in row order, then sorted by id in place.
        let mut kept: Vec<Customer> = Vec::with_capacity(table.len());
        for row in table.iter() {
            let id = row.str("customer_id").unwrap_or_default();
            if !self.customer_ids.insert(id) {
                self.duplicate_key(&row, "customer_id", id);
                continue;
            }
            let customer = Customer {
                customer_id: id.to_string(),
                name: row.req("name"),
                currency: row.req("currency"),
                billing_day: row.int("billing_day").unwrap_or(1) as u32,
                payment_terms_days: row.int("payment_terms_days").unwrap_or(30) as u32,
                tax_region: row.text("tax_region"),
                email: row.text("email"),
            };
            kept.push(customer);
        }
        self.catalog.customers = ById::from_rows(kept);
    }

    pub(super) fn products(&mut self, table: ValidatedRows<'_>) -> Result<()> {
        for row in table.iter() {
            let id = row.req("product_id");
            if self.catalog.products.contains_key(&id) {
                self.duplicate_key(&row, "product_id", &id);
                continue;
            }
            let kind = row.req("kind");
            let product = Product {
                product_id: id.clone(),
                name: row.req("name"),
                kind: ProductKind::parse(&kind).ok_or_else(|| {
                    AccountingError::Internal(format!(
                        "product `{id}` has kind `{kind}`, which validation lets through"
                    ))
                })?,
                revenue_account: row.text("revenue_account"),
                ssp: row.decimal("ssp"),
            };
            self.catalog.products.insert(id, product);
        }
        Ok(())
    }

    pub(super) fn subscriptions(&mut self, table: ValidatedRows<'_>) {
        // As customers: duplicates found by hash, the rows sorted by id once.
        let mut seen: HashSet<&str> = HashSet::with_capacity(table.len());
        let mut kept: Vec<Subscription> = Vec::with_capacity(table.len());
        for row in table.iter() {
            let id_text = row.str("subscription_id").unwrap_or_default();
            // A duplicate of a kept subscription: one whose first row was rejected
            // leaves its id free.
            if seen.contains(id_text) {
                self.duplicate_key(&row, "subscription_id", id_text);
                continue;
            }
            let Some(customer_id) = self.known_customer(&row) else {
                continue;
            };
            let plan_id = row.req("plan_id");
            // The plan's product and currency, from its first version (not a copy of
            // the version's tiers for each of millions of subscriptions).
            let Some((product_id, currency)) = self
                .catalog
                .versions_of(&plan_id)
                .next()
                .map(|(_, v)| (v.product_id.clone(), v.currency.clone()))
            else {
                self.reject(
                    &row,
                    Some("plan_id"),
                    RejectCode::UnknownReference,
                    format!(
                        "plan `{plan_id}` is not in price_plans (or all its versions were rejected)"
                    ),
                );
                continue;
            };
            let start_date = row.date("start_date").unwrap_or_default();
            let end_date = row.date("end_date");
            if end_date.is_some_and(|end| end <= start_date) {
                self.reject(
                    &row,
                    Some("end_date"),
                    RejectCode::OutOfRange,
                    "`end_date` must be after `start_date` (it is exclusive)".to_string(),
                );
                continue;
            }
            let min_commitment = row.decimal("min_commitment");
            if let Some(reason) =
                min_commitment.and_then(|m| too_many_minor_digits(m, &currency, "min_commitment"))
            {
                self.reject(
                    &row,
                    Some("min_commitment"),
                    RejectCode::TooManyDecimals,
                    reason,
                );
                continue;
            }
            let subscription = Subscription {
                subscription_id: id_text.to_string(),
                customer_id,
                plan_id,
                product_id,
                currency,
                start_date,
                end_date,
                seats: row.decimal("quantity").unwrap_or(Decimal::ONE),
                discount_percent: row.decimal("discount_percent"),
                min_commitment,
            };
            seen.insert(id_text);
            kept.push(subscription);
        }
        self.catalog.subscriptions = ById::from_rows(kept);
    }

    pub(super) fn tax_rates(&mut self, table: ValidatedRows<'_>, refused: &[RefusedRow]) {
        let mut refused_rows: Vec<RefusedRow> = refused.to_vec();
        for row in table.iter() {
            let region = row.req("tax_region");
            let from = row.date("effective_from").unwrap_or_default();
            let rate = row.decimal("rate").unwrap_or_default();
            let rates = self.catalog.tax_rates.entry(region.clone()).or_default();
            if rates.iter().any(|(f, _)| *f == from) {
                self.duplicate_key(&row, "effective_from", &format!("{region} {from}"));
                // Two rates for one day: neither is known to be the right one.
                refused_rows.push(RefusedRow {
                    key: Some(region.clone()),
                    effective_from: Some(from),
                    what: format!(
                        "{} row {}: a second rate for {region} from {from}",
                        row.origin().source_file,
                        row.origin().row_number
                    ),
                });
                continue;
            }
            rates.push((from, rate));
            rates.sort_by_key(|(f, _)| *f);
        }
        // A refused rate is in force from its day to the next accepted rate after it.
        for r in refused_rows {
            let Some(region) = r.key else { continue };
            let effective_to = r.effective_from.and_then(|from| {
                self.catalog
                    .tax_rates
                    .get(&region)
                    .and_then(|rates| rates.iter().map(|(f, _)| *f).find(|f| *f > from))
            });
            let refused = self.catalog.refused_tax_rates.entry(region).or_default();
            refused.push(RefusedVersion {
                effective_from: r.effective_from,
                effective_to,
                why: r.what,
            });
            refused.sort_by_key(|v| v.effective_from);
        }
    }

    pub(super) fn credit_memos(&mut self, table: ValidatedRows<'_>) {
        let mut seen = HashSet::new();
        for row in table.iter() {
            let id = row.req("credit_memo_id");
            if !seen.insert(id.clone()) {
                self.duplicate_key(&row, "credit_memo_id", &id);
                continue;
            }
            let Some(customer_id) = self.known_customer(&row) else {
                continue;
            };
            let currency = row.req("currency");
            let amount = row.decimal("amount").unwrap_or_default();
            if let Some(reason) = too_many_minor_digits(amount, &currency, "amount") {
                self.reject(&row, Some("amount"), RejectCode::TooManyDecimals, reason);
                continue;
            }
            self.catalog.credit_memos.push(CreditMemoEntry {
                credit_memo_id: id,
                customer_id,
                currency,
                amount,
                issued_on: row.date("issued_on").unwrap_or_default(),
            });
        }
        self.catalog.credit_memos.sort_by(|a, b| {
            (a.issued_on, &a.credit_memo_id).cmp(&(b.issued_on, &b.credit_memo_id))
        });
    }
}

/// Money of an invoice currency may not be finer than the currency's minor unit: billrun
/// would otherwise have to round it, silently changing what the customer is owed.
fn too_many_minor_digits(amount: Decimal, currency: &str, column: &str) -> Option<String> {
    let minor = minor_units(currency)?;
    (amount.normalize().scale() > minor).then(|| {
        format!(
            "{} ({minor})",
            reasons::more_decimals_than(column, amount, currency)
        )
    })
}
