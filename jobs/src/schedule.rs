//! The schedule: run due jobs on their cron schedules, one at a time, until stopped.
//!
//! Cron expressions are evaluated in **UTC** (five fields `min hour dom month dow`, or six
//! with seconds first; `croner` syntax, Vixie-cron compatible). The scheduler remembers up
//! to when it has looked; each tick runs every job with a fire time in
//! `(last look, now]`, in fire-time order, one after the other:
//!
//! - a job that came due several times in the window (the machine slept, or another job
//!   ran long) runs **once**;
//! - a job that came due while **its own previous run was still going** is skipped for
//!   those fire times, with a log line; its next fire time after that run runs as usual;
//! - fire times before the scheduler started are not caught up.
//!
//! Time comes from a [`Clock`], so all of this is tested with a clock that jumps instead
//! of sleeping.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::Job;
use crate::runner::{JobReport, StepRunner, run_job_with};

/// Where the scheduler gets the time, and how it waits.
pub trait Clock {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `t` or later.
    fn sleep_until(&self, t: DateTime<Utc>) -> impl Future<Output = ()>;
}

/// The system's clock and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        // Sleep in slices of at most a minute, so a wall-clock jump is noticed.
        loop {
            let left = t - Utc::now();
            let Ok(left) = left.to_std() else { return };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_secs(60))).await;
        }
    }
}

/// A job's fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// Index into the job list.
    pub job: usize,
}

/// Every fire time of every scheduled job in `(after, until]`, in time order (then job
/// order). Jobs without a schedule never come due.
pub fn due_between(jobs: &[Job], after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Due> {
    let mut due = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let Some(schedule) = &job.schedule else {
            continue;
        };
        for at in schedule.cron.iter_after(after) {
            if at > until {
                break;
            }
            due.push(Due { at, job: i });
        }
    }
    due.sort();
    due
}

/// The first fire time of any scheduled job after `after`.
pub fn next_due(jobs: &[Job], after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    jobs.iter()
        .filter_map(|j| j.schedule.as_ref())
        .filter_map(|s| s.cron.find_next_occurrence(&after, false).ok())
        .min()
}

/// What a tick did with one job.
#[derive(Debug, Clone)]
pub enum TickEvent {
    /// The job ran (`fires` of its fire times fell in the window).
    Ran {
        due: DateTime<Utc>,
        fires: usize,
        report: Box<JobReport>,
    },
    /// The job came due while its previous run was still going.
    SkippedStillRunning {
        job: String,
        due: DateTime<Utc>,
        previous_started: DateTime<Utc>,
        previous_finished: DateTime<Utc>,
    },
}

/// Runs jobs on their schedules with a [`Clock`] and a [`StepRunner`].
#[derive(Debug)]
pub struct Scheduler<C, S> {
    jobs: Vec<Job>,
    clock: C,
    steps: S,
    looked_until: DateTime<Utc>,
    /// Per job, the (start, end) of its last run.
    last_run: Vec<Option<(DateTime<Utc>, DateTime<Utc>)>>,
}

impl<C: Clock, S: StepRunner> Scheduler<C, S> {
    /// A scheduler that starts looking now: fire times before now are not caught up.
    pub fn new(jobs: Vec<Job>, clock: C, steps: S) -> Self {
        let looked_until = clock.now();
        let last_run = vec![None; jobs.len()];
        Self {
            jobs,
            clock,
            steps,
            looked_until,
            last_run,
        }
    }

    /// The jobs it schedules.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Runs every job due since the last look, one at a time.
    pub async fn tick(&mut self) -> Vec<TickEvent> {
        let now = self.clock.now();
        let due = due_between(&self.jobs, self.looked_until, now);
        self.looked_until = now;

        // Each job once, in the order of its first fire time in the window.
        let mut order: Vec<usize> = Vec::new();
        for d in &due {
            if !order.contains(&d.job) {
                order.push(d.job);
            }
        }
        let mut events = Vec::new();
        for j in order {
            let fires: Vec<DateTime<Utc>> =
                due.iter().filter(|d| d.job == j).map(|d| d.at).collect();
            let (runnable, while_running): (Vec<_>, Vec<_>) = match self.last_run[j] {
                Some((_, end)) => fires.iter().partition(|&&at| at >= end),
                None => (fires.clone(), Vec::new()),
            };
            if let (Some(&at), Some((start, end))) = (while_running.first(), self.last_run[j]) {
                tracing::warn!(
                    job = %self.jobs[j].name,
                    due = %at,
                    previous_started = %start,
                    "skipped: the job's previous run was still going when it came due"
                );
                events.push(TickEvent::SkippedStillRunning {
                    job: self.jobs[j].name.clone(),
                    due: at,
                    previous_started: start,
                    previous_finished: end,
                });
            }
            let Some(&at) = runnable.first() else {
                continue;
            };
            if runnable.len() > 1 {
                tracing::info!(
                    job = %self.jobs[j].name,
                    fires = runnable.len(),
                    "came due more than once since the last look; running once"
                );
            }
            let start = self.clock.now();
            tracing::info!(job = %self.jobs[j].name, due = %at, "running");
            let report = run_job_with(&self.jobs[j], start.date_naive(), &self.steps).await;
            let end = self.clock.now();
            self.last_run[j] = Some((start, end));
            events.push(TickEvent::Ran {
                due: at,
                fires: runnable.len(),
                report: Box::new(report),
            });
        }
        events
    }

    /// Ticks and sleeps until the next fire time, for ever, handing every event to
    /// `on_event`. Returns only when no job has a schedule.
    pub async fn run(&mut self, mut on_event: impl FnMut(&TickEvent)) {
        loop {
            for event in self.tick().await {
                on_event(&event);
            }
            let Some(next) = next_due(&self.jobs, self.looked_until) else {
                tracing::warn!("no job has a schedule; nothing to wait for");
                return;
            };
            self.clock.sleep_until(next).await;
        }
    }
}
