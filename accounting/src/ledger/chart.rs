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
    /// The tax rate name for this account's lines in ERP imports that need one on every
    /// line (Xero), from `gl_accounts.erp_tax_rate`.
    pub erp_tax_rate: Option<String>,
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

    /// The type with its indefinite article, for messages (`an asset`, `a liability`).
    pub fn with_article(self) -> &'static str {
        match self {
            GlAccountType::Asset => "an asset",
            GlAccountType::Liability => "a liability",
            GlAccountType::Equity => "an equity",
            GlAccountType::Revenue => "a revenue",
            GlAccountType::Expense => "an expense",
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
    /// billrun account → the GL account that stands for it (`gl_accounts.billrun_account`).
    mapped: BTreeMap<String, String>,
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
            if let Some(account) = row.text("billrun_account") {
                let account = super::hledger_account(&account);
                let problem = match (chart.mapped.get(&account), type_by_name(&account)) {
                    (Some(other), _) => Some(format!(
                        "billrun account `{account}` is already mapped to GL account `{other}`"
                    )),
                    (None, Some(named)) if named != kind => Some(format!(
                        "billrun account `{account}` is {} account, and GL account `{id}` is {} account",
                        named.with_article(),
                        kind.with_article()
                    )),
                    _ => None,
                };
                if let Some(why) = problem {
                    rejects.push(row.reject(
                        Some("billrun_account"),
                        RejectCode::UnknownReference,
                        why,
                    ));
                    continue;
                }
                chart.mapped.insert(account, id.clone());
            }
            chart.accounts.insert(
                id,
                GlAccount {
                    name: row.req("name"),
                    kind,
                    erp_tax_rate: row.text("erp_tax_rate"),
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

    /// The GL account code and chart entry of a billrun account: the `gl_accounts` row
    /// mapped to it by `billrun_account`, else the row whose number is the account's last
    /// component (`revenue:4100` is GL account 4100).
    pub fn of(&self, account: &str) -> Option<(&str, &GlAccount)> {
        let code = match self.mapped.get(account) {
            Some(code) => code.as_str(),
            None => account.rsplit(':').next()?,
        };
        self.accounts
            .get_key_value(code)
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// The type of every account a run posts to: from the chart when it lists the account,
/// else from the role billrun posts it in (a product's revenue account, a deferral),
/// else from its top-level name as hledger itself would guess it.
#[derive(Debug, Clone, Default)]
pub struct AccountTypes<'a> {
    chart: Option<&'a GlChart>,
    roles: BTreeMap<String, GlAccountType>,
}

impl<'a> AccountTypes<'a> {
    /// Types from `chart` first.
    pub fn new(chart: &'a GlChart) -> Self {
        AccountTypes {
            chart: Some(chart),
            roles: BTreeMap::new(),
        }
    }

    /// Records that billrun posts to `account` as an account of type `kind`.
    pub fn role(&mut self, account: &str, kind: GlAccountType) {
        self.roles.entry(account.to_string()).or_insert(kind);
    }

    /// The account's type, or `None` for an account under an unknown top-level name
    /// that billrun was not told the role of.
    pub fn of(&self, account: &str) -> Option<GlAccountType> {
        self.chart
            .and_then(|c| c.of(account))
            .map(|(_, gl)| gl.kind)
            .or_else(|| self.roles.get(account).copied())
            .or_else(|| type_by_name(account))
    }

    /// Whether the dataset has a chart of accounts at all.
    pub fn has_chart(&self) -> bool {
        self.chart.is_some_and(|c| !c.accounts.is_empty())
    }

    /// The chart's code and entry for `account`, as [`GlChart::of`].
    pub fn gl(&self, account: &str) -> Option<(&'a str, &'a GlAccount)> {
        self.chart.and_then(|c| c.of(account))
    }
}

/// The type of an account from its top-level name as hledger would guess it (`assets`,
/// `liabilities`, `equity`, `revenue` or `income`, `expenses`); `None` for a hierarchy
/// under another name.
pub(crate) fn type_by_name(account: &str) -> Option<GlAccountType> {
    let top = account.split(':').next().unwrap_or(account);
    Some(match top {
        "assets" | "asset" => GlAccountType::Asset,
        "liabilities" | "liability" | "debts" | "debt" => GlAccountType::Liability,
        "equity" => GlAccountType::Equity,
        "revenue" | "revenues" | "income" => GlAccountType::Revenue,
        "expenses" | "expense" => GlAccountType::Expense,
        _ => return None,
    })
}
