//! The Lambda entry point: builds the SDK clients from the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) and hands every Config event to the handler.

// The handler's future nests the sweep's batched reads and changes inside the runtime's service:
// deeper than the default limit when the release build computes its layout.
#![recursion_limit = "256"]

use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use sg_function::pace::Rate;
use sg_function::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // EC2's request quota: the function's own token bucket per API (EC2_REQUEST_RATE,
    // CAPACITY/PER_SECOND, EC2's 50/5 by default), or `adaptive`: the SDK's adaptive retry mode
    // instead (kept to compare them; `sg_function::pace` says why the bucket is the default).
    let pacing = match std::env::var("EC2_REQUEST_RATE").ok().filter(|v| !v.trim().is_empty()) {
        None => Some(Rate::EC2_DEFAULT),
        Some(v) if v.trim().eq_ignore_ascii_case("adaptive") => None,
        Some(v) => Some(Rate::parse(&v)?),
    };
    // Retries chosen to fit the function's 60 s (why in `aws::retry_config`).
    let retry = match pacing {
        Some(_) => sg_function::aws::retry_config(),
        None => sg_function::aws::adaptive_retry_config(),
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retry).load().await;
    // API-call events (the fast path) carry no rule parameters: the function's own setting.
    let parameters = std::env::var("RULE_PARAMETERS").ok();
    let handler = Handler::new(aws_sdk_ec2::Client::new(&config), aws_sdk_config::Client::new(&config))?
        .with_api_call_parameters(parameters)
        .with_pacing(pacing);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // The invocation's deadline (Lambda-Runtime-Deadline-Ms) as an instant of this clock.
        let left = event.context.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        handler.handle_until(event.payload, Some(Instant::now() + left)).await
    }))
    .await
}

/// Lambda's log settings (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT`), without terminal
/// colours: CloudWatch Logs shows escape codes verbatim.
fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    // An empty level would parse as ERROR.
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|l| !l.trim().is_empty())
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    let logs = tracing_subscriber::fmt().with_target(false).without_time().with_ansi(false).with_env_filter(filter);
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().init();
    } else {
        logs.init();
    }
}
