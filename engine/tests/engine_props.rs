//! billrun-engine's integration tests: the public API against the data contract, with
//! property tests that compare every kernel with an independent re-computation.

use std::iter;

use arrow_array::{Decimal128Array, UInt32Array};
use billrun_engine::{
    AMOUNT_SCALE, BillingMonth, Charge, CreditMemo, EngineError, InvoiceDraft, LineKind,
    PlanVersion, PriceModel, ProrationSegment, SubscriptionCharges, Tier, allocate_by_ssp,
    attribute_period_charge, attribute_period_charge_arrow, attribute_period_charges_arrow_grouped,
    billing_window, compose_invoice, decimal_from_i128_scaled, decimal_to_i128_scaled,
    prorate_amount, prorate_flat_fee, round_amount, round_money,
};
use chrono::Datelike;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

/// Non-negative decimals `m / 10^s` with `m <= max_mantissa`, `s <= max_scale`.
fn decimal(max_mantissa: i64, max_scale: u32) -> impl Strategy<Value = Decimal> {
    (0..=max_mantissa, 0..=max_scale).prop_map(|(m, s)| Decimal::new(m, s))
}

fn flat_fee() -> impl Strategy<Value = Decimal> {
    prop_oneof![Just(Decimal::ZERO), decimal(10_000, 2)]
}

/// A tier at 0 plus up to `max_extra` more with distinct starts up to 500.00.
fn tiers(max_extra: usize) -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::btree_set(1_i64..50_000, 0..=max_extra).prop_flat_map(|starts| {
        let starts: Vec<Decimal> = iter::once(Decimal::ZERO)
            .chain(starts.into_iter().map(|s| Decimal::new(s, 2)))
            .collect();
        prop::collection::vec((decimal(1_000_000, 6), flat_fee()), starts.len()).prop_map(
            move |prices| {
                starts
                    .iter()
                    .zip(prices)
                    .map(|(&start, (unit_price, flat_fee))| Tier {
                        start,
                        unit_price,
                        flat_fee,
                    })
                    .collect()
            },
        )
    })
}

/// The contract's example tiers: 0 → 1.00, 100 → 0.50.
fn contract_tiers() -> Vec<Tier> {
    vec![
        Tier {
            start: d("0"),
            unit_price: d("1.00"),
            flat_fee: Decimal::ZERO,
        },
        Tier {
            start: d("100"),
            unit_price: d("0.50"),
            flat_fee: Decimal::ZERO,
        },
    ]
}

fn plan(model: PriceModel, tiers: Vec<Tier>, package_size: Option<Decimal>) -> PlanVersion {
    PlanVersion::new(model, tiers, package_size).unwrap()
}

fn graduated_plan() -> impl Strategy<Value = PlanVersion> {
    tiers(4).prop_map(|tiers| plan(PriceModel::Graduated, tiers, None))
}

/// A plan version of any usage model.
fn usage_plan() -> impl Strategy<Value = PlanVersion> {
    prop_oneof![
        tiers(0).prop_map(|tiers| plan(PriceModel::PerUnit, tiers, None)),
        graduated_plan(),
        tiers(4).prop_map(|tiers| plan(PriceModel::Volume, tiers, None)),
        (tiers(0), 1_i64..10_000, 0_u32..=2).prop_map(|(tiers, size, scale)| {
            plan(PriceModel::Package, tiers, Some(Decimal::new(size, scale)))
        }),
    ]
}

/// Event quantities of a period: up to 100 units each, with up to 3 decimals.
fn event_quantities() -> impl Strategy<Value = Vec<Decimal>> {
    prop::collection::vec(decimal(100_000, 3), 0..30)
}

fn quantity_array(quantities: &[Decimal]) -> Decimal128Array {
    let mantissas: Vec<i128> = quantities
        .iter()
        .map(|&q| decimal_to_i128_scaled(q, AMOUNT_SCALE).unwrap())
        .collect();
    Decimal128Array::from(mantissas)
        .with_precision_and_scale(38, 12)
        .unwrap()
}

fn amounts_of(array: &Decimal128Array) -> Vec<Decimal> {
    array
        .values()
        .iter()
        .map(|&m| decimal_from_i128_scaled(m, AMOUNT_SCALE).unwrap())
        .collect()
}

fn cumulative(quantities: &[Decimal]) -> Vec<Decimal> {
    quantities
        .iter()
        .scan(Decimal::ZERO, |q, &quantity| {
            *q += quantity;
            Some(*q)
        })
        .collect()
}

/// Reference graduated price: each tier's slice `clamp(q − start, 0, width)`, priced
/// and summed, plus the fee of every tier with a non-empty slice.
fn graduated_by_slices(version: &PlanVersion, q: Decimal) -> Decimal {
    let tiers = version.tiers();
    tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| {
            let width = tiers.get(i + 1).map(|next| next.start - tier.start);
            let mut units = (q - tier.start).max(Decimal::ZERO);
            if let Some(width) = width {
                units = units.min(width);
            }
            if units > Decimal::ZERO {
                units * tier.unit_price + tier.flat_fee
            } else {
                Decimal::ZERO
            }
        })
        .sum()
}

// ---- pricing -----------------------------------------------------------------------

#[test]
fn contract_examples() {
    let graduated = plan(PriceModel::Graduated, contract_tiers(), None);
    let volume = plan(PriceModel::Volume, contract_tiers(), None);
    assert_eq!(graduated.charge(d("150")).unwrap(), d("125.00"));
    assert_eq!(graduated.charge(d("100")).unwrap(), d("100.00"));
    assert_eq!(volume.charge(d("150")).unwrap(), d("75.00"));
    assert_eq!(volume.charge(d("100")).unwrap(), d("100.00"));
}

proptest! {
    #[test]
    fn graduated_is_the_sum_of_its_tier_slices(
        version in graduated_plan(),
        q in decimal(1_000_000, 3),
    ) {
        prop_assert_eq!(version.charge(q).unwrap(), graduated_by_slices(&version, q));
    }

    /// Unit by unit, the contract's wording: unit `u` (the interval `(u−1, u]`) is
    /// priced by the last tier starting below `u`.
    #[test]
    fn graduated_prices_each_unit_at_its_tier(
        starts in prop::collection::btree_set(1_u32..60, 0..4),
        prices in prop::collection::vec(0_i64..1_000, 4),
        fees in prop::collection::vec(0_i64..100, 4),
        q in 0_u32..200,
    ) {
        let starts: Vec<u32> = iter::once(0).chain(starts).collect();
        let tiers = starts
            .iter()
            .zip(&prices)
            .zip(&fees)
            .map(|((&start, &price), &fee)| Tier {
                start: Decimal::from(start),
                unit_price: Decimal::new(price, 2),
                flat_fee: Decimal::from(fee),
            })
            .collect();
        let version = plan(PriceModel::Graduated, tiers, None);
        let tier_of = |u: u32| starts.iter().rposition(|&start| start < u).unwrap();
        let units: Decimal = (1..=q).map(|u| Decimal::new(prices[tier_of(u)], 2)).sum();
        let fees: Decimal = (0..starts.len())
            .filter(|&k| q > starts[k])
            .map(|k| Decimal::from(fees[k]))
            .sum();
        prop_assert_eq!(version.charge(Decimal::from(q)).unwrap(), units + fees);
    }

    #[test]
    fn volume_prices_all_units_at_the_reached_tier(
        tiers in tiers(4),
        q in decimal(1_000_000, 3),
    ) {
        let version = plan(PriceModel::Volume, tiers, None);
        let expected = match version.tiers().iter().rev().find(|t| q > t.start) {
            Some(tier) => q * tier.unit_price + tier.flat_fee,
            None => Decimal::ZERO,
        };
        prop_assert_eq!(version.charge(q).unwrap(), expected);
    }

    #[test]
    fn every_usage_model_charges_zero_for_zero(version in usage_plan()) {
        prop_assert_eq!(version.charge(Decimal::ZERO).unwrap(), Decimal::ZERO);
    }
}

// ---- attribution -------------------------------------------------------------------

#[test]
fn volume_tier_change_makes_an_event_negative() {
    let volume = plan(PriceModel::Volume, contract_tiers(), None);
    let quantities = [d("60"), d("40"), d("50")];
    let amounts = attribute_period_charge(&quantities, &[&volume; 3]).unwrap();
    // F(60) = 60, F(100) = 100, F(150) = 75.
    assert_eq!(amounts, [d("60"), d("40"), d("-25")]);
    assert_eq!(amounts.iter().sum::<Decimal>(), d("75"));
}

proptest! {
    #[test]
    fn amounts_add_up_to_the_rounded_period_charge(
        version in usage_plan(),
        quantities in event_quantities(),
    ) {
        let versions = vec![&version; quantities.len()];
        let amounts = attribute_period_charge(&quantities, &versions).unwrap();
        let total: Decimal = quantities.iter().sum();
        prop_assert_eq!(
            amounts.iter().sum::<Decimal>(),
            round_amount(version.charge(total).unwrap())
        );
        for amount in &amounts {
            prop_assert_eq!(round_amount(*amount), *amount, "on the 12-digit grid");
        }
    }

    #[test]
    fn version_changes_price_each_event_with_its_own_version(
        book in prop::collection::vec(usage_plan(), 1..4),
        quantities in event_quantities(),
        picks in prop::collection::vec(0_usize..4, 30),
    ) {
        let versions: Vec<&PlanVersion> = picks
            .iter()
            .take(quantities.len())
            .map(|&pick| &book[pick % book.len()])
            .collect();
        let amounts = attribute_period_charge(&quantities, &versions).unwrap();
        let after = cumulative(&quantities);
        let before = iter::once(Decimal::ZERO).chain(after.iter().copied());
        let expected: Vec<Decimal> = versions
            .iter()
            .zip(before.zip(&after))
            .map(|(version, (q_before, &q_after))| {
                round_amount(version.charge(q_after).unwrap())
                    - round_amount(version.charge(q_before).unwrap())
            })
            .collect();
        prop_assert_eq!(
            amounts.iter().sum::<Decimal>(),
            expected.iter().sum::<Decimal>()
        );
        prop_assert_eq!(amounts, expected);
    }

    #[test]
    fn arrow_kernel_equals_the_slice_function(
        book in prop::collection::vec(usage_plan(), 1..4),
        quantities in event_quantities(),
        picks in prop::collection::vec(0_u32..4, 30),
        one_version in any::<bool>(),
    ) {
        // One version per group half the time: that is when the per_unit fast path runs.
        let index: Vec<u32> = picks
            .iter()
            .take(quantities.len())
            .map(|&pick| if one_version { 0 } else { pick % book.len() as u32 })
            .collect();
        let versions: Vec<&PlanVersion> = index.iter().map(|&i| &book[i as usize]).collect();
        let expected = attribute_period_charge(&quantities, &versions).unwrap();
        let actual = attribute_period_charge_arrow(
            &quantity_array(&quantities),
            &UInt32Array::from(index),
            &book,
        )
        .unwrap();
        prop_assert_eq!(amounts_of(&actual), expected);
    }

    #[test]
    fn grouped_arrow_kernel_equals_one_call_per_group(
        version in usage_plan(),
        groups in prop::collection::vec(event_quantities(), 0..5),
    ) {
        let quantities: Vec<Decimal> = groups.concat();
        let offsets: Vec<usize> = iter::once(0)
            .chain(groups.iter().scan(0, |end, group| {
                *end += group.len();
                Some(*end)
            }))
            .collect();
        let book = [version];
        let actual = attribute_period_charges_arrow_grouped(
            &quantity_array(&quantities),
            &UInt32Array::from(vec![0; quantities.len()]),
            &offsets,
            &book,
        )
        .unwrap();
        let mut expected = Vec::new();
        for group in &groups {
            expected.extend(attribute_period_charge(group, &vec![&book[0]; group.len()]).unwrap());
        }
        prop_assert_eq!(amounts_of(&actual), expected);
    }
}

// ---- calendar ----------------------------------------------------------------------

#[test]
fn contract_billing_windows() {
    let october = BillingMonth::parse("2026-10").unwrap();
    let window = billing_window(october, 1).unwrap();
    assert_eq!(
        (window.start.to_string(), window.end.to_string()),
        ("2026-10-01".into(), "2026-11-01".into())
    );
    let december = BillingMonth::parse("2026-12").unwrap();
    let window = billing_window(december, 15).unwrap();
    assert_eq!(
        (window.start.to_string(), window.end.to_string()),
        ("2026-12-15".into(), "2027-01-15".into())
    );
    assert_eq!(
        billing_window(october, 29),
        Err(EngineError::InvalidBillingDay { day: 29 })
    );
}

proptest! {
    #[test]
    fn billing_windows_span_one_month(
        year in 1970_i32..2200,
        month in 1_u32..=12,
        day in 1_u32..=28,
    ) {
        let period = BillingMonth { year, month };
        prop_assert_eq!(BillingMonth::parse(&period.to_string()).unwrap(), period);
        let window = billing_window(period, day).unwrap();
        prop_assert!((28..=31).contains(&window.days()));
        prop_assert_eq!((window.start.day(), window.end.day()), (day, day));
        prop_assert!(window.contains(window.start) && window.contains(window.last_day()));
        prop_assert!(!window.contains(window.end));
    }

    #[test]
    fn a_full_period_prorates_to_the_whole_fee(
        days in 28_u32..=31,
        unit_price in decimal(100_000_000, 4),
        quantity in decimal(10_000, 2),
        split in 0_u32..=31,
    ) {
        let whole = [ProrationSegment { days, unit_price }];
        prop_assert_eq!(prorate_flat_fee(&whole, quantity, days).unwrap(), unit_price * quantity);
        // The same price over two runs of days is still the whole fee.
        let split = split.min(days);
        let halves = [
            ProrationSegment { days: split, unit_price },
            ProrationSegment { days: days - split, unit_price },
        ];
        prop_assert_eq!(prorate_flat_fee(&halves, quantity, days).unwrap(), unit_price * quantity);
        prop_assert_eq!(prorate_amount(unit_price, days, days).unwrap(), unit_price);
    }
}

// ---- invoices ----------------------------------------------------------------------

fn charge() -> impl Strategy<Value = Charge> {
    (
        any::<bool>(),
        0_usize..3,
        decimal(1_000, 0),
        -1_000_000_i64..100_000_000,
        0_u32..=6,
    )
        .prop_map(|(usage, product, quantity, amount, scale)| Charge {
            kind: if usage {
                LineKind::Usage
            } else {
                LineKind::Recurring
            },
            product_id: format!("product-{product}"),
            quantity,
            amount: Decimal::new(amount, scale),
        })
}

fn subscription_charges() -> impl Strategy<Value = SubscriptionCharges> {
    (
        0_u32..1_000,
        prop::collection::vec(charge(), 0..5),
        prop::option::of((0_i64..=10_000).prop_map(|m| Decimal::new(m, 2))),
        prop::option::of(decimal(100_000_000, 6)),
    )
        .prop_map(
            |(id, charges, discount_percent, min_commitment)| SubscriptionCharges {
                subscription_id: format!("sub-{id}"),
                product_id: "plan".to_owned(),
                charges,
                discount_percent,
                min_commitment,
            },
        )
}

fn invoice_draft() -> impl Strategy<Value = InvoiceDraft> {
    prop_oneof![Just(0_u32), Just(2), Just(3)].prop_flat_map(|minor_units| {
        let memo = (0_u32..100, 0_i64..5_000_000).prop_map(move |(id, amount)| CreditMemo {
            credit_memo_id: format!("cm-{id}"),
            amount: Decimal::new(amount, minor_units),
        });
        (
            prop::collection::vec(subscription_charges(), 0..4),
            decimal(3_000, 4),
            prop::collection::vec(memo, 0..4),
        )
            .prop_map(move |(subscriptions, tax_rate, credits)| InvoiceDraft {
                minor_units,
                // An invoice's subscriptions are distinct: the reference model below
                // finds a subscription's lines by its id.
                subscriptions: subscriptions
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| SubscriptionCharges {
                        subscription_id: format!("sub-{i}"),
                        ..s
                    })
                    .collect(),
                tax_rate,
                credits,
            })
    })
}

fn sum_of(lines: &[billrun_engine::InvoiceLine], kinds: &[LineKind]) -> Decimal {
    lines
        .iter()
        .filter(|line| kinds.contains(&line.kind))
        .map(|line| line.amount)
        .sum()
}

proptest! {
    #[test]
    fn invoice_lines_add_up_to_the_total(draft in invoice_draft()) {
        let invoice = compose_invoice(&draft).unwrap();
        let lines = &invoice.lines;
        let minor_units = draft.minor_units;

        prop_assert_eq!(lines.iter().map(|line| line.amount).sum::<Decimal>(), invoice.total);
        for line in lines {
            prop_assert_eq!(round_money(line.amount, minor_units), line.amount, "{:?}", line);
        }
        prop_assert_eq!(
            invoice.subtotal,
            sum_of(lines, &[LineKind::Usage, LineKind::Recurring, LineKind::Minimum])
        );
        prop_assert_eq!(invoice.discount, -sum_of(lines, &[LineKind::Discount]));
        prop_assert_eq!(invoice.credits, -sum_of(lines, &[LineKind::Credit]));
        prop_assert_eq!(
            invoice.total,
            invoice.subtotal - invoice.discount + invoice.tax - invoice.credits
        );

        // One tax line, after every subscription line and before every credit line.
        let tax_at: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.kind == LineKind::Tax)
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(tax_at.len(), 1);
        let (before, after) = lines.split_at(tax_at[0]);
        prop_assert!(before.iter().all(|line| line.subscription_id.is_some()));
        prop_assert!(after[1..].iter().all(|line| line.kind == LineKind::Credit));
        prop_assert_eq!(
            invoice.tax,
            round_money((invoice.subtotal - invoice.discount) * draft.tax_rate, minor_units)
        );

        // Reference model of one subscription's lines.
        for subscription in &draft.subscriptions {
            let own: Vec<_> = lines
                .iter()
                .filter(|line| line.subscription_id.as_ref() == Some(&subscription.subscription_id))
                .collect();
            let charges: Decimal = subscription
                .charges
                .iter()
                .map(|charge| round_money(charge.amount, minor_units))
                .sum();
            let discount: Decimal = own
                .iter()
                .filter(|line| line.kind == LineKind::Discount)
                .map(|line| line.amount)
                .sum();
            if let Some(percent) = subscription.discount_percent.filter(|p| *p > Decimal::ZERO) {
                prop_assert_eq!(
                    discount,
                    -round_money(charges * percent / Decimal::ONE_HUNDRED, minor_units)
                );
            }
            let minimum: Decimal = own
                .iter()
                .filter(|line| line.kind == LineKind::Minimum)
                .map(|line| line.amount)
                .sum();
            let expected_minimum = subscription
                .min_commitment
                .map(|c| round_money(c - (charges + discount), minor_units))
                .filter(|m| *m > Decimal::ZERO)
                .unwrap_or(Decimal::ZERO);
            prop_assert_eq!(minimum, expected_minimum);
        }

        // Credits: never more than the balance, and every memo unit accounted for.
        let balance = invoice.subtotal - invoice.discount + invoice.tax;
        prop_assert!(invoice.credits <= balance.max(Decimal::ZERO));
        let memos: Decimal = draft.credits.iter().map(|memo| memo.amount).sum();
        let open: Decimal = invoice.open_credits.iter().map(|memo| memo.amount).sum();
        prop_assert_eq!(invoice.credits + open, memos);
        prop_assert!(invoice.open_credits.iter().all(|memo| memo.amount > Decimal::ZERO));
    }
}

// ---- allocation --------------------------------------------------------------------

proptest! {
    #[test]
    fn allocation_is_exact_and_proportional(
        minor_units in prop_oneof![Just(0_u32), Just(2), Just(3)],
        total in -1_000_000_000_i64..1_000_000_000,
        ssps in prop::collection::vec(
            prop_oneof![Just(Decimal::ZERO), decimal(1_000_000, 4)],
            1..8,
        ),
    ) {
        prop_assume!(ssps.iter().any(|ssp| !ssp.is_zero()));
        let total = Decimal::new(total, minor_units);
        let allocated = allocate_by_ssp(total, &ssps, minor_units).unwrap();
        prop_assert_eq!(allocated.iter().sum::<Decimal>(), total);
        let ssp_sum: Decimal = ssps.iter().sum();
        let unit = Decimal::new(1, minor_units);
        for (amount, ssp) in allocated.iter().zip(&ssps) {
            prop_assert_eq!(round_money(*amount, minor_units), *amount);
            if ssp.is_zero() {
                prop_assert!(amount.is_zero());
            }
            let exact_share = total * ssp / ssp_sum;
            prop_assert!((amount - exact_share).abs() < unit, "{} vs {}", amount, exact_share);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Revenue recognition: schedules and contract allocation.

mod revenue {
    use super::*;
    use billrun_engine::{
        Carve, CarveOrder, CarveShare, CarveTarget, CarvedToAccount, ContractAllocation,
        DateWindow, Modification, MonthAmount, Obligation, allocate_contract, hold_until,
        ratable_schedule,
    };
    use chrono::NaiveDate;

    fn service() -> impl Strategy<Value = DateWindow> {
        // Any start in 2024..2027 and 1..=1100 days of service.
        (0_i64..1100, 1_i64..=1100).prop_map(|(offset, days)| {
            let start =
                NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(offset as u64);
            DateWindow {
                start,
                end: start + chrono::Days::new(days as u64),
            }
        })
    }

    fn minor() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0_u32), Just(2), Just(3)]
    }

    fn total(schedule: &[MonthAmount]) -> Decimal {
        schedule.iter().map(|m| m.amount).sum()
    }

    /// Days of `window` that fall in the calendar month starting on `month`.
    fn days_in(window: DateWindow, month: NaiveDate) -> i64 {
        let next = billrun_engine::next_month_start(month).unwrap();
        let (a, b) = (window.start.max(month), window.end.min(next));
        (b - a).num_days().max(0)
    }

    /// A contract of 2 to 5 lines with one carve between two of them (or to an account):
    /// a percentage with up to 3 decimals, or an amount that may take more than there is.
    fn carve_contract() -> impl Strategy<Value = (Vec<Obligation>, Carve, u32)> {
        (
            minor(),
            prop::collection::vec(
                (0_i64..1_000_000, prop_oneof![Just(0_i64), 1_i64..1_000_000]),
                2..6,
            ),
        )
            .prop_flat_map(|(minor, lines)| {
                let n = lines.len();
                let share = prop_oneof![
                    (0_u32..=3).prop_flat_map(|scale| {
                        (0_i64..=100 * 10_i64.pow(scale))
                            .prop_map(move |m| CarveShare::Percent(Decimal::new(m, scale)))
                    }),
                    (0_i64..2_000_000)
                        .prop_map(move |m| CarveShare::Amount(Decimal::new(m, minor))),
                ];
                let target = prop_oneof![
                    (0..n).prop_map(CarveTarget::Obligation),
                    Just(CarveTarget::Account("revenue:carved".to_string())),
                ];
                (Just(minor), Just(lines), 0..n, target, share)
            })
            .prop_filter(
                "a carve moves revenue to another line",
                |(_, _, from, to, _)| *to != CarveTarget::Obligation(*from),
            )
            .prop_filter("some SSP to allocate by", |(_, lines, ..)| {
                lines.iter().any(|&(_, s)| s > 0)
            })
            .prop_map(|(minor, lines, from, to, share)| {
                let obligations = lines
                    .iter()
                    .map(|&(p, s)| Obligation {
                        price: Decimal::new(p, minor),
                        ssp: Decimal::new(s, 2),
                    })
                    .collect();
                (obligations, Carve { from, to, share }, minor)
            })
    }

    /// The carve's amount from `base`: a percentage rounded half away from zero to the
    /// minor unit (CONTRACT-NOTES.md, "Carves"), in integer minor units, independently of
    /// the engine's decimal rounding.
    fn carved(base: Decimal, share: CarveShare, minor: u32) -> Decimal {
        match share {
            CarveShare::Amount(amount) => amount,
            CarveShare::Percent(percent) => {
                let units = decimal_to_i128_scaled(base, minor).unwrap();
                let denominator = 100 * 10_i128.pow(percent.scale());
                let n = units * percent.mantissa();
                // Bases are never negative here, so half away from zero is half up.
                assert!(n >= 0);
                decimal_from_i128_scaled((2 * n + denominator) / (2 * denominator), minor).unwrap()
            }
        }
    }

    /// Puts `x` on the carve's target: another line's allocation, or an account.
    fn moved(allocated: &mut [Decimal], carve: &Carve, x: Decimal) -> Vec<CarvedToAccount> {
        match &carve.to {
            CarveTarget::Obligation(to) => {
                allocated[*to] += x;
                Vec::new()
            }
            CarveTarget::Account(account) => vec![CarvedToAccount {
                from: carve.from,
                account: account.clone(),
                amount: x,
            }],
        }
    }

    proptest! {
        #[test]
        fn ratable_schedules_add_up_and_follow_the_days(
            units in 0_i64..100_000_000, minor in minor(), window in service(),
        ) {
            let amount = Decimal::new(units, minor);
            let s = ratable_schedule(amount, window, None, minor).unwrap();
            prop_assert_eq!(total(&s), amount);
            let unit = Decimal::new(1, minor);
            let days = Decimal::from(window.days());
            for m in &s {
                // Each month is within one minor unit of its exact share of the days.
                let exact = amount * Decimal::from(days_in(window, m.month)) / days;
                prop_assert!((m.amount - exact).abs() <= unit, "{m:?} vs {exact}");
                prop_assert_eq!(round_money(m.amount, minor), m.amount);
            }
            // Months are consecutive and cover the service exactly.
            prop_assert_eq!(s.first().unwrap().month, billrun_engine::month_start(window.start));
            prop_assert_eq!(s.last().unwrap().month, billrun_engine::month_start(window.last_day()));
        }

        #[test]
        fn a_full_year_spreads_evenly_by_days(cents_per_day in 0_i64..1_000_000, year in 2024_i32..2030) {
            let start = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            let window = DateWindow { start, end: NaiveDate::from_ymd_opt(year + 1, 1, 1).unwrap() };
            let amount = Decimal::new(cents_per_day * i64::from(window.days()), 2);
            let s = ratable_schedule(amount, window, None, 2).unwrap();
            prop_assert_eq!(s.len(), 12);
            for m in &s {
                let days = days_in(window, m.month);
                prop_assert_eq!(m.amount, Decimal::new(cents_per_day * days, 2));
            }
        }

        #[test]
        fn modified_schedules_keep_the_past_and_add_up(
            units in 0_i64..10_000_000, change in -5_000_000_i64..5_000_000,
            window in service(), at in 0.0_f64..=1.0, extra in 0_i64..400, minor in minor(),
        ) {
            let amount = Decimal::new(units, minor);
            let effective = window.start + chrono::Days::new((f64::from(window.days()) * at) as u64);
            let modification = Modification {
                effective,
                new_end: effective + chrono::Days::new(extra as u64),
                price_change: Decimal::new(change, minor),
            };
            let original = ratable_schedule(amount, window, None, minor).unwrap();
            let s = ratable_schedule(amount, window, Some(&modification), minor).unwrap();
            prop_assert_eq!(total(&s), amount + modification.price_change);
            // Months wholly before the modification are untouched.
            for (before, after) in original.iter().zip(&s) {
                if billrun_engine::next_month_start(before.month).unwrap() <= effective {
                    prop_assert_eq!(before, after);
                }
            }
        }

        #[test]
        fn holding_moves_revenue_but_never_changes_it(
            units in 0_i64..10_000_000, window in service(), release in prop::option::of(0_i64..1500),
        ) {
            let amount = Decimal::new(units, 2);
            let s = ratable_schedule(amount, window, None, 2).unwrap();
            let released_on = release.map(|days| window.start + chrono::Days::new(days as u64));
            let held = hold_until(&s, released_on).unwrap();
            prop_assert_eq!(held.iter().map(|m| m.amount).sum::<Decimal>(), amount);
            if let Some(on) = released_on {
                let month = billrun_engine::month_start(on);
                prop_assert!(held.iter().all(|m| !m.held && m.month >= month));
            } else {
                prop_assert!(held.iter().all(|m| m.held));
            }
        }

        #[test]
        fn contract_allocation_adds_up_in_either_order(
            lines in prop::collection::vec((0_i64..1_000_000, 1_i64..1_000_000), 2..6),
            percent in 0_i64..=100, minor in minor(),
        ) {
            let obligations: Vec<Obligation> = lines
                .iter()
                .map(|&(p, s)| Obligation { price: Decimal::new(p, minor), ssp: Decimal::new(s, 2) })
                .collect();
            let price: Decimal = obligations.iter().map(|o| o.price).sum();
            let carves = vec![
                Carve { from: 0, to: CarveTarget::Obligation(1), share: CarveShare::Percent(Decimal::from(percent)) },
                Carve { from: 1, to: CarveTarget::Account("revenue:carved".into()), share: CarveShare::Percent(Decimal::from(percent / 2)) },
            ];
            for order in [CarveOrder::AllocateThenCarve, CarveOrder::CarveThenAllocate] {
                let a = allocate_contract(&obligations, &carves, order, minor).unwrap();
                let carved: Decimal = a.carved_to_accounts.iter().map(|c| c.amount).sum();
                prop_assert_eq!(a.allocated.iter().copied().sum::<Decimal>() + carved, price);
                prop_assert!(a.allocated.iter().all(|x| *x >= Decimal::ZERO));
                prop_assert!(a.allocated.iter().all(|x| round_money(*x, minor) == *x));
            }
            // Without carves, both orders are plain SSP allocation.
            let plain = allocate_by_ssp(price, &obligations.iter().map(|o| o.ssp).collect::<Vec<_>>(), minor).unwrap();
            for order in [CarveOrder::AllocateThenCarve, CarveOrder::CarveThenAllocate] {
                prop_assert_eq!(&allocate_contract(&obligations, &[], order, minor).unwrap().allocated, &plain);
            }
        }

        #[test]
        fn allocate_then_carve_moves_the_rounded_percent_of_the_allocation(
            contract in carve_contract(),
        ) {
            let (obligations, carve, minor) = contract;
            let ssps: Vec<Decimal> = obligations.iter().map(|o| o.ssp).collect();
            let price: Decimal = obligations.iter().map(|o| o.price).sum();
            // Reference: allocate by SSP, then move the carve's share of the source's
            // allocation.
            let mut expected = allocate_by_ssp(price, &ssps, minor).unwrap();
            let x = carved(expected[carve.from], carve.share, minor);
            let actual = allocate_contract(&obligations, std::slice::from_ref(&carve), CarveOrder::AllocateThenCarve, minor);
            if x > expected[carve.from] {
                prop_assert!(actual.is_err(), "{actual:?}");
                return Ok(());
            }
            expected[carve.from] -= x;
            let to_accounts = moved(&mut expected, &carve, x);
            prop_assert_eq!(actual.unwrap(), ContractAllocation { allocated: expected, carved_to_accounts: to_accounts });
        }

        #[test]
        fn carve_then_allocate_sets_the_carve_aside_before_allocating(
            contract in carve_contract(),
        ) {
            let (obligations, carve, minor) = contract;
            let ssps: Vec<Decimal> = obligations.iter().map(|o| o.ssp).collect();
            let price: Decimal = obligations.iter().map(|o| o.price).sum();
            // Reference: the share of the source's stated price is set aside, the rest of
            // the contract price is allocated by SSP, and the carve lands on its target.
            let x = carved(obligations[carve.from].price, carve.share, minor);
            let actual = allocate_contract(&obligations, std::slice::from_ref(&carve), CarveOrder::CarveThenAllocate, minor);
            if x > price {
                prop_assert!(actual.is_err(), "{actual:?}");
                return Ok(());
            }
            let mut expected = allocate_by_ssp(price - x, &ssps, minor).unwrap();
            let to_accounts = moved(&mut expected, &carve, x);
            prop_assert_eq!(actual.unwrap(), ContractAllocation { allocated: expected, carved_to_accounts: to_accounts });
        }
    }
}
