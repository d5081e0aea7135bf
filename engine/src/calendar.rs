//! Billing periods, billing windows and proration by days.
//!
//! A period is named by a month (`--period 2026-10`); a customer with billing day `d`
//! is billed for the half-open window `[2026-10-d, 2026-11-d)`. Recurring fees and
//! minimum commitments are prorated by the days a subscription is active in it.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::{EngineError, checked};

/// A billing period, named by its month (`2026-10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillingMonth {
    /// Calendar year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
}

impl BillingMonth {
    /// Parses `YYYY-MM` exactly: a four-digit year, a dash, a two-digit month 01..=12.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidPeriod`] for anything else (`2026-1`, `2026-13`,
    /// `2026-10-01`, ` 2026-10`).
    pub fn parse(s: &str) -> Result<Self, EngineError> {
        let invalid = || EngineError::InvalidPeriod {
            input: s.to_owned(),
        };
        let (year, month) = s.split_once('-').ok_or_else(invalid)?;
        let all_digits =
            |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(year, 4) || !all_digits(month, 2) {
            return Err(invalid());
        }
        let year = year.parse().map_err(|_| invalid())?;
        let month = month.parse().map_err(|_| invalid())?;
        if !(1..=12).contains(&month) {
            return Err(invalid());
        }
        Ok(Self { year, month })
    }

    /// The month after this one.
    ///
    /// # Errors
    ///
    /// [`EngineError::Overflow`] after December of `i32::MAX`.
    pub fn next(self) -> Result<Self, EngineError> {
        if self.month >= 12 {
            let year = self.year.checked_add(1).ok_or(EngineError::Overflow {
                what: "billing month after the last representable year",
            })?;
            Ok(Self { year, month: 1 })
        } else {
            Ok(Self {
                year: self.year,
                month: self.month + 1,
            })
        }
    }

    /// Day `day` of this month.
    fn date(self, day: u32) -> Result<NaiveDate, EngineError> {
        NaiveDate::from_ymd_opt(self.year, self.month, day).ok_or_else(|| {
            EngineError::InvalidPeriod {
                input: self.to_string(),
            }
        })
    }
}

impl fmt::Display for BillingMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for BillingMonth {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A half-open date window `[start, end)`.
///
/// # Invariants
///
/// `start <= end`; an inverted window is treated as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateWindow {
    /// First day in the window.
    pub start: NaiveDate,
    /// First day after the window.
    pub end: NaiveDate,
}

impl DateWindow {
    /// Number of days in the window (0 if empty or inverted).
    #[must_use]
    pub fn days(&self) -> u32 {
        // chrono dates span under 200 million days, so a non-negative count fits u32.
        u32::try_from((self.end - self.start).num_days()).unwrap_or(0)
    }

    /// The part of this window inside `[other_start, other_end)`, where `other_end =
    /// None` is open-ended (a subscription without end date); `None` if they do not
    /// overlap.
    #[must_use]
    pub fn intersect(&self, other_start: NaiveDate, other_end: Option<NaiveDate>) -> Option<Self> {
        let start = self.start.max(other_start);
        let end = other_end.map_or(self.end, |other_end| self.end.min(other_end));
        (start < end).then_some(Self { start, end })
    }

    /// Whether `date` falls in `[start, end)`.
    #[must_use]
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date < self.end
    }

    /// The last day inside the window, `end − 1 day` (for an empty window, the day
    /// before `start`; `NaiveDate::MIN` if there is none).
    #[must_use]
    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(NaiveDate::MIN)
    }
}

/// Days since 1970-01-01, as Arrow's `Date32` counts them.
pub fn days_since_epoch(day: NaiveDate) -> i32 {
    (day - NaiveDate::default()).num_days() as i32
}

/// The contract's billing window of `month` for billing day `billing_day`:
/// `[YYYY-MM-d, next month's d)`. `billing_day = 1` is the calendar month.
///
/// # Errors
///
/// * [`EngineError::InvalidBillingDay`] unless `1 <= billing_day <= 28` (the days every
///   month has).
/// * [`EngineError::InvalidPeriod`] / [`EngineError::Overflow`] for a month outside
///   chrono's date range.
pub fn billing_window(month: BillingMonth, billing_day: u32) -> Result<DateWindow, EngineError> {
    if !(1..=28).contains(&billing_day) {
        return Err(EngineError::InvalidBillingDay { day: billing_day });
    }
    let start = month.date(billing_day)?;
    let end = month.next()?.date(billing_day)?;
    debug_assert_eq!(start.day(), end.day());
    Ok(DateWindow { start, end })
}

/// A run of days in a billing window with the same unit price (the plan version in
/// force on those days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProrationSegment {
    /// Days in the run.
    pub days: u32,
    /// Fee per full period and seat during the run.
    pub unit_price: Decimal,
}

/// A flat recurring fee prorated by days:
/// `Σ(days × unit_price) × quantity / days_in_window`, unrounded.
///
/// The sum is formed first and divided once, so a subscription active for the whole
/// window pays exactly `unit_price × quantity`, with no rounding residue from
/// per-day prices.
///
/// # Errors
///
/// * [`EngineError::EmptyWindow`] if `days_in_window == 0`.
/// * [`EngineError::InvalidProration`] if the segments cover more days than the window.
/// * [`EngineError::NegativeQuantity`] if `quantity < 0`.
/// * [`EngineError::Overflow`] if the sum exceeds `Decimal`'s range.
pub fn prorate_flat_fee(
    segments: &[ProrationSegment],
    quantity: Decimal,
    days_in_window: u32,
) -> Result<Decimal, EngineError> {
    const WHAT: &str = "prorated flat fee";
    let active_days: u64 = segments.iter().map(|s| u64::from(s.days)).sum();
    check_proration(active_days, days_in_window)?;
    if quantity < Decimal::ZERO {
        return Err(EngineError::NegativeQuantity { quantity });
    }
    let per_seat = segments.iter().try_fold(Decimal::ZERO, |sum, segment| {
        let segment_price = checked::mul(Decimal::from(segment.days), segment.unit_price, WHAT)?;
        checked::add(sum, segment_price, WHAT)
    })?;
    let total = checked::mul(per_seat, quantity, WHAT)?;
    checked::div(total, Decimal::from(days_in_window), WHAT)
}

/// `amount × active_days / days_in_window`, unrounded: a minimum commitment for a
/// subscription active during part of the window. A full window returns `amount`
/// exactly.
///
/// # Errors
///
/// * [`EngineError::EmptyWindow`] if `days_in_window == 0`.
/// * [`EngineError::InvalidProration`] if `active_days > days_in_window`.
/// * [`EngineError::Overflow`] if the product exceeds `Decimal`'s range.
pub fn prorate_amount(
    amount: Decimal,
    active_days: u32,
    days_in_window: u32,
) -> Result<Decimal, EngineError> {
    const WHAT: &str = "prorated amount";
    check_proration(u64::from(active_days), days_in_window)?;
    let scaled = checked::mul(amount, Decimal::from(active_days), WHAT)?;
    checked::div(scaled, Decimal::from(days_in_window), WHAT)
}

fn check_proration(active_days: u64, days_in_window: u32) -> Result<(), EngineError> {
    if days_in_window == 0 {
        return Err(EngineError::EmptyWindow);
    }
    if active_days > u64::from(days_in_window) {
        return Err(EngineError::InvalidProration {
            active_days,
            days_in_window,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn month(s: &str) -> BillingMonth {
        BillingMonth::parse(s).unwrap()
    }

    #[test]
    fn billing_month_parses_and_displays() {
        assert_eq!(
            month("2026-10"),
            BillingMonth {
                year: 2026,
                month: 10
            }
        );
        assert_eq!(month("2026-01").to_string(), "2026-01");
        assert_eq!(
            "0999-12".parse::<BillingMonth>().unwrap().to_string(),
            "0999-12"
        );
        for bad in [
            "",
            "2026",
            "2026-1",
            "2026-13",
            "2026-00",
            "2026-10-01",
            " 2026-10",
            "26-10",
            "2026/10",
            "+202-10",
            "2026-+1",
        ] {
            assert_eq!(
                BillingMonth::parse(bad),
                Err(EngineError::InvalidPeriod {
                    input: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        assert!(month("2026-11") < month("2026-12"));
        assert!(month("2026-12") < month("2027-01"));
    }

    #[test]
    fn billing_windows() {
        let cases = [
            ("2026-10", 1, "2026-10-01", "2026-11-01", 31),
            ("2026-12", 15, "2026-12-15", "2027-01-15", 31),
            ("2026-01", 28, "2026-01-28", "2026-02-28", 31),
            ("2026-02", 1, "2026-02-01", "2026-03-01", 28),
            ("2028-02", 1, "2028-02-01", "2028-03-01", 29),
            ("2026-04", 10, "2026-04-10", "2026-05-10", 30),
        ];
        for (period, day, start, end, days) in cases {
            let window = billing_window(month(period), day).unwrap();
            assert_eq!(window.start, date(start), "{period} day {day}");
            assert_eq!(window.end, date(end), "{period} day {day}");
            assert_eq!(window.days(), days, "{period} day {day}");
        }
        for day in [0, 29, 31] {
            assert_eq!(
                billing_window(month("2026-10"), day),
                Err(EngineError::InvalidBillingDay { day })
            );
        }
    }

    #[test]
    fn window_operations() {
        let window = billing_window(month("2026-10"), 1).unwrap();
        assert!(window.contains(date("2026-10-01")));
        assert!(window.contains(date("2026-10-31")));
        assert!(!window.contains(date("2026-11-01")));
        assert!(!window.contains(date("2026-09-30")));
        assert_eq!(window.last_day(), date("2026-10-31"));

        let mid = window.intersect(date("2026-10-10"), Some(date("2026-10-20")));
        assert_eq!(
            mid,
            Some(DateWindow {
                start: date("2026-10-10"),
                end: date("2026-10-20")
            })
        );
        assert_eq!(mid.unwrap().days(), 10);
        let open = window.intersect(date("2026-09-01"), None).unwrap();
        assert_eq!(open, window);
        assert_eq!(window.intersect(date("2026-11-01"), None), None);
        assert_eq!(
            window.intersect(date("2026-01-01"), Some(date("2026-10-01"))),
            None,
            "an end date is exclusive"
        );
        let inverted = DateWindow {
            start: date("2026-10-02"),
            end: date("2026-10-01"),
        };
        assert_eq!(inverted.days(), 0);
    }

    #[test]
    fn flat_fee_proration() {
        let full = [ProrationSegment {
            days: 31,
            unit_price: d("10"),
        }];
        assert_eq!(prorate_flat_fee(&full, d("3"), 31).unwrap(), d("30"));
        // 10 days at 31.00, then 21 days at 62.00, 2 seats: (310 + 1302) × 2 / 31 = 104.
        let change = [
            ProrationSegment {
                days: 10,
                unit_price: d("31.00"),
            },
            ProrationSegment {
                days: 21,
                unit_price: d("62.00"),
            },
        ];
        assert_eq!(prorate_flat_fee(&change, d("2"), 31).unwrap(), d("104"));
        let third = [ProrationSegment {
            days: 10,
            unit_price: d("1"),
        }];
        let prorated = prorate_flat_fee(&third, d("1"), 30).unwrap();
        assert_eq!(prorated.round_dp(12), d("0.333333333333"));
        assert_eq!(prorate_flat_fee(&[], d("1"), 30).unwrap(), d("0"));
    }

    #[test]
    fn proration_errors() {
        let segment = [ProrationSegment {
            days: 31,
            unit_price: d("1"),
        }];
        assert_eq!(
            prorate_flat_fee(&segment, d("1"), 0),
            Err(EngineError::EmptyWindow)
        );
        assert_eq!(
            prorate_flat_fee(&segment, d("1"), 30),
            Err(EngineError::InvalidProration {
                active_days: 31,
                days_in_window: 30
            })
        );
        assert_eq!(
            prorate_flat_fee(&segment, d("-1"), 31),
            Err(EngineError::NegativeQuantity { quantity: d("-1") })
        );
        assert_eq!(
            prorate_amount(d("100"), 1, 0),
            Err(EngineError::EmptyWindow)
        );
        assert_eq!(
            prorate_amount(d("100"), 32, 31),
            Err(EngineError::InvalidProration {
                active_days: 32,
                days_in_window: 31
            })
        );
    }

    #[test]
    fn amount_proration() {
        assert_eq!(prorate_amount(d("100"), 31, 31).unwrap(), d("100"));
        assert_eq!(prorate_amount(d("100"), 15, 30).unwrap(), d("50"));
        assert_eq!(prorate_amount(d("100"), 0, 30).unwrap(), d("0"));
    }
}
