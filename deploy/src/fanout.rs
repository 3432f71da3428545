//! Many targets at once: each profile (`--profiles`) or account (`--accounts` with
//! `--assume-role`), in each region (`--regions`), run concurrently with a bound. One target's
//! failure never stops the others; the result is one row per target, as a table or JSON, and
//! the failed targets can be run again alone (`--only-failed`).
//!
//! Targets of the same account run one after another, in the order given: IAM roles are
//! account-wide, and `down` keeps the function role for every region of an account but the
//! last. Buckets are not: each region has its own (`bucket::in_region`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, Instrument};

use crate::cli::{Command, Global};
use crate::command::{self, Context, Done};
use crate::error::{exit, Error, Result};
use crate::lab::Lab;

/// How long connecting to one target (credentials, assumed role, account id) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// One target: where the credentials come from, and the region (`None`: the configured one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Target {
    /// Who: the alias, profile or account, else `default` (the configured credentials).
    pub fn name(&self) -> String {
        self.alias
            .clone()
            .or_else(|| self.profile.clone())
            .or_else(|| self.account.clone())
            .unwrap_or_else(|| "default".into())
    }

    /// How the target is named in progress lines: who, and the region if given.
    pub fn label(&self) -> String {
        match &self.region {
            Some(region) => format!("{}/{region}", self.name()),
            None => self.name(),
        }
    }
}

/// The target list of the command line, or `None` for the single target of the usual flags.
pub fn targets(global: &Global) -> Result<Option<Vec<Target>>> {
    let args = &global.targets;
    let mut bases: Vec<Target> = Vec::new();
    if let Some(file) = &args.only_failed {
        let failed = failed_targets(file)?;
        if failed.is_empty() {
            return Err(Error::Usage(format!("{}: no target failed in that run; nothing to do", file.display())));
        }
        return Ok(Some(failed));
    }
    if let Some(file) = &args.accounts {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Usage(format!("cannot read --accounts {}: {e}", file.display())))?;
        for (account, alias) in parse_accounts(&text).map_err(|e| Error::Usage(format!("{}: {e}", file.display())))? {
            bases.push(Target {
                account: Some(account),
                alias,
                assume_role: Some(args.assume_role.clone()),
                ..Target::default()
            });
        }
    } else if !args.profiles.is_empty() {
        for profile in &args.profiles {
            let profile = profile.trim();
            if profile.is_empty() {
                return Err(Error::Usage("--profiles has an empty name; write e.g. --profiles alice,bob".into()));
            }
            bases.push(Target { profile: Some(profile.to_owned()), ..Target::default() });
        }
    } else if !args.regions.is_empty() {
        bases.push(Target { profile: global.profile.clone(), ..Target::default() });
    } else {
        return Ok(None);
    }
    let regions: Vec<Option<String>> = if args.regions.is_empty() {
        vec![global.region.clone()]
    } else {
        args.regions.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).map(|r| Some(r.to_owned())).collect()
    };
    let mut targets = Vec::new();
    for base in &bases {
        for region in &regions {
            targets.push(Target { region: region.clone(), ..base.clone() });
        }
    }
    Ok(Some(targets))
}

/// `--accounts` lines: a 12-digit account id, optionally an alias; `#` starts a comment.
pub fn parse_accounts(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut accounts: Vec<(String, Option<String>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty());
        let account = fields.next().unwrap_or_default();
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "line {}: `{account}` is not a 12-digit account id; write one account per line: ACCOUNT_ID [ALIAS]",
                number + 1
            ));
        }
        let alias = fields.next().map(str::to_owned);
        if let Some(extra) = fields.next() {
            return Err(format!("line {}: unexpected `{extra}` after the alias; write ACCOUNT_ID [ALIAS]", number + 1));
        }
        if accounts.iter().any(|(a, _)| a == account) {
            return Err(format!("line {}: account {account} is listed twice", number + 1));
        }
        accounts.push((account.to_owned(), alias));
    }
    if accounts.is_empty() {
        return Err("no account listed; write one account per line: ACCOUNT_ID [ALIAS]".into());
    }
    Ok(accounts)
}

/// The targets that failed in an earlier run, from its JSON.
fn failed_targets(file: &Path) -> Result<Vec<Target>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read --only-failed {}: {e}", file.display())))?;
    let run: Run = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not the JSON of a run over targets ({e}); save one with `--output json > FILE`",
            file.display()
        ))
    })?;
    Ok(run.targets.into_iter().filter(|t| t.outcome == Outcome::Failed).map(|t| t.target).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

/// One target's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    pub target: Target,
    /// The account and region reached, once connected.
    pub account: Option<String>,
    pub region: Option<String>,
    pub outcome: Outcome,
    pub exit_code: u8,
    pub duration_ms: u64,
    /// What changed or was found, or the error.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// A command over every target.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub command: String,
    pub targets: Vec<TargetResult>,
}

impl Run {
    pub fn failed(&self) -> impl Iterator<Item = &TargetResult> {
        self.targets.iter().filter(|t| t.outcome == Outcome::Failed)
    }

    /// 0 when every target succeeded; the failures' exit code when they all share one; else 1.
    pub fn exit_code(&self) -> u8 {
        let mut codes = self.failed().map(|t| t.exit_code);
        match codes.next() {
            None => 0,
            Some(first) if codes.all(|c| c == first) => first,
            Some(_) => exit::FAILED,
        }
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.command == "lab check" {
            // A column per step of the lab.
            return crate::check::write_class_table(f, self);
        }
        let rows: Vec<[String; 6]> = self
            .targets
            .iter()
            .map(|t| {
                [
                    t.target.name(),
                    t.account.clone().or_else(|| t.target.account.clone()).unwrap_or_else(|| "-".into()),
                    t.region.clone().or_else(|| t.target.region.clone()).unwrap_or_else(|| "-".into()),
                    match t.outcome {
                        Outcome::Ok => "ok".into(),
                        Outcome::Failed => "FAILED".into(),
                    },
                    format!("{:.1} s", t.duration_ms as f64 / 1000.0),
                    // One line per target; the JSON has all of it.
                    t.detail.lines().next().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        let header = ["TARGET", "ACCOUNT", "REGION", "OUTCOME", "TIME", "DETAIL"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 6]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == cells.len() - 1 {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            writeln!(f, "{}", text.trim_end())
        };
        line(f, header)?;
        for row in &rows {
            line(f, [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]])?;
        }
        let failed = self.failed().count();
        writeln!(f, "{} of {} targets ok, {failed} failed", self.targets.len() - failed, self.targets.len())
    }
}

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

/// The command line that runs the failed targets again, by listing them.
pub fn retry_hint(run: &Run) -> Option<String> {
    let failed: Vec<&Target> = run.failed().map(|t| &t.target).collect();
    if failed.is_empty() {
        return None;
    }
    let mut profiles: Vec<&str> = Vec::new();
    let mut regions: Vec<&str> = Vec::new();
    for target in &failed {
        let Some(profile) = target.profile.as_deref() else {
            return Some(format!("deploy {} --only-failed FILE, with FILE from this run's --output json", run.command));
        };
        if !profiles.contains(&profile) {
            profiles.push(profile);
        }
        if let Some(region) = target.region.as_deref().filter(|r| !regions.contains(r)) {
            regions.push(region);
        }
    }
    let regions = if regions.is_empty() { String::new() } else { format!(" --regions {}", regions.join(",")) };
    Some(format!("deploy {} --profiles {}{regions}", run.command, profiles.join(",")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn global(args: &[&str]) -> Global {
        Cli::parse_from([&["deploy"], args, &["status"]].concat()).global
    }

    fn row(target: Target, outcome: Outcome, exit_code: u8) -> TargetResult {
        TargetResult {
            target,
            account: None,
            region: None,
            outcome,
            exit_code,
            duration_ms: 1500,
            detail: "d".into(),
            result: None,
        }
    }

    #[test]
    fn account_files_take_ids_aliases_and_comments() {
        let parsed = parse_accounts("# class of 2026\n111111111111 alice\n\n222222222222,bob # late\n333333333333\n");
        assert_eq!(
            parsed.unwrap(),
            [
                ("111111111111".into(), Some("alice".into())),
                ("222222222222".into(), Some("bob".into())),
                ("333333333333".into(), None)
            ]
        );
    }

    #[test]
    fn bad_account_files_name_the_line_and_the_fix() {
        let cases = [
            ("11111111111 alice", "line 1: `11111111111` is not a 12-digit account id"),
            ("111111111111 alice\nalice 111111111111", "line 2: `alice` is not a 12-digit account id"),
            ("111111111111 alice extra", "line 1: unexpected `extra` after the alias"),
            ("111111111111\n111111111111", "line 2: account 111111111111 is listed twice"),
            ("# nobody\n", "no account listed"),
        ];
        for (text, expected) in cases {
            let err = parse_accounts(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn targets_are_each_profile_in_each_region() {
        let listed = targets(&global(&["--profiles", "a,b", "--regions", "us-west-2,eu-west-1"])).unwrap().unwrap();
        let labels: Vec<String> = listed.iter().map(Target::label).collect();
        assert_eq!(labels, ["a/us-west-2", "a/eu-west-1", "b/us-west-2", "b/eu-west-1"]);
        assert!(targets(&global(&["--region", "us-west-2"])).unwrap().is_none(), "no target list");
        let regions = targets(&global(&["--profile", "p", "--regions", "us-east-1,us-west-2"])).unwrap().unwrap();
        assert!(regions.iter().all(|t| t.profile.as_deref() == Some("p")));
    }

    #[test]
    fn conflicting_target_flags_are_usage_errors() {
        for args in [
            &["deploy", "--profiles", "a", "--profile", "b", "status"][..],
            &["deploy", "--regions", "us-west-2", "--region", "eu-west-1", "status"],
            &["deploy", "--assume-role", "Admin", "status"],
            &["deploy", "--concurrency", "0", "status"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn only_failed_reads_the_failed_targets_of_a_run() {
        let alice = Target { profile: Some("alice".into()), ..Target::default() };
        let bob = Target { profile: Some("bob".into()), region: Some("eu-west-1".into()), ..Target::default() };
        let run = Run {
            command: "up".into(),
            targets: vec![row(alice, Outcome::Ok, 0), row(bob.clone(), Outcome::Failed, 3)],
        };
        let file = std::env::temp_dir().join(format!("fanout-only-failed-{}.json", std::process::id()));
        std::fs::write(&file, serde_json::to_string(&run).unwrap()).unwrap();
        let path = file.display().to_string();
        assert_eq!(targets(&global(&["--only-failed", &path])).unwrap().unwrap(), [bob]);
        assert_eq!(run.exit_code(), 3);
        assert_eq!(retry_hint(&run).unwrap(), "deploy up --profiles bob --regions eu-west-1");

        std::fs::write(&file, "{}").unwrap();
        let err = targets(&global(&["--only-failed", &path])).unwrap_err().to_string();
        assert!(err.contains("is not the JSON of a run over targets"), "{err}");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn mixed_failures_exit_1_and_the_table_has_a_row_per_target() {
        let run = Run {
            command: "down".into(),
            targets: vec![
                row(Target { account: Some("111111111111".into()), ..Target::default() }, Outcome::Failed, 3),
                row(Target { alias: Some("bob".into()), ..Target::default() }, Outcome::Failed, 1),
                row(Target::default(), Outcome::Ok, 0),
            ],
        };
        assert_eq!(run.exit_code(), exit::FAILED);
        let table = run.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("TARGET"), "{table}");
        assert!(lines[1].starts_with("111111111111") && lines[1].contains("FAILED"), "{table}");
        assert!(lines[3].starts_with("default") && lines[3].contains(" ok "), "{table}");
        assert_eq!(lines[4], "1 of 3 targets ok, 2 failed");
        assert!(retry_hint(&run).unwrap().contains("--only-failed FILE"));
    }
}
