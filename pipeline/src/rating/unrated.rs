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
pub fn unrated_usage(set_aside: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
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
    let mut reasons = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let reason = UnratedReason::from_code(codes.value(i)).ok_or_else(|| {
            PipelineError::Internal(format!("unknown rating status {}", codes.value(i)))
        })?;
        reasons.push(reason.describe(customers.value(i), products.value(i)));
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
