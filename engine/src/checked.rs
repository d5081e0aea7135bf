//! Checked `Decimal` arithmetic that names what overflowed.
//!
//! `rust_decimal`'s operators panic on overflow; these wrappers turn the `None` of the
//! `checked_*` methods into [`EngineError::Overflow`] so callers can use `?`. Every crate
//! that does money arithmetic (the engine, accounting, the pipeline's totals) goes through
//! them: no `+` or `-` on money outside a test.

use rust_decimal::Decimal;

use crate::EngineError;

/// `a + b`, or [`EngineError::Overflow`] naming `what`.
pub fn add(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, EngineError> {
    a.checked_add(b).ok_or(EngineError::Overflow { what })
}

/// `a - b`, or [`EngineError::Overflow`] naming `what`.
pub fn sub(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, EngineError> {
    a.checked_sub(b).ok_or(EngineError::Overflow { what })
}

/// `a × b`, or [`EngineError::Overflow`] naming `what`.
pub fn mul(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, EngineError> {
    a.checked_mul(b).ok_or(EngineError::Overflow { what })
}

/// `a / b`, or [`EngineError::Overflow`] naming `what`.
///
/// Callers guarantee `b != 0`; a zero divisor is reported as an overflow too because
/// `checked_div` does not tell the two apart.
pub fn div(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, EngineError> {
    a.checked_div(b).ok_or(EngineError::Overflow { what })
}

/// `a mod b` (sign of `a`), or [`EngineError::Overflow`] naming `what`.
pub fn rem(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, EngineError> {
    a.checked_rem(b).ok_or(EngineError::Overflow { what })
}

/// Σ `values`, or [`EngineError::Overflow`] naming `what`.
pub fn sum<I>(values: I, what: &'static str) -> Result<Decimal, EngineError>
where
    I: IntoIterator<Item = Decimal>,
{
    values
        .into_iter()
        .try_fold(Decimal::ZERO, |acc, v| add(acc, v, what))
}
