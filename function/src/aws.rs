//! The AWS calls the function makes, behind one small trait per service.
//!
//! [`Ec2`] and [`Evaluations`] are implemented for the real SDK clients in `sdk.rs` (feature
//! `sdk`, on by default); unit tests and the fuzz target use [`crate::fake`], integration tests
//! the real clients against a local endpoint. Errors are
//! classified by their error code, never by message text.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_smithy_types::DateTime;

use crate::evaluate::{Compliance, GroupState};
use crate::rules::{ObservedRule, Rule};

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
#[cfg(feature = "sdk")]
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The same retries in the SDK's adaptive mode: a client-side rate limiter that slows every call
/// of the client once EC2 throttled one (the function's `EC2_REQUEST_RATE=adaptive`).
#[cfg(feature = "sdk")]
pub fn adaptive_retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::adaptive()
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
    /// EC2 throttled the call (`RequestLimitExceeded`) through all of the SDK's retries.
    Throttled,
    /// The call was not made, or not answered, before the invocation's time ran out.
    OutOfTime,
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

    /// The IAM action that was denied, e.g. `ec2:RevokeSecurityGroupIngress`.
    pub fn iam_action(&self) -> String {
        let service = if self.operation == "PutEvaluations" { "config" } else { "ec2" };
        format!("{service}:{}", self.operation)
    }
}

/// Security groups as read by DescribeSecurityGroups: those read completely, and those
/// holding a rule this function cannot interpret (never acted on).
#[derive(Debug, Clone, Default)]
pub struct GroupPage {
    pub groups: Vec<GroupState>,
    pub unreadable: Vec<(String, AwsError)>,
    pub next_token: Option<String>,
}

/// Each group's ingress rules with their `SecurityGroupRuleId`s, or why they could not be read
/// completely. Every requested group has an entry.
pub type RulesByGroup = BTreeMap<String, Result<Vec<ObservedRule>, AwsError>>;

/// What EC2's answer to a revoke or an authorize says of the rules asked for, beyond "done".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<T> {
    /// Already so before the call (nothing to do, nothing done).
    pub already: Vec<T>,
    /// Not confirmed by the answer: may be as before the call.
    pub unconfirmed: Vec<T>,
}

impl<T> Default for Answered<T> {
    fn default() -> Self {
        Answered { already: Vec::new(), unconfirmed: Vec::new() }
    }
}

impl<T> Answered<T> {
    pub fn merge(&mut self, other: Answered<T>) {
        self.already.extend(other.already);
        self.unconfirmed.extend(other.unconfirmed);
    }
}

/// At most this many values per EC2 filter.
pub const GROUPS_PER_FILTER: usize = 200;

/// The EC2 calls of the function.
pub trait Ec2: Send + Sync {
    /// DescribeSecurityGroups for these groups (any number; the implementation batches them).
    /// Groups that no longer exist are absent from the answer.
    fn describe_groups(&self, group_ids: &[String]) -> impl Future<Output = Result<GroupPage, AwsError>> + Send;
    /// One page of DescribeSecurityGroups over the whole region.
    fn describe_groups_page(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<GroupPage, AwsError>> + Send;
    /// Every ingress rule of these groups with its `SecurityGroupRuleId` (all pages; any number
    /// of groups, batched by the implementation).
    fn ingress_rules_of(&self, group_ids: &[String]) -> impl Future<Output = Result<RulesByGroup, AwsError>> + Send;
    /// Revokes the rules: by rule id when every rule has one, else by permission (with the
    /// referenced group's owner and peering). The answer's `already` are the rules whose ids
    /// EC2 did not know (`InvalidSecurityGroupRuleId.NotFound`: ids are unique, so they were
    /// gone); `unconfirmed` those in `UnknownIpPermissions` (a default VPC answers success for a
    /// permission that matched nothing) or answered `InvalidPermission.NotFound` by permission
    /// (gone, or never matched). Every other rule was revoked by this call.
    fn revoke(
        &self,
        group_id: &str,
        rules: &[ObservedRule],
    ) -> impl Future<Output = Result<Answered<ObservedRule>, AwsError>> + Send;
    /// Authorizes the rules. `already`: answered `InvalidPermission.Duplicate` (it exists);
    /// `unconfirmed`: absent from the `SecurityGroupRules` the answer says it added. Every
    /// other rule was added by this call.
    fn authorize(
        &self,
        group_id: &str,
        rules: &[Rule],
    ) -> impl Future<Output = Result<Answered<Rule>, AwsError>> + Send;
    /// The ids of the groups of these names (DescribeSecurityGroups `GroupNames`: EC2 looks
    /// names up in the default VPC). A name that matches no group is left out.
    fn group_ids_named(&self, names: &[String]) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
    /// Waits this long (between the bounded re-reads of a change whose answer left doubt).
    fn pause(&self, duration: Duration) -> impl Future<Output = ()> + Send;

    /// One group; `Ok(None)` when it no longer exists.
    fn describe_group(&self, group_id: &str) -> impl Future<Output = Result<Option<GroupState>, AwsError>> + Send {
        async move {
            let page = self.describe_groups(&[group_id.to_owned()]).await?;
            if let Some((_, err)) = page.unreadable.into_iter().find(|(id, _)| id == group_id) {
                return Err(err);
            }
            Ok(page.groups.into_iter().find(|g| g.group_id == group_id))
        }
    }

    /// One group's ingress rules with their ids.
    fn ingress_rules(&self, group_id: &str) -> impl Future<Output = Result<Vec<ObservedRule>, AwsError>> + Send {
        async move {
            let mut rules = self.ingress_rules_of(&[group_id.to_owned()]).await?;
            rules.remove(group_id).unwrap_or(Ok(Vec::new()))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_keeps_failing_gives_up_well_inside_the_timeout() {
        assert_eq!(backoff_bound(), Duration::from_millis(4500));
        // Six calls of one evaluation, each failing every attempt, still leave half the 60 s.
        assert!(backoff_bound() * 6 < Duration::from_secs(30));
        #[cfg(feature = "sdk")]
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
    }
}
