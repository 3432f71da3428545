//! The Lambda entry point: builds the SDK clients from the environment (region, credentials,
//! `AWS_ENDPOINT_URL`) and hands every Config event to the handler.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use sg_function::Handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let handler = Handler::new(aws_sdk_ec2::Client::new(&config), aws_sdk_config::Client::new(&config))?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handler.handle(event.payload).await
    }))
    .await
}
