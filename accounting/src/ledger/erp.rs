//! The journal in the layouts ERP journal imports take as documented: NetSuite's CSV
//! import of journal entries, QuickBooks Online's journal entry import and Xero's manual
//! journal import.
//!
//! Each needs a GL account for every account the journal posts to (an ERP books to its
//! own chart, never to billrun's names), so the layouts are written only when the chart
//! (`gl_accounts`, with `billrun_account` mapping billrun's own accounts) covers them all;
//! [`ErpLayouts::build`] says which accounts are missing otherwise. Money is written at
//! the currency's minor unit (`4978` JPY, `2.500` KWD), and the side a posting is not on
//! is blank, never `0`.

use std::collections::BTreeSet;

use billrun_engine::checked;
use rust_decimal::Decimal;

use super::render::format_amount;
use super::{AccountTypes, JournalEntry};
use crate::error::{Result, minor_units_of};

/// Xero imports at most this many lines from one file.
pub const XERO_LINES_PER_FILE: usize = 300;

/// The tax rate name Xero is given for every line: journal lines carry no tax of their
/// own (billrun's tax is already a posting to tax payable). Xero's US and global
/// organisations call it `Tax Exempt`; `gl_accounts.erp_tax_rate` names another.
pub const XERO_DEFAULT_TAX_RATE: &str = "Tax Exempt";

/// One file of an ERP layout: its name under `erp/`, its CSV bytes and its data rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub rows: u64,
}

/// The journal's ERP layouts, or why they cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErpLayouts {
    /// Every account has a GL account: the files to write.
    Files(Vec<ErpFile>),
    /// The dataset has no `gl_accounts`: nothing to map to, nothing written.
    NoChart,
    /// These accounts have no GL account in `gl_accounts`.
    Unmapped(Vec<String>),
}

impl ErpLayouts {
    /// The layouts of `entries`, sorted by (date, entry_id) as the journal is.
    ///
    /// # Errors
    /// A currency without a minor unit; amounts that overflow.
    pub fn build(entries: &[JournalEntry], types: &AccountTypes<'_>) -> Result<ErpLayouts> {
        if !types.has_chart() {
            return Ok(ErpLayouts::NoChart);
        }
        let accounts: BTreeSet<&str> = entries
            .iter()
            .flat_map(|e| e.postings.iter().map(|p| p.account.as_str()))
            .collect();
        let unmapped: Vec<String> = accounts
            .iter()
            .filter(|a| types.gl(a).is_none())
            .map(|a| (*a).to_string())
            .collect();
        if !unmapped.is_empty() {
            return Ok(ErpLayouts::Unmapped(unmapped));
        }
        let lines = lines(entries, types)?;
        let mut files = vec![netsuite(&lines)];
        let currencies: BTreeSet<&str> = lines.iter().map(|l| l.currency).collect();
        for currency in currencies {
            let of_currency: Vec<&Line<'_>> =
                lines.iter().filter(|l| l.currency == currency).collect();
            files.push(quickbooks(currency, &of_currency));
            files.extend(xero(currency, &of_currency));
        }
        Ok(ErpLayouts::Files(files))
    }
}

/// One posting, resolved to its GL account and formatted.
struct Line<'a> {
    entry: &'a JournalEntry,
    currency: &'a str,
    gl_code: &'a str,
    gl_name: &'a str,
    tax_rate: &'a str,
    debit: String,
    credit: String,
    signed: String,
}

fn lines<'a>(entries: &'a [JournalEntry], types: &AccountTypes<'a>) -> Result<Vec<Line<'a>>> {
    let mut lines = Vec::new();
    for entry in entries {
        let minor = minor_units_of(&entry.currency, || {
            format!("journal entry {}", entry.entry_id)
        })? as usize;
        let shown = |amount: Decimal| {
            if amount.is_zero() {
                String::new()
            } else {
                format_amount(amount, minor)
            }
        };
        for p in &entry.postings {
            let Some((gl_code, gl)) = types.gl(&p.account) else {
                continue; // not reached: build() checked every account
            };
            lines.push(Line {
                entry,
                currency: &entry.currency,
                gl_code,
                gl_name: &gl.name,
                tax_rate: gl.erp_tax_rate.as_deref().unwrap_or(XERO_DEFAULT_TAX_RATE),
                debit: shown(p.debit),
                credit: shown(p.credit),
                signed: format_amount(checked::sub(p.debit, p.credit, "posting amount")?, minor),
            });
        }
    }
    Ok(lines)
}

fn csv_file(name: String, header: &[&str], rows: Vec<Vec<String>>) -> ErpFile {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    let count = rows.len() as u64;
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    ErpFile {
        name,
        bytes,
        rows: count,
    }
}

/// NetSuite's journal entry import (Setup > Import/Export > Import CSV Records,
/// Transactions, Journal Entry): lines of one entry share an External ID; Account is the
/// account number (with "Use Account Numbers" on); Name is the entity (the customer).
/// Dates are MM/DD/YYYY, NetSuite's default; one file holds every currency.
fn netsuite(lines: &[Line<'_>]) -> ErpFile {
    let rows = lines
        .iter()
        .map(|l| {
            vec![
                l.entry.entry_id.clone(),
                l.entry.date.format("%m/%d/%Y").to_string(),
                l.currency.to_string(),
                l.gl_code.to_string(),
                l.debit.clone(),
                l.credit.clone(),
                l.entry.memo.clone(),
                l.entry.customer_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    csv_file(
        "netsuite-journal.csv".into(),
        &[
            "External ID",
            "Date",
            "Currency",
            "Account",
            "Debit",
            "Credit",
            "Memo",
            "Name",
        ],
        rows,
    )
}

/// QuickBooks Online's journal entry import (Settings > Import data > Journal Entries):
/// Journal No. groups the lines (numbered 1, 2, … in journal order: QBO takes 21
/// characters, fewer than an entry_id may have, so the entry_id leads the Description);
/// Account Name is the account's name in the chart (QBO
/// matches names, with account numbers turned off); Name is the customer, which QBO
/// requires on receivable lines. One file per currency (a QBO company books in its home
/// currency), dates MM/DD/YYYY.
fn quickbooks(currency: &str, lines: &[&Line<'_>]) -> ErpFile {
    let mut number = 0;
    let mut last: Option<&str> = None;
    let rows = lines
        .iter()
        .map(|l| {
            if last != Some(l.entry.entry_id.as_str()) {
                number += 1;
                last = Some(&l.entry.entry_id);
            }
            vec![
                number.to_string(),
                l.entry.date.format("%m/%d/%Y").to_string(),
                l.gl_name.to_string(),
                l.debit.clone(),
                l.credit.clone(),
                format!("{}: {}", l.entry.entry_id, l.entry.memo),
                l.entry.customer_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    csv_file(
        format!("quickbooks-journal-{currency}.csv"),
        &[
            "Journal No.",
            "Journal Date",
            "Account Name",
            "Debits",
            "Credits",
            "Description",
            "Name",
        ],
        rows,
    )
}

/// Xero's manual journal import (Accounting > Manual Journals > Import): one signed
/// Amount (a debit positive, a credit negative), the AccountCode and a TaxRate name on
/// every line; the lines of one journal share Narration and Date (dd/mm/yyyy), so the
/// entry_id leads the narration to keep two entries of one day apart. Xero takes 300
/// lines a file: a currency's lines are split into numbered files, an entry never
/// across two. Manual journals are in the organisation's base currency: one set of
/// files per currency.
fn xero(currency: &str, lines: &[&Line<'_>]) -> Vec<ErpFile> {
    let header = [
        "*Narration",
        "*Date",
        "Description",
        "*AccountCode",
        "*TaxRate",
        "*Amount",
    ];
    let mut parts: Vec<Vec<Vec<String>>> = vec![Vec::new()];
    let mut at = 0;
    while at < lines.len() {
        let entry_id = &lines[at].entry.entry_id;
        let end = at
            + lines[at..]
                .iter()
                .take_while(|l| &l.entry.entry_id == entry_id)
                .count();
        let rows: Vec<Vec<String>> = lines[at..end]
            .iter()
            .map(|l| {
                vec![
                    format!("{}: {}", l.entry.entry_id, l.entry.memo),
                    l.entry.date.format("%d/%m/%Y").to_string(),
                    l.entry
                        .customer_id
                        .as_ref()
                        .map_or_else(String::new, |c| format!("customer {c}")),
                    l.gl_code.to_string(),
                    l.tax_rate.to_string(),
                    l.signed.clone(),
                ]
            })
            .collect();
        let current = parts.last_mut().expect("one part at least");
        if !current.is_empty() && current.len() + rows.len() > XERO_LINES_PER_FILE {
            parts.push(rows);
        } else {
            current.extend(rows);
        }
        at = end;
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, rows)| {
            csv_file(
                format!("xero-journal-{currency}-{:03}.csv", i + 1),
                &header,
                rows,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::ledger::{EntryBuilder, GlChart};
    use crate::rows::ValidatedRows;
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use billrun_schemas::{Table, validate_batch};
    use std::sync::Arc;

    fn entry(id: &str, lines: usize) -> JournalEntry {
        let mut e = EntryBuilder::default();
        // `lines - 1` revenue accounts credited, the receivable debited with their sum.
        for i in 1..lines {
            e.credit(&format!("revenue:{}", 4000 + i), Decimal::ONE)
                .unwrap();
        }
        e.debit("assets:receivable", Decimal::from(lines as i64 - 1))
            .unwrap();
        e.finish(
            id.into(),
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            "JPY",
            id.into(),
            format!("entry {id}"),
        )
        .unwrap()
        .for_customer("C1")
    }

    /// The chart of `csv`, a `gl_accounts` file, validated as a run would.
    fn chart(csv: &str) -> GlChart {
        let mut lines = csv.lines().map(|l| l.split(',').collect::<Vec<_>>());
        let header = lines.next().unwrap();
        let body: Vec<Vec<&str>> = lines.collect();
        let columns: Vec<ArrayRef> = (0..header.len())
            .map(|c| {
                Arc::new(StringArray::from_iter(
                    body.iter().map(|r| Some(r[c]).filter(|v| !v.is_empty())),
                )) as ArrayRef
            })
            .collect();
        let schema = Schema::new(
            header
                .iter()
                .map(|h| Field::new(*h, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let text = RecordBatch::try_new(Arc::new(schema), columns).unwrap();
        let validated = validate_batch(Table::GlAccounts, &text, 0, 1).unwrap();
        assert!(validated.rejects.is_empty(), "{:?}", validated.rejects);
        let batches = [validated.batch];
        let names = ["gl_accounts/gl_accounts.csv".to_string()];
        let (chart, rejects) =
            GlChart::build(ValidatedRows::new(Table::GlAccounts, &batches, &names)).unwrap();
        assert!(rejects.is_empty(), "{rejects:?}");
        chart
    }

    fn full_chart() -> GlChart {
        let mut rows =
            String::from("gl_account,name,type,billrun_account\n1200,AR,asset,assets:receivable\n");
        for i in 1..300 {
            rows.push_str(&format!("{},Rev {i},revenue,\n", 4000 + i));
        }
        chart(&rows)
    }

    #[test]
    fn xero_files_hold_at_most_300_lines_and_never_split_an_entry() {
        let chart = full_chart();
        let types = AccountTypes::new(&chart);
        // 120 + 120 lines fit one file; the next 120 would make 360: a second file.
        let entries = [
            entry("A", 120),
            entry("B", 120),
            entry("C", 120),
            entry("D", 3),
        ];
        let ErpLayouts::Files(files) = ErpLayouts::build(&entries, &types).unwrap() else {
            panic!("every account is mapped");
        };
        let xero: Vec<(&str, u64)> = files
            .iter()
            .filter(|f| f.name.starts_with("xero"))
            .map(|f| (f.name.as_str(), f.rows))
            .collect();
        assert_eq!(
            xero,
            [
                ("xero-journal-JPY-001.csv", 240),
                ("xero-journal-JPY-002.csv", 123)
            ]
        );
        let second = String::from_utf8(
            files
                .iter()
                .find(|f| f.name == "xero-journal-JPY-002.csv")
                .unwrap()
                .bytes
                .clone(),
        )
        .unwrap();
        assert_eq!(
            second.lines().nth(1).unwrap(),
            "C: entry C,31/10/2026,customer C1,4001,Tax Exempt,-1"
        );
        let netsuite = &files[0];
        assert_eq!(netsuite.name, "netsuite-journal.csv");
        assert_eq!(netsuite.rows, 363);
        let text = String::from_utf8(netsuite.bytes.clone()).unwrap();
        assert_eq!(
            text.lines().take(2).collect::<Vec<_>>(),
            [
                "External ID,Date,Currency,Account,Debit,Credit,Memo,Name",
                "A,10/31/2026,JPY,4001,,1,entry A,C1"
            ]
        );
        assert!(
            text.contains("\nD,10/31/2026,JPY,1200,2,,entry D,C1\n"),
            "{text}"
        );
        let qbo = String::from_utf8(files[1].bytes.clone()).unwrap();
        assert_eq!(files[1].name, "quickbooks-journal-JPY.csv");
        assert!(
            qbo.contains("\n4,10/31/2026,AR,2,,D: entry D,C1\n"),
            "{qbo}"
        );
    }

    #[test]
    fn unmapped_accounts_are_named_and_no_chart_writes_nothing() {
        let chart = chart("gl_account,name,type\n4001,Rev,revenue\n");
        let types = AccountTypes::new(&chart);
        assert_eq!(
            ErpLayouts::build(&[entry("A", 3)], &types).unwrap(),
            ErpLayouts::Unmapped(vec!["assets:receivable".into(), "revenue:4002".into()])
        );
        let empty = GlChart::default();
        assert_eq!(
            ErpLayouts::build(&[entry("A", 3)], &AccountTypes::new(&empty)).unwrap(),
            ErpLayouts::NoChart
        );
    }
}
