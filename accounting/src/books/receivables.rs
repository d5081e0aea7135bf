//! One invoice as the books hold it: what it billed, what has paid or credited it, and
//! what is still open.

use billrun_engine::checked;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::Result;

/// Whether anything is still owed on an invoice (`receivables.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReceivableStatus {
    /// Nothing is open.
    Paid,
    /// Something is open and nothing was paid.
    Open,
    /// Something was paid and something is still open.
    PartiallyPaid,
}

impl ReceivableStatus {
    /// The text written to `receivables.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceivableStatus::Paid => "paid",
            ReceivableStatus::Open => "open",
            ReceivableStatus::PartiallyPaid => "partially_paid",
        }
    }
}

/// A posted invoice (or correction) with what has settled it so far.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receivable {
    pub invoice_id: String,
    pub customer_id: String,
    pub currency: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Payments, unapplied cash and credits applied to it.
    #[serde(with = "rust_decimal::serde::str")]
    pub paid: Decimal,
    /// A credit note's own total (it is settled by becoming customer credit); 0 for
    /// every other invoice.
    #[serde(with = "rust_decimal::serde::str")]
    pub credited: Decimal,
}

impl Receivable {
    /// `total − paid − credited`.
    ///
    /// # Errors
    /// Overflow.
    pub fn open(&self) -> Result<Decimal> {
        let after_paid = checked::sub(self.total, self.paid, "receivable open")?;
        Ok(checked::sub(after_paid, self.credited, "receivable open")?)
    }

    /// `paid` when nothing is open, `open` when nothing was paid, else
    /// `partially_paid`.
    ///
    /// # Errors
    /// Overflow.
    pub fn status(&self) -> Result<ReceivableStatus> {
        Ok(if self.open()?.is_zero() {
            ReceivableStatus::Paid
        } else if self.paid.is_zero() {
            ReceivableStatus::Open
        } else {
            ReceivableStatus::PartiallyPaid
        })
    }

    /// `as_of − due_date` in days when something is open and the difference is
    /// positive, else 0.
    ///
    /// # Errors
    /// Overflow.
    pub fn days_past_due(&self, as_of: NaiveDate) -> Result<u32> {
        if self.open()? <= Decimal::ZERO {
            return Ok(0);
        }
        let days = (as_of - self.due_date).num_days();
        Ok(u32::try_from(days.max(0)).unwrap_or(u32::MAX))
    }
}
