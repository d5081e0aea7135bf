//! The runner: a job's steps, in order, once.
//!
//! - Steps run in the order the job file lists them. The first step that fails stops the
//!   steps after it (they are reported as `skipped`), and the report names the failed
//!   step and its error.
//! - `notify` is the exception twice over: it still runs after a failure (a failure is
//!   what people most need to hear about), and a channel that fails makes the `notify`
//!   step `failed` without stopping the steps after it, since a notification is about the
//!   job, not part of its data. When a step fails *after* the `notify` step, the summary
//!   is sent again at the end so the failure is not kept quiet.
//!
//! **Re-running a job after a failure is safe**: the import is exactly-once (a file is
//! known by its content hash, so one loaded before the failure is not loaded again), and a
//! bill run publishes its output folder atomically (a failed run leaves the previous output
//! as it was; a successful one replaces it whole). So the remedy for a failed night is to
//! fix the cause and run the job again.

use std::future::Future;
use std::time::Instant;

use billrun_engine::BillingMonth;
use billrun_pipeline::import::{ImportOptions, ImportSummary, sweep};
use billrun_pipeline::{Manifest, Progress, RunOptions, run_bill};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::job::{Job, Step};
use crate::notify::{
    ChannelOutcome, FailedStep, ImportPart, RunPart, StepLine, Summary, error_chain, import_detail,
    rfc3339, send_all,
};

/// What a step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

impl StepStatus {
    fn name(self) -> &'static str {
        match self {
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepOutcome {
    pub step: Step,
    pub status: StepStatus,
    /// What it did, or why it failed or was skipped.
    pub detail: String,
    pub seconds: f64,
}

/// What a job run did.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub job: String,
    pub period: BillingMonth,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    pub steps: Vec<StepOutcome>,
    /// The step that stopped the job, and its error.
    pub failed: Option<(Step, String)>,
    pub import: Option<ImportSummary>,
    pub manifest: Option<Manifest>,
    /// Every channel of every time the job notified.
    pub notifications: Vec<ChannelOutcome>,
}

impl JobReport {
    /// Whether every step was done and every triggered channel sent.
    pub fn succeeded(&self) -> bool {
        self.failed.is_none() && !self.notifications.iter().any(ChannelOutcome::failed)
    }

    /// The notification summary of the job so far.
    pub fn summary(&self) -> Summary {
        Summary {
            job: self.job.clone(),
            outcome: if self.failed.is_some() {
                "failed"
            } else {
                "succeeded"
            }
            .into(),
            period: Some(self.period.to_string()),
            started_at: rfc3339(self.started),
            finished_at: rfc3339(self.finished),
            failed_step: self.failed.as_ref().map(|(step, error)| FailedStep {
                step: step.name().into(),
                error: error.clone(),
            }),
            steps: self
                .steps
                .iter()
                .map(|s| StepLine {
                    step: s.step.name().into(),
                    status: s.status.name().into(),
                    detail: s.detail.clone(),
                })
                .collect(),
            import: self.import.as_ref().map(ImportPart::from_summary),
            run: self.manifest.as_ref().map(RunPart::from_manifest),
            finished: self.finished,
        }
    }
}

/// What the runner calls to do the import and the bill run: the pipeline
/// ([`PipelineSteps`]) or, in tests, a stand-in.
///
/// # Errors
/// Each method returns the failure as the text the report shows.
pub trait StepRunner {
    /// Sweeps the inbox into the dataset.
    fn import(&self, options: ImportOptions)
    -> impl Future<Output = Result<ImportSummary, String>>;
    /// Runs the bill run.
    fn bill(&self, options: RunOptions) -> impl Future<Output = Result<Manifest, String>>;
}

/// The real steps: `billrun_pipeline::import::sweep` and `billrun_pipeline::run_bill`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipelineSteps;

impl StepRunner for PipelineSteps {
    async fn import(&self, options: ImportOptions) -> Result<ImportSummary, String> {
        sweep(&options).await.map_err(|e| error_chain(&e))
    }

    async fn bill(&self, options: RunOptions) -> Result<Manifest, String> {
        run_bill(options).await.map_err(|e| error_chain(&e))
    }
}

/// Runs `job` as of `today` with the pipeline's steps.
pub async fn run_job(job: &Job, today: NaiveDate) -> JobReport {
    run_job_with(job, today, &PipelineSteps).await
}

/// Runs `job` as of `today`, its import and bill run done by `steps`.
pub async fn run_job_with(job: &Job, today: NaiveDate, steps: &impl StepRunner) -> JobReport {
    let period = job.period.resolve(today);
    let mut report = JobReport {
        job: job.name.clone(),
        period,
        started: Utc::now(),
        finished: Utc::now(),
        steps: Vec::with_capacity(job.steps.len()),
        failed: None,
        import: None,
        manifest: None,
        notifications: Vec::new(),
    };
    // Whether the channels have heard about the failure, if there is one.
    let mut failure_told = true;

    for &step in &job.steps {
        let clock = Instant::now();
        if let Some((failed, _)) = &report.failed
            && step != Step::Notify
        {
            report.steps.push(StepOutcome {
                step,
                status: StepStatus::Skipped,
                detail: format!("not run: step `{failed}` failed"),
                seconds: 0.0,
            });
            continue;
        }
        let (status, detail) = match step {
            Step::Import => {
                let options = ImportOptions {
                    // Checked on load: a job with an import step has an inbox.
                    inbox: job.inbox.clone().unwrap_or_default(),
                    dataset: job.dataset.clone(),
                    mappings: job.mappings.clone(),
                    today,
                    progress: Progress::hidden(),
                };
                match steps.import(options).await {
                    Ok(summary) => {
                        let detail = import_detail(&ImportPart::from_summary(&summary));
                        report.import = Some(summary);
                        (StepStatus::Done, detail)
                    }
                    Err(e) => (StepStatus::Failed, e),
                }
            }
            Step::Notify => {
                report.finished = Utc::now();
                let outcomes = send_all(&job.notify, &report.summary()).await;
                failure_told = true;
                let failed: Vec<String> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
                let sent = outcomes.iter().filter(|o| o.status == "sent").count();
                report.notifications.extend(outcomes);
                let detail = if failed.is_empty() {
                    format!("{sent} channel(s) sent")
                } else {
                    format!("{sent} channel(s) sent; failed: {}", failed.join("; "))
                };
                let status = if failed.is_empty() {
                    StepStatus::Done
                } else {
                    StepStatus::Failed
                };
                report.steps.push(StepOutcome {
                    step,
                    status,
                    detail,
                    seconds: clock.elapsed().as_secs_f64(),
                });
                // A channel's failure does not stop the steps after it.
                continue;
            }
            Step::Rate => {
                // Checked on load: a job with a `rate` step has an output folder.
                let out = job.out_for(period).unwrap_or_default();
                let options = RunOptions {
                    data: job.dataset.clone(),
                    as_of: job.as_of,
                    out: out.clone(),
                    period,
                    threads: None,
                    carve_order: job.carve_order,
                    memory_limit: None,
                    books: job.books.clone(),
                    preview: false,
                    progress: Progress::hidden(),
                };
                match steps.bill(options).await {
                    Ok(manifest) => {
                        let billed: Vec<String> = manifest
                            .billed
                            .iter()
                            .map(|(c, t)| format!("{t} {c}"))
                            .collect();
                        let detail = format!(
                            "bill run {period} -> {}: {} invoices ({})",
                            out.display(),
                            manifest.invoices,
                            billed.join(", ")
                        );
                        report.manifest = Some(manifest);
                        (StepStatus::Done, detail)
                    }
                    Err(e) => (StepStatus::Failed, e),
                }
            }
        };
        if status == StepStatus::Failed {
            tracing::warn!(job = %job.name, step = %step, error = %detail, "step failed");
            report.failed = Some((step, detail.clone()));
            failure_told = false;
        }
        report.steps.push(StepOutcome {
            step,
            status,
            detail,
            seconds: clock.elapsed().as_secs_f64(),
        });
    }
    report.finished = Utc::now();
    if !failure_told && job.steps.contains(&Step::Notify) {
        let outcomes = send_all(&job.notify, &report.summary()).await;
        report.notifications.extend(outcomes);
    }
    report
}
