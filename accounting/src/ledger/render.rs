//! The journal as a table, as CSV and as a plain-text journal for hledger and ledger.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, RecordBatch, StringArray};
use billrun_engine::{checked, days_since_epoch, decimal_to_i128_scaled};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE};
use rust_decimal::Decimal;

use super::{GlChart, JournalEntry, Posting};
use crate::error::{Result, minor_units_of};

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
/// Encoding errors.
pub fn journal_csv(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buffer);
        writer.write(batch)?;
    }
    Ok(buffer)
}

/// The entries as a plain-text double-entry journal (hledger / ledger format) that
/// declares its commodities and accounts, so `hledger check --strict` accepts it.
///
/// # Errors
/// [`AccountingError::UnknownCurrency`] for an entry in a currency without a minor unit.
pub fn hledger_journal(entries: &[JournalEntry], header: &str, chart: &GlChart) -> Result<String> {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "; {line}");
    }
    out.push('\n');
    let currencies: BTreeSet<&str> = entries.iter().map(|e| e.currency.as_str()).collect();
    for currency in &currencies {
        let minor = minor_units_of(currency, || "the journal's commodities".to_string())? as usize;
        // hledger wants a decimal mark in the directive even for currencies without one.
        let mark = if minor == 0 { "." } else { "" };
        let sample = format_amount(Decimal::from(1000), minor);
        let _ = writeln!(out, "commodity {sample}{mark} {currency}");
    }
    let accounts: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.postings.iter().map(|p| p.account.as_str()))
        .collect();
    out.push('\n');
    for account in &accounts {
        // hledger's account types: Asset, Liability, Equity, Revenue, eXpense. Every
        // account declares one, so `balancesheet` and `incomestatement` leave none out.
        match (chart.of(account), type_by_name(account)) {
            (Some(gl), _) => {
                let kind = gl.kind.hledger_code();
                let name = gl.name.replace([',', ';'], " ");
                let _ = writeln!(out, "account {account}  ; type:{kind}, gl:{name}");
            }
            (None, Some(kind)) => {
                let _ = writeln!(out, "account {account}  ; type:{kind}");
            }
            (None, None) => {
                let _ = writeln!(out, "account {account}");
            }
        }
    }
    for entry in entries {
        let minor = minor_units_of(&entry.currency, || {
            format!("journal entry {}", entry.entry_id)
        })? as usize;
        let _ = writeln!(
            out,
            "\n{} * ({}) {}",
            entry.date, entry.entry_id, entry.memo
        );
        for p in &entry.postings {
            let amount = checked::sub(p.debit, p.credit, "posting amount")?;
            let _ = writeln!(
                out,
                "    {:<40}  {} {}",
                p.account,
                format_amount(amount, minor),
                entry.currency
            );
        }
    }
    Ok(out)
}

/// The hledger type of an account outside the chart, from its top-level name as
/// hledger itself would guess it (`assets`, `liabilities`, `equity`, `revenue` or
/// `income`, `expenses`); `None` for a hierarchy under another name.
fn type_by_name(account: &str) -> Option<char> {
    let top = account.split(':').next().unwrap_or(account);
    Some(match top {
        "assets" | "asset" => 'A',
        "liabilities" | "liability" | "debts" | "debt" => 'L',
        "equity" => 'E',
        "revenue" | "revenues" | "income" => 'R',
        "expenses" | "expense" => 'X',
        _ => return None,
    })
}

fn format_amount(amount: Decimal, minor: usize) -> String {
    format!("{amount:.minor$}")
}
