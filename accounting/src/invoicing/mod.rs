//! Invoices — one per customer, currency and period.
//!
//! Rated usage arrives here already summed per (subscription, product); flat fees are
//! prorated from the catalog; the engine's `compose_invoice` does the rounding, discount,
//! minimum, tax and credits. This stage only gathers each invoice's inputs and lays the
//! results out as tables.

mod charges;
mod tables;

use std::collections::{BTreeMap, BTreeSet};

use billrun_engine::{
    BillingMonth, ComposedInvoice, CreditMemo, DateWindow, InvoiceDraft, apply_credit, checked,
    compose_invoice,
};
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

use crate::books::{Credit, SourceKind};
use crate::catalog::{Catalog, CreditMemoEntry, Customer, Subscription};
use crate::error::{AccountingError, Result, minor_units_of};

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
    /// The gapless number the books gave it when it was posted (`None` without books,
    /// and in a preview).
    pub invoice_number: Option<u64>,
    /// The invoice this one corrects (late usage), if it is a correction.
    pub corrects_invoice_id: Option<String>,
}

/// What is left of a credit after the run's invoices used theirs: a credit memo, or
/// (with the books) a credit carried from earlier periods.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCredit {
    /// The credit as issued (for a credit note, its id and the note's amount).
    pub memo: CreditMemoEntry,
    pub kind: SourceKind,
    /// Used so far, this run's invoices included.
    pub applied: Decimal,
    pub remaining: Decimal,
}

impl OpenCredit {
    /// A credit the books carry, as `open_credits` lists it.
    pub fn from_credit(credit: &Credit) -> Self {
        Self {
            memo: CreditMemoEntry {
                credit_memo_id: credit.credit_id.clone(),
                customer_id: credit.customer_id.clone(),
                currency: credit.currency.clone(),
                amount: credit.amount,
                issued_on: credit.issued_on,
            },
            kind: credit.kind,
            applied: credit.amount - credit.remaining,
            remaining: credit.remaining,
        }
    }

    /// The credit as the books carry it.
    pub fn to_credit(&self) -> Credit {
        Credit {
            credit_id: self.memo.credit_memo_id.clone(),
            kind: self.kind,
            customer_id: self.memo.customer_id.clone(),
            currency: self.memo.currency.clone(),
            issued_on: self.memo.issued_on,
            amount: self.memo.amount,
            remaining: self.remaining,
        }
    }
}

/// Which credit a run's invoices may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreditScope<'a> {
    /// Customer credit the books carry from earlier periods (credit memos' and credit
    /// notes' rests; unapplied cash is applied as cash, later, by the posting).
    pub carried: &'a [Credit],
    /// With the books: the credit memos already posted. Every other memo issued before
    /// the customer's window ends is used by this run (a memo that arrived late is not
    /// lost). Without (`None`), a run stands alone and uses the memos issued inside the
    /// window, as the contract's invoices section says.
    pub posted_memos: Option<&'a BTreeSet<String>>,
    /// With the books: this run's correction invoices of earlier periods, before credit.
    /// They are issued with the customer's invoices and use credit first (they are
    /// posted first); a negative one (a credit note) is credit for what follows.
    pub corrections: &'a [InvoiceRecord],
}

impl CreditScope<'_> {
    /// Whether this run uses `memo` for a customer billed over `window`.
    pub fn takes_memo(&self, memo: &CreditMemoEntry, window: DateWindow) -> bool {
        match self.posted_memos {
            None => window.contains(memo.issued_on),
            Some(posted) => memo.issued_on < window.end && !posted.contains(&memo.credit_memo_id),
        }
    }
}

/// The invoicing stage's output.
#[derive(Debug, Default)]
pub struct Invoicing {
    pub invoices: Vec<InvoiceRecord>,
    pub open_credits: Vec<OpenCredit>,
}

impl Invoicing {
    /// Σ invoice totals per currency (the manifest's `billed`), added with checked
    /// arithmetic.
    ///
    /// # Errors
    /// Overflow.
    pub fn billed_by_currency(&self) -> Result<BTreeMap<String, Decimal>> {
        let mut billed: BTreeMap<String, Decimal> = BTreeMap::new();
        for invoice in &self.invoices {
            let sum = billed.entry(invoice.currency.clone()).or_default();
            *sum = billrun_engine::checked::add(*sum, invoice.composed.total, "billed total")?;
        }
        Ok(billed)
    }
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
/// [`AccountingError::NoTaxRate`] for a customer whose region has no rate on the issue date;
/// engine errors (overflow) otherwise.
pub fn build_invoices(
    catalog: &Catalog,
    month: BillingMonth,
    windows: &BTreeMap<String, DateWindow>,
    usage: &BTreeMap<(String, String), UsageTotals>,
) -> Result<Invoicing> {
    build_invoices_with_credit(catalog, month, windows, usage, CreditScope::default())
}

/// [`build_invoices`] with the credit of `scope`: carried credit and memos are used
/// together, oldest first by (issued_on, id).
///
/// # Errors
/// As [`build_invoices`].
pub fn build_invoices_with_credit(
    catalog: &Catalog,
    month: BillingMonth,
    windows: &BTreeMap<String, DateWindow>,
    usage: &BTreeMap<(String, String), UsageTotals>,
    scope: CreditScope<'_>,
) -> Result<Invoicing> {
    let mut out = Invoicing::default();
    let mut carried_by_customer: BTreeMap<&str, Vec<(CreditMemoEntry, SourceKind)>> =
        BTreeMap::new();
    for c in scope.carried.iter().filter(|c| c.remaining > Decimal::ZERO) {
        carried_by_customer
            .entry(c.customer_id.as_str())
            .or_default()
            .push((
                CreditMemoEntry {
                    credit_memo_id: c.credit_id.clone(),
                    customer_id: c.customer_id.clone(),
                    currency: c.currency.clone(),
                    amount: c.amount,
                    issued_on: c.issued_on,
                },
                c.kind,
            ));
    }
    // What each carried credit had left when the run started (its `remaining`).
    let carried_left: BTreeMap<&str, Decimal> = scope
        .carried
        .iter()
        .map(|c| (c.credit_id.as_str(), c.remaining))
        .collect();
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
    let mut corrections_by_customer: BTreeMap<&str, Vec<&InvoiceRecord>> = BTreeMap::new();
    for c in scope.corrections {
        corrections_by_customer
            .entry(c.customer_id.as_str())
            .or_default()
            .push(c);
    }
    for list in corrections_by_customer.values_mut() {
        list.sort_by(|a, b| a.invoice_id.as_bytes().cmp(b.invoice_id.as_bytes()));
    }
    // Each customer's invoices depend on its own subscriptions, usage and credit only:
    // billed in parallel, gathered in customer order.
    let customers: &[Customer] = catalog.customers.as_slice();
    let inputs = CustomerInputs {
        catalog,
        month,
        windows,
        usage,
        scope,
        by_customer: &by_customer,
        memos_by_customer: &memos_by_customer,
        carried_by_customer: &carried_by_customer,
        corrections_by_customer: &corrections_by_customer,
        carried_left: &carried_left,
    };
    // A customer has one invoice per currency it is billed in: nearly always one.
    out.invoices.reserve(customers.len());
    crate::in_order::map_chunks_in_order(
        customers,
        256,
        64,
        |block| {
            block
                .iter()
                .map(|customer| inputs.invoice_customer(&customer.customer_id, customer))
                .collect::<Result<Vec<_>>>()
        },
        |block| {
            for customer in block.into_iter().flatten() {
                out.invoices.extend(customer.invoices);
                out.open_credits.extend(customer.open_credits);
            }
            Ok(())
        },
    )?;
    // Whose credit and corrections were looked at: every customer with a window.
    let billed_customer = |id: &str| catalog.customers.contains_key(id) && windows.contains_key(id);
    carried_by_customer.retain(|id, _| !billed_customer(id));
    corrections_by_customer.retain(|id, _| !billed_customer(id));
    if let Some(id) = corrections_by_customer.values().flatten().next() {
        return Err(AccountingError::Internal(format!(
            "correction {} is for a customer this run does not bill",
            id.invoice_id
        )));
    }
    // Carried credit of customers this run does not invoice at all stays as it was.
    for (memo, kind) in carried_by_customer.into_values().flatten() {
        out.open_credits
            .push(untouched(memo, kind, left_of_credit(&carried_left))?);
    }
    out.open_credits
        .sort_by(|a, b| a.memo.credit_memo_id.cmp(&b.memo.credit_memo_id));
    Ok(out)
}

/// One customer's invoices and the credit left open after them.
#[derive(Debug, Default)]
struct CustomerInvoicing {
    invoices: Vec<InvoiceRecord>,
    open_credits: Vec<OpenCredit>,
}

/// What billing one customer reads, shared by every customer's task.
struct CustomerInputs<'a> {
    catalog: &'a Catalog,
    month: BillingMonth,
    windows: &'a BTreeMap<String, DateWindow>,
    usage: &'a BTreeMap<(String, String), UsageTotals>,
    scope: CreditScope<'a>,
    by_customer: &'a BTreeMap<&'a str, Vec<&'a Subscription>>,
    memos_by_customer: &'a BTreeMap<&'a str, Vec<&'a CreditMemoEntry>>,
    carried_by_customer: &'a BTreeMap<&'a str, Vec<(CreditMemoEntry, SourceKind)>>,
    corrections_by_customer: &'a BTreeMap<&'a str, Vec<&'a InvoiceRecord>>,
    carried_left: &'a BTreeMap<&'a str, Decimal>,
}

impl CustomerInputs<'_> {
    /// The invoices of `customer` (one per currency, after its corrections), or `None`
    /// when it has no window in this call.
    fn invoice_customer(
        &self,
        customer_id: &String,
        customer: &Customer,
    ) -> Result<Option<CustomerInvoicing>> {
        let CustomerInputs {
            catalog,
            month,
            windows,
            usage,
            scope,
            by_customer,
            memos_by_customer,
            carried_by_customer,
            corrections_by_customer,
            carried_left,
        } = *self;
        // Customers without a window are not billed by this call (a correction's
        // recomputation bills only the customers with late usage).
        let Some(&window) = windows.get(customer_id) else {
            return Ok(None);
        };
        let mut out = CustomerInvoicing::default();
        let issue_date = window.end;
        let due_date = issue_date
            .checked_add_days(Days::new(u64::from(customer.payment_terms_days)))
            .ok_or_else(|| {
                AccountingError::Internal(format!("due date of {customer_id} overflows"))
            })?;
        let mut by_currency: BTreeMap<&str, Vec<&Subscription>> = BTreeMap::new();
        for s in by_customer.get(customer_id.as_str()).into_iter().flatten() {
            if window.intersect(s.start_date, s.end_date).is_some() {
                by_currency.entry(&s.currency).or_default().push(s);
            }
        }
        // Carried credit and the memos this run takes, oldest first by (issued_on, id).
        let mut available: Vec<(CreditMemoEntry, SourceKind)> = carried_by_customer
            .get(customer_id.as_str())
            .cloned()
            .unwrap_or_default();
        available.extend(
            memos_by_customer
                .get(customer_id.as_str())
                .into_iter()
                .flatten()
                .filter(|m| scope.takes_memo(m, window))
                .map(|m| ((*m).clone(), SourceKind::CreditMemo)),
        );
        available.sort_by(|a, b| {
            (a.0.issued_on, a.0.credit_memo_id.as_bytes())
                .cmp(&(b.0.issued_on, b.0.credit_memo_id.as_bytes()))
        });
        let left_of = left_of_credit(carried_left);
        // What each credit has left as the customer's invoices use it, in posting order.
        let mut left: BTreeMap<String, Decimal> = available
            .iter()
            .map(|(m, _)| (m.credit_memo_id.clone(), left_of(m)))
            .collect();
        let tax_rate = match &customer.tax_region {
            None => Decimal::ZERO,
            Some(region) => {
                if let Some(refused) = catalog.refused_tax_rate(region, issue_date) {
                    return Err(AccountingError::RefusedTaxRate {
                        customer_id: customer_id.clone(),
                        tax_region: region.clone(),
                        date: issue_date,
                        why: refused.why.clone(),
                    });
                }
                catalog
                    .tax_rate(region, issue_date)
                    .ok_or_else(|| AccountingError::NoTaxRate {
                        customer_id: customer_id.clone(),
                        tax_region: region.clone(),
                        date: issue_date,
                    })?
            }
        };
        let corrections = corrections_by_customer
            .get(customer_id.as_str())
            .cloned()
            .unwrap_or_default();
        let mut currencies: BTreeSet<&str> = by_currency.keys().copied().collect();
        currencies.extend(corrections.iter().map(|c| c.currency.as_str()));
        for currency in currencies {
            let minor =
                minor_units_of(currency, || format!("invoice of customer `{customer_id}`"))?;
            let credit_of = |available: &[(CreditMemoEntry, SourceKind)],
                             left: &BTreeMap<String, Decimal>| {
                available
                    .iter()
                    .filter(|(m, _)| m.currency == currency)
                    .map(|(m, _)| CreditMemo {
                        credit_memo_id: m.credit_memo_id.clone(),
                        amount: left[&m.credit_memo_id],
                    })
                    .collect::<Vec<_>>()
            };
            let used = |left: &mut BTreeMap<String, Decimal>,
                        offered: &[CreditMemo],
                        open: &[CreditMemo]| {
                for memo in offered {
                    let rest = open
                        .iter()
                        .find(|c| c.credit_memo_id == memo.credit_memo_id)
                        .map_or(Decimal::ZERO, |c| c.amount);
                    left.insert(memo.credit_memo_id.clone(), rest);
                }
            };
            // Corrections of earlier periods are posted before the run's invoice (same
            // issue date, smaller id): each uses the credit there is when it is posted,
            // and a credit note is credit from then on.
            for correction in corrections.iter().filter(|c| c.currency == currency) {
                let mut correction = (*correction).clone();
                if correction.composed.total.is_sign_negative() {
                    let amount = -correction.composed.total;
                    available.push((
                        CreditMemoEntry {
                            credit_memo_id: correction.invoice_id.clone(),
                            customer_id: customer_id.clone(),
                            currency: currency.to_string(),
                            amount,
                            issued_on: correction.issue_date,
                        },
                        SourceKind::CreditNote,
                    ));
                    left.insert(correction.invoice_id.clone(), amount);
                } else {
                    let offered = credit_of(&available, &left);
                    let open = apply_credit(&mut correction.composed, &offered, minor)?;
                    used(&mut left, &offered, &open);
                }
                out.invoices.push(correction);
            }
            let Some(subscriptions) = by_currency.get(currency) else {
                continue;
            };
            let offered = credit_of(&available, &left);
            let draft = InvoiceDraft {
                minor_units: minor,
                subscriptions: subscriptions
                    .iter()
                    .map(|s| charges::subscription_charges(catalog, s, window, usage))
                    .collect::<Result<_>>()?,
                tax_rate,
                credits: offered.clone(),
            };
            let composed = compose_invoice(&draft)?;
            used(&mut left, &offered, &composed.open_credits);
            out.invoices.push(InvoiceRecord {
                invoice_id: invoice_id(month, customer_id, currency),
                customer_id: customer_id.clone(),
                currency: currency.to_string(),
                window,
                issue_date,
                due_date,
                composed,
                invoice_number: None,
                corrects_invoice_id: None,
            });
        }
        // Every credit with something left stays open; credit in a currency the
        // customer is not invoiced in stays open whole.
        for (memo, kind) in available {
            let remaining = left[&memo.credit_memo_id];
            let touched = by_currency.contains_key(memo.currency.as_str())
                || corrections.iter().any(|c| c.currency == memo.currency);
            if remaining > Decimal::ZERO || !touched {
                out.open_credits.push(OpenCredit {
                    applied: checked::sub(memo.amount, remaining, "credit memo applied")?,
                    kind,
                    remaining,
                    memo,
                });
            }
        }
        Ok(Some(out))
    }
}

/// What a credit had left when the run started: a carried credit's `remaining`, a new
/// memo's amount.
fn left_of_credit<'a>(
    carried_left: &'a BTreeMap<&str, Decimal>,
) -> impl Fn(&CreditMemoEntry) -> Decimal + 'a {
    move |m| {
        carried_left
            .get(m.credit_memo_id.as_str())
            .copied()
            .unwrap_or(m.amount)
    }
}

/// A credit no invoice of the run used.
fn untouched(
    memo: CreditMemoEntry,
    kind: SourceKind,
    left: impl Fn(&CreditMemoEntry) -> Decimal,
) -> Result<OpenCredit> {
    let remaining = left(&memo);
    Ok(OpenCredit {
        applied: checked::sub(memo.amount, remaining, "credit applied")?,
        kind,
        remaining,
        memo,
    })
}
