//! Fault injection: makes chosen operations answer as AWS does when it throttles or fails —
//! on a seeded fraction of calls or on every Nth call — or answer late. Only client requests
//! entering the front are affected, never the front's own calls to moto; a fault answers instead
//! of forwarding, so the operation did not happen (a delay answers after it did, and so does
//! `then-5xx`: the change is made and the answer is a server error, as when AWS applies a
//! request and the answer is lost or fails on its way back).
//!
//! Set with `POST /_sg-lab/faults` (a [`FaultSpec`] as JSON), cleared with `DELETE`; `GET` shows
//! the spec and the faults injected so far, per operation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::{self, Request, Response};

/// What a faulted call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// The service's throttling error: `ThrottlingException` (JSON protocols), `Throttling`
    /// (IAM, STS), `RequestLimitExceeded` (EC2, HTTP 503), `SlowDown` (S3, HTTP 503),
    /// `TooManyRequestsException` (Lambda, HTTP 429).
    #[serde(rename = "throttle")]
    Throttle,
    /// A server error, HTTP 500 or 503 alternately (`InternalError`/`Unavailable` for EC2,
    /// `InternalError`/`ServiceUnavailable` for S3, `InternalFailure`/`ServiceUnavailable`
    /// otherwise, `ServiceException` for Lambda).
    #[serde(rename = "5xx")]
    ServerError,
    /// The call is carried out, and its answer held back `delayMs`: a client that dies meanwhile
    /// never learns that it succeeded.
    #[serde(rename = "delay")]
    Delay,
    /// The call is carried out, then answered with a server error as `5xx` does: the change is
    /// made, and the client, told it failed, retries a call that already took effect.
    #[serde(rename = "then-5xx")]
    ThenServerError,
}

/// Which calls fail, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Seeds the choice of calls with `rate`: the same seed picks the same calls of each
    /// operation (the Nth call of an operation is faulted or not, whatever else runs).
    #[serde(default)]
    pub seed: u64,
    /// The fraction of matching calls to fault, 0 to 1. With neither `rate` nor `nth`, every
    /// matching call is faulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Fault every Nth matching call of each operation (N ≥ 1) instead of a fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// `*`, an operation (`CreateRole`), a service's operation (`iam:CreateRole`) or a whole
    /// service (`iam:*`). Default: every operation.
    #[serde(default = "every_operation")]
    pub operations: Vec<String>,
    pub kind: FaultKind,
    /// For `delay`: how long the answer is held back, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

fn every_operation() -> Vec<String> {
    vec!["*".to_owned()]
}

impl FaultSpec {
    /// Parses and checks a spec.
    pub fn parse(text: &str) -> Result<Self, String> {
        let spec: FaultSpec = serde_json::from_str(text).map_err(|e| format!("bad fault spec: {e}"))?;
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        if self.rate.is_some() && self.nth.is_some() {
            return Err("bad fault spec: give `rate` or `nth`, not both".into());
        }
        if let Some(rate) = self.rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("bad fault spec: `rate` {rate} is not between 0 and 1"));
            }
        }
        if self.nth == Some(0) {
            return Err("bad fault spec: `nth` must be at least 1".into());
        }
        if self.operations.is_empty() {
            return Err("bad fault spec: `operations` is empty (use [\"*\"] for every operation)".into());
        }
        if (self.kind == FaultKind::Delay) != self.delay_ms.is_some() {
            return Err("bad fault spec: `delayMs` goes with kind `delay`, and only with it".into());
        }
        Ok(())
    }

    /// Whether the spec names `service:operation`.
    pub fn matches(&self, service: &str, operation: &str) -> bool {
        self.operations.iter().any(|o| match o.split_once(':') {
            None => o == "*" || o == operation,
            Some((s, op)) => s.eq_ignore_ascii_case(service) && (op == "*" || op == operation),
        })
    }

    /// Whether the `n`th matching call (1-based) of `key` is faulted.
    fn picks(&self, key: &str, n: u64) -> bool {
        match (self.nth, self.rate) {
            (Some(nth), _) => n % nth == 0,
            (None, Some(rate)) => unit(self.seed, key, n) < rate,
            (None, None) => true,
        }
    }
}

/// A deterministic number in [0, 1) from the seed, the operation and the call's number.
fn unit(seed: u64, key: &str, n: u64) -> f64 {
    // FNV-1a of the operation, mixed with the seed and the call number by SplitMix64.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut z = hash ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// How the service of a request speaks, which decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `X-Amz-Target` JSON: Config, CloudWatch Logs, EventBridge, CloudTrail.
    Json,
    /// Lambda's REST JSON.
    RestJson,
    /// EC2's query protocol with its own error document.
    Ec2,
    /// The query protocol: IAM, STS.
    Query,
    S3,
}

impl Protocol {
    pub fn of(service: &str, request: &Request) -> Self {
        if request.header("x-amz-target").is_some() {
            return Protocol::Json;
        }
        match service {
            "s3" => Protocol::S3,
            "lambda" => Protocol::RestJson,
            "ec2" => Protocol::Ec2,
            _ => Protocol::Query,
        }
    }
}

/// The error answer of a faulted call; `second` picks the 503 variant of a server error.
pub fn answer(protocol: Protocol, kind: FaultKind, second: bool) -> Response {
    let kind = if kind == FaultKind::ThenServerError { FaultKind::ServerError } else { kind };
    let request_id = "00000000-0000-4000-8000-00000000fa17";
    let (status, code, message) = match (kind, protocol, second) {
        (FaultKind::Throttle | FaultKind::Delay, Protocol::Json, _) => (400, "ThrottlingException", "Rate exceeded"),
        (FaultKind::Throttle | FaultKind::Delay, Protocol::Query, _) => (400, "Throttling", "Rate exceeded"),
        (FaultKind::Throttle | FaultKind::Delay, Protocol::Ec2, _) => {
            (503, "RequestLimitExceeded", "Request limit exceeded.")
        }
        (FaultKind::Throttle | FaultKind::Delay, Protocol::S3, _) => {
            (503, "SlowDown", "Please reduce your request rate.")
        }
        (FaultKind::Throttle | FaultKind::Delay, Protocol::RestJson, _) => {
            (429, "TooManyRequestsException", "Rate exceeded")
        }
        (FaultKind::ServerError | FaultKind::ThenServerError, Protocol::RestJson, _) => {
            (500, "ServiceException", "An internal error occurred.")
        }
        (FaultKind::ServerError | FaultKind::ThenServerError, Protocol::Ec2 | Protocol::S3, false) => {
            (500, "InternalError", "We encountered an internal error. Please try again.")
        }
        (FaultKind::ServerError | FaultKind::ThenServerError, Protocol::Ec2, true) => {
            (503, "Unavailable", "The server is overloaded and can't handle the request.")
        }
        (FaultKind::ServerError | FaultKind::ThenServerError, _, false) => {
            (500, "InternalFailure", "The request processing has failed.")
        }
        (FaultKind::ServerError | FaultKind::ThenServerError, _, true) => {
            (503, "ServiceUnavailable", "The service is unavailable.")
        }
    };
    let mut response = match protocol {
        Protocol::Json => http::json_error(status, code, message),
        Protocol::RestJson => {
            let mut r = http::response(
                status,
                "application/json",
                json!({"Type": if status == 429 { "User" } else { "Service" }, "message": message}).to_string(),
            );
            if let Ok(value) = hyper::header::HeaderValue::from_str(code) {
                r.headers_mut().insert("x-amzn-errortype", value);
            }
            r
        }
        Protocol::Ec2 => http::response(
            status,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        Protocol::Query => {
            let kind = if status < 500 { "Sender" } else { "Receiver" };
            http::response(
                status,
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                ),
            )
        }
        Protocol::S3 => http::response(
            status,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
    };
    if let Ok(value) = hyper::header::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// Answer with this fault instead of forwarding; `second` picks the 503 variant.
    Fail {
        kind: FaultKind,
        second: bool,
    },
    /// Carry the call out, then hold the answer back.
    Delay(Duration),
    /// Carry the call out, then answer a server error (`second`: the 503 variant).
    ThenFail {
        second: bool,
    },
}

/// The spec in force and what it did.
#[derive(Debug, Default)]
pub struct Faults {
    spec: Option<FaultSpec>,
    /// Matching calls seen per operation since the spec was set.
    seen: BTreeMap<String, u64>,
    /// Faults injected per operation since the spec was set.
    injected: BTreeMap<String, u64>,
}

impl Faults {
    pub fn set(&mut self, spec: Option<FaultSpec>) {
        *self = Faults { spec, ..Faults::default() };
    }

    /// Decides the fate of one call of `service:operation`.
    pub fn decide(&mut self, service: &str, operation: &str) -> Decision {
        let Some(spec) = &self.spec else { return Decision::Pass };
        if !spec.matches(service, operation) {
            return Decision::Pass;
        }
        let key = format!("{service}:{operation}");
        let n = {
            let seen = self.seen.entry(key.clone()).or_default();
            *seen += 1;
            *seen
        };
        if !spec.picks(&key, n) {
            return Decision::Pass;
        }
        *self.injected.entry(key).or_default() += 1;
        match (spec.kind, spec.delay_ms) {
            (FaultKind::Delay, Some(ms)) => Decision::Delay(Duration::from_millis(ms)),
            (FaultKind::ThenServerError, _) => Decision::ThenFail { second: n % 2 == 0 },
            (kind, _) => Decision::Fail { kind, second: n % 2 == 0 },
        }
    }

    /// `{"spec": …, "injected": {"iam:CreateRole": 2, …}, "total": N}`.
    pub fn report(&self) -> serde_json::Value {
        json!({
            "spec": self.spec,
            "injected": self.injected,
            "total": self.injected.values().sum::<u64>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn spec(text: &str) -> FaultSpec {
        FaultSpec::parse(text).unwrap()
    }

    fn decisions(faults: &mut Faults, service: &str, op: &str, calls: usize) -> Vec<bool> {
        (0..calls).map(|_| faults.decide(service, op) != Decision::Pass).collect()
    }

    #[test]
    fn a_seed_picks_the_same_calls_and_about_the_rate() {
        let mut a = Faults::default();
        a.set(Some(spec(r#"{"seed":7,"rate":0.2,"kind":"throttle"}"#)));
        let mut b = Faults::default();
        b.set(Some(spec(r#"{"seed":7,"rate":0.2,"kind":"throttle"}"#)));
        // Interleaving other operations does not change which calls of an operation fail.
        let first = decisions(&mut a, "iam", "CreateRole", 1000);
        decisions(&mut b, "ec2", "DescribeSecurityGroups", 17);
        let second = decisions(&mut b, "iam", "CreateRole", 1000);
        assert_eq!(first, second);
        let failed = first.iter().filter(|f| **f).count();
        assert!((150..=250).contains(&failed), "{failed} of 1000");
        let mut c = Faults::default();
        c.set(Some(spec(r#"{"seed":8,"rate":0.2,"kind":"throttle"}"#)));
        assert_ne!(decisions(&mut c, "iam", "CreateRole", 1000), first);
        assert_eq!(a.report()["injected"]["iam:CreateRole"], failed);
    }

    #[test]
    fn every_nth_call_and_only_the_named_operations() {
        let mut faults = Faults::default();
        faults.set(Some(spec(r#"{"nth":3,"operations":["CreatePolicy","s3:*"],"kind":"5xx"}"#)));
        assert_eq!(decisions(&mut faults, "iam", "CreatePolicy", 6), [false, false, true, false, false, true]);
        assert_eq!(decisions(&mut faults, "s3", "HeadBucket", 3), [false, false, true]);
        assert_eq!(decisions(&mut faults, "iam", "CreateRole", 6), [false; 6]);
        assert_eq!(faults.report()["total"], 3);
        faults.set(None);
        assert_eq!(decisions(&mut faults, "iam", "CreatePolicy", 3), [false; 3]);
        assert_eq!(faults.report()["total"], 0);
    }

    #[test]
    fn without_rate_or_nth_every_call_fails_and_delays_carry_their_length() {
        let mut faults = Faults::default();
        faults.set(Some(spec(r#"{"operations":["iam:CreateRole"],"kind":"throttle"}"#)));
        assert_eq!(decisions(&mut faults, "iam", "CreateRole", 4), [true; 4]);
        faults.set(Some(spec(r#"{"operations":["CreateBucket"],"kind":"delay","delayMs":1500}"#)));
        assert_eq!(faults.decide("s3", "CreateBucket"), Decision::Delay(Duration::from_millis(1500)));
        faults.set(Some(spec(r#"{"nth":2,"operations":["CreateRole"],"kind":"then-5xx"}"#)));
        assert_eq!(faults.decide("iam", "CreateRole"), Decision::Pass);
        assert_eq!(faults.decide("iam", "CreateRole"), Decision::ThenFail { second: true });
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        for (text, reason) in [
            (r#"{"rate":1.5,"kind":"throttle"}"#, "between 0 and 1"),
            (r#"{"rate":0.5,"nth":2,"kind":"throttle"}"#, "not both"),
            (r#"{"nth":0,"kind":"5xx"}"#, "at least 1"),
            (r#"{"kind":"delay"}"#, "delayMs"),
            (r#"{"kind":"slow"}"#, "unknown variant"),
            (r#"{"kind":"throttle","operation":["x"]}"#, "unknown field"),
            (r#"{"kind":"throttle","operations":[]}"#, "is empty"),
        ] {
            let err = FaultSpec::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    async fn body(response: Response) -> (u16, Option<String>, String) {
        let status = response.status().as_u16();
        let header = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, header, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn each_protocol_gets_its_own_error_shape() {
        let (status, header, text) = body(answer(Protocol::Json, FaultKind::Throttle, false)).await;
        assert_eq!((status, header.as_deref()), (400, Some("ThrottlingException")));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["__type"], "ThrottlingException");
        let (status, _, text) = body(answer(Protocol::Ec2, FaultKind::Throttle, false)).await;
        assert_eq!(status, 503);
        assert!(text.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"), "{text}");
        let (status, _, text) = body(answer(Protocol::S3, FaultKind::Throttle, true)).await;
        assert!(status == 503 && text.contains("<Error><Code>SlowDown</Code>"), "{text}");
        let (status, _, text) = body(answer(Protocol::Query, FaultKind::Throttle, false)).await;
        assert!(status == 400 && text.contains("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"));
        let (status, header, _) = body(answer(Protocol::RestJson, FaultKind::Throttle, false)).await;
        assert_eq!((status, header.as_deref()), (429, Some("TooManyRequestsException")));
        let (status, _, text) = body(answer(Protocol::Ec2, FaultKind::ServerError, false)).await;
        assert!(status == 500 && text.contains("<Code>InternalError</Code>"), "{text}");
        let (status, header, _) = body(answer(Protocol::Json, FaultKind::ServerError, true)).await;
        assert_eq!((status, header.as_deref()), (503, Some("ServiceUnavailable")));
        let (status, _, text) = body(answer(Protocol::Query, FaultKind::ServerError, false)).await;
        assert!(status == 500 && text.contains("<Type>Receiver</Type><Code>InternalFailure</Code>"), "{text}");
    }
}
