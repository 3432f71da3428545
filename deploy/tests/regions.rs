//! Buckets as S3 has them (issue 13, items 1, 3, 4, 6), with the real binary against the local
//! AWS reproducing them (`localaws::s3`): a bucket lives in one region (301 elsewhere), a
//! deleted bucket's name is held for a while, and a late delivery lands after a bucket was
//! emptied. The lab in two regions of one account, with and without the fast path; `up` right
//! after `down`; `down` under a late delivery; `--use-existing-recorder --fast-path`.

mod common;

use std::process::Command;

use clap::Parser;
use common::{Local, Run};
use deploy::cli::Cli;
use deploy::lab::Lab;
use localaws::behaviours::Behaviours;
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
const WEST: &str = "us-west-2";
const EU: &str = "eu-west-1";

/// `deploy ARGS… --local --endpoint-url <local> --yes`, the region(s) given by ARGS.
fn deploy(env: &Local, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_deploy"))
        .current_dir(&env.dir)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("SG_LAB_FAULTS")
        .env_remove("DEPLOY_LOG")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(args)
        .args(["--local", "--endpoint-url", &env.local.endpoint, "--yes"])
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what} exited {}:\n{}\n{}", run.code, run.stdout, run.stderr);
}

/// The lab of `region`, with `bucket` as its bucket (for the leftovers reader).
fn lab_in(env: &Local, region: &str, bucket: &str) -> Lab {
    let cli =
        Cli::parse_from(["deploy", "--local", "--region", region, "--endpoint-url", &env.local.endpoint, "status"]);
    let mut lab = env.block_on(deploy::connect::connect(&cli.global)).unwrap();
    lab.names.bucket = bucket.to_owned();
    lab
}

fn west_bucket() -> String {
    format!("config-bucket-{ACCOUNT}")
}

fn eu_bucket() -> String {
    format!("config-bucket-{ACCOUNT}-{EU}")
}

/// The bucket the region's delivery channel writes to.
fn channel_bucket(env: &Local, lab: &Lab) -> Option<String> {
    let channels = env.block_on(lab.clients.config.describe_delivery_channels().send()).unwrap();
    channels.delivery_channels().first().and_then(|c| c.s3_bucket_name()).map(str::to_owned)
}

/// The bucket the region's lab trail writes to, and the trail's ARN.
fn trail(env: &Local, lab: &Lab) -> Option<(String, String)> {
    let trails =
        env.block_on(lab.clients.cloudtrail.describe_trails().trail_name_list(deploy::lab::TRAIL_NAME).send()).unwrap();
    let trail = trails.trail_list().iter().find(|t| t.name() == Some(deploy::lab::TRAIL_NAME))?;
    Some((trail.s3_bucket_name()?.to_owned(), trail.trail_arn()?.to_owned()))
}

/// Whether the policy of `bucket` (read in `lab`'s region, where it lives) lets CloudTrail
/// write for the trail `arn`.
fn grants(env: &Local, lab: &Lab, bucket: &str, arn: &str) -> bool {
    let policy = env.block_on(lab.clients.s3.get_bucket_policy().bucket(bucket).send()).unwrap();
    let policy = policy.policy().and_then(deploy::lab::parse_policy).unwrap();
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        s["Sid"] == "AWSCloudTrailWrite"
            && s["Effect"] == "Allow"
            && s["Condition"]["StringEquals"]["aws:SourceArn"] == arn
            && s["Resource"].as_str().is_some_and(|r| r.contains(bucket))
    })
}

fn bucket_names(env: &Local) -> Vec<String> {
    let lab = &env.lab;
    let buckets = env.block_on(lab.clients.s3.list_buckets().send()).unwrap();
    buckets.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect()
}

fn step_action(report: &Value, resource: &str) -> Option<String> {
    report["steps"].as_array()?.iter().find(|s| s["resource"] == resource)?["action"].as_str().map(str::to_owned)
}

#[test]
fn two_regions_of_one_account_up_status_down_down() {
    let env = Local::with_stub("regions");
    let zip = env.zip.display().to_string();
    let both = format!("{WEST},{EU}");
    let up = deploy(&env, &["up", "--regions", &both, "--zip", &zip]);
    ok(&up, "up in two regions");
    assert!(!up.stderr.contains("ServiceError"), "no debug dump:\n{}", up.stderr);

    // Each region's channel writes to a bucket of its own region.
    let (west, eu) = (lab_in(&env, WEST, &west_bucket()), lab_in(&env, EU, &eu_bucket()));
    assert_eq!(channel_bucket(&env, &west), Some(west_bucket()));
    assert_eq!(channel_bucket(&env, &eu), Some(eu_bucket()));
    assert!(env.block_on(west.clients.s3.head_bucket().bucket(west_bucket()).send()).is_ok());
    assert!(env.block_on(eu.clients.s3.head_bucket().bucket(eu_bucket()).send()).is_ok());

    let status = deploy(&env, &["status", "--regions", &both]);
    ok(&status, "status in two regions");
    assert_eq!(status.stdout.matches(", rule ACTIVE").count(), 2, "{}", status.stdout);

    // `up` again, in the other order: the same buckets, unchanged.
    let again = deploy(&env, &["up", "--regions", &format!("{EU},{WEST}"), "--zip", &zip, "--output", "json"]);
    ok(&again, "up again");
    let run: Value = serde_json::from_str(&again.stdout).unwrap();
    for target in run["targets"].as_array().unwrap() {
        assert_eq!(step_action(&target["result"], "bucket").as_deref(), Some("unchanged"), "{target}");
    }
    let mut buckets = bucket_names(&env);
    buckets.sort();
    assert_eq!(buckets, [west_bucket(), eu_bucket()]);

    // `down` of one region leaves the other's bucket, which its channel still writes to.
    ok(&deploy(&env, &["down", "--region", WEST]), "down in us-west-2");
    assert_eq!(env.block_on(common::leftovers(&west)), Vec::<String>::new());
    assert_eq!(channel_bucket(&env, &eu), Some(eu_bucket()));
    assert!(env.block_on(eu.clients.s3.head_bucket().bucket(eu_bucket()).send()).is_ok());
    // `up` there again finds the other region's bucket where it was.
    ok(&deploy(&env, &["up", "--region", WEST, "--zip", &zip]), "up in us-west-2 again");
    assert_eq!(channel_bucket(&env, &west), Some(west_bucket()));
    assert_eq!(channel_bucket(&env, &eu), Some(eu_bucket()));

    ok(&deploy(&env, &["down", "--regions", &both]), "down in two regions");
    ok(&deploy(&env, &["down", "--regions", &both]), "down again");
    assert_eq!(env.block_on(common::leftovers(&west)), Vec::<String>::new());
    assert_eq!(env.block_on(common::leftovers(&eu)), Vec::<String>::new());
    assert_eq!(bucket_names(&env), Vec::<String>::new());
}

#[test]
fn with_the_fast_path_each_trail_stays_granted_by_its_bucket() {
    let env = Local::with_stub("regions-fast");
    let zip = env.zip.display().to_string();
    let (west, eu) = (lab_in(&env, WEST, &west_bucket()), lab_in(&env, EU, &eu_bucket()));
    let check = |when: &str| {
        for (lab, bucket) in [(&west, west_bucket()), (&eu, eu_bucket())] {
            let (trail_bucket, arn) = trail(&env, lab).unwrap_or_else(|| panic!("{when}: no trail in {}", lab.region));
            assert_eq!(trail_bucket, bucket, "{when}: the trail of {} writes to its region's bucket", lab.region);
            assert!(arn.contains(&format!(":{}:", lab.region)), "{arn}");
            assert!(grants(&env, lab, &bucket, &arn), "{when}: bucket {bucket} does not grant trail {arn}");
        }
    };
    ok(&deploy(&env, &["up", "--region", WEST, "--fast-path", "--zip", &zip]), "up in us-west-2");
    ok(&deploy(&env, &["up", "--region", EU, "--fast-path", "--zip", &zip]), "up in eu-west-1 after");
    check("after up in eu-west-1 following us-west-2");
    let both = format!("{EU},{WEST}");
    ok(&deploy(&env, &["up", "--regions", &both, "--fast-path", "--zip", &zip]), "up in both, us-west-2 last");
    check("after up in us-west-2 following eu-west-1");

    ok(&deploy(&env, &["down", "--regions", &both]), "down in two regions");
    ok(&deploy(&env, &["down", "--regions", &both]), "down again");
    assert!(trail(&env, &west).is_none() && trail(&env, &eu).is_none());
    assert_eq!(env.block_on(common::leftovers(&west)), Vec::<String>::new());
    assert_eq!(env.block_on(common::leftovers(&eu)), Vec::<String>::new());
    assert_eq!(bucket_names(&env), Vec::<String>::new());
}

#[test]
fn a_bucket_of_another_region_is_refused_naming_its_region() {
    let env = Local::with_stub("regions-elsewhere");
    let eu = lab_in(&env, EU, "someone-elses-logs");
    let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    env.block_on(
        eu.clients.s3.create_bucket().bucket("someone-elses-logs").create_bucket_configuration(location).send(),
    )
    .unwrap();
    let zip = env.zip.display().to_string();
    let up = deploy(&env, &["up", "--region", WEST, "--bucket-name", "someone-elses-logs", "--zip", &zip]);
    assert_eq!(up.code, 3, "{}", up.stderr);
    assert!(
        up.stderr.contains("bucket someone-elses-logs exists and is in eu-west-1, not us-west-2")
            && up.stderr.contains("--bucket-name"),
        "{}",
        up.stderr
    );
    assert!(!up.stderr.contains("ServiceError"), "{}", up.stderr);
    let down = deploy(&env, &["down", "--region", WEST, "--bucket-name", "someone-elses-logs", "--output", "json"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let report: Value = serde_json::from_str(&down.stdout).unwrap();
    assert_eq!(step_action(&report, "bucket").as_deref(), Some("kept"));
    assert_eq!(bucket_names(&env), ["someone-elses-logs"]);
}

#[test]
fn up_right_after_down_waits_while_s3_holds_the_name() {
    let env = Local::with_stub("regions-hold");
    // Longer than `deploy` takes from DeleteBucket to CreateBucket on a loaded machine.
    env.local.set_behaviours(Behaviours { bucket_name_hold_ms: 4_000, ..Behaviours::aws_like() });
    let zip = env.zip.display().to_string();
    ok(&deploy(&env, &["up", "--region", WEST, "--zip", &zip]), "up");
    ok(&deploy(&env, &["down", "--region", WEST]), "down");
    let up = deploy(&env, &["up", "--region", WEST, "--zip", &zip]);
    ok(&up, "up right after down");
    assert!(
        up.stderr.contains(&format!(
            "waiting for S3 to release the name of bucket {}, still held after a deletion (409 OperationAborted)",
            west_bucket()
        )),
        "{}",
        up.stderr
    );
    assert_eq!(channel_bucket(&env, &env.lab), Some(west_bucket()));
    ok(&deploy(&env, &["down", "--region", WEST]), "down");
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

#[test]
fn down_empties_the_bucket_again_after_a_late_delivery() {
    let env = Local::with_stub("regions-late");
    // Wide enough that the DeleteBucket right after emptying always falls in it.
    env.local.set_behaviours(Behaviours { late_delivery_ms: 5_000, ..Behaviours::aws_like() });
    let zip = env.zip.display().to_string();
    ok(&deploy(&env, &["up", "--region", WEST, "--fast-path", "--zip", &zip]), "up");
    // Config's and CloudTrail's deliveries so far.
    let s3 = &env.lab.clients.s3;
    for key in ["AWSLogs/123456789012/Config/history.json.gz", "cloudtrail/AWSLogs/123456789012/CloudTrail/x.json.gz"] {
        let body = aws_sdk_s3::primitives::ByteStream::from_static(b"{}");
        env.block_on(s3.put_object().bucket(west_bucket()).key(key).body(body).send()).unwrap();
    }
    let down = deploy(&env, &["down", "--region", WEST, "--output", "json"]);
    ok(&down, "down under a late delivery");
    assert!(
        down.stderr.contains(&format!("waiting for bucket {} to stay empty: a late delivery", west_bucket())),
        "{}",
        down.stderr
    );
    let report: Value = serde_json::from_str(&down.stdout).unwrap();
    let bucket = report["steps"].as_array().unwrap().iter().find(|s| s["resource"] == "bucket").unwrap();
    assert_eq!(bucket["action"], "delete");
    assert_eq!(
        bucket["detail"], "4 object versions removed",
        "the record of the groups, the two deliveries and the late one"
    );
    assert_eq!(env.leftovers(), Vec::<String>::new());
    assert_eq!(bucket_names(&env), Vec::<String>::new());
}

#[test]
fn an_existing_recorder_with_the_fast_path_gets_the_labs_bucket_for_the_trail() {
    let env = Local::with_stub("regions-existing");
    let lab = &env.lab;
    let c = &lab.clients;
    // Someone else's recorder and channel, delivering to their own bucket.
    env.block_on(async {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"config.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let role = c.iam.create_role().role_name("corporate-config").assume_role_policy_document(trust).send().await.unwrap();
        let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
            .name("corporate")
            .role_arn(role.role().unwrap().arn())
            .recording_group(
                aws_sdk_config::types::RecordingGroup::builder()
                    .resource_types(aws_sdk_config::types::ResourceType::from("AWS::EC2::SecurityGroup"))
                    .build(),
            )
            .build();
        c.config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
            .build();
        c.s3.create_bucket().bucket("corporate-config-logs").create_bucket_configuration(location).send().await.unwrap();
        let channel =
            aws_sdk_config::types::DeliveryChannel::builder().name("corporate").s3_bucket_name("corporate-config-logs").build();
        c.config.put_delivery_channel().delivery_channel(channel).send().await.unwrap();
    });
    let zip = env.zip.display().to_string();
    let up = deploy(&env, &["up", "--region", WEST, "--use-existing-recorder", "--fast-path", "--zip", &zip]);
    ok(&up, "up --use-existing-recorder --fast-path");
    let (bucket, arn) = trail(&env, lab).expect("the fast path's trail");
    assert_eq!(bucket, west_bucket(), "the trail writes to the lab's bucket, not the recorder's");
    assert!(grants(&env, lab, &bucket, &arn), "the lab's bucket grants the trail");
    let tags = env.block_on(c.s3.get_bucket_tagging().bucket(&bucket).send()).unwrap();
    assert!(tags.tag_set().iter().any(|t| t.key() == "managed-by" && t.value() == "sg-monitoring-lab"));
    assert_eq!(channel_bucket(&env, lab).as_deref(), Some("corporate-config-logs"), "the channel is untouched");

    ok(&deploy(&env, &["down", "--region", WEST]), "down");
    assert!(trail(&env, lab).is_none());
    assert_eq!(bucket_names(&env), ["corporate-config-logs"], "the lab's bucket is gone, theirs kept");
    assert_eq!(channel_bucket(&env, lab).as_deref(), Some("corporate-config-logs"));
    let recorders = env.block_on(c.config.describe_configuration_recorders().send()).unwrap();
    assert_eq!(recorders.configuration_recorders().len(), 1);
}
