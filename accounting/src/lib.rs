//! # billrun-accounting: billing and accounting rules on validated rows
//!
//! Everything between "these rows passed their templates" and "these are the invoices,
//! the revenue and the journal" that is a *rule* rather than I/O lives here:
//!
//! * [`catalog`]: master data checked across rows and tables (keys, plan versions,
//!   references), held in id order (customers and subscriptions in sorted vectors,
//!   [`catalog::ById`]) so everything derived from it comes out in the same order on
//!   every run;
//! * [`invoicing`]: one invoice per customer, currency and period, composed by the
//!   engine's `compose_invoice` from rated totals, prorated fees, commitments and credits;
//! * [`recognition`]: contracts (orders) allocated by SSP, carved, and spread into revenue
//!   schedules (ASC 606 / IFRS 15), with the roll-forward and the waterfall;
//! * [`ledger`]: balanced journal entries for invoices, credit memos, payments and
//!   contracts, rendered as a table, as CSV and as an hledger journal.
//!
//! * [`books`]: what carries from one period to the next, as rules: what is open on an
//!   invoice and how old it is (`ar_aging`), payments and unapplied cash applied to open
//!   invoices, customer credit used oldest first.
//!
//! # Why a crate of its own
//!
//! It depends on `billrun-engine` (the math), `billrun-schemas` (the tables) and arrow
//! only: no DataFusion, no object store, no async runtime. Its rules therefore test in
//! milliseconds on plain rows, and the pipeline above it is left with reading, rating at
//! scale and writing. Money arithmetic goes through `billrun_engine::checked`; a
//! currency's minor unit is never guessed ([`AccountingError::UnknownCurrency`]).
//!
//! Inputs arrive as [`rows::ValidatedRows`] (the good rows of one table, with the run's
//! file names); a row that breaks a rule comes back as a [`billrun_schemas::Reject`],
//! built in one place ([`rows::RowOrigin::reject`]) with reason texts written once
//! ([`reasons`]).

pub mod books;
pub mod catalog;
pub mod columns;
mod error;
mod in_order;
pub mod invoicing;
pub mod ledger;
pub mod reasons;
pub mod recognition;
pub mod rows;

pub use error::{AccountingError, Result, minor_units_of};
pub use rows::ValidatedRows;
