//! A rejected input row, as the `rejects` table holds it, wherever it was found: a cell
//! that broke its column's rule (validation), a row that breaks a rule across rows
//! (master data, contracts, payments), or a duplicate event.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::error::ArrowError;

use crate::outputs::OutputTable;
use crate::{RejectCode, Table};

/// A rejected input row (or whole-row problem found later, such as a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub table: Table,
    pub source_file: String,
    pub row_number: Option<u64>,
    pub column: Option<String>,
    pub code: RejectCode,
    pub reason: String,
    pub raw: String,
}

/// The `rejects` table of `rejects`, in the order given.
///
/// # Errors
/// Arrow errors (none for well-formed rejects).
pub fn rejects_batch(rejects: &[Reject]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        OutputTable::Rejects.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.source_file),
            )),
            Arc::new(UInt64Array::from_iter(rejects.iter().map(|r| r.row_number))),
            Arc::new(StringArray::from_iter(
                rejects.iter().map(|r| r.column.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.reason),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.raw),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.table.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.code.as_str()),
            )),
        ],
    )
}
