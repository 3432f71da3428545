//! Config evaluation, which the backend only stores: configuration items for security groups,
//! invocation of custom-rule functions with the events AWS builds, and the evaluation APIs
//! (PutEvaluations, compliance reads, evaluation status) answered from this module's state.
//!
//! This file keeps the state (evaluations, result tokens, rule lives: DELETING, the evaluation
//! limit) and the rule operations; `compliance.rs` answers the evaluation APIs from it, and
//! `items.rs` shapes what Config records and sends (configuration items, the rule events).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::behaviours::Behaviours;
use crate::http::{self, Forwarder, Request, Response};

mod compliance;
mod items;
pub use items::{
    change_notification, change_triggered, configuration_item, group_configuration, periodic, rule_event,
    scheduled_notification,
};

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
