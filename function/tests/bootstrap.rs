//! The built `bootstrap` binary, run as Lambda runs it: behind a Runtime API, configured only
//! through Lambda's environment, with `AWS_ENDPOINT_URL` pointing at a moto server.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{Invocation, MotoServer, RecordingEndpoint, RuntimeApi};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn bootstrap_answers_config_events_through_the_runtime_api() {
    let moto = MotoServer::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let group = groups.security_groups()[0].group_id().unwrap().to_owned();
    let permissions = [80, 465]
        .map(|port| {
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build()
        })
        .to_vec();
    ec2.authorize_security_group_ingress().group_id(&group).set_ip_permissions(Some(permissions)).send().await.unwrap();

    let mut event: Value = serde_json::from_str(include_str!("fixtures/change-notification.json")).unwrap();
    let mut invoking: Value = serde_json::from_str(event["invokingEvent"].as_str().unwrap()).unwrap();
    invoking["configurationItem"]["resourceId"] = json!(group);
    event["invokingEvent"] = json!(invoking.to_string());
    let malformed: Value =
        serde_json::from_str(include_str!("fixtures/malformed-invoking-event-not-json.json")).unwrap();

    let config = RecordingEndpoint::start(json!({"FailedEvaluations": []})).await;
    let runtime = RuntimeApi::start(vec![malformed, event]).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "awsconfig_lambda_security_group")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_REGION", testkit::REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_CONFIG_SERVICE", &config.endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let results = runtime.wait_for(2, Duration::from_secs(60)).await;
    child.kill().await.unwrap();
    let mut logs = String::new();
    child.stdout.take().unwrap().read_to_string(&mut logs).await.unwrap();
    child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();

    assert_eq!(results.len(), 2, "{results:?}\n{logs}");
    let Invocation::Error(error) = &results[0] else { panic!("malformed event answered {:?}", results[0]) };
    assert_eq!(error["errorType"], "MalformedEvent");
    assert!(error["errorMessage"].as_str().unwrap().contains("`invokingEvent` is not the JSON string"), "{error}");
    let Invocation::Response(outcome) = &results[1] else { panic!("lab event answered {:?}\n{logs}", results[1]) };
    assert_eq!(outcome["revoked"][0]["rules"], json!(["tcp/465@0.0.0.0/0"]));
    assert_eq!(outcome["authorized"][0]["rules"], json!(["tcp/443@0.0.0.0/0"]));
    assert!(
        logs.contains(&format!("revoking for {group}, ip_permissions [{{\"IpProtocol\":\"tcp\",\"FromPort\":465")),
        "{logs}"
    );
    assert!(logs.contains(&format!("authorizing for {group}, ip_permissions")), "{logs}");
    let evaluations = config.requests();
    assert_eq!(evaluations.len(), 1, "only the valid event is reported");
    assert_eq!(evaluations[0].body["Evaluations"][0]["ComplianceType"], "NON_COMPLIANT");
}
