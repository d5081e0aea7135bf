//! What one subscription charges in a billing window: its rated usage per product, its
//! prorated flat fee, and its prorated commitment.

use std::collections::BTreeMap;

use billrun_engine::{
    Charge, DateWindow, LineKind, ProrationSegment, SubscriptionCharges, prorate_amount,
    prorate_flat_fee,
};

use super::UsageTotals;
use crate::catalog::{Catalog, Subscription};
use crate::error::{AccountingError, Result};

pub(super) fn subscription_charges(
    catalog: &Catalog,
    subscription: &Subscription,
    window: DateWindow,
    usage: &BTreeMap<(String, String), UsageTotals>,
) -> Result<SubscriptionCharges> {
    let active = window
        .intersect(subscription.start_date, subscription.end_date)
        .ok_or_else(|| {
            AccountingError::Internal("inactive subscription reached invoicing".into())
        })?;
    let mut charges = Vec::new();
    let key_start = (subscription.subscription_id.clone(), String::new());
    for ((sub_id, product_id), totals) in usage.range(key_start..) {
        if sub_id != &subscription.subscription_id {
            break;
        }
        charges.push(Charge {
            kind: LineKind::Usage,
            product_id: product_id.clone(),
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
    for day in active.start.iter_days().take_while(|d| *d < active.end) {
        if recurring && let Some(refused) = catalog.refused_plan_version(&subscription.plan_id, day)
        {
            return Err(AccountingError::RefusedPlanVersion {
                subscription_id: subscription.subscription_id.clone(),
                plan_id: subscription.plan_id.clone(),
                date: day,
                why: refused.why.clone(),
            });
        }
        let Some((idx, version)) = catalog.version_on(&subscription.plan_id, day) else {
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
