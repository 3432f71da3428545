//! EventBridge partial failures, which moto never produces: PutTargets and RemoveTargets answer
//! HTTP 200 with `FailedEntryCount` > 0 and `FailedEntries` (`TargetId`, `ErrorCode`,
//! `ErrorMessage`) for the entries they did not apply, and apply the others. EventBridge API
//! reference, PutTargets and RemoveTargets ("FailedEntryCount", "FailedEntries"),
//! PutTargetsResultEntry / RemoveTargetsResultEntry ("If the value is
//! ConcurrentModificationException, too many requests were made at the same time").
//!
//! With [`Behaviours::eventbridge_failed_entry_nth`](crate::behaviours::Behaviours) = N, the
//! entries of both calls are counted per account and region and every Nth fails: it is left out
//! of the request moto sees and answered in `FailedEntries`. (DeleteRule on a rule that still has
//! targets answers `ValidationException` "Rule can't be deleted since it has targets." as AWS
//! does: moto already does it.)

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::http::{self, Forwarder, Request, Response};

/// The code and message of an entry that failed (what AWS gives for contention).
pub const FAILED_CODE: &str = "ConcurrentModificationException";
pub const FAILED_MESSAGE: &str = "Too many requests were made at the same time; the target was not changed.";

/// Entries of PutTargets and RemoveTargets seen per (account, region).
#[derive(Debug, Default)]
pub struct EntryCounts {
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl EntryCounts {
    /// Counts `n` entries of `account` in `region`; for each, whether it fails (its number is a
    /// multiple of `nth`).
    pub fn pick(&self, account: &str, region: &str, n: usize, nth: u64) -> Vec<bool> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let count = seen.entry((account.to_owned(), region.to_owned())).or_default();
        (0..n)
            .map(|_| {
                *count += 1;
                nth > 0 && *count % nth == 0
            })
            .collect()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The entries of a request: `Targets` (PutTargets, objects with `Id`) or `Ids` (RemoveTargets).
fn entries_key(operation: &str) -> Option<&'static str> {
    match operation {
        "PutTargets" => Some("Targets"),
        "RemoveTargets" => Some("Ids"),
        _ => None,
    }
}

fn entry_id(entry: &Value) -> String {
    entry.as_str().or_else(|| entry["Id"].as_str()).unwrap_or_default().to_owned()
}

/// Splits the request's entries by `failed`: the body with the entries to apply, and the ids of
/// those that fail.
pub fn split(operation: &str, body: &Value, failed: &[bool]) -> (Value, Vec<String>) {
    let Some(key) = entries_key(operation) else { return (body.clone(), Vec::new()) };
    let entries = body[key].as_array().cloned().unwrap_or_default();
    let mut kept = Vec::new();
    let mut ids = Vec::new();
    for (entry, fails) in entries.into_iter().zip(failed.iter().copied().chain(std::iter::repeat(false))) {
        if fails {
            ids.push(entry_id(&entry));
        } else {
            kept.push(entry);
        }
    }
    let mut body = body.clone();
    body[key] = Value::Array(kept);
    (body, ids)
}

/// Adds the failed ids to an answer's `FailedEntries` and `FailedEntryCount`.
pub fn merge(mut answer: Value, failed: &[String]) -> Value {
    if !answer.is_object() {
        answer = json!({});
    }
    let mut entries = answer["FailedEntries"].as_array().cloned().unwrap_or_default();
    entries.extend(
        failed.iter().map(|id| json!({"TargetId": id, "ErrorCode": FAILED_CODE, "ErrorMessage": FAILED_MESSAGE})),
    );
    answer["FailedEntryCount"] = json!(entries.len());
    answer["FailedEntries"] = Value::Array(entries);
    answer
}

/// Carries out PutTargets or RemoveTargets with every `nth` entry failing.
pub async fn partial(
    forwarder: &Forwarder,
    counts: &EntryCounts,
    account: &str,
    region: &str,
    operation: &str,
    request: &Request,
    nth: u64,
) -> Response {
    let Some(key) = entries_key(operation) else { return forwarder.forward(request).await };
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else { return forwarder.forward(request).await };
    let n = body[key].as_array().map_or(0, Vec::len);
    let failed = counts.pick(account, region, n, nth);
    if !failed.contains(&true) {
        return forwarder.forward(request).await;
    }
    let (kept, failed_ids) = split(operation, &body, &failed);
    let with_body = |body: &Value| {
        let bytes = Bytes::from(body.to_string());
        let mut headers = request.headers.clone();
        if let Ok(length) = hyper::header::HeaderValue::from_str(&bytes.len().to_string()) {
            headers.insert(hyper::header::CONTENT_LENGTH, length);
        }
        Request { method: request.method.clone(), uri: request.uri.clone(), headers, body: bytes }
    };
    let answer = if kept[key].as_array().is_some_and(|a| !a.is_empty()) {
        forwarder.forward(&with_body(&kept)).await
    } else {
        // Nothing to apply: the rule must still exist (AWS checks it first).
        let mut query = json!({"Name": body["Rule"]});
        if !body["EventBusName"].is_null() {
            query["EventBusName"] = body["EventBusName"].clone();
        }
        let mut describe = with_body(&query);
        if let Ok(target) = hyper::header::HeaderValue::from_str("AWSEvents.DescribeRule") {
            describe.headers.insert("x-amz-target", target);
        }
        let found = forwarder.forward(&describe).await;
        if !found.status().is_success() {
            return found;
        }
        http::json(200, &json!({"FailedEntryCount": 0, "FailedEntries": []}))
    };
    if !answer.status().is_success() {
        return answer;
    }
    let bytes = http_body_util::BodyExt::collect(answer.into_body()).await.map(|c| c.to_bytes()).unwrap_or_default();
    let merged = merge(serde_json::from_slice(&bytes).unwrap_or(Value::Null), &failed_ids);
    tracing::info!("EventBridge {operation}: {} entries not applied (FailedEntries)", failed_ids.len());
    http::json(200, &merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_entry_fails_per_account_and_region() {
        let counts = EntryCounts::default();
        assert_eq!(counts.pick("1", "us-west-2", 2, 3), [false, false]);
        assert_eq!(counts.pick("1", "eu-west-1", 1, 3), [false]);
        assert_eq!(counts.pick("1", "us-west-2", 2, 3), [true, false]);
        assert_eq!(counts.pick("2", "us-west-2", 3, 3), [false, false, true]);
        assert_eq!(counts.pick("1", "us-west-2", 2, 0), [false, false]);
    }

    #[test]
    fn failed_entries_are_left_out_and_reported() {
        let body = json!({"Rule": "r", "Targets": [{"Id": "a", "Arn": "x"}, {"Id": "b", "Arn": "y"}]});
        let (kept, failed) = split("PutTargets", &body, &[false, true]);
        assert_eq!(kept["Targets"], json!([{"Id": "a", "Arn": "x"}]));
        assert_eq!(failed, ["b"]);
        let (kept, failed) = split("RemoveTargets", &json!({"Rule": "r", "Ids": ["a", "b"]}), &[true, false]);
        assert_eq!((kept["Ids"].clone(), failed), (json!(["b"]), vec!["a".to_owned()]));
        let merged = merge(json!({"FailedEntryCount": 0, "FailedEntries": []}), &["b".to_owned()]);
        assert_eq!(merged["FailedEntryCount"], 1);
        assert_eq!(merged["FailedEntries"][0]["TargetId"], "b");
        assert_eq!(merged["FailedEntries"][0]["ErrorCode"], FAILED_CODE);
    }
}
