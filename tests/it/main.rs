//! billrun's end-to-end tests, as one test binary: each module used to be its own crate,
//! and each of those linked all of DataFusion again (a gigabyte of debug build apiece).

mod bad_inputs;
mod books;
mod common;
mod e2e;
mod faults;
mod import;
mod ledgers;
mod mutations;
mod readers;
mod revenue;
mod workflow;
