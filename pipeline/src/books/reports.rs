//! `billrun report … --books B`: the reports on the books, read from what the postings
//! wrote (their invoices, applications and states); the rules are
//! `billrun_accounting::books::reports`.

use arrow::array::RecordBatch;
use billrun_accounting::books::{
    PostedPeriod, Receivable, RecurringCharge, RegisteredInvoice, TaxedInvoice,
    days_sales_outstanding, dso_batch, invoice_accuracy, invoice_accuracy_batch,
    invoice_register_batch, mrr_batch, mrr_movements, receivables_on, statement_batch, statements,
    tax_batch, tax_by_region,
};
use billrun_engine::{BillingMonth, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Books, Commit};
use crate::error::{PipelineError, Result};

/// A report on the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BooksReport {
    /// Every posted invoice by number, as it stands on a day.
    InvoiceRegister,
    /// Per period, the share of its invoices no correction corrects.
    InvoiceAccuracy,
    /// Days sales outstanding per period and currency, and over three months.
    Dso,
    /// Per customer and currency: opening balance, invoices, corrections, payments,
    /// closing balance.
    Statement,
    /// Tax by issue month, currency, region and rate.
    Tax,
    /// Monthly recurring revenue per period and currency, with its movements.
    Mrr,
}

/// What a report is asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// invoice-register: the day it stands on (default: the last posting's as_of).
    pub on: Option<NaiveDate>,
    /// statement: the first and last day (default: the first posted period's first day,
    /// the last posting's as_of).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// statement: one customer only.
    pub customer: Option<String>,
}

/// Runs `report` on the books at `location`.
///
/// # Errors
/// Damaged books; books nothing was posted to; overflow.
pub async fn books_report(
    location: &str,
    report: BooksReport,
    options: &ReportOptions,
) -> Result<RecordBatch> {
    let books = Books::open(location)?;
    let commits = books.commits().await?;
    let (Some(first), Some(last)) = (commits.first(), commits.last()) else {
        return Err(PipelineError::BooksRefused {
            books: location.to_string(),
            reason: "nothing is posted yet: run `billrun run --books` first".into(),
        });
    };
    let last_as_of = crate::run::as_of_day(BillingMonth::parse(&last.period)?)?;
    match report {
        BooksReport::InvoiceRegister => {
            let on = options.on.unwrap_or(last_as_of);
            let rows = registered(&books, &commits, on).await?;
            Ok(invoice_register_batch(&rows, on)?)
        }
        BooksReport::InvoiceAccuracy => {
            let rows = registered(&books, &commits, last_as_of).await?;
            Ok(invoice_accuracy_batch(&invoice_accuracy(&rows)?)?)
        }
        BooksReport::Dso => {
            let mut periods = Vec::with_capacity(commits.len());
            for c in &commits {
                let state = books.state_after(Some(c)).await?;
                let invoiced = books
                    .posted_invoices(std::slice::from_ref(c))
                    .await?
                    .into_iter()
                    .map(|p| p.receivable)
                    .collect();
                periods.push(PostedPeriod {
                    period: BillingMonth::parse(&c.period)?,
                    open_after: state.open_receivables.into_iter().map(|(r, _)| r).collect(),
                    invoiced,
                });
            }
            Ok(dso_batch(&days_sales_outstanding(&periods)?)?)
        }
        BooksReport::Tax => {
            let posted = books.posted_invoices(&commits).await?;
            let lines = books.lines(&commits).await?;
            let mut by_invoice: std::collections::BTreeMap<&str, (Decimal, Decimal)> =
                std::collections::BTreeMap::new();
            for l in &lines {
                let (taxable, tax) = by_invoice.entry(l.invoice_id.as_str()).or_default();
                match l.kind.as_str() {
                    "tax" => *tax = checked::add(*tax, l.amount, "tax")?,
                    "credit" => {}
                    _ => *taxable = checked::add(*taxable, l.amount, "taxable amount")?,
                }
            }
            let taxed: Vec<TaxedInvoice> = posted
                .iter()
                .map(|p| {
                    let (taxable, tax) = by_invoice
                        .get(p.receivable.invoice_id.as_str())
                        .copied()
                        .unwrap_or_default();
                    TaxedInvoice {
                        issue_date: p.receivable.issue_date,
                        currency: p.receivable.currency.clone(),
                        tax_region: p.tax_region.clone(),
                        tax_rate: p.tax_rate,
                        taxable,
                        tax,
                    }
                })
                .collect();
            Ok(tax_batch(&tax_by_region(&taxed)?)?)
        }
        BooksReport::Mrr => {
            let posted = books.posted_invoices(&commits).await?;
            let lines = books.lines(&commits).await?;
            // A period's own invoices (corrections change usage, not recurring fees).
            let originals: std::collections::BTreeMap<&str, &super::PostedInvoice> = posted
                .iter()
                .filter(|p| p.corrects_invoice_id.is_none())
                .map(|p| (p.receivable.invoice_id.as_str(), p))
                .collect();
            let charges: Vec<RecurringCharge> = lines
                .iter()
                .filter(|l| l.kind == "recurring")
                .filter_map(|l| {
                    let p = originals.get(l.invoice_id.as_str())?;
                    Some(RecurringCharge {
                        period: p.period.clone(),
                        customer_id: p.receivable.customer_id.clone(),
                        currency: p.receivable.currency.clone(),
                        amount: l.amount,
                    })
                })
                .collect();
            let periods: Vec<String> = commits.iter().map(|c| c.period.clone()).collect();
            Ok(mrr_batch(&mrr_movements(&charges, &periods)?)?)
        }
        BooksReport::Statement => {
            let from = match options.from {
                Some(day) => day,
                None => billrun_accounting::books::month_days(BillingMonth::parse(&first.period)?)
                    .map(|(d, _)| d)
                    .ok_or_else(|| PipelineError::Internal("period out of range".into()))?,
            };
            let to = options.to.unwrap_or(last_as_of);
            if to < from {
                return Err(PipelineError::InvalidOption(format!(
                    "--to {to} is before --from {from}"
                )));
            }
            let rows = registered(&books, &commits, to).await?;
            let payments = books.payments(&commits).await?;
            Ok(statement_batch(&statements(
                &rows,
                &payments,
                from,
                to,
                options.customer.as_deref(),
            )?)?)
        }
    }
}

/// Every invoice posted by `commits` and issued on or before `on`, as it stands on
/// `on`, by invoice number.
async fn registered(
    books: &Books,
    commits: &[Commit],
    on: NaiveDate,
) -> Result<Vec<RegisteredInvoice>> {
    let posted = books.posted_invoices(commits).await?;
    let applications = books.applications(commits).await?;
    let base: Vec<Receivable> = posted
        .iter()
        .map(|p| Receivable {
            paid: Decimal::ZERO,
            ..p.receivable.clone()
        })
        .collect();
    let as_of: std::collections::BTreeMap<String, Receivable> =
        receivables_on(&base, &applications, on)?
            .into_iter()
            .map(|r| (r.invoice_id.clone(), r))
            .collect();
    let mut rows: Vec<RegisteredInvoice> = posted
        .into_iter()
        .filter_map(|p| {
            let receivable = as_of.get(&p.receivable.invoice_id)?.clone();
            Some(RegisteredInvoice {
                receivable,
                invoice_number: p.invoice_number,
                posted_in: p.period,
                corrects_invoice_id: p.corrects_invoice_id,
            })
        })
        .collect();
    rows.sort_by_key(|r| r.invoice_number);
    Ok(rows)
}
