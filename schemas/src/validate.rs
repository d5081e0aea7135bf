//! Template validation: raw columns in, canonical columns and row rejects out.
//!
//! A file is checked column by column (vectorised, so a 10M-row usage file is cheap), not
//! row by row. Every cell that breaks its column's rule marks its row; marked rows leave
//! the batch and come back as [`RowReject`]s naming the column and the reason, so that
//! nothing is ever dropped silently. A problem with the file as a whole (a required column
//! missing, money stored as float) is a [`TemplateError`]: the file cannot be read at all.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array, new_null_array,
};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate};

use crate::templates::{ColumnKind, ColumnSpec, Sign, Table};
use crate::{DECIMAL_PRECISION, QUANTITY_SCALE};

/// Why a row was rejected: a stable code for machines, next to the sentence for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    MissingValue,
    BadDecimal,
    TooManyDecimals,
    BadInteger,
    BadDate,
    BadTimestamp,
    BadEnum,
    BadId,
    UnknownCurrency,
    NegativeQuantity,
    OutOfRange,
    DuplicateEvent,
    ConflictingDuplicate,
    DuplicateKey,
    InvalidPlan,
    UnknownReference,
    MalformedRow,
    InvalidContract,
}

impl RejectCode {
    /// The code as written in the `rejects.code` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::MissingValue => "missing_value",
            RejectCode::BadDecimal => "bad_decimal",
            RejectCode::TooManyDecimals => "too_many_decimals",
            RejectCode::BadInteger => "bad_integer",
            RejectCode::BadDate => "bad_date",
            RejectCode::BadTimestamp => "bad_timestamp",
            RejectCode::BadEnum => "bad_enum",
            RejectCode::BadId => "bad_id",
            RejectCode::UnknownCurrency => "unknown_currency",
            RejectCode::NegativeQuantity => "negative_quantity",
            RejectCode::OutOfRange => "out_of_range",
            RejectCode::DuplicateEvent => "duplicate_event",
            RejectCode::ConflictingDuplicate => "conflicting_duplicate",
            RejectCode::DuplicateKey => "duplicate_key",
            RejectCode::InvalidPlan => "invalid_plan",
            RejectCode::UnknownReference => "unknown_reference",
            RejectCode::MalformedRow => "malformed_row",
            RejectCode::InvalidContract => "invalid_contract",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowReject {
    /// Index of the row in the batch that was validated (0-based).
    pub row_index: usize,
    /// The first column that broke its rule; `None` when the row as a whole is at fault.
    pub column: Option<&'static str>,
    pub code: RejectCode,
    pub reason: String,
    /// The row as it was read, rendered as one CSV line.
    pub raw: String,
    /// The raw text of the table's [`Table::version_key`] columns (none where a column
    /// is absent or empty).
    pub version_key: Vec<Option<String>>,
}

/// A problem with a file as a whole: none of its rows can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("required column `{column}` of table `{table}` is missing")]
    MissingColumn { table: Table, column: &'static str },
    #[error(
        "the header names column `{column}` {count} times; each column of table `{table}` must appear once"
    )]
    DuplicateColumn {
        table: Table,
        column: String,
        count: usize,
    },
    #[error(
        "the header `{header}` is one column: fields of a CSV file of table `{table}` are separated by commas, not {delimiter}"
    )]
    WrongDelimiter {
        table: Table,
        header: String,
        /// How the delimiter found is named: "`;`", "tabs", "`|`".
        delimiter: &'static str,
    },
    #[error(
        "column `{column}` of table `{table}` is stored as {data_type}; money and quantities must be decimals, never binary floats"
    )]
    FloatColumn {
        table: Table,
        column: &'static str,
        data_type: DataType,
    },
    #[error(
        "column `{column}` of table `{table}` has type {data_type}, which cannot hold {expected}"
    )]
    UnsupportedType {
        table: Table,
        column: &'static str,
        data_type: DataType,
        expected: String,
    },
}

/// Checks a file's header (its column names, in order) against `table`'s template
/// before any row is read, so that a file the template cannot describe fails as a file
/// whatever its rows look like: a required column missing (a single column that holds
/// `;`, a tab or `|` names the delimiter used instead of commas), or a column named twice
/// (which one holds the value would be a guess).
///
/// # Errors
/// The first problem found.
pub fn check_header(table: Table, names: &[&str]) -> Result<(), TemplateError> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    if let Some((column, count)) = names
        .iter()
        .filter(|n| !n.is_empty())
        .find_map(|n| counts.get(n).filter(|c| **c > 1).map(|c| (*n, *c)))
    {
        return Err(TemplateError::DuplicateColumn {
            table,
            column: column.to_string(),
            count,
        });
    }
    let Some(missing) = table
        .columns()
        .iter()
        .find(|spec| spec.required && !counts.contains_key(spec.name))
    else {
        return Ok(());
    };
    if let [only] = names
        && let Some((_, delimiter)) = [(';', "`;`"), ('\t', "tabs"), ('|', "`|`")]
            .into_iter()
            .find(|(d, _)| only.contains(*d))
    {
        return Err(TemplateError::WrongDelimiter {
            table,
            header: only.to_string(),
            delimiter,
        });
    }
    Err(TemplateError::MissingColumn {
        table,
        column: missing.name,
    })
}

/// The outcome of validating one batch: the good rows in canonical form, and the rest.
#[derive(Debug)]
pub struct ValidatedBatch {
    /// Good rows with the table's canonical schema ([`Table::schema`]).
    pub batch: RecordBatch,
    /// Rejected rows, in row order.
    pub rejects: Vec<RowReject>,
}

/// Validates `input` (one batch read from one file) against `table`'s template.
///
/// `file_index` and `first_row_number` fill the provenance columns: the batch's first row
/// is data row `first_row_number` (1-based) of file `file_index`.
///
/// # Errors
/// A [`TemplateError`] when the batch as a whole cannot be read as the template: a
/// required column is missing, or a column has a type that cannot hold its values.
pub fn validate_batch(
    table: Table,
    input: &RecordBatch,
    file_index: u32,
    first_row_number: u64,
) -> Result<ValidatedBatch, TemplateError> {
    let rows = input.num_rows();
    let mut problems: Vec<Option<Problem>> = vec![None; rows];
    let mut extra_problems: Vec<u16> = vec![0; rows];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.columns().len() + 2);

    for spec in table.columns() {
        let source = input.column_by_name(spec.name);
        let converted = match source {
            Some(array) => convert_column(table, spec, array)?,
            None if spec.required => {
                return Err(TemplateError::MissingColumn {
                    table,
                    column: spec.name,
                });
            }
            None => Converted {
                array: new_null_array(&spec.kind.data_type(), rows),
                problems: Vec::new(),
            },
        };
        let Converted {
            array,
            problems: found,
        } = converted;
        for (row, problem) in found {
            match &problems[row] {
                None => problems[row] = Some(problem),
                Some(_) => extra_problems[row] = extra_problems[row].saturating_add(1),
            }
        }
        if spec.required && array.null_count() > 0 {
            for (row, slot) in problems.iter_mut().enumerate() {
                if array.is_null(row) && slot.is_none() {
                    *slot = Some(Problem {
                        column: spec.name,
                        code: RejectCode::MissingValue,
                        reason: format!("required column `{}` is empty", spec.name),
                    });
                }
            }
        }
        columns.push(array);
    }

    columns.push(Arc::new(UInt32Array::from_value(file_index, rows)));
    columns.push(Arc::new(UInt64Array::from_iter_values(
        (0..rows as u64).map(|i| first_row_number + i),
    )));
    // Rows with problems hold nulls in required columns until they are filtered out, so the
    // batch is first built against a schema where every column may be null.
    let canonical = table.schema();
    let loose = Arc::new(Schema::new(
        canonical
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let typed = RecordBatch::try_new(loose, columns).expect(CANONICAL);

    let keep_all = problems.iter().all(Option::is_none);
    let kept = if keep_all {
        typed
    } else {
        let keep = BooleanArray::from_iter(problems.iter().map(|p| Some(p.is_none())));
        filter_record_batch(&typed, &keep).expect(CANONICAL)
    };
    // Paired with the checks above: what remains satisfies the published schema.
    let batch = RecordBatch::try_new(canonical, kept.columns().to_vec()).expect(CANONICAL);
    if keep_all {
        return Ok(ValidatedBatch {
            batch,
            rejects: Vec::new(),
        });
    }

    let render = RowRenderer::new(input);
    let rejects = problems
        .into_iter()
        .enumerate()
        .filter_map(|(row, p)| p.map(|p| (row, p)))
        .map(|(row, p)| {
            let extra = extra_problems[row];
            let reason = if extra == 0 {
                p.reason
            } else {
                format!("{} (and {extra} more problem(s) in this row)", p.reason)
            };
            RowReject {
                row_index: row,
                column: Some(p.column),
                code: p.code,
                reason,
                raw: render.row(row),
                version_key: render.cells(row, table.version_key()),
            }
        })
        .collect();
    Ok(ValidatedBatch { batch, rejects })
}

/// Canonical arrays are built from the spec's own types and every null in a required
/// column marks its row as rejected; a mismatch here is a bug in this module.
const CANONICAL: &str = "canonical columns match the table schema";

#[derive(Debug, Clone)]
struct Problem {
    column: &'static str,
    code: RejectCode,
    reason: String,
}

struct Converted {
    array: ArrayRef,
    problems: Vec<(usize, Problem)>,
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || matches!(dt, DataType::Dictionary(_, v) if is_string(v))
}

fn is_float(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

fn to_strings(
    table: Table,
    spec: &ColumnSpec,
    array: &ArrayRef,
) -> Result<StringArray, TemplateError> {
    let utf8 = cast(array, &DataType::Utf8).map_err(|_| TemplateError::UnsupportedType {
        table,
        column: spec.name,
        data_type: array.data_type().clone(),
        expected: spec.kind.describe(),
    })?;
    Ok(utf8
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 yields a StringArray")
        .clone())
}

fn convert_column(
    table: Table,
    spec: &ColumnSpec,
    array: &ArrayRef,
) -> Result<Converted, TemplateError> {
    let dt = array.data_type();
    let unsupported = || TemplateError::UnsupportedType {
        table,
        column: spec.name,
        data_type: dt.clone(),
        expected: spec.kind.describe(),
    };
    match spec.kind {
        ColumnKind::Id | ColumnKind::Text | ColumnKind::Currency | ColumnKind::Enum { .. } => {
            if is_float(dt) {
                return Err(unsupported());
            }
            let strings = to_strings(table, spec, array)?;
            Ok(convert_text(spec, &strings))
        }
        ColumnKind::Integer { .. } => {
            if is_string(dt) {
                let strings = to_strings(table, spec, array)?;
                return Ok(parse_each(spec, &strings, parse_integer, |v| {
                    Arc::new(Int64Array::from(v)) as ArrayRef
                }));
            }
            if !dt.is_integer() {
                return Err(unsupported());
            }
            // Through Decimal128(38, 0), which holds every integer type exactly (a cast
            // to Int64 would turn a UInt64 above i64::MAX into an empty value).
            let wide = cast(array, &DataType::Decimal128(38, 0)).map_err(|_| unsupported())?;
            let wide = wide
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .ok_or_else(unsupported)?;
            let values: Vec<Option<i128>> = wide.iter().collect();
            Ok(check_each(
                values,
                |v| check_wide_integer(spec, *v),
                |v| Arc::new(Int64Array::from(v)) as ArrayRef,
            ))
        }
        ColumnKind::Decimal { .. } => {
            if is_float(dt) {
                return Err(TemplateError::FloatColumn {
                    table,
                    column: spec.name,
                    data_type: dt.clone(),
                });
            }
            if is_string(dt) {
                let strings = to_strings(table, spec, array)?;
                return Ok(parse_each(spec, &strings, parse_decimal, decimal_array));
            }
            let values = typed_decimals(array).ok_or_else(unsupported)?;
            Ok(check_each(
                values,
                |v| check_decimal(spec, *v),
                decimal_array,
            ))
        }
        ColumnKind::Date => {
            if is_string(dt) {
                let strings = to_strings(table, spec, array)?;
                return Ok(parse_each(spec, &strings, parse_date, |v| {
                    Arc::new(Date32Array::from(v)) as ArrayRef
                }));
            }
            if !matches!(dt, DataType::Date32 | DataType::Date64) {
                return Err(unsupported());
            }
            let dates = cast(array, &DataType::Date32).map_err(|_| unsupported())?;
            Ok(Converted {
                array: dates,
                problems: Vec::new(),
            })
        }
        ColumnKind::Timestamp => {
            if is_string(dt) {
                let strings = to_strings(table, spec, array)?;
                return Ok(parse_each(spec, &strings, parse_timestamp, |v| {
                    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef
                }));
            }
            if !matches!(dt, DataType::Timestamp(_, _)) {
                return Err(unsupported());
            }
            // A timestamp without a zone is taken as UTC, as the contract says all are.
            let target = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let ts = cast(array, &target).map_err(|_| unsupported())?;
            Ok(Converted {
                array: ts,
                problems: Vec::new(),
            })
        }
    }
}

fn decimal_array(values: Vec<Option<i128>>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values)
            .with_precision_and_scale(DECIMAL_PRECISION, QUANTITY_SCALE)
            .expect("precision 38 scale 12 is valid"),
    )
}

/// Typed Parquet decimals or integers as i128 at scale 12; `Err` per value that would
/// need rounding (never rounded silently).
fn typed_decimals(array: &ArrayRef) -> Option<Vec<Option<Result<i128, RejectCode>>>> {
    let dt = array.data_type();
    if dt.is_integer() {
        // Decimal128(38, 0) holds every integer type exactly, UInt64 included.
        let ints = cast(array, &DataType::Decimal128(38, 0)).ok()?;
        let ints = ints.as_any().downcast_ref::<Decimal128Array>()?;
        return Some(ints.iter().map(|v| v.map(|v| scale_up(v, 0))).collect());
    }
    let (array, scale): (ArrayRef, i8) = match dt {
        DataType::Decimal128(_, s) => (Arc::clone(array), *s),
        DataType::Decimal32(_, s) | DataType::Decimal64(_, s) => {
            (cast(array, &DataType::Decimal128(38, *s)).ok()?, *s)
        }
        DataType::Decimal256(_, s) => {
            // Value by value: a cast would make a value beyond 38 digits empty.
            let wide = array
                .as_any()
                .downcast_ref::<arrow::array::Decimal256Array>()?;
            return Some(
                wide.iter()
                    .map(|v| {
                        v.map(|v| {
                            v.to_i128()
                                .ok_or(RejectCode::OutOfRange)
                                .and_then(|v| rescale(v, *s))
                        })
                    })
                    .collect(),
            );
        }
        _ => return None,
    };
    let decimals = array.as_any().downcast_ref::<Decimal128Array>()?;
    Some(
        decimals
            .iter()
            .map(|v| v.map(|v| rescale(v, scale)))
            .collect(),
    )
}

fn rescale(v: i128, scale: i8) -> Result<i128, RejectCode> {
    if scale <= QUANTITY_SCALE {
        scale_up(v, scale)
    } else {
        let Some(factor) =
            10i128.checked_pow(u32::from(scale.unsigned_abs()) - QUANTITY_SCALE as u32)
        else {
            // More than 38 fractional digits: only zero is exact at 12.
            return if v == 0 {
                Ok(0)
            } else {
                Err(RejectCode::TooManyDecimals)
            };
        };
        if v % factor != 0 {
            return Err(RejectCode::TooManyDecimals);
        }
        Ok(v / factor)
    }
}

fn scale_up(v: i128, scale: i8) -> Result<i128, RejectCode> {
    let shift = i32::from(QUANTITY_SCALE) - i32::from(scale);
    let factor = 10i128
        .checked_pow(shift.unsigned_abs())
        .ok_or(RejectCode::OutOfRange)?;
    if shift >= 0 {
        v.checked_mul(factor).ok_or(RejectCode::OutOfRange)
    } else if v % factor == 0 {
        Ok(v / factor)
    } else {
        Err(RejectCode::TooManyDecimals)
    }
}

/// Maximum magnitude that fits Decimal128(38, 12).
const DECIMAL_MAX: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;

/// Every decimal input is below 10^16 in magnitude (at scale 12: 10^28): the rating
/// is exact only below 10^16 (`billrun_engine::attribution`), and the engine's 96-bit
/// decimals hold values at 12 fractional digits only up to ~7.9 × 10^16. A larger
/// value is a rejected row naming its column, never a failed run.
pub const VALUE_LIMIT: i128 = 10_i128.pow(28);

fn check_decimal(spec: &ColumnSpec, v: Result<i128, RejectCode>) -> Result<i128, Problem> {
    let v = v.map_err(|code| problem(spec, code, decimal_problem_reason(spec, code, None)))?;
    check_decimal_sign(spec, v)
}

fn decimal_problem_reason(spec: &ColumnSpec, code: RejectCode, text: Option<&str>) -> String {
    let shown = text.map(|t| format!(" `{t}`")).unwrap_or_default();
    match code {
        RejectCode::TooManyDecimals => format!(
            "`{}` value{shown} has more than {QUANTITY_SCALE} fractional digits",
            spec.name
        ),
        RejectCode::OutOfRange => format!(
            "`{}` value{shown} is too large: billrun takes values below 10^16 (10000000000000000)",
            spec.name
        ),
        _ => format!(
            "`{}` value{shown} is not a decimal number (expected e.g. 12.50)",
            spec.name
        ),
    }
}

fn check_decimal_sign(spec: &ColumnSpec, v: i128) -> Result<i128, Problem> {
    let ColumnKind::Decimal { sign } = spec.kind else {
        unreachable!("decimal check on a non-decimal column")
    };
    if v.abs() >= VALUE_LIMIT {
        return Err(problem(
            spec,
            RejectCode::OutOfRange,
            format!(
                "`{}` value `{}` is too large: billrun takes values below 10^16 (10000000000000000)",
                spec.name,
                format_scaled(v)
            ),
        ));
    }
    let one = 10i128.pow(QUANTITY_SCALE as u32);
    let shown = || format_scaled(v);
    match sign {
        Sign::NonNegative if v < 0 => Err(problem(
            spec,
            RejectCode::NegativeQuantity,
            format!(
                "`{}` is negative ({}); it must be 0 or more",
                spec.name,
                shown()
            ),
        )),
        Sign::Positive if v <= 0 => Err(problem(
            spec,
            if v < 0 {
                RejectCode::NegativeQuantity
            } else {
                RejectCode::OutOfRange
            },
            format!("`{}` must be greater than 0, got {}", spec.name, shown()),
        )),
        Sign::Percent if !(0..=100 * one).contains(&v) => Err(problem(
            spec,
            RejectCode::OutOfRange,
            format!(
                "`{}` must be a percentage from 0 to 100, got {}",
                spec.name,
                shown()
            ),
        )),
        Sign::Fraction if !(0..=one).contains(&v) => Err(problem(
            spec,
            RejectCode::OutOfRange,
            format!(
                "`{}` must be a fraction from 0 to 1 (0.2 = 20%), got {}",
                spec.name,
                shown()
            ),
        )),
        _ => Ok(v),
    }
}

/// Renders an i128 at scale 12 without trailing zeros, for messages.
pub fn format_scaled(v: i128) -> String {
    // In integers: rust_decimal holds 28 digits, a Decimal128 up to 38.
    let one = 10u128.pow(QUANTITY_SCALE as u32);
    let magnitude = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    let (whole, fraction) = (magnitude / one, magnitude % one);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:0width$}", width = QUANTITY_SCALE as usize);
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

fn problem(spec: &ColumnSpec, code: RejectCode, reason: String) -> Problem {
    Problem {
        column: spec.name,
        code,
        reason,
    }
}

fn parse_decimal(spec: &ColumnSpec, text: &str) -> Result<i128, Problem> {
    let v = parse_decimal_scaled(text)
        .map_err(|code| problem(spec, code, decimal_problem_reason(spec, code, Some(text))))?;
    check_decimal_sign(spec, v)
}

/// Parses a plain decimal (`-12.50`, `3`, `.5`) into an integer at scale 12, exactly.
/// Exponents, thousands separators and currency signs are refused rather than guessed.
pub fn parse_decimal_scaled(text: &str) -> Result<i128, RejectCode> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(RejectCode::BadDecimal);
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > QUANTITY_SCALE as usize {
        return Err(RejectCode::TooManyDecimals);
    }
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac_trimmed.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or(RejectCode::OutOfRange)?;
    }
    let pad = QUANTITY_SCALE as u32 - frac_trimmed.len() as u32;
    value = value
        .checked_mul(10i128.pow(pad))
        .ok_or(RejectCode::OutOfRange)?;
    if value > DECIMAL_MAX {
        return Err(RejectCode::OutOfRange);
    }
    Ok(if negative { -value } else { value })
}

fn parse_integer(spec: &ColumnSpec, text: &str) -> Result<i64, Problem> {
    let v: i64 = text.parse().map_err(|_| {
        problem(
            spec,
            RejectCode::BadInteger,
            format!("`{}` value `{text}` is not a whole number", spec.name),
        )
    })?;
    check_integer(spec, v)
}

/// [`check_integer`] of a value of any integer type.
fn check_wide_integer(spec: &ColumnSpec, v: i128) -> Result<i64, Problem> {
    match i64::try_from(v) {
        Ok(v) => check_integer(spec, v),
        Err(_) => {
            let ColumnKind::Integer { min, max } = spec.kind else {
                unreachable!("integer check on a non-integer column")
            };
            Err(problem(
                spec,
                RejectCode::OutOfRange,
                format!("`{}` must be from {min} to {max}, got {v}", spec.name),
            ))
        }
    }
}

fn check_integer(spec: &ColumnSpec, v: i64) -> Result<i64, Problem> {
    let ColumnKind::Integer { min, max } = spec.kind else {
        unreachable!("integer check on a non-integer column")
    };
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(problem(
            spec,
            RejectCode::OutOfRange,
            format!("`{}` must be from {min} to {max}, got {v}", spec.name),
        ))
    }
}

const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn parse_date(spec: &ColumnSpec, text: &str) -> Result<i32, Problem> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .map(|d| chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAYS_FROM_CE)
        .ok_or_else(|| {
            problem(
                spec,
                RejectCode::BadDate,
                format!(
                    "`{}` value `{text}` is not a date (expected YYYY-MM-DD)",
                    spec.name
                ),
            )
        })
}

fn parse_timestamp(spec: &ColumnSpec, text: &str) -> Result<i64, Problem> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            problem(
                spec,
                RejectCode::BadTimestamp,
                format!(
                    "`{}` value `{text}` is not an RFC 3339 timestamp (expected e.g. 2026-03-01T12:00:00Z)",
                    spec.name
                ),
            )
        })
}

fn parse_each<T: Copy>(
    spec: &ColumnSpec,
    strings: &StringArray,
    parse: impl Fn(&ColumnSpec, &str) -> Result<T, Problem>,
    build: impl FnOnce(Vec<Option<T>>) -> ArrayRef,
) -> Converted {
    let mut problems = Vec::new();
    let mut values = Vec::with_capacity(strings.len());
    for (row, cell) in strings.iter().enumerate() {
        let cell = cell.map(str::trim).filter(|s| !s.is_empty());
        values.push(match cell {
            None => None,
            Some(text) => match parse(spec, text) {
                Ok(v) => Some(v),
                Err(p) => {
                    problems.push((row, p));
                    None
                }
            },
        });
    }
    Converted {
        array: build(values),
        problems,
    }
}

fn check_each<S, T: Copy>(
    values: Vec<Option<S>>,
    check: impl Fn(&S) -> Result<T, Problem>,
    build: impl FnOnce(Vec<Option<T>>) -> ArrayRef,
) -> Converted {
    let mut problems = Vec::new();
    let checked = values
        .into_iter()
        .enumerate()
        .map(|(row, v)| match v {
            None => None,
            Some(v) => match check(&v) {
                Ok(v) => Some(v),
                Err(p) => {
                    problems.push((row, p));
                    None
                }
            },
        })
        .collect();
    Converted {
        array: build(checked),
        problems,
    }
}

fn convert_text(spec: &ColumnSpec, strings: &StringArray) -> Converted {
    let mut problems = Vec::new();
    let needs_trim = strings
        .iter()
        .flatten()
        .any(|s| s.is_empty() || s.trim().len() != s.len());
    let cleaned: StringArray = if needs_trim {
        strings
            .iter()
            .map(|s| s.map(str::trim).filter(|s| !s.is_empty()))
            .collect()
    } else {
        strings.clone()
    };
    for (row, cell) in cleaned.iter().enumerate() {
        let Some(text) = cell else { continue };
        let issue = match spec.kind {
            ColumnKind::Currency if billrun_engine::minor_units(text).is_none() => Some((
                RejectCode::UnknownCurrency,
                format!(
                    "`{}` value `{text}` is not an ISO 4217 currency code",
                    spec.name
                ),
            )),
            ColumnKind::Enum { values } if !values.contains(&text) => Some((
                RejectCode::BadEnum,
                format!(
                    "`{}` value `{text}` is not one of: {}",
                    spec.name,
                    values.join(", ")
                ),
            )),
            ColumnKind::Id if text.chars().any(char::is_control) => Some((
                RejectCode::BadId,
                format!("`{}` contains control characters", spec.name),
            )),
            _ => None,
        };
        if let Some((code, reason)) = issue {
            problems.push((row, problem(spec, code, reason)));
        }
    }
    Converted {
        array: Arc::new(cleaned),
        problems,
    }
}

/// Renders rows of a batch back to CSV lines for the `rejects.raw` column. Provenance
/// columns (names starting with `_`) are left out: they are not part of the input.
pub struct RowRenderer<'a> {
    formatters: Vec<ArrayFormatter<'a>>,
    /// The column name of each formatter.
    names: Vec<&'a str>,
}

impl std::fmt::Debug for RowRenderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowRenderer")
            .field("columns", &self.formatters.len())
            .finish()
    }
}

impl<'a> RowRenderer<'a> {
    /// Prepares formatters for every column of `batch`.
    pub fn new(batch: &'a RecordBatch) -> Self {
        static OPTIONS: FormatOptions<'static> = FormatOptions::new();
        let (names, formatters) = batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| !f.name().starts_with('_'))
            .filter_map(|(f, c)| {
                ArrayFormatter::try_new(c.as_ref(), &OPTIONS)
                    .ok()
                    .map(|fmt| (f.name().as_str(), fmt))
            })
            .unzip();
        Self { formatters, names }
    }

    /// The text of `columns` in row `row`, trimmed; `None` for a column the batch does
    /// not have or an empty value.
    pub fn cells(&self, row: usize, columns: &[&str]) -> Vec<Option<String>> {
        columns
            .iter()
            .map(|column| {
                let at = self.names.iter().position(|n| n == column)?;
                let text = self.formatters[at].value(row).to_string();
                let text = text.trim();
                (!text.is_empty()).then(|| text.to_string())
            })
            .collect()
    }

    /// Row `row` as one CSV line.
    pub fn row(&self, row: usize) -> String {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let cells: Vec<String> = self
            .formatters
            .iter()
            .map(|f| f.value(row).to_string())
            .collect();
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(&cells);
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\n')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;
    use arrow::datatypes::{Field, Schema};

    fn csv_batch(columns: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let arrays = columns
            .iter()
            .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
    }

    #[test]
    fn parses_plain_decimals_exactly() {
        let cases = [
            ("12.50", Ok(12_500_000_000_000)),
            ("-3", Ok(-3_000_000_000_000)),
            (".5", Ok(500_000_000_000)),
            ("0.000000000001", Ok(1)),
            ("1.0000000000000", Ok(1_000_000_000_000)),
            ("0.0000000000001", Err(RejectCode::TooManyDecimals)),
            ("1e5", Err(RejectCode::BadDecimal)),
            ("1,000.00", Err(RejectCode::BadDecimal)),
            ("$5", Err(RejectCode::BadDecimal)),
            ("", Err(RejectCode::BadDecimal)),
            (".", Err(RejectCode::BadDecimal)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_decimal_scaled(text), expected, "{text}");
        }
    }

    #[test]
    fn bad_usage_rows_are_rejected_with_column_and_reason() {
        let input = csv_batch(&[
            (
                "event_id",
                vec![Some("e1"), Some("e2"), Some("e3"), Some("e4"), None],
            ),
            ("customer_id", vec![Some("C1"); 5]),
            ("product_id", vec![Some("P1"); 5]),
            (
                "ts",
                vec![
                    Some("2026-10-01T00:00:00Z"),
                    Some("yesterday"),
                    Some("2026-10-01T00:00:00Z"),
                    Some("2026-10-01T00:00:00+02:00"),
                    Some("2026-10-01T00:00:00Z"),
                ],
            ),
            (
                "quantity",
                vec![Some("1.5"), Some("2"), Some("-1"), Some("abc"), Some("1")],
            ),
        ]);
        let out = validate_batch(Table::Usage, &input, 3, 10).unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        let rows: Vec<_> = out
            .rejects
            .iter()
            .map(|r| (r.row_index, r.column, r.code))
            .collect();
        assert_eq!(
            rows,
            [
                (1, Some("ts"), RejectCode::BadTimestamp),
                (2, Some("quantity"), RejectCode::NegativeQuantity),
                (3, Some("quantity"), RejectCode::BadDecimal),
                (4, Some("event_id"), RejectCode::MissingValue),
            ]
        );
        assert_eq!(out.rejects[1].raw, "e3,C1,P1,2026-10-01T00:00:00Z,-1");
        let row_numbers = out
            .batch
            .column_by_name(crate::templates::ROW_NUMBER_COLUMN)
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(row_numbers, [10]);
    }

    /// A usage batch of one column `quantity` given as `quantity` (the other columns
    /// valid), validated.
    fn usage_with_quantity(quantity: ArrayRef) -> ValidatedBatch {
        let n = quantity.len();
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("e{i}")),
        ));
        let schema = Schema::new(vec![
            Field::new("event_id", DataType::Utf8, true),
            Field::new("customer_id", DataType::Utf8, true),
            Field::new("product_id", DataType::Utf8, true),
            Field::new("ts", DataType::Utf8, true),
            Field::new("quantity", quantity.data_type().clone(), true),
        ]);
        let input = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                ids,
                text("C1"),
                text("P1"),
                text("2026-10-01T00:00:00Z"),
                quantity,
            ],
        )
        .unwrap();
        validate_batch(Table::Usage, &input, 0, 1).unwrap()
    }

    fn rejects_of(out: &ValidatedBatch) -> Vec<(usize, RejectCode, String)> {
        out.rejects
            .iter()
            .map(|r| (r.row_index, r.code, r.reason.clone()))
            .collect()
    }

    #[test]
    fn a_value_of_ten_to_the_sixteen_or_more_is_a_rejected_row_not_a_failed_run() {
        let out = usage_with_quantity(Arc::new(StringArray::from(vec![
            "9999999999999999.999999999999",
            "10000000000000000",
            "-10000000000000000",
            "90000000000000000000000000",
        ])));
        assert_eq!(out.batch.num_rows(), 1);
        let too_large = |v: &str| {
            format!(
                "`quantity` value `{v}` is too large: billrun takes values below 10^16 (10000000000000000)"
            )
        };
        assert_eq!(
            rejects_of(&out),
            [
                (1, RejectCode::OutOfRange, too_large("10000000000000000")),
                (2, RejectCode::OutOfRange, too_large("-10000000000000000")),
                (
                    3,
                    RejectCode::OutOfRange,
                    too_large("90000000000000000000000000")
                ),
            ]
        );
    }

    #[test]
    fn typed_values_beyond_the_engine_are_rejected_with_their_value_never_made_empty() {
        use arrow::array::{Decimal256Array, UInt64Array};
        use arrow::datatypes::i256;
        // Decimal256 beyond 38 digits, and within 38 digits but at or above 10^16.
        let wide = Decimal256Array::from(vec![
            i256::from_i128(125),
            i256::from_i128(10).wrapping_pow(45),
            i256::from_i128(10_i128.pow(17)),
        ])
        .with_precision_and_scale(76, 1)
        .unwrap();
        let out = usage_with_quantity(Arc::new(wide));
        assert_eq!(out.batch.num_rows(), 1);
        assert_eq!(
            rejects_of(&out)
                .iter()
                .map(|(row, code, _)| (*row, *code))
                .collect::<Vec<_>>(),
            [(1, RejectCode::OutOfRange), (2, RejectCode::OutOfRange)]
        );
        assert_eq!(
            rejects_of(&out)[1].2,
            "`quantity` value `10000000000000000` is too large: billrun takes values below 10^16 (10000000000000000)"
        );
        // UInt64 above i64::MAX: a cast to Int64 would have made it empty.
        let out = usage_with_quantity(Arc::new(UInt64Array::from(vec![7, u64::MAX])));
        assert_eq!(
            rejects_of(&out),
            [(
                1,
                RejectCode::OutOfRange,
                "`quantity` value `18446744073709551615` is too large: billrun takes values below 10^16 (10000000000000000)".to_string()
            )]
        );
    }

    #[test]
    fn a_whole_number_of_any_integer_type_is_checked_with_its_own_value() {
        use arrow::array::UInt64Array;
        let spec = Table::Customers
            .columns()
            .iter()
            .find(|c| c.name == "billing_day")
            .unwrap();
        let array: ArrayRef = Arc::new(UInt64Array::from(vec![5, u64::MAX]));
        let out = convert_column(Table::Customers, spec, &array).unwrap();
        let problems: Vec<_> = out
            .problems
            .iter()
            .map(|(r, p)| (*r, p.code, p.reason.clone()))
            .collect();
        assert_eq!(
            problems,
            [(
                1,
                RejectCode::OutOfRange,
                "`billing_day` must be from 1 to 28, got 18446744073709551615".to_string()
            )]
        );
    }

    #[test]
    fn scaled_values_are_shown_in_full_whatever_their_size() {
        assert_eq!(format_scaled(1_250_000_000_000), "1.25");
        assert_eq!(format_scaled(-7), "-0.000000000007");
        assert_eq!(format_scaled(10_i128.pow(37)), "10000000000000000000000000");
        assert_eq!(format_scaled(0), "0");
    }

    #[test]
    fn a_header_the_template_cannot_describe_fails_before_any_row() {
        let usage = ["event_id", "customer_id", "product_id", "ts", "quantity"];
        assert_eq!(check_header(Table::Usage, &usage), Ok(()));
        assert_eq!(
            check_header(Table::Usage, &["event_id", "customer_id", "ts", "quantity"])
                .unwrap_err()
                .to_string(),
            "required column `product_id` of table `usage` is missing"
        );
        assert_eq!(
            check_header(
                Table::Usage,
                &[
                    "event_id",
                    "customer_id",
                    "product_id",
                    "ts",
                    "quantity",
                    "quantity"
                ]
            )
            .unwrap_err()
            .to_string(),
            "the header names column `quantity` 2 times; each column of table `usage` must appear once"
        );
        assert_eq!(
            check_header(
                Table::Usage,
                &["event_id;customer_id;product_id;ts;quantity"]
            )
            .unwrap_err()
            .to_string(),
            "the header `event_id;customer_id;product_id;ts;quantity` is one column: fields of a CSV file of table `usage` are separated by commas, not `;`"
        );
        assert_eq!(
            check_header(Table::Usage, &["event_id\tcustomer_id"])
                .unwrap_err()
                .to_string(),
            "the header `event_id\tcustomer_id` is one column: fields of a CSV file of table `usage` are separated by commas, not tabs"
        );
    }

    #[test]
    fn missing_required_column_fails_the_file() {
        let input = csv_batch(&[("event_id", vec![Some("e1")])]);
        let err = validate_batch(Table::Usage, &input, 0, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required column `customer_id` of table `usage` is missing"
        );
    }

    #[test]
    fn float_money_column_fails_the_file() {
        let schema = Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("product_id", DataType::Utf8, false),
            Field::new("ts", DataType::Utf8, false),
            Field::new("quantity", DataType::Float64, false),
        ]);
        let input = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["e"])),
                Arc::new(StringArray::from(vec!["c"])),
                Arc::new(StringArray::from(vec!["p"])),
                Arc::new(StringArray::from(vec!["2026-10-01T00:00:00Z"])),
                Arc::new(Float64Array::from(vec![1.0])),
            ],
        )
        .unwrap();
        let err = validate_batch(Table::Usage, &input, 0, 1).unwrap_err();
        assert!(matches!(
            err,
            TemplateError::FloatColumn {
                column: "quantity",
                ..
            }
        ));
    }

    #[test]
    fn customer_rules() {
        let input = csv_batch(&[
            ("customer_id", vec![Some("C1"), Some("C2"), Some("C3")]),
            ("name", vec![Some("A"), Some("B"), Some("C")]),
            ("currency", vec![Some("USD"), Some("XYZ"), Some("JPY")]),
            ("billing_day", vec![Some("1"), Some("2"), Some("31")]),
        ]);
        let out = validate_batch(Table::Customers, &input, 0, 1).unwrap();
        assert_eq!(out.batch.num_rows(), 1);
        let codes: Vec<_> = out.rejects.iter().map(|r| (r.column, r.code)).collect();
        assert_eq!(
            codes,
            [
                (Some("currency"), RejectCode::UnknownCurrency),
                (Some("billing_day"), RejectCode::OutOfRange)
            ]
        );
    }

    #[test]
    fn typed_decimals_with_more_digits_are_not_rounded() {
        let values = Arc::new(
            Decimal128Array::from(vec![Some(1_230_000_000_000_000i128), Some(1)])
                .with_precision_and_scale(38, 15)
                .unwrap(),
        ) as ArrayRef;
        let out = typed_decimals(&values).unwrap();
        assert_eq!(
            out,
            [
                Some(Ok(1_230_000_000_000)),
                Some(Err(RejectCode::TooManyDecimals))
            ]
        );
    }
}
