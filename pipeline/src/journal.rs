//! Stage 6: the ledger — balanced journal entries for every invoice.
//!
//! One entry per invoice, dated on its issue date: the receivable is debited with the
//! total; revenue is credited per revenue account; discounts are debited to a contra-revenue
//! account, applied credit memos to the customer-credit liability; tax is credited to tax
//! payable. Each entry is checked to balance before it is written, and the same entries are
//! rendered as a plain-text journal that `hledger check --strict` accepts as is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, RecordBatch, StringArray};
use billrun_engine::{DateWindow, LineKind, decimal_to_i128_scaled, minor_units, round_money};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE, RejectCode, RowRenderer, Table};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::catalog::{Catalog, rows};
use crate::error::{PipelineError, Result};
use crate::invoice::InvoiceRecord;
use crate::load::{LoadedTable, Reject};
use crate::rate::days_since_epoch;
use crate::revenue::EntryBuilder;

/// Accounts billrun posts to besides revenue.
pub mod accounts {
    pub const RECEIVABLE: &str = "assets:receivable";
    pub const DISCOUNTS: &str = "revenue:discounts";
    pub const TAX_PAYABLE: &str = "liabilities:tax payable";
    pub const CUSTOMER_CREDITS: &str = "liabilities:customer credits";
    /// Contra-revenue debited when a credit memo is issued.
    pub const CREDIT_MEMOS: &str = "revenue:credit memos";
    /// Where payments land.
    pub const CASH: &str = "assets:cash";
    /// The other side of balances brought forward from earlier months.
    pub const OPENING_BALANCES: &str = "equity:opening balances";
}

/// An account name as hledger wants it: white space folded to single spaces (two spaces
/// end an account name in hledger's format) and `;` (a comment) replaced.
pub fn hledger_account(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(';', ",")
}

/// One posting of a journal entry; exactly one of debit and credit is non-zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Posting {
    pub account: String,
    pub debit: Decimal,
    pub credit: Decimal,
}

/// A balanced journal entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub entry_id: String,
    pub date: NaiveDate,
    pub currency: String,
    pub source_id: String,
    pub memo: String,
    pub postings: Vec<Posting>,
}

/// The account a product's revenue is credited to: `revenue:<revenue_account>` (a GL
/// number such as `4100` becomes `revenue:4100`; a name that is already a hierarchy, such
/// as `income:usage`, is kept), or `revenue:<product_id>` when the product names none.
/// White space is folded so the name is a valid hledger account.
pub fn revenue_account(catalog: &Catalog, product_id: &str) -> String {
    let given = catalog
        .products
        .get(product_id)
        .and_then(|p| p.revenue_account.as_deref())
        .map(hledger_account)
        .filter(|a| !a.is_empty());
    match given {
        Some(account) if account.contains(':') => account,
        Some(account) => format!("revenue:{account}"),
        None => format!("revenue:{product_id}"),
    }
}

/// The journal entries of a period's invoices.
///
/// # Errors
/// [`PipelineError::Internal`] if an entry does not balance (a bug).
pub fn journal_entries(catalog: &Catalog, invoices: &[InvoiceRecord]) -> Result<Vec<JournalEntry>> {
    let mut entries = Vec::with_capacity(invoices.len());
    for invoice in invoices {
        let mut postings: Vec<Posting> = Vec::new();
        let mut post = |account: String, debit: Decimal, credit: Decimal| {
            if debit.is_zero() && credit.is_zero() {
                return;
            }
            match postings.iter_mut().find(|p| p.account == account) {
                Some(p) => {
                    p.debit += debit;
                    p.credit += credit;
                }
                None => postings.push(Posting {
                    account,
                    debit,
                    credit,
                }),
            }
        };
        let composed = &invoice.composed;
        post(
            accounts::RECEIVABLE.to_string(),
            composed.total,
            Decimal::ZERO,
        );
        for line in &composed.lines {
            let amount = line.amount;
            match line.kind {
                LineKind::Usage | LineKind::Recurring | LineKind::Minimum => {
                    let product = line.product_id.as_deref().unwrap_or_default();
                    post(revenue_account(catalog, product), Decimal::ZERO, amount);
                }
                LineKind::Discount => post(accounts::DISCOUNTS.to_string(), -amount, Decimal::ZERO),
                LineKind::Tax => post(accounts::TAX_PAYABLE.to_string(), Decimal::ZERO, amount),
                LineKind::Credit => post(
                    accounts::CUSTOMER_CREDITS.to_string(),
                    -amount,
                    Decimal::ZERO,
                ),
            }
        }
        // A posting can net to a negative side only if a line was negative where none may be.
        if postings
            .iter()
            .any(|p| p.debit.is_sign_negative() || p.credit.is_sign_negative())
        {
            return Err(PipelineError::Internal(format!(
                "invoice {} produced a negative posting",
                invoice.invoice_id
            )));
        }
        let debits: Decimal = postings.iter().map(|p| p.debit).sum();
        let credits: Decimal = postings.iter().map(|p| p.credit).sum();
        if debits != credits {
            return Err(PipelineError::Internal(format!(
                "journal entry of invoice {} does not balance: debits {debits}, credits {credits}",
                invoice.invoice_id
            )));
        }
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

/// One account of the general ledger's chart (`gl_accounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlAccount {
    pub name: String,
    /// `asset`, `liability`, `equity`, `revenue` or `expense`.
    pub kind: String,
}

/// The chart of accounts: GL numbers (or codes) with their names and types. Empty when
/// the dataset has no `gl_accounts`, and then nothing is checked against it.
#[derive(Debug, Clone, Default)]
pub struct GlChart {
    accounts: BTreeMap<String, GlAccount>,
}

impl GlChart {
    /// Reads `gl_accounts`; a repeated GL account is rejected.
    pub fn build(table: &LoadedTable, file_names: &[String]) -> (GlChart, Vec<Reject>) {
        let mut chart = GlChart::default();
        let mut rejects = Vec::new();
        for row in rows(table) {
            let id = row.req("gl_account");
            if chart.accounts.contains_key(&id) {
                rejects.push(Reject {
                    table: Table::GlAccounts,
                    source_file: file_names
                        .get(row.file_index())
                        .cloned()
                        .unwrap_or_default(),
                    row_number: Some(row.row_number()),
                    column: Some("gl_account".to_string()),
                    code: RejectCode::DuplicateKey,
                    reason: format!(
                        "`gl_account` `{id}` appears more than once; the first row is kept"
                    ),
                    raw: RowRenderer::new(row.batch).row(row.row),
                });
                continue;
            }
            chart.accounts.insert(
                id,
                GlAccount {
                    name: row.req("name"),
                    kind: row.req("type"),
                },
            );
        }
        (chart, rejects)
    }

    /// Checks a GL reference given in an input (a bare number or code, not an hledger
    /// name with `:`) against the chart: it must be listed with type `kind`. Always
    /// passes when the dataset has no chart.
    ///
    /// # Errors
    /// Why the reference is not acceptable, in words for `rejects.reason`.
    pub fn check(&self, given: &str, kind: &str) -> std::result::Result<(), String> {
        if self.accounts.is_empty() || given.contains(':') {
            return Ok(());
        }
        match self.accounts.get(given.trim()) {
            None => Err(format!("GL account `{given}` is not in gl_accounts")),
            Some(a) if a.kind != kind => Err(format!(
                "GL account `{given}` ({}) is a {} account, not a {kind} account",
                a.name, a.kind
            )),
            Some(_) => Ok(()),
        }
    }

    /// The chart entry of an hledger account whose last component is a GL account.
    fn of(&self, account: &str) -> Option<&GlAccount> {
        self.accounts.get(account.rsplit(':').next()?)
    }
}

/// A payment received, checked against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub payment_id: String,
    pub customer_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub paid_on: NaiveDate,
}

/// Checks `payments` across rows: a known customer, a unique id, an amount on the
/// currency's minor unit. Bad rows come back as rejects.
pub fn payments(
    catalog: &Catalog,
    table: &LoadedTable,
    file_names: &[String],
) -> (Vec<Payment>, Vec<Reject>) {
    let mut out: Vec<Payment> = Vec::new();
    let mut rejects = Vec::new();
    let mut seen = BTreeSet::new();
    for row in rows(table) {
        let payment = Payment {
            payment_id: row.req("payment_id"),
            customer_id: row.req("customer_id"),
            currency: row.req("currency"),
            amount: row.decimal("amount").unwrap_or_default(),
            paid_on: row.date("paid_on").unwrap_or_default(),
        };
        let problem = if !catalog.customers.contains_key(&payment.customer_id) {
            Some((
                "customer_id",
                RejectCode::UnknownReference,
                format!("customer `{}` is not in customers", payment.customer_id),
            ))
        } else if minor_units(&payment.currency)
            .is_none_or(|m| round_money(payment.amount, m) != payment.amount)
        {
            Some((
                "amount",
                RejectCode::TooManyDecimals,
                format!(
                    "`amount` {} has more decimals than {} allows",
                    payment.amount, payment.currency
                ),
            ))
        } else if !seen.insert(payment.payment_id.clone()) {
            Some((
                "payment_id",
                RejectCode::DuplicateKey,
                format!(
                    "`payment_id` `{}` appears more than once; the first row is kept",
                    payment.payment_id
                ),
            ))
        } else {
            None
        };
        match problem {
            None => out.push(payment),
            Some((column, code, reason)) => rejects.push(Reject {
                table: Table::Payments,
                source_file: file_names
                    .get(row.file_index())
                    .cloned()
                    .unwrap_or_default(),
                row_number: Some(row.row_number()),
                column: Some(column.to_string()),
                code,
                reason,
                raw: RowRenderer::new(row.batch).row(row.row),
            }),
        }
    }
    (out, rejects)
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
            EntryBuilder::transfer(accounts::CASH, accounts::RECEIVABLE, p.amount).finish(
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
            EntryBuilder::transfer(accounts::CREDIT_MEMOS, accounts::CUSTOMER_CREDITS, m.amount)
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

/// The `journal` table: one row per posting.
///
/// # Errors
/// Amounts that do not fit Decimal128(38, 4).
pub fn journal_batch(entries: &[JournalEntry]) -> Result<RecordBatch> {
    let rows: Vec<(&JournalEntry, &Posting)> = entries
        .iter()
        .flat_map(|e| e.postings.iter().map(move |p| (e, p)))
        .collect();
    let money = |f: &dyn Fn(&Posting) -> Decimal| -> Result<ArrayRef> {
        let values = rows
            .iter()
            .map(|(_, p)| decimal_to_i128_scaled(f(p), MONEY_SCALE as u32).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(DECIMAL_PRECISION, MONEY_SCALE)?,
        ))
    };
    Ok(RecordBatch::try_new(
        OutputTable::Journal.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.entry_id),
            )),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|(e, _)| days_since_epoch(e.date)),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, p)| &p.account),
            )),
            money(&|p| p.debit)?,
            money(&|p| p.credit)?,
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.currency),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.source_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.memo),
            )),
        ],
    )?)
}

/// The journal table as CSV: a header row, then one row per posting, in the columns and
/// order of the Parquet `journal` table. Money is the Decimal128 text (`720.0000`), never
/// a float, so a spreadsheet or ERP import reads exactly what the Parquet table holds.
///
/// # Errors
/// Encoding errors.
pub fn journal_csv(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buffer);
        writer.write(batch)?;
    }
    Ok(buffer)
}

/// The entries as a plain-text double-entry journal (hledger / ledger format) that
/// declares its commodities and accounts, so `hledger check --strict` accepts it.
pub fn hledger_journal(entries: &[JournalEntry], header: &str, chart: &GlChart) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "; {line}");
    }
    out.push('\n');
    let currencies: BTreeSet<&str> = entries.iter().map(|e| e.currency.as_str()).collect();
    for currency in &currencies {
        let minor = minor_units(currency).unwrap_or(2) as usize;
        // hledger wants a decimal mark in the directive even for currencies without one.
        let mark = if minor == 0 { "." } else { "" };
        let sample = format_amount(Decimal::from(1000), minor);
        let _ = writeln!(out, "commodity {sample}{mark} {currency}");
    }
    let accounts: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.postings.iter().map(|p| p.account.as_str()))
        .collect();
    out.push('\n');
    for account in &accounts {
        match chart.of(account) {
            // hledger's account types: Asset, Liability, Equity, Revenue, eXpense.
            Some(gl) => {
                let kind = match gl.kind.as_str() {
                    "asset" => "A",
                    "liability" => "L",
                    "equity" => "E",
                    "revenue" => "R",
                    _ => "X",
                };
                let name = gl.name.replace([',', ';'], " ");
                let _ = writeln!(out, "account {account}  ; type:{kind}, gl:{name}");
            }
            None => {
                let _ = writeln!(out, "account {account}");
            }
        }
    }
    for entry in entries {
        let minor = minor_units(&entry.currency).unwrap_or(2) as usize;
        let _ = writeln!(
            out,
            "\n{} * ({}) {}",
            entry.date, entry.entry_id, entry.memo
        );
        for p in &entry.postings {
            let amount = p.debit - p.credit;
            let _ = writeln!(
                out,
                "    {:<40}  {} {}",
                p.account,
                format_amount(amount, minor),
                entry.currency
            );
        }
    }
    out
}

fn format_amount(amount: Decimal, minor: usize) -> String {
    format!("{amount:.minor$}")
}
