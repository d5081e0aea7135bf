//! The entries of invoices, credit memos and payments.

use std::collections::BTreeMap;

use billrun_engine::{DateWindow, LineKind, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::payments::Payment;
use super::{EntryBuilder, JournalEntry, Posting, accounts, check_balanced, revenue_account};
use crate::catalog::Catalog;
use crate::error::{AccountingError, Result};
use crate::invoicing::InvoiceRecord;

/// The journal entries of a period's invoices.
///
/// # Errors
/// [`AccountingError::Internal`] if an entry does not balance (a bug).
pub fn journal_entries(catalog: &Catalog, invoices: &[InvoiceRecord]) -> Result<Vec<JournalEntry>> {
    let mut entries = Vec::with_capacity(invoices.len());
    for invoice in invoices {
        let mut postings: Vec<Posting> = Vec::new();
        let mut post = |account: String, debit: Decimal, credit: Decimal| -> Result<()> {
            if debit.is_zero() && credit.is_zero() {
                return Ok(());
            }
            match postings.iter_mut().find(|p| p.account == account) {
                Some(p) => {
                    p.debit = checked::add(p.debit, debit, "invoice posting")?;
                    p.credit = checked::add(p.credit, credit, "invoice posting")?;
                }
                None => postings.push(Posting {
                    account,
                    debit,
                    credit,
                }),
            }
            Ok(())
        };
        let composed = &invoice.composed;
        post(
            accounts::RECEIVABLE.to_string(),
            composed.total,
            Decimal::ZERO,
        )?;
        for line in &composed.lines {
            let amount = line.amount;
            match line.kind {
                LineKind::Usage | LineKind::Recurring | LineKind::Minimum => {
                    let product = line.product_id.as_deref().unwrap_or_default();
                    post(revenue_account(catalog, product), Decimal::ZERO, amount)?;
                }
                LineKind::Discount => {
                    post(accounts::DISCOUNTS.to_string(), -amount, Decimal::ZERO)?;
                }
                LineKind::Tax => post(accounts::TAX_PAYABLE.to_string(), Decimal::ZERO, amount)?,
                LineKind::Credit => post(
                    accounts::CUSTOMER_CREDITS.to_string(),
                    -amount,
                    Decimal::ZERO,
                )?,
            }
        }
        // A posting can net to a negative side only if a line was negative where none may be.
        if postings
            .iter()
            .any(|p| p.debit.is_sign_negative() || p.credit.is_sign_negative())
        {
            return Err(AccountingError::Internal(format!(
                "invoice {} produced a negative posting",
                invoice.invoice_id
            )));
        }
        check_balanced(&format!("of invoice {}", invoice.invoice_id), &postings)?;
        if postings.is_empty() {
            continue;
        }
        entries.push(JournalEntry {
            entry_id: format!("JE-{}", invoice.invoice_id),
            date: invoice.issue_date,
            currency: invoice.currency.clone(),
            source_id: invoice.invoice_id.clone(),
            memo: format!(
                "invoice {} to {} for {}..{}",
                invoice.invoice_id,
                invoice.customer_id,
                invoice.window.start,
                invoice.window.last_day()
            ),
            postings,
        });
    }
    Ok(entries)
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

/// One entry per credit memo issued inside its customer's billing window (the memos
/// this run's invoices may apply): contra-revenue debited, the customer-credit liability
/// credited. Applying a memo on an invoice later debits that liability.
///
/// # Errors
/// An entry that does not balance (a bug).
pub fn credit_memo_entries(
    catalog: &Catalog,
    windows: &BTreeMap<String, DateWindow>,
) -> Result<Vec<JournalEntry>> {
    catalog
        .credit_memos
        .iter()
        .filter(|m| {
            windows
                .get(&m.customer_id)
                .is_some_and(|w| w.contains(m.issued_on))
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
