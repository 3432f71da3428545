//! One command on one target (an account and region): what `deploy` runs once, or once per
//! target with a target list (see [`crate::fanout`]).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Command, Global, LabCommand};
use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::lab_run::{RunOptions, RunReport};
use crate::report::{Action, Report};
use crate::status::{Compliance, Status};
use crate::up::{DownOptions, UpOptions};

/// What a command produced; printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Done {
    Report(Report),
    Status(Box<Status>),
    Evaluation(Option<Compliance>),
    Run(Box<RunReport>),
    Check(Box<crate::check::Check>),
    Prepared(Box<crate::prepare::Prepared>),
}

impl Done {
    /// One line for a table of targets: what changed, or what was found.
    pub fn summary(&self) -> String {
        match self {
            Done::Report(report) => summarize(report),
            Done::Status(status) => {
                let rule = status.rule.as_ref().and_then(|r| r.state.clone()).unwrap_or_else(|| "no rule".into());
                let recording = match &status.recorder {
                    Some(r) if r.recording => "recording",
                    Some(_) => "recorder stopped",
                    None => "no recorder",
                };
                format!("{recording}, rule {rule}, {}", compliance_counts(&status.compliance))
            }
            Done::Evaluation(None) => "evaluation requested".into(),
            Done::Evaluation(Some(compliance)) => compliance_counts(compliance),
            Done::Run(run) => match (run.reverted, run.revert_ms) {
                (true, Some(ms)) => format!("reverted {} in {ms} ms", run.group),
                (true, None) => format!("reverted {}", run.group),
                (false, _) => format!("{} not reverted", run.group),
            },
            Done::Check(check) => check.summary(),
            Done::Prepared(prepared) => format!("uploaded {}", prepared.s3_uri),
        }
    }
}

fn summarize(report: &Report) -> String {
    let mut counts: Vec<(Action, usize)> = Vec::new();
    for step in &report.steps {
        match counts.iter_mut().find(|(a, _)| *a == step.action) {
            Some((_, n)) => *n += 1,
            None => counts.push((step.action, 1)),
        }
    }
    let changes: Vec<String> = counts
        .iter()
        .filter(|(action, _)| action.is_change() || *action == Action::Failed)
        .map(|(action, n)| format!("{n} {}", action.word(report.dry_run)))
        .collect();
    match (changes.is_empty(), report.dry_run) {
        (true, _) => "nothing to change".into(),
        (false, true) => format!("would: {}", changes.join(", ")),
        (false, false) => changes.join(", "),
    }
}

fn compliance_counts(compliance: &Compliance) -> String {
    if let Some(why) = &compliance.unavailable {
        return format!("compliance unavailable ({why})");
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for result in &compliance.results {
        match counts.iter_mut().find(|(c, _)| *c == result.compliance) {
            Some((_, n)) => *n += 1,
            None => counts.push((result.compliance.clone(), 1)),
        }
    }
    if counts.is_empty() {
        return "no evaluation yet".into();
    }
    counts.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Done::Report(report) => write!(f, "{report}"),
            Done::Status(status) => write!(f, "{status}"),
            Done::Evaluation(None) => Ok(()),
            Done::Evaluation(Some(compliance)) => {
                for r in &compliance.results {
                    writeln!(f, "{} {} {}", r.group_id, r.compliance, r.annotation.as_deref().unwrap_or(""))?;
                }
                Ok(())
            }
            Done::Run(run) => write!(f, "{run}"),
            Done::Check(check) => write!(f, "{check}"),
            Done::Prepared(prepared) => write!(f, "{prepared}"),
        }
    }
}

/// Whether the command deletes (and so asks first, unless `--yes`).
pub fn destroys(command: &Command, global: &Global) -> bool {
    match command {
        Command::Down { dry_run, .. } => !dry_run,
        Command::Lab { command: LabCommand::Reset { dry_run } } => !dry_run,
        // Against the local AWS this command started itself, there is nothing of the user's.
        Command::Lab { command: LabCommand::Run { keep, .. } } => !keep && !local_auto(global),
        _ => false,
    }
}

fn local_auto(global: &Global) -> bool {
    global.local && global.endpoint_url.is_none()
}

/// How to run a command on one target.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// `down` keeps the account-wide resources (the function role): another region of the same
    /// account still uses them.
    pub keep_account_wide: bool,
}

/// Runs `command` on the lab's target. `Done` comes with the error when there is something to
/// show for a failure (what `up` did before it stopped, what `down` could not delete).
/// `logs` and `local` are not target commands: they answer a usage error here.
pub async fn execute(lab: &Lab, command: &Command, global: &Global, context: Context) -> (Option<Done>, Option<Error>) {
    match command {
        Command::Up { zip, dry_run, use_existing_recorder, fast_path, policy } => {
            let options = UpOptions {
                zip: zip.clone(),
                dry_run: *dry_run,
                use_existing_recorder: *use_existing_recorder,
                fast_path: *fast_path,
                policy: *policy,
            };
            let (report, error) = crate::up::up(lab, &options).await;
            let shown = (error.is_none() || !report.steps.is_empty()).then_some(Done::Report(report));
            (shown, error)
        }
        Command::Down { dry_run, keep_groups } => {
            let options = DownOptions {
                dry_run: *dry_run,
                keep_account_wide: context.keep_account_wide,
                keep_groups: *keep_groups,
            };
            let report = crate::up::down_with(lab, &options).await;
            let groups = |s: &&crate::report::Step| matches!(s.resource, "group" | "group-record");
            let failed: Vec<String> =
                report.failed().filter(|s| !groups(s)).map(|s| format!("{} {}", s.resource, s.name)).collect();
            let unrestored: Vec<String> = report
                .failed()
                .filter(groups)
                .map(|s| format!("{} ({})", s.name, s.detail.as_deref().unwrap_or("failed")))
                .collect();
            let mut problems = Vec::new();
            if !failed.is_empty() {
                problems.push(format!(
                    "down left resources of the lab behind: {}; run `deploy down` again",
                    failed.join(", ")
                ));
            }
            if !unrestored.is_empty() {
                problems.push(format!("down could not restore the security groups: {}", unrestored.join("; ")));
            }
            let error = (!problems.is_empty()).then(|| Error::Failed(problems.join("; ")));
            (Some(Done::Report(report)), error)
        }
        Command::Lab { command: LabCommand::OpenPorts } => {
            split(crate::open_ports::open_ports(lab).await.map(Done::Report))
        }
        Command::Lab { command: LabCommand::Run { zip, keep, wait, fast_path } } => {
            let timeout =
                wait.unwrap_or(if global.local { Duration::from_secs(60) } else { Duration::from_secs(20 * 60) });
            let options = RunOptions {
                zip: zip.clone(),
                keep: *keep,
                timeout,
                local_port: local_auto(global).then_some(crate::local::LOCAL_PORT),
                fast_path: *fast_path,
                poll: crate::lab_run::poll_interval(global.local),
            };
            let report = match crate::lab_run::run(lab, &options).await {
                Ok(report) => report,
                Err(err) => return (None, Some(err)),
            };
            let error = if !report.reverted {
                Some(Error::Failed(format!("the rule did not revert {} within {timeout:?}", report.group)))
            } else if report.down.as_ref().is_some_and(|d| d.failed().next().is_some()) {
                Some(Error::Failed("down left resources of the lab behind; run `deploy down` again".into()))
            } else {
                None
            };
            (Some(Done::Run(Box::new(report))), error)
        }
        Command::Lab { command: LabCommand::Check { .. } } => {
            let check = crate::check::check(lab, crate::check::local_port(global)).await;
            let error = (!check.all_done())
                .then(|| Error::Failed(format!("not every step of the lab is done: {}", check.not_done().join(", "))));
            (Some(Done::Check(Box::new(check))), error)
        }
        Command::Lab { command: LabCommand::Reset { dry_run } } => {
            let report = crate::reset::reset(lab, *dry_run).await;
            let failed: Vec<String> = report.failed().map(|s| format!("{} {}", s.resource, s.name)).collect();
            let error = (!failed.is_empty()).then(|| {
                Error::Failed(format!(
                    "lab reset left resources behind: {}; run `deploy lab reset` again",
                    failed.join(", ")
                ))
            });
            (Some(Done::Report(report)), error)
        }
        Command::Lab { command: LabCommand::Prepare { zip } } => {
            split(crate::prepare::prepare(lab, zip.as_deref()).await.map(|p| Done::Prepared(Box::new(p))))
        }
        Command::Evaluate { wait } => split(crate::evaluate::evaluate(lab, *wait).await.map(Done::Evaluation)),
        Command::Status => split(crate::status::status(lab).await.map(|s| Done::Status(Box::new(s)))),
        Command::Logs { .. } | Command::Local { .. } => {
            (None, Some(Error::Usage("`logs` and `local` run on one target: drop the target list".into())))
        }
    }
}

fn split(result: Result<Done>) -> (Option<Done>, Option<Error>) {
    match result {
        Ok(done) => (Some(done), None),
        Err(err) => (None, Some(err)),
    }
}
