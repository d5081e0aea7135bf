//! Per-event attribution of a period charge.
//!
//! Tiered prices are defined on a period's *total* quantity, yet `rated_usage` needs an
//! amount per event. For one (subscription, product, billing period) group with events
//! ordered by `(ts, event_id)`, let `Q_i` be the cumulative quantity through event `i`
//! (`Q_-1 = 0`) and `F12_v = round_amount ∘ F_v` the period charge of plan version `v`
//! on the 12-digit grid. Event `i`, priced by the version `v_i` in force at its `ts`,
//! gets
//!
//! ```text
//! amount_i = F12_{v_i}(Q_i) − F12_{v_i}(Q_{i−1})
//! ```
//!
//! Both terms sit on the grid, so each difference is exact, and when the version does
//! not change inside the group the sum telescopes to `F12(Q_n)`: the amounts add up to
//! the rounded period charge exactly, for every model. `Q` keeps accumulating across a
//! version change, so a later version sees the period's real position in its tiers. A
//! volume tier change lowers the price of units already used, which makes that event's
//! amount negative; that is the correct attribution, not an error.
//!
//! Individual event quantities may be negative (corrections) as long as the cumulative
//! quantity never is.

use std::ptr;

use arrow_array::{Array, Decimal128Array, UInt32Array};
use rust_decimal::Decimal;

use crate::money::{decimal_from_i128_scaled, decimal_to_i128_scaled, round_amount};
use crate::pricing::{PlanVersion, PriceModel};
use crate::{AMOUNT_SCALE, EngineError, checked};

/// Cumulative quantities and charges must stay below 10^16: with 12 fractional digits
/// that is 28 significant digits, all `Decimal`'s 96-bit mantissa holds exactly.
const EXACT_LIMIT: Decimal = Decimal::from_parts(0x6FC1_0000, 0x0023_86F2, 0, false, 0);
/// [`EXACT_LIMIT`] as a mantissa at [`AMOUNT_SCALE`].
const EXACT_LIMIT_MANTISSA: i128 = 10_i128.pow(28);
/// Mantissas of `Decimal` are below 2^96.
const DECIMAL_MANTISSA_LIMIT: i128 = 1 << 96;
/// `Decimal128(38, _)` holds mantissas of at most 38 digits.
const DECIMAL128_PRECISION: u8 = 38;
const DECIMAL128_LIMIT: i128 = 10_i128.pow(38);
/// Output and input scale of the Arrow kernels.
// AMOUNT_SCALE is 12, which fits in i8.
const ARROW_SCALE: i8 = AMOUNT_SCALE as i8;
/// Largest unit-price scale the per-unit fast path takes: `12 + 16 = 28` is the most
/// fractional digits an exact `Decimal` product of quantity and price can have.
const FAST_PATH_MAX_PRICE_SCALE: u32 = 16;

/// Attributes a period charge to the events of one (subscription, product, billing
/// period) group.
///
/// `quantities[i]` is event `i`'s quantity and `versions[i]` the plan version in force
/// at its `ts`, with events already ordered by `(ts, event_id)`. Returns
/// `amount_i = F12_{v_i}(Q_i) − F12_{v_i}(Q_{i−1})` for every event (see the
/// [module documentation](crate::attribution)); the amounts of a group whose version
/// does not change add up exactly to `round_amount(F(Q_n))`.
///
/// # Errors
///
/// * [`EngineError::LengthMismatch`] if the slices differ in length.
/// * [`EngineError::NegativeQuantity`] if a cumulative quantity drops below 0.
/// * [`EngineError::NotUsageModel`] if a version is [`PriceModel::Flat`].
/// * [`EngineError::Overflow`] if a cumulative quantity or period charge reaches
///   10^16, beyond which 12-digit amounts are no longer exact.
pub fn attribute_period_charge(
    quantities: &[Decimal],
    versions: &[&PlanVersion],
) -> Result<Vec<Decimal>, EngineError> {
    if quantities.len() != versions.len() {
        return Err(EngineError::LengthMismatch {
            quantities: quantities.len(),
            versions: versions.len(),
        });
    }
    let mut period = PeriodAttribution::default();
    quantities
        .iter()
        .zip(versions)
        .map(|(&quantity, &version)| period.attribute(quantity, version))
        .collect()
}

/// [`attribute_period_charge`] over Arrow arrays, for one group.
///
/// `quantities` is `Decimal128` at scale [`AMOUNT_SCALE`] (12); `version_index[i]`
/// indexes `book`. Returns `Decimal128(38, 12)` amounts, one per event.
///
/// # Errors
///
/// As [`attribute_period_charges_arrow_grouped`].
pub fn attribute_period_charge_arrow(
    quantities: &Decimal128Array,
    version_index: &UInt32Array,
    book: &[PlanVersion],
) -> Result<Decimal128Array, EngineError> {
    attribute_period_charges_arrow_grouped(quantities, version_index, &[0, quantities.len()], book)
}

/// [`attribute_period_charge`] over Arrow arrays holding many groups back to back.
///
/// Group `g` is rows `group_offsets[g]..group_offsets[g + 1]` (Arrow offset
/// convention: the first offset is 0, the last is the row count). Each group's
/// cumulative quantity starts at 0. One call over a sorted batch avoids an array
/// allocation per group.
///
/// A group whose rows all use one per_unit, graduated or volume version is computed in
/// integer mantissas instead of `Decimal`, when its numbers are small enough for that to
/// give exactly the result of the general formula (it falls back to the general formula
/// otherwise); `cargo bench -p billrun-benches` measures both.
///
/// # Errors
///
/// * [`EngineError::UnexpectedScale`] if `quantities` is not at scale 12.
/// * [`EngineError::LengthMismatch`] if the arrays differ in length.
/// * [`EngineError::NullInput`] for a null quantity or version index.
/// * [`EngineError::InvalidGroupOffsets`] if the offsets do not partition the rows.
/// * [`EngineError::UnknownPlanVersion`] for an index past the end of `book`.
/// * Those of [`attribute_period_charge`].
pub fn attribute_period_charges_arrow_grouped(
    quantities: &Decimal128Array,
    version_index: &UInt32Array,
    group_offsets: &[usize],
    book: &[PlanVersion],
) -> Result<Decimal128Array, EngineError> {
    if quantities.scale() != ARROW_SCALE {
        return Err(EngineError::UnexpectedScale {
            column: "quantity",
            expected: ARROW_SCALE,
            actual: quantities.scale(),
        });
    }
    if quantities.len() != version_index.len() {
        return Err(EngineError::LengthMismatch {
            quantities: quantities.len(),
            versions: version_index.len(),
        });
    }
    check_no_nulls(quantities, "quantity")?;
    check_no_nulls(version_index, "version_index")?;
    check_group_offsets(group_offsets, quantities.len())?;

    let quantities = quantities.values();
    let version_index = version_index.values();
    let mut amounts = Vec::with_capacity(quantities.len());
    for group in group_offsets.windows(2) {
        let rows = group[0]..group[1];
        attribute_group(
            &quantities[rows.clone()],
            &version_index[rows],
            book,
            &mut amounts,
        )?;
    }
    debug_assert_eq!(amounts.len(), quantities.len());
    Decimal128Array::from(amounts)
        .with_precision_and_scale(DECIMAL128_PRECISION, ARROW_SCALE)
        .map_err(|e| EngineError::Internal {
            message: format!("Decimal128(38, 12) rejected: {e}"),
        })
}

/// Running state of one group: the cumulative quantity and the last event's
/// `F12(Q)`, which is the next event's `F12(Q_{i−1})` while the version stays the same.
#[derive(Debug, Default)]
struct PeriodAttribution<'a> {
    cumulative: Decimal,
    last_charge: Option<(&'a PlanVersion, Decimal)>,
}

impl<'a> PeriodAttribution<'a> {
    fn attribute(
        &mut self,
        quantity: Decimal,
        version: &'a PlanVersion,
    ) -> Result<Decimal, EngineError> {
        let before = match self.last_charge {
            // Same version object, same F: reuse instead of re-pricing Q_{i−1}.
            Some((last_version, charge)) if ptr::eq(last_version, version) => charge,
            _ => charge_on_grid(version, self.cumulative)?,
        };
        self.cumulative = checked::add(self.cumulative, quantity, "cumulative quantity")?;
        if self.cumulative.abs() >= EXACT_LIMIT {
            return Err(EngineError::Overflow {
                what: "cumulative quantity (exact only below 10^16)",
            });
        }
        let after = charge_on_grid(version, self.cumulative)?;
        self.last_charge = Some((version, after));
        checked::sub(after, before, "event amount")
    }
}

/// `F12_v(q)`, refusing charges too large to be exact at 12 fractional digits.
fn charge_on_grid(version: &PlanVersion, q: Decimal) -> Result<Decimal, EngineError> {
    let charge = round_amount(version.charge(q)?);
    if charge.abs() >= EXACT_LIMIT {
        return Err(EngineError::Overflow {
            what: "period charge (exact only below 10^16)",
        });
    }
    Ok(charge)
}

fn check_no_nulls(array: &dyn Array, column: &'static str) -> Result<(), EngineError> {
    if array.null_count() == 0 {
        return Ok(());
    }
    let row = (0..array.len())
        .find(|&row| array.is_null(row))
        .unwrap_or_default();
    Err(EngineError::NullInput { column, row })
}

fn check_group_offsets(offsets: &[usize], rows: usize) -> Result<(), EngineError> {
    let invalid = |reason: String| Err(EngineError::InvalidGroupOffsets { reason });
    match (offsets.first(), offsets.last()) {
        (Some(0), Some(&last)) if last == rows => {}
        (Some(0), Some(&last)) => {
            return invalid(format!(
                "last offset is {last}, expected the row count {rows}"
            ));
        }
        (Some(first), _) => return invalid(format!("first offset is {first}, expected 0")),
        (None, _) => return invalid("no offsets: expected at least [0]".to_owned()),
    }
    if let Some(pair) = offsets.windows(2).find(|pair| pair[0] > pair[1]) {
        return invalid(format!("offsets decrease from {} to {}", pair[0], pair[1]));
    }
    Ok(())
}

fn lookup(book: &[PlanVersion], index: u32) -> Result<&PlanVersion, EngineError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| book.get(i))
        .ok_or(EngineError::UnknownPlanVersion {
            index,
            book_len: book.len(),
        })
}

/// Appends the amounts of one group (quantity mantissas at scale 12) to `amounts`.
fn attribute_group(
    quantities: &[i128],
    version_index: &[u32],
    book: &[PlanVersion],
    amounts: &mut Vec<i128>,
) -> Result<(), EngineError> {
    if let Some(&first) = version_index.first()
        && version_index.iter().all(|&index| index == first)
    {
        let version = lookup(book, first)?;
        if attribute_tiered_exact(quantities, version, amounts) {
            return Ok(());
        }
    }
    attribute_group_general(quantities, version_index, book, amounts)
}

/// The general formula, event by event, in `Decimal`.
fn attribute_group_general(
    quantities: &[i128],
    version_index: &[u32],
    book: &[PlanVersion],
    amounts: &mut Vec<i128>,
) -> Result<(), EngineError> {
    let mut period = PeriodAttribution::default();
    for (&quantity, &index) in quantities.iter().zip(version_index) {
        let version = lookup(book, index)?;
        let quantity = decimal_from_i128_scaled(quantity, AMOUNT_SCALE)?;
        let amount = period.attribute(quantity, version)?;
        let amount = decimal_to_i128_scaled(amount, AMOUNT_SCALE)?;
        // Both F12 terms are below 10^16, so |amount| < 2 × 10^28 at scale 12.
        debug_assert!(amount.unsigned_abs() < DECIMAL128_LIMIT.unsigned_abs());
        amounts.push(amount);
    }
    Ok(())
}

/// The integer fast path for one-version groups of per_unit, graduated and volume
/// plans: appends the group's amounts and returns `true`, or leaves `amounts` as it was
/// and returns `false` when the group needs the general formula (package plans, a
/// negative event quantity, or numbers too large for the guards below).
///
/// With every unit price written as a mantissa at the plans' largest price scale `s`,
/// tier starts as mantissas at scale 12 and fees at scale `12 + s`, the exact charge
/// `F(Q)` at scale `12 + s` is an integer: `Q × p_k + fee_k` (per_unit, volume) or
/// `base_k + (Q − start_k) × p_k` (graduated, `base_k` = the full price of every
/// earlier tier plus the fees of every tier reached), for the tier `k` that `Q`
/// reaches. `F12(Q)` is that integer divided by `10^s`, rounded half away from zero.
/// The general formula computes the same value whenever `Decimal` holds every
/// intermediate exactly, which is what the guards check: `s ≤ 16`, starts and fees on
/// the 12-digit grid, exact values below 2^96, and `0 ≤ Q`, `F12(Q) < 10^16`
/// (otherwise the general formula reports the error). The cumulative quantity only
/// grows, so the tier `k` is found by walking forward, not by searching.
fn attribute_tiered_exact(
    quantities: &[i128],
    version: &PlanVersion,
    amounts: &mut Vec<i128>,
) -> bool {
    let Some(tiers) = IntegerTiers::new(version) else {
        return false;
    };
    let len_before = amounts.len();
    amounts.reserve(quantities.len());
    // A constant divisor lets the compiler replace the division by a multiplication.
    let done = match tiers.price_scale {
        0 => tiered_kernel::<1>(quantities, &tiers, amounts),
        1 => tiered_kernel::<10>(quantities, &tiers, amounts),
        2 => tiered_kernel::<100>(quantities, &tiers, amounts),
        3 => tiered_kernel::<1_000>(quantities, &tiers, amounts),
        4 => tiered_kernel::<10_000>(quantities, &tiers, amounts),
        5 => tiered_kernel::<100_000>(quantities, &tiers, amounts),
        6 => tiered_kernel::<1_000_000>(quantities, &tiers, amounts),
        7 => tiered_kernel::<10_000_000>(quantities, &tiers, amounts),
        8 => tiered_kernel::<100_000_000>(quantities, &tiers, amounts),
        9 => tiered_kernel::<1_000_000_000>(quantities, &tiers, amounts),
        10 => tiered_kernel::<10_000_000_000>(quantities, &tiers, amounts),
        11 => tiered_kernel::<100_000_000_000>(quantities, &tiers, amounts),
        12 => tiered_kernel::<1_000_000_000_000>(quantities, &tiers, amounts),
        13 => tiered_kernel::<10_000_000_000_000>(quantities, &tiers, amounts),
        14 => tiered_kernel::<100_000_000_000_000>(quantities, &tiers, amounts),
        15 => tiered_kernel::<1_000_000_000_000_000>(quantities, &tiers, amounts),
        16 => tiered_kernel::<10_000_000_000_000_000>(quantities, &tiers, amounts),
        _ => None,
    }
    .is_some();
    if !done {
        amounts.truncate(len_before);
    }
    done
}

/// A plan version's tiers as integer mantissas (see [`attribute_tiered_exact`]).
#[derive(Debug)]
struct IntegerTiers {
    graduated: bool,
    /// Largest scale of a unit price, at most [`FAST_PATH_MAX_PRICE_SCALE`].
    price_scale: u32,
    /// Tier starts at scale 12.
    starts: Vec<i128>,
    /// Unit prices at `price_scale`.
    prices: Vec<i128>,
    /// Per tier: the fee (per_unit, volume) or `base_k` (graduated), at `12 + price_scale`.
    offsets: Vec<i128>,
}

impl IntegerTiers {
    fn new(version: &PlanVersion) -> Option<Self> {
        let graduated = match version.model() {
            PriceModel::PerUnit | PriceModel::Volume => false,
            PriceModel::Graduated => true,
            PriceModel::Package | PriceModel::Flat => return None,
        };
        let tiers = version.tiers();
        let price_scale = tiers
            .iter()
            .map(|t| t.unit_price.normalize().scale())
            .max()?;
        if price_scale > FAST_PATH_MAX_PRICE_SCALE {
            return None;
        }
        let at_scale = |d: Decimal, scale: u32| -> Option<i128> {
            let d = d.normalize();
            let shift = scale.checked_sub(d.scale())?;
            d.mantissa().checked_mul(10_i128.checked_pow(shift)?)
        };
        let mut starts = Vec::with_capacity(tiers.len());
        let mut prices = Vec::with_capacity(tiers.len());
        let mut offsets = Vec::with_capacity(tiers.len());
        let mut base: i128 = 0;
        for (k, tier) in tiers.iter().enumerate() {
            let start = at_scale(tier.start, AMOUNT_SCALE)?;
            let price = at_scale(tier.unit_price, price_scale)?;
            // Fees on the 12-digit grid, moved to scale 12 + s.
            let fee = at_scale(tier.flat_fee, AMOUNT_SCALE)?
                .checked_mul(10_i128.checked_pow(price_scale)?)?;
            if graduated {
                if k > 0 {
                    // The previous tier in full: (start_k − start_{k−1}) × p_{k−1}.
                    let width = start.checked_sub(starts[k - 1])?;
                    base = base.checked_add(width.checked_mul(prices[k - 1])?)?;
                }
                base = base.checked_add(fee)?;
                offsets.push(base);
            } else {
                offsets.push(fee);
            }
            starts.push(start);
            prices.push(price);
        }
        Some(Self {
            graduated,
            price_scale,
            starts,
            prices,
            offsets,
        })
    }
}

fn tiered_kernel<const DIVISOR: u64>(
    quantities: &[i128],
    tiers: &IntegerTiers,
    amounts: &mut Vec<i128>,
) -> Option<()> {
    let last_tier = tiers.starts.len() - 1;
    let mut tier = 0;
    let mut cumulative: i128 = 0;
    let mut charge_before: i128 = 0;
    for &quantity in quantities {
        if quantity < 0 {
            return None;
        }
        cumulative = cumulative.checked_add(quantity)?;
        if cumulative >= EXACT_LIMIT_MANTISSA {
            return None;
        }
        let charge = if cumulative == 0 {
            0
        } else {
            while tier < last_tier && cumulative > tiers.starts[tier + 1] {
                tier += 1;
            }
            let units = if tiers.graduated {
                cumulative - tiers.starts[tier]
            } else {
                cumulative
            };
            let exact = tier_charge(units, tiers.prices[tier], tiers.offsets[tier])?;
            divide_half_away_from_zero::<DIVISOR>(exact)
        };
        if charge >= EXACT_LIMIT_MANTISSA {
            return None;
        }
        amounts.push(charge - charge_before);
        charge_before = charge;
    }
    Some(())
}

/// `units × price + offset` when it is below 2^96, for non-negative operands.
#[inline]
fn tier_charge(units: i128, price: i128, offset: i128) -> Option<i128> {
    let exact = match (u64::try_from(units), u64::try_from(price)) {
        // Everyday numbers: one 64 × 64 → 128-bit multiplication, which cannot overflow.
        (Ok(units), Ok(price)) => {
            let product = i128::try_from(u128::from(units) * u128::from(price)).ok()?;
            product.checked_add(offset)?
        }
        _ => units.checked_mul(price)?.checked_add(offset)?,
    };
    (exact < DECIMAL_MANTISSA_LIMIT).then_some(exact)
}

/// `value / DIVISOR` rounded half away from zero, for `0 ≤ value < 2^96`.
#[inline]
fn divide_half_away_from_zero<const DIVISOR: u64>(value: i128) -> i128 {
    if DIVISOR == 1 {
        return value;
    }
    // Most charges fit in 64 bits, where a constant division is a multiplication.
    if let Ok(small) = u64::try_from(value) {
        let (quotient, remainder) = (small / DIVISOR, small % DIVISOR);
        // remainder < DIVISOR ≤ 10^16, so doubling it cannot overflow.
        return i128::from(quotient + u64::from(remainder * 2 >= DIVISOR));
    }
    let divisor = i128::from(DIVISOR);
    let (quotient, remainder) = (value / divisor, value % divisor);
    quotient + i128::from(remainder * 2 >= divisor)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::pricing::Tier;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn version(model: PriceModel, tiers: &[(&str, &str, &str)]) -> PlanVersion {
        let tiers = tiers
            .iter()
            .map(|&(start, price, fee)| Tier {
                start: d(start),
                unit_price: d(price),
                flat_fee: d(fee),
            })
            .collect();
        PlanVersion::new(model, tiers, None).unwrap()
    }

    fn decimals(values: &[&str]) -> Vec<Decimal> {
        values.iter().map(|v| d(v)).collect()
    }

    fn quantity_array(values: &[&str]) -> Decimal128Array {
        let mantissas: Vec<i128> = values
            .iter()
            .map(|v| decimal_to_i128_scaled(d(v), AMOUNT_SCALE).unwrap())
            .collect();
        Decimal128Array::from(mantissas)
            .with_precision_and_scale(38, 12)
            .unwrap()
    }

    #[test]
    fn exact_limit_is_ten_to_the_sixteenth() {
        assert_eq!(EXACT_LIMIT, Decimal::from(10_i64.pow(16)));
    }

    #[test]
    fn graduated_amounts_add_up_to_the_contract_example() {
        let graduated = version(
            PriceModel::Graduated,
            &[("0", "1.00", "0"), ("100", "0.50", "0")],
        );
        let amounts =
            attribute_period_charge(&decimals(&["60", "60", "30"]), &[&graduated; 3]).unwrap();
        // F(60) = 60, F(120) = 110, F(150) = 125.
        assert_eq!(amounts, decimals(&["60", "50", "15"]));
    }

    #[test]
    fn volume_tier_change_gives_a_negative_amount() {
        let volume = version(
            PriceModel::Volume,
            &[("0", "1.00", "0"), ("100", "0.50", "0")],
        );
        let amounts = attribute_period_charge(&decimals(&["100", "1"]), &[&volume; 2]).unwrap();
        // F(100) = 100.00, F(101) = 50.50: the 101st unit re-prices all earlier ones.
        assert_eq!(amounts, decimals(&["100", "-49.5"]));
    }

    #[test]
    fn version_change_keeps_accumulating() {
        let v1 = version(PriceModel::PerUnit, &[("0", "1", "0")]);
        let v2 = version(PriceModel::PerUnit, &[("0", "2", "0")]);
        let amounts = attribute_period_charge(&decimals(&["10", "10"]), &[&v1, &v2]).unwrap();
        // Event 2 is priced by v2 from Q = 10 to Q = 20: 40 − 20.
        assert_eq!(amounts, decimals(&["10", "20"]));
    }

    #[test]
    fn amounts_telescope_through_rounding() {
        // F(q) = 0.0000000000003 × q has 13 digits; each F is rounded before differencing.
        let tiny = version(PriceModel::PerUnit, &[("0", "0.0000000000003", "0")]);
        let amounts = attribute_period_charge(&decimals(&["1", "1", "1"]), &[&tiny; 3]).unwrap();
        assert_eq!(
            amounts,
            decimals(&["0", "0.000000000001", "0"]),
            "F12 = 0, 1e-12, 1e-12"
        );
        let total: Decimal = amounts.iter().sum();
        assert_eq!(total, round_amount(tiny.charge(d("3")).unwrap()));
    }

    #[test]
    fn negative_event_quantities_are_corrections() {
        let per_unit = version(PriceModel::PerUnit, &[("0", "2", "1")]);
        let amounts =
            attribute_period_charge(&decimals(&["5", "-2", "-3"]), &[&per_unit; 3]).unwrap();
        // F(5) = 11, F(3) = 7, F(0) = 0: the fee leaves with the last unit.
        assert_eq!(amounts, decimals(&["11", "-4", "-7"]));
        assert_eq!(
            attribute_period_charge(&decimals(&["1", "-2"]), &[&per_unit; 2]),
            Err(EngineError::NegativeQuantity { quantity: d("-1") })
        );
    }

    #[test]
    fn slice_errors() {
        let per_unit = version(PriceModel::PerUnit, &[("0", "1", "0")]);
        assert_eq!(
            attribute_period_charge(&decimals(&["1", "2"]), &[&per_unit]),
            Err(EngineError::LengthMismatch {
                quantities: 2,
                versions: 1
            })
        );
        let flat = version(PriceModel::Flat, &[("0", "10", "0")]);
        assert_eq!(
            attribute_period_charge(&decimals(&["1"]), &[&flat]),
            Err(EngineError::NotUsageModel {
                model: PriceModel::Flat
            })
        );
        assert!(matches!(
            attribute_period_charge(&decimals(&["10000000000000000"]), &[&per_unit]),
            Err(EngineError::Overflow { .. })
        ));
        let expensive = version(PriceModel::PerUnit, &[("0", "1000000000", "0")]);
        assert!(matches!(
            attribute_period_charge(&decimals(&["10000000"]), &[&expensive]),
            Err(EngineError::Overflow { .. })
        ));
    }

    #[test]
    fn arrow_matches_slices_on_a_mixed_book() {
        let book = vec![
            version(
                PriceModel::Volume,
                &[("0", "1.00", "0"), ("100", "0.50", "2")],
            ),
            version(PriceModel::PerUnit, &[("0", "0.125", "3")]),
        ];
        let quantities = ["60", "50", "0.5", "7"];
        let index = [0_u32, 0, 1, 1];
        let amounts = attribute_period_charge_arrow(
            &quantity_array(&quantities),
            &UInt32Array::from(index.to_vec()),
            &book,
        )
        .unwrap();
        let versions: Vec<&PlanVersion> = index.iter().map(|&i| &book[i as usize]).collect();
        let expected = attribute_period_charge(&decimals(&quantities), &versions).unwrap();
        let actual: Vec<Decimal> = amounts
            .values()
            .iter()
            .map(|&m| decimal_from_i128_scaled(m, 12).unwrap())
            .collect();
        assert_eq!(actual, expected);
        assert_eq!((amounts.precision(), amounts.scale()), (38, 12));
    }

    #[test]
    fn grouped_arrow_restarts_each_group() {
        let book = vec![version(
            PriceModel::Graduated,
            &[("0", "1.00", "0"), ("100", "0.50", "0")],
        )];
        let amounts = attribute_period_charges_arrow_grouped(
            &quantity_array(&["100", "50", "100", "50"]),
            &UInt32Array::from(vec![0, 0, 0, 0]),
            &[0, 2, 2, 4],
            &book,
        )
        .unwrap();
        let expected: Vec<i128> = ["100", "25", "100", "25"]
            .iter()
            .map(|v| decimal_to_i128_scaled(d(v), 12).unwrap())
            .collect();
        assert_eq!(amounts.values().to_vec(), expected);
    }

    #[test]
    fn arrow_input_errors() {
        let book = vec![version(PriceModel::PerUnit, &[("0", "1", "0")])];
        let one = quantity_array(&["1"]);
        let index = UInt32Array::from(vec![0]);

        let wrong_scale = Decimal128Array::from(vec![1_i128])
            .with_precision_and_scale(38, 2)
            .unwrap();
        assert_eq!(
            attribute_period_charge_arrow(&wrong_scale, &index, &book),
            Err(EngineError::UnexpectedScale {
                column: "quantity",
                expected: 12,
                actual: 2
            })
        );
        let with_null = Decimal128Array::from(vec![Some(1_i128), None])
            .with_precision_and_scale(38, 12)
            .unwrap();
        assert_eq!(
            attribute_period_charge_arrow(&with_null, &UInt32Array::from(vec![0, 0]), &book),
            Err(EngineError::NullInput {
                column: "quantity",
                row: 1
            })
        );
        assert_eq!(
            attribute_period_charge_arrow(&one, &UInt32Array::from(vec![None]), &book),
            Err(EngineError::NullInput {
                column: "version_index",
                row: 0
            })
        );
        assert_eq!(
            attribute_period_charge_arrow(&one, &UInt32Array::from(vec![0, 0]), &book),
            Err(EngineError::LengthMismatch {
                quantities: 1,
                versions: 2
            })
        );
        assert_eq!(
            attribute_period_charge_arrow(&one, &UInt32Array::from(vec![3]), &book),
            Err(EngineError::UnknownPlanVersion {
                index: 3,
                book_len: 1
            })
        );
        for (offsets, reason) in [
            (&[][..], "no offsets: expected at least [0]"),
            (&[1, 1][..], "first offset is 1, expected 0"),
            (&[0, 2][..], "last offset is 2, expected the row count 1"),
        ] {
            assert_eq!(
                attribute_period_charges_arrow_grouped(&one, &index, offsets, &book),
                Err(EngineError::InvalidGroupOffsets {
                    reason: reason.to_owned()
                })
            );
        }
        let two = quantity_array(&["1", "1"]);
        assert_eq!(
            attribute_period_charges_arrow_grouped(
                &two,
                &UInt32Array::from(vec![0, 0]),
                &[0, 2, 1, 2],
                &book
            ),
            Err(EngineError::InvalidGroupOffsets {
                reason: "offsets decrease from 2 to 1".to_owned()
            })
        );
    }

    #[test]
    fn fast_path_is_taken_only_when_exact() {
        let mut amounts = Vec::new();
        let typical = version(PriceModel::PerUnit, &[("0", "0.0015", "2.5")]);
        assert!(attribute_tiered_exact(
            &[1_000_000_000_000, 500_000_000_000],
            &typical,
            &mut amounts
        ));
        // F12(1) = 2.5015, F12(1.5) = 2.50225.
        assert_eq!(amounts, [2_501_500_000_000, 750_000_000]);

        let too_fine = version(PriceModel::PerUnit, &[("0", "0.00000000000000001", "0")]);
        amounts.clear();
        assert!(!attribute_tiered_exact(&[1], &too_fine, &mut amounts));
        assert!(amounts.is_empty(), "a refused fast path leaves no output");

        let negative = version(PriceModel::PerUnit, &[("0", "1", "0")]);
        assert!(!attribute_tiered_exact(&[5, -6], &negative, &mut amounts));
        assert!(amounts.is_empty());

        // The contract's graduated example: F(60) = 60, F(120) = 110, F(150) = 125.
        let graduated = version(
            PriceModel::Graduated,
            &[("0", "1.00", "0"), ("100", "0.50", "0")],
        );
        let units = |u: i128| u * 1_000_000_000_000;
        assert!(attribute_tiered_exact(
            &[units(60), units(60), units(30)],
            &graduated,
            &mut amounts
        ));
        assert_eq!(amounts, [units(60), units(50), units(15)]);

        let package = PlanVersion::new(
            PriceModel::Package,
            vec![Tier {
                start: Decimal::ZERO,
                unit_price: d("5"),
                flat_fee: Decimal::ZERO,
            }],
            Some(d("100")),
        )
        .unwrap();
        amounts.clear();
        assert!(!attribute_tiered_exact(&[units(1)], &package, &mut amounts));
        assert!(amounts.is_empty());
    }

    fn per_unit_version() -> impl Strategy<Value = PlanVersion> {
        // Prices and fees with up to 18 digits, covering the fast path's refusals, and
        // raw scales with trailing zeros.
        (0_i64..10_000_000, 0_u32..=18, 0_i64..100_000, 0_u32..=14).prop_map(
            |(price, price_scale, fee, fee_scale)| {
                let tier = Tier {
                    start: Decimal::ZERO,
                    unit_price: Decimal::new(price, price_scale),
                    flat_fee: Decimal::new(fee, fee_scale),
                };
                PlanVersion::new(PriceModel::PerUnit, vec![tier], None).unwrap()
            },
        )
    }

    fn quantity_mantissas() -> impl Strategy<Value = Vec<i128>> {
        // Mostly everyday quantities, which the fast path takes; now and then a volume
        // near the 10^16 limit or a correction, which it must refuse or get right.
        let quantity = prop_oneof![
            // Whole units.
            30 => (0_i128..1_000).prop_map(|q| q * 10_i128.pow(12)),
            // Any value on the 12-digit grid.
            30 => 0_i128..1_000_000_000_000_000,
            1 => 0_i128..3 * 10_i128.pow(27),
            1 => (-1_000_i128..0).prop_map(|q| q * 10_i128.pow(10)),
        ];
        prop::collection::vec(quantity, 0..40)
    }

    fn tiered_version() -> impl Strategy<Value = PlanVersion> {
        // Graduated or volume, 1 to 5 tiers with distinct starts of up to 14 fractional
        // digits (some off the 12-digit grid, which the fast path must refuse), prices
        // of up to 18 digits and fees of up to 14.
        let tier = (0_i64..10_000_000, 0_u32..=18, 0_i64..100_000, 0_u32..=14);
        (
            any::<bool>(),
            prop::collection::btree_set((1_i64..100_000_000, 0_u32..=14), 0..5),
            prop::collection::vec(tier, 5),
        )
            .prop_filter_map(
                "tier starts must be distinct",
                |(graduated, starts, prices)| {
                    let starts: std::collections::BTreeSet<Decimal> =
                        std::iter::once(Decimal::ZERO)
                            .chain(starts.into_iter().map(|(m, s)| Decimal::new(m, s)))
                            .collect();
                    let tiers = starts
                        .into_iter()
                        .zip(prices)
                        .map(|(start, (price, price_scale, fee, fee_scale))| Tier {
                            start,
                            unit_price: Decimal::new(price, price_scale),
                            flat_fee: Decimal::new(fee, fee_scale),
                        })
                        .collect();
                    let model = if graduated {
                        PriceModel::Graduated
                    } else {
                        PriceModel::Volume
                    };
                    PlanVersion::new(model, tiers, None).ok()
                },
            )
    }

    proptest! {
        #[test]
        fn fast_paths_equal_the_general_formula(
            plan in prop_oneof![tiered_version(), per_unit_version()],
            quantities in quantity_mantissas(),
        ) {
            let book = [plan];
            let index = vec![0_u32; quantities.len()];
            let mut general = Vec::new();
            let general = attribute_group_general(&quantities, &index, &book, &mut general)
                .map(|()| general);
            let mut fast = Vec::new();
            if attribute_tiered_exact(&quantities, &book[0], &mut fast) {
                prop_assert_eq!(Ok(fast), general);
            } else {
                prop_assert!(fast.is_empty());
            }
        }
    }
}
