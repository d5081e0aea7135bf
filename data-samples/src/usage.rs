//! Usage rows: ordinary events, and the few imperfect rows real metering exports have.
//!
//! Ordinary rows of file `k` come from the file's own random stream, so files can be
//! generated in any order on any thread. The imperfect rows are planned up front
//! ([`SpecialRows::plan`]) at fixed positions: a duplicate in file `k` repeats a row of
//! an earlier file, and that original row is drawn from a stream of its own (a *pinned*
//! row) so that both files can produce it independently.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Decimal128Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use billrun_schemas::{DECIMAL_PRECISION, QUANTITY_SCALE, Table};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::catalog::{METERED, PRODUCTS};
use crate::rng::{self, Stream};
use crate::world::World;
use crate::{GenerateError, GenerateOptions, file_schema};

/// Rows per Arrow batch handed to the writer (and per progress report).
const BATCH_ROWS: usize = 64 * 1024;
/// Percent of ordinary events that fall in the month before the billing window.
const BEFORE_WINDOW_PERCENT: u32 = 2;

/// Rates of imperfect rows, per 100 000 usage rows.
const DUPLICATES_PER_100K: u64 = 10;
const UNKNOWN_CUSTOMER_PER_100K: u64 = 10;
const NEGATIVE_PER_100K: u64 = 5;
const MISSING_VALUE_PER_100K: u64 = 1;

/// A required usage column a bad row leaves empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    CustomerId,
    ProductId,
    Ts,
    Quantity,
}

/// A planned row that is not an ordinary event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// An ordinary, in-window event that a later file repeats: drawn from its own stream.
    Pinned,
    /// Repeats `event_id` of row `row` of file `file` (an earlier file): identical (a
    /// retry), or with another quantity (a conflict).
    Duplicate {
        file: u64,
        row: u64,
        conflicting: bool,
    },
    /// An in-window event of the unknown customer (`C999999` up to 999 998 customers).
    UnknownCustomer,
    /// An in-window event with its quantity negated.
    NegativeQuantity,
    /// An in-window event with one required cell left empty.
    Missing(Column),
}

/// Where the imperfect rows go: positions per file, sorted by row.
#[derive(Debug)]
pub(crate) struct SpecialRows {
    rows: Vec<u64>,
    per_file: Vec<Vec<(u64, Special)>>,
}

/// `events × rate / 100 000`, rounded half up.
fn per_100k(events: u64, rate: u64) -> u64 {
    let n = (u128::from(events) * u128::from(rate) + 50_000) / 100_000;
    u64::try_from(n).expect("below events")
}

/// A position in `range` no special row holds yet. The callers keep the number of
/// taken rows below half the range, so this ends quickly.
fn free_row(rng: &mut ChaCha8Rng, taken: &BTreeMap<u64, Special>, range: Range<u64>) -> u64 {
    loop {
        let row = rng.random_range(range.clone());
        if !taken.contains_key(&row) {
            return row;
        }
    }
}

impl SpecialRows {
    /// Plans the imperfect rows of `options`: their number follows the rates above
    /// (rounded; none in tiny datasets), duplicates need at least two files.
    pub(crate) fn plan(options: &GenerateOptions) -> Self {
        let files = options.usage_files as u64;
        let events = options.events;
        let rows: Vec<u64> = (0..files)
            .map(|k| events / files + u64::from(k < events % files))
            .collect();
        let starts: Vec<u64> = rows
            .iter()
            .scan(0, |next, &n| {
                let start = *next;
                *next += n;
                Some(start)
            })
            .collect();
        let file_of = |global: u64| starts.partition_point(|&s| s <= global) - 1;
        let mut rng = rng::stream(options.seed, Stream::SpecialRows);
        let mut taken = BTreeMap::new();

        // Duplicates first. Sources are taken from the rows before the duplicate's file,
        // which always include all of file 0 (the largest): capping duplicates at a
        // third of it keeps a free source available for every one of them.
        let later = rows[0]..events;
        let duplicates = if later.is_empty() {
            0
        } else {
            per_100k(events, DUPLICATES_PER_100K).min(rows[0] / 3)
        };
        for i in 0..duplicates {
            let at = free_row(&mut rng, &taken, later.clone());
            let source = free_row(&mut rng, &taken, 0..starts[file_of(at)]);
            let source_file = file_of(source);
            taken.insert(source, Special::Pinned);
            taken.insert(
                at,
                Special::Duplicate {
                    file: source_file as u64,
                    row: source - starts[source_file],
                    conflicting: i % 2 == 1,
                },
            );
        }
        let columns = [
            Column::CustomerId,
            Column::ProductId,
            Column::Ts,
            Column::Quantity,
        ];
        let mut others: Vec<Special> = Vec::new();
        others.extend(
            (0..per_100k(events, UNKNOWN_CUSTOMER_PER_100K)).map(|_| Special::UnknownCustomer),
        );
        others.extend((0..per_100k(events, NEGATIVE_PER_100K)).map(|_| Special::NegativeQuantity));
        others.extend(
            (0..per_100k(events, MISSING_VALUE_PER_100K) as usize)
                .map(|i| Special::Missing(columns[i % columns.len()])),
        );
        let room = (events - taken.len() as u64) / 2;
        for special in others
            .into_iter()
            .take(usize::try_from(room).unwrap_or(usize::MAX))
        {
            let at = free_row(&mut rng, &taken, 0..events);
            taken.insert(at, special);
        }

        let mut per_file = vec![Vec::new(); rows.len()];
        for (global, special) in taken {
            let file = file_of(global);
            per_file[file].push((global - starts[file], special));
        }
        Self { rows, per_file }
    }
}

/// What one usage file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FileStats {
    pub rows: u64,
    pub duplicates: u64,
    pub bad_rows: u64,
    pub unknown_customer_rows: u64,
    pub outside_window_rows: u64,
}

impl FileStats {
    pub(crate) fn add(&mut self, other: &FileStats) {
        self.rows += other.rows;
        self.duplicates += other.duplicates;
        self.bad_rows += other.bad_rows;
        self.unknown_customer_rows += other.unknown_customer_rows;
        self.outside_window_rows += other.outside_window_rows;
    }
}

/// One usage event before it becomes a row.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// Index of the customer; `None` for the unknown customer.
    customer: Option<usize>,
    product: usize,
    ts_us: i64,
    /// Mantissa of a `Decimal128(38, 12)`.
    quantity: i128,
}

/// Everything a usage file is generated from.
#[derive(Debug)]
pub(crate) struct UsageContext<'a> {
    pub world: &'a World,
    pub specials: &'a SpecialRows,
    pub seed: u64,
}

impl UsageContext<'_> {
    /// Generates usage file `file`, handing it to `emit` in batches of the usage file
    /// schema.
    ///
    /// # Errors
    /// Whatever `emit` returns; Arrow errors (a bug) when a batch cannot be assembled.
    pub(crate) fn generate_file(
        &self,
        file: usize,
        mut emit: impl FnMut(RecordBatch) -> Result<(), GenerateError>,
    ) -> Result<FileStats, GenerateError> {
        let rows = self.specials.rows[file];
        let mut specials = self.specials.per_file[file].iter().copied().peekable();
        let mut rng = rng::stream(self.seed, Stream::UsageFile(file as u64));
        let schema = file_schema(Table::Usage);
        let file = file as u64;
        let mut stats = FileStats::default();
        let mut first = 0;
        while first < rows {
            let n = (rows - first).min(BATCH_ROWS as u64);
            let mut batch = UsageBatch::with_capacity(n as usize)?;
            for row in first..first + n {
                let special = specials.next_if(|&(at, _)| at == row).map(|(_, s)| s);
                match special {
                    None => {
                        let (event, before) = self.draw(&mut rng, true);
                        stats.outside_window_rows += u64::from(before);
                        batch.push(self.world, (file, row), &event, None);
                    }
                    Some(Special::Pinned) => {
                        batch.push(self.world, (file, row), &self.pinned(file, row), None);
                    }
                    Some(Special::Duplicate {
                        file: source_file,
                        row: source_row,
                        conflicting,
                    }) => {
                        let mut event = self.pinned(source_file, source_row);
                        if conflicting {
                            event.quantity *= 2;
                        }
                        batch.push(self.world, (source_file, source_row), &event, None);
                        stats.duplicates += 1;
                    }
                    Some(Special::UnknownCustomer) => {
                        let product = METERED[rng.random_range(0..METERED.len())];
                        let (start, span) = self.world.period.window(1).micros();
                        let event = Event {
                            customer: None,
                            product,
                            ts_us: random_ms(&mut rng, start, span),
                            quantity: metered_quantity(product, &mut rng),
                        };
                        batch.push(self.world, (file, row), &event, None);
                        stats.unknown_customer_rows += 1;
                    }
                    Some(Special::NegativeQuantity) => {
                        let (mut event, _) = self.draw(&mut rng, false);
                        event.quantity = -event.quantity;
                        batch.push(self.world, (file, row), &event, None);
                        stats.bad_rows += 1;
                    }
                    Some(Special::Missing(column)) => {
                        let (event, _) = self.draw(&mut rng, false);
                        batch.push(self.world, (file, row), &event, Some(column));
                        stats.bad_rows += 1;
                    }
                }
            }
            emit(batch.finish(&schema)?)?;
            stats.rows += n;
            first += n;
        }
        Ok(stats)
    }

    /// An ordinary event: a customer by volume, one of its active metered products, a
    /// time inside its window (or, when `may_fall_before`, 2 % of the time in the month
    /// before it). Returns whether it fell before the window.
    fn draw(&self, rng: &mut ChaCha8Rng, may_fall_before: bool) -> (Event, bool) {
        let customer = self.world.draw_customer(rng);
        let targets = self.world.targets(customer);
        let target = match targets {
            [only] => only,
            _ => &targets[rng.random_range(0..targets.len())],
        };
        let before = may_fall_before && rng.random_range(0..100) < BEFORE_WINDOW_PERCENT;
        let (start, span) = if before {
            self.world.before_window(customer)
        } else {
            (target.start_us, target.span_us)
        };
        let event = Event {
            customer: Some(customer),
            product: target.product,
            ts_us: random_ms(rng, start, span),
            quantity: metered_quantity(target.product, rng),
        };
        (event, before)
    }

    /// The in-window event at row `row` of file `file` that a later file repeats.
    fn pinned(&self, file: u64, row: u64) -> Event {
        let mut rng = rng::stream(self.seed, Stream::PinnedEvent(file, row));
        self.draw(&mut rng, false).0
    }
}

/// A whole-millisecond time in `[start, start + span)` µs.
fn random_ms(rng: &mut ChaCha8Rng, start: i64, span: u64) -> i64 {
    let ms = rng.random_range(0..span / 1_000);
    start + i64::try_from(ms * 1_000).expect("a window is a month long")
}

fn metered_quantity(product: usize, rng: &mut ChaCha8Rng) -> i128 {
    PRODUCTS[product]
        .metered
        .expect("usage is drawn for metered products")
        .draw(rng)
}

/// Appends `value` in decimal, left-padded with zeros to `width` digits.
fn push_padded(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for _ in digits.len() - start..width {
        out.push('0');
    }
    out.extend(digits[start..].iter().map(|&d| char::from(d)));
}

/// The columns of one usage batch under construction.
struct UsageBatch {
    event_id: StringBuilder,
    customer_id: StringBuilder,
    product_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    quantity: Decimal128Builder,
    id: String,
}

impl UsageBatch {
    fn with_capacity(rows: usize) -> Result<Self, GenerateError> {
        Ok(Self {
            event_id: StringBuilder::with_capacity(rows, rows * 16),
            customer_id: StringBuilder::with_capacity(rows, rows * 7),
            product_id: StringBuilder::with_capacity(rows, rows * 9),
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            quantity: Decimal128Builder::with_capacity(rows)
                .with_precision_and_scale(DECIMAL_PRECISION, QUANTITY_SCALE)
                .map_err(|source| GenerateError::Arrow {
                    table: "usage",
                    source,
                })?,
            id: String::with_capacity(32),
        })
    }

    /// Appends `event` as the row with event id `<prefix>E<file>-<row + 1>` (five and nine
    /// digits), leaving `missing` empty.
    fn push(
        &mut self,
        world: &World,
        (file, row): (u64, u64),
        event: &Event,
        missing: Option<Column>,
    ) {
        self.id.clear();
        self.id.push_str(&world.event_id_prefix);
        self.id.push('E');
        push_padded(&mut self.id, file, 5);
        self.id.push('-');
        push_padded(&mut self.id, row + 1, 9);
        self.event_id.append_value(&self.id);
        if missing == Some(Column::CustomerId) {
            self.customer_id.append_null();
        } else {
            self.customer_id.append_value(
                event.customer.map_or(world.unknown_customer.as_str(), |c| {
                    world.customers[c].id.as_str()
                }),
            );
        }
        if missing == Some(Column::ProductId) {
            self.product_id.append_null();
        } else {
            self.product_id.append_value(PRODUCTS[event.product].id);
        }
        if missing == Some(Column::Ts) {
            self.ts.append_null();
        } else {
            self.ts.append_value(event.ts_us);
        }
        if missing == Some(Column::Quantity) {
            self.quantity.append_null();
        } else {
            self.quantity.append_value(event.quantity);
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch, GenerateError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.quantity.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(|source| GenerateError::Arrow {
            table: "usage",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(events: u64, usage_files: usize) -> GenerateOptions {
        GenerateOptions {
            customers: 50,
            events,
            usage_files,
            ..GenerateOptions::default()
        }
    }

    #[test]
    fn pads_numbers() {
        let mut s = String::new();
        push_padded(&mut s, 42, 5);
        s.push('|');
        push_padded(&mut s, 0, 1);
        s.push('|');
        push_padded(&mut s, 1_234_567, 3);
        assert_eq!(s, "00042|0|1234567");
    }

    #[test]
    fn rows_are_split_evenly_and_specials_planned_by_rate() {
        let plan = SpecialRows::plan(&options(1_000_003, 4));
        assert_eq!(plan.rows, [250_001, 250_001, 250_001, 250_000]);
        let all: Vec<Special> = plan.per_file.iter().flatten().map(|&(_, s)| s).collect();
        let count = |f: fn(&Special) -> bool| all.iter().filter(|s| f(s)).count();
        assert_eq!(count(|s| matches!(s, Special::Duplicate { .. })), 100);
        assert_eq!(count(|s| matches!(s, Special::Pinned)), 100);
        assert_eq!(count(|s| matches!(s, Special::UnknownCustomer)), 100);
        assert_eq!(count(|s| matches!(s, Special::NegativeQuantity)), 50);
        assert_eq!(count(|s| matches!(s, Special::Missing(_))), 10);
        for (file, specials) in plan.per_file.iter().enumerate() {
            assert!(
                specials.windows(2).all(|w| w[0].0 < w[1].0),
                "sorted, distinct"
            );
            for &(_, s) in specials {
                if let Special::Duplicate {
                    file: source, row, ..
                } = s
                {
                    assert!((source as usize) < file);
                    assert!(plan.per_file[source as usize].contains(&(row, Special::Pinned)));
                }
            }
        }
        assert!(
            plan.per_file[0]
                .iter()
                .all(|(_, s)| !matches!(s, Special::Duplicate { .. }))
        );
    }

    #[test]
    fn tiny_datasets_have_no_duplicates_without_a_later_file() {
        let plan = SpecialRows::plan(&options(200_000, 1));
        assert!(
            plan.per_file[0]
                .iter()
                .all(|(_, s)| !matches!(s, Special::Duplicate { .. } | Special::Pinned))
        );
        let plan = SpecialRows::plan(&options(10, 3));
        assert!(plan.per_file.iter().all(Vec::is_empty));
        let plan = SpecialRows::plan(&options(0, 3));
        assert_eq!(plan.rows, [0, 0, 0]);
    }
}
