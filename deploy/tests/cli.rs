//! The `deploy` binary as users run it: exit codes, messages, and output that parses.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use testkit::{lambda_zip, MotoServer};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn deploy(dir: &Path, args: &[&str]) -> Run {
    let output = Command::cargo_bin("deploy")
        .unwrap()
        .current_dir(dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deploy-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `--local --endpoint-url <moto> ARGS…`, with the global flags after the command.
fn local<'a>(moto: &'a MotoServer, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--local", "--endpoint-url", moto.endpoint.as_str()]);
    all
}

#[test]
fn the_whole_lab_through_the_binary() {
    let moto = MotoServer::start();
    let dir = workdir("flow");
    std::fs::write(dir.join("bootstrap.zip"), lambda_zip(0x3e, b"v1")).unwrap();

    let up = deploy(&dir, &local(&moto, &["up", "--zip", "bootstrap.zip"]));
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("account 123456789012, region us-west-2"), "{}", up.stderr);
    assert_eq!(up.stdout.lines().filter(|l| l.contains(" created")).count(), 8, "{}", up.stdout);

    let again = deploy(&dir, &local(&moto, &["up", "--zip", "bootstrap.zip"]));
    assert_eq!(again.code, 0);
    assert_eq!(again.stdout.lines().filter(|l| l.ends_with(" unchanged")).count(), 9, "{}", again.stdout);

    let open = deploy(&dir, &local(&moto, &["lab", "open-ports"]));
    assert_eq!(open.code, 0, "{}", open.stderr);

    let status = deploy(&dir, &local(&moto, &["status", "--output", "json"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["recorder"]["recording"], true);
    assert_eq!(status["recorder"]["resourceTypes"], serde_json::json!(["AWS::EC2::SecurityGroup"]));
    assert_eq!(status["rule"]["name"], "EC2_Security_Group");
    assert_eq!(status["defaultGroup"]["inbound"].as_array().unwrap().len(), 4);
    // moto cannot answer compliance reads; status says so instead of failing.
    assert!(status["compliance"]["unavailable"].as_str().unwrap().contains("does not implement"), "{status}");

    // The account and region once, at the top of the result.
    let text = deploy(&dir, &local(&moto, &["status"]));
    assert_eq!(text.code, 0, "{}", text.stderr);
    let both = format!("{}{}", text.stderr, text.stdout);
    assert_eq!(both.matches("account 123456789012, region us-west-2").count(), 1, "{both}");
    assert!(text.stdout.starts_with("account 123456789012, region us-west-2\n"), "{}", text.stdout);

    let refused = deploy(&dir, &local(&moto, &["down"]));
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);

    // moto denies the TLS-only bucket's objects over HTTP: no record of the groups to restore.
    let down = deploy(&dir, &local(&moto, &["down", "--yes", "--keep-groups", "--output", "json"]));
    assert_eq!(down.code, 0, "{}", down.stderr);
    let report: Value = serde_json::from_str(&down.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().filter(|s| s["resource"] != "group-record").all(|s| s["action"] == "delete"), "{report}");

    let again = deploy(&dir, &local(&moto, &["down", "--yes"]));
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn dry_run_json_is_the_desired_state() {
    let moto = MotoServer::start();
    let dir = workdir("dry");
    std::fs::write(dir.join("arm.zip"), lambda_zip(0xb7, b"v1")).unwrap();
    let run = deploy(&dir, &local(&moto, &["--output", "json", "up", "--dry-run", "--zip", "arm.zip"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["dryRun"], true);
    assert!(plan["steps"].as_array().unwrap().iter().all(|s| s["action"] == "create" || s["action"] == "update"));
    let desired = &plan["desired"];
    assert_eq!(desired["function"]["architecture"], "arm64");
    assert_eq!(desired["function"]["runtime"], "provided.al2023");
    assert_eq!(desired["recorder"]["resourceTypes"], serde_json::json!(["AWS::EC2::SecurityGroup"]));
    assert_eq!(desired["rule"]["inputParameters"], serde_json::json!({"debug": "true"}));
    let lab_policy: Value = serde_json::from_str(include_str!("../../policy/lambda-lab-policy.json")).unwrap();
    assert_eq!(desired["functionRole"]["inlinePolicies"]["awsconfig_lambda_ec2_security_group_policy"], lab_policy);
    // `--policy least-privilege` plans the scoped document, filled in for this lab.
    let args = ["--output", "json", "up", "--dry-run", "--zip", "arm.zip", "--policy", "least-privilege"];
    let run = deploy(&dir, &local(&moto, &args));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let scoped = &plan["desired"]["functionRole"]["inlinePolicies"]["awsconfig_lambda_ec2_security_group_policy"];
    let expected = include_str!("../../policy/lambda-least-privilege-policy.json")
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-west-2")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${FunctionName}", "awsconfig_lambda_security_group");
    assert_eq!(scoped, &serde_json::from_str::<Value>(&expected).unwrap());
    // Nothing was created.
    let status = deploy(&dir, &local(&moto, &["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(status["recorder"].is_null() && status["rule"].is_null(), "{status}");
}

#[test]
fn name_overrides_tell_two_labs_apart() {
    let moto = MotoServer::start();
    let dir = workdir("names");
    std::fs::write(dir.join("bootstrap.zip"), lambda_zip(0x3e, b"v1")).unwrap();
    let run = deploy(
        &dir,
        &local(
            &moto,
            &["up", "--dry-run", "--zip", "bootstrap.zip", "--function-name", "lab2_fn", "--rule-name", "Lab2_Rule"],
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("lab2_fn") && run.stdout.contains("Lab2_Rule"), "{}", run.stdout);
}

#[test]
fn zip_problems_exit_2_and_say_how_to_build() {
    let moto = MotoServer::start();
    let dir = workdir("zip");
    let missing = deploy(&dir, &local(&moto, &["up"]));
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no function zip found") && missing.stderr.contains("scripts/package"),
        "{}",
        missing.stderr
    );

    std::fs::write(dir.join("notes.zip"), b"hello").unwrap();
    let bad = deploy(&dir, &local(&moto, &["up", "--zip", "notes.zip"]));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("notes.zip is not a zip file"), "{}", bad.stderr);
}

#[test]
fn a_foreign_recorder_exits_3() {
    let moto = MotoServer::start();
    let dir = workdir("foreign");
    std::fs::write(dir.join("bootstrap.zip"), lambda_zip(0x3e, b"v1")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sdk = moto.sdk_config().await;
        let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
            .name("default")
            .role_arn("arn:aws:iam::123456789012:role/other")
            .build();
        aws_sdk_config::Client::new(&sdk)
            .put_configuration_recorder()
            .configuration_recorder(recorder)
            .send()
            .await
            .unwrap();
    });
    let run = deploy(&dir, &local(&moto, &["up", "--zip", "bootstrap.zip"]));
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("configuration recorder `default` (role arn:aws:iam::123456789012:role/other)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn an_unreachable_endpoint_exits_2() {
    let dir = workdir("unreachable");
    let run = deploy(&dir, &["status", "--local", "--endpoint-url", "http://127.0.0.1:9"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach the AWS endpoint"), "{}", run.stderr);
}

fn bare(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("deploy").unwrap();
    command
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("AWS_CONFIG_FILE", dir.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

#[test]
fn no_region_exits_2() {
    let dir = workdir("region");
    let output =
        bare(&dir).env("AWS_ACCESS_KEY_ID", "a").env("AWS_SECRET_ACCESS_KEY", "b").arg("status").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no AWS region: pass --region"));
}

#[test]
fn no_credentials_exits_2() {
    let dir = workdir("credentials");
    let output = bare(&dir).args(["status", "--region", "us-west-2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no AWS credentials") && stderr.contains("--profile"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = workdir("usage");
    let run = deploy(&dir, &["up", "--output", "yaml"]);
    assert_eq!(run.code, 2);
    let run = deploy(&dir, &["up", "--policy", "admin"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("[possible values: lab, least-privilege]"), "{}", run.stderr);
    let run = deploy(&dir, &["logs", "--since", "soon", "--local"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a duration"), "{}", run.stderr);
}
