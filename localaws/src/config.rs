//! Config evaluation, which the backend only stores: configuration items for security groups,
//! invocation of custom-rule functions with the events AWS builds, and the evaluation APIs
//! (PutEvaluations, compliance reads, evaluation status) answered from this module's state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_config::types::{ConfigRule, Owner};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::http::{self, Request, Response};

pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

/// One stored evaluation (history is kept; reads answer the latest per resource).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub account: String,
    pub region: String,
    pub rule: String,
    pub resource_type: String,
    pub resource_id: String,
    pub compliance: String,
    pub annotation: Option<String>,
    pub ordering_timestamp: f64,
    pub recorded: f64,
    pub invoked: f64,
}

impl Stored {
    fn of(&self, account: &str, region: &str, rule: &str) -> bool {
        self.account == account && self.region == region && self.rule == rule
    }
}

#[derive(Debug, Clone, Default)]
pub struct RuleStatus {
    pub first_activated: Option<f64>,
    pub last_successful_invocation: Option<f64>,
    pub last_failed_invocation: Option<f64>,
    pub last_successful_evaluation: Option<f64>,
    pub last_failed_evaluation: Option<f64>,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
}

struct Token {
    account: String,
    region: String,
    rule: String,
    invoked: f64,
}

/// A rule of one account and region: (account, region, rule).
type RuleKey = (String, String, String);

fn rule_key(account: &str, region: &str, rule: &str) -> RuleKey {
    (account.to_owned(), region.to_owned(), rule.to_owned())
}

/// The evaluation state of the local AWS, per account, region and rule.
#[derive(Default)]
pub struct Evaluations {
    stored: Mutex<Vec<Stored>>,
    status: Mutex<HashMap<RuleKey, RuleStatus>>,
    tokens: Mutex<HashMap<String, Token>>,
    counter: AtomicU64,
}

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Evaluations {
    /// A result token for one invocation of `rule`.
    pub fn token(&self, account: &str, region: &str, rule: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let token = format!("local-{n:08}-{:x}", (now() * 1000.0) as u64);
        let entry =
            Token { account: account.to_owned(), region: region.to_owned(), rule: rule.to_owned(), invoked: now() };
        lock(&self.tokens).insert(token.clone(), entry);
        token
    }

    pub fn activated(&self, account: &str, region: &str, rule: &str) {
        let mut status = lock(&self.status);
        let entry = status.entry(rule_key(account, region, rule)).or_default();
        entry.first_activated.get_or_insert(now());
    }

    pub fn invoked(&self, account: &str, region: &str, rule: &str, error: Option<(String, String)>) {
        let mut status = lock(&self.status);
        let entry = status.entry(rule_key(account, region, rule)).or_default();
        match error {
            None => entry.last_successful_invocation = Some(now()),
            Some((code, message)) => {
                entry.last_failed_invocation = Some(now());
                entry.last_failed_evaluation = Some(now());
                entry.last_error_code = Some(code);
                entry.last_error_message = Some(message);
            }
        }
    }

    pub fn forget_rule(&self, account: &str, region: &str, rule: &str) {
        lock(&self.stored).retain(|s| !s.of(account, region, rule));
        lock(&self.status).remove(&rule_key(account, region, rule));
    }

    /// Forgets every evaluation, rule status and token (moto was reset).
    pub fn clear(&self) {
        lock(&self.stored).clear();
        lock(&self.status).clear();
        lock(&self.tokens).clear();
    }

    /// Every evaluation stored, oldest first (the admin endpoint's history).
    pub fn history(&self) -> Vec<Stored> {
        lock(&self.stored).clone()
    }

    /// The latest evaluation per resource of a rule.
    fn latest(&self, account: &str, region: &str, rule: &str) -> Vec<Stored> {
        let stored = lock(&self.stored);
        let mut latest: HashMap<(String, String), Stored> = HashMap::new();
        for s in stored.iter().filter(|s| s.of(account, region, rule)) {
            let key = (s.resource_type.clone(), s.resource_id.clone());
            let newer = latest
                .get(&key)
                .is_none_or(|l| (s.ordering_timestamp, s.recorded) >= (l.ordering_timestamp, l.recorded));
            if newer {
                latest.insert(key, s.clone());
            }
        }
        let mut out: Vec<Stored> = latest.into_values().collect();
        out.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        out
    }

    /// Rules of an account and region with evaluation state.
    fn rules_of(&self, account: &str, region: &str) -> Vec<String> {
        let mut all: Vec<String> = lock(&self.status)
            .keys()
            .filter(|(a, r, _)| a == account && r == region)
            .map(|(_, _, n)| n.clone())
            .collect();
        all.sort();
        all
    }

    /// Answers the Config operations the backend cannot, in `account`; `None` for the others.
    pub fn handle(&self, operation: &str, account: &str, region: &str, request: &Request) -> Option<Response> {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_else(|_| json!({}));
        Some(match operation {
            "PutEvaluations" => self.put_evaluations(account, &body),
            "GetComplianceDetailsByConfigRule" => {
                let rule = body["ConfigRuleName"].as_str().unwrap_or_default();
                let wanted: Vec<&str> = body["ComplianceTypes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let results: Vec<Value> = self
                    .latest(account, region, rule)
                    .into_iter()
                    .filter(|s| wanted.is_empty() || wanted.contains(&s.compliance.as_str()))
                    .map(|s| {
                        json!({
                            "EvaluationResultIdentifier": {
                                "EvaluationResultQualifier": {"ConfigRuleName": s.rule, "ResourceType": s.resource_type, "ResourceId": s.resource_id, "EvaluationMode": "DETECTIVE"},
                                "OrderingTimestamp": s.ordering_timestamp,
                            },
                            "ComplianceType": s.compliance,
                            "ResultRecordedTime": s.recorded,
                            "ConfigRuleInvokedTime": s.invoked,
                            "Annotation": s.annotation,
                        })
                    })
                    .collect();
                http::json(200, &json!({"EvaluationResults": results}))
            }
            "DescribeComplianceByConfigRule" => {
                let names = self.rule_names(account, region, &body["ConfigRuleNames"]);
                let rules: Vec<Value> = names
                    .iter()
                    .map(|rule| {
                        let latest = self.latest(account, region, rule);
                        let non = latest.iter().filter(|s| s.compliance == "NON_COMPLIANT").count();
                        let compliance = if latest.is_empty() {
                            json!({"ComplianceType": "INSUFFICIENT_DATA"})
                        } else if non > 0 {
                            json!({"ComplianceType": "NON_COMPLIANT", "ComplianceContributorCount": {"CappedCount": non, "CapExceeded": false}})
                        } else {
                            json!({"ComplianceType": "COMPLIANT"})
                        };
                        json!({"ConfigRuleName": rule, "Compliance": compliance})
                    })
                    .collect();
                http::json(200, &json!({"ComplianceByConfigRules": rules}))
            }
            "DescribeComplianceByResource" => {
                let resource_type = body["ResourceType"].as_str();
                let resource_id = body["ResourceId"].as_str();
                let mut by_resource: HashMap<(String, String), Vec<String>> = HashMap::new();
                for rule in self.rules_of(account, region) {
                    for s in self.latest(account, region, &rule) {
                        by_resource
                            .entry((s.resource_type.clone(), s.resource_id.clone()))
                            .or_default()
                            .push(s.compliance);
                    }
                }
                let mut out: Vec<Value> = by_resource
                    .into_iter()
                    .filter(|((t, id), _)| resource_type.is_none_or(|x| x == t) && resource_id.is_none_or(|x| x == id))
                    .map(|((t, id), types)| {
                        let compliance = if types.iter().any(|c| c == "NON_COMPLIANT") {
                            "NON_COMPLIANT"
                        } else if types.iter().any(|c| c == "COMPLIANT") {
                            "COMPLIANT"
                        } else {
                            "NOT_APPLICABLE"
                        };
                        json!({"ResourceType": t, "ResourceId": id, "Compliance": {"ComplianceType": compliance}})
                    })
                    .collect();
                out.sort_by(|a, b| a["ResourceId"].as_str().cmp(&b["ResourceId"].as_str()));
                http::json(200, &json!({"ComplianceByResources": out}))
            }
            "DescribeConfigRuleEvaluationStatus" => {
                let names = self.rule_names(account, region, &body["ConfigRuleNames"]);
                let status = lock(&self.status);
                let out: Vec<Value> = names
                    .iter()
                    .filter_map(|rule| status.get(&rule_key(account, region, rule)).map(|s| (rule, s)))
                    .map(|(rule, s)| {
                        json!({
                            "ConfigRuleName": rule,
                            "FirstActivatedTime": s.first_activated,
                            "LastSuccessfulInvocationTime": s.last_successful_invocation,
                            "LastFailedInvocationTime": s.last_failed_invocation,
                            "LastSuccessfulEvaluationTime": s.last_successful_evaluation,
                            "LastFailedEvaluationTime": s.last_failed_evaluation,
                            "LastErrorCode": s.last_error_code,
                            "LastErrorMessage": s.last_error_message,
                            "FirstEvaluationStarted": s.last_successful_invocation.is_some() || s.last_failed_invocation.is_some(),
                        })
                    })
                    .collect();
                http::json(200, &json!({"ConfigRulesEvaluationStatus": out}))
            }
            "DeleteEvaluationResults" => {
                let rule = body["ConfigRuleName"].as_str().unwrap_or_default();
                lock(&self.stored).retain(|s| !s.of(account, region, rule));
                http::json(200, &json!({}))
            }
            _ => return None,
        })
    }

    fn rule_names(&self, account: &str, region: &str, names: &Value) -> Vec<String> {
        match names.as_array() {
            Some(names) if !names.is_empty() => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => self.rules_of(account, region),
        }
    }

    /// Stores evaluations under the token's rule; a token is valid only in the account of the
    /// rule it was issued for.
    fn put_evaluations(&self, account: &str, body: &Value) -> Response {
        let token = body["ResultToken"].as_str().unwrap_or_default();
        if body["TestMode"].as_bool() == Some(true) {
            return http::json(200, &json!({"FailedEvaluations": []}));
        }
        let found = lock(&self.tokens)
            .get(token)
            .filter(|t| t.account == account)
            .map(|t| (t.region.clone(), t.rule.clone(), t.invoked));
        let Some((region, rule, invoked)) = found else {
            return http::json_error(400, "InvalidResultTokenException", "The result token is invalid.");
        };
        let Some(evaluations) = body["Evaluations"].as_array() else {
            return http::json_error(
                400,
                "InvalidParameterValueException",
                "The Evaluations object in your request cannot be null.",
            );
        };
        let mut failed = Vec::new();
        let mut stored = Vec::new();
        for e in evaluations {
            let compliance = e["ComplianceType"].as_str().unwrap_or_default();
            let valid = matches!(compliance, "COMPLIANT" | "NON_COMPLIANT" | "NOT_APPLICABLE")
                && e["ComplianceResourceType"].is_string()
                && e["ComplianceResourceId"].is_string()
                && e["OrderingTimestamp"].is_number()
                && e["Annotation"].as_str().is_none_or(|a| a.chars().count() <= 256);
            if !valid {
                failed.push(e.clone());
                continue;
            }
            stored.push(Stored {
                account: account.to_owned(),
                region: region.clone(),
                rule: rule.clone(),
                resource_type: e["ComplianceResourceType"].as_str().unwrap_or_default().to_owned(),
                resource_id: e["ComplianceResourceId"].as_str().unwrap_or_default().to_owned(),
                compliance: compliance.to_owned(),
                annotation: e["Annotation"].as_str().map(str::to_owned),
                ordering_timestamp: e["OrderingTimestamp"].as_f64().unwrap_or_default(),
                recorded: now(),
                invoked,
            });
        }
        for s in &stored {
            info!(
                "evaluation of {}: {} {} {}",
                s.rule,
                s.resource_id,
                s.compliance,
                s.annotation.as_deref().unwrap_or("")
            );
        }
        lock(&self.stored).extend(stored);
        let mut status = lock(&self.status);
        let entry = status.entry((account.to_owned(), region, rule)).or_default();
        entry.last_successful_evaluation = Some(now());
        http::json(200, &json!({"FailedEvaluations": failed}))
    }
}

/// The rule applies to security-group changes: a custom Lambda rule triggered by configuration
/// changes whose scope includes security groups (or has no scope).
pub fn change_triggered(rule: &ConfigRule) -> bool {
    let Some(source) = rule.source() else { return false };
    let custom = *source.owner() == Owner::CustomLambda;
    let on_change = source
        .source_details()
        .iter()
        .any(|d| d.message_type().is_some_and(|m| m.as_str() == "ConfigurationItemChangeNotification"));
    custom && on_change && in_scope(rule)
}

/// The rule is periodic (ScheduledNotification).
pub fn periodic(rule: &ConfigRule) -> bool {
    let Some(source) = rule.source() else { return false };
    *source.owner() == Owner::CustomLambda
        && source
            .source_details()
            .iter()
            .any(|d| d.message_type().is_some_and(|m| m.as_str() == "ScheduledNotification"))
}

fn in_scope(rule: &ConfigRule) -> bool {
    rule.scope().is_none_or(|s| {
        s.compliance_resource_types().is_empty() || s.compliance_resource_types().iter().any(|t| t == SECURITY_GROUP)
    })
}

/// A security group as Config records it (`configuration` of a configuration item).
pub fn group_configuration(group: &aws_sdk_ec2::types::SecurityGroup) -> Value {
    let permissions = |list: &[aws_sdk_ec2::types::IpPermission]| -> Vec<Value> {
        list.iter()
            .map(|p| {
                let v4: Vec<&str> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
                json!({
                    "fromPort": p.from_port(),
                    "ipProtocol": p.ip_protocol(),
                    "ipv6Ranges": p.ipv6_ranges().iter().map(|r| json!({"cidrIpv6": r.cidr_ipv6(), "description": r.description()})).collect::<Vec<_>>(),
                    "prefixListIds": p.prefix_list_ids().iter().map(|r| json!({"prefixListId": r.prefix_list_id(), "description": r.description()})).collect::<Vec<_>>(),
                    "toPort": p.to_port(),
                    "userIdGroupPairs": p.user_id_group_pairs().iter().map(|r| json!({"groupId": r.group_id(), "userId": r.user_id(), "description": r.description()})).collect::<Vec<_>>(),
                    "ipv4Ranges": p.ip_ranges().iter().map(|r| json!({"cidrIp": r.cidr_ip(), "description": r.description()})).collect::<Vec<_>>(),
                    "ipRanges": v4,
                })
            })
            .collect()
    };
    json!({
        "description": group.description(),
        "groupName": group.group_name(),
        "ipPermissions": permissions(group.ip_permissions()),
        "ownerId": group.owner_id(),
        "groupId": group.group_id(),
        "ipPermissionsEgress": permissions(group.ip_permissions_egress()),
        "tags": group.tags().iter().map(|t| json!({"key": t.key(), "value": t.value()})).collect::<Vec<_>>(),
        "vpcId": group.vpc_id(),
    })
}

fn iso(seconds: f64) -> String {
    aws_smithy_types::DateTime::from_secs_f64(seconds)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// A configuration item (version 1.3) of a security group; `group` is `None` when it was deleted.
pub fn configuration_item(
    account: &str,
    region: &str,
    group_id: &str,
    group: Option<&aws_sdk_ec2::types::SecurityGroup>,
    captured: f64,
) -> Value {
    let tags: serde_json::Map<String, Value> = group
        .map(|g| {
            g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), json!(t.value().unwrap_or_default())))).collect()
        })
        .unwrap_or_default();
    let relationships: Vec<Value> = group
        .and_then(|g| g.vpc_id())
        .map(|vpc| vec![json!({"resourceId": vpc, "resourceName": null, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"})])
        .unwrap_or_default();
    json!({
        "relatedEvents": [],
        "relationships": relationships,
        "configuration": group.map(group_configuration),
        "supplementaryConfiguration": {},
        "tags": tags,
        "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": iso(captured),
        "configurationStateId": (captured * 1000.0) as u64,
        "awsAccountId": account,
        "configurationItemStatus": if group.is_some() { "OK" } else { "ResourceDeleted" },
        "resourceType": SECURITY_GROUP,
        "resourceId": group_id,
        "resourceName": group.and_then(|g| g.group_name()),
        "ARN": format!("arn:aws:ec2:{region}:{account}:security-group/{group_id}"),
        "awsRegion": region,
        "availabilityZone": "Not Applicable",
        "configurationStateMd5Hash": "",
        "resourceCreationTime": null,
    })
}

/// The event Config sends a custom rule's function.
pub fn rule_event(
    account: &str,
    rule: &ConfigRule,
    invoking_event: &Value,
    token: &str,
    execution_role: &str,
) -> Value {
    json!({
        "version": "1.0",
        "invokingEvent": invoking_event.to_string(),
        "ruleParameters": rule.input_parameters().unwrap_or("{}"),
        "resultToken": token,
        "eventLeftScope": false,
        "executionRoleArn": execution_role,
        "configRuleArn": rule.config_rule_arn(),
        "configRuleName": rule.config_rule_name(),
        "configRuleId": rule.config_rule_id(),
        "accountId": account,
        "evaluationMode": "DETECTIVE",
    })
}

pub fn change_notification(item: Value) -> Value {
    json!({
        "configurationItemDiff": null,
        "configurationItem": item,
        "notificationCreationTime": iso(now()),
        "messageType": "ConfigurationItemChangeNotification",
        "recordVersion": "1.3",
    })
}

pub fn scheduled_notification(account: &str) -> Value {
    json!({"awsAccountId": account, "notificationCreationTime": iso(now()), "messageType": "ScheduledNotification", "recordVersion": "1.0"})
}

/// Logs and swallows the error of a background step.
pub fn log_error<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            warn!("{what}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_request(body: Value) -> Request {
        Request {
            method: hyper::Method::POST,
            uri: hyper::Uri::from_static("/"),
            headers: Default::default(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    fn evaluation(group: &str) -> Value {
        json!({"ComplianceResourceType": SECURITY_GROUP, "ComplianceResourceId": group, "ComplianceType": "COMPLIANT", "OrderingTimestamp": 1.0})
    }

    fn body(response: Response) -> Value {
        let bytes = futures_body(response);
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    fn futures_body(response: Response) -> bytes::Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(response.into_body().collect()).map(|c| c.to_bytes()).unwrap_or_default()
    }

    #[test]
    fn evaluations_are_kept_per_account_and_tokens_work_only_in_theirs() {
        let state = Evaluations::default();
        let (a, b) = ("111111111111", "222222222222");
        state.activated(a, "us-west-2", "rule");
        state.activated(b, "us-west-2", "rule");
        let token_b = state.token(b, "us-west-2", "rule");
        let put = |account: &str, group: &str| {
            let request = config_request(json!({"ResultToken": token_b, "Evaluations": [evaluation(group)]}));
            state.handle("PutEvaluations", account, "us-west-2", &request).unwrap()
        };
        // B's token is refused in A, accepted in B.
        assert_eq!(put(a, "sg-a").status(), 400);
        assert_eq!(put(b, "sg-b").status(), 200);
        let details = |account: &str| {
            let request = config_request(json!({"ConfigRuleName": "rule"}));
            let answer =
                body(state.handle("GetComplianceDetailsByConfigRule", account, "us-west-2", &request).unwrap());
            answer["EvaluationResults"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|e| e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"].clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        assert_eq!(details(b), [json!("sg-b")]);
        assert!(details(a).is_empty());
        assert_eq!(state.history()[0].account, b);
        // Forgetting A's rule leaves B's.
        state.forget_rule(a, "us-west-2", "rule");
        assert_eq!(details(b), [json!("sg-b")]);
        let request = config_request(json!({}));
        let status = body(state.handle("DescribeConfigRuleEvaluationStatus", a, "us-west-2", &request).unwrap());
        assert_eq!(status["ConfigRulesEvaluationStatus"], json!([]));
        let status = body(state.handle("DescribeConfigRuleEvaluationStatus", b, "us-west-2", &request).unwrap());
        assert_eq!(status["ConfigRulesEvaluationStatus"][0]["ConfigRuleName"], "rule");
    }
}
