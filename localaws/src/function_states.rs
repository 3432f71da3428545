//! Lambda function states, which moto skips (its functions are `Active` at once): after
//! CreateFunction a function is `Pending`, after UpdateFunctionCode or
//! UpdateFunctionConfiguration its `LastUpdateStatus` is `InProgress`, each for
//! [`Behaviours::function_pending_ms`](crate::behaviours::Behaviours). Meanwhile
//! GetFunction and GetFunctionConfiguration show that state, and UpdateFunctionCode and
//! UpdateFunctionConfiguration answer 409 `ResourceConflictException`, with Lambda's messages.
//! Lambda Developer Guide, "Lambda function states" ("Any invocations or other API actions that
//! operate on the function will fail"; the calls that fail while Pending and while an update is
//! InProgress); API reference, UpdateFunctionCode errors (ResourceConflictException).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{self, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Being created: `State: Pending`.
    Pending,
    /// Being updated: `LastUpdateStatus: InProgress`.
    InProgress,
}

type Key = (String, String, String);

/// The functions being created or updated, per (account, region, name), until when.
#[derive(Debug, Default)]
pub struct FunctionStates {
    until: Mutex<HashMap<Key, (Phase, Instant)>>,
}

fn key(account: &str, region: &str, name: &str) -> Key {
    (account.to_owned(), region.to_owned(), name.to_owned())
}

impl FunctionStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Phase, Instant)>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The function enters `phase` for `window`.
    pub fn begin(&self, account: &str, region: &str, name: &str, phase: Phase, window: Duration) {
        self.lock().insert(key(account, region, name), (phase, Instant::now() + window));
    }

    /// The phase the function is in now, if any.
    pub fn current(&self, account: &str, region: &str, name: &str) -> Option<Phase> {
        let mut until = self.lock();
        let key = key(account, region, name);
        match until.get(&key) {
            Some((phase, end)) if Instant::now() < *end => Some(*phase),
            Some(_) => {
                until.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn forget(&self, account: &str, region: &str, name: &str) {
        self.lock().remove(&key(account, region, name));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// A Lambda call the front carries out.
pub struct Call<'a> {
    pub operation: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    /// The function the path names (CreateFunction names it in its body).
    pub name: Option<&'a str>,
}

impl FunctionStates {
    /// Before a call: Lambda's 409 for an update of a function that is not ready, else the
    /// phase the function is in.
    pub fn before(
        &self,
        operation: &str,
        account: &str,
        region: &str,
        name: Option<&str>,
    ) -> Result<Option<Phase>, Box<Response>> {
        let phase = name.and_then(|n| self.current(account, region, n));
        match (phase, operation) {
            (Some(phase), "UpdateFunctionCode" | "UpdateFunctionConfiguration") => {
                let arn = format!("arn:aws:lambda:{region}:{account}:function:{}", name.unwrap_or_default());
                Err(Box::new(conflict(phase, &arn)))
            }
            _ => Ok(phase),
        }
    }

    /// After a call: a successful create or update starts its phase for `window`; GetFunction
    /// and GetFunctionConfiguration show the phase the function was in.
    pub async fn after(
        &self,
        call: &Call<'_>,
        window: Duration,
        body: &[u8],
        phase: Option<Phase>,
        answer: Response,
    ) -> Response {
        if !answer.status().is_success() {
            return answer;
        }
        let (account, region) = (call.account, call.region);
        let created = (call.operation == "CreateFunction")
            .then(|| serde_json::from_slice::<Value>(body).ok())
            .flatten()
            .and_then(|b| b["FunctionName"].as_str().map(crate::function_name));
        match (call.operation, created.as_deref().or(call.name)) {
            ("CreateFunction", Some(name)) => self.begin(account, region, name, Phase::Pending, window),
            ("UpdateFunctionCode" | "UpdateFunctionConfiguration", Some(name)) => {
                self.begin(account, region, name, Phase::InProgress, window)
            }
            ("DeleteFunction", Some(name)) => self.forget(account, region, name),
            _ => {}
        }
        let (Some(phase), "GetFunction" | "GetFunctionConfiguration") = (phase, call.operation) else { return answer };
        let (parts, body) = answer.into_parts();
        let bytes = http_body_util::BodyExt::collect(body).await.map(|c| c.to_bytes()).unwrap_or_default();
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
            return hyper::Response::from_parts(parts, http_body_util::Full::new(bytes));
        };
        if call.operation == "GetFunction" {
            value["Configuration"] = show(phase, value["Configuration"].take());
        } else {
            value = show(phase, value);
        }
        hyper::Response::from_parts(parts, http_body_util::Full::new(bytes::Bytes::from(value.to_string())))
    }
}

/// Lambda's answer to an update of a function that is Pending or being updated.
pub fn conflict(phase: Phase, arn: &str) -> Response {
    let message = match phase {
        Phase::Pending => {
            "The operation cannot be performed at this time. The function is currently in the following state: Pending"
                .to_owned()
        }
        Phase::InProgress => {
            format!("The operation cannot be performed at this time. An update is in progress for resource: {arn}")
        }
    };
    let mut response = http::response(409, "application/json", json!({"Type": "User", "message": message}).to_string());
    response
        .headers_mut()
        .insert("x-amzn-errortype", hyper::header::HeaderValue::from_static("ResourceConflictException"));
    response
}

/// A function configuration as Lambda shows it in `phase`.
pub fn show(phase: Phase, mut configuration: Value) -> Value {
    if !configuration.is_object() {
        return configuration;
    }
    match phase {
        Phase::Pending => {
            configuration["State"] = json!("Pending");
            configuration["StateReason"] = json!("The function is being created.");
            configuration["StateReasonCode"] = json!("Creating");
            configuration["LastUpdateStatus"] = json!("InProgress");
            configuration["LastUpdateStatusReason"] = json!("The function is being created.");
            configuration["LastUpdateStatusReasonCode"] = json!("Creating");
        }
        Phase::InProgress => {
            configuration["State"] = json!("Active");
            configuration["LastUpdateStatus"] = json!("InProgress");
            configuration["LastUpdateStatusReason"] = json!("The function is being updated.");
            configuration["LastUpdateStatusReasonCode"] = json!("Updating");
        }
    }
    configuration
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_lasts_its_window() {
        let states = FunctionStates::default();
        states.begin("1", "us-west-2", "f", Phase::Pending, Duration::from_millis(50));
        assert_eq!(states.current("1", "us-west-2", "f"), Some(Phase::Pending));
        assert_eq!(states.current("1", "eu-west-1", "f"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(states.current("1", "us-west-2", "f"), None);
    }

    #[test]
    fn the_configuration_shows_the_phase() {
        let active = json!({"State": "Active", "LastUpdateStatus": "Successful"});
        let pending = show(Phase::Pending, active.clone());
        assert_eq!(
            (pending["State"].as_str(), pending["LastUpdateStatus"].as_str()),
            (Some("Pending"), Some("InProgress"))
        );
        let updating = show(Phase::InProgress, active);
        assert_eq!(
            (updating["State"].as_str(), updating["LastUpdateStatus"].as_str()),
            (Some("Active"), Some("InProgress"))
        );
    }
}
