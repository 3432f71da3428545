//! What a run over many targets answers: a row per target, the table (or JSON) of them, the
//! exit code, and the command line that runs the failed targets again.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::targets::Target;
use crate::error::exit;

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
pub(super) mod tests {
    use super::*;

    /// A result row for tests (also `targets.rs`'s).
    pub(in crate::fanout) fn row(target: Target, outcome: Outcome, exit_code: u8) -> TargetResult {
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
