//! Config's API as the front answers it, and the evaluation worker: StartConfigRulesEvaluation,
//! PutConfigRule and DeleteConfigRule with Config's limits and states, the evaluation APIs
//! answered from [`crate::config`]'s state, and the evaluations themselves — a queue of
//! triggers (security groups changed, rules to evaluate) that a worker turns into invocations
//! of each rule's function with the events Config builds.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::behaviours::Behaviours;
use crate::config::{self, log_error};
use crate::http::{self, Request, Response};
use crate::lambda::Outcome;
use crate::{accounts, function_name, Front};

pub(crate) enum Trigger {
    GroupsChanged { account: String, region: String, groups: Vec<String> },
    EvaluateRules { account: String, region: String, rules: Vec<String> },
}

impl Front {
    pub(crate) fn trigger(&self, trigger: Trigger) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.triggers.send(trigger).is_err() {
            self.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub(crate) async fn config(
        self: &Arc<Self>,
        operation: &str,
        account: &str,
        region: &str,
        request: &Request,
    ) -> Response {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        match operation {
            "StartConfigRulesEvaluation" => {
                let rules: Vec<String> = body["ConfigRuleNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let names: Vec<&str> = rules.iter().map(String::as_str).collect();
                if let Some(refused) = self.evaluations.in_use(account, region, &names) {
                    return refused;
                }
                let backend = self.backend(account, region);
                for rule in &rules {
                    let found = backend.config.describe_config_rules().config_rule_names(rule).send().await;
                    if found.is_err() {
                        return http::json_error(400, "NoSuchConfigRuleException", &format!("The ConfigRule '{rule}' provided in the request is invalid. Please check the configRule name."));
                    }
                }
                let interval = Behaviours::window(self.behaviours().evaluation_interval_ms);
                if let Some(refused) = self.evaluations.start_evaluation(account, region, &rules, interval) {
                    return refused;
                }
                self.trigger(Trigger::EvaluateRules { account: account.to_owned(), region: region.to_owned(), rules });
                http::json(200, &json!({}))
            }
            "PutConfigRule" => {
                let name = body["ConfigRule"]["ConfigRuleName"].as_str().unwrap_or_default();
                if let Some(refused) = self.evaluations.in_use(account, region, &[name]) {
                    return refused;
                }
                let answer = self.forwarder.forward(request).await;
                if answer.status() == 200 {
                    if let Some(rule) = body["ConfigRule"]["ConfigRuleName"].as_str() {
                        self.evaluations.activated(account, region, rule);
                        // Config evaluates a new or changed rule at once: it counts as started.
                        self.evaluations.start_evaluation(account, region, &[rule.to_owned()], None);
                        self.trigger(Trigger::EvaluateRules {
                            account: account.to_owned(),
                            region: region.to_owned(),
                            rules: vec![rule.to_owned()],
                        });
                    }
                }
                answer
            }
            "DeleteConfigRule" => {
                let window = Behaviours::window(self.behaviours().rule_deleting_ms);
                self.evaluations.delete_rule(&self.forwarder, account, region, request, window).await
            }
            "DescribeConfigRules" => self.evaluations.describe_rules(&self.forwarder, account, region, request).await,
            _ => match self.evaluations.handle(operation, account, region, request, &self.behaviours()) {
                Some(answer) => answer,
                None => self.forwarder.forward(request).await,
            },
        }
    }

    /// Evaluates what a trigger calls for, invoking each rule's function in turn.
    pub(crate) async fn evaluate(&self, trigger: Trigger) {
        let (account, region, groups, only) = match trigger {
            Trigger::GroupsChanged { account, region, groups } => (account, region, Some(groups), None),
            Trigger::EvaluateRules { account, region, rules } => (account, region, None, Some(rules)),
        };
        let backend = self.backend(&account, &region);
        // Config evaluates only what a running recorder records.
        let Some(recorders) =
            log_error("reading recorders", backend.config.describe_configuration_recorders().send().await)
        else {
            return;
        };
        let Some(status) =
            log_error("reading recorder status", backend.config.describe_configuration_recorder_status().send().await)
        else {
            return;
        };
        let recorder = recorders.configuration_recorders().iter().find(|r| {
            let records = r.recording_group().is_none_or(|g| {
                g.all_supported() || g.resource_types().iter().any(|t| t.as_str() == config::SECURITY_GROUP)
            });
            let running = status.configuration_recorders_status().iter().any(|s| s.name() == r.name() && s.recording());
            records && running
        });
        let Some(recorder) = recorder else {
            info!("no running recorder records security groups in {account} {region}: nothing evaluated");
            return;
        };
        let role = recorder.role_arn().unwrap_or_default().to_owned();
        let Some(rules) = log_error("reading rules", backend.config.describe_config_rules().send().await) else {
            return;
        };
        let rules: Vec<_> = rules
            .config_rules()
            .iter()
            .filter(|r| {
                only.as_ref().is_none_or(|names| names.iter().any(|n| Some(n.as_str()) == r.config_rule_name()))
            })
            .cloned()
            .collect();
        for rule in rules {
            if only.is_some() && config::periodic(&rule) {
                let notification = config::scheduled_notification(&account);
                self.invoke_rule(&account, &region, &rule, &notification, &role).await;
            }
            if !config::change_triggered(&rule) {
                continue;
            }
            let ids = match &groups {
                Some(ids) => ids.clone(),
                None => {
                    let all = backend.ec2.describe_security_groups().send().await;
                    let Some(all) = log_error("listing security groups", all) else { continue };
                    all.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect()
                }
            };
            for id in ids {
                let group = match backend.ec2.describe_security_groups().group_ids(&id).send().await {
                    Ok(out) => out.security_groups().first().cloned(),
                    Err(_) => None,
                };
                let item = config::configuration_item(&account, &region, &id, group.as_ref(), config::now());
                self.invoke_rule(&account, &region, &rule, &config::change_notification(item), &role).await;
            }
        }
    }

    /// Invokes the function of a rule of `account` (the function lives in the account its ARN
    /// names, else in the rule's).
    pub(crate) async fn invoke_rule(
        &self,
        account: &str,
        region: &str,
        rule: &aws_sdk_config::types::ConfigRule,
        invoking: &Value,
        role: &str,
    ) {
        let rule_name = rule.config_rule_name().unwrap_or_default().to_owned();
        let source = rule.source().and_then(|s| s.source_identifier());
        let Some(function) = source.map(function_name) else { return };
        let home = source.and_then(accounts::account_of_arn).unwrap_or_else(|| account.to_owned());
        let allowed = self.allows(&home, region, &function, "config.amazonaws.com", None, account).await;
        if !allowed {
            let message = format!(
                "AWS Config could not invoke function {function}: its resource policy does not allow config.amazonaws.com (add it with lambda add-permission)"
            );
            warn!("{message}");
            let error = Some(("InsufficientPermissionsException".into(), message));
            self.evaluations.invoked(account, region, &rule_name, error);
            return;
        }
        let config = match self.function_config(&home, region, &function).await {
            Ok(config) => config,
            Err(_) => {
                let message = format!("function {function} of rule {rule_name} does not exist");
                self.evaluations.invoked(
                    account,
                    region,
                    &rule_name,
                    Some(("ResourceNotFoundException".into(), message)),
                );
                return;
            }
        };
        let token = self.evaluations.token(account, region, &rule_name);
        let event = config::rule_event(account, rule, invoking, &token, role);
        match self.executor.invoke(&config, Bytes::from(event.to_string())).await {
            Ok(invocation) => match invocation.outcome {
                Outcome::Response(_) => self.evaluations.invoked(account, region, &rule_name, None),
                Outcome::FunctionError { error_type, message, .. } => {
                    warn!("rule {rule_name}: function {function} failed: {error_type}: {message}");
                    self.evaluations.invoked(account, region, &rule_name, Some((error_type, message)));
                }
            },
            Err(message) => {
                warn!("rule {rule_name}: {message}");
                self.evaluations.invoked(account, region, &rule_name, Some(("LocalExecutorError".into(), message)));
            }
        }
    }
}

pub(crate) async fn worker(front: Arc<Front>, mut receiver: mpsc::UnboundedReceiver<Trigger>) {
    while let Some(trigger) = receiver.recv().await {
        front.evaluate(trigger).await;
        front.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
