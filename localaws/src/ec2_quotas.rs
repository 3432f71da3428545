//! EC2's request-rate limits (behaviour `ec2Quotas`), which moto does not have.
//!
//! EC2 API reference, "Request throttling for the Amazon EC2 API": EC2 throttles each account
//! per region with a token bucket per API action. A request takes one token from its action's
//! bucket; a bucket refills at a fixed rate up to its maximum capacity; a request that finds the
//! bucket empty fails with `RequestLimitExceeded` (HTTP 503) and takes no token. The bucket's
//! size depends on the action's category (request token bucket sizes and refill rates):
//!
//! | category | capacity | refill / s |
//! | --- | --- | --- |
//! | non-mutating (`Describe*`, `List*`, `Search*`, `Get*`) | 100 | 20 |
//! | unfiltered and unpaginated non-mutating (`DescribeSecurityGroups`, `DescribeInstances`, … without a filter or pagination: a smaller bucket of its own) | 50 | 10 |
//! | mutating (every other action) | 50 | 5 |
//! | resource-intensive (`AuthorizeSecurityGroupIngress`, `RevokeSecurityGroupIngress`, …) | 50 | 5 |
//! | uncategorized (own sizes, e.g. `CreateTags` 100 / 10, `DescribeSecurityGroupReferences` 20 / 5) | | |
//!
//! `ec2QuotaPercent` scales every bucket (capacity and refill rate, at least one token) so that
//! tests reach the limit with a few dozen calls instead of hundreds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::http::{self, Response};

/// The actions EC2 throttles with their own bucket sizes ("Uncategorized actions"), those near
/// this lab's calls: (action, capacity, refill per second).
const UNCATEGORIZED: &[(&str, f64, f64)] = &[
    ("CreateTags", 100.0, 10.0),
    ("DeleteTags", 100.0, 10.0),
    ("DescribeSecurityGroupReferences", 20.0, 5.0),
    ("DescribeStaleSecurityGroups", 20.0, 5.0),
    ("CreateNetworkInterface", 100.0, 5.0),
    ("DeleteNetworkInterface", 100.0, 5.0),
    ("ModifyNetworkInterfaceAttribute", 100.0, 5.0),
    ("RunInstances", 5.0, 2.0),
    ("StartInstances", 5.0, 2.0),
    ("TerminateInstances", 100.0, 5.0),
    ("CreateDefaultVpc", 1.0, 1.0),
    ("CreateDefaultSubnet", 1.0, 1.0),
];

/// "Resource-intensive actions": mutating, 50 tokens, 5 a second.
const RESOURCE_INTENSIVE: &[&str] = &[
    "AcceptVpcPeeringConnection",
    "AuthorizeSecurityGroupIngress",
    "CancelSpotInstanceRequests",
    "CreateKeyPair",
    "CreateVpcPeeringConnection",
    "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection",
    "RevokeSecurityGroupIngress",
    "RequestSpotInstances",
];

/// "Unfiltered and unpaginated non-mutating actions": without a filter or pagination they take
/// from a smaller bucket (50, 10 a second).
const UNFILTERED_SMALLER: &[&str] = &[
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
];

/// The bucket a request takes its token from: its name and AWS's (capacity, refill per second).
pub fn bucket_of(action: &str, form: &[(String, String)]) -> (String, f64, f64) {
    if let Some((_, capacity, refill)) = UNCATEGORIZED.iter().find(|(a, _, _)| *a == action) {
        return (action.to_owned(), *capacity, *refill);
    }
    if RESOURCE_INTENSIVE.contains(&action) {
        return (action.to_owned(), 50.0, 5.0);
    }
    let reads = ["Describe", "List", "Search", "Get"].iter().any(|verb| action.starts_with(verb));
    if !reads {
        return (action.to_owned(), 50.0, 5.0);
    }
    let filtered_or_paged = form.iter().any(|(k, _)| k.starts_with("Filter.") || k == "MaxResults" || k == "NextToken");
    if UNFILTERED_SMALLER.contains(&action) && !filtered_or_paged {
        return (format!("{action} (unfiltered, unpaginated)"), 50.0, 10.0);
    }
    (action.to_owned(), 100.0, 20.0)
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets per account, region and bucket name. They start full, as an account that made no
/// call for a while has them.
#[derive(Default)]
pub struct Ec2Quotas {
    buckets: Mutex<HashMap<(String, String, String), Bucket>>,
    /// Requests answered `RequestLimitExceeded` since the local AWS started, per bucket name.
    throttled_by_bucket: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Ec2Quotas {
    /// Takes a token for this request, or answers `RequestLimitExceeded` as EC2 does when its
    /// bucket is empty. `percent` scales AWS's bucket sizes and refill rates (100: AWS's).
    pub fn admit(
        &self,
        percent: u64,
        account: &str,
        region: &str,
        action: &str,
        form: &[(String, String)],
    ) -> Option<Response> {
        let (name, capacity, refill) = bucket_of(action, form);
        let scale = if percent == 0 { 1.0 } else { percent as f64 / 100.0 };
        let (capacity, refill) = ((capacity * scale).max(1.0), refill * scale);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry((account.to_owned(), region.to_owned(), name.clone()))
            .or_insert(Bucket { tokens: capacity, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        drop(buckets);
        *self.throttled_by_bucket.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += 1;
        Some(request_limit_exceeded())
    }

    /// Requests answered `RequestLimitExceeded` so far, per bucket (`GET /_sg-lab/ec2-quotas`).
    pub fn throttled_by_bucket(&self) -> std::collections::BTreeMap<String, u64> {
        self.throttled_by_bucket.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests answered `RequestLimitExceeded` so far.
    pub fn throttled(&self) -> u64 {
        self.throttled_by_bucket().values().sum()
    }

    /// Full buckets again (moto was reset, or the quotas were switched).
    pub fn reset(&self) {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// EC2's error document for a throttled request: HTTP 503, code `RequestLimitExceeded`.
pub fn request_limit_exceeded() -> Response {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{:08x}-0000-4000-8000-{n:012x}", (crate::config::now() * 1000.0) as u64 as u32);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
    );
    http::response(503, "text/xml;charset=UTF-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn actions_take_from_the_buckets_of_their_category() {
        assert_eq!(bucket_of("RevokeSecurityGroupIngress", &[]), ("RevokeSecurityGroupIngress".into(), 50.0, 5.0));
        assert_eq!(bucket_of("CreateSecurityGroup", &[]).1, 50.0);
        assert_eq!(bucket_of("CreateTags", &[]), ("CreateTags".into(), 100.0, 10.0));
        assert_eq!(bucket_of("DescribeSecurityGroupRules", &[]).2, 20.0);
        let unfiltered = bucket_of("DescribeSecurityGroups", &[]);
        assert_eq!((unfiltered.1, unfiltered.2), (50.0, 10.0));
        let paged = bucket_of("DescribeSecurityGroups", &form(&[("MaxResults", "1000")]));
        assert_eq!(paged, ("DescribeSecurityGroups".into(), 100.0, 20.0));
        assert_ne!(unfiltered.0, paged.0, "the smaller bucket is a bucket of its own");
    }

    #[test]
    fn an_empty_bucket_answers_request_limit_exceeded_per_account_and_region_and_refills() {
        let quotas = Ec2Quotas::default();
        let revoke = "RevokeSecurityGroupIngress";
        // 10 %: 5 tokens, half a token a second.
        for _ in 0..5 {
            assert!(quotas.admit(10, "a", "us-west-2", revoke, &[]).is_none());
        }
        let answer = quotas.admit(10, "a", "us-west-2", revoke, &[]).expect("throttled");
        assert_eq!(answer.status(), 503);
        assert!(quotas.admit(10, "a", "us-west-2", "AuthorizeSecurityGroupIngress", &[]).is_none());
        assert!(quotas.admit(10, "b", "us-west-2", revoke, &[]).is_none());
        assert!(quotas.admit(10, "a", "eu-west-1", revoke, &[]).is_none());
        assert_eq!(quotas.throttled(), 1);
        assert_eq!(quotas.throttled_by_bucket().get(revoke), Some(&1), "{:?}", quotas.throttled_by_bucket());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(quotas.admit(10, "a", "us-west-2", revoke, &[]).is_none(), "refilled one token in 2 s");
        assert!(quotas.admit(10, "a", "us-west-2", revoke, &[]).is_some());
    }
}
