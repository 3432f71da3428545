//! Client-side pacing of the change calls: a token bucket per EC2 API, shared by the changes in
//! flight, sized like EC2's own (EC2 API reference, "Request throttling for the Amazon EC2
//! API": AuthorizeSecurityGroupIngress and RevokeSecurityGroupIngress are "resource-intensive"
//! actions, each with a bucket of its own per account and region, 50 tokens refilled at 5 a
//! second).
//!
//! Why a bucket of its own rather than the SDK's adaptive retry mode (measured on the local AWS
//! with its quotas on, see `function/tests/scale.rs` and the report of issue 14): adaptive mode
//! learns the rate only from throttled answers — every run starts unlimited, spends its first
//! burst of calls on `RequestLimitExceeded` and the SDK's retry quota on them — and it keeps
//! one rate for the whole EC2 client, so a throttled revoke slows the describes and the
//! authorizes too. EC2 documents its buckets per API; pacing to them costs waiting, never a
//! failed call, and tells in advance whether a change still fits before the deadline, which
//! adaptive mode cannot (its wait happens inside the SDK). The SDK's standard retries stay as
//! the safety net for the account's other clients drawing on the same buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One bucket's size: a burst of `capacity` calls, then `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub capacity: f64,
    pub per_second: f64,
}

impl Rate {
    /// EC2's default for AuthorizeSecurityGroupIngress and RevokeSecurityGroupIngress.
    pub const EC2_DEFAULT: Rate = Rate { capacity: 50.0, per_second: 5.0 };

    /// `CAPACITY/PER_SECOND`, e.g. `50/5` (the function's `EC2_REQUEST_RATE`: set it to the
    /// account's quota when Service Quotas raised it).
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "EC2_REQUEST_RATE `{text}` is not a rate: write CAPACITY/PER_SECOND (EC2's default is 50/5), or `adaptive` for the SDK's adaptive retry mode"
            )
        };
        let (capacity, per_second) = text.trim().split_once('/').ok_or_else(bad)?;
        let capacity: f64 = capacity.trim().parse().map_err(|_| bad())?;
        let per_second: f64 = per_second.trim().parse().map_err(|_| bad())?;
        if !(capacity >= 1.0 && per_second > 0.0 && capacity.is_finite() && per_second.is_finite()) {
            return Err(bad());
        }
        Ok(Rate { capacity, per_second })
    }
}

struct Bucket {
    /// Tokens left; below zero when calls are booked ahead of the refill.
    tokens: f64,
    at: Instant,
}

/// The buckets of one process (a warm Lambda execution environment keeps them between
/// invocations, so a sweep right after another starts from what the last one left).
pub struct Pacer {
    rate: Rate,
    buckets: Mutex<HashMap<&'static str, Bucket>>,
}

impl Pacer {
    pub fn new(rate: Rate) -> Self {
        Pacer { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Books one call of each of `apis`: how long to wait before making them, or `None` (nothing
    /// booked) when the last token comes after `until`.
    pub fn book(&self, apis: &[&'static str], now: Instant, until: Option<Instant>) -> Option<Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Rate { capacity, per_second } = self.rate;
        let mut wait = Duration::ZERO;
        for api in apis {
            let bucket = buckets.entry(api).or_insert(Bucket { tokens: capacity, at: now });
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                wait = wait.max(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second));
            }
        }
        if until.is_some_and(|until| now + wait > until) {
            return None;
        }
        for api in apis {
            if let Some(bucket) = buckets.get_mut(api) {
                bucket.tokens -= 1.0;
            }
        }
        Some(wait)
    }

    /// EC2 answered `RequestLimitExceeded` after the SDK's retries: its bucket is empty,
    /// whatever this one counted (another client of the account draws on it too).
    pub fn drained(&self, api: &'static str, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(api).or_insert(Bucket { tokens: 0.0, at: now });
        bucket.tokens = bucket.tokens.min(0.0);
        bucket.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate_and_nothing_booked_past_the_limit() {
        let pacer = Pacer::new(Rate { capacity: 2.0, per_second: 4.0 });
        let t = Instant::now();
        let revoke = "RevokeSecurityGroupIngress";
        assert_eq!(pacer.book(&[revoke], t, None), Some(Duration::ZERO));
        assert_eq!(pacer.book(&[revoke], t, None), Some(Duration::ZERO));
        assert_eq!(pacer.book(&[revoke], t, None), Some(Duration::from_millis(250)));
        assert_eq!(pacer.book(&[revoke], t, None), Some(Duration::from_millis(500)));
        // The next token comes at 750 ms: not before 600 ms, and nothing is booked.
        assert_eq!(pacer.book(&[revoke], t, Some(t + Duration::from_millis(600))), None);
        assert_eq!(pacer.book(&[revoke], t, None), Some(Duration::from_millis(750)));
        // Another API has a bucket of its own; both at once wait for the later.
        let authorize = "AuthorizeSecurityGroupIngress";
        assert_eq!(pacer.book(&[authorize], t, None), Some(Duration::ZERO));
        assert_eq!(pacer.book(&[revoke, authorize], t, None), Some(Duration::from_millis(1000)));
        pacer.drained(authorize, t + Duration::from_secs(10));
        assert_eq!(pacer.book(&[authorize], t + Duration::from_secs(10), None), Some(Duration::from_millis(250)));
    }

    #[test]
    fn rates_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(Rate::parse("50/5"), Ok(Rate::EC2_DEFAULT));
        assert_eq!(Rate::parse(" 10 / 0.5 "), Ok(Rate { capacity: 10.0, per_second: 0.5 }));
        for bad in ["50", "0/5", "5/0", "a/b", "5/-1"] {
            let err = Rate::parse(bad).unwrap_err();
            assert!(err.contains("CAPACITY/PER_SECOND") && err.contains(bad), "{err}");
        }
    }
}
