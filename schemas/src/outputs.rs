//! Output tables: what a bill run writes for analysts, ledgers and auditors.
//!
//! Column names and meanings are the data contract's; extra columns (after the contract's
//! own) are billrun's additions and are documented in `docs/CONTRACT-NOTES.md`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::{money_type, quantity_type, timestamp_type};

/// A table a bill run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutputTable {
    RatedUsage,
    InvoiceLines,
    Invoices,
    OpenCredits,
    Journal,
    Rejects,
    Unrated,
    RevenueAllocations,
    RevenueSchedule,
    ContractBillings,
    DeferredRevenue,
    RevenueWaterfall,
    /// The books (`--books`): every invoice posted or still open, with what is open.
    Receivables,
    /// The books: what is open per customer and currency, by days past due.
    ArAging,
    /// The books: what paid or credited what.
    Applications,
    /// The books (billrun's addition): each customer's receivable, unapplied cash and
    /// credit, netted.
    CustomerBalances,
}

impl OutputTable {
    /// Every output table, in the order a run writes them; the last four only with
    /// `--books` ([`OutputTable::BOOKS`]).
    pub const ALL: [OutputTable; 16] = [
        OutputTable::RatedUsage,
        OutputTable::InvoiceLines,
        OutputTable::Invoices,
        OutputTable::OpenCredits,
        OutputTable::Journal,
        OutputTable::Rejects,
        OutputTable::Unrated,
        OutputTable::RevenueAllocations,
        OutputTable::RevenueSchedule,
        OutputTable::ContractBillings,
        OutputTable::DeferredRevenue,
        OutputTable::RevenueWaterfall,
        OutputTable::Receivables,
        OutputTable::ArAging,
        OutputTable::Applications,
        OutputTable::CustomerBalances,
    ];

    /// The tables of the books, written by a run with `--books`.
    pub const BOOKS: [OutputTable; 4] = [
        OutputTable::Receivables,
        OutputTable::ArAging,
        OutputTable::Applications,
        OutputTable::CustomerBalances,
    ];

    /// The table's name: its folder in the output directory and its name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            OutputTable::RatedUsage => "rated_usage",
            OutputTable::InvoiceLines => "invoice_lines",
            OutputTable::Invoices => "invoices",
            OutputTable::OpenCredits => "open_credits",
            OutputTable::Journal => "journal",
            OutputTable::Rejects => "rejects",
            OutputTable::Unrated => "unrated",
            OutputTable::RevenueAllocations => "revenue_allocations",
            OutputTable::RevenueSchedule => "revenue_schedule",
            OutputTable::ContractBillings => "contract_billings",
            OutputTable::DeferredRevenue => "deferred_revenue",
            OutputTable::RevenueWaterfall => "revenue_waterfall",
            OutputTable::Receivables => "receivables",
            OutputTable::ArAging => "ar_aging",
            OutputTable::Applications => "applications",
            OutputTable::CustomerBalances => "customer_balances",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let text_opt = |n: &str| Field::new(n, DataType::Utf8, true);
        let date = |n: &str| Field::new(n, DataType::Date32, false);
        let money = |n: &str| Field::new(n, money_type(), false);
        let fields = match self {
            OutputTable::RatedUsage => vec![
                text("event_id"),
                text("customer_id"),
                text("product_id"),
                text("subscription_id"),
                text("plan_id"),
                Field::new("ts", timestamp_type(), false),
                Field::new("quantity", quantity_type(), false),
                Field::new("amount", quantity_type(), false),
                text("currency"),
                date("period_start"),
                // billrun's addition: the plan version that priced the event.
                date("plan_effective_from"),
            ],
            OutputTable::InvoiceLines => vec![
                text("invoice_id"),
                Field::new("line_no", DataType::Int32, false),
                text("customer_id"),
                text_opt("product_id"),
                text_opt("subscription_id"),
                text("kind"),
                Field::new("quantity", quantity_type(), true),
                money("amount"),
                text("currency"),
                date("period_start"),
                date("period_end"),
                // billrun's addition: the memo a `credit` line applies.
                text_opt("credit_memo_id"),
            ],
            OutputTable::Invoices => vec![
                text("invoice_id"),
                text("customer_id"),
                text("currency"),
                date("period_start"),
                date("period_end"),
                date("issue_date"),
                date("due_date"),
                money("subtotal"),
                money("discount"),
                money("credits"),
                money("tax"),
                money("total"),
                // billrun's additions, with the books: the gapless number (empty without
                // books, and on invoices a `--preview` has not posted), and the invoice a
                // correction corrects.
                Field::new("invoice_number", DataType::Int64, true),
                text_opt("corrects_invoice_id"),
            ],
            OutputTable::Receivables => vec![
                text("invoice_id"),
                // Empty on invoices a `--preview` has not posted.
                Field::new("invoice_number", DataType::Int64, true),
                text("customer_id"),
                text("currency"),
                date("issue_date"),
                date("due_date"),
                money("total"),
                money("paid"),
                money("credited"),
                money("open"),
                text("status"),
                Field::new("days_past_due", DataType::Int32, false),
            ],
            OutputTable::ArAging => vec![
                text("customer_id"),
                text("currency"),
                date("as_of"),
                money("current"),
                money("past_due_1_30"),
                money("past_due_31_60"),
                money("past_due_61_90"),
                money("past_due_over_90"),
                money("total"),
            ],
            OutputTable::CustomerBalances => vec![
                text("customer_id"),
                text("currency"),
                date("as_of"),
                Field::new("open_invoices", DataType::Int64, false),
                money("receivable"),
                money("unapplied_cash"),
                money("credit"),
                money("balance"),
            ],
            OutputTable::Applications => vec![
                text("source_id"),
                text("source_kind"),
                text("invoice_id"),
                money("amount"),
                date("applied_on"),
            ],
            OutputTable::OpenCredits => vec![
                text("credit_memo_id"),
                text("customer_id"),
                text("currency"),
                date("issued_on"),
                money("amount"),
                money("applied"),
                money("remaining"),
                // billrun's addition: `credit_memo`, `credit_note` or (with the books)
                // `unapplied_cash`; credit_memo_id is then the note's or payment's id.
                text("kind"),
            ],
            OutputTable::Journal => vec![
                text("entry_id"),
                date("date"),
                text("account"),
                money("debit"),
                money("credit"),
                text("currency"),
                text("source_id"),
                text("memo"),
            ],
            OutputTable::Rejects => vec![
                text("source_file"),
                Field::new("row_number", DataType::UInt64, true),
                text_opt("column"),
                text("reason"),
                text("raw"),
                // billrun's additions: the input table and a stable reason code.
                text("table"),
                text("code"),
            ],
            OutputTable::Unrated => vec![
                text("event_id"),
                text("customer_id"),
                text("product_id"),
                Field::new("ts", timestamp_type(), false),
                Field::new("quantity", quantity_type(), false),
                text("reason"),
                // billrun's addition: a stable reason code.
                text("code"),
            ],
            // billrun's addition: each performance obligation's share of its contract.
            OutputTable::RevenueAllocations => vec![
                text("contract_id"),
                text("order_id"),
                text("line_id"),
                text("customer_id"),
                text("product_id"),
                text("currency"),
                text("method"),
                money("stated_price"),
                Field::new("ssp", quantity_type(), false),
                money("allocated"),
                text("revenue_account"),
                text_opt("deferral_account"),
                // Set on the row of an amount carved to an account by this rule.
                text_opt("carve_rule_id"),
            ],
            OutputTable::RevenueSchedule => vec![
                // The invoice that billed usage recognised as consumed; null otherwise.
                text_opt("invoice_id"),
                text("order_id"),
                text("line_id"),
                text("customer_id"),
                text("product_id"),
                date("recognition_date"),
                money("amount"),
                text("currency"),
                text("status"),
                // billrun's additions.
                text("contract_id"),
                text("method"),
                text("revenue_account"),
                text_opt("deferral_account"),
                text_opt("condition_id"),
            ],
            // billrun's addition: what contracts bill (on order, and on modifications).
            OutputTable::ContractBillings => vec![
                text("billing_id"),
                text("contract_id"),
                text("customer_id"),
                text("currency"),
                date("billed_on"),
                money("amount"),
                money("tax"),
                money("total"),
                text_opt("modification_id"),
            ],
            // billrun's addition: the deferred-revenue roll-forward, up to the run's month.
            OutputTable::DeferredRevenue => vec![
                date("month"),
                text("currency"),
                text("account"),
                money("opening"),
                money("billed"),
                money("recognised"),
                money("closing"),
            ],
            // billrun's addition: revenue by month booked and month recognised.
            OutputTable::RevenueWaterfall => vec![
                date("booked_month"),
                date("recognition_month"),
                text("currency"),
                money("amount"),
                text("status"),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_columns_are_present() {
        let contract: &[(OutputTable, &[&str])] = &[
            (
                OutputTable::RatedUsage,
                &[
                    "event_id",
                    "customer_id",
                    "product_id",
                    "subscription_id",
                    "plan_id",
                    "ts",
                    "quantity",
                    "amount",
                    "currency",
                    "period_start",
                ],
            ),
            (
                OutputTable::InvoiceLines,
                &[
                    "invoice_id",
                    "line_no",
                    "customer_id",
                    "product_id",
                    "subscription_id",
                    "kind",
                    "quantity",
                    "amount",
                    "currency",
                    "period_start",
                    "period_end",
                ],
            ),
            (
                OutputTable::Invoices,
                &[
                    "invoice_id",
                    "customer_id",
                    "currency",
                    "period_start",
                    "period_end",
                    "issue_date",
                    "due_date",
                    "subtotal",
                    "discount",
                    "credits",
                    "tax",
                    "total",
                ],
            ),
            (
                OutputTable::Journal,
                &[
                    "entry_id",
                    "date",
                    "account",
                    "debit",
                    "credit",
                    "currency",
                    "source_id",
                    "memo",
                ],
            ),
            (
                OutputTable::Rejects,
                &["source_file", "row_number", "column", "reason", "raw"],
            ),
            (
                OutputTable::RevenueSchedule,
                &[
                    "invoice_id",
                    "order_id",
                    "line_id",
                    "customer_id",
                    "product_id",
                    "recognition_date",
                    "amount",
                    "currency",
                    "status",
                ],
            ),
            (
                OutputTable::Unrated,
                &[
                    "event_id",
                    "customer_id",
                    "product_id",
                    "ts",
                    "quantity",
                    "reason",
                ],
            ),
        ];
        for (table, columns) in contract {
            let schema = table.schema();
            for c in *columns {
                assert!(
                    schema.field_with_name(c).is_ok(),
                    "{} lacks {c}",
                    table.name()
                );
            }
        }
    }
}
