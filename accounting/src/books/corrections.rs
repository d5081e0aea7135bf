//! Late usage billed as correction invoices, and the gapless invoice numbers of a books.
//!
//! A correction of an invoice bills, per line of the original, what the line comes to
//! when recomputed with every event billed in its period so far, less everything posted
//! for it already (the original and its earlier corrections): same kind, subscription
//! and product; a usage line's quantity is the late quantity. Minimum, discount and tax
//! lines follow the same rule (one tax line). Credit lines are not recomputed: credit is
//! applied to the correction afresh when it is posted.

use std::collections::BTreeMap;

use billrun_engine::{InvoiceLine, LineKind, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::Result;

/// The id of the next correction of `original`, which has `posted_corrections` already:
/// `<original>-C<n>`.
pub fn correction_id(original: &str, posted_corrections: u32) -> String {
    format!("{original}-C{}", posted_corrections + 1)
}

/// What identifies a line across an invoice and its corrections.
type LineKey = (LineKind, Option<String>, Option<String>);

fn key(line: &InvoiceLine) -> LineKey {
    (
        line.kind,
        line.subscription_id.clone(),
        line.product_id.clone(),
    )
}

/// The lines of a correction: for each line key of `recomputed` (in its order), then of
/// `posted` (the original's and its corrections' lines, in theirs), recomputed − Σ
/// posted, where it is not zero. Empty: nothing changed, and there is no correction.
///
/// # Errors
/// Overflow.
pub fn correction_lines(
    posted: &[InvoiceLine],
    recomputed: &[InvoiceLine],
) -> Result<Vec<InvoiceLine>> {
    let is_billed = |l: &&InvoiceLine| l.kind != LineKind::Credit;
    // Σ posted amount and quantity per key, and the order keys were first posted in.
    let mut sums: BTreeMap<LineKey, (Decimal, Option<Decimal>)> = BTreeMap::new();
    let mut order: Vec<LineKey> = Vec::new();
    for line in recomputed
        .iter()
        .filter(is_billed)
        .chain(posted.iter().filter(is_billed))
    {
        if let std::collections::btree_map::Entry::Vacant(entry) = sums.entry(key(line)) {
            order.push(key(line));
            entry.insert((Decimal::ZERO, None));
        }
    }
    for line in posted.iter().filter(is_billed) {
        let (amount, quantity) = sums.entry(key(line)).or_insert((Decimal::ZERO, None));
        *amount = checked::add(*amount, line.amount, "posted line")?;
        if let Some(q) = line.quantity {
            *quantity = Some(checked::add(
                quantity.unwrap_or_default(),
                q,
                "posted quantity",
            )?);
        }
    }
    let mut recomputed_by_key: BTreeMap<LineKey, &InvoiceLine> = BTreeMap::new();
    for line in recomputed.iter().filter(is_billed) {
        recomputed_by_key.insert(key(line), line);
    }
    let mut lines = Vec::new();
    for k in order {
        let (posted_amount, posted_quantity) = sums[&k];
        let (amount, quantity) = match recomputed_by_key.get(&k) {
            Some(line) => (line.amount, line.quantity),
            // A line that no longer applies (a minimum top-up that late usage covers).
            None => (Decimal::ZERO, posted_quantity.map(|_| Decimal::ZERO)),
        };
        let delta = checked::sub(amount, posted_amount, "correction line")?;
        let quantity_delta = match (quantity, posted_quantity) {
            (Some(q), p) => Some(checked::sub(q, p.unwrap_or_default(), "late quantity")?),
            (None, _) => None,
        };
        if delta.is_zero() && quantity_delta.is_none_or(|q| q.is_zero()) {
            continue;
        }
        let (kind, subscription_id, product_id) = k;
        lines.push(InvoiceLine {
            kind,
            subscription_id,
            product_id,
            credit_memo_id: None,
            quantity: quantity_delta,
            amount: delta,
        });
    }
    // As on an invoice, the tax line comes after the subscriptions' lines (a line of the
    // original that no longer applies is keyed after the recomputed ones).
    let (mut ordered, tax): (Vec<_>, Vec<_>) =
        lines.into_iter().partition(|l| l.kind != LineKind::Tax);
    ordered.extend(tax);
    Ok(ordered)
}

/// Invoice numbers for a run's invoices, continuing from `next` (1 for a new books):
/// one gapless series, in posting order, by issue_date then invoice_id compared as
/// bytes. Returns (invoice_id, number) in that order.
pub fn number_invoices<'a>(
    next: u64,
    invoices: impl IntoIterator<Item = (NaiveDate, &'a str)>,
) -> Vec<(&'a str, u64)> {
    let mut ordered: Vec<(NaiveDate, &str)> = invoices.into_iter().collect();
    ordered.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
    ordered
        .into_iter()
        .zip(next..)
        .map(|((_, id), n)| (id, n))
        .collect()
}
