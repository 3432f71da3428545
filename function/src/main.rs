//! The Lambda entry point: builds the SDK clients from the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) and hands every Config event to the handler.

// The handler's future nests the sweep's batched reads and changes inside the runtime's service:
// deeper than the default limit when the release build computes its layout.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use sg_function::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    sg_function::logging::init();
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
