//! The ledger: balanced journal entries for everything a run books.
//!
//! One entry per invoice, dated on its issue date: the receivable is debited with the
//! total; revenue is credited per revenue account; discounts are debited to a
//! contra-revenue account, applied credit memos to the customer-credit liability; tax is
//! credited to tax payable. Credit memos, payments, contract billing and recognition get
//! entries of their own. Each entry is checked to balance before it is written, and the
//! same entries are rendered as a table, as CSV and as a plain-text journal that
//! `hledger check --strict` accepts as is ([`render`]).

pub mod chart;
mod entries;
pub mod erp;
pub mod payments;
pub mod render;

pub use chart::{AccountTypes, GlAccount, GlAccountType, GlChart};
pub use entries::{credit_memo_entries, extend_journal_entries, journal_entries, payment_entries};
pub use erp::{ErpFile, ErpLayouts};
pub use payments::{Payment, payments};
pub use render::{
    beancount_journal, beancount_name, hledger_journal, journal_batch, journal_csv,
    write_beancount_journal, write_hledger_journal, write_journal_csv,
};

use billrun_engine::checked;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::catalog::Catalog;
use crate::error::{AccountingError, Result};

/// Accounts billrun posts to besides revenue.
pub mod accounts {
    pub const RECEIVABLE: &str = "assets:receivable";
    /// Revenue earned in a billing window and not invoiced yet: debited on the window's
    /// last day, credited when the invoice is issued.
    pub const UNBILLED_RECEIVABLE: &str = "assets:unbilled receivable";
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
    /// The customer the entry is about, where there is one (the ERP layouts' entity);
    /// `None` for entries of the whole book, such as balances brought forward.
    pub customer_id: Option<String>,
    pub postings: Vec<Posting>,
}

impl JournalEntry {
    /// The entry, about `customer_id`.
    #[must_use]
    pub fn for_customer(mut self, customer_id: &str) -> Self {
        self.customer_id = Some(customer_id.to_string());
        self
    }
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

/// Builds a journal entry from signed movements: debits positive, credits negative,
/// netted per account (in first-posted order) and split into debit and credit columns.
#[derive(Debug, Default)]
pub struct EntryBuilder {
    net: Vec<(String, Decimal)>,
}

impl EntryBuilder {
    /// Debits `amount` to `account`.
    ///
    /// # Errors
    /// The account's net overflows.
    pub fn debit(&mut self, account: &str, amount: Decimal) -> Result<()> {
        match self.net.iter_mut().find(|(a, _)| a == account) {
            Some((_, net)) => *net = checked::add(*net, amount, "journal posting")?,
            None => self.net.push((account.to_string(), amount)),
        }
        Ok(())
    }

    /// Credits `amount` to `account`.
    ///
    /// # Errors
    /// The account's net overflows.
    pub fn credit(&mut self, account: &str, amount: Decimal) -> Result<()> {
        self.debit(account, -amount)
    }

    /// A two-posting entry: `amount` from `credit` to `debit`.
    ///
    /// # Errors
    /// Never for two distinct accounts; an overflow otherwise.
    pub fn transfer(debit: &str, credit: &str, amount: Decimal) -> Result<Self> {
        let mut e = Self::default();
        e.debit(debit, amount)?;
        e.credit(credit, amount)?;
        Ok(e)
    }

    /// The entry, its postings split into debit and credit columns.
    ///
    /// # Errors
    /// [`AccountingError::Internal`] when it does not balance (a bug).
    pub fn finish(
        self,
        entry_id: String,
        date: NaiveDate,
        currency: &str,
        source_id: String,
        memo: String,
    ) -> Result<JournalEntry> {
        let postings: Vec<Posting> = self
            .net
            .into_iter()
            .filter(|(_, net)| !net.is_zero())
            .map(|(account, net)| Posting {
                account,
                debit: net.max(Decimal::ZERO),
                credit: (-net).max(Decimal::ZERO),
            })
            .collect();
        check_balanced(&entry_id, &postings)?;
        Ok(JournalEntry {
            entry_id,
            date,
            currency: currency.to_string(),
            source_id,
            memo,
            customer_id: None,
            postings,
        })
    }
}

/// Σ debit = Σ credit, or [`AccountingError::Internal`] naming the entry.
///
/// # Errors
/// An entry that does not balance (a bug), or sums that overflow.
pub fn check_balanced(entry_id: &str, postings: &[Posting]) -> Result<()> {
    check_balanced_of(|| entry_id.to_string(), postings)
}

/// [`check_balanced`], naming the entry only when it does not balance: the name of each
/// of millions of entries that do is never formatted.
pub(crate) fn check_balanced_of(
    entry_id: impl FnOnce() -> String,
    postings: &[Posting],
) -> Result<()> {
    let debits = checked::sum(postings.iter().map(|p| p.debit), "journal debits")?;
    let credits = checked::sum(postings.iter().map(|p| p.credit), "journal credits")?;
    if debits != credits {
        return Err(AccountingError::Internal(format!(
            "journal entry {} does not balance: debits {debits}, credits {credits}",
            entry_id()
        )));
    }
    Ok(())
}
