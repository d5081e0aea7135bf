//! The engine's single error type.

use rust_decimal::Decimal;

use crate::invoice::LineKind;
use crate::pricing::PriceModel;

/// Everything that can go wrong in the billing math.
///
/// All variants but [`EngineError::Internal`] describe bad input and name the offending
/// value, so the pipeline can attach file, row and column and route the record to
/// `rejects` or `unrated`. [`EngineError::Internal`] is a bug in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A checked operation overflowed `Decimal` or `i128`, or left the range where
    /// amounts are exact at 12 fractional digits.
    #[error("arithmetic overflow computing {what}")]
    Overflow {
        /// What was being computed, e.g. `"graduated tier charge"`.
        what: &'static str,
    },

    /// A plan version's tiers or package size are inconsistent.
    #[error("invalid price plan: {reason}")]
    InvalidPlan {
        /// The price_plans column at fault.
        column: &'static str,
        /// Why, in words a billing analyst understands.
        reason: String,
    },

    /// [`PriceModel::Flat`] has no per-quantity charge: flat fees are prorated by days
    /// ([`crate::prorate_flat_fee`]), not rated per unit.
    #[error("price model `{model}` is not a usage model: flat fees are prorated, not rated")]
    NotUsageModel {
        /// The model that was asked for a usage charge.
        model: PriceModel,
    },

    /// A quantity that must not be negative is: a period's cumulative usage or a
    /// subscription's seat count.
    #[error("quantity {quantity} is negative")]
    NegativeQuantity {
        /// The negative quantity.
        quantity: Decimal,
    },

    /// An Arrow input has a null where a value is required.
    #[error("{column} is null at row {row}")]
    NullInput {
        /// The input's name, e.g. `"quantity"`.
        column: &'static str,
        /// Zero-based row within the array.
        row: usize,
    },

    /// Parallel inputs (one entry per event) have different lengths.
    #[error("{quantities} quantities but {versions} plan versions: expected one per event")]
    LengthMismatch {
        /// Number of quantities.
        quantities: usize,
        /// Number of plan versions (or version indices).
        versions: usize,
    },

    /// A `Decimal128` input has a scale other than the one the kernel works at.
    #[error("{column} has Decimal128 scale {actual}, expected {expected}")]
    UnexpectedScale {
        /// The input's name.
        column: &'static str,
        /// The scale the kernel requires.
        expected: i8,
        /// The scale it was given.
        actual: i8,
    },

    /// A plan version index points past the end of the plan book.
    #[error("plan version index {index} is out of range: the plan book has {book_len} versions")]
    UnknownPlanVersion {
        /// The offending index.
        index: u32,
        /// Number of versions in the book.
        book_len: usize,
    },

    /// Group offsets do not partition the events.
    #[error("invalid group offsets: {reason}")]
    InvalidGroupOffsets {
        /// What is wrong with them.
        reason: String,
    },

    /// A billing period is not a valid `YYYY-MM` month.
    #[error("invalid billing period `{input}`: expected YYYY-MM, e.g. 2026-10")]
    InvalidPeriod {
        /// The text (or rendered value) that was rejected.
        input: String,
    },

    /// A billing day outside `1..=28`, the days every month has.
    #[error("billing_day {day} is outside 1..=28")]
    InvalidBillingDay {
        /// The rejected day.
        day: u32,
    },

    /// Proration over a window of zero days.
    #[error("cannot prorate over a billing window of 0 days")]
    EmptyWindow,

    /// More active days than the window has.
    #[error("{active_days} active days exceed the {days_in_window} days of the billing window")]
    InvalidProration {
        /// Total active days given.
        active_days: u64,
        /// Days in the billing window.
        days_in_window: u32,
    },

    /// A discount percentage outside `0..=100`.
    #[error("discount_percent {percent} is outside 0..=100")]
    InvalidDiscount {
        /// The rejected percentage.
        percent: Decimal,
    },

    /// A negative tax rate.
    #[error("tax rate {rate} is negative")]
    InvalidTaxRate {
        /// The rejected rate (a fraction: 0.2 = 20%).
        rate: Decimal,
    },

    /// A negative minimum commitment.
    #[error("subscription {subscription_id}: min_commitment {amount} is negative")]
    InvalidCommitment {
        /// The subscription carrying it.
        subscription_id: String,
        /// The rejected amount.
        amount: Decimal,
    },

    /// A charge whose kind is not `usage` or `recurring`: the other kinds are derived
    /// by [`crate::compose_invoice`] itself.
    #[error(
        "subscription {subscription_id}: charge for product {product_id} has kind `{kind}`, \
         expected usage or recurring"
    )]
    InvalidChargeKind {
        /// The subscription carrying the charge.
        subscription_id: String,
        /// The charge's product.
        product_id: String,
        /// The rejected kind.
        kind: LineKind,
    },

    /// A credit memo that cannot be applied as given.
    #[error("credit memo {credit_memo_id}: {reason}")]
    InvalidCreditMemo {
        /// The memo.
        credit_memo_id: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An allocation that has no meaningful answer.
    #[error("cannot allocate: {reason}")]
    InvalidAllocation {
        /// Why.
        reason: String,
    },

    /// A revenue schedule that has no meaningful answer (an empty service period, a
    /// modification outside it).
    #[error("cannot schedule revenue: {reason}")]
    InvalidSchedule {
        /// Why.
        reason: String,
    },

    /// A broken internal invariant: a bug in billrun-engine, not bad input.
    #[error("internal error (a bug in billrun-engine): {message}")]
    Internal {
        /// The invariant that failed.
        message: String,
    },
}
