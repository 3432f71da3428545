//! The AWS calls the function makes, behind one small trait per service.
//!
//! [`Ec2`] and [`Evaluations`] are implemented for the real SDK clients here; unit tests use
//! fakes, integration tests use the real clients against a local endpoint. Errors are
//! classified by their error code, never by message text.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_config::types::{ComplianceType, Evaluation};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, SecurityGroup, SecurityGroupRule, UserIdGroupPair,
};
use aws_smithy_types::DateTime;

use crate::evaluate::{Compliance, GroupState};
use crate::rules::{ObservedRule, Permission, Rule, RuleError, Source};

/// Attempts per EC2 or Config call.
pub const MAX_ATTEMPTS: u32 = 8;
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The SDK's retries for the function's calls: standard mode (exponential backoff with full
/// jitter), eight attempts, waits from 100 ms doubling up to 1 s.
///
/// Eight attempts ride out throttling and server errors even when one call in five fails
/// (0.2⁸: one call in 390,000 gives up). The waits are shorter than `deploy`'s because the
/// function has 60 s: a call that keeps failing gives up after at most 4.5 s of waiting, so even
/// the six calls of one evaluation failing in turn stay far inside the timeout, and the function
/// reports what failed (Config then retries the evaluation) instead of being killed silently.
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The longest a call that keeps failing waits between its attempts.
pub fn backoff_bound() -> Duration {
    (0..MAX_ATTEMPTS - 1).map(|n| INITIAL_BACKOFF.saturating_mul(1 << n).min(MAX_BACKOFF)).sum()
}

/// What kind of failure an AWS call had, as far as the function's decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The function's role lacks the permission (`UnauthorizedOperation`, `AccessDenied`).
    AccessDenied,
    /// The security group does not exist (`InvalidGroup.NotFound`).
    GroupNotFound,
    /// The change was already made (`InvalidPermission.Duplicate`, `InvalidPermission.NotFound`,
    /// `InvalidSecurityGroupRuleId.NotFound`).
    AlreadyDone,
    /// EC2 described a rule this function cannot interpret; the group was not read completely.
    Unreadable,
    /// Anything else, after the SDK's own retries.
    Other,
}

/// A failed AWS call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsError {
    /// The API operation, e.g. `RevokeSecurityGroupIngress`.
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn new(operation: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        AwsError { operation, kind, code: None, message: message.into() }
    }

    /// Classifies an SDK error by its code.
    pub fn from_sdk<E>(operation: &'static str, err: aws_sdk_ec2::error::SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_owned);
        let kind = match code.as_deref() {
            Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => ErrorKind::AccessDenied,
            Some("InvalidGroup.NotFound") => ErrorKind::GroupNotFound,
            Some(
                "InvalidPermission.Duplicate" | "InvalidPermission.NotFound" | "InvalidSecurityGroupRuleId.NotFound",
            ) => ErrorKind::AlreadyDone,
            _ => ErrorKind::Other,
        };
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        AwsError { operation, kind, code, message }
    }

    /// The IAM action that was denied, e.g. `ec2:RevokeSecurityGroupIngress`.
    pub fn iam_action(&self) -> String {
        let service = if self.operation == "PutEvaluations" { "config" } else { "ec2" };
        format!("{service}:{}", self.operation)
    }
}

/// One page of DescribeSecurityGroups.
#[derive(Debug, Clone, Default)]
pub struct GroupPage {
    pub groups: Vec<GroupState>,
    pub next_token: Option<String>,
}

/// The EC2 calls of the function.
pub trait Ec2: Send + Sync {
    /// DescribeSecurityGroups for one group; `Ok(None)` when it no longer exists.
    fn describe_group(&self, group_id: &str) -> impl Future<Output = Result<Option<GroupState>, AwsError>> + Send;
    /// One page of DescribeSecurityGroups over the whole region.
    fn describe_groups_page(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<GroupPage, AwsError>> + Send;
    /// Every ingress rule of the group with its `SecurityGroupRuleId` (all pages).
    fn ingress_rules(&self, group_id: &str) -> impl Future<Output = Result<Vec<ObservedRule>, AwsError>> + Send;
    /// Revokes the rules: by rule id when every rule has one, else by permission.
    fn revoke(&self, group_id: &str, rules: &[ObservedRule]) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn authorize(&self, group_id: &str, rules: &[Rule]) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// One evaluation to report to Config.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationRecord {
    pub compliance_resource_type: String,
    pub compliance_resource_id: String,
    pub compliance_type: Compliance,
    pub annotation: String,
    #[serde(serialize_with = "serialize_time")]
    pub ordering_timestamp: DateTime,
}

fn serialize_time<S: serde::Serializer>(time: &DateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = time.fmt(aws_smithy_types::date_time::Format::DateTime).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

/// The Config call of the function.
pub trait Evaluations: Send + Sync {
    /// PutEvaluations; returns the number of evaluations Config reported as failed.
    fn put_evaluations(
        &self,
        result_token: &str,
        evaluations: &[EvaluationRecord],
    ) -> impl Future<Output = Result<usize, AwsError>> + Send;
}

impl Ec2 for aws_sdk_ec2::Client {
    async fn describe_group(&self, group_id: &str) -> Result<Option<GroupState>, AwsError> {
        const OP: &str = "DescribeSecurityGroups";
        match self.describe_security_groups().group_ids(group_id).send().await {
            Ok(output) => {
                let group = output.security_groups().iter().find(|g| g.group_id() == Some(group_id));
                group.map(|g| group_state(OP, g)).transpose()
            }
            Err(err) => {
                let err = AwsError::from_sdk(OP, err);
                if err.kind == ErrorKind::GroupNotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn describe_groups_page(&self, next_token: Option<String>) -> Result<GroupPage, AwsError> {
        const OP: &str = "DescribeSecurityGroups";
        let output = self
            .describe_security_groups()
            .max_results(1000)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let groups = output.security_groups().iter().map(|g| group_state(OP, g)).collect::<Result<_, _>>()?;
        Ok(GroupPage { groups, next_token: output.next_token().filter(|t| !t.is_empty()).map(str::to_owned) })
    }

    async fn ingress_rules(&self, group_id: &str) -> Result<Vec<ObservedRule>, AwsError> {
        const OP: &str = "DescribeSecurityGroupRules";
        let filter = Filter::builder().name("group-id").values(group_id).build();
        let mut token: Option<String> = None;
        let mut rules = Vec::new();
        // Bounded: EC2 allows at most 1,000 rules per group, 1,000 per page.
        for _ in 0..100 {
            let output = self
                .describe_security_group_rules()
                .filters(filter.clone())
                .max_results(1000)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(OP, e))?;
            for rule in output.security_group_rules() {
                if rule.is_egress() == Some(false) && rule.group_id() == Some(group_id) {
                    rules.push(observed_rule(rule).map_err(|e| unreadable(OP, group_id, e))?);
                }
            }
            token = output.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                return Ok(rules);
            }
        }
        Err(AwsError::new(
            OP,
            ErrorKind::Unreadable,
            format!("{group_id}: more than 100 pages of rules; refusing to act on a partial read"),
        ))
    }

    async fn revoke(&self, group_id: &str, rules: &[ObservedRule]) -> Result<(), AwsError> {
        match revoke_once(self, group_id, rules).await {
            // One vanished rule fails the whole batch: revoke the rest one by one.
            Err(err) if err.kind == ErrorKind::AlreadyDone && rules.len() > 1 => {
                for rule in rules {
                    already_done_is_ok(revoke_once(self, group_id, std::slice::from_ref(rule)).await)?;
                }
                Ok(())
            }
            result => already_done_is_ok(result),
        }
    }

    async fn authorize(&self, group_id: &str, rules: &[Rule]) -> Result<(), AwsError> {
        match authorize_once(self, group_id, rules).await {
            // One existing rule fails the whole batch: authorize the rest one by one.
            Err(err) if err.kind == ErrorKind::AlreadyDone && rules.len() > 1 => {
                for rule in rules {
                    already_done_is_ok(authorize_once(self, group_id, std::slice::from_ref(rule)).await)?;
                }
                Ok(())
            }
            result => already_done_is_ok(result),
        }
    }
}

fn already_done_is_ok(result: Result<(), AwsError>) -> Result<(), AwsError> {
    match result {
        Err(err) if err.kind == ErrorKind::AlreadyDone => Ok(()),
        other => other,
    }
}

async fn revoke_once(client: &aws_sdk_ec2::Client, group_id: &str, rules: &[ObservedRule]) -> Result<(), AwsError> {
    let request = client.revoke_security_group_ingress().group_id(group_id);
    let ids: Option<Vec<String>> = rules.iter().map(|o| o.id.clone()).collect();
    let request = match ids {
        Some(ids) => request.set_security_group_rule_ids(Some(ids)),
        None => request.set_ip_permissions(Some(rules.iter().map(|o| ip_permission(&o.rule)).collect())),
    };
    request.send().await.map(drop).map_err(|e| AwsError::from_sdk("RevokeSecurityGroupIngress", e))
}

async fn authorize_once(client: &aws_sdk_ec2::Client, group_id: &str, rules: &[Rule]) -> Result<(), AwsError> {
    let permissions = rules.iter().map(ip_permission).collect();
    client
        .authorize_security_group_ingress()
        .group_id(group_id)
        .set_ip_permissions(Some(permissions))
        .send()
        .await
        .map(drop)
        .map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", e))
}

impl Evaluations for aws_sdk_config::Client {
    async fn put_evaluations(&self, result_token: &str, evaluations: &[EvaluationRecord]) -> Result<usize, AwsError> {
        const OP: &str = "PutEvaluations";
        let evaluations = evaluations
            .iter()
            .map(|e| {
                Evaluation::builder()
                    .compliance_resource_type(&e.compliance_resource_type)
                    .compliance_resource_id(&e.compliance_resource_id)
                    .compliance_type(ComplianceType::from(e.compliance_type.as_str()))
                    .annotation(&e.annotation)
                    .ordering_timestamp(e.ordering_timestamp)
                    .build()
                    .map_err(|err| {
                        AwsError::new(
                            OP,
                            ErrorKind::Other,
                            format!("evaluation of {}: {err}", e.compliance_resource_id),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output =
            self.put_evaluations().result_token(result_token).set_evaluations(Some(evaluations)).send().await.map_err(
                |err| {
                    let code = aws_sdk_config::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
                    let kind = match code.as_deref() {
                        Some("AccessDeniedException" | "AccessDenied") => ErrorKind::AccessDenied,
                        _ => ErrorKind::Other,
                    };
                    let message = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                    AwsError { operation: OP, kind, code, message }
                },
            )?;
        Ok(output.failed_evaluations().len())
    }
}

fn unreadable(operation: &'static str, group_id: &str, err: RuleError) -> AwsError {
    AwsError::new(
        operation,
        ErrorKind::Unreadable,
        format!("{group_id} has a rule this function cannot interpret ({err}); refusing to act on it"),
    )
}

fn group_state(operation: &'static str, group: &SecurityGroup) -> Result<GroupState, AwsError> {
    let group_id = group.group_id().unwrap_or_default().to_owned();
    if group_id.is_empty() {
        return Err(AwsError::new(operation, ErrorKind::Unreadable, "a security group without GroupId"));
    }
    let tags: BTreeMap<String, String> = group
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect();
    let mut ingress = Vec::new();
    for permission in group.ip_permissions() {
        let rules = permission_of(permission).expand().map_err(|e| unreadable(operation, &group_id, e))?;
        ingress.extend(rules.into_iter().map(ObservedRule::from));
    }
    Ok(GroupState { group_id, tags, ingress })
}

fn permission_of(p: &IpPermission) -> Permission {
    use crate::rules::{GroupPair, IpRange as R4, Ipv6Range as R6, PrefixListId as Pl};
    Permission {
        ip_protocol: p.ip_protocol().unwrap_or("-1").to_owned(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ip_ranges: p
            .ip_ranges()
            .iter()
            .filter_map(|r| Some(R4 { cidr_ip: r.cidr_ip()?.to_owned(), description: None }))
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| Some(R6 { cidr_ipv6: r.cidr_ipv6()?.to_owned(), description: None }))
            .collect(),
        prefix_list_ids: p
            .prefix_list_ids()
            .iter()
            .filter_map(|r| Some(Pl { prefix_list_id: r.prefix_list_id()?.to_owned(), description: None }))
            .collect(),
        user_id_group_pairs: p
            .user_id_group_pairs()
            .iter()
            .map(|pair| GroupPair { group_id: pair.group_id().map(str::to_owned), user_id: None, description: None })
            .collect(),
    }
}

fn observed_rule(rule: &SecurityGroupRule) -> Result<ObservedRule, RuleError> {
    let source = if let Some(cidr) = rule.cidr_ipv4() {
        Source::parse(cidr)?
    } else if let Some(cidr) = rule.cidr_ipv6() {
        Source::parse(cidr)?
    } else if let Some(pl) = rule.prefix_list_id() {
        Source::PrefixList(pl.to_owned())
    } else if let Some(group) = rule.referenced_group_info().and_then(|g| g.group_id()) {
        Source::Group(group.to_owned())
    } else {
        return Err(RuleError(format!("rule {} has no source", rule.security_group_rule_id().unwrap_or("?"))));
    };
    let rule_id = rule.security_group_rule_id().map(str::to_owned);
    Ok(ObservedRule {
        rule: Rule::new(rule.ip_protocol().unwrap_or("-1"), rule.from_port(), rule.to_port(), source)?,
        id: rule_id,
    })
}

/// The SDK form of one atomic rule.
pub fn ip_permission(rule: &Rule) -> IpPermission {
    let builder = IpPermission::builder()
        .ip_protocol(rule.protocol.api_name())
        .set_from_port(rule.ports.map(|(from, _)| from))
        .set_to_port(rule.ports.map(|(_, to)| to));
    let source = rule.source.to_string();
    match &rule.source {
        Source::Ipv4 { .. } => builder.ip_ranges(IpRange::builder().cidr_ip(source).build()),
        Source::Ipv6 { .. } => builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(source).build()),
        Source::PrefixList(id) => builder.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build()),
        Source::Group(id) => builder.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build()),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_keeps_failing_gives_up_well_inside_the_timeout() {
        assert_eq!(backoff_bound(), Duration::from_millis(4500));
        // Six calls of one evaluation, each failing every attempt, still leave half the 60 s.
        assert!(backoff_bound() * 6 < Duration::from_secs(30));
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
    }
}
