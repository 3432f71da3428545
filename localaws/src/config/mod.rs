//! Config evaluation, which the backend only stores: configuration items for security groups,
//! invocation of custom-rule functions with the events AWS builds, and the evaluation APIs
//! (PutEvaluations, compliance reads, evaluation status) answered from this module's state.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_config::types::{ConfigRule, Owner};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::behaviours::Behaviours;
use crate::http::{self, Forwarder, Request, Response};

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
    life: Mutex<RuleLife>,
}

/// What moto does not keep of a rule's life: the rules Config is still deleting (moto deletes a
/// rule at once; AWS keeps it `DELETING` a while, [`Behaviours::rule_deleting_ms`]), and when
/// each rule's last evaluation started ([`Behaviours::evaluation_interval_ms`]).
#[derive(Default)]
struct RuleLife {
    /// The rule as DescribeConfigRules showed it before the delete, and when it is gone.
    deleting: HashMap<RuleKey, (Value, Instant)>,
    /// When an evaluation last started (PutConfigRule or StartConfigRulesEvaluation).
    started: HashMap<RuleKey, Instant>,
}

impl RuleLife {
    fn prune(&mut self) {
        let now = Instant::now();
        self.deleting.retain(|_, (_, until)| *until > now);
    }
}

/// Where a rule's DescribeConfigRules lookup goes when some rules are DELETING.
enum Ask {
    /// Forward the request as it is (it names no rule: every rule).
    AsIs,
    /// Forward it for these names only (the others are DELETING).
    Names(Vec<String>),
    /// Every rule named is DELETING: moto has nothing to add.
    Nothing,
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

    /// Forgets a deleted rule: its evaluations, its status and its result tokens (an invocation
    /// still running then cannot put evaluations back under the rule's name).
    pub fn forget_rule(&self, account: &str, region: &str, rule: &str) {
        lock(&self.stored).retain(|s| !s.of(account, region, rule));
        lock(&self.status).remove(&rule_key(account, region, rule));
        lock(&self.tokens).retain(|_, t| !(t.account == account && t.region == region && t.rule == rule));
    }

    /// Whether Config is still deleting `rule` (its DELETING window has not passed).
    pub fn is_deleting(&self, account: &str, region: &str, rule: &str) -> bool {
        let mut life = lock(&self.life);
        life.prune();
        life.deleting.contains_key(&rule_key(account, region, rule))
    }

    /// PutConfigRule, DeleteConfigRule and StartConfigRulesEvaluation on a DELETING rule answer
    /// `ResourceInUseException`, as Config does (API reference, DeleteConfigRule: "If you make a
    /// PutConfigRule or DeleteConfigRule request for the rule, you will receive a
    /// ResourceInUseException"; StartConfigRulesEvaluation lists it too).
    pub fn in_use(&self, account: &str, region: &str, rules: &[&str]) -> Option<Response> {
        let rule = rules.iter().find(|rule| self.is_deleting(account, region, rule))?;
        info!("rule {rule} is DELETING: ResourceInUseException");
        Some(http::json_error(
            400,
            "ResourceInUseException",
            &format!("The rule {rule} is currently being deleted. Try your request again later."),
        ))
    }

    /// Keeps `rule` (as DescribeConfigRules showed it) in state DELETING for `window`.
    fn start_deleting(&self, account: &str, region: &str, name: &str, mut rule: Value, window: Duration) {
        rule["ConfigRuleState"] = json!("DELETING");
        let mut life = lock(&self.life);
        life.started.remove(&rule_key(account, region, name));
        life.deleting.insert(rule_key(account, region, name), (rule, Instant::now() + window));
    }

    /// An evaluation of `rules` starts now (StartConfigRulesEvaluation), or is refused (the
    /// answer returned) with
    /// `LimitExceededException` when one of them started one less than `interval` ago (Config:
    /// "thrown if an evaluation is in progress or if you call the StartConfigRulesEvaluation API
    /// more than once per minute"). `None` for `interval`: no limit.
    pub fn start_evaluation(
        &self,
        account: &str,
        region: &str,
        rules: &[String],
        interval: Option<Duration>,
    ) -> Option<Response> {
        let mut life = lock(&self.life);
        if let Some(interval) = interval {
            let recent = rules.iter().find(|rule| {
                life.started.get(&rule_key(account, region, rule)).is_some_and(|at| at.elapsed() < interval)
            });
            if let Some(rule) = recent {
                info!("an evaluation of {rule} started less than {interval:?} ago: LimitExceededException");
                return Some(http::json_error(
                    400,
                    "LimitExceededException",
                    &format!("An evaluation of the rule {rule} is in progress or was started less than {} s ago; StartConfigRulesEvaluation can be called once a minute per rule. Try again later.", interval.as_secs().max(1)),
                ));
            }
        }
        for rule in rules {
            life.started.insert(rule_key(account, region, rule), Instant::now());
        }
        None
    }

    /// DeleteConfigRule: refused while the rule is DELETING; else moto deletes it, and with a
    /// DELETING `window` the front keeps showing it DELETING that long. Its evaluations go.
    pub async fn delete_rule(
        &self,
        forwarder: &Forwarder,
        account: &str,
        region: &str,
        request: &Request,
        window: Option<Duration>,
    ) -> Response {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let Some(name) = body["ConfigRuleName"].as_str() else { return forwarder.forward(request).await };
        if let Some(refused) = self.in_use(account, region, &[name]) {
            return refused;
        }
        let kept = match window {
            Some(_) => {
                let (status, answer) =
                    read(forwarder.forward(&describe_request(request, &[name.to_owned()])).await).await;
                let rule = serde_json::from_slice::<Value>(&answer).ok().and_then(|v| v["ConfigRules"].get(0).cloned());
                rule.filter(|_| status == 200)
            }
            None => None,
        };
        let answer = forwarder.forward(request).await;
        if answer.status() == 200 {
            self.forget_rule(account, region, name);
            if let (Some(window), Some(rule)) = (window, kept) {
                info!("rule {name} is DELETING for {window:?}");
                self.start_deleting(account, region, name, rule, window);
            }
        }
        answer
    }

    /// DescribeConfigRules: moto's rules, and the DELETING ones the request asks for (all of
    /// them when it names none), in state DELETING.
    pub async fn describe_rules(
        &self,
        forwarder: &Forwarder,
        account: &str,
        region: &str,
        request: &Request,
    ) -> Response {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let names: Vec<String> = body["ConfigRuleNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let (ask, deleting) = {
            let mut life = lock(&self.life);
            life.prune();
            let of_here = |(a, r, _): &RuleKey| a == account && r == region;
            let mut deleting: Vec<(String, Value)> = life
                .deleting
                .iter()
                .filter(|(key, _)| of_here(key) && (names.is_empty() || names.contains(&key.2)))
                .map(|(key, (rule, _))| (key.2.clone(), rule.clone()))
                .collect();
            deleting.sort_by(|a, b| a.0.cmp(&b.0));
            let others: Vec<String> =
                names.iter().filter(|n| !deleting.iter().any(|(d, _)| d == *n)).cloned().collect();
            let ask = match (names.is_empty(), others.is_empty()) {
                (true, _) => Ask::AsIs,
                (false, true) => Ask::Nothing,
                (false, false) => Ask::Names(others),
            };
            (ask, deleting.into_iter().map(|(_, rule)| rule).collect::<Vec<Value>>())
        };
        if deleting.is_empty() {
            return forwarder.forward(request).await;
        }
        let mut out = match ask {
            Ask::Nothing => json!({"ConfigRules": []}),
            Ask::AsIs | Ask::Names(_) => {
                let answer = match &ask {
                    Ask::Names(names) => forwarder.forward(&describe_request(request, names)).await,
                    _ => forwarder.forward(request).await,
                };
                if answer.status() != 200 {
                    return answer;
                }
                let (_, bytes) = read(answer).await;
                serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"ConfigRules": []}))
            }
        };
        match out["ConfigRules"].as_array_mut() {
            Some(rules) => rules.extend(deleting),
            None => out["ConfigRules"] = Value::Array(deleting),
        }
        http::json(200, &out)
    }

    /// Forgets every evaluation, rule status and token (moto was reset).
    pub fn clear(&self) {
        lock(&self.stored).clear();
        lock(&self.status).clear();
        lock(&self.tokens).clear();
        *lock(&self.life) = RuleLife::default();
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
    pub fn handle(
        &self,
        operation: &str,
        account: &str,
        region: &str,
        request: &Request,
        behaviours: &Behaviours,
    ) -> Option<Response> {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_else(|_| json!({}));
        Some(match operation {
            "PutEvaluations" => self.put_evaluations(account, &body),
            "GetComplianceDetailsByConfigRule" => {
                let rule = body["ConfigRuleName"].as_str().unwrap_or_default();
                let page = match behaviours.compliance_paging {
                    true => match Page::of(account, region, rule, &body) {
                        Ok(page) => Some(page),
                        Err(refused) => return Some(*refused),
                    },
                    false => None,
                };
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
                match page {
                    None => http::json(200, &json!({"EvaluationResults": results})),
                    Some(page) => page.answer(results),
                }
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

/// One page of GetComplianceDetailsByConfigRule, as Config pages it (API reference,
/// GetComplianceDetailsByConfigRule: "Limit … The default is 10. You cannot specify a number
/// greater than 100. If you specify 0, AWS Config uses the default."; Valid Range 0–100). A limit
/// out of range fails the service's input validation (`ValidationException`, as Config answers
/// for any member out of its range); a token that is not one this rule's answer gave is
/// `InvalidNextTokenException`.
struct Page {
    offset: usize,
    limit: usize,
    /// Ties a token to its rule.
    seal: u64,
}

impl Page {
    const DEFAULT: usize = 10;
    const MAX: i64 = 100;

    fn of(account: &str, region: &str, rule: &str, body: &Value) -> Result<Page, Box<Response>> {
        let limit = match &body["Limit"] {
            Value::Null => 0,
            value => value
                .as_i64()
                .ok_or_else(|| http::json_error(400, "SerializationException", "Limit must be an integer"))?,
        };
        let out_of_range = |constraint: &str| {
            Box::new(http::json_error(
                400,
                "ValidationException",
                &format!("1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value {constraint}"),
            ))
        };
        if limit > Self::MAX {
            return Err(out_of_range("less than or equal to 100"));
        }
        if limit < 0 {
            return Err(out_of_range("greater than or equal to 0"));
        }
        let limit = if limit == 0 { Self::DEFAULT } else { limit as usize };
        let seal = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (account, region, rule).hash(&mut hasher);
            hasher.finish()
        };
        let offset = match body["NextToken"].as_str().filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => {
                let parsed = token.split_once('.').and_then(|(offset, sealed)| {
                    let offset = usize::from_str_radix(offset, 16).ok()?;
                    (u64::from_str_radix(sealed, 16).ok()? == seal).then_some(offset)
                });
                parsed.ok_or_else(|| {
                    Box::new(http::json_error(
                        400,
                        "InvalidNextTokenException",
                        "The nextToken provided is invalid. Specify the nextToken string that was returned in the previous response to get the next page of results.",
                    ))
                })?
            }
        };
        Ok(Page { offset, limit, seal })
    }

    fn token(&self, offset: usize) -> String {
        format!("{offset:x}.{:x}", self.seal)
    }

    /// This page of `results` and, when more follow, the token of the next.
    fn answer(&self, results: Vec<Value>) -> Response {
        let total = results.len();
        let end = self.offset.saturating_add(self.limit).min(total);
        let page: Vec<Value> = results.into_iter().skip(self.offset).take(self.limit).collect();
        let mut out = json!({"EvaluationResults": page});
        if end < total {
            out["NextToken"] = json!(self.token(end));
        }
        http::json(200, &out)
    }
}

/// A DescribeConfigRules request for `names`, made from another Config request (same account,
/// region and credentials).
fn describe_request(request: &Request, names: &[String]) -> Request {
    let mut headers = request.headers.clone();
    headers.remove(hyper::header::CONTENT_LENGTH);
    headers.insert("x-amz-target", hyper::header::HeaderValue::from_static("StarlingDoveService.DescribeConfigRules"));
    Request {
        method: hyper::Method::POST,
        uri: request.uri.clone(),
        headers,
        body: bytes::Bytes::from(json!({"ConfigRuleNames": names}).to_string()),
    }
}

/// An answer's status and body.
async fn read(response: Response) -> (u16, bytes::Bytes) {
    use http_body_util::BodyExt;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    (status, body)
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
            state.handle("PutEvaluations", account, "us-west-2", &request, &Behaviours::off()).unwrap()
        };
        // B's token is refused in A, accepted in B.
        assert_eq!(put(a, "sg-a").status(), 400);
        assert_eq!(put(b, "sg-b").status(), 200);
        let details = |account: &str| {
            let request = config_request(json!({"ConfigRuleName": "rule"}));
            let answer = body(
                state
                    .handle("GetComplianceDetailsByConfigRule", account, "us-west-2", &request, &Behaviours::off())
                    .unwrap(),
            );
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
        let status = body(
            state.handle("DescribeConfigRuleEvaluationStatus", a, "us-west-2", &request, &Behaviours::off()).unwrap(),
        );
        assert_eq!(status["ConfigRulesEvaluationStatus"], json!([]));
        let status = body(
            state.handle("DescribeConfigRuleEvaluationStatus", b, "us-west-2", &request, &Behaviours::off()).unwrap(),
        );
        assert_eq!(status["ConfigRulesEvaluationStatus"][0]["ConfigRuleName"], "rule");
    }

    fn page(state: &Evaluations, paging: bool, request: Value) -> (u16, Value) {
        let behaviours = Behaviours { compliance_paging: paging, ..Behaviours::off() };
        let request = config_request(request);
        let answer =
            state.handle("GetComplianceDetailsByConfigRule", "111111111111", "us-west-2", &request, &behaviours);
        let answer = answer.unwrap();
        let status = answer.status().as_u16();
        (status, body(answer))
    }

    fn ids(answer: &Value) -> Vec<String> {
        answer["EvaluationResults"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|e| e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"].as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn compliance_details_are_paged_as_config_pages_them() {
        let state = Evaluations::default();
        let account = "111111111111";
        for rule in ["rule", "other"] {
            let token = state.token(account, "us-west-2", rule);
            let evaluations: Vec<Value> = (0..25).map(|n| evaluation(&format!("sg-{n:02}"))).collect();
            let request = config_request(json!({"ResultToken": token, "Evaluations": evaluations}));
            let put = state.handle("PutEvaluations", account, "us-west-2", &request, &Behaviours::off()).unwrap();
            assert_eq!(put.status(), 200);
        }
        // Off: everything at once, as moto would.
        let (status, all) = page(&state, false, json!({"ConfigRuleName": "rule"}));
        assert_eq!((status, ids(&all).len(), all.get("NextToken")), (200, 25, None));

        // On: 10 by default, then the rest by NextToken, each result once.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut request = json!({"ConfigRuleName": "rule"});
            if let Some(token) = &token {
                request["NextToken"] = json!(token);
            }
            let (status, answer) = page(&state, true, request);
            assert_eq!(status, 200, "{answer}");
            pages += 1;
            assert!(ids(&answer).len() <= 10);
            seen.extend(ids(&answer));
            token = answer["NextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert_eq!((pages, seen.clone()), (3, ids(&all)));
        // Limit 0 is the default; 100 is the most; 7 pages by 7.
        let (_, zero) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": 0}));
        assert_eq!(ids(&zero).len(), 10);
        let (_, hundred) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": 100}));
        assert_eq!((ids(&hundred).len(), hundred.get("NextToken")), (25, None));
        let (_, seven) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": 7}));
        assert_eq!(ids(&seven), ids(&all)[..7]);
        let next = seven["NextToken"].as_str().unwrap();
        let (_, after) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": 7, "NextToken": next}));
        assert_eq!(ids(&after), ids(&all)[7..14]);

        // Out of range, or a token that is not this rule's: refused, as Config refuses them.
        let (status, refused) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": 101}));
        assert_eq!((status, refused["__type"].as_str()), (400, Some("ValidationException")));
        assert!(refused["message"].as_str().unwrap().contains("less than or equal to 100"), "{refused}");
        let (status, refused) = page(&state, true, json!({"ConfigRuleName": "rule", "Limit": -1}));
        assert_eq!((status, refused["__type"].as_str()), (400, Some("ValidationException")));
        let (status, refused) = page(&state, true, json!({"ConfigRuleName": "rule", "NextToken": "junk"}));
        assert_eq!((status, refused["__type"].as_str()), (400, Some("InvalidNextTokenException")));
        let (_, other) = page(&state, true, json!({"ConfigRuleName": "other", "Limit": 5}));
        let foreign = other["NextToken"].as_str().unwrap();
        let (status, refused) = page(&state, true, json!({"ConfigRuleName": "rule", "NextToken": foreign}));
        assert_eq!((status, refused["__type"].as_str()), (400, Some("InvalidNextTokenException")));
    }

    /// A stand-in for moto: knows one rule until it is deleted.
    async fn fake_moto() -> Forwarder {
        let (listener, addr) = http::bind(0).await.unwrap();
        let exists = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        tokio::spawn(http::serve(listener, move |request: Request| {
            let exists = exists.clone();
            async move {
                let target = request.header("x-amz-target").unwrap_or_default().to_owned();
                let present = exists.load(Ordering::SeqCst);
                match target.trim_start_matches("StarlingDoveService.") {
                    "DescribeConfigRules" if present => http::json(
                        200,
                        &json!({"ConfigRules": [{"ConfigRuleName": "rule", "ConfigRuleArn": "arn:aws:config:us-west-2:111111111111:config-rule/config-rule-1", "ConfigRuleState": "ACTIVE"}]}),
                    ),
                    "DescribeConfigRules" => {
                        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                        if body["ConfigRuleNames"].as_array().is_some_and(|n| !n.is_empty()) {
                            http::json_error(400, "NoSuchConfigRuleException", "no such rule")
                        } else {
                            http::json(200, &json!({"ConfigRules": []}))
                        }
                    }
                    "DeleteConfigRule" if present => {
                        exists.store(false, Ordering::SeqCst);
                        http::json(200, &json!({}))
                    }
                    _ => http::json_error(400, "NoSuchConfigRuleException", "no such rule"),
                }
            }
        }));
        Forwarder::new(&format!("http://{addr}"))
    }

    fn target(operation: &str, body: Value) -> Request {
        let mut request = config_request(body);
        let value = hyper::header::HeaderValue::from_str(&format!("StarlingDoveService.{operation}")).unwrap();
        request.headers.insert("x-amz-target", value);
        request
    }

    async fn read_json(response: Response) -> (u16, Value) {
        let (status, bytes) = read(response).await;
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_deleted_rule_stays_deleting_for_its_window_then_is_gone() {
        let moto = fake_moto().await;
        let state = Evaluations::default();
        let (account, region) = ("111111111111", "us-west-2");
        let window = Some(Duration::from_millis(400));
        let delete = target("DeleteConfigRule", json!({"ConfigRuleName": "rule"}));
        let (status, _) = read_json(state.delete_rule(&moto, account, region, &delete, window).await).await;
        assert_eq!(status, 200);

        // Shown DELETING, by name and in the full list; moto has forgotten it already.
        let by_name = target("DescribeConfigRules", json!({"ConfigRuleNames": ["rule"]}));
        let (status, shown) = read_json(state.describe_rules(&moto, account, region, &by_name).await).await;
        assert_eq!((status, shown["ConfigRules"][0]["ConfigRuleState"].as_str()), (200, Some("DELETING")), "{shown}");
        let all = target("DescribeConfigRules", json!({}));
        let (_, listed) = read_json(state.describe_rules(&moto, account, region, &all).await).await;
        assert_eq!(listed["ConfigRules"][0]["ConfigRuleName"], "rule", "{listed}");
        // Only in its own account and region.
        let (_, elsewhere) = read_json(state.describe_rules(&moto, account, "eu-west-1", &all).await).await;
        assert_eq!(elsewhere["ConfigRules"], json!([]));

        // Put, Delete and StartConfigRulesEvaluation on it: ResourceInUseException.
        let refused = state.in_use(account, region, &["rule"]).unwrap();
        let (status, refused) = read_json(refused).await;
        assert_eq!((status, refused["__type"].as_str()), (400, Some("ResourceInUseException")));
        let (status, again) = read_json(state.delete_rule(&moto, account, region, &delete, window).await).await;
        assert_eq!((status, again["__type"].as_str()), (400, Some("ResourceInUseException")));
        assert!(state.in_use(account, region, &["another"]).is_none());
        assert!(state.in_use(account, "eu-west-1", &["rule"]).is_none());

        // After the window: gone, as moto has it.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(state.in_use(account, region, &["rule"]).is_none());
        let (status, gone) = read_json(state.describe_rules(&moto, account, region, &by_name).await).await;
        assert_eq!((status, gone["__type"].as_str()), (400, Some("NoSuchConfigRuleException")));
    }

    #[test]
    fn a_deleted_rules_tokens_no_longer_put_evaluations() {
        let state = Evaluations::default();
        let (account, region) = ("111111111111", "us-west-2");
        let token = state.token(account, region, "rule");
        state.forget_rule(account, region, "rule");
        let request = config_request(json!({"ResultToken": token, "Evaluations": [evaluation("sg-1")]}));
        let answer = state.handle("PutEvaluations", account, region, &request, &Behaviours::off()).unwrap();
        assert_eq!(answer.status(), 400);
        assert!(state.history().is_empty());
    }

    #[test]
    fn evaluations_start_at_most_once_per_interval_per_rule() {
        let state = Evaluations::default();
        let (account, region) = ("111111111111", "us-west-2");
        let interval = Some(Duration::from_millis(300));
        let rule = ["rule".to_owned()];
        assert!(state.start_evaluation(account, region, &rule, interval).is_none());
        let refused = state.start_evaluation(account, region, &rule, interval).unwrap();
        assert_eq!(refused.status(), 400);
        assert_eq!(body(refused)["__type"], "LimitExceededException");
        // Another rule, another region, or no limit: accepted.
        assert!(state.start_evaluation(account, region, &["other".to_owned()], interval).is_none());
        assert!(state.start_evaluation(account, "eu-west-1", &rule, interval).is_none());
        assert!(state.start_evaluation(account, region, &rule, None).is_none());
        std::thread::sleep(Duration::from_millis(320));
        assert!(state.start_evaluation(account, region, &rule, interval).is_none());
    }
}
