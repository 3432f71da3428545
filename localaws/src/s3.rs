//! S3 where AWS differs from moto ([`Behaviours`]): buckets that live in one region, a deleted
//! bucket's name held for a while, and a late delivery that lands after a bucket was emptied.
//!
//! - **Regional buckets** (`regional_buckets`). A bucket lives in the region of its
//!   `LocationConstraint` (none: us-east-1). A request for it signed for another region (the
//!   SigV4 credential scope) answers 301 `PermanentRedirect` with the header
//!   `x-amz-bucket-region`, and HeadBucket a bare 301 with that header: S3 User Guide, "Making
//!   requests" (temporary and permanent redirects) and API reference, HeadBucket ("the
//!   x-amz-bucket-region header"). The Rust SDK does not follow it (awslabs/aws-sdk-rust
//!   issues 183 and 1052). moto keeps one namespace without regions.
//! - **Name hold** (`bucket_name_hold_ms`). After DeleteBucket, CreateBucket of that name
//!   answers 409 `OperationAborted` ("A conflicting conditional operation is currently in
//!   progress against this resource. Try again.") for the window: AWS Knowledge Center,
//!   "s3-conflicting-conditional-operation" (S3 queues the name for deletion; hours on AWS).
//! - **Late delivery** (`late_delivery_ms`). A bucket that a delivery channel
//!   (PutDeliveryChannel) or a trail (CreateTrail, UpdateTrail) was pointed at gets one more
//!   object after it is emptied: the first DeleteBucket within the window after a
//!   DeleteObjects finds that object (put into moto, so ListObjectVersions shows it) and
//!   answers 409 `BucketNotEmpty`. Config and CloudTrail deliver asynchronously (AWS Config
//!   Developer Guide, "Permissions for the Amazon S3 bucket"; CloudTrail User Guide, "Finding
//!   your CloudTrail log files": about every 5 minutes), so a delivery in flight when the
//!   channel or trail was deleted still lands. Once per pointing: emptying again and retrying
//!   succeeds, deterministically.
//!
//! - **Bucket policies with conditions.** moto applies a policy's Deny statements to object
//!   requests without reading their Condition, so the lab's TLS-only Deny
//!   (`aws:SecureTransport` false) would refuse every object write and delete, which on AWS
//!   (over TLS) it never does. moto is given the policy without its conditional Deny
//!   statements, and GetBucketPolicy answers the policy as it was put. Always on: it is moto
//!   being wrong the other way, not a behaviour of AWS.
//!
//! The state is the front's own: which region each bucket was created in, the held names with
//! their expiry, the buckets a delivery is due for. Requests only the front makes (the late
//! object) go to moto directly.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tracing::info;

use crate::behaviours::Behaviours;
use crate::http::{self, Forwarder, Request, Response};

/// The front's S3 state.
#[derive(Default)]
pub struct Buckets {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bucket → the region it was created in.
    regions: HashMap<String, String>,
    /// Deleted bucket names → until when CreateBucket of the name is refused.
    held: HashMap<String, Instant>,
    /// Buckets a delivery channel or trail was pointed at → the key its next delivery writes.
    deliverers: HashMap<String, String>,
    /// Buckets emptied while a delivery is due → until when a DeleteBucket finds it.
    due: HashMap<String, Instant>,
    /// Bucket policies as put, where moto was given them without their conditional Deny.
    policies: HashMap<String, Bytes>,
}

/// What a request is to this module.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    /// An S3 operation on a bucket; `location` is CreateBucket's region.
    Bucket {
        bucket: String,
        operation: String,
        location: String,
    },
    /// A delivery channel or trail pointed at `bucket`, delivering to `key`.
    Deliverer {
        bucket: String,
        key: String,
    },
    Other,
}

/// What the front does with a request before moto sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// The bucket is in this region.
    Redirect(String),
    /// CreateBucket of a held name.
    Held,
    /// DeleteBucket while a delivery is due: this key arrives first.
    LateDelivery(String),
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Call {
    fn of(service: &str, operation: &str, account: &str, region: &str, request: &Request) -> Call {
        if service == "s3" {
            let bucket = request.path().trim_start_matches('/').split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Call::Other;
            }
            let body = String::from_utf8_lossy(&request.body);
            let location = tag(&body, "LocationConstraint").filter(|l| !l.is_empty()).unwrap_or("us-east-1");
            return Call::Bucket {
                bucket: http::percent_decode(bucket),
                operation: operation.to_owned(),
                location: location.to_owned(),
            };
        }
        let target = request.header("x-amz-target").unwrap_or_default();
        let body = || serde_json::from_slice::<Value>(&request.body).unwrap_or_default();
        let prefixed = |prefix: Option<&str>, rest: String| match prefix.filter(|p| !p.is_empty()) {
            Some(prefix) => format!("{}/{rest}", prefix.trim_end_matches('/')),
            None => rest,
        };
        if target == "StarlingDoveService.PutDeliveryChannel" {
            let body = body();
            let channel = &body["DeliveryChannel"];
            if let Some(bucket) = channel["s3BucketName"].as_str() {
                // The object Config writes to check it may deliver, then with every delivery.
                let key = prefixed(
                    channel["s3KeyPrefix"].as_str(),
                    format!("AWSLogs/{account}/Config/ConfigWritabilityCheckFile"),
                );
                return Call::Deliverer { bucket: bucket.to_owned(), key };
            }
        }
        if target.ends_with(".CreateTrail") || target.ends_with(".UpdateTrail") {
            let body = body();
            if let Some(bucket) = body["S3BucketName"].as_str() {
                let key = prefixed(
                    body["S3KeyPrefix"].as_str(),
                    format!("AWSLogs/{account}/CloudTrail/{region}/late-delivery.json.gz"),
                );
                return Call::Deliverer { bucket: bucket.to_owned(), key };
            }
        }
        Call::Other
    }
}

/// The text of the first `<name>…</name>` of an XML body.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    xml.split(&format!("<{name}>")).nth(1).and_then(|s| s.split(&format!("</{name}>")).next())
}

impl Buckets {
    /// Whether this module has anything to do with the request: S3 calls, and the calls that
    /// point a delivery channel or trail at a bucket.
    pub fn concerns(service: &str, request: &Request) -> bool {
        let target = request.header("x-amz-target").unwrap_or_default();
        service == "s3"
            || target == "StarlingDoveService.PutDeliveryChannel"
            || target.ends_with(".CreateTrail")
            || target.ends_with(".UpdateTrail")
    }

    /// Carries out `request` the way AWS would: answers it here (redirect, held name, late
    /// delivery), or lets `inner` (the front's usual handling) carry it out and learns from its
    /// answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn around(
        &self,
        behaviours: &Behaviours,
        forwarder: &Forwarder,
        service: &str,
        operation: &str,
        account: &str,
        region: &str,
        request: &Request,
        inner: impl Future<Output = Response>,
    ) -> Response {
        let call = Call::of(service, operation, account, region, request);
        let bucket = match &call {
            Call::Bucket { bucket, .. } | Call::Deliverer { bucket, .. } => bucket.clone(),
            Call::Other => String::new(),
        };
        match self.check(behaviours, Instant::now(), &call, region) {
            Verdict::Pass => {}
            Verdict::Redirect(home) => {
                info!("S3: bucket {bucket} is in {home}, the request was signed for {region}: 301");
                return redirect(&bucket, &home, request.method == hyper::Method::HEAD);
            }
            Verdict::Held => {
                info!("S3: the name of bucket {bucket} is still held after its deletion: 409 OperationAborted");
                return error(
                    409,
                    "OperationAborted",
                    "A conflicting conditional operation is currently in progress against this resource. Try again.",
                    &bucket,
                );
            }
            Verdict::LateDelivery(key) => {
                if deliver(forwarder, account, request, &bucket, &key).await {
                    info!("S3: a late delivery wrote {key} to bucket {bucket}: DeleteBucket answers BucketNotEmpty");
                    return error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty", &bucket);
                }
            }
        }
        if let Call::Bucket { bucket, operation, .. } = &call {
            match operation.as_str() {
                "GetBucketPolicy" => {
                    if let Some(policy) = lock(&self.state).policies.get(bucket).cloned() {
                        return http::response(200, "application/json", policy);
                    }
                }
                "PutBucketPolicy" => return self.put_policy(forwarder, bucket, request, inner).await,
                _ => {}
            }
        }
        let answer = inner.await;
        self.record(behaviours, Instant::now(), &call, answer.status().as_u16());
        answer
    }

    /// PutBucketPolicy: moto gets the policy without the Deny statements it would apply
    /// unconditionally; the policy as put is kept for GetBucketPolicy.
    async fn put_policy(
        &self,
        forwarder: &Forwarder,
        bucket: &str,
        request: &Request,
        inner: impl Future<Output = Response>,
    ) -> Response {
        let Some(filtered) = without_conditional_denies(&request.body) else {
            let answer = inner.await;
            if answer.status().is_success() {
                lock(&self.state).policies.remove(bucket);
            }
            return answer;
        };
        let mut headers = hyper::HeaderMap::new();
        for (name, value) in &request.headers {
            let text = name.as_str();
            if text != "content-length" && text != "content-md5" && !text.starts_with("x-amz-checksum-") {
                headers.append(name.clone(), value.clone());
            }
        }
        let put = Request { method: request.method.clone(), uri: request.uri.clone(), headers, body: filtered };
        let answer = forwarder.forward(&put).await;
        if answer.status().is_success() {
            lock(&self.state).policies.insert(bucket.to_owned(), request.body.clone());
        }
        answer
    }

    /// Forgets everything (moto was reset).
    pub fn reset(&self) {
        *lock(&self.state) = State::default();
    }

    fn check(&self, behaviours: &Behaviours, now: Instant, call: &Call, region: &str) -> Verdict {
        let Call::Bucket { bucket, operation, .. } = call else { return Verdict::Pass };
        let mut state = lock(&self.state);
        if operation == "CreateBucket" {
            match state.held.get(bucket) {
                Some(until) if now < *until && behaviours.bucket_name_hold_ms > 0 => return Verdict::Held,
                Some(_) => {
                    state.held.remove(bucket);
                }
                None => {}
            }
            return Verdict::Pass;
        }
        if behaviours.regional_buckets {
            if let Some(home) = state.regions.get(bucket).filter(|home| *home != region) {
                return Verdict::Redirect(home.clone());
            }
        }
        if operation == "DeleteBucket" && behaviours.late_delivery_ms > 0 {
            if let Some(until) = state.due.remove(bucket) {
                if now < until {
                    if let Some(key) = state.deliverers.remove(bucket) {
                        return Verdict::LateDelivery(key);
                    }
                }
            }
        }
        Verdict::Pass
    }

    fn record(&self, behaviours: &Behaviours, now: Instant, call: &Call, status: u16) {
        if !(200..300).contains(&status) {
            return;
        }
        let mut state = lock(&self.state);
        match call {
            Call::Bucket { bucket, operation, location } => match operation.as_str() {
                "CreateBucket" => {
                    state.regions.insert(bucket.clone(), location.clone());
                    state.held.remove(bucket);
                }
                "DeleteBucketPolicy" => {
                    state.policies.remove(bucket);
                }
                "DeleteBucket" => {
                    state.regions.remove(bucket);
                    state.policies.remove(bucket);
                    state.due.remove(bucket);
                    state.deliverers.remove(bucket);
                    if let Some(window) = Behaviours::window(behaviours.bucket_name_hold_ms) {
                        state.held.insert(bucket.clone(), now + window);
                    }
                }
                "DeleteObjects" if state.deliverers.contains_key(bucket) => {
                    if let Some(window) = Behaviours::window(behaviours.late_delivery_ms) {
                        state.due.insert(bucket.clone(), now + window);
                    }
                }
                _ => {}
            },
            Call::Deliverer { bucket, key } => {
                state.deliverers.insert(bucket.clone(), key.clone());
            }
            Call::Other => {}
        }
    }
}

/// The policy without its Deny statements that carry a Condition, or `None` when it has none
/// (or is not JSON: moto answers that). Public for tests that run against moto without the
/// front and need the same correction.
pub fn without_conditional_denies(policy: &[u8]) -> Option<Bytes> {
    let mut policy: Value = serde_json::from_slice(policy).ok()?;
    let statements = policy["Statement"].as_array_mut()?;
    let before = statements.len();
    statements.retain(|s| !(s["Effect"] == "Deny" && s.get("Condition").is_some()));
    (statements.len() < before).then(|| Bytes::from(policy.to_string()))
}

/// S3's answer for a bucket of another region; HeadBucket's has no body.
fn redirect(bucket: &str, home: &str, head: bool) -> Response {
    let body = if head {
        String::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>{bucket}.s3.{home}.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket><RequestId>{}</RequestId></Error>",
            request_id()
        )
    };
    let mut answer = http::response(301, "application/xml", body);
    if let Ok(value) = hyper::header::HeaderValue::from_str(home) {
        answer.headers_mut().insert("x-amz-bucket-region", value);
    }
    answer
}

fn error(status: u16, code: &str, message: &str, bucket: &str) -> Response {
    http::response(
        status,
        "application/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><BucketName>{bucket}</BucketName><RequestId>{}</RequestId></Error>",
            request_id()
        ),
    )
}

fn request_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format!("{:016X}", nanos.as_nanos() as u64)
}

/// Writes the late object into moto, in the account of `request`.
async fn deliver(forwarder: &Forwarder, account: &str, request: &Request, bucket: &str, key: &str) -> bool {
    let mut headers = hyper::HeaderMap::new();
    if let Some(auth) = request.headers.get(hyper::header::AUTHORIZATION) {
        headers.insert(hyper::header::AUTHORIZATION, auth.clone());
    }
    if let Ok(value) = hyper::header::HeaderValue::from_str(account) {
        headers.insert(crate::accounts::ACCOUNT_HEADER, value);
    }
    let Ok(uri) = format!("/{bucket}/{key}").parse::<hyper::Uri>() else { return false };
    let put = Request { method: hyper::Method::PUT, uri, headers, body: Bytes::from_static(b"{\"late\":true}") };
    forwarder.forward(&put).await.status().is_success()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_call(bucket: &str, operation: &str, location: &str) -> Call {
        Call::Bucket { bucket: bucket.into(), operation: operation.into(), location: location.into() }
    }

    fn created(buckets: &Buckets, b: &Behaviours, now: Instant, bucket: &str, region: &str) {
        buckets.record(b, now, &bucket_call(bucket, "CreateBucket", region), 200);
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut map = hyper::HeaderMap::new();
        for (k, v) in headers {
            map.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        Request {
            method: method.parse().unwrap(),
            uri: path.parse().unwrap(),
            headers: map,
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn a_bucket_answers_only_in_its_region() {
        let (b, buckets, now) = (Behaviours::aws_like(), Buckets::default(), Instant::now());
        created(&buckets, &b, now, "lab", "eu-west-1");
        let head = bucket_call("lab", "HeadBucket", "us-east-1");
        assert_eq!(buckets.check(&b, now, &head, "us-west-2"), Verdict::Redirect("eu-west-1".into()));
        assert_eq!(buckets.check(&b, now, &head, "eu-west-1"), Verdict::Pass);
        // Unknown buckets, and the behaviour off: moto as is.
        assert_eq!(buckets.check(&b, now, &bucket_call("other", "HeadBucket", ""), "us-west-2"), Verdict::Pass);
        assert_eq!(buckets.check(&Behaviours::off(), now, &head, "us-west-2"), Verdict::Pass);
        // Gone with its deletion.
        buckets.record(&b, now, &bucket_call("lab", "DeleteBucket", ""), 204);
        assert_eq!(buckets.check(&b, now, &head, "us-west-2"), Verdict::Pass);
    }

    #[test]
    fn the_redirect_names_the_region_and_head_has_no_body() {
        let answer = redirect("lab", "eu-west-1", false);
        assert_eq!(answer.status(), 301);
        assert_eq!(answer.headers()["x-amz-bucket-region"], "eu-west-1");
        let head = redirect("lab", "eu-west-1", true);
        assert_eq!(head.headers()["x-amz-bucket-region"], "eu-west-1");
        let body = futures_body(head);
        assert!(body.is_empty(), "{body}");
        let body = futures_body(answer);
        assert!(body.contains("<Code>PermanentRedirect</Code>") && body.contains("lab.s3.eu-west-1"), "{body}");
    }

    fn futures_body(answer: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt.block_on(http_body_util::BodyExt::collect(answer.into_body())).unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_deleted_name_is_held_for_the_window_then_free() {
        let (b, buckets, now) = (Behaviours::aws_like(), Buckets::default(), Instant::now());
        created(&buckets, &b, now, "lab", "us-west-2");
        buckets.record(&b, now, &bucket_call("lab", "DeleteBucket", ""), 204);
        let create = bucket_call("lab", "CreateBucket", "us-west-2");
        assert_eq!(buckets.check(&b, now, &create, "us-west-2"), Verdict::Held);
        assert_eq!(buckets.check(&b, now + Duration::from_millis(1_499), &create, "us-west-2"), Verdict::Held);
        assert_eq!(buckets.check(&b, now + Duration::from_millis(1_500), &create, "us-west-2"), Verdict::Pass);
        // A failed deletion holds nothing; without the behaviour nothing is held.
        let other = Buckets::default();
        other.record(&b, now, &bucket_call("lab", "DeleteBucket", ""), 409);
        assert_eq!(other.check(&b, now, &create, "us-west-2"), Verdict::Pass);
        other.record(&Behaviours::off(), now, &bucket_call("lab", "DeleteBucket", ""), 204);
        assert_eq!(other.check(&b, now, &create, "us-west-2"), Verdict::Pass);
    }

    #[test]
    fn one_late_delivery_per_channel_after_emptying_within_the_window() {
        let (b, buckets, now) = (Behaviours::aws_like(), Buckets::default(), Instant::now());
        let delete_bucket = bucket_call("lab", "DeleteBucket", "");
        let emptied = bucket_call("lab", "DeleteObjects", "");
        // Emptied, but no channel or trail ever pointed at it: nothing arrives.
        buckets.record(&b, now, &emptied, 200);
        assert_eq!(buckets.check(&b, now, &delete_bucket, "us-west-2"), Verdict::Pass);

        let key = "AWSLogs/1/Config/ConfigWritabilityCheckFile".to_owned();
        buckets.record(&b, now, &Call::Deliverer { bucket: "lab".into(), key: key.clone() }, 200);
        // Not emptied yet: nothing due.
        assert_eq!(buckets.check(&b, now, &delete_bucket, "us-west-2"), Verdict::Pass);
        buckets.record(&b, now, &emptied, 200);
        assert_eq!(buckets.check(&b, now, &delete_bucket, "us-west-2"), Verdict::LateDelivery(key.clone()));
        // Emptied again: the retry succeeds.
        buckets.record(&b, now, &emptied, 200);
        assert_eq!(buckets.check(&b, now, &delete_bucket, "us-west-2"), Verdict::Pass);

        // After the window the delivery is not due any more.
        buckets.record(&b, now, &Call::Deliverer { bucket: "lab".into(), key }, 200);
        buckets.record(&b, now, &emptied, 200);
        assert_eq!(buckets.check(&b, now + Duration::from_millis(300), &delete_bucket, "us-west-2"), Verdict::Pass);
    }

    #[test]
    fn moto_gets_policies_without_the_denies_it_cannot_condition() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Write","Effect":"Allow","Principal":{"Service":"config.amazonaws.com"},"Action":"s3:PutObject","Resource":"*","Condition":{"StringEquals":{"AWS:SourceAccount":"1"}}},
            {"Sid":"Tls","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},
            {"Sid":"Never","Effect":"Deny","Principal":"*","Action":"s3:DeleteBucket","Resource":"*"}]}"#;
        let filtered: Value = serde_json::from_slice(&without_conditional_denies(policy.as_bytes()).unwrap()).unwrap();
        let sids: Vec<&str> =
            filtered["Statement"].as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap()).collect();
        assert_eq!(sids, ["Write", "Never"]);
        assert!(without_conditional_denies(br#"{"Statement":[{"Effect":"Allow"}]}"#).is_none());
        assert!(without_conditional_denies(b"not json").is_none());
    }

    #[test]
    fn calls_are_read_from_s3_paths_and_from_channels_and_trails() {
        let create = request(
            "PUT",
            "/lab",
            &[],
            "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
        );
        assert_eq!(
            Call::of("s3", "CreateBucket", "1", "eu-west-1", &create),
            bucket_call("lab", "CreateBucket", "eu-west-1")
        );
        let plain = request("PUT", "/lab", &[], "");
        assert_eq!(
            Call::of("s3", "CreateBucket", "1", "us-east-1", &plain),
            bucket_call("lab", "CreateBucket", "us-east-1")
        );
        assert_eq!(Call::of("s3", "ListBuckets", "1", "us-east-1", &request("GET", "/", &[], "")), Call::Other);

        let channel = request(
            "POST",
            "/",
            &[("x-amz-target", "StarlingDoveService.PutDeliveryChannel")],
            r#"{"DeliveryChannel":{"name":"default","s3BucketName":"lab"}}"#,
        );
        assert!(Buckets::concerns("config", &channel));
        assert_eq!(
            Call::of("config", "PutDeliveryChannel", "123", "us-west-2", &channel),
            Call::Deliverer { bucket: "lab".into(), key: "AWSLogs/123/Config/ConfigWritabilityCheckFile".into() }
        );
        let trail = request(
            "POST",
            "/",
            &[("x-amz-target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail")],
            r#"{"Name":"t","S3BucketName":"lab","S3KeyPrefix":"cloudtrail"}"#,
        );
        assert!(Buckets::concerns("cloudtrail", &trail));
        assert_eq!(
            Call::of("cloudtrail", "", "123", "us-west-2", &trail),
            Call::Deliverer {
                bucket: "lab".into(),
                key: "cloudtrail/AWSLogs/123/CloudTrail/us-west-2/late-delivery.json.gz".into()
            }
        );
        let other = request("POST", "/", &[("x-amz-target", "StarlingDoveService.DescribeConfigRules")], "{}");
        assert!(!Buckets::concerns("config", &other));
    }
}
