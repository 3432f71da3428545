//! `status` (lab step 5): what the student looks at — the recorder, the channel, the rule and
//! its per-group compliance, and the default group's inbound rules.

use std::fmt;

use aws_sdk_ec2::types::Filter;
use serde::Serialize;
use sg_function::aws::Ec2;

use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::role::CarriedPolicy;
use crate::{recorder, rule};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub account: String,
    pub region: String,
    pub recorder: Option<RecorderStatus>,
    pub delivery_channel: Option<ChannelStatus>,
    pub rule: Option<RuleStatus>,
    /// The function role's inline policy: `lab`, `least-privilege`, `other` (edited by hand), or
    /// absent when there is none.
    pub function_policy: Option<String>,
    pub compliance: Compliance,
    pub default_group: Option<GroupStatus>,
    /// The event fast path, when any part of it exists.
    pub fast_path: Option<FastPathStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FastPathStatus {
    /// Whether the trail exists and logs.
    pub trail_logging: Option<bool>,
    /// The EventBridge rule's state.
    pub rule_state: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecorderStatus {
    pub name: String,
    pub recording: bool,
    pub all_supported: bool,
    pub resource_types: Vec<String>,
    pub lab_owned: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    pub name: String,
    pub bucket: Option<String>,
    pub lab_owned: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    pub name: String,
    pub state: Option<String>,
    pub arn: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compliance {
    /// Why compliance could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub results: Vec<GroupCompliance>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupCompliance {
    pub group_id: String,
    pub compliance: String,
    pub annotation: Option<String>,
    pub recorded: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub group_id: String,
    pub inbound: Vec<String>,
}

pub async fn status(lab: &Lab) -> Result<Status> {
    let existing = recorder::existing(lab).await?;
    let recording = match existing.recorder.as_ref().and_then(|r| r.name()) {
        Some(name) => recorder::recording(lab, name).await?,
        None => false,
    };
    let recorder = existing.recorder.as_ref().map(|r| RecorderStatus {
        name: r.name().unwrap_or_default().to_owned(),
        recording,
        all_supported: r.recording_group().is_some_and(|g| g.all_supported()),
        resource_types: r
            .recording_group()
            .map(|g| g.resource_types().iter().map(|t| t.as_str().to_owned()).collect())
            .unwrap_or_default(),
        lab_owned: existing.recorder_ours,
    });
    let delivery_channel = existing.channel.as_ref().map(|c| ChannelStatus {
        name: c.name().unwrap_or_default().to_owned(),
        bucket: c.s3_bucket_name().map(str::to_owned),
        lab_owned: existing.channel_ours,
    });
    let found = rule::find(lab).await?;
    let rule = found.as_ref().map(|r| RuleStatus {
        name: r.config_rule_name().unwrap_or_default().to_owned(),
        state: r.config_rule_state().map(|s| s.as_str().to_owned()),
        arn: r.config_rule_arn().map(str::to_owned),
    });
    // A rule Config is deleting has no results worth reading (they go with it).
    let compliance = match &found {
        Some(r) if !rule::is_deleting(r) => compliance(lab).await,
        _ => Compliance::default(),
    };
    Ok(Status {
        account: lab.account.clone(),
        region: lab.region.clone(),
        recorder,
        delivery_channel,
        rule,
        function_policy: match crate::role::function_policy(lab).await? {
            CarriedPolicy::Absent => None,
            CarriedPolicy::Is(policy) => Some(policy.name().to_owned()),
            CarriedPolicy::Other => Some("other".to_owned()),
        },
        compliance,
        default_group: default_group(lab).await?,
        fast_path: fast_path(lab).await?,
    })
}

async fn fast_path(lab: &Lab) -> Result<Option<FastPathStatus>> {
    use crate::lab::{FAST_PATH_RULE, TRAIL_NAME};
    let trail_logging = match lab.clients.cloudtrail.get_trail_status().name(TRAIL_NAME).send().await {
        Ok(status) => Some(status.is_logging() == Some(true)),
        Err(err) if crate::error::code_of(&err).is_some_and(|c| c.contains("TrailNotFound")) => None,
        Err(err) => return Err(Error::aws(format!("reading trail {TRAIL_NAME}"), err)),
    };
    let rule_state = match lab.clients.events.describe_rule().name(FAST_PATH_RULE).send().await {
        Ok(rule) => rule.state().map(|s| s.as_str().to_owned()),
        Err(err) if crate::error::code_of(&err) == Some("ResourceNotFoundException") => None,
        Err(err) => return Err(Error::aws(format!("reading EventBridge rule {FAST_PATH_RULE}"), err)),
    };
    Ok((trail_logging.is_some() || rule_state.is_some()).then_some(FastPathStatus { trail_logging, rule_state }))
}

/// Results per page: Config's maximum (API reference, GetComplianceDetailsByConfigRule: "The
/// default is 10. You cannot specify a number greater than 100").
pub const COMPLIANCE_PAGE: i32 = 100;
/// Pages read at most: 10,000 groups, far more than a region holds by default (2,500).
const COMPLIANCE_PAGES: usize = 100;

/// Per-group compliance, every page of it; an endpoint that cannot answer (the local AWS) is
/// reported, not fatal.
async fn compliance(lab: &Lab) -> Compliance {
    let mut results = Vec::new();
    let mut token = None;
    for _ in 0..COMPLIANCE_PAGES {
        let out = lab
            .clients
            .config
            .get_compliance_details_by_config_rule()
            .config_rule_name(&lab.names.rule)
            .limit(COMPLIANCE_PAGE)
            .set_next_token(token.take())
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(err) => {
                return Compliance {
                    unavailable: Some(Error::aws("reading the rule's compliance", err).to_string()),
                    results,
                }
            }
        };
        for r in out.evaluation_results() {
            let id = r
                .evaluation_result_identifier()
                .and_then(|i| i.evaluation_result_qualifier())
                .and_then(|q| q.resource_id())
                .unwrap_or_default();
            results.push(GroupCompliance {
                group_id: id.to_owned(),
                compliance: r.compliance_type().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                annotation: r.annotation().map(str::to_owned),
                recorded: r
                    .result_recorded_time()
                    .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            });
        }
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
        if token.is_none() {
            return Compliance { unavailable: None, results };
        }
    }
    let shown = results.len();
    Compliance {
        unavailable: Some(format!(
            "more than {shown} evaluated resources; the first {shown} are shown (use the Config console or `aws configservice get-compliance-details-by-config-rule` for all)"
        )),
        results,
    }
}

/// The default VPC's default security group id, if there is a default VPC.
pub async fn default_group_id(lab: &Lab) -> Result<Option<String>> {
    let ec2 = &lab.clients.ec2;
    let vpcs = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .map_err(|e| Error::aws("finding the default VPC", e))?;
    let Some(vpc) = vpcs.vpcs().first().and_then(|v| v.vpc_id()) else { return Ok(None) };
    let groups = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(Filter::builder().name("group-name").values("default").build())
        .send()
        .await
        .map_err(|e| Error::aws(format!("finding the default security group of {vpc}"), e))?;
    Ok(groups.security_groups().first().and_then(|g| g.group_id()).map(str::to_owned))
}

async fn default_group(lab: &Lab) -> Result<Option<GroupStatus>> {
    let Some(id) = default_group_id(lab).await? else { return Ok(None) };
    let group = lab.clients.ec2.describe_group(&id).await.map_err(|e| Error::Failed(format!("reading {id}: {e}")))?;
    Ok(group.map(|g| {
        let mut rules: Vec<_> = g.ingress.into_iter().map(|o| o.rule).collect();
        rules.sort();
        let inbound = rules.iter().map(ToString::to_string).collect();
        GroupStatus { group_id: id, inbound }
    }))
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "account {}, region {}", self.account, self.region)?;
        let owner = |ours: bool| if ours { "" } else { " (not the lab's)" };
        match &self.recorder {
            Some(r) => {
                let types =
                    if r.all_supported { "all supported types".to_owned() } else { r.resource_types.join(", ") };
                let state = if r.recording { "recording" } else { "stopped" };
                writeln!(f, "recorder          {} — {state}, {types}{}", r.name, owner(r.lab_owned))?
            }
            None => writeln!(f, "recorder          none")?,
        }
        match &self.delivery_channel {
            Some(c) => writeln!(
                f,
                "delivery channel  {} — bucket {}{}",
                c.name,
                c.bucket.as_deref().unwrap_or("none"),
                owner(c.lab_owned)
            )?,
            None => writeln!(f, "delivery channel  none")?,
        }
        match &self.rule {
            Some(r) if r.state.as_deref() == Some("DELETING") => writeln!(
                f,
                "rule              {} — DELETING (Config is deleting it; `up` waits until it is gone, then puts it back)",
                r.name
            )?,
            Some(r) => writeln!(f, "rule              {} — {}", r.name, r.state.as_deref().unwrap_or("unknown state"))?,
            None => writeln!(f, "rule              none")?,
        }
        if let Some(policy) = &self.function_policy {
            let what = match policy.as_str() {
                "other" => "other (matches neither policy/ document; `up` puts one back)",
                name => name,
            };
            writeln!(f, "function policy   {what}")?;
        }
        if let Some(why) = &self.compliance.unavailable {
            writeln!(f, "compliance        unavailable: {why}")?;
        } else if self.rule.as_ref().is_some_and(|r| r.state.as_deref() != Some("DELETING")) {
            writeln!(f, "compliance")?;
            if self.compliance.results.is_empty() {
                writeln!(f, "  no evaluations yet")?;
            }
            for r in &self.compliance.results {
                writeln!(
                    f,
                    "  {:<22} {:<15} {:<25} {}",
                    r.group_id,
                    r.compliance,
                    r.recorded.as_deref().unwrap_or("-"),
                    r.annotation.as_deref().unwrap_or("")
                )?;
            }
        }
        if let Some(fast) = &self.fast_path {
            let trail = match fast.trail_logging {
                Some(true) => "trail logging",
                Some(false) => "trail NOT logging",
                None => "no trail",
            };
            writeln!(
                f,
                "fast path         {trail}, EventBridge rule {}",
                fast.rule_state.as_deref().unwrap_or("absent")
            )?;
        }
        match &self.default_group {
            Some(g) => {
                writeln!(f, "default group     {} inbound rules:", g.group_id)?;
                if g.inbound.is_empty() {
                    writeln!(f, "  none")?;
                }
                for rule in &g.inbound {
                    writeln!(f, "  {rule}")?;
                }
            }
            None => writeln!(f, "default group     no default VPC")?,
        }
        Ok(())
    }
}
