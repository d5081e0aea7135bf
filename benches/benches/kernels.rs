//! Criterion micro-benchmarks of the engine kernels (issue 5): tier pricing, per-event
//! attribution over a 1M-row Arrow batch of pre-sorted events, decimal rounding,
//! proration and SSP allocation.
//!
//! `cargo bench -p billrun-benches` runs them all; `-- attribution` only the
//! attribution group. Throughputs are reported per element (events or values), so the
//! attribution figures read directly as events/s on one core (the kernels are single
//! threaded).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use billrun_benches::{BATCH_ROWS, batch, plan};
use billrun_engine::{
    PriceModel, ProrationSegment, allocate_by_ssp, attribute_period_charge_arrow,
    attribute_period_charges_arrow_grouped, prorate_amount, prorate_flat_fee, round_amount,
    round_money,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;

const USAGE_MODELS: [PriceModel; 4] = [
    PriceModel::PerUnit,
    PriceModel::Graduated,
    PriceModel::Volume,
    PriceModel::Package,
];

/// `PlanVersion::charge` at quantities spread over every tier.
fn tier_pricing(c: &mut Criterion) {
    let quantities: Vec<Decimal> = (0..1_000_i64)
        .map(|i| Decimal::new(i * i * 137 + 7, 3))
        .collect();
    let mut group = c.benchmark_group("tier_pricing");
    group.throughput(Throughput::Elements(quantities.len() as u64));
    for model in USAGE_MODELS {
        let version = plan(model);
        group.bench_function(BenchmarkId::new("charge", model.as_str()), |b| {
            b.iter(|| {
                for &q in &quantities {
                    black_box(version.charge(black_box(q)).unwrap());
                }
            });
        });
    }
    group.finish();
}

/// Per-event attribution over one 1M-row batch, as the rating stage feeds it.
fn attribution(c: &mut Criterion) {
    let input = batch(BATCH_ROWS);
    let mut group = c.benchmark_group("attribution");
    group.throughput(Throughput::Elements(BATCH_ROWS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for model in USAGE_MODELS {
        let book = [plan(model)];
        group.bench_function(BenchmarkId::new("grouped_1M", model.as_str()), |b| {
            b.iter(|| {
                attribute_period_charges_arrow_grouped(
                    black_box(&input.quantities),
                    &input.version_index,
                    &input.group_offsets,
                    &book,
                )
                .unwrap()
            });
        });
    }
    // What the window UDF does today: one call per (subscription, product) partition.
    for model in [PriceModel::PerUnit, PriceModel::Graduated] {
        let book = [plan(model)];
        let groups: Vec<_> = input
            .group_offsets
            .windows(2)
            .map(|g| {
                (
                    input.quantities.slice(g[0], g[1] - g[0]),
                    input.version_index.slice(g[0], g[1] - g[0]),
                )
            })
            .collect();
        group.bench_function(BenchmarkId::new("per_partition_1M", model.as_str()), |b| {
            b.iter(|| {
                for (quantities, versions) in &groups {
                    black_box(attribute_period_charge_arrow(quantities, versions, &book).unwrap());
                }
            });
        });
    }
    group.finish();
}

/// The two roundings: invoice money to a minor unit, rated amounts to 12 digits.
fn rounding(c: &mut Criterion) {
    let values: Vec<Decimal> = (0..1_000_i64)
        .map(|i| Decimal::new(i * 7_919_357 - 3_000_000_000, 9))
        .collect();
    let mut group = c.benchmark_group("rounding");
    group.throughput(Throughput::Elements(values.len() as u64));
    for (name, minor) in [("money_usd", 2), ("money_jpy", 0), ("money_kwd", 3)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for &v in &values {
                    black_box(round_money(black_box(v), minor));
                }
            });
        });
    }
    let fine: Vec<Decimal> = values.iter().map(|v| *v / Decimal::from(7)).collect();
    group.bench_function("amount_12", |b| {
        b.iter(|| {
            for &v in &fine {
                black_box(round_amount(black_box(v)));
            }
        });
    });
    group.finish();
}

/// Proration of flat fees (with a mid-window version change) and commitments.
fn proration(c: &mut Criterion) {
    let segments = [
        ProrationSegment {
            days: 11,
            unit_price: Decimal::new(4_900, 2),
        },
        ProrationSegment {
            days: 20,
            unit_price: Decimal::new(5_900, 2),
        },
    ];
    let mut group = c.benchmark_group("proration");
    group.throughput(Throughput::Elements(1));
    group.bench_function("flat_fee_two_versions", |b| {
        b.iter(|| prorate_flat_fee(black_box(&segments), black_box(Decimal::from(3)), 31).unwrap());
    });
    group.bench_function("commitment", |b| {
        b.iter(|| prorate_amount(black_box(Decimal::new(50_000, 2)), black_box(17), 30).unwrap());
    });
    group.finish();
}

/// SSP allocation of an invoice-sized amount over a handful of lines.
fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    for lines in [3_usize, 12, 100] {
        let ssps: Vec<Decimal> = (0..lines)
            .map(|i| Decimal::new((i as i64 + 1) * 1_234_567, 4))
            .collect();
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_function(BenchmarkId::new("by_ssp", lines), |b| {
            b.iter(|| allocate_by_ssp(black_box(Decimal::new(9_999_999, 2)), &ssps, 2).unwrap());
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    tier_pricing,
    attribution,
    rounding,
    proration,
    allocation
);
criterion_main!(benches);
