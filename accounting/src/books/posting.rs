//! Posting a run into the books: payments applied, unapplied cash carried, invoice
//! numbers assigned, and the receivables as of the run's as_of.
//!
//! [`BooksState`] is what the books hold when a run starts; [`post_run`] returns what
//! the run posts and the state the next run starts from. Money is conserved: every
//! payment's amount is applied to invoices or left as unapplied cash, to the cent.

use std::collections::{BTreeMap, BTreeSet};

use billrun_engine::{LineKind, checked};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::cash::{Application, Credit, PaymentRejected, SourceKind, apply_cash, apply_payment};
use super::corrections::number_invoices;
use super::receivables::Receivable;
use crate::error::Result;
use crate::invoicing::{InvoiceRecord, Invoicing};
use crate::ledger::Payment;

/// What the books hold when a run starts (the state the last posting left).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BooksState {
    /// Every posted invoice with something open (total − paid − credited ≠ 0), with its
    /// number.
    pub open_receivables: Vec<(Receivable, u64)>,
    /// Customer credit with something left: credit memos' and credit notes' rests, and
    /// unapplied cash.
    pub credits: Vec<Credit>,
    /// Every credit memo posted (used or carried).
    pub posted_memos: BTreeSet<String>,
    /// The number the next posted invoice gets (1 in new books).
    pub next_invoice_number: u64,
    /// Every usage file a posted run read, by its content's SHA-256: its rows a run
    /// billed or rejected are settled, never billed or rejected again; its open rows
    /// (left unrated, or outside the period) are tried again by later runs.
    pub usage_files: BTreeMap<String, SettledFile>,
    /// Every payments file a posted run read, the same way: its rows posted, skipped as
    /// posted already, or refused are settled; its open rows are payments dated on or
    /// after that run's as_of, left for a later run.
    #[serde(default)]
    pub payment_files: BTreeMap<String, SettledFile>,
    /// The SHA-256 of every usage and payments file the last posting read, by the
    /// file's name in the dataset, with the identity the store gave it (size, ETag,
    /// modification time): a file read again with the same identity is not read to be
    /// hashed, and when the books settled all its rows, not read at all.
    #[serde(default)]
    pub file_digests: BTreeMap<String, FileDigest>,
}

/// A file's SHA-256, known by its identity in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    /// Size, ETag and modification time as the store listed them (an ETag changes with
    /// the content: a local file's with its inode, size and modification time, an S3
    /// object's with its bytes).
    pub identity: String,
    pub sha256: String,
}

/// A usage file as the books know it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SettledFile {
    /// Data rows of the file.
    pub rows: u64,
    /// The row numbers not settled yet, ascending.
    pub open_rows: Vec<u64>,
    /// Of the open rows, those a posting left unrated in a posted period: the period
    /// and why. The period's master data is the posted run's and does not change, so a
    /// later run gives them the same answer without pricing them again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tried: BTreeMap<u64, TriedRow>,
}

/// An open row a posting left unrated in a posted period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TriedRow {
    /// The billing period it falls in (`2026-10`).
    pub period: String,
    /// The unrated reason code.
    pub code: String,
}

impl BooksState {
    /// The state of books nothing was posted to.
    pub fn empty() -> Self {
        Self {
            next_invoice_number: 1,
            ..Self::default()
        }
    }

    /// The credit invoices may use (credit memos' and notes' rests, not unapplied
    /// cash, which is applied as cash after them).
    pub fn customer_credit(&self) -> Vec<Credit> {
        self.credits
            .iter()
            .filter(|c| c.kind != SourceKind::UnappliedCash)
            .cloned()
            .collect()
    }
}

/// A payment row the posting refused; its row is rejected with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRefusal {
    pub payment_id: String,
    /// The column at fault.
    pub column: &'static str,
    pub reason: String,
}

/// What a run posts.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// `receivables`: the run's invoices (in posting order), then every earlier one
    /// that had something open when the run started (by number), with their numbers.
    pub receivables: Vec<(Receivable, u64)>,
    /// `applications`, in the order money moved.
    pub applications: Vec<Application>,
    /// The payments the run posts (not yet in the books, paid before as_of).
    pub payments: Vec<Payment>,
    /// Payments seen again with the same fields: skipped.
    pub retried_payments: u64,
    pub refused_payments: Vec<PaymentRefusal>,
    /// Credit with something left after the run, unapplied cash included.
    pub credits: Vec<Credit>,
    /// The state the next run starts from.
    pub next: BooksState,
    /// Invoices a preview shows without their number (it posts nothing).
    pub unnumbered: BTreeSet<String>,
}

impl Posted {
    /// The number given to each of the run's invoices.
    pub fn numbers(&self) -> BTreeMap<&str, u64> {
        self.receivables
            .iter()
            .map(|(r, n)| (r.invoice_id.as_str(), *n))
            .collect()
    }
}

/// The fields of `a` that differ from `b`'s, for a refused payment's reason.
fn differing_fields(a: &Payment, b: &Payment) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.customer_id != b.customer_id {
        fields.push("customer_id");
    }
    if a.currency != b.currency {
        fields.push("currency");
    }
    if a.amount != b.amount {
        fields.push("amount");
    }
    if a.paid_on != b.paid_on {
        fields.push("paid_on");
    }
    if a.invoice_id != b.invoice_id {
        fields.push("invoice_id");
    }
    if a.method != b.method {
        fields.push("method");
    }
    fields
}

/// A run's invoice as a receivable: nothing paid yet; a credit note (a negative total)
/// is credited by its own total.
pub fn receivable_of(invoice: &InvoiceRecord) -> Receivable {
    let total = invoice.composed.total;
    Receivable {
        invoice_id: invoice.invoice_id.clone(),
        customer_id: invoice.customer_id.clone(),
        currency: invoice.currency.clone(),
        issue_date: invoice.issue_date,
        due_date: invoice.due_date,
        total,
        paid: Decimal::ZERO,
        credited: if total.is_sign_negative() {
            total
        } else {
            Decimal::ZERO
        },
    }
}

/// Posts a run on top of `state`: the payments not yet in the books and paid before
/// `as_of` are applied to the books' open invoices (before the run's own), their rests
/// and earlier unapplied cash to the run's invoices by (due_date, invoice_id), and the
/// run's invoices are numbered. `invoicing` has already used the customer credit of
/// [`BooksState::customer_credit`]; its `open_credits` are the credit left.
///
/// A payment naming an invoice of the run is applied to it first, at the run's issue
/// date; a payment naming an invoice the customer does not have in its currency, or a
/// posted payment id with other fields, is refused. `posted_before` holds the payments
/// earlier postings posted under ids `payments` uses (the books keep every posted
/// payment outside the state, so that the state does not grow with them): one with the
/// same fields is a retry and skipped.
///
/// # Errors
/// Overflow.
pub fn post_run(
    state: &BooksState,
    invoicing: &Invoicing,
    payments: &[Payment],
    posted_before: &BTreeMap<String, Payment>,
    as_of: NaiveDate,
) -> Result<Posted> {
    let mut earlier = ByCustomer::new(state.open_receivables.iter().map(|(r, _)| r.clone()));
    let numbers_before: BTreeMap<String, u64> = state
        .open_receivables
        .iter()
        .map(|(r, n)| (r.invoice_id.clone(), *n))
        .collect();
    let mut run = ByCustomer::new(invoicing.invoices.iter().map(receivable_of));
    let mut applications = credit_applications(state, invoicing);
    let mut refused = Vec::new();
    let mut posted = Vec::new();
    let mut retried = 0u64;
    // Unapplied cash: the books', then each new payment's rest, in (date, id) order.
    let mut cash: Vec<Credit> = state
        .credits
        .iter()
        .filter(|c| c.kind == SourceKind::UnappliedCash)
        .cloned()
        .collect();

    let mut new_payments: Vec<&Payment> = payments.iter().filter(|p| p.paid_on < as_of).collect();
    new_payments.sort_by(|a, b| {
        (a.paid_on, a.payment_id.as_bytes()).cmp(&(b.paid_on, b.payment_id.as_bytes()))
    });
    for payment in new_payments {
        if let Some(before) = posted_before.get(&payment.payment_id) {
            let differ = differing_fields(before, payment);
            if differ.is_empty() {
                retried += 1;
            } else {
                refused.push(PaymentRefusal {
                    payment_id: payment.payment_id.clone(),
                    // The key seen again, as for a payment_id twice in one run; the
                    // reason names the fields that differ.
                    column: "payment_id",
                    reason: format!(
                        "payment_id `{}` is already posted with other {}: a payment id is posted once; send a new id for a new payment",
                        payment.payment_id,
                        differ.join(", ")
                    ),
                });
            }
            continue;
        }
        let mut payment_rest = payment.clone();
        // Named an invoice of this run: applied to it first, on its issue date.
        if let Some(named) = &payment.invoice_id
            && let Some(invoice) = run
                .of(&payment.customer_id, &payment.currency)
                .iter_mut()
                .find(|r| &r.invoice_id == named)
        {
            let applied_on = invoice.issue_date.max(payment.paid_on);
            let (applied, rest) = apply_cash(
                std::slice::from_mut(invoice),
                &payment.payment_id,
                SourceKind::Payment,
                &payment.customer_id,
                &payment.currency,
                payment.amount,
                applied_on,
            )?;
            applications.extend(paid_on(applied, payment.paid_on));
            payment_rest.amount = rest;
            payment_rest.invoice_id = None;
        }
        match apply_payment(
            &payment_rest,
            earlier.of(&payment.customer_id, &payment.currency),
        )? {
            Err(PaymentRejected::UnknownInvoice { .. }) => {
                let error = PaymentRejected::UnknownInvoice {
                    payment_id: payment.payment_id.clone(),
                    invoice_id: payment.invoice_id.clone().unwrap_or_default(),
                    customer_id: payment.customer_id.clone(),
                    currency: payment.currency.clone(),
                };
                refused.push(PaymentRefusal {
                    payment_id: payment.payment_id.clone(),
                    column: "invoice_id",
                    reason: error.to_string(),
                });
            }
            Ok((applied, rest)) => {
                applications.extend(paid_on(applied, payment.paid_on));
                posted.push(payment.clone());
                if rest > Decimal::ZERO {
                    cash.push(Credit {
                        credit_id: payment.payment_id.clone(),
                        kind: SourceKind::UnappliedCash,
                        customer_id: payment.customer_id.clone(),
                        currency: payment.currency.clone(),
                        issued_on: payment.paid_on,
                        amount: rest,
                        remaining: rest,
                    });
                }
            }
        }
    }

    // Unapplied cash pays the run's invoices, after their credits.
    cash.sort_by(|a, b| {
        (a.issued_on, a.credit_id.as_bytes()).cmp(&(b.issued_on, b.credit_id.as_bytes()))
    });
    for c in &mut cash {
        if c.remaining <= Decimal::ZERO {
            continue;
        }
        // Applied on the day the invoices are issued (one customer's invoices of a run
        // share an issue date).
        let invoices = run.of(&c.customer_id, &c.currency);
        let applied_on = invoices
            .first()
            .map_or(c.issued_on, |r| r.issue_date.max(c.issued_on));
        let (applied, rest) = apply_cash(
            invoices,
            &c.credit_id,
            SourceKind::UnappliedCash,
            &c.customer_id,
            &c.currency,
            c.remaining,
            applied_on,
        )?;
        applications.extend(paid_on(applied, c.issued_on));
        c.remaining = rest;
    }

    let run = run.into_vec();
    let earlier = earlier.into_vec();
    let numbered = number_invoices(
        state.next_invoice_number,
        run.iter().map(|r| (r.issue_date, r.invoice_id.as_str())),
    );
    let number_of: BTreeMap<&str, u64> = numbered.iter().copied().collect();
    let next_invoice_number = state.next_invoice_number + numbered.len() as u64;
    let run_by_id: BTreeMap<&str, &Receivable> =
        run.iter().map(|r| (r.invoice_id.as_str(), r)).collect();
    let mut receivables: Vec<(Receivable, u64)> = numbered
        .iter()
        .filter_map(|(id, n)| run_by_id.get(id).map(|r| ((*r).clone(), *n)))
        .collect();
    let run_ids: BTreeSet<&str> = number_of.keys().copied().collect();
    let mut before: Vec<(Receivable, u64)> = earlier
        .into_iter()
        .filter(|r| !run_ids.contains(r.invoice_id.as_str()))
        .map(|r| {
            let n = numbers_before
                .get(&r.invoice_id)
                .copied()
                .unwrap_or_default();
            (r, n)
        })
        .collect();
    before.sort_by_key(|(_, n)| *n);
    receivables.extend(before);

    let mut credits: Vec<Credit> = invoicing
        .open_credits
        .iter()
        .map(|c| c.to_credit())
        .collect();
    credits.extend(cash.into_iter().filter(|c| c.remaining > Decimal::ZERO));
    // A credit note of the run became customer credit on its issue date when the run's
    // invoices were built (`open_credits` holds what its later invoices left of it).
    credits.sort_by(|a, b| {
        (a.issued_on, a.credit_id.as_bytes()).cmp(&(b.issued_on, b.credit_id.as_bytes()))
    });

    let mut next = BooksState {
        open_receivables: Vec::new(),
        credits: credits.clone(),
        posted_memos: state.posted_memos.clone(),
        next_invoice_number,
        usage_files: state.usage_files.clone(),
        payment_files: state.payment_files.clone(),
        file_digests: state.file_digests.clone(),
    };
    for (r, n) in &receivables {
        if !r.open()?.is_zero() {
            next.open_receivables.push((r.clone(), *n));
        }
    }
    Ok(Posted {
        receivables,
        applications,
        payments: posted,
        retried_payments: retried,
        refused_payments: refused,
        credits,
        next,
        unnumbered: BTreeSet::new(),
    })
}

/// Receivables grouped by (customer, currency): applying a payment looks at its
/// customer's invoices only (a scan of every invoice per payment made posting grow with
/// customers²), and the list comes back in its first order.
struct ByCustomer {
    groups: BTreeMap<(String, String), Vec<Receivable>>,
    /// Each receivable's group and place in it, in the first order.
    order: Vec<((String, String), usize)>,
}

impl ByCustomer {
    fn new(receivables: impl Iterator<Item = Receivable>) -> Self {
        let mut groups: BTreeMap<(String, String), Vec<Receivable>> = BTreeMap::new();
        let mut order = Vec::new();
        for r in receivables {
            let key = (r.customer_id.clone(), r.currency.clone());
            let group = groups.entry(key.clone()).or_default();
            order.push((key, group.len()));
            group.push(r);
        }
        Self { groups, order }
    }

    /// The customer's receivables in `currency` (none: an empty slice).
    fn of(&mut self, customer_id: &str, currency: &str) -> &mut [Receivable] {
        match self
            .groups
            .get_mut(&(customer_id.to_string(), currency.to_string()))
        {
            Some(group) => group,
            None => &mut [],
        }
    }

    fn into_vec(self) -> Vec<Receivable> {
        self.order
            .iter()
            .map(|(key, i)| self.groups[key][*i].clone())
            .collect()
    }
}

/// `applications`, with the day their cash was paid.
fn paid_on(applications: Vec<Application>, day: NaiveDate) -> impl Iterator<Item = Application> {
    applications.into_iter().map(move |a| Application {
        paid_on: Some(day),
        ..a
    })
}

/// The credit the run's invoices used, as applications: each `credit` line, on its
/// invoice's issue date (inside its total, so it is not counted as paid).
fn credit_applications(state: &BooksState, invoicing: &Invoicing) -> Vec<Application> {
    let notes: BTreeSet<&str> = state
        .credits
        .iter()
        .filter(|c| c.kind == SourceKind::CreditNote)
        .map(|c| c.credit_id.as_str())
        .chain(
            invoicing
                .invoices
                .iter()
                .filter(|i| i.composed.total.is_sign_negative())
                .map(|i| i.invoice_id.as_str()),
        )
        .collect();
    let mut applications = Vec::new();
    for invoice in &invoicing.invoices {
        for line in &invoice.composed.lines {
            if let (LineKind::Credit, Some(source)) = (line.kind, &line.credit_memo_id) {
                applications.push(Application {
                    source_id: source.clone(),
                    source_kind: if notes.contains(source.as_str()) {
                        SourceKind::CreditNote
                    } else {
                        SourceKind::CreditMemo
                    },
                    invoice_id: invoice.invoice_id.clone(),
                    amount: -line.amount,
                    applied_on: invoice.issue_date,
                    paid_on: None,
                });
            }
        }
    }
    applications
}

/// Σ of every payment's amount less Σ of what was applied to invoices and left as
/// unapplied cash: zero when the posting created or destroyed no cash (a paired check
/// the run makes before it posts).
///
/// # Errors
/// Overflow.
pub fn cash_not_conserved(state: &BooksState, posted: &Posted) -> Result<Decimal> {
    const WHAT: &str = "cash conservation";
    let mut delta = Decimal::ZERO;
    for c in state
        .credits
        .iter()
        .filter(|c| c.kind == SourceKind::UnappliedCash)
    {
        delta = checked::add(delta, c.remaining, WHAT)?;
    }
    for p in &posted.payments {
        delta = checked::add(delta, p.amount, WHAT)?;
    }
    for a in posted.applications.iter().filter(|a| {
        matches!(
            a.source_kind,
            SourceKind::Payment | SourceKind::UnappliedCash
        )
    }) {
        delta = checked::sub(delta, a.amount, WHAT)?;
    }
    for c in posted
        .credits
        .iter()
        .filter(|c| c.kind == SourceKind::UnappliedCash)
    {
        delta = checked::sub(delta, c.remaining, WHAT)?;
    }
    Ok(delta)
}
