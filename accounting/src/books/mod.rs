//! The books' rules: what is open on each invoice, how old it is, and what paid or
//! credited what (`DATA-CONTRACT.md`, "The books").
//!
//! These are pure functions over receivables and payments, so that a posting run, the
//! `ar-aging` report and a property test all apply the same rules:
//!
//! * [`receivables`]: open = total − paid − credited, the status and days past due of an
//!   invoice as of a day;
//! * [`aging`]: receivables bucketed by days past due, one row per customer and currency;
//! * [`cash`]: a payment applied to the invoice it names, then to the customer's open
//!   invoices of its currency by due date, the rest left as unapplied cash; credit used
//!   oldest first;
//! * [`corrections`]: late usage as correction invoices (recomputed − posted, line by
//!   line), and the gapless invoice numbers;
//! * [`posting`]: a run posted on top of the books' state: payments applied before the
//!   run's invoices, unapplied cash after their credits, gapless numbers;
//! * [`tables`]: `receivables`, `ar_aging` and `applications` as Arrow.
//!
//! Money is never created or destroyed here: what a payment or a credit brings is either
//! applied to invoices or left over, to the cent, and no invoice is applied more than
//! is open on it (property-tested in `tests/books_props.rs`).

pub mod aging;
pub mod balances;
pub mod cash;
pub mod corrections;
pub mod posting;
pub mod receivables;
pub mod report_tables;
pub mod reports;
pub mod tables;

pub use aging::{AgingRow, ar_aging, receivables_on};
pub use balances::{CustomerBalance, customer_balances};
pub use cash::{
    Application, Credit, PaymentRejected, SourceKind, apply_cash, apply_credits, apply_payment,
};
pub use corrections::{correction_id, correction_lines, number_invoices};
pub use posting::{
    BooksState, FileDigest, PaymentRefusal, Posted, SettledFile, TriedRow, cash_not_conserved,
    post_run, receivable_of,
};
pub use receivables::{Receivable, ReceivableStatus};
pub use report_tables::{
    dso_batch, invoice_accuracy_batch, invoice_register_batch, mrr_batch, statement_batch,
    tax_batch,
};
pub use reports::{
    AccuracyRow, DsoRow, MrrRow, PostedPeriod, RecurringCharge, RegisteredInvoice, StatementLine,
    TaxRow, TaxedInvoice, days_sales_outstanding, invoice_accuracy, month_days, mrr_movements,
    statements, tax_by_region,
};
pub use tables::{applications_batch, ar_aging_batch, customer_balances_batch, receivables_batch};
