//! `up`, `down`, `status` and `lab open-ports` with the real SDK against a moto server started
//! per test, behind a proxy that records every call.
//!
//! moto applies a bucket policy's Deny statements without reading their Condition, so the
//! lab's TLS-only Deny would refuse every object call (the record of the groups' ingress) that
//! AWS, over TLS, allows. The proxy corrects moto as the local AWS does
//! ([`localaws::s3::without_conditional_denies`]): moto gets the policy without its
//! conditional Denies, and GetBucketPolicy answers the policy as it was put.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Parser;
use deploy::cli::Cli;
use deploy::lab::{FunctionPolicy, Lab, OWNER_TAG, OWNER_VALUE};
use deploy::report::{Action, Report};
use deploy::role::RoleSpec;
use deploy::up::{down, up, UpOptions};
use serde_json::{json, Value};
use testkit::{lambda_zip, CountingProxy, MotoServer, Request, Response};

const ACCOUNT: &str = "123456789012";

struct Env {
    moto: MotoServer,
    proxy: CountingProxy,
    lab: Lab,
    dir: PathBuf,
}

async fn env() -> Env {
    let moto = MotoServer::start();
    let proxy = CountingProxy::start_with(&moto.endpoint, policy_correction()).await;
    let cli =
        Cli::parse_from(["deploy", "--local", "--region", "us-west-2", "--endpoint-url", &proxy.endpoint, "status"]);
    let lab = deploy::connect::connect(&cli.global).await.unwrap();
    let dir = std::env::temp_dir().join(format!("deploy-test-{}", moto.endpoint.rsplit(':').next().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    Env { moto, proxy, lab, dir }
}

/// The proxy's correction of moto's unconditional Denies (see the module's comment).
fn policy_correction() -> testkit::Rewrite {
    let put: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    Arc::new(move |request: &mut Request| {
        if request.method == "DELETE" && !request.path.contains('?') {
            // DeleteBucket: its policy goes with it.
            put.lock().unwrap().remove(request.path.trim_matches('/'));
            return None;
        }
        let (bucket, query) = request.path.split_once('?')?;
        if !query.split('&').any(|q| q == "policy" || q == "policy=") {
            return None;
        }
        let bucket = bucket.trim_matches('/').to_owned();
        let mut put = put.lock().unwrap();
        match request.method.as_str() {
            "PUT" => {
                let filtered = localaws::s3::without_conditional_denies(&request.body)?;
                put.insert(bucket, std::mem::replace(&mut request.body, filtered.to_vec()));
                request.headers.retain(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    k != "content-md5" && !k.starts_with("x-amz-checksum-")
                });
                for (k, v) in &mut request.headers {
                    if k.eq_ignore_ascii_case("content-length") {
                        *v = request.body.len().to_string();
                    }
                }
                None
            }
            "GET" => put.get(&bucket).map(|body| Response::new(200, vec![], body.clone())),
            "DELETE" => {
                put.remove(&bucket);
                None
            }
            _ => None,
        }
    })
}

impl Env {
    fn zip(&self, payload: &str) -> PathBuf {
        let path = self.dir.join(format!("{payload}.zip"));
        std::fs::write(&path, lambda_zip(0x3e, payload.as_bytes())).unwrap();
        path
    }

    async fn up(&self, zip: &Path) -> Report {
        let (report, error) = up(&self.lab, &UpOptions { zip: Some(zip.to_path_buf()), ..UpOptions::default() }).await;
        assert!(error.is_none(), "{error:?}\n{report}");
        report
    }
}

fn actions(report: &Report) -> Vec<(&'static str, Action)> {
    report.steps.iter().map(|s| (s.resource, s.action)).collect()
}

/// A policy document as IAM answers it (URL-encoded).
fn policy(text: &str) -> Value {
    deploy::lab::parse_policy(text).unwrap()
}

fn policy_file(name: &str) -> Value {
    serde_json::from_str(&policy_text(name)).unwrap()
}

fn policy_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy").join(name);
    std::fs::read_to_string(path).unwrap()
}

/// A `policy/` document with its placeholders filled for the lab's defaults in moto's account.
fn rendered_file(name: &str) -> Value {
    let text = policy_text(name)
        .replace("${AWS::AccountId}", ACCOUNT)
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-west-2")
        .replace("${BucketName}", "config-bucket-123456789012")
        .replace("${FunctionName}", "awsconfig_lambda_security_group")
        .replace("${TrailName}", "sg-monitoring-lab-trail");
    serde_json::from_str(&text).unwrap()
}

/// The function role's inline policy as IAM holds it.
async fn function_inline_policy(lab: &Lab) -> Value {
    let inline = lab
        .clients
        .iam
        .get_role_policy()
        .role_name(&lab.names.function_role)
        .policy_name(deploy::lab::FUNCTION_POLICY_NAME)
        .send()
        .await
        .unwrap();
    policy(inline.policy_document())
}

#[tokio::test]
async fn up_creates_every_resource_as_the_lab_describes() {
    let env = env().await;
    let report = env.up(&env.zip("v1")).await;
    assert_eq!(
        actions(&report),
        [
            ("bucket", Action::Create),
            ("config-role", Action::Create),
            ("recorder", Action::Create),
            ("delivery-channel", Action::Create),
            ("recording", Action::Update),
            ("function-role", Action::Create),
            ("function", Action::Create),
            ("invoke-permission", Action::Create),
            ("group-record", Action::Create),
            ("rule", Action::Create),
        ]
    );
    let c = &env.lab.clients;
    let bucket = "config-bucket-123456789012";

    // Step 1: the delivery bucket.
    let tags = c.s3.get_bucket_tagging().bucket(bucket).send().await.unwrap();
    assert!(tags.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE));
    let block = c.s3.get_public_access_block().bucket(bucket).send().await.unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let sse = c.s3.get_bucket_encryption().bucket(bucket).send().await.unwrap();
    let rule = &sse.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm().as_str(), "AES256");
    let bucket_policy: Value =
        serde_json::from_str(c.s3.get_bucket_policy().bucket(bucket).send().await.unwrap().policy().unwrap()).unwrap();
    let statements = bucket_policy["Statement"].as_array().unwrap();
    let delivery = statements.iter().find(|s| s["Sid"] == "AWSConfigBucketDelivery").unwrap();
    assert_eq!(delivery["Principal"]["Service"], "config.amazonaws.com");
    assert_eq!(delivery["Condition"]["StringEquals"]["s3:x-amz-acl"], "bucket-owner-full-control");
    assert_eq!(delivery["Resource"], format!("arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/Config/*"));
    let actions_of = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap()["Action"].clone();
    assert_eq!(actions_of("AWSConfigBucketPermissionsCheck"), "s3:GetBucketAcl");
    assert_eq!(actions_of("AWSConfigBucketExistenceCheck"), "s3:ListBucket");
    // Confused deputy: Config may use the bucket only on behalf of this account.
    for sid in ["AWSConfigBucketPermissionsCheck", "AWSConfigBucketExistenceCheck", "AWSConfigBucketDelivery"] {
        let statement = statements.iter().find(|s| s["Sid"] == sid).unwrap();
        assert_eq!(statement["Condition"]["StringEquals"]["AWS:SourceAccount"], ACCOUNT, "{sid}");
    }
    let tls = statements.iter().find(|s| s["Sid"] == "DenyInsecureTransport").unwrap();
    assert_eq!(
        (tls["Effect"].as_str(), &tls["Condition"]["Bool"]["aws:SecureTransport"]),
        (Some("Deny"), &json!("false"))
    );
    assert_eq!((&tls["Principal"], &tls["Action"]), (&json!("*"), &json!("s3:*")));
    assert_eq!(tls["Resource"], json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]));
    assert_eq!(bucket_policy, rendered_file("config-bucket-policy.json"));

    // Step 1: the Config role.
    let role = c.iam.get_role().role_name("config-role-us-west-2").send().await.unwrap();
    let trust = policy(role.role().unwrap().assume_role_policy_document().unwrap());
    assert_eq!(trust["Statement"][0]["Principal"]["Service"], "config.amazonaws.com");
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"], ACCOUNT);
    assert_eq!(trust, rendered_file("config-trust.json"));
    let attached = c.iam.list_attached_role_policies().role_name("config-role-us-west-2").send().await.unwrap();
    let arns: Vec<&str> = attached.attached_policies().iter().map(|p| p.policy_arn().unwrap()).collect();
    assert_eq!(arns, ["arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"]);
    let inline = c
        .iam
        .get_role_policy()
        .role_name("config-role-us-west-2")
        .policy_name("config-bucket-delivery")
        .send()
        .await
        .unwrap();
    assert_eq!(
        policy(inline.policy_document())["Statement"][0]["Resource"],
        format!("arn:aws:s3:::{bucket}/AWSLogs/{ACCOUNT}/*")
    );

    // Step 1: recorder (security groups only, no global types), channel (no SNS), recording.
    let recorders = c.config.describe_configuration_recorders().send().await.unwrap();
    let recorder = &recorders.configuration_recorders()[0];
    assert_eq!(recorder.role_arn(), Some("arn:aws:iam::123456789012:role/config-role-us-west-2"));
    let group = recorder.recording_group().unwrap();
    assert!(!group.all_supported() && !group.include_global_resource_types());
    assert_eq!(group.resource_types().iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["AWS::EC2::SecurityGroup"]);
    let channels = c.config.describe_delivery_channels().send().await.unwrap();
    let channel = &channels.delivery_channels()[0];
    assert_eq!((channel.s3_bucket_name(), channel.sns_topic_arn()), (Some(bucket), None));
    let status = c.config.describe_configuration_recorder_status().send().await.unwrap();
    assert!(status.configuration_recorders_status()[0].recording());

    // Step 3: the function role with exactly the lab's inline policy, and the function.
    let role = c.iam.get_role().role_name("awsconfig_lambda_ec2_security_group_role").send().await.unwrap();
    assert_eq!(policy(role.role().unwrap().assume_role_policy_document().unwrap()), policy_file("lambda-trust.json"));
    let inline = c
        .iam
        .get_role_policy()
        .role_name("awsconfig_lambda_ec2_security_group_role")
        .policy_name("awsconfig_lambda_ec2_security_group_policy")
        .send()
        .await
        .unwrap();
    assert_eq!(policy(inline.policy_document()), policy_file("lambda-lab-policy.json"));
    let function =
        c.lambda.get_function_configuration().function_name("awsconfig_lambda_security_group").send().await.unwrap();
    assert_eq!(function.runtime().unwrap().as_str(), "provided.al2023");
    assert_eq!(function.handler(), Some("bootstrap"));
    assert_eq!((function.memory_size(), function.timeout()), (Some(128), Some(60)));
    assert_eq!(function.description(), Some("restrict ingress ports"));
    assert_eq!(function.architectures()[0].as_str(), "x86_64");
    assert_eq!(function.role(), Some("arn:aws:iam::123456789012:role/awsconfig_lambda_ec2_security_group_role"));
    assert!(function.vpc_config().is_none_or(|v| v.subnet_ids().is_empty()));
    let permission: Value = serde_json::from_str(
        c.lambda.get_policy().function_name("awsconfig_lambda_security_group").send().await.unwrap().policy().unwrap(),
    )
    .unwrap();
    let statement = &permission["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "config.amazonaws.com");
    assert_eq!(statement["Condition"]["StringEquals"]["AWS:SourceAccount"], ACCOUNT);

    // Step 4: the custom rule.
    let rules = c.config.describe_config_rules().send().await.unwrap();
    let rule = &rules.config_rules()[0];
    assert_eq!(rule.config_rule_name(), Some("EC2_Security_Group"));
    assert_eq!(rule.description(), Some("Restrict ingress ports to HTTP and HTTPS"));
    let source = rule.source().unwrap();
    assert_eq!(source.owner().as_str(), "CUSTOM_LAMBDA");
    assert_eq!(source.source_identifier(), Some(env.lab.function_arn().as_str()));
    let mut types: Vec<&str> = source.source_details().iter().map(|d| d.message_type().unwrap().as_str()).collect();
    types.sort();
    assert_eq!(types, ["ConfigurationItemChangeNotification", "OversizedConfigurationItemChangeNotification"]);
    assert_eq!(rule.scope().unwrap().compliance_resource_types(), ["AWS::EC2::SecurityGroup"]);
    assert_eq!(serde_json::from_str::<Value>(rule.input_parameters().unwrap()).unwrap(), json!({"debug": "true"}));
}

#[tokio::test]
async fn second_up_is_unchanged_and_makes_no_mutating_call() {
    let env = env().await;
    let zip = env.zip("v1");
    env.up(&zip).await;
    env.proxy.clear();
    let report = env.up(&zip).await;
    assert!(report.steps.iter().all(|s| s.action == Action::Unchanged), "{report}");
    assert_eq!(report.steps.len(), 10, "nine resources and the record of the groups");
    let mutating: Vec<_> = env.proxy.calls().into_iter().filter(|c| c.is_mutating()).collect();
    assert!(mutating.is_empty(), "{mutating:#?}");
}

#[tokio::test]
async fn changed_zip_and_changed_rule_parameters_are_updated() {
    let env = env().await;
    env.up(&env.zip("v1")).await;
    // Someone edits the rule's parameters in the console.
    let rule = env.lab.clients.config.describe_config_rules().send().await.unwrap().config_rules()[0].clone();
    let edited = aws_sdk_config::types::ConfigRule::builder()
        .set_config_rule_name(rule.config_rule_name().map(str::to_owned))
        .set_description(rule.description().map(str::to_owned))
        .set_scope(rule.scope().cloned())
        .set_source(rule.source().cloned())
        .input_parameters(r#"{"debug":"false"}"#)
        .build();
    env.lab.clients.config.put_config_rule().config_rule(edited).send().await.unwrap();

    let report = env.up(&env.zip("v2")).await;
    let changed: Vec<_> = report.steps.iter().filter(|s| s.action != Action::Unchanged).collect();
    assert_eq!(changed.len(), 2, "{report}");
    assert_eq!((changed[0].resource, changed[0].detail.as_deref()), ("function", Some("code (x86_64)")));
    assert_eq!(changed[1].resource, "rule");
    let rule = env.lab.clients.config.describe_config_rules().send().await.unwrap().config_rules()[0].clone();
    assert_eq!(serde_json::from_str::<Value>(rule.input_parameters().unwrap()).unwrap(), json!({"debug": "true"}));
    let function = env
        .lab
        .clients
        .lambda
        .get_function_configuration()
        .function_name(&env.lab.names.function)
        .send()
        .await
        .unwrap();
    let v2 = deploy::artifact::Artifact::locate(Some(&env.zip("v2"))).unwrap();
    assert_eq!(function.code_sha256(), Some(v2.sha256.as_str()));
}

#[tokio::test]
async fn down_removes_everything_and_a_second_down_is_a_no_op() {
    let env = env().await;
    env.up(&env.zip("v1")).await;
    // Config delivered objects, in several versions: down must empty the bucket first.
    let s3 = &env.lab.clients.s3;
    let bucket = &env.lab.names.bucket;
    // moto answers ListObjectVersions with a 500 once a bucket that holds an object put before
    // versioning is versioned: the record `up` wrote goes back once versioning is on.
    let key = deploy::snapshot::KEY;
    let record = s3.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap();
    s3.delete_object().bucket(bucket).key(key).send().await.unwrap();
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    s3.put_bucket_versioning().bucket(bucket).versioning_configuration(versioning).send().await.unwrap();
    s3.put_object().bucket(bucket).key(key).body(record.into_bytes().into()).send().await.unwrap();
    for body in ["{}", "{\"v\":2}"] {
        let key = "AWSLogs/123456789012/Config/snapshot.json";
        s3.put_object().bucket(bucket).key(key).body(body.as_bytes().to_vec().into()).send().await.unwrap();
    }
    s3.delete_object().bucket(bucket).key("AWSLogs/123456789012/Config/snapshot.json").send().await.unwrap();
    let report = down(&env.lab, false).await;
    assert!(report.failed().next().is_none(), "{report}");
    let emptied = report.steps.iter().find(|s| s.resource == "bucket").unwrap();
    assert_eq!(emptied.detail.as_deref(), Some("4 object versions removed"), "the record and Config's 3");
    assert_eq!(common::leftovers(&env.lab).await, Vec::<String>::new());
    let again = down(&env.lab, false).await;
    assert!(again.steps.iter().all(|s| s.action == Action::Absent), "{again}");
}

#[tokio::test]
async fn dry_runs_make_no_mutating_call() {
    let env = env().await;
    let zip = env.zip("v1");
    let (plan, error) =
        up(&env.lab, &UpOptions { zip: Some(zip.clone()), dry_run: true, ..UpOptions::default() }).await;
    assert!(error.is_none(), "{error:?}");
    assert!(plan.steps.iter().all(|s| s.action != Action::Unchanged), "{plan}");
    assert_eq!(plan.desired.as_ref().unwrap()["function"]["architecture"], "x86_64");
    env.up(&zip).await;
    env.proxy.clear();
    let plan = down(&env.lab, true).await;
    assert!(plan.steps.iter().any(|s| s.action == Action::Delete), "{plan}");
    assert!(env.proxy.calls().iter().all(|c| !c.is_mutating()));
    assert_eq!(common::leftovers(&env.lab).await.len(), 7);
}

/// Runs the first `steps` of `up`, as an interrupted `up` would leave them.
async fn partial_up(lab: &Lab, zip: &Path, steps: usize) {
    let artifact = deploy::artifact::Artifact::locate(Some(zip)).unwrap();
    for step in 0..steps {
        match step {
            0 => drop(deploy::bucket::ensure(lab, false).await.unwrap()),
            1 => drop(deploy::role::ensure(lab, &RoleSpec::config(lab), false, "").await.unwrap()),
            2 => drop(deploy::recorder::ensure_recorder(lab, false).await.unwrap()),
            3 => drop(deploy::recorder::ensure_channel(lab, false).await.unwrap()),
            4 => drop(deploy::recorder::ensure_started(lab, false).await.unwrap()),
            5 => drop(deploy::role::ensure(lab, &RoleSpec::function(lab), false, "").await.unwrap()),
            6 => drop(deploy::function::ensure(lab, &artifact, false).await.unwrap()),
            7 => drop(deploy::function::ensure_permission(lab, false).await.unwrap()),
            8 => {
                let (groups, _) = deploy::impact::read_groups(lab).await.unwrap();
                drop(deploy::snapshot::record(lab, &groups, false).await.unwrap())
            }
            _ => drop(deploy::rule::ensure(lab, false).await.unwrap()),
        }
    }
}

#[tokio::test]
async fn down_after_a_partial_up_leaves_nothing() {
    let env = env().await;
    let zip = env.zip("v1");
    for steps in 1..=10 {
        env.moto.reset();
        partial_up(&env.lab, &zip, steps).await;
        let report = down(&env.lab, false).await;
        assert!(report.failed().next().is_none(), "after {steps} steps: {report}");
        assert_eq!(common::leftovers(&env.lab).await, Vec::<String>::new(), "after {steps} steps");
        // And `up` from a partial state converges to the full lab.
        partial_up(&env.lab, &zip, steps).await;
        let report = env.up(&zip).await;
        assert_eq!(report.steps.len(), 10, "{report}");
        assert_eq!(common::leftovers(&env.lab).await.len(), 7);
    }
}

async fn foreign_recorder(env: &Env) {
    let iam = &env.lab.clients.iam;
    let role = iam
        .create_role()
        .role_name("someone-elses-config-role")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();
    let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
        .name("corporate")
        .role_arn(role.role().unwrap().arn())
        .recording_group(aws_sdk_config::types::RecordingGroup::builder().all_supported(true).build())
        .build();
    env.lab.clients.config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();
}

#[tokio::test]
async fn a_foreign_recorder_stops_up_before_any_change() {
    let env = env().await;
    foreign_recorder(&env).await;
    env.proxy.clear();
    let (report, error) = up(&env.lab, &UpOptions { zip: Some(env.zip("v1")), ..UpOptions::default() }).await;
    let error = error.unwrap();
    assert_eq!(error.exit_code(), deploy::error::exit::CONFLICT);
    let message = error.to_string();
    assert!(
        message.contains("configuration recorder `corporate`") && message.contains("--use-existing-recorder"),
        "{message}"
    );
    assert!(report.steps.is_empty());
    assert!(env.proxy.calls().iter().all(|c| !c.is_mutating()), "{:?}", env.proxy.calls());
    assert_eq!(common::leftovers(&env.lab).await, ["recorder corporate"]);
}

#[tokio::test]
async fn use_existing_recorder_leaves_it_through_up_and_down() {
    let env = env().await;
    foreign_recorder(&env).await;
    let options = UpOptions { zip: Some(env.zip("v1")), use_existing_recorder: true, ..UpOptions::default() };
    let (report, error) = up(&env.lab, &options).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(report.steps[0].action, Action::Kept);
    assert!(!report.steps.iter().any(|s| s.resource == "config-role"));
    // The lab's own bucket, for the record of the groups' ingress (none of the recorder's).
    let buckets: Vec<_> = report.steps.iter().filter(|s| s.resource == "bucket").map(|s| s.action).collect();
    assert_eq!(buckets, [Action::Create]);
    let before = env.lab.clients.config.describe_configuration_recorders().send().await.unwrap();
    let report = down(&env.lab, false).await;
    assert!(report.failed().next().is_none(), "{report}");
    let after = env.lab.clients.config.describe_configuration_recorders().send().await.unwrap();
    assert_eq!(before.configuration_recorders(), after.configuration_recorders());
    assert_eq!(common::leftovers(&env.lab).await, ["recorder corporate"]);
    assert!(env.lab.clients.iam.get_role().role_name("someone-elses-config-role").send().await.is_ok());
}

#[tokio::test]
async fn a_bucket_of_the_same_name_that_is_not_ours_stops_up_and_survives_down() {
    let env = env().await;
    let s3 = &env.lab.clients.s3;
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
        .build();
    s3.create_bucket().bucket(&env.lab.names.bucket).create_bucket_configuration(location).send().await.unwrap();
    let (_, error) = up(&env.lab, &UpOptions { zip: Some(env.zip("v1")), ..UpOptions::default() }).await;
    let message = error.unwrap().to_string();
    assert!(
        message.contains("bucket config-bucket-123456789012 exists") && message.contains("--bucket-name"),
        "{message}"
    );
    assert_eq!(common::leftovers(&env.lab).await, ["bucket config-bucket-123456789012"]);
    let report = down(&env.lab, false).await;
    let bucket = report.steps.iter().find(|s| s.resource == "bucket").unwrap();
    assert_eq!(bucket.action, Action::Kept);
    assert_eq!(common::leftovers(&env.lab).await, ["bucket config-bucket-123456789012"]);
}

#[tokio::test]
async fn open_ports_is_idempotent_and_status_shows_the_group() {
    let env = env().await;
    let first = deploy::open_ports::open_ports(&env.lab).await.unwrap();
    assert_eq!(first.steps[0].action, Action::Update);
    let second = deploy::open_ports::open_ports(&env.lab).await.unwrap();
    assert_eq!(actions(&second), [("inbound", Action::Unchanged)]);
    let status = deploy::status::status(&env.lab).await.unwrap();
    assert_eq!(
        status.default_group.unwrap().inbound,
        ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"]
    );
    assert!(status.recorder.is_none() && status.rule.is_none());
}

#[tokio::test]
async fn policy_least_privilege_puts_the_scoped_document_and_policy_lab_puts_the_labs_back() {
    let env = env().await;
    let zip = env.zip("v1");
    let options = |policy| UpOptions { zip: Some(zip.clone()), policy: Some(policy), ..UpOptions::default() };

    // The plan shows the chosen document.
    let (plan, error) = up(&env.lab, &UpOptions { dry_run: true, ..options(FunctionPolicy::LeastPrivilege) }).await;
    assert!(error.is_none(), "{error:?}");
    let scoped = rendered_file("lambda-least-privilege-policy.json");
    let desired = &plan.desired.as_ref().unwrap()["functionRole"]["inlinePolicies"];
    assert_eq!(desired, &json!({ "awsconfig_lambda_ec2_security_group_policy": scoped }));

    let (report, error) = up(&env.lab, &options(FunctionPolicy::LeastPrivilege)).await;
    assert!(error.is_none(), "{error:?}\n{report}");
    let role = report.steps.iter().find(|s| s.resource == "function-role").unwrap();
    assert_eq!((role.action, role.detail.as_deref()), (Action::Create, Some("least-privilege policy")));
    let carried = function_inline_policy(&env.lab).await;
    assert_eq!(carried, scoped);
    // What makes it scoped: ingress changes on this account's groups only, logs on the
    // function's own group only, nothing of the lab's `arn:aws:logs:*:*:*`.
    let statement = |sid: &str| carried["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap();
    assert_eq!(statement("ChangeIngress")["Resource"], "arn:aws:ec2:us-west-2:123456789012:security-group/*");
    assert_eq!(
        statement("OwnLogStreams")["Resource"],
        "arn:aws:logs:us-west-2:123456789012:log-group:/aws/lambda/awsconfig_lambda_security_group:*"
    );
    assert!(!carried.to_string().contains("arn:aws:logs:*"), "{carried}");
    let status = deploy::status::status(&env.lab).await.unwrap();
    assert_eq!(status.function_policy.as_deref(), Some("least-privilege"));

    // The same choice again changes nothing.
    env.proxy.clear();
    let (again, error) = up(&env.lab, &options(FunctionPolicy::LeastPrivilege)).await;
    assert!(error.is_none(), "{error:?}");
    assert!(again.steps.iter().all(|s| s.action == Action::Unchanged), "{again}");
    assert!(env.proxy.calls().iter().all(|c| !c.is_mutating()), "{:?}", env.proxy.calls());

    // Without --policy, the deployed choice is kept.
    let (kept, error) = up(&env.lab, &UpOptions { zip: Some(zip.clone()), ..UpOptions::default() }).await;
    assert!(error.is_none(), "{error:?}");
    assert!(kept.steps.iter().all(|s| s.action == Action::Unchanged), "{kept}");
    assert_eq!(function_inline_policy(&env.lab).await, scoped);

    // `--policy lab` switches back, and only the inline policy changes.
    let (back, error) = up(&env.lab, &options(FunctionPolicy::Lab)).await;
    assert!(error.is_none(), "{error:?}");
    let changed: Vec<_> = back.steps.iter().filter(|s| s.action != Action::Unchanged).collect();
    assert_eq!(changed.len(), 1, "{back}");
    assert_eq!(
        (changed[0].resource, changed[0].detail.as_deref()),
        ("function-role", Some("inline policy awsconfig_lambda_ec2_security_group_policy (lab)"))
    );
    assert_eq!(function_inline_policy(&env.lab).await, policy_file("lambda-lab-policy.json"));
    let status = deploy::status::status(&env.lab).await.unwrap();
    assert_eq!(status.function_policy.as_deref(), Some("lab"));

    // A document edited by hand is neither, and says so.
    env.lab
        .clients
        .iam
        .put_role_policy()
        .role_name(&env.lab.names.function_role)
        .policy_name(deploy::lab::FUNCTION_POLICY_NAME)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let status = deploy::status::status(&env.lab).await.unwrap();
    assert_eq!(status.function_policy.as_deref(), Some("other"));
    assert!(status.to_string().contains("function policy   other"), "{status}");
}

#[tokio::test]
async fn the_fast_paths_bucket_statements_and_permission_name_their_source() {
    let env = env().await;
    let options = UpOptions { zip: Some(env.zip("v1")), fast_path: true, ..UpOptions::default() };
    let (report, error) = up(&env.lab, &options).await;
    assert!(error.is_none(), "{error:?}\n{report}");
    let c = &env.lab.clients;
    let bucket_policy: Value = serde_json::from_str(
        c.s3.get_bucket_policy().bucket(&env.lab.names.bucket).send().await.unwrap().policy().unwrap(),
    )
    .unwrap();
    let trail = "arn:aws:cloudtrail:us-west-2:123456789012:trail/sg-monitoring-lab-trail";
    let statements = bucket_policy["Statement"].as_array().unwrap();
    for sid in ["AWSCloudTrailAclCheck", "AWSCloudTrailWrite"] {
        let statement = statements.iter().find(|s| s["Sid"] == sid).unwrap();
        assert_eq!(statement["Condition"]["StringEquals"]["aws:SourceArn"], trail, "{sid}");
        assert_eq!(statement["Condition"]["StringEquals"]["aws:SourceAccount"], ACCOUNT, "{sid}");
    }
    // The TLS-only statement stays.
    assert!(statements.iter().any(|s| s["Sid"] == "DenyInsecureTransport"));
    let permissions: Value = serde_json::from_str(
        c.lambda.get_policy().function_name(&env.lab.names.function).send().await.unwrap().policy().unwrap(),
    )
    .unwrap();
    let events = permissions["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "events-invoke").unwrap();
    assert_eq!(
        events["Condition"]["ArnLike"]["AWS:SourceArn"],
        "arn:aws:events:us-west-2:123456789012:rule/sg-monitoring-lab-fast-path"
    );
}
