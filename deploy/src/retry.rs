//! Bounded retries: the SDK's own, for throttling and server errors on every call
//! ([`sdk_retry_config`], [`sdk_timeout_config`]), and the waits AWS imposes on top — IAM
//! propagation after a role is created, Config not yet allowed to invoke a function it was just
//! granted. Every wait says what it awaits and gives up after a bound; no fixed sleeps.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use tracing::info;

use crate::progress::Wait;

/// Attempts per AWS call (the first and up to seven retries).
pub const SDK_MAX_ATTEMPTS: u32 = 8;
/// The first retry waits up to this long (full jitter: a random fraction of it).
pub const SDK_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// No retry waits longer than this.
pub const SDK_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// One attempt may take this long (a 4 MB function zip over a slow uplink included).
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// One call, with all its attempts and waits, may take this long.
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(180);

/// The SDK's retries for every call `deploy` makes.
///
/// Standard mode (exponential backoff with full jitter, a retry quota per service), chosen over
/// adaptive: adaptive adds a client-side rate limiter that slows every later call after a
/// throttle, which helps a client making thousands of calls, not one making about fifty; and
/// its limiter is process-wide state. Eight attempts make a call that fails independently one
/// time in five (the fault tests' rate) give up once in 390,000 calls (0.2⁸), where the SDK's
/// default three give up once in 125: `up`, `lab run` and `down` make about 200 calls together,
/// so four runs in five would fail, against one in 2,000 now. Waits start at 200 ms and double
/// up to 2 s: a throttled burst clears, and a call that keeps failing — an endpoint answering
/// HTTP 500 for an operation it does not implement, a region in trouble — surfaces after at
/// most 0.2+0.4+0.8+1.6+2+2+2 = 9 s of waiting (4.5 s on average), not after the SDK
/// default's 20 s ceiling.
pub fn sdk_retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(SDK_INITIAL_BACKOFF)
        .with_max_backoff(SDK_MAX_BACKOFF)
}

/// Bounds on one call: an endpoint that accepts the connection and never answers fails the
/// attempt after [`SDK_ATTEMPT_TIMEOUT`] (retried like any transient error) and the call after
/// [`SDK_OPERATION_TIMEOUT`]; without them it would hang `deploy` forever. The connect timeout
/// stays the SDK's (3.1 s).
pub fn sdk_timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
}

/// The longest a call that keeps failing waits between its attempts.
pub fn sdk_backoff_bound() -> Duration {
    (0..SDK_MAX_ATTEMPTS - 1).map(|n| SDK_INITIAL_BACKOFF.saturating_mul(1 << n).min(SDK_MAX_BACKOFF)).sum()
}

/// How long to keep trying.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// IAM propagation: usually seconds, documented as up to a minute or so.
    pub const IAM: Backoff = Backoff { attempts: 12, first: Duration::from_millis(500), max: Duration::from_secs(8) };

    /// A Config rule `DELETING` after DeleteConfigRule (AWS Config API reference,
    /// DeleteConfigRule: the state lasts "until the deletion is complete", no bound given).
    /// Seconds usually; the rule's evaluation results go with it, so a rule with many takes
    /// longer. Five minutes, as the Terraform AWS provider waits for a deleted rule; polled every
    /// 15 s at most.
    pub const RULE_DELETING: Backoff =
        Backoff { attempts: 24, first: Duration::from_secs(1), max: Duration::from_secs(15) };

    /// StartConfigRulesEvaluation answers LimitExceededException while an evaluation of the rule
    /// is in progress or when called again within about a minute (AWS Config API reference,
    /// LimitExceededException); a new rule is evaluated at once, so `evaluate` right after `up`
    /// meets it too. About two minutes: the minute, plus an evaluation of the lab's groups
    /// still running at its end.
    pub const EVALUATION_LIMIT: Backoff =
        Backoff { attempts: 11, first: Duration::from_secs(2), max: Duration::from_secs(15) };

    /// The longest total wait of this policy.
    pub fn bound(&self) -> Duration {
        (0..self.attempts.saturating_sub(1)).map(|n| self.delay(n)).sum()
    }

    fn delay(&self, attempt: u32) -> Duration {
        self.first.saturating_mul(2u32.saturating_pow(attempt)).min(self.max)
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` rejects, or the attempts run
/// out (then the last error is returned).
pub async fn retry<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    // On a terminal a spinner shows the wait, from the first retry to the end; else a line a try.
    let mut wait: Option<Wait> = None;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if retryable(&err) && attempt + 1 < backoff.attempts => {
                let delay = backoff.delay(attempt);
                attempt += 1;
                let wait = wait.get_or_insert_with(|| Wait::start(what));
                if wait.spinning() {
                    wait.detail(&format!("attempt {attempt}/{}", backoff.attempts));
                } else {
                    info!("waiting for {what} (attempt {attempt}/{}, next in {delay:?})", backoff.attempts);
                }
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const FAST: Backoff = Backoff { attempts: 4, first: Duration::from_millis(1), max: Duration::from_millis(2) };

    #[tokio::test]
    async fn retries_until_success() {
        let calls = Cell::new(0);
        let result: Result<u32, &str> = retry(
            "a role",
            FAST,
            |_| true,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err("not yet")
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn gives_up_after_the_bound_with_the_last_error() {
        let calls = Cell::new(0);
        let result: Result<(), String> = retry(
            "a role",
            FAST,
            |_| true,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(format!("attempt {n}")) }
            },
        )
        .await;
        assert_eq!(result, Err("attempt 4".to_owned()));
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = retry(
            "a role",
            FAST,
            |e| *e == "propagating",
            || {
                calls.set(calls.get() + 1);
                async { Err("denied") }
            },
        )
        .await;
        assert_eq!((result, calls.get()), (Err("denied"), 1));
    }

    #[test]
    fn a_call_that_keeps_failing_surfaces_within_seconds() {
        assert_eq!(sdk_backoff_bound(), Duration::from_secs(9));
        let config = sdk_retry_config();
        assert_eq!(config.max_attempts(), SDK_MAX_ATTEMPTS);
        assert_eq!(config.mode(), aws_config::retry::RetryMode::Standard);
        // One in five calls failing, independently: a call gives up less than once in 100,000.
        assert!(0.2_f64.powi(SDK_MAX_ATTEMPTS as i32) < 1e-5);
        let timeouts = sdk_timeout_config();
        assert_eq!(timeouts.operation_attempt_timeout(), Some(SDK_ATTEMPT_TIMEOUT));
        assert_eq!(timeouts.operation_timeout(), Some(SDK_OPERATION_TIMEOUT));
    }

    #[test]
    fn the_config_waits_are_bounded() {
        let deleting = Backoff::RULE_DELETING.bound();
        assert!(deleting >= Duration::from_secs(240) && deleting <= Duration::from_secs(330), "{deleting:?}");
        let evaluation = Backoff::EVALUATION_LIMIT.bound();
        assert!(evaluation >= Duration::from_secs(100) && evaluation <= Duration::from_secs(140), "{evaluation:?}");
    }

    #[test]
    fn the_iam_wait_is_bounded() {
        let bound = Backoff::IAM.bound();
        assert!(bound > Duration::from_secs(30) && bound < Duration::from_secs(90), "{bound:?}");
    }
}
