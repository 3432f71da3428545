//! The pre-existing resources matrix: each of the lab's resources exists before `up`, either the
//! lab's own (left by an earlier run: adopted) or someone else's (a bucket of the same name, a
//! role with another trust, a foreign recorder or channel, an untagged function, a rule with
//! another source: `up` stops with exit code 3 before any change, and `down` keeps it). Run with
//! the real binary against the local AWS.

mod common;

use aws_sdk_config::types::{ConfigRule, ConfigurationRecorder, DeliveryChannel, Owner, Scope, Source};
use common::{mutating_between, Local};
use deploy::lab::Lab;
use deploy::role::RoleSpec;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Setup {
    OursBucket,
    OursConfigRole,
    OursRecorder,
    OursChannel,
    OursFunctionRole,
    OursFunction,
    OursRule,
    UntaggedBucket,
    BucketTaggedByOthers,
    ConfigRoleWithOtherTrust,
    UntaggedFunctionRole,
    ForeignRecorder,
    ForeignChannel,
    UntaggedFunction,
    RuleWithOtherSource,
}

struct Case {
    resource: &'static str,
    setup: Setup,
    /// Foreign cases: what the error must say, and where the resource shows in the end state.
    foreign: Option<(&'static str, &'static str)>,
}

const fn ours(resource: &'static str, setup: Setup) -> Case {
    Case { resource, setup, foreign: None }
}

const fn foreign(resource: &'static str, setup: Setup, message: &'static str, state: &'static str) -> Case {
    Case { resource, setup, foreign: Some((message, state)) }
}

const CASES: [Case; 15] = [
    ours("bucket", Setup::OursBucket),
    ours("config-role", Setup::OursConfigRole),
    ours("recorder", Setup::OursRecorder),
    ours("delivery-channel", Setup::OursChannel),
    ours("function-role", Setup::OursFunctionRole),
    ours("function", Setup::OursFunction),
    ours("rule", Setup::OursRule),
    foreign("bucket", Setup::UntaggedBucket, "bucket config-bucket-123456789012 exists and has no tags", "/bucket"),
    foreign(
        "bucket",
        Setup::BucketTaggedByOthers,
        "bucket config-bucket-123456789012 exists and is not tagged managed-by=sg-monitoring-lab",
        "/bucket",
    ),
    foreign(
        "config-role",
        Setup::ConfigRoleWithOtherTrust,
        "config-role config-role-us-west-2 exists and is not tagged",
        "/roles/config-role-us-west-2",
    ),
    foreign(
        "function-role",
        Setup::UntaggedFunctionRole,
        "function-role awsconfig_lambda_ec2_security_group_role exists and is not tagged",
        "/roles/awsconfig_lambda_ec2_security_group_role",
    ),
    foreign(
        "recorder",
        Setup::ForeignRecorder,
        "a configuration recorder `default` (role arn:aws:iam::123456789012:role/corporate-config) already exists",
        "/recorders",
    ),
    foreign(
        "delivery-channel",
        Setup::ForeignChannel,
        "a delivery channel `default` (bucket corporate-config-logs) already exists",
        "/channels",
    ),
    foreign(
        "function",
        Setup::UntaggedFunction,
        "function awsconfig_lambda_security_group exists and is not tagged",
        "/function",
    ),
    foreign("rule", Setup::RuleWithOtherSource, "Config rule EC2_Security_Group exists and is not tagged", "/rules"),
];

async fn other_role(lab: &Lab, name: &str, service: &str) -> String {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = lab.clients.iam.create_role().role_name(name).assume_role_policy_document(trust).send().await.unwrap();
    role.role().unwrap().arn().to_owned()
}

async fn setup(env: &Local, setup: Setup) {
    let lab = &env.lab;
    let c = &lab.clients;
    let artifact = deploy::artifact::Artifact::locate(Some(&env.zip)).unwrap();
    let our_bucket = || async { deploy::bucket::ensure(lab, false).await.unwrap() };
    let our_config_role = || async { deploy::role::ensure(lab, &RoleSpec::config(lab), false, "").await.unwrap() };
    let our_function_role = || async { deploy::role::ensure(lab, &RoleSpec::function(lab), false, "").await.unwrap() };
    let our_function = || async { deploy::function::ensure(lab, &artifact, false).await.unwrap() };
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
        .build();
    match setup {
        Setup::OursBucket => drop(our_bucket().await),
        Setup::OursConfigRole => drop(our_config_role().await),
        Setup::OursRecorder => {
            our_config_role().await;
            deploy::recorder::ensure_recorder(lab, false).await.unwrap();
        }
        Setup::OursChannel => {
            our_bucket().await;
            our_config_role().await;
            deploy::recorder::ensure_recorder(lab, false).await.unwrap();
            deploy::recorder::ensure_channel(lab, false).await.unwrap();
        }
        Setup::OursFunctionRole => drop(our_function_role().await),
        Setup::OursFunction => {
            our_function_role().await;
            our_function().await;
        }
        Setup::OursRule => {
            our_function_role().await;
            our_function().await;
            deploy::function::ensure_permission(lab, false).await.unwrap();
            deploy::rule::ensure(lab, false).await.unwrap();
        }
        Setup::UntaggedBucket | Setup::BucketTaggedByOthers => {
            c.s3.create_bucket().bucket(&lab.names.bucket).create_bucket_configuration(location).send().await.unwrap();
            if matches!(setup, Setup::BucketTaggedByOthers) {
                let tag = aws_sdk_s3::types::Tag::builder().key("owner").value("finance").build().unwrap();
                let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().unwrap();
                c.s3.put_bucket_tagging().bucket(&lab.names.bucket).tagging(tagging).send().await.unwrap();
            }
        }
        Setup::ConfigRoleWithOtherTrust => drop(other_role(lab, &lab.names.config_role, "ec2.amazonaws.com").await),
        Setup::UntaggedFunctionRole => drop(other_role(lab, &lab.names.function_role, "lambda.amazonaws.com").await),
        Setup::ForeignRecorder | Setup::ForeignChannel => {
            let role_arn = if matches!(setup, Setup::ForeignRecorder) {
                other_role(lab, "corporate-config", "config.amazonaws.com").await
            } else {
                our_config_role().await;
                lab.role_arn(&lab.names.config_role)
            };
            let recorder = ConfigurationRecorder::builder().name("default").role_arn(role_arn).build();
            c.config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();
            if matches!(setup, Setup::ForeignChannel) {
                let bucket = "corporate-config-logs";
                c.s3.create_bucket().bucket(bucket).create_bucket_configuration(location).send().await.unwrap();
                let channel = DeliveryChannel::builder().name("default").s3_bucket_name(bucket).build();
                c.config.put_delivery_channel().delivery_channel(channel).send().await.unwrap();
            }
        }
        Setup::UntaggedFunction => {
            let role = other_role(lab, "someone-elses-function-role", "lambda.amazonaws.com").await;
            c.lambda
                .create_function()
                .function_name(&lab.names.function)
                .runtime(aws_sdk_lambda::types::Runtime::from("provided.al2023"))
                .handler("bootstrap")
                .role(role)
                .code(
                    aws_sdk_lambda::types::FunctionCode::builder()
                        .zip_file(aws_sdk_lambda::primitives::Blob::new(artifact.bytes.clone()))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        Setup::RuleWithOtherSource => {
            let rule = ConfigRule::builder()
                .config_rule_name(&lab.names.rule)
                .scope(Scope::builder().compliance_resource_types("AWS::EC2::SecurityGroup").build())
                .source(Source::builder().owner(Owner::Aws).source_identifier("INCOMING_SSH_DISABLED").build().unwrap())
                .build();
            c.config.put_config_rule().config_rule(rule).send().await.unwrap();
        }
    }
}

fn step<'a>(report: &'a Value, resource: &str) -> Option<&'a Value> {
    report["steps"].as_array().and_then(|steps| steps.iter().find(|s| s["resource"] == resource))
}

/// Runs one case; the matrix cell, or why it failed.
fn run(env: &Local, case: &Case) -> Result<String, String> {
    env.reset();
    env.block_on(setup(env, case.setup));
    let before = env.end_state();
    let calls = env.calls();
    let zip = env.zip.display().to_string();
    let up = env.deploy(&["up", "--zip", &zip, "--output", "json"]);
    match case.foreign {
        None => {
            if up.code != 0 {
                return Err(format!("up exited {}: {}", up.code, up.stderr));
            }
            let report: Value = serde_json::from_str(&up.stdout).map_err(|e| e.to_string())?;
            let adopted = step(&report, case.resource).map(|s| s["action"].clone());
            if adopted != Some(Value::from("unchanged")) {
                return Err(format!("{} was not adopted as it was: {adopted:?}", case.resource));
            }
            let down = env.deploy(&["down"]);
            let left = env.leftovers();
            if down.code != 0 || !left.is_empty() {
                return Err(format!("down exited {} and left {left:?}", down.code));
            }
            Ok("up 0: adopted (unchanged); down: deleted".into())
        }
        Some((message, state)) => {
            if up.code != 3 || !up.stderr.contains(message) || !up.stdout.is_empty() {
                return Err(format!("up exited {} (want 3 and `{message}`):\n{}", up.code, up.stderr));
            }
            let changed = mutating_between(&calls, &env.calls());
            if !changed.is_empty() {
                return Err(format!("up made mutating calls: {changed:?}"));
            }
            if env.end_state() != before {
                return Err("up changed something".into());
            }
            let down = env.deploy(&["down", "--output", "json"]);
            if down.code != 0 {
                return Err(format!("down exited {}: {}", down.code, down.stderr));
            }
            let report: Value = serde_json::from_str(&down.stdout).map_err(|e| e.to_string())?;
            let kept = step(&report, case.resource).map(|s| s["action"].clone());
            if kept != Some(Value::from("kept")) {
                return Err(format!("down did not keep {}: {kept:?}", case.resource));
            }
            let after = env.end_state();
            if after.pointer(state) != before.pointer(state) || after.pointer(state).is_none_or(Value::is_null) {
                return Err(format!("down changed {state}: {:?} → {:?}", before.pointer(state), after.pointer(state)));
            }
            let first_line = up.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
            Ok(format!("up 3, no change ({}…); down: kept", &first_line[..first_line.len().min(60)]))
        }
    }
}

#[test]
fn pre_existing_resources_are_adopted_when_ours_and_never_touched_when_not() {
    let env = Local::with_stub("ownership");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for case in &CASES {
        let whose = if case.foreign.is_some() { format!("foreign: {:?}", case.setup) } else { "ours".to_owned() };
        let cell = match run(&env, case) {
            Ok(cell) => cell,
            Err(why) => {
                failures.push(format!("{} ({whose}): {why}", case.resource));
                format!("FAIL: {}", why.lines().next().unwrap_or(""))
            }
        };
        rows.push(vec![case.resource.to_owned(), whose, cell]);
    }
    common::print_matrix(
        "pre-existing resources: resource × whose → outcome",
        &["resource", "whose", "outcome"],
        &rows,
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
