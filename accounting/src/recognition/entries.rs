//! The journal entries of contracts: deferred revenue brought forward, billings, and
//! each month's recognition.

use std::collections::BTreeMap;

use billrun_engine::next_month_start;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::Recognition;
use crate::error::Result;
use crate::ledger::{EntryBuilder, JournalEntry, accounts};

impl Recognition {
    /// The run's journal entries for contracts: an opening balance of deferred revenue
    /// per currency (only when `book_opening`: a run on top of posted books has its
    /// balances brought forward by them, and booking them again would count them
    /// twice), each billing dated in the run's month, and one recognition entry per
    /// contract dated on the month's last day. Each entry balances.
    ///
    /// # Errors
    /// An entry that does not balance (a bug).
    pub fn journal_entries(&self, book_opening: bool) -> Result<Vec<JournalEntry>> {
        let Some(run_month) = self.month else {
            return Ok(Vec::new());
        };
        let next = next_month_start(run_month)?;
        let month_end = next.pred_opt().unwrap_or(run_month);
        let in_month = |d: NaiveDate| run_month <= d && d < next;
        let yyyymm = run_month.format("%Y%m");
        let mut entries = Vec::new();

        let mut opening: BTreeMap<String, Vec<(String, Decimal)>> = BTreeMap::new();
        for row in self.roll_forward()? {
            if book_opening && row.month == run_month && !row.opening.is_zero() {
                opening
                    .entry(row.currency.clone())
                    .or_default()
                    .push((row.account.clone(), row.opening));
            }
        }
        for (currency, balances) in opening {
            let mut e = EntryBuilder::default();
            for (account, amount) in balances {
                e.credit(&account, amount)?;
                e.debit(accounts::OPENING_BALANCES, amount)?;
            }
            entries.push(e.finish(
                format!("JE-OPEN-{yyyymm}-{currency}"),
                run_month,
                &currency,
                format!("OPEN-{yyyymm}"),
                format!(
                    "deferred revenue brought forward to {}",
                    run_month.format("%Y-%m")
                ),
            )?);
        }
        for b in self.billings.iter().filter(|b| in_month(b.billed_on)) {
            let mut e = EntryBuilder::default();
            e.debit(accounts::RECEIVABLE, b.total)?;
            for (account, amount) in &b.deferred {
                e.credit(account, *amount)?;
            }
            e.credit(accounts::TAX_PAYABLE, b.tax)?;
            entries.push(
                e.finish(
                    format!("JE-{}", b.billing_id),
                    b.billed_on,
                    &b.currency,
                    b.billing_id.clone(),
                    match &b.modification_id {
                        Some(m) => format!("contract {} modified ({m})", b.contract_id),
                        None => format!("contract {} billed to {}", b.contract_id, b.customer_id),
                    },
                )?
                .for_customer(&b.customer_id),
            );
        }
        let mut by_contract: BTreeMap<(&str, &str), (EntryBuilder, &str)> = BTreeMap::new();
        for row in &self.schedule {
            let Some(deferral) = &row.deferral_account else {
                continue;
            };
            if row.month != run_month || row.held {
                continue;
            }
            let (e, _) = by_contract
                .entry((row.contract_id.as_str(), row.currency.as_str()))
                .or_insert_with(|| (EntryBuilder::default(), row.customer_id.as_str()));
            e.debit(deferral, row.amount)?;
            e.credit(&row.revenue_account, row.amount)?;
        }
        for ((contract_id, currency), (e, customer_id)) in by_contract {
            entries.push(
                e.finish(
                    format!("JE-REV-{yyyymm}-{contract_id}"),
                    month_end,
                    currency,
                    contract_id.to_string(),
                    format!(
                        "revenue of contract {contract_id} recognised in {}",
                        run_month.format("%Y-%m")
                    ),
                )?
                .for_customer(customer_id),
            );
        }
        entries.retain(|e| !e.postings.is_empty());
        Ok(entries)
    }
}
