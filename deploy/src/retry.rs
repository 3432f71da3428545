//! Bounded retries for the waits AWS imposes: IAM propagation after a role is created, Config
//! not yet allowed to invoke a function it was just granted. Every wait says what it awaits and
//! gives up after a bound; no fixed sleeps.

use std::future::Future;
use std::time::Duration;

use tracing::info;

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
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if retryable(&err) && attempt + 1 < backoff.attempts => {
                let delay = backoff.delay(attempt);
                attempt += 1;
                info!("waiting for {what} (attempt {attempt}/{}, next in {delay:?})", backoff.attempts);
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
    fn the_iam_wait_is_bounded() {
        let bound = Backoff::IAM.bound();
        assert!(bound > Duration::from_secs(30) && bound < Duration::from_secs(90), "{bound:?}");
    }
}
