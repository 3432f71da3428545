//! The front's own API under `/_sg-lab/`: health, the call counts, the faults, the AWS
//! behaviours, the evaluation history and shutdown; and what moto's reset also resets here.

use serde_json::json;
use tracing::info;

use crate::behaviours::Behaviours;
use crate::faults::FaultSpec;
use crate::http::{self, Request, Response};
use crate::{lock, Front, MOTO_VERSION};

impl Front {
    /// After moto's reset: forget the evaluations, the functions' code and processes, and which
    /// default groups were given their self-referencing rule.
    pub(crate) async fn reset(&self) {
        self.evaluations.clear();
        lock(&self.fixed_regions).clear();
        self.buckets.reset();
        self.entry_counts.clear();
        self.function_states.clear();
        self.ec2_answers.reset();
        self.ec2_quotas.reset();
        self.executor.reset().await;
        info!("reset: moto's state and the front's");
    }

    pub(crate) async fn admin(&self, path: &str, request: &Request) -> Response {
        match (request.method.as_str(), path) {
            ("GET", "health") => {
                http::json(200, &json!({"status": "ok", "backend": self.backend, "motoVersion": MOTO_VERSION}))
            }
            ("GET", "calls") => http::json(200, &json!(lock(&self.calls).clone())),
            ("DELETE", "calls") => {
                lock(&self.calls).clear();
                http::json(200, &json!({}))
            }
            ("GET", "faults") => http::json(200, &lock(&self.faults).report()),
            ("POST", "faults") => match FaultSpec::parse(&String::from_utf8_lossy(&request.body)) {
                Ok(spec) => {
                    info!("faults: {}", serde_json::to_string(&spec).unwrap_or_default());
                    let mut faults = lock(&self.faults);
                    faults.set(Some(spec));
                    http::json(200, &faults.report())
                }
                Err(message) => http::json(400, &json!({"error": message})),
            },
            ("DELETE", "faults") => {
                let mut faults = lock(&self.faults);
                let report = faults.report();
                faults.set(None);
                http::json(200, &report)
            }
            ("GET", "behaviours") => http::json(200, &json!(self.behaviours())),
            ("GET", "ec2-quotas") => http::json(
                200,
                &json!({"throttled": self.ec2_quotas.throttled(), "byBucket": self.ec2_quotas.throttled_by_bucket()}),
            ),
            ("POST", "behaviours") => match Behaviours::parse(&String::from_utf8_lossy(&request.body)) {
                Ok(behaviours) => {
                    info!("AWS behaviours: {}", behaviours.describe().join("; "));
                    *lock(&self.behaviours) = behaviours.clone();
                    http::json(200, &json!(behaviours))
                }
                Err(message) => http::json(400, &json!({"error": message})),
            },
            ("GET", "evaluations") => http::json(200, &json!(self.evaluations.history())),
            ("POST", "shutdown") => {
                self.shutdown.notify_waiters();
                http::json(200, &json!({"status": "stopping"}))
            }
            _ => http::response(
                404,
                "text/plain",
                "unknown admin path: health, calls, faults, behaviours, evaluations, shutdown",
            ),
        }
    }
}
