//! The entries of invoices, credit memos and payments.

use std::collections::BTreeMap;

use billrun_engine::{DateWindow, LineKind, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::payments::Payment;
use super::{EntryBuilder, JournalEntry, Posting, accounts, check_balanced, revenue_account};
use crate::catalog::Catalog;
use crate::error::{AccountingError, Result};
use crate::invoicing::{CreditScope, InvoiceRecord};

/// The journal entries of a period's invoices, accrued as finance closes a month: the
/// revenue of each billing window (charges less discounts) is booked on the window's
/// last day against unbilled receivable (`JE-ACR-<invoice_id>`), and the invoice, on
/// its issue date, moves that to the receivable with tax and credits
/// (`JE-<invoice_id>`). So revenue lands in the month it was earned.
///
/// # Errors
/// [`AccountingError::Internal`] if an entry does not balance or has a negative side (a
/// bug).
pub fn journal_entries(catalog: &Catalog, invoices: &[InvoiceRecord]) -> Result<Vec<JournalEntry>> {
    let mut entries = Vec::with_capacity(2 * invoices.len());
    for invoice in invoices {
        let window = format!("{}..{}", invoice.window.start, invoice.window.last_day());
        let mut accrual = Postings::default();
        let mut billing = Postings::default();
        let composed = &invoice.composed;
        billing.post(accounts::RECEIVABLE, composed.total, Decimal::ZERO)?;
        let mut earned = Decimal::ZERO;
        for line in &composed.lines {
            let amount = line.amount;
            match line.kind {
                LineKind::Usage | LineKind::Recurring | LineKind::Minimum => {
                    let product = line.product_id.as_deref().unwrap_or_default();
                    accrual.post(&revenue_account(catalog, product), Decimal::ZERO, amount)?;
                    earned = checked::add(earned, amount, "revenue earned")?;
                }
                LineKind::Discount => {
                    accrual.post(accounts::DISCOUNTS, -amount, Decimal::ZERO)?;
                    earned = checked::add(earned, amount, "revenue earned")?;
                }
                LineKind::Tax => billing.post(accounts::TAX_PAYABLE, Decimal::ZERO, amount)?,
                LineKind::Credit => {
                    billing.post(accounts::CUSTOMER_CREDITS, -amount, Decimal::ZERO)?;
                }
            }
        }
        // Earned revenue is unbilled from the window's last day to the issue date.
        let (debit, credit) = if earned.is_sign_negative() {
            (Decimal::ZERO, -earned)
        } else {
            (earned, Decimal::ZERO)
        };
        accrual.post(accounts::UNBILLED_RECEIVABLE, debit, credit)?;
        billing.post(accounts::UNBILLED_RECEIVABLE, credit, debit)?;
        let accrued = accrual.finish(&format!(
            "revenue accrued of invoice {}",
            invoice.invoice_id
        ))?;
        if !accrued.is_empty() {
            entries.push(JournalEntry {
                entry_id: format!("JE-ACR-{}", invoice.invoice_id),
                date: invoice.window.last_day(),
                currency: invoice.currency.clone(),
                source_id: invoice.invoice_id.clone(),
                memo: format!(
                    "revenue of {} earned {window}, invoiced by {}",
                    invoice.customer_id, invoice.invoice_id
                ),
                postings: accrued,
            });
        }
        let billed = billing.finish(&format!("of invoice {}", invoice.invoice_id))?;
        if !billed.is_empty() {
            entries.push(JournalEntry {
                entry_id: format!("JE-{}", invoice.invoice_id),
                date: invoice.issue_date,
                currency: invoice.currency.clone(),
                source_id: invoice.invoice_id.clone(),
                memo: format!(
                    "invoice {} to {} for {window}",
                    invoice.invoice_id, invoice.customer_id
                ),
                postings: billed,
            });
        }
    }
    Ok(entries)
}

/// The postings of one entry, each account once, its debits and credits summed apart.
#[derive(Debug, Default)]
struct Postings(Vec<Posting>);

impl Postings {
    fn post(&mut self, account: &str, debit: Decimal, credit: Decimal) -> Result<()> {
        if debit.is_zero() && credit.is_zero() {
            return Ok(());
        }
        match self.0.iter_mut().find(|p| p.account == account) {
            Some(p) => {
                p.debit = checked::add(p.debit, debit, "invoice posting")?;
                p.credit = checked::add(p.credit, credit, "invoice posting")?;
            }
            None => self.0.push(Posting {
                account: account.to_string(),
                debit,
                credit,
            }),
        }
        Ok(())
    }

    /// The postings, checked: no negative side, debits equal credits.
    fn finish(self, what: &str) -> Result<Vec<Posting>> {
        // A posting can net to a negative side only if a line was negative where none may be.
        if self
            .0
            .iter()
            .any(|p| p.debit.is_sign_negative() || p.credit.is_sign_negative())
        {
            return Err(AccountingError::Internal(format!(
                "the entry {what} has a negative posting"
            )));
        }
        check_balanced(what, &self.0)?;
        Ok(self.0)
    }
}

/// One entry per payment received in `[from, to)`: cash debited, receivable credited.
///
/// # Errors
/// An entry that does not balance (a bug).
pub fn payment_entries(
    payments: &[Payment],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<JournalEntry>> {
    payments
        .iter()
        .filter(|p| from <= p.paid_on && p.paid_on < to)
        .map(|p| {
            EntryBuilder::transfer(accounts::CASH, accounts::RECEIVABLE, p.amount)?.finish(
                format!("JE-{}", p.payment_id),
                p.paid_on,
                &p.currency,
                p.payment_id.clone(),
                format!("payment {} from {}", p.payment_id, p.customer_id),
            )
        })
        .collect()
}

/// One entry per credit memo the run takes (see [`CreditScope::takes_memo`]: those
/// issued inside the customer's billing window, or with the books every memo not yet
/// posted): contra-revenue debited, the customer-credit liability credited. Applying a
/// memo on an invoice later debits that liability.
///
/// # Errors
/// An entry that does not balance (a bug).
pub fn credit_memo_entries(
    catalog: &Catalog,
    windows: &BTreeMap<String, DateWindow>,
    scope: CreditScope<'_>,
) -> Result<Vec<JournalEntry>> {
    catalog
        .credit_memos
        .iter()
        .filter(|m| {
            windows
                .get(&m.customer_id)
                .is_some_and(|w| scope.takes_memo(m, *w))
        })
        .map(|m| {
            EntryBuilder::transfer(accounts::CREDIT_MEMOS, accounts::CUSTOMER_CREDITS, m.amount)?
                .finish(
                    format!("JE-{}", m.credit_memo_id),
                    m.issued_on,
                    &m.currency,
                    m.credit_memo_id.clone(),
                    format!("credit memo {} to {}", m.credit_memo_id, m.customer_id),
                )
        })
        .collect()
}
