//! Dates, billing windows and their Arrow encodings (Date32 days, µs timestamps).

use std::ops::RangeInclusive;

use chrono::{DateTime, Days, NaiveDate};

/// Years a period may lie in: far enough from chrono's limits that every date the
/// generator derives from the period (years of history, the following month) exists.
pub(crate) const YEARS: RangeInclusive<i32> = 1950..=9000;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A billing month `(year, month)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub(crate) fn new((year, month): (i32, u32)) -> Self {
        Self { year, month }
    }

    pub(crate) fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub(crate) fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// Day `day` (1..=28 always exists) of this month.
    pub(crate) fn day(self, day: u32) -> NaiveDate {
        ymd(self.year, self.month, day)
    }

    /// The billing window of a customer with billing day `day`: `[this-d, next-d)`.
    pub(crate) fn window(self, day: u32) -> Window {
        Window {
            start: self.day(day),
            end: self.next().day(day),
        }
    }
}

/// A date the caller knows to exist (validated years, days 1..=28).
pub(crate) fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a date of a validated year")
}

/// A half-open range of days `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Window {
    /// Number of days in the window.
    pub(crate) fn days(self) -> u64 {
        (self.end - self.start).num_days().unsigned_abs()
    }

    /// Start and length of the window in microseconds.
    pub(crate) fn micros(self) -> (i64, u64) {
        let start = micros(self.start);
        (start, (micros(self.end) - start).unsigned_abs())
    }
}

/// `date` plus `days`.
pub(crate) fn add_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .expect("a date of a validated year")
}

/// `date` minus `days`.
pub(crate) fn sub_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days))
        .expect("a date of a validated year")
}

/// Days since 1970-01-01: the Arrow `Date32` value of `date`.
pub(crate) fn date32(date: NaiveDate) -> i32 {
    let days = (date - DateTime::UNIX_EPOCH.date_naive()).num_days();
    i32::try_from(days).expect("a date of a validated year fits Date32")
}

/// Microseconds since the epoch of midnight UTC starting `date`.
pub(crate) fn micros(date: NaiveDate) -> i64 {
    i64::from(date32(date)) * MICROS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_billing_day() {
        let october = Month::new((2026, 10));
        let w = october.window(1);
        assert_eq!((w.start, w.end), (ymd(2026, 10, 1), ymd(2026, 11, 1)));
        assert_eq!(w.days(), 31);
        let w = Month::new((2026, 12)).window(28);
        assert_eq!((w.start, w.end), (ymd(2026, 12, 28), ymd(2027, 1, 28)));
        assert_eq!(Month::new((2026, 1)).previous(), Month::new((2025, 12)));
    }

    #[test]
    fn arrow_encodings() {
        assert_eq!(date32(ymd(1970, 1, 2)), 1);
        assert_eq!(micros(ymd(2026, 10, 1)), 1_790_812_800_000_000);
    }
}
