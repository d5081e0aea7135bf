//! Rated usage recognised as consumed, summed per day while rated usage streams by.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use billrun_engine::{decimal_from_i128_scaled, month_start};
use billrun_schemas::QUANTITY_SCALE;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::{AccountingError, Result};

/// Rated usage of the (customer, product, currency) keys recognised as consumed, summed
/// per day at full precision while rated usage streams to disk.
#[derive(Debug, Default)]
pub struct ConsumedUsage {
    keys: BTreeSet<(String, String, String)>,
    by_day: BTreeMap<(String, String, String), BTreeMap<NaiveDate, i128>>,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl ConsumedUsage {
    /// Collects usage of `keys` only.
    pub fn new(keys: BTreeSet<(String, String, String)>) -> Self {
        Self {
            keys,
            by_day: BTreeMap::new(),
        }
    }

    /// Adds a batch of rated usage (columns customer_id, product_id, currency, ts, amount).
    ///
    /// # Errors
    /// A batch without those columns, or sums that overflow.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| AccountingError::Internal(format!("rated usage lacks {name}")))
        };
        let customers = col("customer_id")?.as_string::<i32>();
        let products = col("product_id")?.as_string::<i32>();
        let currencies = col("currency")?.as_string::<i32>();
        let ts = col("ts")?.as_primitive::<TimestampMicrosecondType>();
        let amounts = col("amount")?.as_primitive::<Decimal128Type>();
        let mut key: Option<(String, String, String)> = None;
        let mut wanted = false;
        for i in 0..batch.num_rows() {
            let (c, p, cur) = (customers.value(i), products.value(i), currencies.value(i));
            if key
                .as_ref()
                .is_none_or(|(kc, kp, kcur)| kc != c || kp != p || kcur != cur)
            {
                let k = (c.to_string(), p.to_string(), cur.to_string());
                wanted = self.keys.contains(&k);
                key = Some(k);
            }
            if !wanted {
                continue;
            }
            let day = NaiveDate::from_num_days_from_ce_opt(
                i32::try_from(ts.value(i).div_euclid(MICROS_PER_DAY)).unwrap_or(0) + 719_163,
            )
            .ok_or_else(|| AccountingError::Internal("rated usage ts out of range".into()))?;
            let total = self
                .by_day
                .entry(key.clone().unwrap_or_default())
                .or_default()
                .entry(day)
                .or_default();
            *total = total
                .checked_add(amounts.value(i))
                .ok_or_else(|| AccountingError::Internal("consumed usage overflows".into()))?;
        }
        debug_assert_eq!(amounts.null_count(), 0);
        Ok(())
    }

    /// Σ usage of `key` per calendar month over `[start, end)`, at full precision.
    pub(super) fn by_month(
        &self,
        key: &(String, String, String),
        start: NaiveDate,
        end: Option<NaiveDate>,
    ) -> Result<BTreeMap<NaiveDate, Decimal>> {
        let mut out: BTreeMap<NaiveDate, i128> = BTreeMap::new();
        if let Some(days) = self.by_day.get(key) {
            for (day, amount) in days.range(start..) {
                if end.is_some_and(|end| *day >= end) {
                    break;
                }
                let total = out.entry(month_start(*day)).or_default();
                *total = total
                    .checked_add(*amount)
                    .ok_or_else(|| AccountingError::Internal("consumed usage overflows".into()))?;
            }
        }
        out.into_iter()
            .map(|(m, a)| Ok((m, decimal_from_i128_scaled(a, QUANTITY_SCALE as u32)?)))
            .collect()
    }
}
