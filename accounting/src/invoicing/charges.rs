//! What one subscription charges in a billing window: its rated usage per product, its
//! prorated flat fee, and its prorated commitment.

use billrun_engine::{
    Charge, DateWindow, LineKind, ProrationSegment, SubscriptionCharges, prorate_amount,
    prorate_flat_fee,
};

use chrono::NaiveDate;

use super::UsageTotals;
use crate::catalog::{Catalog, Subscription};
use crate::error::{AccountingError, Result};

pub(super) fn subscription_charges(
    catalog: &Catalog,
    subscription: &Subscription,
    window: DateWindow,
    usage: &[(&str, &UsageTotals)],
) -> Result<SubscriptionCharges> {
    let active = window
        .intersect(subscription.start_date, subscription.end_date)
        .ok_or_else(|| {
            AccountingError::Internal("inactive subscription reached invoicing".into())
        })?;
    let mut charges = Vec::new();
    for &(product_id, totals) in usage {
        charges.push(Charge {
            kind: LineKind::Usage,
            product_id: product_id.to_string(),
            quantity: totals.quantity,
            amount: totals.amount,
        });
    }
    let segments = flat_fee_segments(catalog, subscription, active)?;
    if !segments.is_empty() {
        charges.push(Charge {
            kind: LineKind::Recurring,
            product_id: subscription.product_id.clone(),
            quantity: subscription.seats,
            amount: prorate_flat_fee(&segments, subscription.seats, window.days())?,
        });
    }
    let min_commitment = subscription
        .min_commitment
        .map(|m| prorate_amount(m, active.days(), window.days()))
        .transpose()?;
    Ok(SubscriptionCharges {
        subscription_id: subscription.subscription_id.clone(),
        product_id: subscription.product_id.clone(),
        charges,
        discount_percent: subscription.discount_percent,
        min_commitment,
    })
}

/// Runs of active days priced by the same flat plan version.
///
/// What holds on a day (the version in force, a refused version covering it) can change
/// only on a day some version starts or ends, so the active window is cut at those days
/// and each piece is looked up once, on its first day: the same answer as asking day by
/// day, without a lookup per subscription and day (3 million subscriptions × 30 days at
/// a million customers).
///
/// # Errors
/// [`AccountingError::RefusedPlanVersion`] for a day whose version was rejected: the fee
/// is never taken from the version before it, nor left out.
fn flat_fee_segments(
    catalog: &Catalog,
    subscription: &Subscription,
    active: DateWindow,
) -> Result<Vec<ProrationSegment>> {
    let mut segments: Vec<(usize, ProrationSegment)> = Vec::new();
    let recurring = catalog
        .products
        .get(&subscription.product_id)
        .is_some_and(|p| p.kind == crate::catalog::ProductKind::Recurring);
    let plan_id = subscription.plan_id.as_str();
    let refused = catalog
        .refused_plan_versions
        .get(plan_id)
        .map_or(&[][..], Vec::as_slice);
    let mut cuts: Vec<NaiveDate> = catalog
        .versions_of(plan_id)
        .flat_map(|(_, v)| [Some(v.effective_from), v.effective_to])
        .chain(
            refused
                .iter()
                .flat_map(|r| [r.effective_from, r.effective_to]),
        )
        .flatten()
        .filter(|d| active.start < *d && *d < active.end)
        .collect();
    cuts.push(active.start);
    cuts.push(active.end);
    cuts.sort_unstable();
    cuts.dedup();
    for piece in cuts.windows(2) {
        let (day, end) = (piece[0], piece[1]);
        if recurring && let Some(refused) = catalog.refused_plan_version(plan_id, day) {
            return Err(AccountingError::RefusedPlanVersion {
                subscription_id: subscription.subscription_id.clone(),
                plan_id: subscription.plan_id.clone(),
                date: day,
                why: refused.why.clone(),
            });
        }
        let Some((idx, version)) = catalog.version_on(plan_id, day) else {
            continue;
        };
        if version.version.model().is_usage() {
            continue;
        }
        let days = u32::try_from((end - day).num_days()).map_err(|_| {
            AccountingError::Internal(format!(
                "a window of {} is too long",
                subscription.subscription_id
            ))
        })?;
        match segments.last_mut() {
            Some((last, segment)) if *last == idx => segment.days += days,
            _ => segments.push((
                idx,
                ProrationSegment {
                    days,
                    unit_price: version.version.tiers()[0].unit_price,
                },
            )),
        }
    }
    Ok(segments.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use billrun_engine::{PlanVersion, PriceModel, Tier};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::*;
    use crate::catalog::{PlanVersionEntry, Product, ProductKind, RefusedVersion};

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() + chrono::Days::new(u64::from(n))
    }

    /// The definition: each active day asks which version is in force and whether a
    /// refused version covers it.
    fn by_day(
        catalog: &Catalog,
        subscription: &Subscription,
        active: DateWindow,
    ) -> Result<Vec<ProrationSegment>> {
        let mut segments: Vec<(usize, ProrationSegment)> = Vec::new();
        for d in active.start.iter_days().take_while(|d| *d < active.end) {
            if let Some(refused) = catalog.refused_plan_version(&subscription.plan_id, d) {
                return Err(AccountingError::RefusedPlanVersion {
                    subscription_id: subscription.subscription_id.clone(),
                    plan_id: subscription.plan_id.clone(),
                    date: d,
                    why: refused.why.clone(),
                });
            }
            let Some((idx, version)) = catalog.version_on(&subscription.plan_id, d) else {
                continue;
            };
            if version.version.model().is_usage() {
                continue;
            }
            match segments.last_mut() {
                Some((last, segment)) if *last == idx => segment.days += 1,
                _ => segments.push((
                    idx,
                    ProrationSegment {
                        days: 1,
                        unit_price: version.version.tiers()[0].unit_price,
                    },
                )),
            }
        }
        Ok(segments.into_iter().map(|(_, s)| s).collect())
    }

    fn catalog(versions: &[(u32, Option<u32>, bool, u32)], refused: &[(u32, u32)]) -> Catalog {
        let mut catalog = Catalog::default();
        catalog.products.insert(
            "P".into(),
            Product {
                product_id: "P".into(),
                name: "P".into(),
                kind: ProductKind::Recurring,
                revenue_account: None,
                ssp: None,
            },
        );
        let mut sorted = versions.to_vec();
        sorted.sort_by_key(|v| v.0);
        for &(from, to, usage, price) in &sorted {
            let model = if usage {
                PriceModel::PerUnit
            } else {
                PriceModel::Flat
            };
            let tier = Tier {
                start: Decimal::ZERO,
                unit_price: Decimal::from(price),
                flat_fee: Decimal::ZERO,
            };
            catalog.plan_versions.push(PlanVersionEntry {
                plan_id: "PL".into(),
                product_id: "P".into(),
                currency: "USD".into(),
                effective_from: day(from),
                effective_to: to.map(day),
                version: PlanVersion::new(model, vec![tier], None).unwrap(),
            });
        }
        catalog
            .plans
            .insert("PL".into(), (0..sorted.len()).collect());
        if !refused.is_empty() {
            catalog.refused_plan_versions.insert(
                "PL".into(),
                refused
                    .iter()
                    .map(|&(from, len)| RefusedVersion {
                        effective_from: Some(day(from)),
                        effective_to: Some(day(from + len)),
                        why: format!("refused from {from}"),
                    })
                    .collect(),
            );
        }
        catalog
    }

    proptest! {
        /// Versions that start and end anywhere (overlapping, with gaps, usage-priced
        /// ones among them) and refused versions anywhere: cutting the window at their
        /// days gives what asking day by day gives, error and all.
        #[test]
        fn cut_at_version_days_equals_day_by_day(
            versions in prop::collection::vec(
                (0u32..70, prop::option::of(1u32..40), any::<bool>(), 1u32..500), 0..5),
            refused in prop::collection::vec((0u32..70, 1u32..10), 0..2),
            start in 0u32..60,
            len in 1u32..35,
        ) {
            let versions: Vec<_> = versions
                .into_iter()
                .map(|(from, len, usage, price)| (from, len.map(|l| from + l), usage, price))
                .collect();
            let catalog = catalog(&versions, &refused);
            let subscription = Subscription {
                subscription_id: "S".into(),
                customer_id: "C".into(),
                plan_id: "PL".into(),
                product_id: "P".into(),
                currency: "USD".into(),
                start_date: day(0),
                end_date: None,
                seats: Decimal::ONE,
                discount_percent: None,
                min_commitment: None,
            };
            let active = DateWindow { start: day(start), end: day(start + len) };
            let expected = by_day(&catalog, &subscription, active).map_err(|e| e.to_string());
            let got = flat_fee_segments(&catalog, &subscription, active).map_err(|e| e.to_string());
            prop_assert_eq!(got, expected);
        }
    }
}
