//! The recognition stage's tables.

use arrow::array::RecordBatch;
use billrun_schemas::outputs::OutputTable;

use super::Recognition;
use crate::columns::{date_array, money_array, opt_strings, quantity_array, strings};
use crate::error::Result;

impl Recognition {
    /// The `revenue_allocations` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn allocations_batch(&self) -> Result<RecordBatch> {
        let r = &self.allocations;
        Ok(RecordBatch::try_new(
            OutputTable::RevenueAllocations.schema(),
            vec![
                strings(r.iter().map(|a| a.contract_id.as_str())),
                strings(r.iter().map(|a| a.order_id.as_str())),
                strings(r.iter().map(|a| a.line_id.as_str())),
                strings(r.iter().map(|a| a.customer_id.as_str())),
                strings(r.iter().map(|a| a.product_id.as_str())),
                strings(r.iter().map(|a| a.currency.as_str())),
                strings(r.iter().map(|a| a.method.as_str())),
                money_array(r.iter().map(|a| a.stated_price))?,
                quantity_array(r.iter().map(|a| a.ssp))?,
                money_array(r.iter().map(|a| a.allocated))?,
                strings(r.iter().map(|a| a.revenue_account.as_str())),
                opt_strings(r.iter().map(|a| a.deferral_account.as_deref())),
                opt_strings(r.iter().map(|a| a.carve_rule_id.as_deref())),
            ],
        )?)
    }

    /// The `revenue_schedule` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn schedule_batch(&self) -> Result<RecordBatch> {
        let r = &self.schedule;
        Ok(RecordBatch::try_new(
            OutputTable::RevenueSchedule.schema(),
            vec![
                opt_strings(r.iter().map(|s| s.invoice_id.as_deref())),
                strings(r.iter().map(|s| s.order_id.as_str())),
                strings(r.iter().map(|s| s.line_id.as_str())),
                strings(r.iter().map(|s| s.customer_id.as_str())),
                strings(r.iter().map(|s| s.product_id.as_str())),
                date_array(r.iter().map(|s| s.month)),
                money_array(r.iter().map(|s| s.amount))?,
                strings(r.iter().map(|s| s.currency.as_str())),
                strings(r.iter().map(|s| s.status.as_str())),
                strings(r.iter().map(|s| s.contract_id.as_str())),
                strings(r.iter().map(|s| s.method.as_str())),
                strings(r.iter().map(|s| s.revenue_account.as_str())),
                opt_strings(r.iter().map(|s| s.deferral_account.as_deref())),
                opt_strings(r.iter().map(|s| s.condition_id.as_deref())),
            ],
        )?)
    }

    /// The `contract_billings` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn billings_batch(&self) -> Result<RecordBatch> {
        let r = &self.billings;
        Ok(RecordBatch::try_new(
            OutputTable::ContractBillings.schema(),
            vec![
                strings(r.iter().map(|b| b.billing_id.as_str())),
                strings(r.iter().map(|b| b.contract_id.as_str())),
                strings(r.iter().map(|b| b.customer_id.as_str())),
                strings(r.iter().map(|b| b.currency.as_str())),
                date_array(r.iter().map(|b| b.billed_on)),
                money_array(r.iter().map(|b| b.amount))?,
                money_array(r.iter().map(|b| b.tax))?,
                money_array(r.iter().map(|b| b.total))?,
                opt_strings(r.iter().map(|b| b.modification_id.as_deref())),
            ],
        )?)
    }

    /// The `deferred_revenue` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn roll_forward_batch(&self) -> Result<RecordBatch> {
        let r = self.roll_forward()?;
        Ok(RecordBatch::try_new(
            OutputTable::DeferredRevenue.schema(),
            vec![
                date_array(r.iter().map(|x| x.month)),
                strings(r.iter().map(|x| x.currency.as_str())),
                strings(r.iter().map(|x| x.account.as_str())),
                money_array(r.iter().map(|x| x.opening))?,
                money_array(r.iter().map(|x| x.billed))?,
                money_array(r.iter().map(|x| x.recognised))?,
                money_array(r.iter().map(|x| x.closing))?,
            ],
        )?)
    }

    /// The `revenue_waterfall` table.
    ///
    /// # Errors
    /// Amounts that do not fit their columns.
    pub fn waterfall_batch(&self) -> Result<RecordBatch> {
        let r = self.waterfall()?;
        Ok(RecordBatch::try_new(
            OutputTable::RevenueWaterfall.schema(),
            vec![
                date_array(r.iter().map(|x| x.booked_month)),
                date_array(r.iter().map(|x| x.recognition_month)),
                strings(r.iter().map(|x| x.currency.as_str())),
                money_array(r.iter().map(|x| x.amount))?,
                strings(r.iter().map(|x| x.status.as_str())),
            ],
        )?)
    }
}
