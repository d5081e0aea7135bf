//! Rated usage summed per (subscription, product) as it streams to disk.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::Decimal128Type;
use billrun_engine::decimal_from_i128_scaled;
use billrun_schemas::QUANTITY_SCALE;

use billrun_accounting::invoicing::UsageTotals;

use crate::error::{PipelineError, Result};

/// Sums rated usage per (subscription, product) while it streams to disk, so the
/// invoicing stage needs no second pass over events. Input is ordered by subscription and
/// product, so a key changes rarely and is only looked up when it does.
#[derive(Default)]
pub(super) struct TotalsBuilder {
    totals: BTreeMap<(String, String), (u64, i128, i128)>,
    events: u64,
}

impl TotalsBuilder {
    pub(super) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::Internal(format!("rated usage lacks {name}")))
        };
        let subs: &StringArray = col("subscription_id")?.as_string::<i32>();
        let products: &StringArray = col("product_id")?.as_string::<i32>();
        let quantities = col("quantity")?.as_primitive::<Decimal128Type>();
        let amounts = col("amount")?.as_primitive::<Decimal128Type>();
        let overflow = || PipelineError::Internal("rated totals overflow Decimal128".into());
        let mut i = 0;
        while i < batch.num_rows() {
            let (sub, product) = (subs.value(i), products.value(i));
            let mut j = i;
            let (mut q, mut a) = (0i128, 0i128);
            while j < batch.num_rows() && subs.value(j) == sub && products.value(j) == product {
                q = q.checked_add(quantities.value(j)).ok_or_else(overflow)?;
                a = a.checked_add(amounts.value(j)).ok_or_else(overflow)?;
                j += 1;
            }
            let entry = self
                .totals
                .entry((sub.to_string(), product.to_string()))
                .or_default();
            entry.0 += (j - i) as u64;
            entry.1 = entry.1.checked_add(q).ok_or_else(overflow)?;
            entry.2 = entry.2.checked_add(a).ok_or_else(overflow)?;
            i = j;
        }
        self.events += batch.num_rows() as u64;
        debug_assert_eq!(quantities.null_count(), 0);
        Ok(())
    }

    /// Rated events summed so far.
    pub(super) fn events(&self) -> u64 {
        self.events
    }

    pub(super) fn finish(self) -> Result<BTreeMap<(String, String), UsageTotals>> {
        self.totals
            .into_iter()
            .map(|(key, (events, q, a))| {
                Ok((
                    key,
                    UsageTotals {
                        events,
                        quantity: decimal_from_i128_scaled(q, QUANTITY_SCALE as u32)?,
                        amount: decimal_from_i128_scaled(a, QUANTITY_SCALE as u32)?,
                    },
                ))
            })
            .collect()
    }
}
