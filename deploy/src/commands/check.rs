//! `lab check`: the lab platform's "check my progress". Reads the account and checks each step
//! of the lab (`shared/LAB.md`) by name and shape, whether the student clicked through the
//! console (nothing tagged) or ran `deploy up`. Each step is `done`, `missing` or `unknown`
//! (the account could not be read, e.g. access denied), with a one-line hint.
//!
//! Reads only; every call is one the lab's own resources answer (Describe*, Get*, List*).

use std::fmt;

use aws_sdk_config::types::{ConfigRuleState, Owner, ResourceType};
use serde::{Deserialize, Serialize};
use sg_function::aws::Ec2;

use crate::error::{code_of, Error, Result};
use crate::lab::{parse_policy, FunctionPolicy, Lab, SECURITY_GROUP};

/// The lab's steps, in order.
pub const STEPS: [&str; 9] =
    ["recorder", "delivery", "config-role", "function", "function-role", "permission", "rule", "exercise", "logs"];

/// The default group's inbound rules once the rule has reverted it.
pub const BASELINE: [&str; 2] = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Missing,
    /// Could not be read (access denied, throttled, the endpoint does not answer).
    Unknown,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Missing => "missing",
            Status::Unknown => "unknown",
        }
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCheck {
    pub id: String,
    pub status: Status,
    pub hint: String,
}

/// Every step of one account and region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub account: String,
    pub region: String,
    /// When the account was read (UTC, RFC 3339).
    pub checked_at: String,
    pub steps: Vec<StepCheck>,
}

impl Check {
    pub fn all_done(&self) -> bool {
        self.steps.iter().all(|s| s.status == Status::Done)
    }

    pub fn status(&self, id: &str) -> Option<Status> {
        self.steps.iter().find(|s| s.id == id).map(|s| s.status)
    }

    /// The steps not done, by id.
    pub fn not_done(&self) -> Vec<&str> {
        self.steps.iter().filter(|s| s.status != Status::Done).map(|s| s.id.as_str()).collect()
    }

    /// One line for a table of targets.
    pub fn summary(&self) -> String {
        let done = self.steps.iter().filter(|s| s.status == Status::Done).count();
        match self.not_done().as_slice() {
            [] => format!("all {done} steps done"),
            rest => format!("{done} of {} steps done; not done: {}", self.steps.len(), rest.join(", ")),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab check in account {}, region {}, at {}", self.account, self.region, self.checked_at)?;
        let width = self.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
        for step in &self.steps {
            writeln!(f, "  {:<width$}  {:<7}  {}", step.id, step.status.word(), step.hint)?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// The current time, RFC 3339 in UTC.
pub fn now() -> String {
    aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

type Outcome = (Status, String);

fn done(hint: impl Into<String>) -> Result<Outcome> {
    Ok((Status::Done, hint.into()))
}

fn missing(hint: impl Into<String>) -> Result<Outcome> {
    Ok((Status::Missing, hint.into()))
}

/// Whether a trust policy lets `service` assume the role.
pub fn trusts(document: &serde_json::Value, service: &str) -> bool {
    statements(document).iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"]).iter().any(|a| a == "sts:AssumeRole" || a == "sts:*" || a == "*")
            && strings(&s["Principal"]["Service"]).iter().any(|p| p == service)
    })
}

fn statements(document: &serde_json::Value) -> Vec<serde_json::Value> {
    match &document["Statement"] {
        serde_json::Value::Array(all) => all.clone(),
        serde_json::Value::Object(_) => vec![document["Statement"].clone()],
        _ => Vec::new(),
    }
}

/// A string or a list of strings, as IAM writes them.
fn strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(all) => all.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// A policy document reduced to what it grants: statements without their ids, actions and
/// resources as sorted lists. Two documents that grant the same are equal once normalised.
pub fn normalize(document: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = statements(document)
        .iter()
        .map(|s| {
            let mut actions: Vec<String> = strings(&s["Action"]).iter().map(|a| a.to_ascii_lowercase()).collect();
            actions.sort();
            let mut resources = strings(&s["Resource"]);
            resources.sort();
            serde_json::json!([s["Effect"], actions, resources, s["Principal"], s["Condition"]]).to_string()
        })
        .collect();
    out.sort();
    out
}

/// Which of the lab's function policies `document` grants exactly, if any.
pub fn lab_function_policy(lab: &Lab, document: &serde_json::Value) -> Option<FunctionPolicy> {
    let wanted = normalize(document);
    FunctionPolicy::ALL.into_iter().find(|p| normalize(&lab.lambda_policy_of(*p)) == wanted)
}

/// A role as IAM answers it: its ARN and trust policy; `None` when it does not exist.
pub async fn role(lab: &Lab, name: &str) -> Result<Option<(String, serde_json::Value)>> {
    match lab.clients.iam.get_role().role_name(name).send().await {
        Ok(out) => Ok(out.role().map(|r| {
            let trust = r.assume_role_policy_document().and_then(parse_policy).unwrap_or_default();
            (r.arn().to_owned(), trust)
        })),
        Err(err) if code_of(&err) == Some("NoSuchEntity") => Ok(None),
        Err(err) => Err(Error::aws(format!("reading role {name}"), err)),
    }
}

/// The ARNs of the managed policies attached to a role.
pub async fn attached(lab: &Lab, name: &str) -> Result<Vec<String>> {
    let out = lab
        .clients
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("listing the managed policies of role {name}"), e))?;
    Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
}

/// A role's inline policies, by name, parsed.
pub async fn inline_policies(lab: &Lab, name: &str) -> Result<Vec<(String, serde_json::Value)>> {
    let iam = &lab.clients.iam;
    let listed = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("listing the inline policies of role {name}"), e))?;
    let mut out = Vec::new();
    for policy in listed.policy_names() {
        let document = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| Error::aws(format!("reading policy {policy} of role {name}"), e))?;
        out.push((policy.clone(), parse_policy(document.policy_document()).unwrap_or_default()));
    }
    Ok(out)
}

/// Whether the function's resource policy lets Config invoke it.
pub fn allows_config(policy: &serde_json::Value) -> bool {
    statements(policy).iter().any(|s| {
        let principal = &s["Principal"];
        let services = if principal.is_string() { strings(principal) } else { strings(&principal["Service"]) };
        s["Effect"] == "Allow"
            && services.iter().any(|p| p == "config.amazonaws.com")
            && strings(&s["Action"]).iter().any(|a| a == "lambda:InvokeFunction" || a == "lambda:*" || a == "*")
    })
}

/// Checks every step. `local_port`: the local AWS's port, whose evaluation history says whether
/// the default group was ever NON_COMPLIANT (AWS itself answers only the latest evaluation).
pub async fn check(lab: &Lab, local_port: Option<u16>) -> Check {
    let checked_at = now();
    let (recorder, delivery, config_role, function, function_role, permission, rule) = tokio::join!(
        recorder_step(lab),
        delivery_step(lab),
        config_role_step(lab),
        function_step(lab),
        function_role_step(lab),
        permission_step(lab),
        rule_step(lab),
    );
    let rule_done = matches!(rule, Ok((Status::Done, _)));
    let rule_present = !matches!(&rule, Ok((Status::Missing, hint)) if hint.starts_with("no Config rule"));
    let (exercise, logs) = tokio::join!(exercise_step(lab, rule_present, rule_done, local_port), logs_step(lab));
    let results = [recorder, delivery, config_role, function, function_role, permission, rule, exercise, logs];
    let steps = STEPS
        .iter()
        .zip(results)
        .map(|(id, result)| {
            let (status, hint) = result.unwrap_or_else(|err| (Status::Unknown, unknown_hint(&err)));
            StepCheck { id: (*id).to_owned(), status, hint }
        })
        .collect();
    Check { account: lab.account.clone(), region: lab.region.clone(), checked_at, steps }
}

fn unknown_hint(err: &Error) -> String {
    let text = err.to_string();
    let line = text.lines().next().unwrap_or_default();
    match err.code() {
        Some(code) if code.contains("AccessDenied") || code.contains("UnauthorizedOperation") => {
            format!("could not check, access denied: {line}")
        }
        _ => format!("could not check: {line}"),
    }
}

async fn recorder_step(lab: &Lab) -> Result<Outcome> {
    let config = &lab.clients.config;
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| Error::aws("reading the configuration recorders", e))?;
    let Some(recorder) = recorders.configuration_recorders().first() else {
        return missing("no configuration recorder: set up AWS Config recording security groups only (step 1)");
    };
    let name = recorder.name().unwrap_or("?");
    let mut wrong = Vec::new();
    match recorder.recording_group() {
        None => wrong.push(format!("the recorder records nothing; the lab records only {SECURITY_GROUP}")),
        Some(group) => {
            let types: Vec<&str> = group.resource_types().iter().map(ResourceType::as_str).collect();
            if group.all_supported() {
                wrong.push(format!("the recorder records all resource types; the lab records only {SECURITY_GROUP}"));
            } else if types != [SECURITY_GROUP] {
                let listed = if types.is_empty() { "no type".to_owned() } else { types.join(", ") };
                wrong.push(format!("the recorder records {listed}; the lab records only {SECURITY_GROUP}"));
            }
            if group.include_global_resource_types() {
                wrong.push("it includes global resources; the lab leaves them out".to_owned());
            }
        }
    }
    let status = config
        .describe_configuration_recorder_status()
        .send()
        .await
        .map_err(|e| Error::aws("reading the recorder status", e))?;
    let recording = status.configuration_recorders_status().iter().any(|s| s.name() == Some(name) && s.recording());
    if !recording {
        wrong.push(format!("recorder {name} is not recording: start it"));
    }
    if wrong.is_empty() {
        done(format!("recorder {name} records {SECURITY_GROUP} only, recording"))
    } else {
        missing(wrong.join("; "))
    }
}

async fn delivery_step(lab: &Lab) -> Result<Outcome> {
    let channels = lab
        .clients
        .config
        .describe_delivery_channels()
        .send()
        .await
        .map_err(|e| Error::aws("reading the delivery channels", e))?;
    let bucket = &lab.names.bucket;
    let Some(channel) = channels.delivery_channels().first() else {
        return missing(format!("no delivery channel: deliver to a new bucket {bucket} (step 1)"));
    };
    match channel.s3_bucket_name() {
        Some(b) if b == bucket => {}
        other => {
            return missing(format!(
                "the delivery channel delivers to bucket {}; the lab's is {bucket}",
                other.unwrap_or("none")
            ))
        }
    }
    let policy = match lab.clients.s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => out.policy().and_then(parse_policy).unwrap_or_default(),
        Err(err) if code_of(&err) == Some("NoSuchBucketPolicy") => {
            return missing(format!("bucket {bucket} has no policy: Config may not write to it"))
        }
        Err(err) if code_of(&err) == Some("NoSuchBucket") => {
            return missing(format!("the channel's bucket {bucket} does not exist"))
        }
        Err(err) => return Err(Error::aws(format!("reading the policy of bucket {bucket}"), err)),
    };
    let granted: Vec<String> = statements(&policy)
        .iter()
        .filter(|s| {
            s["Effect"] == "Allow" && strings(&s["Principal"]["Service"]).iter().any(|p| p == "config.amazonaws.com")
        })
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    let lacking: Vec<&str> = ["s3:GetBucketAcl", "s3:ListBucket", "s3:PutObject"]
        .into_iter()
        .filter(|action| !granted.iter().any(|g| g.eq_ignore_ascii_case(action) || g == "s3:*" || g == "*"))
        .collect();
    if lacking.is_empty() {
        done(format!("channel {} delivers to {bucket}, whose policy lets Config write", channel.name().unwrap_or("?")))
    } else {
        missing(format!("the policy of bucket {bucket} does not allow config.amazonaws.com {}", lacking.join(", ")))
    }
}

async fn config_role_step(lab: &Lab) -> Result<Outcome> {
    let name = &lab.names.config_role;
    let Some((arn, trust)) = role(lab, name).await? else {
        return missing(format!("no role {name}: create the Config role (step 1)"));
    };
    let mut wrong = Vec::new();
    if !trusts(&trust, "config.amazonaws.com") {
        wrong.push(format!("role {name} is not trusted by config.amazonaws.com"));
    }
    let managed = lab.managed_policy_arn();
    if !attached(lab, name).await?.contains(&managed) {
        wrong.push(format!("role {name} lacks the managed policy {}", crate::lab::CONFIG_MANAGED_POLICY));
    }
    let recorders = lab
        .clients
        .config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| Error::aws("reading the configuration recorders", e))?;
    if let Some(used) = recorders.configuration_recorders().first().and_then(|r| r.role_arn()) {
        if used != arn {
            wrong.push(format!("the recorder uses role {used}, not {name}"));
        }
    }
    if wrong.is_empty() {
        done(format!("role {name} trusted by Config, with AWS_ConfigRole"))
    } else {
        missing(wrong.join("; "))
    }
}

/// The function's configuration, or `None` when it does not exist.
async fn function_configuration(
    lab: &Lab,
) -> Result<Option<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>> {
    let name = &lab.names.function;
    match lab.clients.lambda.get_function_configuration().function_name(name).send().await {
        Ok(out) => Ok(Some(out)),
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => Ok(None),
        Err(err) => Err(Error::aws(format!("reading function {name}"), err)),
    }
}

async fn function_step(lab: &Lab) -> Result<Outcome> {
    use crate::function::{HANDLER, MEMORY_MB, RUNTIME, TIMEOUT_S};
    let name = &lab.names.function;
    let Some(current) = function_configuration(lab).await? else {
        return missing(format!("no function {name}: create it (step 3)"));
    };
    let mut wrong = Vec::new();
    let runtime = current.runtime().map(|r| r.as_str()).unwrap_or("none");
    if runtime != RUNTIME {
        wrong.push(format!("runtime is {runtime}; the lab's is {RUNTIME}"));
    }
    let handler = current.handler().unwrap_or("none");
    if handler != HANDLER {
        wrong.push(format!("handler is {handler}; the lab's is {HANDLER}"));
    }
    if current.memory_size() != Some(MEMORY_MB) {
        wrong.push(format!("memory is {} MB; the lab's is {MEMORY_MB} MB", current.memory_size().unwrap_or_default()));
    }
    if current.timeout() != Some(TIMEOUT_S) {
        wrong.push(format!("timeout is {} s; the lab's is {TIMEOUT_S} s", current.timeout().unwrap_or_default()));
    }
    if wrong.is_empty() {
        done(format!("function {name}: {RUNTIME}, {HANDLER}, {MEMORY_MB} MB, {TIMEOUT_S} s"))
    } else {
        missing(format!("function {name}: {}", wrong.join("; ")))
    }
}

async fn function_role_step(lab: &Lab) -> Result<Outcome> {
    let name = &lab.names.function_role;
    let Some((arn, trust)) = role(lab, name).await? else {
        return missing(format!("no role {name}: create the function's role (step 3)"));
    };
    let mut wrong = Vec::new();
    if !trusts(&trust, "lambda.amazonaws.com") {
        wrong.push(format!("role {name} is not trusted by lambda.amazonaws.com"));
    }
    let policies = inline_policies(lab, name).await?;
    let carried = policies.iter().find_map(|(_, document)| lab_function_policy(lab, document));
    if carried.is_none() {
        wrong.push(format!(
            "role {name} has no inline policy granting exactly policy/lambda-lab-policy.json (or the least-privilege one)"
        ));
    }
    if let Some(current) = function_configuration(lab).await? {
        if let Some(used) = current.role().filter(|used| *used != arn) {
            wrong.push(format!("function {} uses role {used}, not {name}", lab.names.function));
        }
    }
    match (wrong.is_empty(), carried) {
        (true, Some(policy)) => done(format!("role {name} trusted by Lambda, with the {policy} policy")),
        _ => missing(wrong.join("; ")),
    }
}

async fn permission_step(lab: &Lab) -> Result<Outcome> {
    let name = &lab.names.function;
    let policy = match lab.clients.lambda.get_policy().function_name(name).send().await {
        Ok(out) => out.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default(),
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => {
            // No function, or a function without a resource policy.
            return match function_configuration(lab).await? {
                None => missing(format!("no function {name} for Config to invoke")),
                Some(_) => missing(format!(
                    "function {name} has no permission for config.amazonaws.com to invoke it (the console adds it when you save the rule)"
                )),
            };
        }
        Err(err) => return Err(Error::aws(format!("reading the resource policy of function {name}"), err)),
    };
    if allows_config(&policy) {
        done(format!("config.amazonaws.com may invoke {name}"))
    } else {
        missing(format!("the resource policy of function {name} does not let config.amazonaws.com invoke it"))
    }
}

async fn rule_step(lab: &Lab) -> Result<Outcome> {
    let name = &lab.names.rule;
    let rule = match lab.clients.config.describe_config_rules().config_rule_names(name).send().await {
        Ok(out) => out.config_rules().first().cloned(),
        Err(err) if code_of(&err) == Some("NoSuchConfigRuleException") => None,
        Err(err) => return Err(Error::aws(format!("reading Config rule {name}"), err)),
    };
    let Some(rule) = rule else {
        return missing(format!("no Config rule {name}: create the custom rule (step 4)"));
    };
    // DeleteConfigRule is asynchronous: a DELETING rule is on its way out.
    if rule.config_rule_state() == Some(&ConfigRuleState::Deleting) {
        return missing(format!("no Config rule {name}: it is being deleted"));
    }
    let mut wrong = Vec::new();
    let function = lab.function_arn();
    match rule.source() {
        Some(source) if *source.owner() == Owner::CustomLambda => {
            if source.source_identifier() != Some(function.as_str()) {
                wrong.push(format!(
                    "its source is {}, not function {}",
                    source.source_identifier().unwrap_or("none"),
                    lab.names.function
                ));
            }
            let on_changes = source
                .source_details()
                .iter()
                .any(|d| d.message_type().map(|m| m.as_str()) == Some("ConfigurationItemChangeNotification"));
            if !on_changes {
                wrong.push("it is not triggered by configuration changes".to_owned());
            }
        }
        _ => wrong.push(format!("it is not a custom Lambda rule with function {} as source", lab.names.function)),
    }
    let scope: Vec<String> = rule.scope().map(|s| s.compliance_resource_types().to_vec()).unwrap_or_default();
    if scope != [SECURITY_GROUP] {
        let listed = if scope.is_empty() { "all changes".to_owned() } else { scope.join(", ") };
        wrong.push(format!("its scope is {listed}; the lab's is {SECURITY_GROUP}"));
    }
    let parameters =
        rule.input_parameters().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()).unwrap_or_default();
    if parameters["debug"] != "true" {
        wrong.push("its parameter debug is not `true`".to_owned());
    }
    if wrong.is_empty() {
        done(format!("rule {name}: function {}, configuration changes, {SECURITY_GROUP}, debug", lab.names.function))
    } else {
        missing(format!("rule {name}: {}", wrong.join("; ")))
    }
}

/// Whether the default group was opened to the world beyond the baseline at some point, by
/// Config's own record of it: its configuration history (kept while the recorder records
/// security groups). Only rules from anywhere count: the default group's own rule (all traffic
/// from itself) is not the exercise. `None` when the history cannot be read.
async fn opened_in_history(lab: &Lab, group: &str) -> Option<bool> {
    let out = lab
        .clients
        .config
        .get_resource_config_history()
        .resource_type(ResourceType::from(SECURITY_GROUP))
        .resource_id(group)
        .limit(100)
        .send()
        .await
        .ok()?;
    Some(out.configuration_items().iter().any(|item| {
        let configuration = item.configuration().and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
        configuration.is_some_and(|c| c["ipPermissions"].as_array().is_some_and(|all| all.iter().any(opened_to_world)))
    }))
}

/// A permission of a configuration item that lets anyone in on more than tcp 80 or 443.
fn opened_to_world(permission: &serde_json::Value) -> bool {
    let anywhere = |ranges: &serde_json::Value, key: &str, cidr: &str| {
        ranges.as_array().is_some_and(|all| all.iter().any(|r| r == cidr || r[key] == cidr))
    };
    let from_anywhere = anywhere(&permission["ipRanges"], "cidrIp", "0.0.0.0/0")
        || anywhere(&permission["ipv4Ranges"], "cidrIp", "0.0.0.0/0")
        || anywhere(&permission["ipv6Ranges"], "cidrIpv6", "::/0");
    let port = permission["fromPort"].as_i64();
    let required =
        permission["ipProtocol"] == "tcp" && matches!(port, Some(80 | 443)) && permission["toPort"].as_i64() == port;
    from_anywhere && !required
}

/// Whether the rule evaluated `group` NON_COMPLIANT: from the local AWS's history, else from
/// Config's latest evaluation.
async fn evaluated_non_compliant(lab: &Lab, group: &str, local_port: Option<u16>) -> Result<bool> {
    if let Some(serde_json::Value::Array(all)) = local_port.and_then(crate::local::evaluations) {
        return Ok(all.iter().any(|e| {
            e["rule"] == lab.names.rule.as_str()
                && e["resourceId"] == group
                && e["account"].as_str().is_none_or(|a| a == lab.account)
                && e["region"].as_str().is_none_or(|r| r == lab.region)
                && e["compliance"] == "NON_COMPLIANT"
        }));
    }
    let out = lab
        .clients
        .config
        .get_compliance_details_by_resource()
        .resource_type(SECURITY_GROUP)
        .resource_id(group)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading the compliance of {group}"), e))?;
    Ok(out.evaluation_results().iter().any(|r| {
        r.compliance_type().map(|c| c.as_str()) == Some("NON_COMPLIANT")
            && r.evaluation_result_identifier()
                .and_then(|i| i.evaluation_result_qualifier())
                .and_then(|q| q.config_rule_name())
                == Some(lab.names.rule.as_str())
    }))
}

async fn exercise_step(lab: &Lab, rule_present: bool, rule_done: bool, local_port: Option<u16>) -> Result<Outcome> {
    if !rule_present {
        return missing(format!("needs the rule {}: nothing evaluates the default group yet", lab.names.rule));
    }
    let Some(group) = crate::status::default_group_id(lab).await? else {
        return missing(format!("region {} has no default VPC, so no default group to open", lab.region));
    };
    let state =
        lab.clients.ec2.describe_group(&group).await.map_err(|e| Error::Failed(format!("reading {group}: {e}")))?;
    let mut rules: Vec<_> = state.map(|g| g.ingress.into_iter().map(|o| o.rule).collect()).unwrap_or_default();
    rules.sort();
    rules.dedup();
    let inbound: Vec<String> = rules.iter().map(ToString::to_string).collect();
    let on_baseline = inbound == BASELINE;
    let evaluated = evaluated_non_compliant(lab, &group, local_port).await?;
    let opened = evaluated || (rule_done && opened_in_history(lab, &group).await == Some(true));
    match (opened, on_baseline) {
        (true, true) => {
            done(format!("{group} was opened, evaluated NON_COMPLIANT, and is back on HTTP and HTTPS only"))
        }
        (true, false) => missing(format!(
            "{group} was evaluated NON_COMPLIANT but allows {}: wait for the rule to revert it",
            inbound.join(", ")
        )),
        (false, true) => missing(format!(
            "no NON_COMPLIANT evaluation of {group} yet: open tcp 80, 443, 465 and 993 from 0.0.0.0/0 (step 2)"
        )),
        (false, false) => missing(format!(
            "{group} allows {} and has no NON_COMPLIANT evaluation yet: wait for the rule",
            if inbound.is_empty() { "nothing".to_owned() } else { inbound.join(", ") }
        )),
    }
}

async fn logs_step(lab: &Lab) -> Result<Outcome> {
    let group = lab.log_group();
    match crate::logs::fetch(lab, Some("revoking for"), 0).await {
        Ok(lines) if lines.is_empty() => {
            missing(format!("log group {group} has no `revoking for` line: the function has not revoked a rule yet"))
        }
        Ok(lines) => done(format!("log group {group} has `revoking for` lines ({})", lines.len())),
        Err(Error::Usage(_)) => missing(format!("no log group {group}: the function has not run yet")),
        Err(err) => Err(err),
    }
}

/// The local AWS's port when `global` points at it (`--local`), for its evaluation history.
pub fn local_port(global: &crate::cli::Global) -> Option<u16> {
    if !global.local {
        return None;
    }
    let Some(url) = &global.endpoint_url else { return Some(crate::local::LOCAL_PORT) };
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost").then_some(())?;
    port.parse().ok()
}

/// The class table of `lab check` over targets: one row per student, a column per step.
pub fn write_class_table(f: &mut fmt::Formatter<'_>, run: &crate::fanout::Run) -> fmt::Result {
    let mut header: Vec<String> = ["TARGET", "ACCOUNT", "REGION"].map(str::to_owned).to_vec();
    header.extend(STEPS.iter().map(|s| s.to_string()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut complete = 0;
    for t in &run.targets {
        let mut row = vec![
            t.target.name(),
            t.account.clone().or_else(|| t.target.account.clone()).unwrap_or_else(|| "-".into()),
            t.region.clone().or_else(|| t.target.region.clone()).unwrap_or_else(|| "-".into()),
        ];
        match t.result.as_ref().and_then(|r| serde_json::from_value::<Check>(r.clone()).ok()) {
            Some(check) => {
                complete += usize::from(check.all_done());
                for id in STEPS {
                    row.push(check.status(id).map_or("unknown", Status::word).to_owned());
                }
            }
            None => {
                row.extend(STEPS.iter().map(|_| "-".to_owned()));
                notes.push(format!("{}: {}", t.target.name(), t.detail.lines().next().unwrap_or_default()));
            }
        }
        rows.push(row);
    }
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(f, "{}", line.join("  ").trim_end())?;
    }
    for note in notes {
        writeln!(f, "{note}")?;
    }
    writeln!(f, "{complete} of {} students done with every step", run.targets.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trust_reads_strings_and_lists() {
        let one = json!({"Statement": {"Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}});
        assert!(trusts(&one, "config.amazonaws.com"));
        assert!(!trusts(&one, "lambda.amazonaws.com"));
        let list = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}]});
        assert!(trusts(&list, "lambda.amazonaws.com"));
        let denied = json!({"Statement": [{"Effect": "Deny", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        assert!(!trusts(&denied, "lambda.amazonaws.com"));
    }

    #[test]
    fn policies_compare_by_what_they_grant() {
        let a = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "x", "Effect": "Allow", "Action": ["logs:PutLogEvents", "logs:CreateLogGroup"], "Resource": "*"},
            {"Effect": "Allow", "Action": "ec2:DescribeSecurityGroups", "Resource": "*"}]});
        let b = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:DescribeSecurityGroups", "Resource": ["*"]},
            {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:PutLogEvents"], "Resource": "*"}]});
        assert_eq!(normalize(&a), normalize(&b));
        let c = json!({"Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]});
        assert_ne!(normalize(&a), normalize(&c));
    }

    #[test]
    fn config_invoke_permission_is_recognised() {
        let policy = json!({"Statement": [{"Sid": "any", "Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "lambda:InvokeFunction"}]});
        assert!(allows_config(&policy));
        let events = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction"}]});
        assert!(!allows_config(&events));
    }

    #[test]
    fn only_rules_from_anywhere_beyond_the_baseline_count_as_opened() {
        let smtps = json!({"ipProtocol": "tcp", "fromPort": 465, "toPort": 465, "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"]});
        assert!(opened_to_world(&smtps));
        let https = json!({"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": ["0.0.0.0/0"]});
        assert!(!opened_to_world(&https));
        let itself = json!({"ipProtocol": "-1", "userIdGroupPairs": [{"groupId": "sg-1"}], "ipRanges": []});
        assert!(!opened_to_world(&itself));
        let ipv6 = json!({"ipProtocol": "tcp", "fromPort": 993, "toPort": 993, "ipv6Ranges": [{"cidrIpv6": "::/0"}]});
        assert!(opened_to_world(&ipv6));
    }

    #[test]
    fn the_local_port_comes_from_a_local_endpoint_only() {
        use clap::Parser;
        let global = |args: &[&str]| crate::cli::Cli::parse_from([&["deploy"], args, &["status"]].concat()).global;
        assert_eq!(local_port(&global(&["--local"])), Some(crate::local::LOCAL_PORT));
        assert_eq!(local_port(&global(&["--local", "--endpoint-url", "http://127.0.0.1:4700"])), Some(4700));
        assert_eq!(local_port(&global(&["--local", "--endpoint-url", "http://example.com:4700"])), None);
        assert_eq!(local_port(&global(&["--endpoint-url", "http://127.0.0.1:4700"])), None);
    }

    #[test]
    fn a_check_summarises_its_steps() {
        let step = |id: &str, status| StepCheck { id: id.into(), status, hint: "h".into() };
        let check = Check {
            account: "1".into(),
            region: "r".into(),
            checked_at: now(),
            steps: vec![
                step("recorder", Status::Missing),
                step("delivery", Status::Done),
                step("rule", Status::Unknown),
            ],
        };
        assert!(!check.all_done());
        assert_eq!(check.not_done(), ["recorder", "rule"]);
        assert_eq!(check.summary(), "1 of 3 steps done; not done: recorder, rule");
        assert!(check.to_string().contains("  recorder  missing  h"), "{check}");
    }
}
