//! Pure billing math for billrun: tier pricing, per-event attribution, proration,
//! rounding, invoice composition, allocation and revenue recognition schedules.
//!
//! # Why pure
//!
//! Every function here takes all of its inputs as arguments and returns a value: no
//! files, no object store, no clock, no async runtime, no DataFusion. Pricing is a
//! function of (plan version, quantity), an invoice is a function of its charges, and
//! a billing window is a function of (period, billing day). That keeps the money logic
//! testable exhaustively (unit tables and property tests run in milliseconds), lets
//! the pipeline call it from any execution engine, and makes re-running a period
//! reproducible by construction: the same inputs cannot give different amounts.
//!
//! # Money is decimal, arithmetic is checked
//!
//! Money and quantities are [`rust_decimal::Decimal`], never binary floats
//! (`clippy::float_arithmetic` is denied below). Every addition, subtraction,
//! multiplication and division goes through `checked_*` and turns an overflow into
//! [`EngineError::Overflow`] naming what was being computed; nothing in the library
//! panics on bad input.
//!
//! # Two precisions
//!
//! * **Rated amounts** (per-event attribution, prorated fees, commitments) keep
//!   [`AMOUNT_SCALE`] = 12 fractional digits. A period charge `F(Q)` is first computed
//!   at full precision, then rounded once to 12 digits ([`round_amount`]); the amount of
//!   event `i` is the difference of two such rounded values. Differences of values on
//!   the same 12-digit grid are exact, so the amounts of a period *telescope*: they add
//!   up to the rounded period charge exactly, whatever the model (see
//!   [`attribution`]).
//! * **Invoice money** is rounded once per invoice line, half away from zero, to the
//!   currency's ISO 4217 minor unit ([`minor_units`], [`round_money`]); invoice totals
//!   are sums of rounded lines, so they are exact too.
//!
//! `Decimal` holds 28 significant digits (a 96-bit mantissa). Amounts are therefore
//! exact at 12 fractional digits while their integer part stays below 10^16; the
//! attribution kernels refuse larger cumulative quantities and charges with
//! [`EngineError::Overflow`] rather than silently dropping fractional digits.
//!
//! # Example
//!
//! ```
//! use billrun_engine::{PlanVersion, PriceModel, Tier, attribute_period_charge};
//! use rust_decimal::Decimal;
//!
//! let d = |s: &str| Decimal::from_str_exact(s).unwrap();
//! // Graduated: the first 100 units at 1.00, every further unit at 0.50.
//! let tiers = vec![
//!     Tier { start: d("0"), unit_price: d("1.00"), flat_fee: Decimal::ZERO },
//!     Tier { start: d("100"), unit_price: d("0.50"), flat_fee: Decimal::ZERO },
//! ];
//! let plan = PlanVersion::new(PriceModel::Graduated, tiers, None)?;
//! assert_eq!(plan.charge(d("150"))?, d("125.00"));
//!
//! // Events of 60, 60 and 30 units share that charge: F(60), F(120) − F(60), ...
//! let amounts = attribute_period_charge(&[d("60"), d("60"), d("30")], &[&plan; 3])?;
//! assert_eq!(amounts, [d("60"), d("50"), d("15")]);
//! # Ok::<(), billrun_engine::EngineError>(())
//! ```
//!
//! # Errors
//!
//! One error type, [`EngineError`]. Bad input gets a precisely named variant the
//! pipeline can route to `rejects`/`unrated`; a broken internal invariant is
//! [`EngineError::Internal`] (and a `debug_assert!` in debug builds).
#![deny(clippy::float_arithmetic)]
#![warn(missing_docs)]

pub mod allocation;
pub mod attribution;
pub mod calendar;
pub mod checked;
mod error;
pub mod invoice;
pub mod money;
pub mod pricing;
pub mod revenue;

pub use allocation::allocate_by_ssp;
pub use attribution::{
    attribute_period_charge, attribute_period_charge_arrow, attribute_period_charges_arrow_grouped,
};
pub use calendar::{
    BillingMonth, DateWindow, ProrationSegment, billing_window, days_since_epoch, prorate_amount,
    prorate_flat_fee,
};
pub use error::EngineError;
pub use invoice::{
    Charge, ComposedInvoice, CreditMemo, InvoiceDraft, InvoiceLine, LineKind, SubscriptionCharges,
    apply_credit, compose_invoice,
};
pub use money::{
    decimal_from_i128_scaled, decimal_to_i128_scaled, minor_units, round_amount, round_money,
};
pub use pricing::{PlanVersion, PriceModel, Tier};
pub use revenue::{
    Carve, CarveOrder, CarveShare, CarveTarget, CarvedToAccount, ContractAllocation, HeldMonth,
    Modification, MonthAmount, Obligation, RecognitionMethod, allocate_contract, hold_until,
    month_start, next_month_start, point_in_time_schedule, ratable_schedule,
};

/// Fractional digits of rated (unrounded) amounts: per-event amounts, prorated fees
/// and commitments, and the `Decimal128(38, 12)` columns that carry them.
pub const AMOUNT_SCALE: u32 = 12;
