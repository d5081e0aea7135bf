//! The `unrated` table: events of the period that could not be priced, with why.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::concat_batches;

use super::column;
use super::reason::UnratedReason;
use crate::error::{PipelineError, Result};

/// The events of the period that could not be priced (set aside by [`rating_input`]),
/// as `unrated` rows ordered by event_id.
///
/// # Errors
/// Malformed batches; an unknown status code.
pub fn unrated_usage(
    set_aside: Vec<RecordBatch>,
    catalog: &billrun_accounting::catalog::Catalog,
) -> Result<Vec<RecordBatch>> {
    let schema = billrun_schemas::outputs::OutputTable::Unrated.schema();
    let Some(first) = set_aside.first() else {
        return Ok(Vec::new());
    };
    let all = concat_batches(&first.schema(), &set_aside)?;
    let order = arrow::compute::sort_to_indices(column(&all, "event_id")?, None, None)?;
    let b = arrow::compute::take_record_batch(&all, &order)?;
    let customers = column(&b, "customer_id")?.as_string::<i32>();
    let products = column(&b, "product_id")?.as_string::<i32>();
    let codes = column(&b, "status")?.as_string::<i32>();
    let ts = column(&b, "ts")?.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let mut refused = RefusedVersions::new(catalog);
    let mut reasons = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let reason = UnratedReason::from_code(codes.value(i)).ok_or_else(|| {
            PipelineError::Internal(format!("unknown rating status {}", codes.value(i)))
        })?;
        let mut text = reason.describe(customers.value(i), products.value(i));
        if reason == UnratedReason::RefusedPlanVersion
            && let Some(day) = chrono::DateTime::from_timestamp_micros(ts.value(i))
            && let Some(why) = refused.why(customers.value(i), products.value(i), day.date_naive())
        {
            text = format!("{text}: {why}");
        }
        reasons.push(text);
    }
    Ok(vec![RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::clone(column(&b, "event_id")?),
            Arc::clone(column(&b, "customer_id")?),
            Arc::clone(column(&b, "product_id")?),
            Arc::clone(column(&b, "ts")?),
            Arc::clone(column(&b, "quantity")?),
            Arc::new(StringArray::from(reasons)),
            Arc::clone(column(&b, "status")?),
        ],
    )?])
}

/// The refused plan version behind an unrated event, found through the customer's
/// subscriptions to the product (indexed on first use: few events are refused).
struct RefusedVersions<'a> {
    catalog: &'a billrun_accounting::catalog::Catalog,
    by_pair: Option<
        std::collections::HashMap<
            (&'a str, &'a str),
            Vec<&'a billrun_accounting::catalog::Subscription>,
        >,
    >,
}

impl<'a> RefusedVersions<'a> {
    fn new(catalog: &'a billrun_accounting::catalog::Catalog) -> Self {
        Self {
            catalog,
            by_pair: None,
        }
    }

    /// Why the version of the customer's plan for `product_id` in force on `day` was
    /// refused (the rejected row).
    fn why(
        &mut self,
        customer_id: &str,
        product_id: &str,
        day: chrono::NaiveDate,
    ) -> Option<&'a str> {
        let catalog = self.catalog;
        let by_pair = self.by_pair.get_or_insert_with(|| {
            let mut index: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
            for s in catalog.subscriptions.values() {
                index
                    .entry((s.customer_id.as_str(), s.product_id.as_str()))
                    .or_default()
                    .push(s);
            }
            index
        });
        by_pair
            .get(&(customer_id, product_id))?
            .iter()
            .filter(|s| s.start_date <= day && s.end_date.is_none_or(|e| day < e))
            .find_map(|s| catalog.refused_plan_version(&s.plan_id, day))
            .map(|r| r.why.as_str())
    }
}
