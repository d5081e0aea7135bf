//! billrun-jobs' integration tests: job files, the schedule, the runner and every
//! notification channel against real servers on loopback.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use billrun_engine::{BillingMonth, CarveOrder};
use billrun_jobs::job::{Channel, EmailChannel, OutboxChannel, Schedule, WebhookChannel};
use billrun_jobs::notify::{SIGNATURE_HEADER, signature};
use billrun_jobs::{
    Clock, Due, Job, NotifyChannel, PeriodSpec, Scheduler, Step, StepRunner, StepStatus, Summary,
    TickEvent, Trigger, due_between, next_due, parse_job, run_job, run_job_with, send_all_with,
};
use billrun_pipeline::import::{FileOutcome, FileStatus, ImportOptions, ImportSummary, Mapping};
use billrun_pipeline::query::{OutputFormat, query, render};
use billrun_pipeline::{Manifest, RunOptions, UsageCounts};
use billrun_schemas::Table;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

// The SMTP sink and the webhook receiver, shared with the end-to-end tests.
#[path = "../../tests/support/servers.rs"]
mod servers;
use servers::{serve_http, start_smtp};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn parse_err(text: &str) -> String {
    parse_job(Path::new("jobs/bad.toml"), text)
        .expect_err("the job file should be rejected")
        .to_string()
}

const MINIMAL: &str = r#"
name = "t"
dataset = "ds"
out = "runs/{period}"
steps = ["rate"]
"#;

// ---------------------------------------------------------------- job files

#[test]
fn the_nightly_job_parses_with_paths_relative_to_its_folder() {
    let file = repo().join("jobs/nightly.toml");
    let job = billrun_jobs::load_job(&file).unwrap();
    let dir = file.parent().unwrap();
    assert_eq!(job.name, "nightly");
    assert_eq!(
        job.inbox.as_deref(),
        Some(dir.join("../data-samples/inbox").to_str().unwrap())
    );
    assert_eq!(
        job.dataset,
        dir.join("../out/nightly/dataset").to_str().unwrap()
    );
    assert_eq!(job.period, PeriodSpec::Previous);
    assert_eq!(job.schedule.as_ref().unwrap().expr, "30 2 * * *");
    assert_eq!(job.carve_order, CarveOrder::AllocateThenCarve);
    assert_eq!(job.steps, vec![Step::Import, Step::Rate, Step::Notify]);
    assert_eq!(job.mappings.len(), 1);
    assert_eq!(job.mappings[0].name, "crm accounts");
    assert_eq!(job.mappings[0].file_pattern, "crm/accounts*.csv");
    assert_eq!(job.mappings[0].table, Table::Customers);
    assert!(job.mappings[0].sql.contains("\"AccountId\" AS customer_id"));
    assert_eq!(job.notify.len(), 2);
    assert_eq!(
        job.notify[0],
        NotifyChannel {
            channel: Channel::Outbox(OutboxChannel {
                path: dir
                    .join("../out/nightly/outbox")
                    .to_string_lossy()
                    .into_owned(),
            }),
            on: [Trigger::JobFinished].into(),
        }
    );
    assert_eq!(
        job.notify[1],
        NotifyChannel {
            channel: Channel::Email(EmailChannel {
                to: vec!["billing-team@example.invalid".into()],
                from: "billrun@example.invalid".into(),
                smtp_host: "localhost".into(),
                smtp_port: 587,
                starttls: true,
                username_env: Some("BILLRUN_SMTP_USER".into()),
                password_env: Some("BILLRUN_SMTP_PASSWORD".into()),
            }),
            on: [Trigger::JobFailed, Trigger::ImportFailed].into(),
        }
    );
    // October's run of a job run in November goes to its own folder.
    assert_eq!(
        job.out_for(job.period.resolve(date(2026, 11, 1))).unwrap(),
        dir.join("../out/nightly/runs/2026-10")
    );
}

#[test]
fn a_full_job_file_parses_exactly() {
    let text = r#"
name = "eu-monthly"
inbox = "s3://bucket/inbox"
dataset = "file:///srv/dataset"
out = "/srv/runs/{period}"
period = "2026-10"
schedule = "0 3 1 * *"
carve_order = "carve-then-allocate"
steps = ["import", "rate", "notify"]

[[notify]]
kind = "webhook"
url = "https://hooks.example.invalid/billrun"
secret_env = "BILLRUN_WEBHOOK_SECRET"
on = ["job_failed"]

[[notify]]
kind = "email"
to = ["a@example.invalid", "Billing <b@example.invalid>"]
from = "billrun@example.invalid"
smtp_host = "relay"
starttls = false
"#;
    let job = parse_job(Path::new("/etc/billrun/eu.toml"), text).unwrap();
    assert_eq!(job.inbox.as_deref(), Some("s3://bucket/inbox"));
    assert_eq!(job.dataset, "file:///srv/dataset");
    assert_eq!(job.out.as_deref(), Some("/srv/runs/{period}"));
    assert_eq!(
        job.period,
        PeriodSpec::Month(BillingMonth {
            year: 2026,
            month: 10
        })
    );
    assert_eq!(job.carve_order, CarveOrder::CarveThenAllocate);
    assert_eq!(job.steps, vec![Step::Import, Step::Rate, Step::Notify]);
    assert!(job.mappings.is_empty());
    assert_eq!(
        job.notify[0].channel,
        Channel::Webhook(WebhookChannel {
            url: "https://hooks.example.invalid/billrun".into(),
            secret_env: "BILLRUN_WEBHOOK_SECRET".into(),
        })
    );
    assert_eq!(job.notify[0].on, [Trigger::JobFailed].into());
    // Without STARTTLS the default port is 25; without `on`, every run notifies.
    match &job.notify[1].channel {
        Channel::Email(e) => {
            assert_eq!(e.smtp_port, 25);
            assert!(!e.starttls);
            assert_eq!(e.username_env, None);
        }
        other => panic!("expected email, got {other:?}"),
    }
    assert_eq!(job.notify[1].on, [Trigger::JobFinished].into());
}

#[test]
fn an_unknown_step_names_the_file_and_the_step() {
    let text = MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = ["rate", "frobnicate"]"#);
    assert_eq!(
        parse_err(&text),
        "jobs/bad.toml: `steps[1]`: unknown step `frobnicate` (known steps: import, rate, notify)"
    );
}

/// Steps that were once accepted and did nothing of their own are refused, with the way
/// to get what the job meant: a job listing `carve` before `allocate` would otherwise
/// silently allocate first.
#[test]
fn steps_the_bill_run_does_are_refused_with_what_to_write_instead() {
    let cases = [
        (
            r#"["rate", "carve", "allocate"]"#,
            "jobs/bad.toml: `steps[1]`: `carve` is not a step of its own: the `rate` step applies \
             carves; to apply them before the SSP allocation set \
             `carve_order = \"carve-then-allocate\"`; list `rate` instead",
        ),
        (
            r#"["rate", "allocate"]"#,
            "jobs/bad.toml: `steps[1]`: `allocate` is not a step of its own: the `rate` step \
             allocates by SSP; the order of allocation and carves is `carve_order` \
             (\"allocate-then-carve\" by default); list `rate` instead",
        ),
        (
            r#"["invoice"]"#,
            "jobs/bad.toml: `steps[0]`: `invoice` is not a step of its own: the `rate` step \
             invoices; list `rate` instead",
        ),
        (
            r#"["rate", "recognise"]"#,
            "jobs/bad.toml: `steps[1]`: `recognise` is not a step of its own: the `rate` step \
             recognises revenue; list `rate` instead",
        ),
        (
            r#"["rate", "export"]"#,
            "jobs/bad.toml: `steps[1]`: `export` is not a step of its own: the `rate` step \
             writes every output table and the journal exports; list `rate` instead",
        ),
    ];
    for (steps, expected) in cases {
        let text = MINIMAL.replace(r#"steps = ["rate"]"#, &format!("steps = {steps}"));
        assert_eq!(parse_err(&text), expected, "{steps}");
    }
}

#[test]
fn job_file_errors_name_the_file_the_key_and_the_problem() {
    let cases: Vec<(String, &str)> = vec![
        (
            MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = ["rate", "rate"]"#),
            "jobs/bad.toml: `steps[1]`: step `rate` is listed twice",
        ),
        (
            MINIMAL.replace(r#"steps = ["rate"]"#, "steps = []"),
            "jobs/bad.toml: `steps`: a job needs at least one step",
        ),
        (
            MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = ["import"]"#),
            "jobs/bad.toml: `inbox`: missing: the `import` step needs an inbox",
        ),
        (
            MINIMAL.replace("out = \"runs/{period}\"\n", ""),
            "jobs/bad.toml: `out`: missing: the `rate` step needs an output folder",
        ),
        (
            format!("{MINIMAL}period = \"2026-13\"\n"),
            "jobs/bad.toml: `period`: `2026-13` is neither \"previous\" nor a month like \"2026-10\"",
        ),
        (
            format!("{MINIMAL}carve_order = \"sideways\"\n"),
            "jobs/bad.toml: `carve_order`: `sideways`: expected \"allocate-then-carve\" or \"carve-then-allocate\"",
        ),
        (
            MINIMAL.replace("name = \"t\"", "name = \"night ly\""),
            "jobs/bad.toml: `name`: `night ly` is not a job name: use letters, digits, `-` and `_` (it names outbox files)",
        ),
        (
            format!(
                "{MINIMAL}[[mappings]]\nname = \"m\"\nfile_pattern = \"x*.csv\"\ntable = \"acounts\"\nsql = \"SELECT 1 FROM source\"\n"
            ),
            "jobs/bad.toml: `mappings[0].table`: unknown table `acounts` (known tables: ",
        ),
        (
            format!(
                "{MINIMAL}[[mappings]]\nname = \"m\"\nfile_pattern = \"x*.csv\"\ntable = \"customers\"\nsql = \"DELETE FROM source\"\n"
            ),
            "jobs/bad.toml: `mappings[0].sql`: must be a SELECT (or WITH ... SELECT) over the table `source`",
        ),
        (
            MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = ["rate", "notify"]"#),
            "jobs/bad.toml: `notify`: steps list `notify` but no [[notify]] channel is configured",
        ),
        (
            format!("{MINIMAL}[[notify]]\nkind = \"outbox\"\npath = \"o\"\n"),
            "jobs/bad.toml: `steps`: [[notify]] channels are configured but steps do not list `notify`",
        ),
    ];
    for (text, expected) in cases {
        let got = parse_err(&text);
        assert!(
            got.starts_with(expected),
            "\nexpected: {expected}\n     got: {got}"
        );
    }
}

#[test]
fn channel_errors_name_the_channel_key() {
    let with = |channel: &str| {
        MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = ["rate", "notify"]"#)
            + "[[notify]]\n"
            + channel
    };
    let cases = [
        (
            "kind = \"pager\"\n",
            "jobs/bad.toml: `notify[0].kind`: unknown channel kind `pager` (known: email, webhook, outbox)",
        ),
        (
            "kind = \"email\"\nto = [\"a@x.invalid\"]\nfrom = \"b@x.invalid\"\n",
            "jobs/bad.toml: `notify[0].smtp_host`: missing: an email channel needs it",
        ),
        (
            "kind = \"email\"\nto = [\"a@x.invalid\"]\nfrom = \"b@x.invalid\"\nsmtp_host = \"h\"\nurl = \"http://x\"\n",
            "jobs/bad.toml: `notify[0].url`: is not a key of an email channel",
        ),
        (
            "kind = \"email\"\nto = [\"a@x.invalid\", \"not an address\"]\nfrom = \"b@x.invalid\"\nsmtp_host = \"h\"\n",
            "jobs/bad.toml: `notify[0].to[1]`: `not an address` is not an e-mail address",
        ),
        (
            "kind = \"email\"\nto = [\"a@x.invalid\"]\nfrom = \"b@x.invalid\"\nsmtp_host = \"h\"\nusername_env = \"SMTP_USER\"\n",
            "jobs/bad.toml: `notify[0].password_env`: missing: give both username_env and password_env, or neither",
        ),
        (
            "kind = \"webhook\"\nurl = \"https://x.invalid/h\"\nsecret_env = \"s3cr3t-value!\"\n",
            "jobs/bad.toml: `notify[0].secret_env`: `s3cr3t-value!` is not an environment variable name; put the secret in the environment and name the variable here",
        ),
        (
            "kind = \"webhook\"\nurl = \"ftp://x.invalid/h\"\nsecret_env = \"S\"\n",
            "jobs/bad.toml: `notify[0].url`: `ftp://x.invalid/h` is not an http:// or https:// URL",
        ),
        (
            "kind = \"webhook\"\nurl = \"https://x.invalid/h\"\n",
            "jobs/bad.toml: `notify[0].secret_env`: missing: a webhook channel needs it",
        ),
        (
            "kind = \"outbox\"\npath = \"o\"\non = [\"job_finished\", \"sometimes\"]\n",
            "jobs/bad.toml: `notify[0].on[1]`: unknown trigger `sometimes` (known: job_finished, job_failed, import_failed)",
        ),
        (
            "kind = \"outbox\"\npath = \"o\"\non = []\n",
            "jobs/bad.toml: `notify[0].on`: is empty: the channel would never be used",
        ),
    ];
    for (channel, expected) in cases {
        let got = parse_err(&with(channel));
        assert!(
            got.starts_with(expected),
            "\nexpected: {expected}\n     got: {got}"
        );
    }
}

#[test]
fn toml_errors_give_line_column_and_key() {
    // A password in the file is not a key at all: secrets come from the environment.
    let text = format!("{MINIMAL}password = \"hunter2\"\n");
    let got = parse_err(&text);
    assert!(
        got.starts_with("jobs/bad.toml:6:1: unknown field `password`, expected one of"),
        "{got}"
    );
    assert!(
        !got.contains("hunter2"),
        "the value must not be echoed: {got}"
    );

    let got = parse_err(&MINIMAL.replace(r#"steps = ["rate"]"#, r#"steps = "rate""#));
    assert!(
        got.starts_with("jobs/bad.toml:5:9: invalid type: string \"rate\", expected a sequence"),
        "{got}"
    );

    let got = parse_err(&MINIMAL.replace("name = \"t\"", ""));
    assert!(got.contains("missing field `name`"), "{got}");

    let got = parse_err(&format!("{MINIMAL}schedule = \"61 * * * *\"\n"));
    assert!(
        got.starts_with("jobs/bad.toml: `schedule`: `61 * * * *` is not a cron expression"),
        "{got}"
    );
}

#[test]
fn load_dir_reads_every_job_and_refuses_two_with_one_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.toml"), MINIMAL.replace("\"t\"", "\"b\"")).unwrap();
    std::fs::write(dir.path().join("a.toml"), MINIMAL.replace("\"t\"", "\"a\"")).unwrap();
    std::fs::write(dir.path().join("notes.md"), "not a job").unwrap();
    let jobs = billrun_jobs::load_dir(dir.path()).unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    std::fs::write(dir.path().join("c.toml"), MINIMAL.replace("\"t\"", "\"a\"")).unwrap();
    let err = billrun_jobs::load_dir(dir.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: job name `a` is also used by {}",
            dir.path().join("c.toml").display(),
            dir.path().join("a.toml").display()
        )
    );
}

#[test]
fn previous_period_is_the_calendar_month_before_today() {
    let p = PeriodSpec::Previous;
    assert_eq!(
        p.resolve(date(2026, 11, 1)),
        BillingMonth {
            year: 2026,
            month: 10
        }
    );
    assert_eq!(
        p.resolve(date(2026, 11, 30)),
        BillingMonth {
            year: 2026,
            month: 10
        }
    );
    assert_eq!(
        p.resolve(date(2027, 1, 15)),
        BillingMonth {
            year: 2026,
            month: 12
        }
    );
}

// ---------------------------------------------------------------- the schedule

fn scheduled(name: &str, cron: &str) -> Job {
    let text =
        MINIMAL.replace("\"t\"", &format!("\"{name}\"")) + &format!("schedule = \"{cron}\"\n");
    parse_job(Path::new("jobs/x.toml"), &text).unwrap()
}

#[test]
fn due_times_between_two_instants_exclusive_start_inclusive_end() {
    let jobs = vec![
        scheduled("nightly", "30 2 * * *"),
        scheduled("six-hourly", "0 */6 * * *"),
        parse_job(Path::new("jobs/x.toml"), MINIMAL).unwrap(), // no schedule
        scheduled("monthly", "0 3 1 * *"),
    ];
    let due = due_between(&jobs, utc(2026, 10, 31, 0, 0), utc(2026, 11, 1, 6, 0));
    assert_eq!(
        due,
        vec![
            Due {
                at: utc(2026, 10, 31, 2, 30),
                job: 0
            },
            Due {
                at: utc(2026, 10, 31, 6, 0),
                job: 1
            },
            Due {
                at: utc(2026, 10, 31, 12, 0),
                job: 1
            },
            Due {
                at: utc(2026, 10, 31, 18, 0),
                job: 1
            },
            Due {
                at: utc(2026, 11, 1, 0, 0),
                job: 1
            },
            Due {
                at: utc(2026, 11, 1, 2, 30),
                job: 0
            },
            Due {
                at: utc(2026, 11, 1, 3, 0),
                job: 3
            },
            Due {
                at: utc(2026, 11, 1, 6, 0),
                job: 1
            },
        ]
    );
    // The start is exclusive: a job that fired at t0 was handled by the previous look.
    assert!(due_between(&jobs, utc(2026, 11, 1, 2, 30), utc(2026, 11, 1, 2, 59)).is_empty());
    assert_eq!(
        due_between(&jobs, utc(2026, 11, 1, 2, 29), utc(2026, 11, 1, 2, 30)),
        vec![Due {
            at: utc(2026, 11, 1, 2, 30),
            job: 0
        }]
    );
    assert_eq!(
        next_due(&jobs, utc(2026, 11, 1, 6, 0)),
        Some(utc(2026, 11, 1, 12, 0))
    );
    assert_eq!(next_due(&jobs[2..3], utc(2026, 11, 1, 6, 0)), None);
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
struct FakeClock(Arc<Mutex<DateTime<Utc>>>);

impl FakeClock {
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
    fn advance(&self, minutes: i64) {
        *self.0.lock().unwrap() += chrono::Duration::minutes(minutes);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    async fn sleep_until(&self, t: DateTime<Utc>) {
        self.set(t);
    }
}

/// Steps whose bill run takes `minutes` of the fake clock and records when it ran.
#[derive(Debug)]
struct SlowBill {
    clock: FakeClock,
    minutes: i64,
    runs: Mutex<Vec<(String, DateTime<Utc>)>>,
}

impl StepRunner for SlowBill {
    async fn import(&self, _: ImportOptions) -> Result<ImportSummary, String> {
        Ok(ImportSummary::default())
    }
    async fn bill(&self, options: RunOptions) -> Result<Manifest, String> {
        self.runs
            .lock()
            .unwrap()
            .push((options.out.display().to_string(), self.clock.now()));
        self.clock.advance(self.minutes);
        Ok(manifest(&options))
    }
}

#[tokio::test]
async fn the_scheduler_runs_due_jobs_once_and_skips_a_job_still_running() {
    let clock = FakeClock(Arc::new(Mutex::new(utc(2026, 11, 1, 0, 0))));
    let steps = SlowBill {
        clock: clock.clone(),
        minutes: 25,
        runs: Mutex::new(Vec::new()),
    };
    let jobs = vec![scheduled("every10", "*/10 * * * *")];
    let mut s = Scheduler::new(jobs, clock.clone(), steps);

    // Nothing is due at the start: fire times before it are not caught up.
    assert!(s.tick().await.is_empty());

    // 00:10 is due; the run takes 25 minutes, to 00:35.
    clock.set(utc(2026, 11, 1, 0, 10));
    let events = s.tick().await;
    assert_eq!(events.len(), 1);
    match &events[0] {
        TickEvent::Ran { due, fires, report } => {
            assert_eq!(*due, utc(2026, 11, 1, 0, 10));
            assert_eq!(*fires, 1);
            assert_eq!(report.job, "every10");
            assert!(report.succeeded());
        }
        other => panic!("expected a run, got {other:?}"),
    }
    assert_eq!(clock.now(), utc(2026, 11, 1, 0, 35));

    // 00:20 and 00:30 came due while that run was going: skipped, with the first named.
    let events = s.tick().await;
    assert_eq!(events.len(), 1);
    match &events[0] {
        TickEvent::SkippedStillRunning {
            job,
            due,
            previous_started,
            previous_finished,
        } => {
            assert_eq!(job, "every10");
            assert_eq!(*due, utc(2026, 11, 1, 0, 20));
            assert_eq!(*previous_started, utc(2026, 11, 1, 0, 10));
            assert_eq!(*previous_finished, utc(2026, 11, 1, 0, 35));
        }
        other => panic!("expected a skip, got {other:?}"),
    }

    // The next fire time after the look, and it runs.
    let next = next_due(s.jobs(), clock.now()).unwrap();
    assert_eq!(next, utc(2026, 11, 1, 0, 40));
    clock.sleep_until(next).await;
    let events = s.tick().await;
    assert!(matches!(&events[..], [TickEvent::Ran { due, .. }] if *due == next));

    // That run went from 00:40 to 01:05; then the machine slept until 02:00. 00:50 and
    // 01:00 fell inside the run (skipped); 01:10 to 02:00 are six fire times, one run.
    clock.set(utc(2026, 11, 1, 2, 0));
    let events = s.tick().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], TickEvent::SkippedStillRunning { due, .. } if *due == utc(2026, 11, 1, 0, 50)),
        "{events:?}"
    );
    assert!(
        matches!(&events[1], TickEvent::Ran { due, fires: 6, .. } if *due == utc(2026, 11, 1, 1, 10)),
        "{events:?}"
    );
    assert_eq!(clock.now(), utc(2026, 11, 1, 2, 25));
}

// ---------------------------------------------------------------- the runner

fn manifest(options: &RunOptions) -> Manifest {
    Manifest {
        billrun_version: "test",
        period: options.period.to_string(),
        dataset: options.data.clone(),
        as_of: None,
        threads: 1,
        carve_order: options.carve_order.as_str(),
        usage: UsageCounts {
            read: 10,
            rejected: 1,
            duplicates: 0,
            outside_period: 0,
            unrated: 2,
            rated: 7,
            late: 0,
            settled: 0,
        },
        invoices: 3,
        contracts: 0,
        billed: BTreeMap::from([
            ("EUR".to_string(), "132.40".to_string()),
            ("USD".to_string(), "933.18".to_string()),
        ]),
        rejects_by_table: BTreeMap::from([("usage".to_string(), 1)]),
        inputs: Vec::new(),
        outputs: Vec::new(),
        stages: Vec::new(),
        rating_order: Default::default(),
        books: None,
        warnings: Vec::new(),
    }
}

fn import_summary() -> ImportSummary {
    let file =
        |name: &str, table: &str, status: FileStatus, loaded, rejected, reason: Option<&str>| {
            FileOutcome {
                file: name.into(),
                table: Some(table.into()),
                sha256: "00".repeat(32),
                status,
                rows_loaded: loaded,
                rows_rejected: rejected,
                reason: reason.map(Into::into),
                moved_to: format!("processed/2026-11-01/{name}"),
            }
        };
    ImportSummary {
        inbox: "inbox".into(),
        dataset: "dataset".into(),
        files: vec![
            file("usage/u1.csv", "usage", FileStatus::Loaded, 1200, 3, None),
            file(
                "customers.csv",
                "customers",
                FileStatus::Loaded,
                40,
                1,
                None,
            ),
            file(
                "usage/u0.csv",
                "usage",
                FileStatus::AlreadyLoaded,
                0,
                0,
                None,
            ),
            file(
                "orders/bad.csv",
                "orders",
                FileStatus::Failed,
                0,
                0,
                Some("wrong header: missing column `order_id`"),
            ),
        ],
        rows_by_table: BTreeMap::from([
            ("customers".to_string(), (40, 1)),
            ("usage".to_string(), (1200, 3)),
        ]),
        top_reject_reasons: vec![
            ("negative quantity".to_string(), 2),
            ("unknown currency `XYZ`".to_string(), 2),
        ],
    }
}

/// Steps whose import succeeds with [`import_summary`] and whose bill run fails.
#[derive(Debug)]
struct FailingBill;

impl StepRunner for FailingBill {
    async fn import(&self, _: ImportOptions) -> Result<ImportSummary, String> {
        Ok(import_summary())
    }
    async fn bill(&self, _: RunOptions) -> Result<Manifest, String> {
        Err("dataset has no `customers` table (expected files under `customers/`)".into())
    }
}

fn job_in(dir: &Path, steps: &str, dataset: &str) -> Job {
    let text = format!(
        "name = \"t\"\ninbox = \"inbox\"\ndataset = \"{dataset}\"\nout = \"runs/{{period}}\"\nperiod = \"2026-10\"\nsteps = {steps}\n\
         [[notify]]\nkind = \"outbox\"\npath = \"outbox\"\n"
    );
    let file = dir.join("t.toml");
    std::fs::write(&file, text).unwrap();
    billrun_jobs::load_job(&file).unwrap()
}

fn outbox_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Each step of `report` with what it came to, in order.
fn statuses(report: &billrun_jobs::JobReport) -> Vec<(Step, StepStatus)> {
    report.steps.iter().map(|s| (s.step, s.status)).collect()
}

#[tokio::test]
async fn a_failing_step_stops_the_later_ones_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_in(dir.path(), r#"["import", "rate", "notify"]"#, "ds");
    let report = run_job_with(&job, date(2026, 11, 1), &FailingBill).await;
    assert_eq!(
        statuses(&report),
        vec![
            (Step::Import, StepStatus::Done),
            (Step::Rate, StepStatus::Failed),
            (Step::Notify, StepStatus::Done),
        ]
    );
    assert_eq!(
        report.steps[0].detail,
        "2 files loaded, 1 already loaded, 1 failed; 1240 rows loaded, 4 rejected"
    );
    assert_eq!(
        report.failed,
        Some((
            Step::Rate,
            "dataset has no `customers` table (expected files under `customers/`)".into()
        ))
    );
    assert!(!report.succeeded());

    // The failure went to the outbox, as JSON and as text.
    let files = outbox_files(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(json["outcome"], "failed");
    assert_eq!(json["period"], "2026-10");
    assert_eq!(json["failed_step"]["step"], "rate");
    assert_eq!(
        json["failed_step"]["error"],
        "dataset has no `customers` table (expected files under `customers/`)"
    );
    assert_eq!(json["import"]["files_failed"], 1);
    assert_eq!(json["import"]["rows_by_table"]["usage"]["loaded"], 1200);
    assert_eq!(json["steps"][1]["status"], "failed");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        text.starts_with("billrun t: FAILED at step rate (2026-10)\n"),
        "{text}"
    );
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("t-")
    );
}

#[tokio::test]
async fn the_steps_after_a_failed_one_are_skipped_but_notify_runs() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_in(dir.path(), r#"["rate", "import", "notify"]"#, "ds");
    let report = run_job_with(&job, date(2026, 11, 1), &FailingBill).await;
    assert_eq!(
        statuses(&report),
        vec![
            (Step::Rate, StepStatus::Failed),
            (Step::Import, StepStatus::Skipped),
            (Step::Notify, StepStatus::Done),
        ]
    );
    assert_eq!(report.steps[1].detail, "not run: step `rate` failed");
    assert!(report.import.is_none());
}

#[tokio::test]
async fn a_failure_after_the_notify_step_is_still_told() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_in(dir.path(), r#"["import", "notify", "rate"]"#, "ds");
    let report = run_job_with(&job, date(2026, 11, 1), &FailingBill).await;
    assert_eq!(report.failed.as_ref().map(|f| f.0), Some(Step::Rate));
    // Notified twice: once at the notify step, once at the end for the failure.
    assert_eq!(report.notifications.len(), 2);
    assert!(report.notifications.iter().all(|n| n.status == "sent"));
}

#[tokio::test]
async fn the_real_bill_run_on_a_missing_dataset_fails_the_rate_step() {
    let dir = tempfile::tempdir().unwrap();
    let job = job_in(dir.path(), r#"["rate", "notify"]"#, "no-such-dataset");
    let report = run_job(&job, date(2026, 11, 1)).await;
    let statuses: Vec<StepStatus> = report.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Failed, StepStatus::Done]);
    let (step, error) = report.failed.clone().unwrap();
    assert_eq!(step, Step::Rate);
    assert_eq!(
        error,
        format!(
            "dataset location `{}` is not usable: No such file or directory (os error 2)",
            dir.path().join("no-such-dataset").display()
        )
    );
    // A failed run publishes nothing.
    assert!(!dir.path().join("runs/2026-10").exists());
}

#[tokio::test]
async fn the_real_bill_run_of_the_sample_bills_its_totals() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo().join("data-samples/sample/input");
    let job = job_in(
        dir.path(),
        r#"["rate", "notify"]"#,
        sample.to_str().unwrap(),
    );
    let report = run_job(&job, date(2026, 11, 1)).await;
    assert!(report.succeeded(), "{:?}", report.steps);
    assert!(dir.path().join("runs/2026-10/manifest.json").exists());
    // The totals of data-samples/sample/expected/invoices.csv, per currency.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outbox_files(dir.path())[0]).unwrap())
            .unwrap();
    let billed = &json["run"]["billed"];
    let billed: BTreeMap<String, f64> = billed
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, v)| (c.clone(), v.as_str().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(
        billed,
        BTreeMap::from([
            ("EUR".to_string(), 132.40),
            ("JPY".to_string(), 4978.0),
            ("KWD".to_string(), 2.5),
            ("USD".to_string(), 933.18),
        ])
    );
    assert_eq!(
        json["run"]["invoices"],
        report.manifest.as_ref().unwrap().invoices
    );
}

#[tokio::test]
async fn the_job_carve_order_reaches_the_bill_run() {
    let dir = tempfile::tempdir().unwrap();
    let revenue = repo().join("data-samples/revenue/input");
    let file = dir.path().join("carve.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"carve\"\ninbox = \"inbox\"\ndataset = \"{}\"\nout = \"runs/{{period}}\"\n\
             period = \"2026-10\"\ncarve_order = \"carve-then-allocate\"\n\
             steps = [\"rate\"]\n",
            revenue.display()
        ),
    )
    .unwrap();
    let job = billrun_jobs::load_job(&file).unwrap();
    assert_eq!(job.carve_order, CarveOrder::CarveThenAllocate);
    let report = run_job(&job, date(2026, 11, 1)).await;
    assert!(report.succeeded(), "{:?}", report.steps);
    assert_eq!(
        report.manifest.as_ref().unwrap().carve_order,
        "carve-then-allocate"
    );
    let out = dir.path().join("runs/2026-10");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["carve_order"], "carve-then-allocate");
    // The bundle as data-samples/revenue/expected/revenue_allocations_carve_then_allocate.csv
    // has it: 10 % of the stated 900 set aside for support, 1110 by SSP 1000:250:250.
    // (Allocate then carve would give 720 / 280 / 200.)
    let batches = query(
        &out,
        "SELECT line_id, allocated FROM revenue_allocations \
         WHERE contract_id = 'K-BUNDLE' ORDER BY line_id",
    )
    .await
    .unwrap();
    assert_eq!(
        render(&batches, OutputFormat::Csv).unwrap(),
        "line_id,allocated\nL1,740.0000\nL2,275.0000\nL3,185.0000\n"
    );
}

// ---------------------------------------------------------------- notifications

fn summary() -> Summary {
    let mut s = Summary::for_import(
        &import_summary(),
        utc(2026, 11, 1, 2, 30),
        utc(2026, 11, 1, 2, 31),
    );
    s.job = "nightly".into();
    s.period = Some("2026-10".into());
    s.run = Some(billrun_jobs::notify::RunPart::from_manifest(&manifest(
        &RunOptions {
            as_of: None,
            data: "dataset".into(),
            out: "out".into(),
            period: BillingMonth {
                year: 2026,
                month: 10,
            },
            threads: None,
            carve_order: CarveOrder::AllocateThenCarve,
            memory_limit: None,
            books: None,
            preview: false,
            progress: billrun_pipeline::Progress::hidden(),
        },
    )));
    s
}

#[test]
fn the_summary_renders_as_text_and_json() {
    let s = summary();
    assert_eq!(
        s.to_text(),
        "billrun nightly: succeeded (2026-10)
started 2026-11-01T02:30:00Z, finished 2026-11-01T02:31:00Z

steps:
  import     done             2 files loaded, 1 already loaded, 1 failed; 1240 rows loaded, 4 rejected

import from inbox into dataset:
  files: 2 loaded, 1 already loaded, 1 failed
  failed file orders/bad.csv: wrong header: missing column `order_id`
  rows by table (loaded / rejected):
    customers        40 / 1
    usage            1200 / 3
  most frequent reject reasons:
         2  negative quantity
         2  unknown currency `XYZ`

bill run 2026-10 of dataset:
  invoices: 3
  billed EUR: 132.40
  billed USD: 933.18
  usage: 10 read, 7 rated, 2 unrated, 1 rejected
  rejected rows, all tables: 1
"
    );
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "job": "nightly",
            "outcome": "succeeded",
            "period": "2026-10",
            "started_at": "2026-11-01T02:30:00Z",
            "finished_at": "2026-11-01T02:31:00Z",
            "failed_step": null,
            "steps": [{"step": "import", "status": "done",
                "detail": "2 files loaded, 1 already loaded, 1 failed; 1240 rows loaded, 4 rejected"}],
            "import": {
                "inbox": "inbox", "dataset": "dataset",
                "files_loaded": 2, "files_already_loaded": 1, "files_failed": 1,
                "failed_files": [{"file": "orders/bad.csv", "reason": "wrong header: missing column `order_id`"}],
                "rows_by_table": {"customers": {"loaded": 40, "rejected": 1},
                                  "usage": {"loaded": 1200, "rejected": 3}},
                "top_reject_reasons": [{"reason": "negative quantity", "count": 2},
                                       {"reason": "unknown currency `XYZ`", "count": 2}]
            },
            "run": {
                "period": "2026-10", "dataset": "dataset", "invoices": 3,
                "billed": {"EUR": "132.40", "USD": "933.18"},
                "usage_read": 10, "usage_rated": 7, "usage_unrated": 2, "usage_rejected": 1,
                "rejects_by_table": {"usage": 1}
            }
        })
    );
    // A swept file in failed/ fires import_failed; nothing failed, so job_failed does not.
    assert!(s.import_failed());
    assert!(s.triggers(&[Trigger::ImportFailed].into()));
    assert!(!s.triggers(&[Trigger::JobFailed].into()));
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn webhook(url: String) -> NotifyChannel {
    NotifyChannel {
        channel: Channel::Webhook(WebhookChannel {
            url,
            secret_env: "HOOK_SECRET".into(),
        }),
        on: [Trigger::JobFinished].into(),
    }
}

#[tokio::test]
async fn the_webhook_posts_the_json_summary_signed_with_hmac_sha256() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_http(listener, 1, "200 OK");
    let s = summary();
    let env = env_of(&[("HOOK_SECRET", "it's a secret")]);
    let outcomes = send_all_with(
        &[webhook(format!("http://127.0.0.1:{port}/hooks/billrun"))],
        &s,
        &env,
    )
    .await;
    assert_eq!(outcomes[0].status, "sent", "{outcomes:?}");
    let got = server.join().unwrap().remove(0);
    assert_eq!(got.request_line, "POST /hooks/billrun HTTP/1.1");
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.body, s.to_json().into_bytes());

    // Recompute the HMAC independently of the crate's `signature`.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"it's a secret").unwrap();
    mac.update(&got.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        got.headers[&SIGNATURE_HEADER.to_ascii_lowercase()],
        expected
    );
    assert_eq!(signature(b"it's a secret", &got.body), expected);
    // A known vector (RFC 4231 test case 2) pins the construction itself.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn a_failing_channel_is_reported_and_the_others_still_go() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_http(listener, 1, "500 Internal Server Error");
    let outbox = NotifyChannel {
        channel: Channel::Outbox(OutboxChannel {
            path: dir.path().join("outbox").to_string_lossy().into_owned(),
        }),
        on: [Trigger::JobFinished].into(),
    };
    let channels = vec![
        webhook("http://127.0.0.1:1/unreachable".into()), // secret missing: fails first
        webhook(format!("http://127.0.0.1:{port}/h")),    // answers 500
        outbox,
    ];
    let env = env_of(&[]);
    let outcomes = send_all_with(&channels, &summary(), &env).await;
    assert_eq!(
        outcomes[0].error.as_deref(),
        Some("webhook http://127.0.0.1:1/unreachable: environment variable HOOK_SECRET is not set")
    );
    // Now with the secret: the server's 500 is the failure.
    let env = env_of(&[("HOOK_SECRET", "k")]);
    let outcomes2 = send_all_with(&channels[1..], &summary(), &env).await;
    assert_eq!(
        outcomes2[0].error.as_deref(),
        Some(
            format!("webhook http://127.0.0.1:{port}/h: POST answered 500 Internal Server Error")
                .as_str()
        )
    );
    server.join().unwrap();
    assert_eq!(outcomes[2].status, "sent");
    assert_eq!(outcomes2[1].status, "sent");
    // Both runs wrote into the outbox; the names carry the job and the finish time.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains(&"nightly-20261101T023100Z.json".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"nightly-20261101T023100Z.txt".to_string()),
        "{names:?}"
    );
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[tokio::test]
async fn the_email_reaches_a_real_smtp_server_with_the_summary() {
    let Some(smtp) = start_smtp("billrun:pa55word") else {
        return;
    };
    let channel = NotifyChannel {
        channel: Channel::Email(EmailChannel {
            to: vec![
                "billing@example.invalid".into(),
                "Finance <finance@example.invalid>".into(),
            ],
            from: "billrun@example.invalid".into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: smtp.port,
            starttls: false,
            username_env: Some("SMTP_USER".into()),
            password_env: Some("SMTP_PASSWORD".into()),
        }),
        on: [Trigger::ImportFailed].into(),
    };
    let env = env_of(&[("SMTP_USER", "billrun"), ("SMTP_PASSWORD", "pa55word")]);
    let outcomes = send_all_with(std::slice::from_ref(&channel), &summary(), &env).await;
    assert_eq!(outcomes[0].status, "sent", "{outcomes:?}");

    let meta_path = smtp.maildir.path().join("0001.json");
    for _ in 0..100 {
        if meta_path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["mail_from"], "billrun@example.invalid");
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!(["billing@example.invalid", "finance@example.invalid"])
    );
    assert_eq!(meta["auth_user"], "billrun");
    let raw = std::fs::read_to_string(smtp.maildir.path().join("0001.eml")).unwrap();
    // Undo quoted-printable soft line breaks, should the mailer have used them.
    let message = raw.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        message.contains("\r\nSubject: billrun nightly: succeeded (2026-10)\r\n"),
        "{message}"
    );
    assert!(
        message
            .contains("\r\nTo: billing@example.invalid, \"Finance\" <finance@example.invalid>\r\n")
            || message
                .contains("\r\nTo: billing@example.invalid, Finance <finance@example.invalid>\r\n"),
        "{message}"
    );
    for expected in [
        "files: 2 loaded, 1 already loaded, 1 failed",
        "failed file orders/bad.csv: wrong header: missing column `order_id`",
        "usage            1200 / 3",
        "2  negative quantity",
        "billed EUR: 132.40",
        "billed USD: 933.18",
    ] {
        assert!(
            message.contains(expected),
            "missing `{expected}` in:\n{message}"
        );
    }

    // A wrong password is the channel's failure, and the password is not in the error.
    let env = env_of(&[("SMTP_USER", "billrun"), ("SMTP_PASSWORD", "wrong-pw")]);
    let outcomes = send_all_with(std::slice::from_ref(&channel), &summary(), &env).await;
    let error = outcomes[0].error.clone().expect("a wrong password fails");
    assert!(
        error.starts_with("email to billing@example.invalid"),
        "{error}"
    );
    assert!(
        !error.contains("wrong-pw") && !error.contains("pa55word"),
        "{error}"
    );
}

#[test]
fn an_unused_mapping_type_still_matches_the_pipeline() {
    // The job's mappings are the sweep's `Mapping`, field for field.
    let m = Mapping {
        name: "n".into(),
        file_pattern: "p".into(),
        table: Table::Usage,
        sql: "SELECT * FROM source".into(),
    };
    let text = format!(
        "{MINIMAL}[[mappings]]\nname = \"n\"\nfile_pattern = \"p\"\ntable = \"usage\"\nsql = \"SELECT * FROM source\"\n"
    );
    let job = parse_job(Path::new("j.toml"), &text).unwrap();
    assert_eq!(job.mappings, vec![m]);
    let _ = Schedule::clone; // the schedule type is public for callers that list jobs
}
