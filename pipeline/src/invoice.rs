//! Stage 5: invoices — one per customer, currency and period.
//!
//! Rated usage arrives here already summed per (subscription, product); flat fees are
//! prorated from the catalog; the engine's `compose_invoice` does the rounding, discount,
//! minimum, tax and credits. This stage only gathers each invoice's inputs and lays the
//! results out as tables.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int32Array, RecordBatch, StringArray};
use billrun_engine::{
    BillingMonth, Charge, ComposedInvoice, CreditMemo, DateWindow, InvoiceDraft, LineKind,
    ProrationSegment, SubscriptionCharges, compose_invoice, decimal_to_i128_scaled, minor_units,
    prorate_amount, prorate_flat_fee,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE, QUANTITY_SCALE};
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use crate::catalog::{Catalog, CreditMemoEntry, Subscription};
use crate::error::{PipelineError, Result};
use crate::rate::days_since_epoch;

/// Rated usage of one (subscription, product) in the period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageTotals {
    pub events: u64,
    pub quantity: Decimal,
    /// Σ of the per-event amounts: the unrounded period charge.
    pub amount: Decimal,
}

/// One invoice with its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceRecord {
    pub invoice_id: String,
    pub customer_id: String,
    pub currency: String,
    pub window: DateWindow,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub composed: ComposedInvoice,
}

/// What is left of a credit memo issued in the period.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCredit {
    pub memo: CreditMemoEntry,
    pub applied: Decimal,
    pub remaining: Decimal,
}

/// The invoicing stage's output.
#[derive(Debug, Default)]
pub struct Invoicing {
    pub invoices: Vec<InvoiceRecord>,
    pub open_credits: Vec<OpenCredit>,
}

/// `INV-<YYYYMM>-<customer_id>-<currency>`: unique per customer, currency and period, and
/// the same on every re-run.
pub fn invoice_id(month: BillingMonth, customer_id: &str, currency: &str) -> String {
    format!(
        "INV-{:04}{:02}-{customer_id}-{currency}",
        month.year, month.month
    )
}

/// Builds every invoice of the period.
///
/// `usage` holds rated totals keyed by (subscription_id, product_id).
///
/// # Errors
/// [`PipelineError::NoTaxRate`] for a customer whose region has no rate on the issue date;
/// engine errors (overflow) otherwise.
pub fn build_invoices(
    catalog: &Catalog,
    month: BillingMonth,
    windows: &BTreeMap<String, DateWindow>,
    usage: &BTreeMap<(String, String), UsageTotals>,
) -> Result<Invoicing> {
    let mut out = Invoicing::default();
    let mut by_customer: BTreeMap<&str, Vec<&Subscription>> = BTreeMap::new();
    for s in catalog.subscriptions.values() {
        by_customer.entry(&s.customer_id).or_default().push(s);
    }
    // Grouped once, in catalog order: a scan of every memo per customer made the stage
    // grow with customers × memos: 3.1 s at 100 000 customers, against 0.9 s grouped.
    let mut memos_by_customer: BTreeMap<&str, Vec<&CreditMemoEntry>> = BTreeMap::new();
    for m in &catalog.credit_memos {
        memos_by_customer.entry(&m.customer_id).or_default().push(m);
    }
    for (customer_id, customer) in &catalog.customers {
        let window = windows[customer_id];
        let issue_date = window.end;
        let due_date = issue_date
            .checked_add_days(Days::new(u64::from(customer.payment_terms_days)))
            .ok_or_else(|| {
                PipelineError::Internal(format!("due date of {customer_id} overflows"))
            })?;
        let mut by_currency: BTreeMap<&str, Vec<&Subscription>> = BTreeMap::new();
        for s in by_customer.get(customer_id.as_str()).into_iter().flatten() {
            if window.intersect(s.start_date, s.end_date).is_some() {
                by_currency.entry(&s.currency).or_default().push(s);
            }
        }
        let memos_in_window: Vec<&CreditMemoEntry> = memos_by_customer
            .get(customer_id.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|m| window.contains(m.issued_on))
            .collect();
        let tax_rate =
            match &customer.tax_region {
                None => Decimal::ZERO,
                Some(region) => catalog.tax_rate(region, issue_date).ok_or_else(|| {
                    PipelineError::NoTaxRate {
                        customer_id: customer_id.clone(),
                        tax_region: region.clone(),
                        date: issue_date,
                    }
                })?,
            };
        for (currency, subscriptions) in &by_currency {
            let minor = minor_units(currency).ok_or_else(|| {
                PipelineError::Internal(format!(
                    "currency {currency} passed validation but is unknown"
                ))
            })?;
            let memos: Vec<&CreditMemoEntry> = memos_in_window
                .iter()
                .copied()
                .filter(|m| m.currency == *currency)
                .collect();
            let draft = InvoiceDraft {
                minor_units: minor,
                subscriptions: subscriptions
                    .iter()
                    .map(|s| subscription_charges(catalog, s, window, usage))
                    .collect::<Result<_>>()?,
                tax_rate,
                credits: memos
                    .iter()
                    .map(|m| CreditMemo {
                        credit_memo_id: m.credit_memo_id.clone(),
                        amount: m.amount,
                    })
                    .collect(),
            };
            let composed = compose_invoice(&draft)?;
            for memo in &memos {
                let remaining = composed
                    .open_credits
                    .iter()
                    .find(|c| c.credit_memo_id == memo.credit_memo_id)
                    .map_or(Decimal::ZERO, |c| c.amount);
                if remaining > Decimal::ZERO {
                    out.open_credits.push(OpenCredit {
                        memo: (*memo).clone(),
                        applied: memo.amount - remaining,
                        remaining,
                    });
                }
            }
            out.invoices.push(InvoiceRecord {
                invoice_id: invoice_id(month, customer_id, currency),
                customer_id: customer_id.clone(),
                currency: (*currency).to_string(),
                window,
                issue_date,
                due_date,
                composed,
            });
        }
        // A memo in a currency the customer is not invoiced in stays open, whole.
        for memo in memos_in_window {
            if !by_currency.contains_key(memo.currency.as_str()) {
                out.open_credits.push(OpenCredit {
                    memo: memo.clone(),
                    applied: Decimal::ZERO,
                    remaining: memo.amount,
                });
            }
        }
    }
    out.open_credits
        .sort_by(|a, b| a.memo.credit_memo_id.cmp(&b.memo.credit_memo_id));
    Ok(out)
}

fn subscription_charges(
    catalog: &Catalog,
    subscription: &Subscription,
    window: DateWindow,
    usage: &BTreeMap<(String, String), UsageTotals>,
) -> Result<SubscriptionCharges> {
    let active = window
        .intersect(subscription.start_date, subscription.end_date)
        .ok_or_else(|| PipelineError::Internal("inactive subscription reached invoicing".into()))?;
    let mut charges = Vec::new();
    let key_start = (subscription.subscription_id.clone(), String::new());
    for ((sub_id, product_id), totals) in usage.range(key_start..) {
        if sub_id != &subscription.subscription_id {
            break;
        }
        charges.push(Charge {
            kind: LineKind::Usage,
            product_id: product_id.clone(),
            quantity: totals.quantity,
            amount: totals.amount,
        });
    }
    let segments = flat_fee_segments(catalog, subscription, active);
    if !segments.is_empty() {
        charges.push(Charge {
            kind: LineKind::Recurring,
            product_id: subscription.product_id.clone(),
            quantity: subscription.seats,
            amount: prorate_flat_fee(&segments, subscription.seats, window.days())?,
        });
    }
    let min_commitment = subscription
        .min_commitment
        .map(|m| prorate_amount(m, active.days(), window.days()))
        .transpose()?;
    Ok(SubscriptionCharges {
        subscription_id: subscription.subscription_id.clone(),
        product_id: subscription.product_id.clone(),
        charges,
        discount_percent: subscription.discount_percent,
        min_commitment,
    })
}

/// Runs of active days priced by the same flat plan version.
fn flat_fee_segments(
    catalog: &Catalog,
    subscription: &Subscription,
    active: DateWindow,
) -> Vec<ProrationSegment> {
    let mut segments: Vec<(usize, ProrationSegment)> = Vec::new();
    for day in active.start.iter_days().take_while(|d| *d < active.end) {
        let Some((idx, version)) = catalog.version_on(&subscription.plan_id, day) else {
            continue;
        };
        if version.version.model().is_usage() {
            continue;
        }
        match segments.last_mut() {
            Some((last, segment)) if *last == idx => segment.days += 1,
            _ => segments.push((
                idx,
                ProrationSegment {
                    days: 1,
                    unit_price: version.version.tiers()[0].unit_price,
                },
            )),
        }
    }
    segments.into_iter().map(|(_, s)| s).collect()
}

fn scaled(d: Decimal, scale: i8) -> Result<i128> {
    Ok(decimal_to_i128_scaled(d, scale as u32)?)
}

fn decimal_column(values: Vec<Option<i128>>, scale: i8) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(DECIMAL_PRECISION, scale)?,
    ))
}

impl Invoicing {
    /// The `invoices` table.
    ///
    /// # Errors
    /// Amounts that do not fit Decimal128(38, 4) (not possible for validated inputs).
    pub fn invoices_batch(&self) -> Result<RecordBatch> {
        let inv = &self.invoices;
        let money = |f: &dyn Fn(&ComposedInvoice) -> Decimal| -> Result<ArrayRef> {
            decimal_column(
                inv.iter()
                    .map(|i| scaled(f(&i.composed), MONEY_SCALE).map(Some))
                    .collect::<Result<_>>()?,
                MONEY_SCALE,
            )
        };
        let date = |f: &dyn Fn(&InvoiceRecord) -> NaiveDate| -> ArrayRef {
            Arc::new(Date32Array::from_iter_values(
                inv.iter().map(|i| days_since_epoch(f(i))),
            ))
        };
        Ok(RecordBatch::try_new(
            OutputTable::Invoices.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    inv.iter().map(|i| &i.invoice_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    inv.iter().map(|i| &i.customer_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    inv.iter().map(|i| &i.currency),
                )),
                date(&|i| i.window.start),
                date(&|i| i.window.last_day()),
                date(&|i| i.issue_date),
                date(&|i| i.due_date),
                money(&|c| c.subtotal)?,
                money(&|c| c.discount)?,
                money(&|c| c.credits)?,
                money(&|c| c.tax)?,
                money(&|c| c.total)?,
            ],
        )?)
    }

    /// The `invoice_lines` table.
    ///
    /// # Errors
    /// As [`Invoicing::invoices_batch`].
    pub fn lines_batch(&self) -> Result<RecordBatch> {
        let rows: Vec<(&InvoiceRecord, usize, &billrun_engine::InvoiceLine)> = self
            .invoices
            .iter()
            .flat_map(|i| {
                i.composed
                    .lines
                    .iter()
                    .enumerate()
                    .map(move |(n, l)| (i, n + 1, l))
            })
            .collect();
        Ok(RecordBatch::try_new(
            OutputTable::InvoiceLines.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(i, _, _)| &i.invoice_id),
                )),
                Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|(_, n, _)| *n as i32),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(i, _, _)| &i.customer_id),
                )),
                Arc::new(StringArray::from_iter(
                    rows.iter().map(|(_, _, l)| l.product_id.as_deref()),
                )),
                Arc::new(StringArray::from_iter(
                    rows.iter().map(|(_, _, l)| l.subscription_id.as_deref()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, _, l)| l.kind.as_str()),
                )),
                decimal_column(
                    rows.iter()
                        .map(|(_, _, l)| l.quantity.map(|q| scaled(q, QUANTITY_SCALE)).transpose())
                        .collect::<Result<_>>()?,
                    QUANTITY_SCALE,
                )?,
                decimal_column(
                    rows.iter()
                        .map(|(_, _, l)| scaled(l.amount, MONEY_SCALE).map(Some))
                        .collect::<Result<_>>()?,
                    MONEY_SCALE,
                )?,
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(i, _, _)| &i.currency),
                )),
                Arc::new(Date32Array::from_iter_values(
                    rows.iter()
                        .map(|(i, _, _)| days_since_epoch(i.window.start)),
                )),
                Arc::new(Date32Array::from_iter_values(
                    rows.iter()
                        .map(|(i, _, _)| days_since_epoch(i.window.last_day())),
                )),
                Arc::new(StringArray::from_iter(
                    rows.iter().map(|(_, _, l)| l.credit_memo_id.as_deref()),
                )),
            ],
        )?)
    }

    /// The `open_credits` table.
    ///
    /// # Errors
    /// As [`Invoicing::invoices_batch`].
    pub fn open_credits_batch(&self) -> Result<RecordBatch> {
        let oc = &self.open_credits;
        let money = |f: &dyn Fn(&OpenCredit) -> Decimal| -> Result<ArrayRef> {
            decimal_column(
                oc.iter()
                    .map(|c| scaled(f(c), MONEY_SCALE).map(Some))
                    .collect::<Result<_>>()?,
                MONEY_SCALE,
            )
        };
        Ok(RecordBatch::try_new(
            OutputTable::OpenCredits.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.credit_memo_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.customer_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.currency),
                )),
                Arc::new(Date32Array::from_iter_values(
                    oc.iter().map(|c| days_since_epoch(c.memo.issued_on)),
                )),
                money(&|c| c.memo.amount)?,
                money(&|c| c.applied)?,
                money(&|c| c.remaining)?,
            ],
        )?)
    }
}
