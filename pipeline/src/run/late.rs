//! Late usage: events of posted periods that were not billed there, rated in their own
//! period after the events billed there and billed as correction invoices.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Date32Array, Decimal128Array, RecordBatch, StringArray, UInt32Array,
};
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType, UInt32Type, UInt64Type};
use billrun_accounting::books::{correction_id, correction_lines};
use billrun_accounting::catalog::{Catalog, Subscription};
use billrun_accounting::invoicing::{
    CreditScope, InvoiceRecord, UsageTotals, build_invoices_with_credit, invoice_id,
};
use billrun_engine::{
    BillingMonth, ComposedInvoice, DateWindow, InvoiceLine, LineKind, billing_window, checked,
    days_since_epoch, decimal_from_i128_scaled, decimal_to_i128_scaled,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, QUANTITY_SCALE};
use chrono::{DateTime, Days};
use rust_decimal::Decimal;

use super::posted_usage::period_of;
use crate::books::{Books, Commit, PostedLine, PostedUsageTotal};
use crate::error::{PipelineError, Result};
use crate::rating::SegmentLookup;

/// What billing the late usage of a run gave.
#[derive(Debug, Default)]
pub(super) struct LateBilling {
    /// The correction invoices, before credit (the run's invoicing applies it), in
    /// (period, customer) order.
    pub corrections: Vec<InvoiceRecord>,
    /// The late events billed, as `rated_usage` rows (with the period they belong to).
    pub rated: Vec<RecordBatch>,
    pub billed: u64,
    /// Late events that cannot be priced in their period, in the scan's unrated columns
    /// (with their reason code); they stay open.
    pub unrated: Vec<RecordBatch>,
    pub open: Vec<(u32, u64)>,
    /// Rated usage added to posted periods, for the books.
    pub totals: Vec<PostedUsageTotal>,
}

/// A late event, priced.
struct LateEvent {
    subscription_idx: u32,
    version_idx: u32,
    plan_effective_from: i32,
    ts: i64,
    event_id: String,
    quantity: Decimal,
    amount: Decimal,
    period_start: i32,
}

/// Rates the late events (`late`, in the scan's unrated columns) in their own periods,
/// continuing from what the books posted there, and bills each changed invoice of
/// those periods as a correction issued with the customer's invoices of this run.
///
/// Each period is priced with the master data its posting run used (the books keep
/// it); the correction's issue and due dates are this run's (`catalog_now`,
/// `windows_now`).
///
/// # Errors
/// Damaged books; overflow.
pub(super) async fn bill_late_usage(
    books: &Books,
    history: &[Commit],
    late: &[RecordBatch],
    catalog_now: &Catalog,
    windows_now: &BTreeMap<String, DateWindow>,
) -> Result<LateBilling> {
    let mut out = LateBilling::default();
    if late.iter().all(|b| b.num_rows() == 0) {
        return Ok(out);
    }

    // Late events by period.
    let mut by_period: BTreeMap<BillingMonth, Vec<(usize, usize)>> = BTreeMap::new();
    for (b, batch) in late.iter().enumerate() {
        let customers = batch.column(1).as_string::<i32>();
        let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            let billing_day = catalog_now
                .customers
                .get(customers.value(i))
                .map_or(1, |c| c.billing_day);
            let day = DateTime::from_timestamp_micros(ts.value(i))
                .map(|t| t.date_naive())
                .ok_or_else(|| PipelineError::Internal("event time out of range".into()))?;
            by_period
                .entry(period_of(day, billing_day))
                .or_default()
                .push((b, i));
        }
    }
    let mut unrated_rows: Vec<(usize, usize, &'static str)> = Vec::new();
    for (period, rows) in by_period {
        let period_name = period.to_string();
        let posting = history
            .iter()
            .find(|c| c.period == period_name)
            .ok_or_else(|| {
                PipelineError::Internal(format!("period {period} is not in the books' history"))
            })?;
        // What the books hold of the period: its posting and the later ones (which
        // may have corrected it). Earlier postings are not read, so the cost of late
        // usage does not grow with the books' history.
        let since: Vec<Commit> = history
            .iter()
            .filter(|c| c.period >= period_name)
            .cloned()
            .collect();
        let posted_totals = books.usage_totals(&since).await?;
        let posted_lines = books.lines(&since).await?;
        let posted_invoices = books.posted_invoices(&since).await?;
        let posted_master = super::posted_master(books, posting, period).await?;
        let catalog = &posted_master.catalog;
        let windows = &posted_master.windows;
        let subscriptions: Vec<&Subscription> = catalog.subscriptions.values().collect();
        let versions = &catalog.plan_versions;
        let lookup = SegmentLookup::new(catalog, windows, billing_window(period, 1)?)?;
        let mut priced: Vec<LateEvent> = Vec::new();
        for (b, i) in rows {
            let batch = &late[b];
            let customer = batch.column(1).as_string::<i32>().value(i);
            let product = batch.column(2).as_string::<i32>().value(i);
            let ts = batch
                .column(3)
                .as_primitive::<TimestampMicrosecondType>()
                .value(i);
            match lookup.place_event(customer, product, ts) {
                Some(Ok((subscription_idx, version_idx, plan_effective_from))) => {
                    let quantity = decimal_from_i128_scaled(
                        batch.column(4).as_primitive::<Decimal128Type>().value(i),
                        QUANTITY_SCALE as u32,
                    )?;
                    let window = windows
                        .get(customer)
                        .copied()
                        .unwrap_or(billing_window(period, 1)?);
                    priced.push(LateEvent {
                        subscription_idx,
                        version_idx,
                        plan_effective_from,
                        ts,
                        event_id: batch.column(0).as_string::<i32>().value(i).to_string(),
                        quantity,
                        amount: Decimal::ZERO,
                        period_start: days_since_epoch(window.start),
                    });
                }
                Some(Err(reason)) => unrated_rows.push((b, i, reason.code())),
                None => unrated_rows.push((b, i, "no_active_subscription")),
            }
        }
        if priced.is_empty() {
            continue;
        }
        // Q continues from the events billed in the period; late events among
        // themselves by (ts, event_id).
        priced.sort_by(|a, b| {
            (a.subscription_idx, a.ts, &a.event_id).cmp(&(b.subscription_idx, b.ts, &b.event_id))
        });
        let mut totals: BTreeMap<(String, String), UsageTotals> = BTreeMap::new();
        for t in posted_totals.iter().filter(|t| t.period == period_name) {
            let sum = totals
                .entry((t.subscription_id.clone(), t.product_id.clone()))
                .or_default();
            sum.events += t.events;
            sum.quantity = checked::add(sum.quantity, t.quantity, "posted quantity")?;
            sum.amount = checked::add(sum.amount, t.amount, "posted amount")?;
        }
        let mut added: BTreeMap<(String, String), UsageTotals> = BTreeMap::new();
        for event in &mut priced {
            let s = subscriptions[event.subscription_idx as usize];
            let key = (s.subscription_id.clone(), s.product_id.clone());
            let sum = totals.entry(key.clone()).or_default();
            let version = &versions[event.version_idx as usize].version;
            let after = checked::add(sum.quantity, event.quantity, "late quantity")?;
            event.amount = checked::sub(
                version.charge(after)?,
                version.charge(sum.quantity)?,
                "late amount",
            )?;
            sum.events += 1;
            sum.quantity = after;
            sum.amount = checked::add(sum.amount, event.amount, "late amount")?;
            let more = added.entry(key).or_default();
            more.events += 1;
            more.quantity = checked::add(more.quantity, event.quantity, "late quantity")?;
            more.amount = checked::add(more.amount, event.amount, "late amount")?;
        }
        for ((subscription_id, product_id), t) in &added {
            out.totals.push(PostedUsageTotal {
                period: period_name.clone(),
                subscription_id: subscription_id.clone(),
                product_id: product_id.clone(),
                events: t.events,
                quantity: t.quantity,
                amount: t.amount,
            });
        }
        // Recompute the invoices of the customers with late events, without credit
        // (credit lines are not recomputed), and correct what changed.
        let affected: BTreeSet<&str> = priced
            .iter()
            .map(|e| {
                subscriptions[e.subscription_idx as usize]
                    .customer_id
                    .as_str()
            })
            .collect();
        let affected_windows: BTreeMap<String, DateWindow> = windows
            .iter()
            .filter(|(c, _)| affected.contains(c.as_str()))
            .map(|(c, w)| (c.clone(), *w))
            .collect();
        let every_memo: BTreeSet<String> = catalog
            .credit_memos
            .iter()
            .map(|m| m.credit_memo_id.clone())
            .collect();
        let recomputed = build_invoices_with_credit(
            catalog,
            period,
            &affected_windows,
            &totals,
            CreditScope {
                carried: &[],
                posted_memos: Some(&every_memo),
                corrections: &[],
            },
        )?;
        // The posted lines of each original (its own and its corrections'), and how
        // many corrections it has, indexed once: a scan per invoice made this grow with
        // invoices × lines.
        let mut original_of: BTreeMap<&str, &str> = BTreeMap::new();
        let mut corrections_of: BTreeMap<&str, u32> = BTreeMap::new();
        for p in &posted_invoices {
            let id = p.receivable.invoice_id.as_str();
            match p.corrects_invoice_id.as_deref() {
                Some(original) => {
                    original_of.insert(id, original);
                    *corrections_of.entry(original).or_default() += 1;
                }
                None => {
                    original_of.insert(id, id);
                }
            }
        }
        let mut lines_of: BTreeMap<&str, Vec<&PostedLine>> = BTreeMap::new();
        for line in &posted_lines {
            if let Some(original) = original_of.get(line.invoice_id.as_str()) {
                lines_of.entry(original).or_default().push(line);
            }
        }
        for invoice in recomputed.invoices {
            let original = invoice_id(period, &invoice.customer_id, &invoice.currency);
            let posted: Vec<InvoiceLine> = lines_of
                .get(original.as_str())
                .into_iter()
                .flatten()
                .map(|l| line_of(l))
                .collect::<Result<_>>()?;
            let lines = correction_lines(&posted, &invoice.composed.lines)?;
            if lines.is_empty() {
                continue;
            }
            let corrections_before = corrections_of.get(original.as_str()).copied().unwrap_or(0);
            let terms = catalog_now
                .customers
                .get(&invoice.customer_id)
                .or_else(|| catalog.customers.get(&invoice.customer_id))
                .map_or(0, |c| c.payment_terms_days);
            let issue_date = windows_now
                .get(&invoice.customer_id)
                .map_or(invoice.issue_date, |w| w.end);
            let due_date = issue_date
                .checked_add_days(Days::new(u64::from(terms)))
                .ok_or_else(|| PipelineError::Internal("due date overflows".into()))?;
            out.corrections.push(InvoiceRecord {
                invoice_id: correction_id(&original, corrections_before),
                customer_id: invoice.customer_id.clone(),
                currency: invoice.currency.clone(),
                window: invoice.window,
                issue_date,
                due_date,
                composed: composed_of(lines)?,
                invoice_number: None,
                corrects_invoice_id: Some(original),
            });
        }
        out.billed += priced.len() as u64;
        out.rated.push(rated_rows(&priced, &subscriptions)?);
    }
    // One batch of unrated rows per late batch, in its row order.
    unrated_rows.sort_unstable();
    let mut by_batch: BTreeMap<usize, (Vec<u32>, Vec<&'static str>)> = BTreeMap::new();
    for (b, i, code) in unrated_rows {
        let (indices, codes) = by_batch.entry(b).or_default();
        indices.push(i as u32);
        codes.push(code);
    }
    for (b, (indices, codes)) in by_batch {
        let batch = &late[b];
        let files = batch.column(6).as_primitive::<UInt32Type>();
        let rows = batch.column(7).as_primitive::<UInt64Type>();
        out.open.extend(
            indices
                .iter()
                .map(|&i| (files.value(i as usize), rows.value(i as usize))),
        );
        let indices = UInt32Array::from(indices);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(8);
        for c in 0..5 {
            columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
        }
        columns.push(Arc::new(StringArray::from(codes)));
        for c in 6..8 {
            columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
        }
        out.unrated
            .push(RecordBatch::try_new(batch.schema(), columns)?);
    }
    Ok(out)
}

/// A posted line as the engine's.
fn line_of(l: &PostedLine) -> Result<InvoiceLine> {
    let kind = match l.kind.as_str() {
        "usage" => LineKind::Usage,
        "recurring" => LineKind::Recurring,
        "minimum" => LineKind::Minimum,
        "discount" => LineKind::Discount,
        "credit" => LineKind::Credit,
        "tax" => LineKind::Tax,
        other => {
            return Err(PipelineError::Internal(format!(
                "posted line of unknown kind `{other}`"
            )));
        }
    };
    Ok(InvoiceLine {
        kind,
        subscription_id: l.subscription_id.clone(),
        product_id: l.product_id.clone(),
        credit_memo_id: None,
        quantity: l.quantity,
        amount: l.amount,
    })
}

/// A correction's totals from its lines (each already rounded).
fn composed_of(lines: Vec<InvoiceLine>) -> Result<ComposedInvoice> {
    let mut subtotal = Decimal::ZERO;
    let mut discount = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    for l in &lines {
        match l.kind {
            LineKind::Usage | LineKind::Recurring | LineKind::Minimum => {
                subtotal = checked::add(subtotal, l.amount, "correction subtotal")?;
            }
            LineKind::Discount => {
                discount = checked::sub(discount, l.amount, "correction discount")?
            }
            LineKind::Tax => tax = checked::add(tax, l.amount, "correction tax")?,
            LineKind::Credit => {}
        }
    }
    let total = checked::add(
        checked::sub(subtotal, discount, "correction")?,
        tax,
        "correction",
    )?;
    Ok(ComposedInvoice {
        lines,
        subtotal,
        discount,
        tax,
        credits: Decimal::ZERO,
        total,
        open_credits: Vec::new(),
    })
}

/// The late events billed, as `rated_usage` rows.
fn rated_rows(priced: &[LateEvent], subscriptions: &[&Subscription]) -> Result<RecordBatch> {
    let schema = OutputTable::RatedUsage.schema();
    let sub = |e: &LateEvent| subscriptions[e.subscription_idx as usize];
    let quantity_column = |values: Vec<i128>| -> Result<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(DECIMAL_PRECISION, QUANTITY_SCALE)?,
        ))
    };
    let ts: Vec<i64> = priced.iter().map(|e| e.ts).collect();
    let ts_field = schema.field_with_name("ts")?.data_type().clone();
    let ts_array = arrow::compute::cast(
        &arrow::array::TimestampMicrosecondArray::from(ts),
        &ts_field,
    )?;
    Ok(RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &e.event_id),
            )),
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &sub(e).customer_id),
            )),
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &sub(e).product_id),
            )),
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &sub(e).subscription_id),
            )),
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &sub(e).plan_id),
            )),
            ts_array,
            quantity_column(
                priced
                    .iter()
                    .map(|e| decimal_to_i128_scaled(e.quantity, QUANTITY_SCALE as u32))
                    .collect::<std::result::Result<_, _>>()?,
            )?,
            quantity_column(
                priced
                    .iter()
                    .map(|e| decimal_to_i128_scaled(e.amount, QUANTITY_SCALE as u32))
                    .collect::<std::result::Result<_, _>>()?,
            )?,
            Arc::new(StringArray::from_iter_values(
                priced.iter().map(|e| &sub(e).currency),
            )),
            Arc::new(Date32Array::from_iter_values(
                priced.iter().map(|e| e.period_start),
            )),
            Arc::new(Date32Array::from_iter_values(
                priced.iter().map(|e| e.plan_effective_from),
            )),
        ],
    )?)
}
