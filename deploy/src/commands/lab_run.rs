//! `lab run`: the whole lab in one command — `up`, open the default group's ports, wait
//! (bounded) for the rule to revert them, then show the inbound rules before and after, the
//! compliance history, the function's `revoking for` lines and the time to revert; then `down`
//! unless `--keep`.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use sg_function::aws::Ec2;

use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::progress::Wait;
use crate::report::Report;
use crate::up::{down, up, UpOptions};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub zip: Option<PathBuf>,
    pub keep: bool,
    pub timeout: Duration,
    /// The local AWS's port, when running against it: its evaluation history is read.
    pub local_port: Option<u16>,
    pub fast_path: bool,
    /// How often the group, the evaluations and the logs are read while waiting for the revert
    /// ([`poll_interval`]).
    pub poll: Duration,
}

/// How often `lab run` reads the group while it waits for the rule to revert it: every few
/// seconds on AWS, where EC2's request quota (a token bucket per account and region for
/// DescribeSecurityGroups, shared with the function that is reverting the group) must not be
/// spent on watching (EC2 API reference, "Request throttling for the Amazon EC2 API"); fast on
/// the local AWS, which has no quota and reverts in a second.
pub fn poll_interval(local: bool) -> Duration {
    if local {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    pub compliance: String,
    pub annotation: Option<String>,
    pub recorded: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub account: String,
    pub region: String,
    pub up: Report,
    pub group: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub reverted: bool,
    /// From the AuthorizeSecurityGroupIngress answer to the reverted group, in milliseconds.
    pub revert_ms: Option<u128>,
    pub evaluations: Vec<Evaluation>,
    pub log_lines: Vec<String>,
    pub down: Option<Report>,
}

const BASELINE: [&str; 2] = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];

async fn inbound(lab: &Lab, group: &str) -> Result<Vec<String>> {
    let state =
        lab.clients.ec2.describe_group(group).await.map_err(|e| Error::Failed(format!("reading {group}: {e}")))?;
    let mut rules: Vec<_> = state.map(|g| g.ingress.into_iter().map(|o| o.rule).collect()).unwrap_or_default();
    rules.sort();
    rules.dedup();
    Ok(rules.iter().map(ToString::to_string).collect())
}

pub async fn run(lab: &Lab, options: &RunOptions) -> Result<RunReport> {
    let up_options = UpOptions { zip: options.zip.clone(), fast_path: options.fast_path, ..UpOptions::default() };
    let (up_report, error) = up(lab, &up_options).await;
    if let Some(err) = error {
        crate::progress::eprint(&up_report.to_string());
        return Err(err);
    }
    let opened = crate::open_ports::open_ports(lab).await?;
    let opened_at = Instant::now();
    let group = opened.steps.first().map(|s| s.name.clone()).unwrap_or_default();
    // The group as open-ports made it (exactly its four rules): a read right after the change
    // may still show the group before it, as EC2's reads lag its writes.
    let mut before: Vec<sg_function::rules::Rule> =
        crate::open_ports::LAB_INGRESS.iter().filter_map(|r| r.parse().ok()).collect();
    before.sort();
    let before: Vec<String> = before.iter().map(ToString::to_string).collect();
    tracing::info!(
        "opened {group}: {}; waiting up to {:?} for the rule to revert it",
        before.join(", "),
        options.timeout
    );
    let mut after = before.clone();
    let mut revert_ms = None;
    let wait = Wait::start(format!("the rule to revert {group}"));
    while opened_at.elapsed() < options.timeout {
        after = inbound(lab, &group).await?;
        if after == BASELINE {
            revert_ms = Some(opened_at.elapsed().as_millis());
            break;
        }
        let left = options.timeout.saturating_sub(opened_at.elapsed());
        tokio::time::sleep(options.poll.min(left)).await;
    }
    drop(wait);
    // The revert itself triggers one more evaluation, which reports COMPLIANT; wait for it.
    let mut evaluations = history(lab, &group, options.local_port).await;
    let settle = Instant::now();
    let mut wait = None;
    while revert_ms.is_some()
        && evaluations.last().is_none_or(|e| e.compliance != "COMPLIANT")
        && settle.elapsed() < Duration::from_secs(10)
    {
        wait.get_or_insert_with(|| Wait::start(format!("the evaluation of {group} after the revert")));
        tokio::time::sleep(options.poll.max(Duration::from_millis(100))).await;
        evaluations = history(lab, &group, options.local_port).await;
    }
    drop(wait);
    let log_lines = revoking_lines(lab, revert_ms.is_some(), options.poll.max(Duration::from_millis(200))).await;
    let down = if options.keep { None } else { Some(down(lab, false).await) };
    Ok(RunReport {
        account: lab.account.clone(),
        region: lab.region.clone(),
        up: up_report,
        group,
        before,
        after,
        reverted: revert_ms.is_some(),
        revert_ms,
        evaluations,
        log_lines,
        down,
    })
}

/// The group's evaluations by the rule: the local AWS keeps the whole history; AWS answers the
/// latest.
async fn history(lab: &Lab, group: &str, local_port: Option<u16>) -> Vec<Evaluation> {
    if let Some(port) = local_port {
        if let Some(serde_json::Value::Array(all)) = crate::local::evaluations(port) {
            return all
                .iter()
                .filter(|e| e["rule"] == lab.names.rule.as_str() && e["resourceId"] == group)
                .filter(|e| e["account"].as_str().is_none_or(|a| a == lab.account))
                .map(|e| Evaluation {
                    compliance: e["compliance"].as_str().unwrap_or_default().to_owned(),
                    annotation: e["annotation"].as_str().map(str::to_owned),
                    recorded: e["recorded"].as_f64().and_then(|t| {
                        aws_smithy_types::DateTime::from_secs_f64(t)
                            .fmt(aws_smithy_types::date_time::Format::DateTime)
                            .ok()
                    }),
                })
                .collect();
        }
    }
    crate::status::status(lab)
        .await
        .map(|s| {
            s.compliance
                .results
                .into_iter()
                .filter(|r| r.group_id == group)
                .map(|r| Evaluation { compliance: r.compliance, annotation: r.annotation, recorded: r.recorded })
                .collect()
        })
        .unwrap_or_default()
}

/// The function's `revoking for` lines; waits (bounded) for them to reach the logs.
async fn revoking_lines(lab: &Lab, expect: bool, poll: Duration) -> Vec<String> {
    let deadline = Instant::now() + if expect { Duration::from_secs(10) } else { Duration::ZERO };
    let mut wait = None;
    loop {
        let lines: Vec<String> = crate::logs::fetch(lab, Some("revoking for"), 0)
            .await
            .map(|events| events.into_iter().map(|e| e.message.trim_end().to_owned()).collect())
            .unwrap_or_default();
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        wait.get_or_insert_with(|| Wait::start("the function's `revoking for` lines to reach its log group"));
        tokio::time::sleep(poll).await;
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.up)?;
        writeln!(f, "\ndefault group {} inbound rules", self.group)?;
        writeln!(f, "  after lab open-ports: {}", self.before.join(", "))?;
        writeln!(f, "  after the rule:       {}", self.after.join(", "))?;
        match self.revert_ms {
            Some(ms) => writeln!(f, "  reverted {ms} ms after the ports were opened")?,
            None => writeln!(f, "  NOT reverted within the wait")?,
        }
        writeln!(f, "\ncompliance history of {}", self.group)?;
        if self.evaluations.is_empty() {
            writeln!(f, "  none")?;
        }
        for e in &self.evaluations {
            writeln!(
                f,
                "  {} {:<14} {}",
                e.recorded.as_deref().unwrap_or("-"),
                e.compliance,
                e.annotation.as_deref().unwrap_or("")
            )?;
        }
        writeln!(f, "\nfunction log lines")?;
        if self.log_lines.is_empty() {
            writeln!(f, "  none")?;
        }
        for line in &self.log_lines {
            writeln!(f, "  {line}")?;
        }
        if let Some(down) = &self.down {
            write!(f, "\n{down}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_aws_the_group_is_read_every_few_seconds() {
        // EC2's DescribeSecurityGroups bucket refills at a few calls a second per account and
        // region, shared with the function: watching must take a small part of it.
        assert!(poll_interval(false) >= Duration::from_secs(2), "{:?}", poll_interval(false));
        assert!(poll_interval(true) <= Duration::from_millis(100));
    }
}
