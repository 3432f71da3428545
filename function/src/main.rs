//! The Lambda entry point: builds the SDK clients from the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) and hands every Config event to the handler.

// The handler's future nests the sweep's batched reads and changes inside the runtime's service:
// deeper than the default limit when the release build computes its layout.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use sg_function::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logging();
    // Retries chosen to fit the function's 60 s (why in `aws::retry_config`).
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(sg_function::aws::retry_config())
        .load()
        .await;
    // API-call events (the fast path) carry no rule parameters: the function's own setting.
    let parameters = std::env::var("RULE_PARAMETERS").ok();
    let handler = Handler::new(aws_sdk_ec2::Client::new(&config), aws_sdk_config::Client::new(&config))?
        .with_api_call_parameters(parameters);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handler.handle(event.payload).await
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
