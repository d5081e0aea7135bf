//! Arrow columns of output tables, built from domain values.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, StringArray};
use billrun_engine::{days_since_epoch, decimal_to_i128_scaled};
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE, QUANTITY_SCALE};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::Result;

/// A `Utf8` column.
pub fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A nullable `Utf8` column.
pub fn opt_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// A `Date32` column of `days`.
pub fn date_array(days: impl Iterator<Item = NaiveDate>) -> ArrayRef {
    Arc::new(Date32Array::from_iter_values(days.map(days_since_epoch)))
}

fn decimal_array(values: impl Iterator<Item = Decimal>, scale: i8) -> Result<ArrayRef> {
    let mantissas = values
        .map(|v| decimal_to_i128_scaled(v, scale as u32))
        .collect::<Result<Vec<i128>, _>>()?;
    Ok(Arc::new(
        Decimal128Array::from_iter_values(mantissas)
            .with_precision_and_scale(DECIMAL_PRECISION, scale)?,
    ))
}

/// An invoice-money column, `Decimal128(38, 4)`.
///
/// # Errors
/// A value that does not fit.
pub fn money_array(values: impl Iterator<Item = Decimal>) -> Result<ArrayRef> {
    decimal_array(values, MONEY_SCALE)
}

/// A quantity or rated-amount column, `Decimal128(38, 12)`.
///
/// # Errors
/// A value that does not fit.
pub fn quantity_array(values: impl Iterator<Item = Decimal>) -> Result<ArrayRef> {
    decimal_array(values, QUANTITY_SCALE)
}
