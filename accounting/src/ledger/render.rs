//! The journal as a table, as CSV and as a plain-text journal for hledger and ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, RecordBatch, StringArray};
use billrun_engine::{checked, days_since_epoch, decimal_to_i128_scaled};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE};
use rust_decimal::Decimal;

use super::chart::type_by_name;
use super::{AccountTypes, GlAccountType, JournalEntry, Posting};
use crate::error::{AccountingError, Result, minor_units_of};

/// The `journal` table: one row per posting.
///
/// # Errors
/// Amounts that do not fit Decimal128(38, 4).
pub fn journal_batch(entries: &[JournalEntry]) -> Result<RecordBatch> {
    let rows: Vec<(&JournalEntry, &Posting)> = entries
        .iter()
        .flat_map(|e| e.postings.iter().map(move |p| (e, p)))
        .collect();
    let money = |f: &dyn Fn(&Posting) -> Decimal| -> Result<ArrayRef> {
        let values = rows
            .iter()
            .map(|(_, p)| decimal_to_i128_scaled(f(p), MONEY_SCALE as u32).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(DECIMAL_PRECISION, MONEY_SCALE)?,
        ))
    };
    Ok(RecordBatch::try_new(
        OutputTable::Journal.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.entry_id),
            )),
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|(e, _)| days_since_epoch(e.date)),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, p)| &p.account),
            )),
            money(&|p| p.debit)?,
            money(&|p| p.credit)?,
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.currency),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.source_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(e, _)| &e.memo),
            )),
        ],
    )?)
}

/// The journal table as CSV: a header row, then one row per posting, in the columns and
/// order of the Parquet `journal` table. Money is the Decimal128 text (`720.0000`), never
/// a float, so a spreadsheet or ERP import reads exactly what the Parquet table holds.
///
/// # Errors
/// Amounts that do not fit Decimal128(38, 4).
pub fn journal_csv(entries: &[JournalEntry]) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    write_journal_csv(&mut buffer, entries)?;
    Ok(buffer)
}

/// [`journal_csv`], written into `out`.
///
/// The bytes are those of Arrow's CSV writer over [`journal_batch`] (its quoting, its
/// Decimal128 and date text; a test holds them equal), rendered straight from the
/// entries: at a million customers Arrow's per-value formatters were most of the
/// rendering, and the table it reads need not be held whole beside the entries.
///
/// # Errors
/// As [`journal_csv`], and those of `out`.
pub fn write_journal_csv(out: &mut impl std::io::Write, entries: &[JournalEntry]) -> Result<()> {
    let io = |e: std::io::Error| AccountingError::Internal(format!("writing journal.csv: {e}"));
    let schema = OutputTable::Journal.schema();
    let mut header = csv_writer(Vec::new());
    header
        .write_record(schema.fields().iter().map(|f| f.name().as_bytes()))
        .and_then(|()| header.flush().map_err(csv::Error::from))
        .map_err(|e| AccountingError::Internal(format!("rendering journal.csv: {e}")))?;
    out.write_all(header.get_ref()).map_err(io)?;
    render_in_parallel(
        entries,
        |chunk| {
            let mut rows = csv_writer(Vec::with_capacity(chunk.len() * 256));
            let mut debit = String::new();
            let mut credit = String::new();
            let mut date = String::new();
            for entry in chunk {
                date.clear();
                let _ = write!(date, "{}", entry.date);
                for posting in &entry.postings {
                    money_text(&mut debit, posting.debit)?;
                    money_text(&mut credit, posting.credit)?;
                    rows.write_record([
                        entry.entry_id.as_str(),
                        &date,
                        &posting.account,
                        &debit,
                        &credit,
                        &entry.currency,
                        &entry.source_id,
                        &entry.memo,
                    ])
                    .map_err(|e| {
                        AccountingError::Internal(format!("rendering journal.csv: {e}"))
                    })?;
                }
            }
            rows.into_inner()
                .map_err(|e| AccountingError::Internal(format!("rendering journal.csv: {e}")))
        },
        |part| out.write_all(&part).map_err(io),
    )
}

/// A CSV writer configured as Arrow's CSV writer configures its own by default.
fn csv_writer<W: std::io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .delimiter(b',')
        .quote(b'"')
        .quote_style(csv::QuoteStyle::Necessary)
        .double_quote(true)
        .escape(b'\\')
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// `amount` as the text of its Decimal128(38, 4) value: `720.0000`, `0.5000`, `-3.1200`.
fn money_text(out: &mut String, amount: Decimal) -> Result<()> {
    let scale = MONEY_SCALE as usize;
    let scaled = decimal_to_i128_scaled(amount, MONEY_SCALE as u32)?;
    out.clear();
    if scaled < 0 {
        out.push('-');
    }
    let digits = scaled.unsigned_abs().to_string();
    if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    }
    Ok(())
}

/// Rows or entries rendered by one task of a parallel rendering.
const RENDER_CHUNK: usize = 4096;

/// Chunks rendered before they are written: what a rendering holds at once.
const CHUNKS_AT_ONCE: usize = 16;

/// Renders `items` a chunk at a time, chunks in parallel, into `out` in their order: the
/// text of rendering them one after another, on every core, holding at most
/// [`CHUNKS_AT_ONCE`] chunks. The first error in item order is the one returned.
fn write_chunks_in_parallel<T: Sync>(
    out: &mut impl std::fmt::Write,
    items: &[T],
    render: impl Fn(&mut String, &[T]) -> Result<()> + Sync,
) -> Result<()> {
    render_in_parallel(
        items,
        |chunk| {
            let mut text = String::with_capacity(chunk.len() * 256);
            render(&mut text, chunk)?;
            Ok(text)
        },
        |text| {
            let _ = out.write_str(&text);
            Ok(())
        },
    )
}

/// `render`s `items` a chunk of [`RENDER_CHUNK`] at a time, [`CHUNKS_AT_ONCE`] chunks in
/// parallel, and hands each rendering to `emit` in item order.
fn render_in_parallel<T: Sync, R: Send>(
    items: &[T],
    render: impl Fn(&[T]) -> Result<R> + Sync,
    emit: impl FnMut(R) -> Result<()>,
) -> Result<()> {
    crate::in_order::map_chunks_in_order(items, RENDER_CHUNK, CHUNKS_AT_ONCE, render, emit)
}

/// Each currency's minor digits, looked up once per rendering instead of per entry.
struct MinorDigits<'e>(Vec<(&'e str, usize)>);

impl MinorDigits<'_> {
    fn of(&self, entry: &JournalEntry) -> Result<usize> {
        match self.0.iter().find(|(c, _)| *c == entry.currency) {
            Some(&(_, minor)) => Ok(minor),
            None => minor_of(entry),
        }
    }
}

/// The entries as a plain-text double-entry journal that hledger (`check --strict`) and
/// ledger (`--pedantic`) both accept: `commodity` directives give each currency's minor
/// digits (as a `format` subdirective, the one form both read), and every account is
/// declared with its type (`type:A|L|E|R|X`) as a tag on the line below, so
/// `balancesheet` and `incomestatement` leave no account out.
///
/// # Errors
/// [`AccountingError::UnknownCurrency`] for an entry in a currency without a minor unit;
/// [`AccountingError::Internal`] for an account of no known type (a bug: every account
/// billrun posts to is typed by the chart, its role or its name).
pub fn hledger_journal(
    entries: &[JournalEntry],
    header: &str,
    types: &AccountTypes<'_>,
) -> Result<String> {
    let mut out = String::new();
    write_hledger_journal(&mut out, entries, header, types)?;
    Ok(out)
}

/// [`hledger_journal`], written into `out` as it is rendered (never held whole). Errors
/// of `out` itself are the writer's to keep and report.
///
/// # Errors
/// As [`hledger_journal`].
pub fn write_hledger_journal(
    out: &mut impl std::fmt::Write,
    entries: &[JournalEntry],
    header: &str,
    types: &AccountTypes<'_>,
) -> Result<()> {
    let _ = out.write_str(&comment_lines(header));
    let _ = out.write_char('\n');
    for (currency, minor) in commodities(entries)? {
        let _ = writeln!(out, "commodity {currency}");
        // ledger reads no format without decimals as hledger wants it (`1000. JPY`),
        // and hledger none without a decimal mark: a currency without minor digits is
        // declared bare and both take its style from the amounts.
        if minor > 0 {
            let sample = format_amount(Decimal::from(1000), minor);
            let _ = writeln!(out, "    format {sample} {currency}");
        }
    }
    let _ = out.write_char('\n');
    for account in accounts(entries) {
        let kind = typed(types, account)?;
        let _ = writeln!(out, "account {account}");
        match types.gl(account) {
            Some((code, gl)) => {
                let name = gl.name.replace([',', ';'], " ");
                let _ = writeln!(
                    out,
                    "    ; type:{}, gl:{code}, gl_name:{name}",
                    kind.hledger_code()
                );
            }
            None => {
                let _ = writeln!(out, "    ; type:{}", kind.hledger_code());
            }
        }
    }
    let digits = MinorDigits(commodities(entries)?);
    write_chunks_in_parallel(out, entries, |out, chunk| {
        for entry in chunk {
            let minor = digits.of(entry)?;
            let _ = writeln!(
                out,
                "\n{} * ({}) {}",
                entry.date, entry.entry_id, entry.memo
            );
            for p in &entry.postings {
                let amount = checked::sub(p.debit, p.credit, "posting amount")?;
                let _ = writeln!(
                    out,
                    "    {:<40}  {amount:.minor$} {}",
                    p.account, entry.currency
                );
            }
        }
        Ok(())
    })
}

/// The entries as a beancount ledger that `bean-check` accepts: every account opened
/// (on the first entry's date) under the root of its type (`Assets`, `Liabilities`,
/// `Equity`, `Income`, `Expenses`), with billrun's own name and the GL account as
/// metadata; every commodity declared; each entry a transaction with its entry_id,
/// source_id and customer as metadata. billrun's names become beancount's by
/// capitalising each word and joining words with `-` (`assets:unbilled receivable` is
/// `Assets:Unbilled-Receivable`, `revenue:4100` is `Income:4100`).
///
/// # Errors
/// As [`hledger_journal`].
pub fn beancount_journal(
    entries: &[JournalEntry],
    header: &str,
    types: &AccountTypes<'_>,
) -> Result<String> {
    let mut out = String::new();
    write_beancount_journal(&mut out, entries, header, types)?;
    Ok(out)
}

/// [`beancount_journal`], written into `out` as it is rendered (a file of a million
/// customers' entries is hundreds of megabytes: never held whole). Errors of `out`
/// itself are the writer's to keep and report.
///
/// # Errors
/// As [`hledger_journal`].
pub fn write_beancount_journal(
    out: &mut impl std::fmt::Write,
    entries: &[JournalEntry],
    header: &str,
    types: &AccountTypes<'_>,
) -> Result<()> {
    let _ = out.write_str(&comment_lines(header));
    let Some(opened) = entries.iter().map(|e| e.date).min() else {
        return Ok(());
    };
    let _ = out.write_char('\n');
    for (currency, minor) in commodities(entries)? {
        let _ = writeln!(out, "{opened} commodity {currency}");
        let _ = writeln!(out, "  minor_units: {minor}");
    }
    let _ = out.write_char('\n');
    let names = beancount_names(entries, types)?;
    for (account, name) in &names {
        let _ = writeln!(out, "{opened} open {name}");
        let _ = writeln!(out, "  billrun_account: {}", quoted(account));
        if let Some((code, gl)) = types.gl(account) {
            let _ = writeln!(out, "  gl_account: {}", quoted(code));
            let _ = writeln!(out, "  gl_name: {}", quoted(&gl.name));
        }
    }
    let digits = MinorDigits(commodities(entries)?);
    write_chunks_in_parallel(out, entries, |out, chunk| {
        for entry in chunk {
            let minor = digits.of(entry)?;
            let _ = write!(out, "\n{} * ", entry.date);
            write_quoted(out, &entry.memo);
            out.push_str("\n  entry_id: ");
            write_quoted(out, &entry.entry_id);
            out.push_str("\n  source_id: ");
            write_quoted(out, &entry.source_id);
            out.push('\n');
            if let Some(customer) = &entry.customer_id {
                out.push_str("  customer_id: ");
                write_quoted(out, customer);
                out.push('\n');
            }
            for p in &entry.postings {
                let amount = checked::sub(p.debit, p.credit, "posting amount")?;
                let _ = writeln!(
                    out,
                    "  {:<44}  {amount:.minor$} {}",
                    names[p.account.as_str()],
                    entry.currency
                );
            }
        }
        Ok(())
    })
}

/// `header`, each line a `;` comment (hledger, ledger and beancount alike).
fn comment_lines(header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "; {line}");
    }
    out
}

/// Each account's beancount name; two billrun accounts that would get one name (they
/// differ only in case or punctuation) are told apart by a suffix `-2`, `-3`, ….
fn beancount_names<'e>(
    entries: &'e [JournalEntry],
    types: &AccountTypes<'_>,
) -> Result<BTreeMap<&'e str, String>> {
    let mut names = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for account in accounts(entries) {
        let kind = typed(types, account)?;
        let base = beancount_name(account, kind);
        let mut name = base.clone();
        let mut n = 1;
        while !taken.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
        names.insert(account, name);
    }
    Ok(names)
}

/// A billrun account as a beancount account of type `kind`: the root of the type, then
/// each component of the name (the top one dropped when it names the type) with its
/// words capitalised and joined by `-`, and anything but ASCII letters and digits taken
/// as a word break.
pub fn beancount_name(account: &str, kind: GlAccountType) -> String {
    let root = match kind {
        GlAccountType::Asset => "Assets",
        GlAccountType::Liability => "Liabilities",
        GlAccountType::Equity => "Equity",
        GlAccountType::Revenue => "Income",
        GlAccountType::Expense => "Expenses",
    };
    let mut components: Vec<&str> = account.split(':').collect();
    if components.len() > 1 && type_by_name(components[0]) == Some(kind) {
        components.remove(0);
    }
    let mut name = root.to_string();
    for component in components {
        let words: Vec<String> = component
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        name.push(':');
        if words.is_empty() {
            // A component of punctuation only: still a valid, distinct component.
            name.push('X');
        } else {
            name.push_str(&words.join("-"));
        }
    }
    name
}

/// A beancount string: in double quotes, `"` and `\\` escaped, line breaks as spaces.
fn quoted(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    write_quoted(&mut q, text);
    q
}

/// [`quoted`], appended to `out`.
fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    // Most strings need no escape: copied whole.
    if !text.contains(['"', '\\', '\n', '\r']) {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' | '\r' => out.push(' '),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// The currencies of the entries with their minor digits, sorted.
fn commodities(entries: &[JournalEntry]) -> Result<Vec<(&str, usize)>> {
    // Millions of entries in a few currencies: each compared with the last one seen
    // before the set is searched.
    let mut currencies: BTreeSet<&str> = BTreeSet::new();
    let mut last = "";
    for e in entries {
        if e.currency != last {
            last = e.currency.as_str();
            currencies.insert(last);
        }
    }
    currencies
        .into_iter()
        .map(|c| {
            let minor = minor_units_of(c, || "the journal's commodities".to_string())?;
            Ok((c, minor as usize))
        })
        .collect()
}

/// Every account the entries post to, sorted.
fn accounts(entries: &[JournalEntry]) -> BTreeSet<&str> {
    // A journal has millions of postings to a few dozen accounts: each posting is
    // compared with the last account seen before the set is searched.
    let mut set = BTreeSet::new();
    let mut last = "";
    for p in entries.iter().flat_map(|e| e.postings.iter()) {
        if p.account != last {
            last = p.account.as_str();
            set.insert(last);
        }
    }
    set
}

fn typed(types: &AccountTypes<'_>, account: &str) -> Result<GlAccountType> {
    types.of(account).ok_or_else(|| {
        AccountingError::Internal(format!(
            "journal account `{account}` has no type: it is not in gl_accounts, billrun \
             posts to it in no known role, and its top-level name is not assets, \
             liabilities, equity, revenue or expenses"
        ))
    })
}

fn minor_of(entry: &JournalEntry) -> Result<usize> {
    Ok(minor_units_of(&entry.currency, || {
        format!("journal entry {}", entry.entry_id)
    })? as usize)
}

pub(crate) fn format_amount(amount: Decimal, minor: usize) -> String {
    format!("{amount:.minor$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn billrun_accounts_become_valid_beancount_names() {
        let cases = [
            (
                "assets:unbilled receivable",
                GlAccountType::Asset,
                "Assets:Unbilled-Receivable",
            ),
            ("revenue:4100", GlAccountType::Revenue, "Income:4100"),
            ("income:usage", GlAccountType::Revenue, "Income:Usage"),
            (
                "sales:eu west",
                GlAccountType::Revenue,
                "Income:Sales:Eu-West",
            ),
            (
                "liabilities:deferred revenue:2410",
                GlAccountType::Liability,
                "Liabilities:Deferred-Revenue:2410",
            ),
            (
                "equity:opening balances",
                GlAccountType::Equity,
                "Equity:Opening-Balances",
            ),
            ("revenue:--", GlAccountType::Revenue, "Income:X"),
        ];
        for (account, kind, expected) in cases {
            assert_eq!(beancount_name(account, kind), expected, "{account}");
        }
    }

    #[test]
    fn beancount_strings_escape_quotes_and_backslashes() {
        assert_eq!(quoted(r#"a "b" \ c"#), r#""a \"b\" \\ c""#);
        assert_eq!(quoted("two\nlines"), "\"two lines\"");
    }

    /// Arrow's CSV writer over the journal table: what `journal.csv` was before it was
    /// rendered from the entries, and the bytes it must still be.
    fn arrow_csv(entries: &[JournalEntry]) -> Vec<u8> {
        let batch = journal_batch(entries).expect("journal batch");
        let mut out = Vec::new();
        arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out)
            .write(&batch)
            .expect("arrow csv");
        out
    }

    fn entry(id: &str, memo: &str, postings: Vec<(&str, Decimal, Decimal)>) -> JournalEntry {
        JournalEntry {
            entry_id: id.to_string(),
            date: NaiveDate::from_ymd_opt(2026, 10, 31).expect("date"),
            currency: "USD".to_string(),
            source_id: format!("inv-{id}"),
            memo: memo.to_string(),
            customer_id: None,
            postings: postings
                .into_iter()
                .map(|(account, debit, credit)| Posting {
                    account: account.to_string(),
                    debit,
                    credit,
                })
                .collect(),
        }
    }

    #[test]
    fn journal_csv_quotes_and_formats_as_arrow_does() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        let entries = vec![
            entry(
                "je-1",
                "invoice, October \"usage\"",
                vec![
                    ("assets:receivable", d("720"), d("0")),
                    ("revenue:usage", d("0"), d("720.00")),
                ],
            ),
            entry(
                "je-2",
                "two\nlines and a\rreturn",
                vec![
                    ("assets:cash", d("0.5"), d("-3.12")),
                    ("x", d("0.0001"), d("1234567.891")),
                ],
            ),
            entry(
                "je-3",
                "",
                vec![("", d("-0.0001"), d("99999999999999.9999"))],
            ),
            entry("", "ünïcødé; tab\there", vec![("a b", d("1e-4"), d("10"))]),
        ];
        let expected = "entry_id,date,account,debit,credit,currency,source_id,memo\n\
            je-1,2026-10-31,assets:receivable,720.0000,0.0000,USD,inv-je-1,\"invoice, October \"\"usage\"\"\"\n\
            je-1,2026-10-31,revenue:usage,0.0000,720.0000,USD,inv-je-1,\"invoice, October \"\"usage\"\"\"\n\
            je-2,2026-10-31,assets:cash,0.5000,-3.1200,USD,inv-je-2,\"two\nlines and a\rreturn\"\n\
            je-2,2026-10-31,x,0.0001,1234567.8910,USD,inv-je-2,\"two\nlines and a\rreturn\"\n\
            je-3,2026-10-31,,-0.0001,99999999999999.9999,USD,inv-je-3,\n\
            ,2026-10-31,a b,0.0001,10.0000,USD,inv-,ünïcødé; tab\there\n";
        let csv = journal_csv(&entries).expect("csv");
        assert_eq!(String::from_utf8(csv.clone()).expect("utf-8"), expected);
        assert_eq!(csv, arrow_csv(&entries));
    }

    #[test]
    fn an_empty_journal_csv_is_its_header() {
        assert_eq!(journal_csv(&[]).expect("csv"), arrow_csv(&[]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn journal_csv_is_arrows_csv_of_the_journal_table(
            raw in proptest::collection::vec(
                (
                    "[a-z,\" \n\r;é-]{0,12}",
                    "[a-z:, \"]{0,10}",
                    proptest::collection::vec((-10i64.pow(12)..10i64.pow(12), 0u32..=6, 0i64..10i64.pow(9)), 1..4),
                ),
                0..(RENDER_CHUNK + 40),
            )
        ) {
            // More entries than one chunk holds, so chunk seams are crossed.
            let entries: Vec<JournalEntry> = raw
                .iter()
                .enumerate()
                .map(|(i, (memo, account, amounts))| {
                    entry(
                        &format!("je-{i}"),
                        memo,
                        amounts
                            .iter()
                            .map(|&(debit, scale, credit)| {
                                (account.as_str(), Decimal::new(debit, scale), Decimal::new(credit, 4))
                            })
                            .collect(),
                    )
                })
                .collect();
            proptest::prop_assert_eq!(journal_csv(&entries).expect("csv"), arrow_csv(&entries));
        }
    }
}
