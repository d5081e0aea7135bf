//! Allocation of an amount over lines in proportion to their standalone selling price
//! (SSP), exact to the minor unit: the basis of revenue recognition.

use rust_decimal::Decimal;

use crate::EngineError;
use crate::money::{decimal_from_i128_scaled, decimal_to_i128_scaled, round_money};

/// Allocates `total` to lines in proportion to `ssps`, exact to the minor unit.
///
/// Uses the largest-remainder method in integer minor units: each line first gets the
/// floor of its exact share, then the units still missing go one each to the lines
/// with the largest remainders, ties to the lower index. So the allocations add up to
/// `total` exactly, every allocation is within one minor unit of its exact share, and a
/// line with SSP 0 gets 0. A negative `total` (a refund) is allocated as the mirror
/// image of its absolute value.
///
/// # Errors
///
/// * [`EngineError::InvalidAllocation`] if there are no lines, an SSP is negative, all
///   SSPs are 0, or `total` has more decimals than `minor_units`.
/// * [`EngineError::Overflow`] if the amounts are too large to allocate exactly in
///   `i128` minor units.
pub fn allocate_by_ssp(
    total: Decimal,
    ssps: &[Decimal],
    minor_units: u32,
) -> Result<Vec<Decimal>, EngineError> {
    const WHAT: &str = "SSP allocation";
    let invalid = |reason: String| Err(EngineError::InvalidAllocation { reason });
    if ssps.is_empty() {
        return invalid("no lines to allocate to".to_owned());
    }
    if let Some(negative) = ssps.iter().find(|ssp| **ssp < Decimal::ZERO) {
        return invalid(format!("SSP {negative} is negative"));
    }
    if ssps.iter().all(Decimal::is_zero) {
        return invalid("every SSP is 0, so there is no proportion to allocate by".to_owned());
    }
    if round_money(total, minor_units) != total {
        return invalid(format!(
            "total {total} has more decimals than the minor unit ({minor_units})"
        ));
    }

    // Integer weights: SSPs at their common scale are exact integers.
    let ssp_scale = ssps.iter().map(Decimal::scale).max().unwrap_or(0);
    let weights = ssps
        .iter()
        .map(|&ssp| decimal_to_i128_scaled(ssp, ssp_scale))
        .collect::<Result<Vec<i128>, _>>()?;
    let weight_sum = weights
        .iter()
        .try_fold(0_i128, |sum, &w| sum.checked_add(w))
        .ok_or(EngineError::Overflow { what: WHAT })?;
    let units = decimal_to_i128_scaled(total.abs(), minor_units)?;

    // share_i = units × w_i / W = floor_i + remainder_i / W, all in integers.
    let mut allocated = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let scaled = units
            .checked_mul(weight)
            .ok_or(EngineError::Overflow { what: WHAT })?;
        allocated.push(scaled / weight_sum);
        remainders.push((scaled % weight_sum, index));
    }
    let floor_sum: i128 = allocated.iter().sum();
    // Σ remainder_i = (units − Σ floor_i) × W with every remainder_i < W, so fewer units
    // are missing than there are lines with a remainder: zero-SSP lines get none.
    let missing = usize::try_from(units - floor_sum).map_err(|_| EngineError::Internal {
        message: format!("allocation floors {floor_sum} exceed the total {units}"),
    })?;
    remainders.sort_by(|(r1, i1), (r2, i2)| r2.cmp(r1).then(i1.cmp(i2)));
    for &(remainder, index) in remainders.iter().take(missing) {
        debug_assert!(remainder > 0, "only lines with a remainder get a unit");
        allocated[index] += 1;
    }
    debug_assert_eq!(allocated.iter().sum::<i128>(), units);

    let negative = total < Decimal::ZERO;
    allocated
        .into_iter()
        .map(|units| {
            let amount =
                decimal_from_i128_scaled(if negative { -units } else { units }, minor_units)?;
            Ok(round_money(amount, minor_units))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn decimals(values: &[&str]) -> Vec<Decimal> {
        values.iter().map(|v| d(v)).collect()
    }

    #[test]
    fn allocation_table() {
        // (total, ssps, minor units, expected)
        let cases: &[(&str, &[&str], u32, &[&str])] = &[
            ("100.00", &["1", "1", "1"], 2, &["33.34", "33.33", "33.33"]),
            ("100.00", &["1", "1", "1"], 0, &["34", "33", "33"]),
            ("10.00", &["0", "3", "1"], 2, &["0", "7.50", "2.50"]),
            (
                "0.05",
                &["1", "1", "1", "1"],
                2,
                &["0.02", "0.01", "0.01", "0.01"],
            ),
            // Larger remainder wins over a lower index: shares 0.333.., 0.666..
            ("0.01", &["1", "2"], 2, &["0", "0.01"]),
            (
                "-100.00",
                &["1", "1", "1"],
                2,
                &["-33.34", "-33.33", "-33.33"],
            ),
            (
                "1.000",
                &["0.5", "0.25", "0.25"],
                3,
                &["0.500", "0.250", "0.250"],
            ),
            ("0", &["1", "2"], 2, &["0", "0"]),
        ];
        for &(total, ssps, minor_units, expected) in cases {
            let allocated = allocate_by_ssp(d(total), &decimals(ssps), minor_units).unwrap();
            assert_eq!(allocated, decimals(expected), "{total} over {ssps:?}");
        }
    }

    #[test]
    fn rejects_meaningless_allocations() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("1.00", &[], "no lines to allocate to"),
            ("1.00", &["1", "-1"], "SSP -1 is negative"),
            (
                "1.00",
                &["0", "0"],
                "every SSP is 0, so there is no proportion to allocate by",
            ),
            (
                "1.005",
                &["1"],
                "total 1.005 has more decimals than the minor unit (2)",
            ),
        ];
        for &(total, ssps, reason) in cases {
            assert_eq!(
                allocate_by_ssp(d(total), &decimals(ssps), 2),
                Err(EngineError::InvalidAllocation {
                    reason: reason.to_owned()
                })
            );
        }
    }
}
