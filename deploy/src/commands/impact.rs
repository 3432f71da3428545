//! What the rule's first evaluation will change, shown by `up` before it creates the rule.
//!
//! `up` reads every security group of the region (the rule's scope: `AWS::EC2::SecurityGroup`)
//! and runs on each the function's own pure evaluation ([`sg_function::evaluate::evaluate`])
//! with the parameters the rule is created with ([`RULE_PARAMETERS`]) and the function's
//! embedded baseline: what it prints is what the function will do, not an approximation.

use std::fmt;
use std::io::IsTerminal;

use serde::Serialize;
use sg_function::aws::Ec2;
use sg_function::evaluate::{evaluate, GroupState};
use sg_function::parameters::{Mode, Parameters};
use sg_function::rules::{embedded_baseline, Rule, Source};
use tracing::info;

use crate::error::{Error, Result};
use crate::lab::{Lab, RULE_PARAMETERS};

/// One group the first evaluation will change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupImpact {
    pub group_id: String,
    /// Compact form, e.g. `tcp/22@10.0.0.0/8`.
    pub revoke: Vec<String>,
    pub authorize: Vec<String>,
    /// The default VPC's default group: the one the lab is about.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lab_group: bool,
    #[serde(skip)]
    opens: usize,
}

/// The preview of the first evaluation in one account and region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// The groups that will change, by id.
    pub changes: Vec<GroupImpact>,
    /// Groups the evaluation leaves as they are (compliant or exempt).
    pub unchanged: usize,
    /// Groups holding a rule the function cannot read: it never changes them.
    pub unreadable: Vec<String>,
    /// `report` mode: the rule changes nothing.
    pub report_only: bool,
}

/// Is this the whole internet as a source (IPv4 or IPv6)?
fn anywhere(rule: &Rule) -> bool {
    matches!(rule.source, Source::Ipv4 { prefix: 0, .. } | Source::Ipv6 { prefix: 0, .. })
}

/// The evaluation of every group, as the function runs it (pure; `default_group` is the default
/// VPC's default group, if any).
pub fn assess(
    groups: &[GroupState],
    parameters: &Parameters,
    required: &[Rule],
    default_group: Option<&str>,
) -> Impact {
    let mut impact = Impact { report_only: parameters.mode == Mode::Report, ..Impact::default() };
    for group in groups {
        let decision = evaluate(group, required, parameters);
        if decision.plan.is_empty() {
            impact.unchanged += 1;
            continue;
        }
        impact.changes.push(GroupImpact {
            group_id: group.group_id.clone(),
            revoke: decision.plan.revoke.iter().map(|o| o.rule.to_string()).collect(),
            authorize: decision.plan.authorize.iter().map(ToString::to_string).collect(),
            lab_group: Some(group.group_id.as_str()) == default_group,
            opens: decision.plan.authorize.iter().filter(|r| anywhere(r)).count(),
        });
    }
    impact.changes.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    impact
}

impl Impact {
    /// Does the first evaluation change any group besides the default VPC's default group?
    pub fn needs_confirmation(&self) -> bool {
        !self.report_only && self.changes.iter().any(|g| !g.lab_group)
    }

    /// Rules the evaluation authorizes from the whole internet.
    pub fn opened(&self) -> usize {
        self.changes.iter().map(|g| g.opens).sum()
    }

    /// `3 groups (2 rules opened to 0.0.0.0/0)`
    pub fn summary(&self) -> String {
        let groups = self.changes.len();
        format!(
            "{groups} security group{} ({} rule{} opened to 0.0.0.0/0)",
            if groups == 1 { "" } else { "s" },
            self.opened(),
            if self.opened() == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.report_only { "would report (mode=report, nothing is changed)" } else { "will change" };
        writeln!(f, "the rule's first evaluation {verb}: {}", self.summary())?;
        for group in &self.changes {
            let mut parts = Vec::new();
            if !group.revoke.is_empty() {
                parts.push(format!("revoke {}", group.revoke.join(", ")));
            }
            if !group.authorize.is_empty() {
                parts.push(format!("authorize {}", group.authorize.join(", ")));
            }
            let lab = if group.lab_group { " (the lab's default group)" } else { "" };
            writeln!(f, "  {}{lab}: {}", group.group_id, parts.join("; "))?;
        }
        writeln!(f, "  {} group{} stay as they are", self.unchanged, if self.unchanged == 1 { "" } else { "s" })?;
        if !self.unreadable.is_empty() {
            writeln!(f, "  not evaluated (a rule the function cannot read): {}", self.unreadable.join(", "))?;
        }
        Ok(())
    }
}

/// A report's `impact` in JSON: the list of groups that change.
pub fn serialize_list<S: serde::Serializer>(
    impact: &Option<Impact>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match impact {
        Some(impact) => impact.changes.serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// The parameters the rule is created with, and the function's baseline.
pub fn parameters() -> Result<(Parameters, Vec<Rule>)> {
    let parameters = Parameters::parse(Some(RULE_PARAMETERS)).map_err(|e| Error::Failed(e.to_string()))?;
    let required = match &parameters.required_ingress {
        Some(rules) => rules.clone(),
        None => embedded_baseline().map_err(|e| Error::Failed(format!("the function's baseline: {e}")))?,
    };
    Ok((parameters, required))
}

/// Every security group of the region, all pages (bounded).
pub async fn read_groups(lab: &Lab) -> Result<(Vec<GroupState>, Vec<String>)> {
    let ec2 = &lab.clients.ec2;
    let mut groups = Vec::new();
    let mut unreadable = Vec::new();
    let mut token = None;
    info!("reading every security group of {} to preview the rule's first evaluation", lab.region);
    // Bounded: 1,000 groups a page.
    for _ in 0..1000 {
        let page = ec2
            .describe_groups_page(token)
            .await
            .map_err(|e| Error::Failed(format!("reading the security groups of {}: {e}", lab.region)))?;
        groups.extend(page.groups);
        unreadable.extend(page.unreadable.into_iter().map(|(id, _)| id).filter(|id| !id.is_empty()));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok((groups, unreadable))
}

/// Reads the region's groups and previews the first evaluation.
pub async fn preview(lab: &Lab) -> Result<Impact> {
    Ok(preview_groups(lab).await?.0)
}

/// [`preview`], and the groups as read.
pub async fn preview_groups(lab: &Lab) -> Result<(Impact, Vec<GroupState>)> {
    let (parameters, required) = parameters()?;
    let (groups, unreadable) = read_groups(lab).await?;
    let default_group = crate::status::default_group_id(lab).await?;
    let mut impact = assess(&groups, &parameters, &required, default_group.as_deref());
    impact.unreadable = unreadable;
    Ok((impact, groups))
}

/// Asks once before `up` changes groups besides the lab's; `targets` names each account and
/// region with its impact. Refuses on a non-terminal stdin.
pub fn confirm(targets: &[(String, Impact)]) -> Result<()> {
    let asking: Vec<&(String, Impact)> = targets.iter().filter(|(_, i)| i.needs_confirmation()).collect();
    if asking.is_empty() {
        return Ok(());
    }
    let groups: usize = asking.iter().map(|(_, i)| i.changes.len()).sum();
    let others: usize = asking.iter().map(|(_, i)| i.changes.iter().filter(|g| !g.lab_group).count()).sum();
    let opened: usize = asking.iter().map(|(_, i)| i.opened()).sum();
    let whole = format!(
        "the rule's first evaluation changes {groups} security group{} ({others} besides the lab's default group) and opens {opened} rule{} to 0.0.0.0/0, in {}",
        if groups == 1 { "" } else { "s" },
        if opened == 1 { "" } else { "s" },
        asking.iter().map(|(label, _)| label.as_str()).collect::<Vec<_>>().join("; ")
    );
    if !std::io::stdin().is_terminal() {
        return Err(Error::Declined(format!(
            "refusing to create the rule without confirmation: {whole}; stdin is not a terminal; read the preview with `deploy up --dry-run` and pass --yes"
        )));
    }
    for (label, impact) in &asking {
        eprintln!("{label}:");
        eprint!("{impact}");
    }
    if crate::confirm::ask(&format!("Create the rule? {whole}. [y/N] "))? {
        Ok(())
    } else {
        Err(Error::Declined("not confirmed; nothing was created".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sg_function::rules::ObservedRule;

    fn group(id: &str, rules: &[&str]) -> GroupState {
        GroupState {
            group_id: id.into(),
            ingress: rules.iter().map(|r| ObservedRule::from(r.parse::<Rule>().unwrap())).collect(),
            ..GroupState::default()
        }
    }

    #[test]
    fn lists_the_groups_that_change_with_their_rules_and_counts_the_others() {
        let (parameters, required) = parameters().unwrap();
        let groups = [
            group("sg-db", &["tcp/22@10.0.0.0/8", "tcp/5432@10.1.0.0/16"]),
            group("sg-ok", &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]),
            group("sg-default", &["tcp/80@0.0.0.0/0"]),
        ];
        let impact = assess(&groups, &parameters, &required, Some("sg-default"));
        assert_eq!(impact.unchanged, 1);
        let ids: Vec<&str> = impact.changes.iter().map(|g| g.group_id.as_str()).collect();
        assert_eq!(ids, ["sg-db", "sg-default"]);
        assert_eq!(impact.changes[0].revoke, ["tcp/22@10.0.0.0/8", "tcp/5432@10.1.0.0/16"]);
        assert_eq!(impact.changes[0].authorize, ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]);
        assert_eq!(impact.opened(), 3);
        assert!(impact.needs_confirmation());
        let only_default = assess(&groups[1..], &parameters, &required, Some("sg-default"));
        assert!(!only_default.needs_confirmation());
        let report = Parameters { mode: Mode::Report, ..parameters };
        assert!(!assess(&groups, &report, &required, Some("sg-default")).needs_confirmation());
    }
}
