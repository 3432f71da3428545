//! What a command did (or, with `--dry-run`, would do), as one value that prints as a table
//! (`--output text`) or serialises as JSON (`--output json`).

use std::fmt;

use serde::Serialize;
use tracing::info;

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
    /// Not there; nothing to do.
    Absent,
    /// Exists but is not the lab's (e.g. `--use-existing-recorder`); left exactly as it is.
    Kept,
    Failed,
}

impl Action {
    /// The word for the action, planned or done.
    pub fn word(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Create, true) => "create",
            (Action::Create, false) => "created",
            (Action::Update, true) => "update",
            (Action::Update, false) => "updated",
            (Action::Delete, true) => "delete",
            (Action::Delete, false) => "deleted",
            (Action::Unchanged, _) => "unchanged",
            (Action::Absent, _) => "absent",
            (Action::Kept, _) => "kept",
            (Action::Failed, _) => "failed",
        }
    }

    pub fn is_change(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Delete)
    }
}

/// One resource's line in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The kind of resource, e.g. `bucket`, `config-role`.
    pub resource: &'static str,
    pub name: String,
    pub action: Action,
    /// What changed, or why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Step {
    pub fn new(resource: &'static str, name: impl Into<String>, action: Action) -> Self {
        Step { resource, name: name.into(), action, detail: None }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        if !detail.is_empty() {
            self.detail = Some(detail);
        }
        self
    }

    /// Says on stderr that the step is over, one line per step (`done: bucket NAME created`), as
    /// it happens: an interrupted run shows how far it got.
    pub fn announce(self, dry_run: bool) -> Self {
        info!("done: {} {} {}", self.resource, self.name, self.action.word(dry_run));
        self
    }
}

/// The result of `up` or `down`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub command: &'static str,
    pub account: String,
    pub region: String,
    pub dry_run: bool,
    pub steps: Vec<Step>,
    /// The desired state `up` converges to (for `up` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<serde_json::Value>,
    /// `up`: what the rule's first evaluation will change; in JSON, one entry per group.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::impact::serialize_list")]
    pub impact: Option<crate::impact::Impact>,
}

impl Report {
    /// A report with no step yet.
    pub fn empty(command: &'static str, lab: &crate::lab::Lab, dry_run: bool) -> Self {
        Report {
            command,
            account: lab.account.clone(),
            region: lab.region.clone(),
            dry_run,
            steps: Vec::new(),
            desired: None,
            impact: None,
        }
    }

    /// Adds finished steps, announcing each.
    pub fn record(&mut self, steps: impl IntoIterator<Item = Step>) {
        for step in steps {
            self.steps.push(step.announce(self.dry_run));
        }
    }

    pub fn failed(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Failed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = if self.dry_run { " (dry run: nothing was changed)" } else { "" };
        writeln!(f, "{} in account {}, region {}{plan}", self.command, self.account, self.region)?;
        if let Some(impact) = &self.impact {
            write!(f, "{impact}")?;
        }
        let width = self.steps.iter().map(|s| s.resource.len()).max().unwrap_or(0);
        let name_width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for step in &self.steps {
            let line = format!(
                "  {:<width$}  {:<name_width$}  {:<9}  {}",
                step.resource,
                step.name,
                step.action.word(self.dry_run),
                step.detail.as_deref().unwrap_or("")
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_a_table_and_serialises_the_same_steps() {
        let report = Report {
            command: "up",
            account: "123456789012".into(),
            region: "us-west-2".into(),
            dry_run: true,
            steps: vec![
                Step::new("bucket", "config-bucket-123456789012", Action::Create),
                Step::new("rule", "EC2_Security_Group", Action::Update).detail("InputParameters"),
            ],
            desired: None,
            impact: None,
        };
        let text = report.to_string();
        assert!(text.starts_with("up in account 123456789012, region us-west-2 (dry run: nothing was changed)\n"));
        assert!(text.contains("  bucket  config-bucket-123456789012  create"), "{text}");
        assert!(text.contains("update     InputParameters"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["steps"][1]["action"], "update");
        assert_eq!(json["steps"][1]["detail"], "InputParameters");
        assert_eq!(json["dryRun"], true);
    }
}
