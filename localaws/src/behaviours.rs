//! AWS behaviours moto lacks, which the front reproduces: each is a documented behaviour of AWS
//! that moto does not have (moto is lenient), with its time window configurable and short in
//! tests. Each field names the AWS page it follows; the module that carries it out is named too.
//!
//! Set with `POST /_sg-lab/behaviours` (a [`Behaviours`] as JSON, or the words `aws` and `off`),
//! read with `GET`; `deploy local start --aws-like` and `SG_LAB_AWS_LIKE` set them at start, and
//! `deploy local status` lists them. A field left out of a JSON spec is off.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The behaviours in force. Durations are in milliseconds; 0 (or `false`) is off: moto as is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Behaviours {
    /// S3 buckets live in one region: a request for a bucket signed for another region answers
    /// 301 `PermanentRedirect` with `x-amz-bucket-region` (HeadBucket: a bare 301 with the
    /// header). S3 User Guide, "Making requests" / "Virtual hosting of buckets"; API reference,
    /// HeadBucket. moto keeps one global namespace without regions.
    pub regional_buckets: bool,
    /// A deleted bucket's name is held: CreateBucket of that name answers 409 `OperationAborted`
    /// ("A conflicting conditional operation is currently in progress against this resource")
    /// for this long. S3 User Guide, "Deleting a bucket"; API reference, CreateBucket errors.
    pub bucket_name_hold_ms: u64,
    /// Late deliveries: this long after a bucket that a delivery channel or a trail writes to
    /// was emptied, one more object arrives, so DeleteBucket answers 409 `BucketNotEmpty`. AWS
    /// Config Developer Guide, "Permissions for the Amazon S3 bucket" (deliveries are
    /// asynchronous); CloudTrail User Guide, "Finding your log files" (delivery every ~5 min).
    pub late_delivery_ms: u64,
    /// DeleteConfigRule is asynchronous: the rule stays `DELETING` this long (DescribeConfigRules
    /// shows it so); PutConfigRule, DeleteConfigRule and StartConfigRulesEvaluation on it answer
    /// 400 `ResourceInUseException`, and its evaluations stop. AWS Config API reference,
    /// DeleteConfigRule ("AWS Config sets the state of a rule to DELETING until the deletion is
    /// complete … If you make a PutConfigRule or DeleteConfigRule request for the rule, you will
    /// receive a ResourceInUseException") and ConfigRule.ConfigRuleState. moto deletes at once;
    /// the front keeps the rule ([`crate::config`], `Evaluations::delete_rule`).
    pub rule_deleting_ms: u64,
    /// StartConfigRulesEvaluation answers 400 `LimitExceededException` when called for a rule
    /// within this long of its last evaluation's start (a PutConfigRule starts one too). AWS
    /// Config API reference, LimitExceededException: "thrown if an evaluation is in progress or
    /// if you call the StartConfigRulesEvaluation API more than once per minute"
    /// ([`crate::config`], `Evaluations::start_evaluation`).
    pub evaluation_interval_ms: u64,
    /// GetComplianceDetailsByConfigRule pages its answer with `Limit` (default 10, 0 meaning the
    /// default, maximum 100; out of range: `ValidationException`) and `NextToken` (one it did
    /// not give: `InvalidNextTokenException`), as AWS does (API reference,
    /// GetComplianceDetailsByConfigRule). Off: every result in one answer, as moto would.
    pub compliance_paging: bool,
    /// EC2 reads lag writes: for this long after a change to a group's rules,
    /// DescribeSecurityGroups (and DescribeSecurityGroupRules) show the group as it was before
    /// the change; Config's evaluation and the CloudTrail event of the change come after it.
    /// EC2 Developer Guide, "Eventual consistency in the Amazon EC2 API". `ec2.rs`.
    pub ec2_read_lag_ms: u64,
    /// A created function is `Pending` (and an updated one `LastUpdateStatus: InProgress`) this
    /// long; UpdateFunctionCode and UpdateFunctionConfiguration meanwhile answer 409
    /// `ResourceConflictException`. Lambda Developer Guide, "Lambda function states".
    /// Carried out by [`crate::function_states`].
    pub function_pending_ms: u64,
    /// EventBridge partial failures: every Nth entry of PutTargets and RemoveTargets (counted
    /// per account and region) is not applied and answered in `FailedEntries` with HTTP 200.
    /// EventBridge API reference, PutTargets / RemoveTargets ("FailedEntryCount"). 0: off.
    /// Carried out by [`crate::eventbridge`].
    pub eventbridge_failed_entry_nth: u64,
    /// EC2 request-rate limits: a token bucket per API action, account and region, with EC2's
    /// documented default sizes and refill rates (mutating actions 50 tokens and 5 a second;
    /// Authorize/RevokeSecurityGroupIngress, "resource-intensive", the same in buckets of their
    /// own; describes 100 and 20, unfiltered unpaginated DescribeSecurityGroups 50 and 10); an
    /// empty bucket answers HTTP 503 `RequestLimitExceeded` with EC2's error document. EC2 API
    /// reference, "Request throttling for the Amazon EC2 API". Carried out by
    /// [`crate::ec2_quotas`].
    pub ec2_quotas: bool,
    /// With `ec2Quotas`: every bucket's capacity and refill rate at this percentage of AWS's
    /// (at least one token), so that a test meets the limit within a few dozen calls. 0: 100.
    pub ec2_quota_percent: u64,
}

impl Behaviours {
    /// Every behaviour on, with windows short enough for tests (seconds), as the integration
    /// tests and `deploy local start` use them. EC2 quotas stay off: every test's setup (creating
    /// groups by the hundred, polling describes) would have to pace itself; the tests and
    /// benchmarks of the sweep at scale turn them on (`{"ec2Quotas":true,"ec2QuotaPercent":20}`).
    pub fn aws_like() -> Self {
        Behaviours {
            regional_buckets: true,
            bucket_name_hold_ms: 1_500,
            late_delivery_ms: 300,
            rule_deleting_ms: 1_500,
            evaluation_interval_ms: 1_500,
            compliance_paging: true,
            ec2_read_lag_ms: 500,
            function_pending_ms: 700,
            eventbridge_failed_entry_nth: 3,
            ec2_quotas: false,
            ec2_quota_percent: 0,
        }
    }

    /// moto as it is.
    pub fn off() -> Self {
        Behaviours::default()
    }

    /// `aws`, `off`, or a JSON object (fields left out are off).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "aws" => Ok(Behaviours::aws_like()),
            "off" | "" => Ok(Behaviours::off()),
            json => serde_json::from_str(json).map_err(|e| {
                format!("bad AWS behaviours spec: {e}; give `aws`, `off` or a JSON object such as {{\"ruleDeletingMs\":2000}}")
            }),
        }
    }

    /// A window in milliseconds as a duration; `None` when it is off.
    pub fn window(ms: u64) -> Option<Duration> {
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    /// The behaviours that are on, one line each, for `deploy local status`.
    pub fn describe(&self) -> Vec<String> {
        let mut on = Vec::new();
        let ms = |name: &str, ms: u64| (ms > 0).then(|| format!("{name}: {ms} ms"));
        if self.regional_buckets {
            on.push("regional buckets (301 PermanentRedirect from another region)".to_owned());
        }
        on.extend(ms("bucket name held after DeleteBucket (409 OperationAborted)", self.bucket_name_hold_ms));
        on.extend(ms("late delivery after a bucket is emptied (BucketNotEmpty)", self.late_delivery_ms));
        on.extend(ms("Config rule DELETING after DeleteConfigRule", self.rule_deleting_ms));
        on.extend(ms("StartConfigRulesEvaluation once per rule per", self.evaluation_interval_ms));
        if self.compliance_paging {
            on.push("compliance details paged (Limit 10 by default, 100 at most)".to_owned());
        }
        on.extend(ms("EC2 reads lag security-group writes by", self.ec2_read_lag_ms));
        on.extend(ms("function Pending / update InProgress for", self.function_pending_ms));
        if self.eventbridge_failed_entry_nth > 0 {
            on.push(format!(
                "EventBridge PutTargets/RemoveTargets: every {} entry fails (FailedEntryCount)",
                ordinal(self.eventbridge_failed_entry_nth)
            ));
        }
        if self.ec2_quotas {
            let percent = if self.ec2_quota_percent == 0 { 100 } else { self.ec2_quota_percent };
            on.push(format!(
                "EC2 request-rate limits, token buckets at {percent} % of AWS's per API (503 RequestLimitExceeded)"
            ));
        }
        on
    }
}

fn ordinal(n: u64) -> String {
    match n {
        1 => "".to_owned(),
        2 => "2nd".to_owned(),
        3 => "3rd".to_owned(),
        n => format!("{n}th"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(Behaviours::parse("aws").unwrap(), Behaviours::aws_like());
        assert_eq!(Behaviours::parse("off").unwrap(), Behaviours::off());
        let one = Behaviours::parse(r#"{"ruleDeletingMs":2000}"#).unwrap();
        assert_eq!(one, Behaviours { rule_deleting_ms: 2000, ..Behaviours::off() });
        let err = Behaviours::parse(r#"{"ruleDeleting":2000}"#).unwrap_err();
        assert!(err.contains("ruleDeleting") && err.contains("aws"), "{err}");
        assert!(Behaviours::off().describe().is_empty());
        assert_eq!(Behaviours::aws_like().describe().len(), 9);
        let quotas = Behaviours::parse(r#"{"ec2Quotas":true,"ec2QuotaPercent":20}"#).unwrap();
        assert_eq!(
            quotas.describe(),
            vec!["EC2 request-rate limits, token buckets at 20 % of AWS's per API (503 RequestLimitExceeded)"]
        );
    }
}
