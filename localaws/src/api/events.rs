//! EC2 calls delivered as CloudTrail-shaped events ("AWS API Call via CloudTrail",
//! [`crate::events`]) to the matching EventBridge rules of the caller's default bus, invoking
//! their Lambda targets.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tracing::warn;

use crate::config::{self, log_error};
use crate::events;
use crate::http::Request;
use crate::{accounts, function_name, Front};

impl Front {
    /// Delivers the CloudTrail event of an EC2 call made in `account` to every enabled
    /// EventBridge rule of that account's default bus whose pattern matches, invoking its Lambda
    /// targets asynchronously.
    pub(crate) async fn deliver_api_call(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        action: &str,
        form: &[(String, String)],
        status: u16,
        body: &str,
    ) {
        let tag =
            |name: &str| body.split(&format!("<{name}>")).nth(1).and_then(|s| s.split('<').next()).map(str::to_owned);
        let mut response = json!(null);
        let mut request_parameters = events::request_parameters(form);
        if status == 200 {
            response = match tag("groupId") {
                Some(id) if action == "CreateSecurityGroup" => json!({"_return": true, "groupId": id}),
                _ => json!({"_return": true}),
            };
        }
        let time = aws_smithy_types::DateTime::from_secs_f64(config::now())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        let id = format!("{:016x}", (config::now() * 1e6) as u64);
        let mut event =
            events::cloudtrail_event(account, region, action, request_parameters.take(), response, &time, &id);
        if status != 200 {
            event["detail"]["errorCode"] = json!(tag("Code").unwrap_or_else(|| "Client.Error".into()));
            event["detail"]["errorMessage"] = json!(tag("Message").unwrap_or_default());
        }
        let rules = self.events_call(account, region, "ListRules", json!({"EventBusName": "default"})).await;
        for rule in rules["Rules"].as_array().into_iter().flatten() {
            let enabled = rule["State"] == "ENABLED";
            let pattern = rule["EventPattern"].as_str().and_then(|p| serde_json::from_str::<Value>(p).ok());
            if !enabled || !pattern.is_some_and(|p| events::matches(&p, &event)) {
                continue;
            }
            let rule_arn = rule["Arn"].as_str().unwrap_or_default().to_owned();
            let targets = self.events_call(account, region, "ListTargetsByRule", json!({"Rule": rule["Name"]})).await;
            for target in targets["Targets"].as_array().into_iter().flatten() {
                let Some(arn) = target["Arn"].as_str().filter(|a| a.contains(":lambda:")) else { continue };
                let function = function_name(arn);
                let home = accounts::account_of_arn(arn).unwrap_or_else(|| account.to_owned());
                if !self.allows(&home, region, &function, "events.amazonaws.com", Some(&rule_arn), account).await {
                    warn!(
                        "EventBridge rule {rule_arn} may not invoke {function}: no permission for events.amazonaws.com"
                    );
                    continue;
                }
                let Ok(config) = self.function_config(&home, region, &function).await else { continue };
                let payload = target["Input"]
                    .as_str()
                    .map(|i| Bytes::from(i.to_owned()))
                    .unwrap_or_else(|| Bytes::from(event.to_string()));
                log_error("EventBridge delivery", self.executor.invoke(&config, payload).await);
            }
        }
    }

    /// A JSON call to the backend's EventBridge in `account` (moto takes the region from the scope).
    pub(crate) async fn events_call(&self, account: &str, region: &str, operation: &str, body: Value) -> Value {
        let mut headers = hyper::HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=local/20260101/{region}/events/aws4_request, SignedHeaders=host, Signature=0"
        );
        for (name, value) in [
            ("x-amz-target", format!("AWSEvents.{operation}")),
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("authorization", auth),
            (accounts::ACCOUNT_HEADER, account.to_owned()),
        ] {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let request = Request {
            method: hyper::Method::POST,
            uri: hyper::Uri::from_static("/"),
            headers,
            body: Bytes::from(body.to_string()),
        };
        let answer = self.forwarder.forward(&request).await;
        let bytes = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}
