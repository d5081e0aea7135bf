//! The entries of invoices, credit memos and payments.

use std::collections::BTreeMap;

use billrun_engine::{DateWindow, LineKind, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::payments::Payment;
use super::{EntryBuilder, JournalEntry, Posting, accounts, check_balanced_of, revenue_account};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::invoicing::{CreditScope, InvoiceRecord};

/// The journal entries of a period's invoices, accrued as finance closes a month: the
/// revenue of each billing window (charges less discounts) is booked on the window's
/// last day against unbilled receivable (`JE-ACR-<invoice_id>`), and the invoice, on
/// its issue date, moves that to the receivable with tax and credits
/// (`JE-<invoice_id>`). So revenue lands in the month it was earned.
///
/// # Errors
/// [`crate::AccountingError::Internal`] if an entry does not balance (a bug).
pub fn journal_entries(catalog: &Catalog, invoices: &[InvoiceRecord]) -> Result<Vec<JournalEntry>> {
    let mut entries = Vec::with_capacity(2 * invoices.len());
    extend_journal_entries(catalog, invoices, &mut entries)?;
    Ok(entries)
}

/// [`journal_entries`], appended to `entries`.
///
/// # Errors
/// As [`journal_entries`].
pub fn extend_journal_entries(
    catalog: &Catalog,
    invoices: &[InvoiceRecord],
    entries: &mut Vec<JournalEntry>,
) -> Result<()> {
    // Each product's revenue account, named once rather than for each invoice line.
    let revenue_accounts: BTreeMap<&str, String> = catalog
        .products
        .keys()
        .map(|product| (product.as_str(), revenue_account(catalog, product)))
        .collect();
    // Each invoice's entries depend on that invoice only: built in parallel, a block of
    // invoices per task, gathered in invoice order (the first error in that order wins).
    crate::in_order::map_chunks_in_order(
        invoices,
        1024,
        16,
        |block| {
            let mut entries = Vec::with_capacity(2 * block.len());
            for invoice in block {
                invoice_entries(catalog, &revenue_accounts, invoice, &mut entries)?;
            }
            Ok(entries)
        },
        |block| {
            entries.extend(block);
            Ok(())
        },
    )
}

/// The accrual and billing entries of one invoice, appended to `entries`.
fn invoice_entries(
    catalog: &Catalog,
    revenue_accounts: &BTreeMap<&str, String>,
    invoice: &InvoiceRecord,
    entries: &mut Vec<JournalEntry>,
) -> Result<()> {
    let window = format!("{}..{}", invoice.window.start, invoice.window.last_day());
    let mut accrual = Postings::default();
    let mut billing = Postings::default();
    let composed = &invoice.composed;
    // A credit note (a correction with a negative total) is settled by becoming the
    // customer's credit: what it owes the customer is a liability, not a receivable.
    let owed_by = if composed.total.is_sign_negative() {
        accounts::CUSTOMER_CREDITS
    } else {
        accounts::RECEIVABLE
    };
    billing.post(owed_by, composed.total, Decimal::ZERO)?;
    let mut earned = Decimal::ZERO;
    for line in &composed.lines {
        let amount = line.amount;
        match line.kind {
            LineKind::Usage | LineKind::Recurring | LineKind::Minimum => {
                let product = line.product_id.as_deref().unwrap_or_default();
                match revenue_accounts.get(product) {
                    Some(account) => accrual.post(account, Decimal::ZERO, amount)?,
                    None => {
                        accrual.post(&revenue_account(catalog, product), Decimal::ZERO, amount)?
                    }
                }
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
    let accrued =
        accrual.finish(|| format!("revenue accrued of invoice {}", invoice.invoice_id))?;
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
            customer_id: Some(invoice.customer_id.clone()),
            postings: accrued,
        });
    }
    let billed = billing.finish(|| format!("of invoice {}", invoice.invoice_id))?;
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
            customer_id: Some(invoice.customer_id.clone()),
            postings: billed,
        });
    }
    Ok(())
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

    /// The postings, checked: debits equal credits. A side that sums to a negative
    /// amount (a correction's negative line: late usage that lowers a volume price or
    /// takes a minimum away, a credit note's total) is netted onto the other side, and
    /// a posting that nets to zero is left out.
    fn finish(self, what: impl FnOnce() -> String) -> Result<Vec<Posting>> {
        let mut postings = Vec::with_capacity(self.0.len());
        for mut p in self.0 {
            if p.debit.is_sign_negative() || p.credit.is_sign_negative() {
                let net = checked::sub(p.debit, p.credit, "netted posting")?;
                (p.debit, p.credit) = if net.is_sign_negative() {
                    (Decimal::ZERO, -net)
                } else {
                    (net, Decimal::ZERO)
                };
            }
            if !(p.debit.is_zero() && p.credit.is_zero()) {
                postings.push(p);
            }
        }
        check_balanced_of(what, &postings)?;
        Ok(postings)
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
            EntryBuilder::transfer(accounts::CASH, accounts::RECEIVABLE, p.amount)?
                .finish(
                    format!("JE-{}", p.payment_id),
                    p.paid_on,
                    &p.currency,
                    p.payment_id.clone(),
                    format!("payment {} from {}", p.payment_id, p.customer_id),
                )
                .map(|e| e.for_customer(&p.customer_id))
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
                .map(|e| e.for_customer(&m.customer_id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use billrun_engine::{ComposedInvoice, InvoiceLine};

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A correction of October issued on 2026-12-01 with `lines` (kind, amount).
    fn correction(lines: &[(LineKind, &str)]) -> InvoiceRecord {
        let lines: Vec<InvoiceLine> = lines
            .iter()
            .map(|(kind, amount)| InvoiceLine {
                kind: *kind,
                subscription_id: (*kind != LineKind::Tax).then(|| "S-C".to_string()),
                product_id: (*kind != LineKind::Tax).then(|| "GPU".to_string()),
                credit_memo_id: None,
                quantity: None,
                amount: d(amount),
            })
            .collect();
        let total = lines.iter().map(|l| l.amount).sum::<Decimal>();
        let tax = lines
            .iter()
            .filter(|l| l.kind == LineKind::Tax)
            .map(|l| l.amount)
            .sum::<Decimal>();
        InvoiceRecord {
            invoice_id: "INV-202610-C-USD-C1".into(),
            customer_id: "C".into(),
            currency: "USD".into(),
            window: DateWindow {
                start: day("2026-10-01"),
                end: day("2026-11-01"),
            },
            issue_date: day("2026-12-01"),
            due_date: day("2026-12-16"),
            composed: ComposedInvoice {
                lines,
                subtotal: total - tax,
                discount: Decimal::ZERO,
                tax,
                credits: Decimal::ZERO,
                total,
                open_credits: Vec::new(),
            },
            invoice_number: None,
            corrects_invoice_id: Some("INV-202610-C-USD".into()),
        }
    }

    fn shown(entries: &[JournalEntry]) -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| {
                e.postings.iter().map(move |p| {
                    format!(
                        "{} {} {} {} {}",
                        e.entry_id, e.date, p.account, p.debit, p.credit
                    )
                })
            })
            .collect()
    }

    #[test]
    fn a_correction_that_moves_revenue_between_lines_of_one_account_books_nothing() {
        // Late usage +40.00 taken out of the minimum top-up −40.00, both revenue:GPU.
        let invoice = correction(&[(LineKind::Usage, "40.00"), (LineKind::Minimum, "-40.00")]);
        let entries = journal_entries(&Catalog::default(), &[invoice]).unwrap();
        assert!(entries.is_empty(), "{:?}", shown(&entries));
    }

    #[test]
    fn a_credit_note_books_its_negative_lines_on_the_other_side() {
        // Late usage that lowers a volume price: usage −50.00, tax −5.00, total −55.00.
        let invoice = correction(&[(LineKind::Usage, "-50.00"), (LineKind::Tax, "-5.00")]);
        let entries = journal_entries(&Catalog::default(), &[invoice]).unwrap();
        assert_eq!(
            shown(&entries),
            [
                "JE-ACR-INV-202610-C-USD-C1 2026-10-31 revenue:GPU 50.00 0",
                "JE-ACR-INV-202610-C-USD-C1 2026-10-31 assets:unbilled receivable 0 50.00",
                // Settled by becoming credit: owed to the customer, not by them.
                "JE-INV-202610-C-USD-C1 2026-12-01 liabilities:customer credits 0 55.00",
                "JE-INV-202610-C-USD-C1 2026-12-01 liabilities:tax payable 5.00 0",
                "JE-INV-202610-C-USD-C1 2026-12-01 assets:unbilled receivable 50.00 0",
            ]
        );
    }
}
