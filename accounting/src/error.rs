//! The accounting crate's one error type.
//!
//! Bad *rows* never reach here: they come back as [`billrun_schemas::Reject`]s. What does
//! is what makes a whole run impossible (a customer's region without a tax rate on the
//! issue date, a currency without a minor unit), an overflow of checked arithmetic, or a
//! broken invariant ([`AccountingError::Internal`], a bug).

/// Everything that can stop invoicing, recognition or the ledger.
#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    #[error(
        "customer `{customer_id}` has tax_region `{tax_region}` but no tax rate is in force on {date}; add a row to tax_rates"
    )]
    NoTaxRate {
        customer_id: String,
        tax_region: String,
        date: chrono::NaiveDate,
    },

    /// The tax rate in force was rejected: the rate before it is never used instead.
    #[error(
        "customer `{customer_id}`: the tax rate of region `{tax_region}` in force on {date} was rejected ({why}); fix that row of tax_rates and run again: billrun does not tax at the rate before it"
    )]
    RefusedTaxRate {
        customer_id: String,
        tax_region: String,
        date: chrono::NaiveDate,
        why: String,
    },

    /// A flat fee's plan version in force was rejected: the version before it is never
    /// used instead.
    #[error(
        "subscription `{subscription_id}`: the version of plan `{plan_id}` in force on {date} was rejected ({why}); fix that row of price_plans and run again: billrun does not bill at the version before it"
    )]
    RefusedPlanVersion {
        subscription_id: String,
        plan_id: String,
        date: chrono::NaiveDate,
        why: String,
    },

    /// Money in a currency whose minor unit is unknown cannot be rounded or written:
    /// billrun never guesses one.
    #[error("{context}: currency `{currency}` is not an ISO 4217 currency with a minor unit")]
    UnknownCurrency { currency: String, context: String },

    #[error("billing arithmetic failed: {0}")]
    Engine(#[from] billrun_engine::EngineError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("internal error (a bug in billrun, please report it): {0}")]
    Internal(String),
}

/// Result alias of the accounting crate.
pub type Result<T, E = AccountingError> = std::result::Result<T, E>;

/// The minor unit of `currency`, or [`AccountingError::UnknownCurrency`] naming where it
/// was needed.
///
/// # Errors
/// A currency without an ISO 4217 minor unit.
pub fn minor_units_of(currency: &str, context: impl FnOnce() -> String) -> Result<u32> {
    billrun_engine::minor_units(currency).ok_or_else(|| AccountingError::UnknownCurrency {
        currency: currency.to_string(),
        context: context(),
    })
}
