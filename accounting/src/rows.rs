//! Validated rows, read column by column, and the one way a row is rejected.
//!
//! Every table reaching this crate has been validated against its template
//! (`billrun_schemas::validate_batch`): required columns are present and non-null, values
//! have their canonical types. A [`RowView`] reads one row of such a batch by column
//! name; [`RowOrigin`] remembers where a row came from (table, file, row, content) so a
//! rule checked later — across rows or tables — rejects it with the same provenance a
//! cell problem would have.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, UInt32Type, UInt64Type};
use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
use billrun_schemas::{QUANTITY_SCALE, Reject, RejectCode, RowRenderer, Table};
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// The good rows of one input table after validation, with the names of the run's files
/// (`file_names[i]` is the file whose provenance index is `i`).
#[derive(Debug, Clone, Copy)]
pub struct ValidatedRows<'a> {
    pub table: Table,
    pub batches: &'a [RecordBatch],
    pub file_names: &'a [String],
}

impl<'a> ValidatedRows<'a> {
    /// The rows of `batches`, which hold validated rows of `table`.
    pub fn new(table: Table, batches: &'a [RecordBatch], file_names: &'a [String]) -> Self {
        Self {
            table,
            batches,
            file_names,
        }
    }

    /// Rows in all batches.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row, in file then row order.
    pub fn iter(&self) -> impl Iterator<Item = RowView<'a>> + 'a {
        let (table, file_names) = (self.table, self.file_names);
        self.batches.iter().flat_map(move |batch| {
            (0..batch.num_rows()).map(move |row| RowView {
                table,
                batch,
                row,
                file_names,
            })
        })
    }
}

/// Typed access to one row of a validated batch.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    table: Table,
    batch: &'a RecordBatch,
    row: usize,
    file_names: &'a [String],
}

impl<'a> RowView<'a> {
    /// A text column, borrowed from the batch (no copy); `None` when the column is
    /// absent or the cell empty.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        let column = self.batch.column_by_name(name)?.as_string::<i32>();
        column.is_valid(self.row).then(|| column.value(self.row))
    }

    /// A text column; `None` when the column is absent or the cell empty.
    pub fn text(&self, name: &str) -> Option<String> {
        let column = self.batch.column_by_name(name)?.as_string::<i32>();
        column
            .is_valid(self.row)
            .then(|| column.value(self.row).to_string())
    }

    /// A required column: validation guarantees it is present and non-null.
    pub fn req(&self, name: &str) -> String {
        self.text(name).unwrap_or_default()
    }

    /// A date column.
    pub fn date(&self, name: &str) -> Option<NaiveDate> {
        let column = self
            .batch
            .column_by_name(name)?
            .as_primitive::<Date32Type>();
        column
            .is_valid(self.row)
            .then(|| column.value_as_date(self.row))
            .flatten()
    }

    /// A decimal column, normalised (no trailing zeros).
    pub fn decimal(&self, name: &str) -> Option<Decimal> {
        let column = self
            .batch
            .column_by_name(name)?
            .as_primitive::<Decimal128Type>();
        column.is_valid(self.row).then(|| {
            Decimal::from_i128_with_scale(column.value(self.row), QUANTITY_SCALE as u32).normalize()
        })
    }

    /// An integer column.
    pub fn int(&self, name: &str) -> Option<i64> {
        let column = self.batch.column_by_name(name)?.as_primitive::<Int64Type>();
        column.is_valid(self.row).then(|| column.value(self.row))
    }

    fn file_index(&self) -> usize {
        let column = self.batch.column_by_name(FILE_INDEX_COLUMN);
        column.map_or(0, |c| {
            c.as_primitive::<UInt32Type>().value(self.row) as usize
        })
    }

    fn row_number(&self) -> u64 {
        let column = self.batch.column_by_name(ROW_NUMBER_COLUMN);
        column.map_or(0, |c| c.as_primitive::<UInt64Type>().value(self.row))
    }

    /// Where this row came from, to reject it now or later.
    pub fn origin(&self) -> RowOrigin {
        RowOrigin {
            table: self.table,
            source_file: self
                .file_names
                .get(self.file_index())
                .cloned()
                .unwrap_or_default(),
            row_number: self.row_number(),
            raw: RowRenderer::new(self.batch).row(self.row),
        }
    }

    /// This row, rejected: at `column` (if one is at fault), with `code` and `reason`.
    pub fn reject(&self, column: Option<&str>, code: RejectCode, reason: String) -> Reject {
        self.origin().reject(column, code, reason)
    }
}

/// Where a row came from: its table, file, row number and content as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOrigin {
    pub table: Table,
    pub source_file: String,
    pub row_number: u64,
    pub raw: String,
}

impl RowOrigin {
    /// The row, rejected. Every cross-row reject of billrun is built here.
    pub fn reject(&self, column: Option<&str>, code: RejectCode, reason: String) -> Reject {
        Reject {
            table: self.table,
            source_file: self.source_file.clone(),
            row_number: Some(self.row_number),
            column: column.map(str::to_string),
            code,
            reason,
            raw: self.raw.clone(),
        }
    }
}
