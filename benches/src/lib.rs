//! Inputs for billrun's engine micro-benchmarks (`cargo bench -p billrun-benches`).
//!
//! The benchmarks live in `benches/kernels.rs`; this library builds their inputs so that
//! the shapes measured (a 1M-row Arrow batch of pre-sorted events, contract-like tiers)
//! are defined once and can be unit-tested. Quantities are made with a fixed
//! linear-congruential sequence: deterministic, no `rand` dependency, and cheap.

use arrow_array::{Decimal128Array, UInt32Array};
use billrun_engine::{AMOUNT_SCALE, PlanVersion, PriceModel, Tier};
use rust_decimal::Decimal;

/// Rows in the attribution batch: the "1M-row Arrow batch".
pub const BATCH_ROWS: usize = 1_000_000;

/// Events per (subscription, product, period) group in the batch: 10M events over
/// ~10k subscriptions in the generated datasets is about a thousand per group.
pub const GROUP_ROWS: usize = 1_000;

fn d(mantissa: i64, scale: u32) -> Decimal {
    Decimal::new(mantissa, scale)
}

/// A one-version plan of `model` with the tiers the generator uses for that model.
///
/// # Panics
/// If the engine rejects the version (a bug in this function).
#[must_use]
pub fn plan(model: PriceModel) -> PlanVersion {
    let tier = |start: i64, price: Decimal, fee: Decimal| Tier {
        start: Decimal::from(start),
        unit_price: price,
        flat_fee: fee,
    };
    let (tiers, package_size) = match model {
        PriceModel::PerUnit => (vec![tier(0, d(15, 4), Decimal::ZERO)], None),
        PriceModel::Graduated | PriceModel::Volume => (
            vec![
                tier(0, d(100, 3), d(250, 2)),
                tier(1_000, d(80, 3), Decimal::ZERO),
                tier(10_000, d(50, 3), d(1_000, 2)),
                tier(100_000, d(25, 3), Decimal::ZERO),
            ],
            None,
        ),
        PriceModel::Package => (
            vec![tier(0, d(500, 2), Decimal::ZERO)],
            Some(Decimal::from(100)),
        ),
        PriceModel::Flat => (vec![tier(0, d(4_900, 2), Decimal::ZERO)], None),
    };
    PlanVersion::new(model, tiers, package_size).expect("benchmark plans are valid")
}

/// A pre-sorted batch: quantity mantissas at scale 12, one version index per row (all
/// 0: one version per group), and group offsets every [`GROUP_ROWS`] rows.
#[derive(Debug)]
pub struct Batch {
    /// Event quantities, `Decimal128(38, 12)`.
    pub quantities: Decimal128Array,
    /// Version index per event into a one-version book.
    pub version_index: UInt32Array,
    /// Arrow-style group offsets, from 0 to `rows`.
    pub group_offsets: Vec<usize>,
}

/// Builds a [`Batch`] of `rows` events with quantities of 0–99 whole units and, every
/// fourth event, a fraction with 3 decimals, as metered usage looks.
///
/// # Panics
/// If the array cannot take precision 38 and scale 12 (it always can).
#[must_use]
pub fn batch(rows: usize) -> Batch {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let scale = 10_i128.pow(AMOUNT_SCALE);
    let quantities: Vec<i128> = (0..rows)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let units = i128::from((state >> 33) % 100);
            let fraction = if i % 4 == 0 {
                i128::from((state >> 20) % 1_000) * 10_i128.pow(9)
            } else {
                0
            };
            units * scale + fraction
        })
        .collect();
    let quantities = Decimal128Array::from(quantities)
        .with_precision_and_scale(38, 12)
        .expect("precision 38, scale 12 is valid");
    let mut group_offsets: Vec<usize> = (0..rows).step_by(GROUP_ROWS).collect();
    group_offsets.push(rows);
    Batch {
        quantities,
        version_index: UInt32Array::from(vec![0_u32; rows]),
        group_offsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_partitioned_and_valid_for_every_usage_model() {
        let batch = batch(10_000);
        assert_eq!(batch.group_offsets.first(), Some(&0));
        assert_eq!(batch.group_offsets.last(), Some(&10_000));
        for model in [
            PriceModel::PerUnit,
            PriceModel::Graduated,
            PriceModel::Volume,
            PriceModel::Package,
        ] {
            let book = [plan(model)];
            let amounts = billrun_engine::attribute_period_charges_arrow_grouped(
                &batch.quantities,
                &batch.version_index,
                &batch.group_offsets,
                &book,
            )
            .unwrap();
            assert_eq!(amounts.len(), 10_000, "{model}");
        }
    }
}
