//! Generates small datasets and reads them back as a bill run would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, RecordBatchReader,
    StringArray, TimestampMicrosecondArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::Date32Type;
use billrun_samples::{GenerateError, GenerateOptions, GenerateSummary, file_schema, generate};
use billrun_schemas::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const EVENTS: u64 = 50_000;
const ONE: i128 = 1_000_000_000_000;

fn options(out: &Path, seed: u64) -> GenerateOptions {
    GenerateOptions {
        customers: 200,
        events: EVENTS,
        seed,
        out: out.to_path_buf(),
        usage_files: 3,
        period: (2026, 10),
        event_id_prefix: String::new(),
    }
}

fn run(options: &GenerateOptions) -> GenerateSummary {
    let reported = AtomicU64::new(0);
    let summary = generate(options, &|n| {
        reported.fetch_add(n, Ordering::Relaxed);
    })
    .expect("generate");
    assert_eq!(
        reported.into_inner(),
        options.events,
        "progress adds up to the events"
    );
    summary
}

fn table_files(out: &Path, table: Table) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(out.join(table.name()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn read_file(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    concat_batches(&schema, &batches).unwrap()
}

fn read_table(out: &Path, table: Table) -> RecordBatch {
    let batches: Vec<RecordBatch> = table_files(out, table)
        .iter()
        .map(|f| read_file(f))
        .collect();
    concat_batches(&file_schema(table), &batches).unwrap()
}

fn text<'a>(batch: &'a RecordBatch, column: &str) -> &'a StringArray {
    batch.column_by_name(column).unwrap().as_string::<i32>()
}

fn decimal<'a>(batch: &'a RecordBatch, column: &str) -> &'a Decimal128Array {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<arrow::datatypes::Decimal128Type>()
}

fn date<'a>(batch: &'a RecordBatch, column: &str) -> &'a Date32Array {
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Date32Type>()
}

fn opt_date(array: &Date32Array, row: usize) -> Option<i32> {
    array.is_valid(row).then(|| array.value(row))
}

/// Days since the epoch of a date.
fn day(y: i32, m: u32, d: u32) -> i32 {
    let date = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32
}

#[test]
fn generates_a_complete_consistent_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let summary = run(&options(out, 7));

    // Every table, one file each, usage in three.
    for table in Table::ALL {
        let files = table_files(out, table);
        let expected = if table == Table::Usage { 3 } else { 1 };
        assert_eq!(files.len(), expected, "{table}");
        for file in files {
            assert_eq!(
                read_file(&file).schema(),
                file_schema(table),
                "{}",
                file.display()
            );
        }
    }
    assert_eq!(summary.files.len(), 6 + 3);
    assert_eq!(
        table_files(out, Table::Usage)
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet"
        ]
    );

    // Row counts match the summary.
    let customers = read_table(out, Table::Customers);
    let plans = read_table(out, Table::PricePlans);
    let subs = read_table(out, Table::Subscriptions);
    let usage = read_table(out, Table::Usage);
    assert_eq!(customers.num_rows(), 200);
    assert_eq!(summary.customers, 200);
    assert_eq!(plans.num_rows(), summary.plan_rows);
    assert_eq!(subs.num_rows(), summary.subscriptions);
    assert_eq!(
        read_table(out, Table::CreditMemos).num_rows(),
        summary.credit_memos
    );
    assert_eq!(read_table(out, Table::Products).num_rows(), 6);

    // `events` counts every usage row, imperfect ones included.
    assert_eq!(usage.num_rows() as u64, EVENTS);
    assert_eq!(summary.events_written, EVENTS);
    assert_eq!(summary.duplicates, 5);
    assert_eq!(summary.bad_rows, 3 + 1);
    assert_eq!(summary.unknown_customer_rows, 5);

    // Currencies: JPY and KWD customers exist, every customer's currency has plans.
    let currency = text(&customers, "currency");
    let customer_currencies: BTreeSet<&str> = currency.iter().flatten().collect();
    assert!(customer_currencies.contains("JPY") && customer_currencies.contains("KWD"));
    let plan_currencies: BTreeSet<&str> = text(&plans, "currency").iter().flatten().collect();
    assert!(customer_currencies.is_subset(&plan_currencies));

    // All five models; several plans change on the 16th of the period.
    let models: BTreeSet<&str> = text(&plans, "model").iter().flatten().collect();
    assert_eq!(
        models,
        BTreeSet::from(["flat", "graduated", "package", "per_unit", "volume"])
    );
    let mid = day(2026, 10, 16);
    let plan_id = text(&plans, "plan_id");
    let from = date(&plans, "effective_from");
    let to = date(&plans, "effective_to");
    let ending: BTreeSet<&str> = (0..plans.num_rows())
        .filter(|&i| opt_date(to, i) == Some(mid))
        .map(|i| plan_id.value(i))
        .collect();
    let starting: BTreeSet<&str> = (0..plans.num_rows())
        .filter(|&i| from.value(i) == mid)
        .map(|i| plan_id.value(i))
        .collect();
    assert!(
        ending.len() >= 3 && ending == starting,
        "{ending:?} / {starting:?}"
    );
    for price in decimal(&plans, "unit_price").iter().flatten() {
        assert_eq!(price % 1_000_000, 0, "at most 6 fractional digits");
    }

    // Subscriptions: plan currency = customer currency, no overlap per product.
    let plan_of: HashMap<&str, (&str, &str)> = (0..plans.num_rows())
        .map(|i| {
            (
                plan_id.value(i),
                (
                    text(&plans, "product_id").value(i),
                    text(&plans, "currency").value(i),
                ),
            )
        })
        .collect();
    let currency_of: HashMap<&str, &str> = text(&customers, "customer_id")
        .iter()
        .flatten()
        .zip(currency.iter().flatten())
        .collect();
    let (start, end) = (date(&subs, "start_date"), date(&subs, "end_date"));
    let mut spans: BTreeMap<(&str, &str), Vec<(i32, i32)>> = BTreeMap::new();
    for i in 0..subs.num_rows() {
        let customer = text(&subs, "customer_id").value(i);
        let (product, plan_currency) = plan_of[text(&subs, "plan_id").value(i)];
        assert_eq!(plan_currency, currency_of[customer]);
        let span = (start.value(i), opt_date(end, i).unwrap_or(i32::MAX));
        assert!(span.0 < span.1);
        spans.entry((customer, product)).or_default().push(span);
    }
    for (key, mut list) in spans {
        list.sort_unstable();
        for pair in list.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{key:?} overlaps: {list:?}");
        }
    }

    // Usage: duplicates repeat an earlier file's event, bad rows are what the summary says.
    let event_id = text(&usage, "event_id");
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut duplicates = 0;
    let mut conflicting = 0;
    let file_of_row = |row: usize| row * 3 / EVENTS as usize; // files of 16 667, 16 667, 16 666 rows
    for i in 0..usage.num_rows() {
        match first_seen.get(event_id.value(i)) {
            None => {
                first_seen.insert(event_id.value(i), i);
            }
            Some(&original) => {
                duplicates += 1;
                assert!(
                    file_of_row(original) < file_of_row(i),
                    "duplicate in a later file"
                );
                let q = decimal(&usage, "quantity");
                if q.value(original) != q.value(i) {
                    conflicting += 1;
                }
                for column in ["customer_id", "product_id"] {
                    assert_eq!(
                        text(&usage, column).value(original),
                        text(&usage, column).value(i)
                    );
                }
            }
        }
    }
    assert_eq!(duplicates, summary.duplicates);
    assert_eq!(conflicting, 2);
    let quantity = decimal(&usage, "quantity");
    let negative = quantity.iter().flatten().filter(|&q| q < 0).count() as u64;
    let nulls: usize = usage.columns().iter().map(|c| c.null_count()).sum();
    assert_eq!(negative + nulls as u64, summary.bad_rows);
    let customer_id = text(&usage, "customer_id");
    let unknown = customer_id.iter().filter(|c| *c == Some("C999999")).count() as u64;
    assert_eq!(unknown, summary.unknown_customer_rows);

    // Quantities have realistic precision; times fall in the customer's window or in
    // the month before it, exactly as often as the summary says.
    for (i, q) in quantity.iter().enumerate() {
        let Some(q) = q else { continue };
        let step = match text(&usage, "product_id").value(i) {
            "P-API" | "P-SMS" => ONE,
            "P-STORAGE" => ONE / 1_000,
            "P-COMPUTE" => ONE / 100,
            other => panic!("usage of {other}"),
        };
        assert_eq!(q % step, 0);
    }
    let billing_day: HashMap<&str, i64> = text(&customers, "customer_id")
        .iter()
        .flatten()
        .zip(
            customers
                .column_by_name("billing_day")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .iter()
                .copied(),
        )
        .collect();
    let ts = usage
        .column_by_name("ts")
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    let day_us = 86_400_000_000i64;
    let mut outside = 0;
    for i in 0..usage.num_rows() {
        if ts.is_null(i) || customer_id.is_null(i) {
            continue;
        }
        let d = billing_day.get(customer_id.value(i)).copied().unwrap_or(1) as u32;
        let (window_start, window_end) = (day(2026, 10, d), day(2026, 11, d));
        let t = ts.value(i);
        if t < i64::from(window_start) * day_us {
            assert!(
                t >= i64::from(day(2026, 9, d)) * day_us,
                "at most a month before"
            );
            outside += 1;
        } else {
            assert!(t < i64::from(window_end) * day_us);
        }
    }
    assert_eq!(outside, summary.outside_window_rows);
    assert!((500..=1_500).contains(&outside), "about 2 %: {outside}");

    // Volumes are skewed: the busiest 10 % of customers produce most events.
    let mut per_customer: HashMap<&str, u64> = HashMap::new();
    for c in customer_id.iter().flatten() {
        *per_customer.entry(c).or_default() += 1;
    }
    let mut counts: Vec<u64> = per_customer.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: u64 = counts[..20].iter().sum();
    assert!(top * 2 > EVENTS, "top 10 % produce {top} of {EVENTS}");
}

fn file_bytes(summary: &GenerateSummary, root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    summary
        .files
        .iter()
        .map(|f| {
            (
                f.strip_prefix(root).unwrap().to_path_buf(),
                fs::read(f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_whatever_the_threads_and_other_seeds_differ() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = run(&options(a.path(), 11));
    let single_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let second = single_thread.install(|| run(&options(b.path(), 11)));
    let other = run(&options(c.path(), 12));
    let first_bytes = file_bytes(&first, a.path());
    assert_eq!(first_bytes, file_bytes(&second, b.path()));
    let other_bytes = file_bytes(&other, c.path());
    for ((name, bytes), (other_name, other)) in first_bytes.iter().zip(&other_bytes) {
        assert_eq!(name, other_name);
        if name.starts_with("usage") || name.starts_with("customers") {
            assert_ne!(bytes, other, "{}", name.display());
        }
    }
}

#[test]
fn regenerating_replaces_earlier_output_and_refuses_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    run(&GenerateOptions {
        usage_files: 5,
        events: 1_000,
        ..options(out, 1)
    });
    run(&GenerateOptions {
        usage_files: 2,
        events: 1_000,
        ..options(out, 1)
    });
    assert_eq!(
        table_files(out, Table::Usage).len(),
        2,
        "stale parts are removed"
    );
    assert_eq!(read_table(out, Table::Usage).num_rows(), 1_000);

    fs::write(out.join("usage").join("extra.csv"), "event_id\n").unwrap();
    let err = generate(&options(out, 1), &|_| {}).unwrap_err();
    assert!(
        matches!(err, GenerateError::InvalidOption { option: "out", .. }),
        "{err}"
    );
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, option) in [
        (
            GenerateOptions {
                customers: 0,
                ..options(dir.path(), 1)
            },
            "customers",
        ),
        (
            GenerateOptions {
                customers: 99_999_999,
                ..options(dir.path(), 1)
            },
            "customers",
        ),
        (
            GenerateOptions {
                usage_files: 0,
                ..options(dir.path(), 1)
            },
            "usage_files",
        ),
        (
            GenerateOptions {
                period: (2026, 13),
                ..options(dir.path(), 1)
            },
            "period",
        ),
    ] {
        let err = generate(&bad, &|_| {}).unwrap_err();
        assert!(
            matches!(err, GenerateError::InvalidOption { option: o, .. } if o == option),
            "{err}"
        );
    }
}

#[test]
fn empty_usage_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(&GenerateOptions {
        events: 0,
        customers: 3,
        ..options(dir.path(), 1)
    });
    assert_eq!(summary.events_written, 0);
    assert_eq!(read_table(dir.path(), Table::Usage).num_rows(), 0);
}
