//! What paid or credited what: payments and unapplied cash applied to open invoices,
//! customer credit used oldest first.

use billrun_engine::checked;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::receivables::Receivable;
use crate::error::Result;
use crate::ledger::Payment;

/// What an application's money came from (`applications.source_kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Payment,
    CreditMemo,
    CreditNote,
    UnappliedCash,
}

impl SourceKind {
    /// The text written to `applications.source_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Payment => "payment",
            SourceKind::CreditMemo => "credit_memo",
            SourceKind::CreditNote => "credit_note",
            SourceKind::UnappliedCash => "unapplied_cash",
        }
    }
}

/// One row of `applications`: `amount` of `source_id` applied to `invoice_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Application {
    pub source_id: String,
    pub source_kind: SourceKind,
    pub invoice_id: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub applied_on: NaiveDate,
    /// For cash: the day it was paid (before or on `applied_on`; unapplied cash is
    /// applied to invoices issued after it came in). Not a column of `applications`;
    /// the `ar-aging` report ages by it.
    #[serde(default)]
    pub paid_on: Option<NaiveDate>,
}

/// Why a payment cannot be applied at all; the caller rejects its row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRejected {
    #[error(
        "payment `{payment_id}` names invoice `{invoice_id}`, which customer `{customer_id}` does not have in {currency}"
    )]
    UnknownInvoice {
        payment_id: String,
        invoice_id: String,
        customer_id: String,
        currency: String,
    },
}

/// Customer credit with something left: the rest of a credit memo, or a credit note
/// (a correction with a negative total).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credit {
    /// The credit memo's id, the credit note's invoice_id, or the payment's id (for
    /// unapplied cash).
    pub credit_id: String,
    pub kind: SourceKind,
    pub customer_id: String,
    pub currency: String,
    pub issued_on: NaiveDate,
    /// What it was worth when issued (the memo's amount, the note's total negated, the
    /// payment's rest).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// What is left to use.
    #[serde(with = "rust_decimal::serde::str")]
    pub remaining: Decimal,
}

/// The positions of the `items` that `keep` keeps, in (date, id) order as `key` gives
/// them: the order in which money is applied to them (`str` compares as bytes).
fn positions_in_order<T>(
    items: &[T],
    keep: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> (NaiveDate, &str),
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).filter(|&i| keep(&items[i])).collect();
    order.sort_by(|&a, &b| key(&items[a]).cmp(&key(&items[b])));
    order
}

/// Applies `amount` of `source_id` to `invoice`, up to what is open on it; returns the
/// application, if any money moved, and what is left of `amount`.
fn apply_to(
    invoice: &mut Receivable,
    source_id: &str,
    source_kind: SourceKind,
    amount: Decimal,
    applied_on: NaiveDate,
) -> Result<(Option<Application>, Decimal)> {
    let open = invoice.open()?;
    let applied = amount.min(open);
    if applied <= Decimal::ZERO {
        return Ok((None, amount));
    }
    invoice.paid = checked::add(invoice.paid, applied, "invoice paid")?;
    let application = Application {
        source_id: source_id.to_string(),
        source_kind,
        invoice_id: invoice.invoice_id.clone(),
        amount: applied,
        applied_on,
        paid_on: None,
    };
    Ok((
        Some(application),
        checked::sub(amount, applied, "payment rest")?,
    ))
}

/// Applies `amount` of cash (`source_id`, a payment or unapplied cash) of `customer_id`
/// in `currency` to their open invoices by (due_date, invoice_id); returns the
/// applications and the rest, which stays unapplied cash.
///
/// # Errors
/// Overflow.
pub fn apply_cash(
    receivables: &mut [Receivable],
    source_id: &str,
    source_kind: SourceKind,
    customer_id: &str,
    currency: &str,
    amount: Decimal,
    applied_on: NaiveDate,
) -> Result<(Vec<Application>, Decimal)> {
    let order = positions_in_order(
        receivables,
        |r| r.customer_id == customer_id && r.currency == currency,
        |r| (r.due_date, r.invoice_id.as_str()),
    );
    let mut applications = Vec::new();
    let mut rest = amount;
    for i in order {
        if rest <= Decimal::ZERO {
            break;
        }
        let (application, left) = apply_to(
            &mut receivables[i],
            source_id,
            source_kind,
            rest,
            applied_on,
        )?;
        applications.extend(application);
        rest = left;
    }
    Ok((applications, rest))
}

/// Applies `payment` on its `paid_on`: to the invoice it names, up to what is open on
/// it, then (and for any rest) to the customer's open invoices of its currency by
/// (due_date, invoice_id). Returns the applications and the rest, unapplied cash.
///
/// # Errors
/// [`PaymentRejected`] (inside `Ok`) when the named invoice is not one of the customer's
/// in the payment's currency; overflow.
pub fn apply_payment(
    payment: &Payment,
    receivables: &mut [Receivable],
) -> Result<std::result::Result<(Vec<Application>, Decimal), PaymentRejected>> {
    let mut applications = Vec::new();
    let mut rest = payment.amount;
    if let Some(named) = &payment.invoice_id {
        let Some(invoice) = receivables.iter_mut().find(|r| {
            &r.invoice_id == named
                && r.customer_id == payment.customer_id
                && r.currency == payment.currency
        }) else {
            return Ok(Err(PaymentRejected::UnknownInvoice {
                payment_id: payment.payment_id.clone(),
                invoice_id: named.clone(),
                customer_id: payment.customer_id.clone(),
                currency: payment.currency.clone(),
            }));
        };
        let (application, left) = apply_to(
            invoice,
            &payment.payment_id,
            SourceKind::Payment,
            rest,
            payment.paid_on,
        )?;
        applications.extend(application);
        rest = left;
    }
    let (more, rest) = apply_cash(
        receivables,
        &payment.payment_id,
        SourceKind::Payment,
        &payment.customer_id,
        &payment.currency,
        rest,
        payment.paid_on,
    )?;
    applications.extend(more);
    Ok(Ok((applications, rest)))
}

/// Uses the customer's credit in `currency` against `due` (what an invoice would
/// otherwise bill), oldest first by (issued_on, credit_id): returns, per credit used,
/// its id, kind and the amount, which the invoice books as `credit` lines. Each credit's
/// `remaining` goes down by what was used.
///
/// # Errors
/// Overflow.
pub fn apply_credits(
    credits: &mut [Credit],
    customer_id: &str,
    currency: &str,
    due: Decimal,
) -> Result<Vec<(String, SourceKind, Decimal)>> {
    let order = positions_in_order(
        credits,
        |c| c.customer_id == customer_id && c.currency == currency && c.remaining > Decimal::ZERO,
        |c| (c.issued_on, c.credit_id.as_str()),
    );
    let mut used = Vec::new();
    let mut left = due;
    for i in order {
        if left <= Decimal::ZERO {
            break;
        }
        let credit = &mut credits[i];
        let amount = credit.remaining.min(left);
        credit.remaining = checked::sub(credit.remaining, amount, "credit remaining")?;
        left = checked::sub(left, amount, "invoice due after credit")?;
        used.push((credit.credit_id.clone(), credit.kind, amount));
    }
    Ok(used)
}
