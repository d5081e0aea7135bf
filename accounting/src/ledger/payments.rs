//! Payments received (`payments`), checked across rows.

use billrun_engine::{minor_units, round_money};
use billrun_schemas::{Reject, RejectCode};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::catalog::Catalog;
use crate::reasons;
use crate::rows::ValidatedRows;

/// A payment received, checked against the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub customer_id: String,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub paid_on: NaiveDate,
    /// The invoice the payer named, if any.
    pub invoice_id: Option<String>,
    /// How it was paid (`card`, `sepa_debit`, …), as the payer's system says.
    pub method: Option<String>,
}

/// Checks `payments` across rows: a known customer, a unique id, an amount on the
/// currency's minor unit. Bad rows come back as rejects. A payment id seen again with
/// the same fields is a retry (a payments file sent twice, or kept in the dataset and
/// read again) and is skipped; with other fields it is rejected.
pub fn payments(catalog: &Catalog, table: ValidatedRows<'_>) -> (Vec<Payment>, Vec<Reject>) {
    let mut out: Vec<Payment> = Vec::new();
    let mut rejects = Vec::new();
    let mut seen: std::collections::BTreeMap<String, Payment> = std::collections::BTreeMap::new();
    for row in table.iter() {
        let payment = Payment {
            payment_id: row.req("payment_id"),
            customer_id: row.req("customer_id"),
            currency: row.req("currency"),
            amount: row.decimal("amount").unwrap_or_default(),
            paid_on: row.date("paid_on").unwrap_or_default(),
            invoice_id: row.text("invoice_id"),
            method: row.text("method"),
        };
        let problem = if !catalog.customers.contains_key(&payment.customer_id) {
            Some((
                "customer_id",
                RejectCode::UnknownReference,
                reasons::not_in("customer", &payment.customer_id, "customers"),
            ))
        } else if minor_units(&payment.currency)
            .is_none_or(|m| round_money(payment.amount, m) != payment.amount)
        {
            Some((
                "amount",
                RejectCode::TooManyDecimals,
                reasons::more_decimals_than("amount", payment.amount, &payment.currency),
            ))
        } else if let Some(first) = seen.get(&payment.payment_id) {
            if *first == payment {
                continue;
            }
            Some((
                "payment_id",
                RejectCode::DuplicateKey,
                reasons::appears_more_than_once("payment_id", &payment.payment_id)
                    + " (this row's fields differ from it)",
            ))
        } else {
            seen.insert(payment.payment_id.clone(), payment.clone());
            None
        };
        match problem {
            None => out.push(payment),
            Some((column, code, reason)) => rejects.push(row.reject(Some(column), code, reason)),
        }
    }
    (out, rejects)
}
