//! In-memory EC2 and Config with the function's call semantics: the handler's tests and the
//! fuzz target's checks run the real handler against these. Not used by the function itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::aws::{Answered, AwsError, Ec2, ErrorKind, EvaluationRecord, Evaluations, GroupPage, RulesByGroup};
use crate::evaluate::GroupState;
use crate::rules::{ObservedRule, Rule};

/// A group's tags and its rules with their ids.
type FakeGroup = (BTreeMap<String, String>, Vec<(String, Rule)>);

/// EC2 in memory: groups with rules that carry ids, a call log, and operations to deny or fail.
#[derive(Default)]
pub struct FakeEc2 {
    pub groups: Mutex<BTreeMap<String, FakeGroup>>,
    pub calls: Mutex<Vec<String>>,
    pub denied: BTreeSet<&'static str>,
    pub failing: BTreeSet<&'static str>,
    pub page_size: usize,
    pub next_id: Mutex<u64>,
    /// Groups holding a rule that cannot be interpreted: every read of them says so.
    pub unreadable: BTreeSet<String>,
    /// Groups whose rule ids cannot be read completely (e.g. too many pages).
    pub rules_unreadable: BTreeSet<String>,
    /// Groups deleted by someone else right after they were read.
    pub vanishing: BTreeSet<String>,
    /// Groups that hold a rule the function cannot interpret once they were changed (someone
    /// else's change landing between the function's change and its verifying read).
    pub unreadable_once_changed: BTreeSet<String>,
    /// Groups changed so far.
    pub changed: Mutex<BTreeSet<String>>,
    /// EC2's read lag: once a group was changed, DescribeSecurityGroups and
    /// DescribeSecurityGroupRules keep answering it as it was before its first change.
    pub stale_reads: bool,
    /// Each group as it was before its first change (what a lagging read answers).
    pub before_change: Mutex<BTreeMap<String, FakeGroup>>,
    /// Group names (default VPC) to ids.
    pub names: BTreeMap<String, String>,
    /// Revokes by permission match nothing and answer every rule back as unknown, as a default
    /// VPC does for a permission that differs from the rule (e.g. without its `UserId`).
    pub unmatched_revokes: bool,
}

impl FakeEc2 {
    pub fn with_group(self, id: &str, rules: &[&str]) -> Self {
        let rules = rules
            .iter()
            .map(|r| (self.new_id(), r.parse().unwrap_or_else(|e| panic!("a fake rule of {id}: {e}"))))
            .collect();
        self.groups.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), (BTreeMap::new(), rules));
        self
    }

    /// A group with these rules, each with a new id.
    pub fn with_rules(self, id: &str, rules: Vec<Rule>) -> Self {
        let rules = rules.into_iter().map(|r| (self.new_id(), r)).collect();
        self.groups.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), (BTreeMap::new(), rules));
        self
    }

    pub fn tag(self, id: &str, key: &str) -> Self {
        if let Some(group) = self.groups.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            group.0.insert(key.to_owned(), "yes".into());
        }
        self
    }

    pub fn deny(mut self, operation: &'static str) -> Self {
        self.denied.insert(operation);
        self
    }

    pub fn fail(mut self, operation: &'static str) -> Self {
        self.failing.insert(operation);
        self
    }

    pub fn unreadable_error(operation: &'static str, id: &str) -> AwsError {
        AwsError::new(operation, ErrorKind::Unreadable, format!("{id} has a rule this function cannot interpret"))
    }

    pub fn new_id(&self) -> String {
        let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
        *next += 1;
        format!("sgr-{:06}", *next)
    }

    pub fn rules_of(&self, id: &str) -> Vec<String> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rules: Vec<String> =
            groups.get(id).into_iter().flat_map(|(_, rules)| rules).map(|(_, r)| r.to_string()).collect();
        rules.sort();
        rules
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn call(&self, operation: &'static str) -> Result<(), AwsError> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(operation.to_owned());
        if self.denied.contains(operation) {
            return Err(AwsError::new(
                operation,
                ErrorKind::AccessDenied,
                "UnauthorizedOperation: You are not authorized",
            ));
        }
        if self.failing.contains(operation) {
            return Err(AwsError::new(operation, ErrorKind::Other, "RequestLimitExceeded: Request limit exceeded."));
        }
        Ok(())
    }

    /// A group as a read answers it: as it was before its first change while reads lag.
    pub fn state(&self, id: &str, with_ids: bool) -> Option<GroupState> {
        let before = self.before_change.lock().unwrap_or_else(PoisonError::into_inner);
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let (tags, rules) = match before.get(id) {
            Some(old) if self.stale_reads => old,
            _ => groups.get(id)?,
        };
        Some(GroupState {
            group_id: id.to_owned(),
            tags: tags.clone(),
            ingress: rules
                .iter()
                .map(|(rid, rule)| ObservedRule::new(rule.clone(), with_ids.then(|| rid.clone())))
                .collect(),
        })
    }
}

impl FakeEc2 {
    pub fn mark_unreadable(&self, mut page: GroupPage) -> GroupPage {
        let changed = self.changed.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (unreadable, groups) = page.groups.into_iter().partition(|g| {
            self.unreadable.contains(&g.group_id)
                || (self.unreadable_once_changed.contains(&g.group_id) && changed.contains(&g.group_id))
        });
        page.groups = groups;
        page.unreadable = unreadable
            .into_iter()
            .map(|g: GroupState| {
                let err = Self::unreadable_error("DescribeSecurityGroups", &g.group_id);
                (g.group_id, err)
            })
            .collect();
        page
    }
}

impl Ec2 for FakeEc2 {
    async fn describe_groups(&self, group_ids: &[String]) -> Result<GroupPage, AwsError> {
        self.call("DescribeSecurityGroups")?;
        let groups = group_ids.iter().filter_map(|id| self.state(id, false)).collect();
        Ok(self.mark_unreadable(GroupPage { groups, ..GroupPage::default() }))
    }

    async fn describe_groups_page(&self, next_token: Option<String>) -> Result<GroupPage, AwsError> {
        self.call("DescribeSecurityGroups")?;
        let start: usize = next_token.and_then(|t| t.parse().ok()).unwrap_or(0);
        let ids: Vec<String> = self.groups.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        let end = (start + self.page_size).min(ids.len());
        let groups = ids[start..end].iter().filter_map(|id| self.state(id, false)).collect();
        Ok(self.mark_unreadable(GroupPage {
            groups,
            next_token: (end < ids.len()).then(|| end.to_string()),
            ..GroupPage::default()
        }))
    }

    async fn ingress_rules_of(&self, group_ids: &[String]) -> Result<RulesByGroup, AwsError> {
        self.call("DescribeSecurityGroupRules")?;
        Ok(group_ids
            .iter()
            .map(|id| {
                let read = if self.unreadable.contains(id) || self.rules_unreadable.contains(id) {
                    Err(Self::unreadable_error("DescribeSecurityGroupRules", id))
                } else {
                    Ok(self.state(id, true).map(|g| g.ingress).unwrap_or_default())
                };
                (id.clone(), read)
            })
            .collect())
    }

    async fn revoke(&self, group_id: &str, rules: &[ObservedRule]) -> Result<Answered<ObservedRule>, AwsError> {
        self.call("RevokeSecurityGroupIngress")?;
        self.remember(group_id);
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if self.vanishing.contains(group_id) {
            groups.remove(group_id);
            return Err(not_found("RevokeSecurityGroupIngress"));
        }
        let Some((_, existing)) = groups.get_mut(group_id) else { return Err(not_found("RevokeSecurityGroupIngress")) };
        // As EC2 in a default VPC: a permission that matches nothing is answered back as unknown;
        // an unknown rule id was gone.
        let mut answered = Answered::default();
        if self.unmatched_revokes {
            answered.unconfirmed = rules.iter().filter(|o| o.id.is_none()).cloned().collect();
            return Ok(answered);
        }
        for revoked in rules {
            let before = existing.len();
            match &revoked.id {
                Some(id) => existing.retain(|(rid, _)| rid != id),
                None => existing.retain(|(_, rule)| rule != &revoked.rule),
            }
            if existing.len() == before {
                match revoked.id {
                    Some(_) => answered.already.push(revoked.clone()),
                    None => answered.unconfirmed.push(revoked.clone()),
                }
            }
        }
        Ok(answered)
    }

    async fn authorize(&self, group_id: &str, rules: &[Rule]) -> Result<Answered<Rule>, AwsError> {
        self.call("AuthorizeSecurityGroupIngress")?;
        self.remember(group_id);
        let mut answered = Answered::default();
        for rule in rules {
            let id = self.new_id();
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((_, existing)) = groups.get_mut(group_id) else {
                return Err(not_found("AuthorizeSecurityGroupIngress"));
            };
            if existing.iter().any(|(_, r)| r == rule) {
                answered.already.push(rule.clone());
            } else {
                existing.push((id, rule.clone()));
            }
        }
        Ok(answered)
    }

    async fn group_ids_named(&self, names: &[String]) -> Result<Vec<String>, AwsError> {
        self.call("DescribeSecurityGroups")?;
        Ok(names.iter().filter_map(|n| self.names.get(n).cloned()).collect())
    }

    async fn pause(&self, _duration: std::time::Duration) {
        // In memory, time is not waited for; a lagging read ends with the first pause.
        self.before_change.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl FakeEc2 {
    /// Marks the group changed, keeping its state before the first change.
    fn remember(&self, group_id: &str) {
        self.changed.lock().unwrap_or_else(PoisonError::into_inner).insert(group_id.to_owned());
        let group = self.groups.lock().unwrap_or_else(PoisonError::into_inner).get(group_id).cloned();
        if let Some(group) = group {
            let mut before = self.before_change.lock().unwrap_or_else(PoisonError::into_inner);
            before.entry(group_id.to_owned()).or_insert(group);
        }
    }
}

/// Config in memory: records every PutEvaluations and answers with `failed` failures.
#[derive(Default)]
pub struct FakeConfig {
    pub puts: Mutex<Vec<(String, Vec<EvaluationRecord>)>>,
    pub failed: usize,
}

impl FakeConfig {
    /// Every PutEvaluations so far: the result token and the evaluations.
    pub fn puts(&self) -> Vec<(String, Vec<EvaluationRecord>)> {
        self.puts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Evaluations for FakeConfig {
    async fn put_evaluations(&self, result_token: &str, evaluations: &[EvaluationRecord]) -> Result<usize, AwsError> {
        self.puts.lock().unwrap_or_else(PoisonError::into_inner).push((result_token.to_owned(), evaluations.to_vec()));
        Ok(self.failed)
    }
}

fn not_found(operation: &'static str) -> AwsError {
    AwsError::new(operation, ErrorKind::GroupNotFound, "InvalidGroup.NotFound: The security group does not exist")
}
