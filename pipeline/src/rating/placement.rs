//! Where each event falls: its customer's billing window and the rating segment in
//! force at its timestamp.
//!
//! A rating segment is a stretch of time over which, for one (customer, product), the
//! answer to "which subscription and which plan version price this event?" does not
//! change. Segments are computed from master data (small) before any usage is touched, so
//! that each event falls in at most one segment and ambiguity is decided once per
//! segment, not once per event.

use std::collections::BTreeMap;

use rayon::prelude::*;

use billrun_accounting::catalog::{Catalog, Subscription};
use billrun_engine::{DateWindow, days_since_epoch};
use chrono::{NaiveDate, NaiveTime};

use super::id_index::IdIndex;
use super::reason::UnratedReason;
use crate::error::{PipelineError, Result};

/// Midnight UTC of `day`, in microseconds since the epoch.
pub fn day_start_micros(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// A billing window in the units of usage: microseconds, and the first day of the
/// period it bills.
#[derive(Debug, Clone, Copy)]
struct WindowBounds {
    start: i64,
    end: i64,
    period_start: i32,
}

impl WindowBounds {
    fn of(window: &DateWindow) -> Self {
        Self {
            start: day_start_micros(window.start),
            end: day_start_micros(window.end),
            period_start: days_since_epoch(window.start),
        }
    }

    fn contains(&self, micros: i64) -> bool {
        self.start <= micros && micros < self.end
    }
}

/// What prices the events of a rating segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Priced {
    pub(super) subscription_idx: u32,
    pub(super) version_idx: u32,
    /// Days since the epoch.
    pub(super) plan_effective_from: i32,
}

/// A rating segment as the lookup holds it: `[start, end)` in microseconds.
#[derive(Debug, Clone, Copy)]
struct SegmentBounds {
    start: i64,
    end: i64,
    rating: std::result::Result<Priced, UnratedReason>,
}

/// A customer as the lookup holds it: its billing window and where its segments are.
#[derive(Debug, Clone, Copy)]
struct CustomerPlace {
    window: WindowBounds,
    /// `SegmentLookup::segments[first..end]`.
    first: u32,
    end: u32,
}

/// A rating segment of one customer for the product numbered `product`.
#[derive(Debug, Clone, Copy)]
struct ProductSegment {
    product: u32,
    bounds: SegmentBounds,
}

/// Every known customer's billing window and rating segments, to place each event of
/// the period: outside every window, priced by one subscription and plan version, or
/// unrated with a reason.
///
/// This is a lookup per event in master data (thousands of rows beside millions of
/// events), the work of two broadcast hash joins: one on `customer_id` for the window, one
/// on (`customer_id`, `product_id`) then a time range for the segment. Done here it hashes
/// two short strings per event, binary-searches a few segments held side by side, and
/// builds the columns to rate as integers. The joins cost more than a third of the scan
/// at 100M events: each took every event's text columns into its output and compared the
/// keys with `memcmp`, in hash tables too large for the cache at 100 000 customers.
#[derive(Debug)]
pub struct SegmentLookup {
    customers: IdIndex<CustomerPlace>,
    products: IdIndex<()>,
    /// Each customer's segments, by (product number, start); those of one product never
    /// overlap.
    segments: Vec<ProductSegment>,
    /// The calendar month, to place usage of customers that are not known.
    default_window: WindowBounds,
    /// With the books: events before their window and at or after this instant fall in
    /// posted periods (late usage, or duplicates of billed events).
    posted_from: Option<i64>,
}

impl SegmentLookup {
    /// `windows` maps every known customer to its billing window for the period;
    /// `default_window` places usage of unknown customers.
    ///
    /// # Errors
    /// More than 2^32 subscriptions, plan versions or ids.
    pub fn new(
        catalog: &Catalog,
        windows: &BTreeMap<String, DateWindow>,
        default_window: DateWindow,
    ) -> Result<Self> {
        let mut customers = IdIndex::default();
        for (id, window) in windows {
            customers.intern(id, || CustomerPlace {
                window: WindowBounds::of(window),
                first: 0,
                end: 0,
            })?;
        }
        let mut products = IdIndex::default();
        let mut segments: Vec<(u32, ProductSegment)> = Vec::new();
        for segment in rating_segments(catalog)? {
            let Some((customer, _)) = customers.get(segment.customer_id) else {
                continue; // Subscriptions of unknown customers were rejected.
            };
            let bounds = SegmentBounds {
                start: day_start_micros(segment.start),
                // An open end is "forever".
                end: segment.end.map_or(i64::MAX, day_start_micros),
                rating: segment.rating,
            };
            let product = products.intern(segment.product_id, || ())?;
            segments.push((customer, ProductSegment { product, bounds }));
        }
        // Stable, as before: the order of segments with equal keys is kept.
        segments.par_sort_by_key(|(customer, s)| (*customer, s.product, s.bounds.start));
        let mut first = 0;
        for group in segments.chunk_by(|a, b| a.0 == b.0) {
            let end = first + group.len() as u32;
            let place = customers.value_mut(group[0].0);
            (place.first, place.end) = (first, end);
            first = end;
        }
        Ok(Self {
            customers,
            products,
            segments: segments.into_iter().map(|(_, s)| s).collect(),
            default_window: WindowBounds::of(&default_window),
            posted_from: None,
        })
    }

    /// With the books: events outside their window that are before it and on or after
    /// `day` are set apart as [`SegmentLookup::falls_in_posted`] says, and every row
    /// left outside is kept track of (it is tried again by later runs).
    #[must_use]
    pub fn with_books(mut self, posted_from: Option<NaiveDate>) -> Self {
        self.posted_from = Some(posted_from.map_or(i64::MAX, day_start_micros));
        self
    }

    /// Whether runs keep track of the events outside the period (with the books).
    pub(super) fn tracks_outside(&self) -> bool {
        self.posted_from.is_some()
    }

    /// Whether an event outside its window falls before it, in a period the books
    /// have posted.
    pub(super) fn falls_in_posted(&self, customer_id: &str, micros: i64) -> bool {
        let Some(from) = self.posted_from else {
            return false;
        };
        let start = self
            .customers
            .get(customer_id)
            .map_or(self.default_window.start, |(_, p)| p.window.start);
        from <= micros && micros < start
    }

    /// [`SegmentLookup::place`] for callers outside rating (late usage): `None`
    /// outside the window, else (subscription index, plan version index, the version's
    /// effective_from in days since the epoch) or why the event cannot be priced.
    pub fn place_event(
        &self,
        customer_id: &str,
        product_id: &str,
        micros: i64,
    ) -> Option<std::result::Result<(u32, u32, i32), UnratedReason>> {
        self.place(customer_id, product_id, micros).map(|placed| {
            placed.map(|(p, _)| (p.subscription_idx, p.version_idx, p.plan_effective_from))
        })
    }

    /// Where an event falls: `None` outside its customer's billing window, else priced
    /// (with the first day of the period) or unrated for a reason.
    pub(super) fn place(
        &self,
        customer_id: &str,
        product_id: &str,
        micros: i64,
    ) -> Option<std::result::Result<(Priced, i32), UnratedReason>> {
        let Some((_, place)) = self.customers.get(customer_id) else {
            return self
                .default_window
                .contains(micros)
                .then_some(Err(UnratedReason::NoActiveSubscription));
        };
        if !place.window.contains(micros) {
            return None;
        }
        let segment = self.products.get(product_id).and_then(|(product, _)| {
            segment_at(
                &self.segments[place.first as usize..place.end as usize],
                product,
                micros,
            )
        });
        Some(match segment {
            Some(s) => s.bounds.rating.map(|p| (p, place.window.period_start)),
            None => Err(UnratedReason::NoActiveSubscription),
        })
    }
}

/// The segment of `product` in force at `micros`, among one customer's `segments` in
/// (product, start) order, those of one product never overlapping: the last of the
/// product starting at or before `micros`, if it has not ended.
fn segment_at(segments: &[ProductSegment], product: u32, micros: i64) -> Option<&ProductSegment> {
    let after = segments.partition_point(|s| (s.product, s.bounds.start) <= (product, micros));
    after
        .checked_sub(1)
        .map(|i| &segments[i])
        .filter(|s| s.product == product && micros < s.bounds.end)
}

/// One rating segment: `[start, end)` for one (customer, product), and what prices
/// its events.
#[derive(Debug, Clone, PartialEq)]
struct Segment<'a> {
    customer_id: &'a str,
    product_id: &'a str,
    start: NaiveDate,
    end: Option<NaiveDate>,
    rating: std::result::Result<Priced, UnratedReason>,
}

/// Every rating segment of every (customer, product) with subscriptions: the stretches
/// between the dates where a subscription or one of its plan versions starts or ends.
fn rating_segments(catalog: &Catalog) -> Result<Vec<Segment<'_>>> {
    let too_many = |what: &str| PipelineError::Internal(format!("more than 2^32 {what}"));
    // A subscription's position in id order is a cheap sort key that orders exactly
    // like the id; positions are distinct, so the (parallel, unstable) sort by
    // (customer, product, position) has one outcome, the order of a map by pair.
    let mut subscriptions: Vec<PairedSubscription<'_>> = catalog
        .subscriptions
        .values()
        .enumerate()
        .map(|(idx, s)| {
            let idx = u32::try_from(idx).map_err(|_| too_many("subscriptions"))?;
            Ok((s.customer_id.as_str(), s.product_id.as_str(), idx, s))
        })
        .collect::<Result<_>>()?;
    subscriptions.par_sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let pairs: Vec<&[PairedSubscription<'_>]> = subscriptions
        .chunk_by(|a, b| (a.0, a.1) == (b.0, b.1))
        .collect();
    // Pairs are independent: segmented in parallel, a block of pairs per task, gathered
    // in pair order.
    let blocks: Vec<Result<Vec<Segment<'_>>>> = pairs
        .par_chunks(4096)
        .map(|block| {
            let mut segments = Vec::with_capacity(block.len() * 2);
            for subs in block {
                pair_segments(catalog, subs, &mut segments)?;
            }
            Ok(segments)
        })
        .collect();
    let mut segments = Vec::with_capacity(subscriptions.len() * 2);
    for block in blocks {
        segments.extend(block?);
    }
    Ok(segments)
}

/// A subscription with its (customer, product) pair and its position in id order.
type PairedSubscription<'a> = (&'a str, &'a str, u32, &'a Subscription);

/// The rating segments of one (customer, product), whose subscriptions are `subs` (in
/// id order), appended to `segments`.
fn pair_segments<'a>(
    catalog: &'a Catalog,
    subs: &[PairedSubscription<'a>],
    segments: &mut Vec<Segment<'a>>,
) -> Result<()> {
    let too_many = |what: &str| PipelineError::Internal(format!("more than 2^32 {what}"));
    let (customer_id, product_id) = (subs[0].0, subs[0].1);
    // Every date where the answer may change: subscription edges and version edges.
    let mut edges: Vec<NaiveDate> = Vec::new();
    for &(_, _, _, s) in subs {
        edges.push(s.start_date);
        edges.extend(s.end_date);
        for (_, v) in catalog.versions_of(&s.plan_id) {
            edges.push(v.effective_from);
            edges.extend(v.effective_to);
        }
        for r in catalog
            .refused_plan_versions
            .get(&s.plan_id)
            .into_iter()
            .flatten()
        {
            edges.extend(r.effective_from);
            edges.extend(r.effective_to);
        }
    }
    edges.sort_unstable();
    edges.dedup();
    for (i, &start) in edges.iter().enumerate() {
        let end = edges.get(i + 1).copied();
        let mut active = subs
            .iter()
            .filter(|(_, _, _, s)| s.start_date <= start && s.end_date.is_none_or(|e| start < e));
        let rating = match (active.next(), active.next()) {
            (None, _) => continue,
            (Some(_), Some(_)) => Err(UnratedReason::AmbiguousSubscription),
            // A refused version comes first: a plan refused as a whole (a row whose
            // version cannot be told) prices nothing.
            (Some((_, _, _, s)), None)
                if catalog.refused_plan_version(&s.plan_id, start).is_some() =>
            {
                Err(UnratedReason::RefusedPlanVersion)
            }
            (Some((_, _, subscription_idx, s)), None) => {
                match catalog.version_on(&s.plan_id, start) {
                    None => Err(UnratedReason::NoPlanVersion),
                    Some((_, v)) if !v.version.model().is_usage() => {
                        Err(UnratedReason::RecurringPlan)
                    }
                    Some((idx, v)) => Ok(Priced {
                        subscription_idx: *subscription_idx,
                        version_idx: u32::try_from(idx).map_err(|_| too_many("plan versions"))?,
                        plan_effective_from: days_since_epoch(v.effective_from),
                    }),
                }
            }
        };
        segments.push(Segment {
            customer_id,
            product_id,
            start,
            end,
            rating,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priced(subscription_idx: u32) -> std::result::Result<Priced, UnratedReason> {
        Ok(Priced {
            subscription_idx,
            version_idx: 0,
            plan_effective_from: 0,
        })
    }

    proptest::proptest! {
        /// The binary search over (product, start) finds exactly the segment a linear
        /// search finds: the one of the product whose [start, end) holds the event.
        #[test]
        fn the_segment_at_an_instant_is_the_one_of_its_product_that_holds_it(
            // Per product, segment lengths and the gaps before them.
            products in proptest::collection::vec(
                proptest::collection::vec((0i64..5, 1i64..5, proptest::bool::ANY), 0..5),
                1..4,
            ),
            product in 0u32..5,
            micros in -2i64..60,
        ) {
            let mut segments = Vec::new();
            for (p, spans) in products.iter().enumerate() {
                let mut at = 0;
                for (n, &(gap, len, open)) in spans.iter().enumerate() {
                    let start = at + gap;
                    let last = n + 1 == spans.len();
                    let end = if last && open { i64::MAX } else { start + len };
                    segments.push(ProductSegment {
                        product: p as u32,
                        bounds: SegmentBounds { start, end, rating: priced(segments.len() as u32) },
                    });
                    at = start + len;
                }
            }
            let expected = segments
                .iter()
                .find(|s| s.product == product && s.bounds.start <= micros && micros < s.bounds.end)
                .map(|s| s.bounds.rating);
            let found = segment_at(&segments, product, micros).map(|s| s.bounds.rating);
            proptest::prop_assert_eq!(found, expected);
        }
    }
}
