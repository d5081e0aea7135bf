//! # billrun-schemas: the published shape of every table
//!
//! This crate is the single source of billrun's tables: the input templates that upstream
//! systems export to, and the output tables analysts and ledgers read
//! (`../shared/spec/DATA-CONTRACT.md`). Everything that needs a column name, a type or a
//! validation rule asks here, so the reader, the writer, the docs and the templates can
//! never drift apart.
//!
//! * [`templates`] describes each input table column by column ([`ColumnSpec`]) and gives
//!   its canonical Arrow schema, the shape every later stage can rely on.
//! * [`validate`] turns whatever a file held (CSV text, or typed Parquet columns) into
//!   that canonical shape, one column at a time, and reports every bad row with the column
//!   and a reason instead of dropping it ([`RowReject`]).
//! * [`outputs`] holds the Arrow schemas of the tables a bill run writes.
//! * [`reject`] is a rejected row as the `rejects` table holds it, whichever stage found it.
//!
//! Money and quantities are `Decimal128`, never floats: inputs at scale
//! [`QUANTITY_SCALE`], rated amounts at [`billrun_engine::AMOUNT_SCALE`], invoice money at
//! [`MONEY_SCALE`].

pub mod docs;
pub mod outputs;
pub mod reject;
pub mod templates;
pub mod validate;

pub use reject::{Reject, rejects_batch};
pub use templates::{ColumnKind, ColumnSpec, Table};
pub use validate::{
    RejectCode, RowReject, RowRenderer, TemplateError, ValidatedBatch, check_header, validate_batch,
};

use arrow::datatypes::{DataType, TimeUnit};

/// Fractional digits kept for input quantities, prices, rates and fees.
pub const QUANTITY_SCALE: i8 = 12;
/// Fractional digits of invoice money columns: no ISO 4217 currency has more than 4.
pub const MONEY_SCALE: i8 = 4;
/// Precision of every Decimal128 column billrun writes.
pub const DECIMAL_PRECISION: u8 = 38;

/// Arrow type of input quantities, prices, rates and of rated amounts.
pub fn quantity_type() -> DataType {
    DataType::Decimal128(DECIMAL_PRECISION, QUANTITY_SCALE)
}

/// Arrow type of invoice money.
pub fn money_type() -> DataType {
    DataType::Decimal128(DECIMAL_PRECISION, MONEY_SCALE)
}

/// Arrow type of event timestamps: microseconds in UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}
