//! Many targets at once: each profile (`--profiles`) or account (`--accounts` with
//! `--assume-role`), in each region (`--regions`), run concurrently with a bound. One target's
//! failure never stops the others; the result is one row per target, as a table or JSON, and
//! the failed targets can be run again alone (`--only-failed`).
//!
//! Targets of the same account run one after another, in the order given: IAM roles are
//! account-wide, and `down` keeps the function role for every region of an account but the
//! last. Buckets are not: each region has its own (`bucket::in_region`).
//!
//! Here the run itself; `targets` reads the target list, `results` holds the rows, the table
//! and the exit code.

mod results;
mod targets;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tracing::{info, info_span, Instrument};

pub use results::{retry_hint, Outcome, Run, TargetResult};
pub use targets::{parse_accounts, targets, Target};

use crate::cli::{Command, Global};
use crate::command::{self, Context, Done};
use crate::error::{Error, Result};
use crate::lab::Lab;

/// How long connecting to one target (credentials, assumed role, account id) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks before destroying: given every (target, account, region) connected.
pub type Confirm<'a> = &'a (dyn Fn(&[(String, String, String)]) -> Result<()> + Sync);

/// Runs `command` on every target; never fails as a whole except when destruction is declined.
pub async fn run(global: &Global, command: &Command, targets: Vec<Target>, confirm: Confirm<'_>) -> Result<Run> {
    let concurrency = usize::from(global.targets.concurrency.max(1));
    let name = command_name(command);
    let started = Instant::now();

    // 1. Connect to every target (credentials, assumed roles, account ids), a few at a time.
    let connected: Vec<(Target, Instant, Result<Lab>)> = stream::iter(targets)
        .map(|target| {
            let span = info_span!(crate::progress::SPAN, label = %target.label());
            async move {
                let start = Instant::now();
                info!("connecting");
                let lab = match tokio::time::timeout(CONNECT_TIMEOUT, connect(global, &target)).await {
                    Ok(lab) => lab,
                    Err(_) => Err(Error::Failed(format!(
                        "no answer from AWS within {CONNECT_TIMEOUT:?} while checking the credentials"
                    ))),
                };
                (target, start, lab)
            }
            .instrument(span)
        })
        .buffered(concurrency)
        .collect()
        .await;

    // 2. Rows for the targets that could not connect, or repeat an account and region.
    let mut rows: Vec<Option<TargetResult>> = vec![None; connected.len()];
    let mut labs: Vec<(usize, Target, Lab)> = Vec::new();
    for (index, (target, start, lab)) in connected.into_iter().enumerate() {
        match lab {
            Err(err) => rows[index] = Some(failure(target, None, start, &err)),
            Ok(lab) => {
                if let Some((_, first, _)) =
                    labs.iter().find(|(_, _, other)| other.account == lab.account && other.region == lab.region)
                {
                    let err = Error::Usage(format!(
                        "account {}, region {} is also target {}; each runs once",
                        lab.account,
                        lab.region,
                        first.label()
                    ));
                    rows[index] = Some(failure(target, Some(&lab), start, &err));
                } else {
                    labs.push((index, target, lab));
                }
            }
        }
    }

    // 3. Ask once, naming every account and region.
    if command::destroys(command, global) && !global.yes && !labs.is_empty() {
        let listed: Vec<(String, String, String)> =
            labs.iter().map(|(_, t, lab)| (t.label(), lab.account.clone(), lab.region.clone())).collect();
        crate::progress::suspend(|| confirm(&listed))?;
    }
    if let Command::Up { dry_run: false, .. } | Command::Lab { command: crate::cli::LabCommand::Run { .. } } = command {
        if !global.yes && !labs.is_empty() {
            let mut impacts = Vec::new();
            for (_, target, lab) in &labs {
                let impact = crate::impact::preview(lab).await?;
                impacts.push((format!("{}: account {}, region {}", target.label(), lab.account, lab.region), impact));
            }
            crate::impact::confirm(&impacts)?;
        }
    }

    // 4. Run: accounts concurrently, the regions of one account in order.
    let mut by_account: BTreeMap<String, Vec<(usize, Target, Lab)>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for entry in labs {
        if !by_account.contains_key(&entry.2.account) {
            order.push(entry.2.account.clone());
        }
        by_account.entry(entry.2.account.clone()).or_default().push(entry);
    }
    let groups: Vec<Vec<(usize, Target, Lab)>> = order.iter().filter_map(|a| by_account.remove(a)).collect();
    let done: Vec<Vec<(usize, TargetResult)>> = stream::iter(groups)
        .map(|group| async move {
            let last = group.len().saturating_sub(1);
            let mut results = Vec::new();
            for (position, (index, target, lab)) in group.into_iter().enumerate() {
                let context = Context { keep_account_wide: position < last };
                let span = info_span!(crate::progress::SPAN, label = %target.label());
                let result = run_one(global, command, target, &lab, context).instrument(span).await;
                results.push((index, result));
            }
            results
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (index, result) in done.into_iter().flatten() {
        rows[index] = Some(result);
    }
    let targets: Vec<TargetResult> = rows.into_iter().flatten().collect();
    info!("{name} on {} targets took {:.1} s", targets.len(), started.elapsed().as_secs_f64());
    Ok(Run { command: name.to_owned(), targets })
}

async fn connect(global: &Global, target: &Target) -> Result<Lab> {
    let mut global = global.clone();
    if let Some(profile) = &target.profile {
        global.profile = Some(profile.clone());
    }
    if let Some(region) = &target.region {
        global.region = Some(region.clone());
    }
    let sdk = match (&target.account, &target.assume_role) {
        (Some(account), Some(role)) => crate::connect::assumed_sdk_config(&global, account, role).await?,
        _ => crate::connect::sdk_config(&global).await?,
    };
    let lab = crate::connect::connect_with(&global, sdk).await?;
    if let Some(account) = target.account.as_ref().filter(|a| **a != lab.account) {
        return Err(Error::Failed(format!(
            "the assumed role acts in account {}, not {account}; check the role's account in --accounts",
            lab.account
        )));
    }
    Ok(lab)
}

async fn run_one(global: &Global, command: &Command, target: Target, lab: &Lab, context: Context) -> TargetResult {
    let start = Instant::now();
    info!("running in account {}, region {}", lab.account, lab.region);
    let (done, error) = command::execute(lab, command, global, context).await;
    let result = done.as_ref().and_then(|d| serde_json::to_value(d).ok());
    let mut row = match &error {
        Some(err) => failure(target, Some(lab), start, err),
        None => TargetResult {
            target,
            account: Some(lab.account.clone()),
            region: Some(lab.region.clone()),
            outcome: Outcome::Ok,
            exit_code: 0,
            duration_ms: elapsed_ms(start),
            detail: done.as_ref().map(Done::summary).unwrap_or_default(),
            result: None,
        },
    };
    row.result = result;
    match row.outcome {
        Outcome::Ok => info!("done: {}", row.detail),
        Outcome::Failed => info!("FAILED: {}", row.detail),
    }
    row
}

fn failure(target: Target, lab: Option<&Lab>, start: Instant, err: &Error) -> TargetResult {
    TargetResult {
        target,
        account: lab.map(|l| l.account.clone()),
        region: lab.map(|l| l.region.clone()),
        outcome: Outcome::Failed,
        exit_code: err.exit_code(),
        duration_ms: elapsed_ms(start),
        detail: err.to_string(),
        result: None,
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Up { .. } => "up",
        Command::Down { .. } => "down",
        Command::Status => "status",
        Command::Evaluate { .. } => "evaluate",
        Command::Logs { .. } => "logs",
        Command::Local { .. } => "local",
        Command::Lab { command: crate::cli::LabCommand::OpenPorts } => "lab open-ports",
        Command::Lab { command: crate::cli::LabCommand::Run { .. } } => "lab run",
        Command::Lab { command: crate::cli::LabCommand::Check { .. } } => "lab check",
        Command::Lab { command: crate::cli::LabCommand::Reset { .. } } => "lab reset",
        Command::Lab { command: crate::cli::LabCommand::Prepare { .. } } => "lab prepare",
    }
}
