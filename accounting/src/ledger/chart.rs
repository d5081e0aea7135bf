//! The chart of accounts (`gl_accounts`): GL numbers with their names and types.

use std::collections::BTreeMap;

use billrun_schemas::{Reject, RejectCode};

use crate::error::{AccountingError, Result};
use crate::reasons;
use crate::rows::ValidatedRows;

/// One account of the general ledger's chart (`gl_accounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlAccount {
    pub name: String,
    pub kind: GlAccountType,
}

/// The type of a GL account (`gl_accounts.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GlAccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl GlAccountType {
    /// The type as written in `gl_accounts.type`, or `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "asset" => Some(GlAccountType::Asset),
            "liability" => Some(GlAccountType::Liability),
            "equity" => Some(GlAccountType::Equity),
            "revenue" => Some(GlAccountType::Revenue),
            "expense" => Some(GlAccountType::Expense),
            _ => None,
        }
    }

    /// The type as written in `gl_accounts.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            GlAccountType::Asset => "asset",
            GlAccountType::Liability => "liability",
            GlAccountType::Equity => "equity",
            GlAccountType::Revenue => "revenue",
            GlAccountType::Expense => "expense",
        }
    }

    /// hledger's letter for the type (`type:A` on an `account` directive).
    pub fn hledger_code(self) -> char {
        match self {
            GlAccountType::Asset => 'A',
            GlAccountType::Liability => 'L',
            GlAccountType::Equity => 'E',
            GlAccountType::Revenue => 'R',
            GlAccountType::Expense => 'X',
        }
    }
}

/// The chart of accounts: GL numbers (or codes) with their names and types. Empty when
/// the dataset has no `gl_accounts`, and then nothing is checked against it.
#[derive(Debug, Clone, Default)]
pub struct GlChart {
    accounts: BTreeMap<String, GlAccount>,
}

impl GlChart {
    /// Reads `gl_accounts`; a repeated GL account is rejected.
    ///
    /// # Errors
    /// [`AccountingError::Internal`] for a type that validation should have refused.
    pub fn build(table: ValidatedRows<'_>) -> Result<(GlChart, Vec<Reject>)> {
        let mut chart = GlChart::default();
        let mut rejects = Vec::new();
        for row in table.iter() {
            let id = row.req("gl_account");
            if chart.accounts.contains_key(&id) {
                rejects.push(row.reject(
                    Some("gl_account"),
                    RejectCode::DuplicateKey,
                    reasons::appears_more_than_once("gl_account", &id),
                ));
                continue;
            }
            let kind = row.req("type");
            let kind = GlAccountType::parse(&kind).ok_or_else(|| {
                AccountingError::Internal(format!(
                    "GL account `{id}` has type `{kind}`, which validation lets through"
                ))
            })?;
            chart.accounts.insert(
                id,
                GlAccount {
                    name: row.req("name"),
                    kind,
                },
            );
        }
        Ok((chart, rejects))
    }

    /// Checks a GL reference given in an input (a bare number or code, not an hledger
    /// name with `:`) against the chart: it must be listed with type `kind`. Always
    /// passes when the dataset has no chart.
    ///
    /// # Errors
    /// Why the reference is not acceptable, in words for `rejects.reason`.
    pub fn check(&self, given: &str, kind: GlAccountType) -> std::result::Result<(), String> {
        if self.accounts.is_empty() || given.contains(':') {
            return Ok(());
        }
        match self.accounts.get(given.trim()) {
            None => Err(format!("GL account `{given}` is not in gl_accounts")),
            Some(a) if a.kind != kind => Err(format!(
                "GL account `{given}` ({}) is a {} account, not a {} account",
                a.name,
                a.kind.as_str(),
                kind.as_str()
            )),
            Some(_) => Ok(()),
        }
    }

    /// The chart entry of an hledger account whose last component is a GL account.
    pub(crate) fn of(&self, account: &str) -> Option<&GlAccount> {
        self.accounts.get(account.rsplit(':').next()?)
    }
}
