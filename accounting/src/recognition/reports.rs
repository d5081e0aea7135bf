//! Reports on recognition: the deferred-revenue roll-forward and the revenue waterfall.

use std::collections::BTreeMap;

use billrun_engine::{checked, month_start, next_month_start, round_money};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Recognition, ScheduleStatus};
use crate::error::{Result, minor_units_of};

/// One row of the deferred-revenue roll-forward.
#[derive(Debug, Clone, PartialEq)]
pub struct RollForwardRow {
    pub month: NaiveDate,
    pub currency: String,
    pub account: String,
    pub opening: Decimal,
    pub billed: Decimal,
    pub recognised: Decimal,
    pub closing: Decimal,
}

/// One row of the revenue waterfall.
#[derive(Debug, Clone, PartialEq)]
pub struct WaterfallRow {
    pub booked_month: NaiveDate,
    pub recognition_month: NaiveDate,
    pub currency: String,
    pub amount: Decimal,
    pub status: ScheduleStatus,
}

impl Recognition {
    /// Deferred revenue per month, currency and account, from the first month anything
    /// was billed or recognised to the run's month: opening + billed − recognised =
    /// closing. Held revenue stays deferred; as-consumed revenue never was.
    pub fn roll_forward(&self) -> Result<Vec<RollForwardRow>> {
        let Some(run_month) = self.month else {
            return Ok(Vec::new());
        };
        let mut moves: BTreeMap<(String, String), BTreeMap<NaiveDate, (Decimal, Decimal)>> =
            BTreeMap::new();
        for b in &self.billings {
            let month = month_start(b.billed_on);
            for (account, amount) in &b.deferred {
                let m = moves
                    .entry((b.currency.clone(), account.clone()))
                    .or_default()
                    .entry(month)
                    .or_default();
                m.0 = checked::add(m.0, *amount, "deferred revenue billed")?;
            }
        }
        for row in &self.schedule {
            let Some(account) = &row.deferral_account else {
                continue;
            };
            if row.held {
                continue;
            }
            let m = moves
                .entry((row.currency.clone(), account.clone()))
                .or_default()
                .entry(row.month)
                .or_default();
            m.1 = checked::add(m.1, row.amount, "deferred revenue recognised")?;
        }
        let mut out = Vec::new();
        for ((currency, account), months) in moves {
            let Some(first) = months.keys().next().copied() else {
                continue;
            };
            let minor = minor_units_of(&currency, || format!("deferred revenue in {account}"))?;
            let mut month = first;
            let mut closing = Decimal::ZERO;
            while month <= run_month {
                let (billed, recognised) = months.get(&month).copied().unwrap_or_default();
                let opening = closing;
                closing = checked::sub(
                    checked::add(opening, billed, "deferred revenue closing")?,
                    recognised,
                    "deferred revenue closing",
                )?;
                out.push(RollForwardRow {
                    month,
                    currency: currency.clone(),
                    account: account.clone(),
                    opening: round_money(opening, minor),
                    billed: round_money(billed, minor),
                    recognised: round_money(recognised, minor),
                    closing: round_money(closing, minor),
                });
                month = next_month_start(month)?;
            }
        }
        out.sort_by(|a, b| {
            (a.month, &a.currency, &a.account).cmp(&(b.month, &b.currency, &b.account))
        });
        Ok(out)
    }

    /// Revenue of contracts by month booked (billed) and month recognised, split by
    /// status. As-consumed revenue is not booked in advance and is left out.
    ///
    /// # Errors
    /// Sums that overflow.
    pub fn waterfall(&self) -> Result<Vec<WaterfallRow>> {
        let mut sums: BTreeMap<(NaiveDate, NaiveDate, String, ScheduleStatus), Decimal> =
            BTreeMap::new();
        for row in self
            .schedule
            .iter()
            .filter(|r| r.deferral_account.is_some())
        {
            let sum = sums
                .entry((
                    row.booked_month,
                    row.month,
                    row.currency.clone(),
                    row.status,
                ))
                .or_default();
            *sum = checked::add(*sum, row.amount, "revenue waterfall")?;
        }
        Ok(sums
            .into_iter()
            .map(
                |((booked_month, recognition_month, currency, status), amount)| WaterfallRow {
                    booked_month,
                    recognition_month,
                    currency,
                    amount,
                    status,
                },
            )
            .collect())
    }
}
