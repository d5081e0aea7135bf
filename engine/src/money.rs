//! Currency minor units, the two roundings, and `Decimal` ⇄ `Decimal128` conversion.

use iso_currency::Currency;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::{AMOUNT_SCALE, EngineError};

/// The ISO 4217 minor unit of `currency_code`: the number of fractional digits invoice
/// money is rounded to (USD 2, JPY 0, KWD 3).
///
/// Codes are matched exactly as ISO 4217 writes them, upper case: `"usd"` is `None`.
/// Returns `None` for unknown codes and for codes ISO assigns no minor unit (`XXX`,
/// `XAU`, `XDR`, ...), which cannot be invoiced.
#[must_use]
pub fn minor_units(currency_code: &str) -> Option<u32> {
    Currency::from_code(currency_code)?
        .exponent()
        .map(u32::from)
}

/// Rounds `amount` half away from zero to `minor_units` fractional digits: how every
/// invoice line is rounded, once.
///
/// The result carries exactly `minor_units` fractional digits where `Decimal` can hold
/// them (so 5 displays as `5.00` for USD), and a zero result is never negative zero.
#[must_use]
pub fn round_money(amount: Decimal, minor_units: u32) -> Decimal {
    round_to(amount, minor_units)
}

/// Rounds `amount` half away from zero to [`AMOUNT_SCALE`] (12) fractional digits: how
/// a period charge is put on the grid whose differences are the per-event amounts.
#[must_use]
pub fn round_amount(amount: Decimal) -> Decimal {
    round_to(amount, AMOUNT_SCALE)
}

fn round_to(amount: Decimal, dp: u32) -> Decimal {
    let mut rounded = amount.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    if rounded.scale() < dp {
        // Widening the scale never changes the value; it only fixes how it displays.
        rounded.rescale(dp);
    }
    if rounded.is_zero() {
        // -0.004 rounds to a zero that would otherwise print as "-0.00".
        rounded.set_sign_positive(true);
    }
    rounded
}

/// The `i128` mantissa of `value` at `scale` fractional digits, as stored in an Arrow
/// `Decimal128` column of that scale. `value` is first rounded half away from zero to
/// `scale` digits.
///
/// # Errors
///
/// [`EngineError::Overflow`] if the scaled mantissa does not fit in `i128`.
pub fn decimal_to_i128_scaled(value: Decimal, scale: u32) -> Result<i128, EngineError> {
    const WHAT: &str = "Decimal128 mantissa";
    // Values already on the grid (every rated amount) skip the rounding.
    let rounded = if value.scale() <= scale {
        value
    } else {
        value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
    };
    // round_dp never leaves more than `scale` fractional digits, so this cannot wrap.
    let widen_by = scale.saturating_sub(rounded.scale());
    let factor = 10_i128
        .checked_pow(widen_by)
        .ok_or(EngineError::Overflow { what: WHAT })?;
    rounded
        .mantissa()
        .checked_mul(factor)
        .ok_or(EngineError::Overflow { what: WHAT })
}

/// The `Decimal` whose `Decimal128` mantissa at `scale` is `mantissa`.
///
/// # Errors
///
/// [`EngineError::Overflow`] if `|mantissa| ≥ 2^96` or `scale > 28`, the limits of
/// `Decimal`.
pub fn decimal_from_i128_scaled(mantissa: i128, scale: u32) -> Result<Decimal, EngineError> {
    Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| EngineError::Overflow {
        what: "Decimal128 value outside Decimal's range",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        let cases = [
            ("USD", Some(2)),
            ("EUR", Some(2)),
            ("JPY", Some(0)),
            ("KWD", Some(3)),
            ("CLF", Some(4)),
            ("usd", None),  // codes are upper case
            ("XXX", None),  // "no currency" has no minor unit
            ("XAU", None),  // gold: no minor unit
            ("XXX?", None), // not a code at all
            ("", None),
            ("ZZZ", None),
        ];
        for (code, expected) in cases {
            assert_eq!(minor_units(code), expected, "{code}");
        }
    }

    #[test]
    fn round_money_is_half_away_from_zero() {
        let cases = [
            ("1.005", 2, "1.01"),
            ("-1.005", 2, "-1.01"),
            ("1.004999", 2, "1.00"),
            ("2.5", 0, "3"),
            ("-2.5", 0, "-3"),
            ("0.0005", 3, "0.001"),
            ("5", 2, "5.00"),
            ("-0.004", 2, "0.00"),
        ];
        for (amount, minor, expected) in cases {
            let rounded = round_money(d(amount), minor);
            assert_eq!(rounded.to_string(), expected, "{amount} at {minor}");
        }
    }

    #[test]
    fn round_amount_keeps_twelve_digits() {
        assert_eq!(
            round_amount(d("0.0000000000005")).to_string(),
            "0.000000000001"
        );
        assert_eq!(
            round_amount(d("0.00000000000049")).to_string(),
            "0.000000000000"
        );
        assert_eq!(round_amount(d("1.5")).to_string(), "1.500000000000");
    }

    #[test]
    fn decimal128_round_trip() {
        assert_eq!(decimal_to_i128_scaled(d("1.5"), 12), Ok(1_500_000_000_000));
        assert_eq!(decimal_to_i128_scaled(d("-0.000000000001"), 12), Ok(-1));
        assert_eq!(decimal_to_i128_scaled(d("0.0000000000005"), 12), Ok(1));
        assert_eq!(decimal_to_i128_scaled(d("1.25"), 1), Ok(13));
        assert_eq!(
            decimal_from_i128_scaled(1_500_000_000_000, 12),
            Ok(d("1.5"))
        );
        assert!(matches!(
            decimal_to_i128_scaled(Decimal::MAX, 38),
            Err(EngineError::Overflow { .. })
        ));
        assert!(matches!(
            decimal_from_i128_scaled(i128::MAX, 12),
            Err(EngineError::Overflow { .. })
        ));
    }
}
