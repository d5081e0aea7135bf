//! # billrun-jobs: declarative jobs, their runner, their schedule and notifications
//!
//! A billing team does not type `billrun import` and `billrun run` by hand every night: it
//! writes a *job file* (`jobs/nightly.toml`) that names the inbox, the dataset, the run's
//! output folder, the billing period, the steps in order, a cron schedule and who to tell.
//! This crate turns such a file into a checked [`Job`] ([`job`]), runs its steps in order
//! and reports what happened ([`runner`]), fires jobs on their cron schedules ([`schedule`])
//! and sends the summary by e-mail, webhook and outbox file ([`notify`]).
//!
//! Design choices, and why:
//! - **Paths in a job file are relative to the job file's folder**, not to the current
//!   directory, so a job means the same thing whether the scheduler was started from the
//!   repository root, from `jobs/` or by a service manager. URLs (`file://`, `s3://`) are
//!   kept as written.
//! - **A job is data, checked whole on load**: an unknown key, an unknown step, a bad cron
//!   expression or a channel missing its address is an error naming the file, the key and
//!   what is wrong, before anything runs.
//! - **The runner is a straight line**: steps run in the order the file lists them; the
//!   first failure stops the steps after it and is reported with the step and the reason.
//!   Re-running a failed job is safe because the import is exactly-once (files are known by
//!   content hash) and a bill run replaces its output folder atomically.
//! - **Secrets never live in job files**: SMTP credentials and the webhook's HMAC key are
//!   read from environment variables named in the file, at send time, and never logged.
//! - **The clock is passed in** ([`schedule::Clock`]), so "which jobs are due between t0
//!   and t1" and "skip a job still running" are tested without sleeping.

pub mod error;
pub mod job;
pub mod notify;
pub mod runner;
pub mod schedule;

pub use error::{Error, Result};
pub use job::{
    Channel, Job, NotifyChannel, PeriodSpec, Step, Trigger, load_dir, load_job, parse_job,
};
pub use notify::{ChannelOutcome, Summary, send_all, send_all_with};
pub use runner::{
    JobReport, PipelineSteps, StepOutcome, StepRunner, StepStatus, run_job, run_job_with,
};
pub use schedule::{Clock, Due, Scheduler, SystemClock, TickEvent, due_between, next_due};
