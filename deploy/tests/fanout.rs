//! A classroom: `deploy` over three student accounts reached by AssumeRole, and over profiles,
//! on the local AWS (moto creates each resource in the assumed role's account).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::SdkConfig;
use clap::Parser;
use deploy::cli::Cli;
use localaws::LocalAws;
use serde_json::Value;

const STUDENTS: [(&str, &str); 3] = [("111111111111", "alice"), ("222222222222", "bob"), ("333333333333", "carol")];

struct Class {
    local: LocalAws,
    dir: PathBuf,
    zip: PathBuf,
    accounts: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

async fn class(name: &str) -> Class {
    let dir = std::env::temp_dir().join(format!("fanout-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.join("local"),
        behaviours: localaws::behaviours::Behaviours::aws_like(),
    };
    let local = localaws::start(options).await.unwrap();
    let zip = testkit::bootstrap_zip(&dir);
    // No profile of the developer's own leaks in.
    std::fs::write(dir.join("config"), "").unwrap();
    std::fs::write(dir.join("credentials"), "").unwrap();
    let accounts = dir.join("accounts.txt");
    let lines: Vec<String> = STUDENTS.iter().map(|(id, alias)| format!("{id} {alias}")).collect();
    std::fs::write(&accounts, format!("# the class\n{}\n", lines.join("\n"))).unwrap();
    Class { local, dir, zip, accounts }
}

impl Class {
    /// The real binary, with the local AWS's endpoint and test credentials.
    async fn deploy(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_deploy"))
            .current_dir(&self.dir)
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("credentials"))
            .args(args)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            // Without a region configured, --local uses us-west-2.
            .args(["--local", "--endpoint-url", &self.local.endpoint])
            .stdin(std::process::Stdio::null())
            .output();
        let output = tokio::time::timeout(Duration::from_secs(300), output).await.unwrap().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn accounts(&self) -> &str {
        self.accounts.to_str().unwrap()
    }

    /// The SDK configuration of a student's account, by the same AssumeRole the binary makes.
    async fn student(&self, account: &str) -> SdkConfig {
        let cli = Cli::parse_from([
            "deploy",
            "--local",
            "--endpoint-url",
            &self.local.endpoint,
            "--region",
            "us-west-2",
            "status",
        ]);
        deploy::connect::assumed_sdk_config(&cli.global, account, "OrganizationAccountAccessRole").await.unwrap()
    }
}

/// What of the lab exists in one account: roles, bucket, function, rule, recorder.
async fn lab_resources(sdk: &SdkConfig) -> Vec<String> {
    let mut found = Vec::new();
    let iam = aws_sdk_iam::Client::new(sdk);
    for role in iam.list_roles().send().await.unwrap().roles() {
        found.push(format!("role {}", role.role_name()));
    }
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build());
    for bucket in s3.list_buckets().send().await.unwrap().buckets() {
        found.push(format!("bucket {}", bucket.name().unwrap_or_default()));
    }
    let lambda = aws_sdk_lambda::Client::new(sdk);
    for function in lambda.list_functions().send().await.unwrap().functions() {
        found.push(format!("function {}", function.function_arn().unwrap_or_default()));
    }
    let config = aws_sdk_config::Client::new(sdk);
    // A rule Config is deleting (DELETING) goes on its own: not left behind.
    let rules = config.describe_config_rules().send().await.unwrap();
    for rule in rules.config_rules().iter().filter(|r| !deploy::rule::is_deleting(r)) {
        found.push(format!("rule {}", rule.config_rule_name().unwrap_or_default()));
    }
    for recorder in config.describe_configuration_recorders().send().await.unwrap().configuration_recorders() {
        found.push(format!("recorder {}", recorder.name().unwrap_or_default()));
    }
    found.sort();
    found
}

fn rows(run: &Run) -> Vec<(String, String, i64)> {
    run.json()["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"]["alias"].as_str().unwrap_or_default().to_owned(),
                t["outcome"].as_str().unwrap_or_default().to_owned(),
                t["exitCode"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_of_three_accounts_up_status_retry_and_down() {
    let class = class("accounts").await;
    // Carol's account already records with someone else's recorder: her `up` must stop.
    let carol = class.student("333333333333").await;
    let iam = aws_sdk_iam::Client::new(&carol);
    let role = iam.create_role().role_name("corporate-config").assume_role_policy_document("{}").send().await.unwrap();
    let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
        .name("corporate")
        .role_arn(role.role().map(|r| r.arn()).unwrap_or_default())
        .build();
    let config = aws_sdk_config::Client::new(&carol);
    config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();

    let zip = class.zip.to_str().unwrap();
    let up = class.deploy(&["up", "--accounts", class.accounts(), "--zip", zip, "--output", "json"]).await;
    assert_eq!(up.code, 3, "carol's conflict is the exit code\n{}\n{}", up.stdout, up.stderr);
    assert_eq!(
        rows(&up),
        [("alice".into(), "ok".into(), 0), ("bob".into(), "ok".into(), 0), ("carol".into(), "failed".into(), 3)]
    );
    let carol_row = &up.json()["targets"][2];
    assert!(carol_row["detail"].as_str().unwrap().contains("corporate"), "{carol_row}");
    assert_eq!(carol_row["account"], "333333333333");
    // Progress names each target.
    for alias in ["alice", "bob", "carol"] {
        assert!(up.stderr.contains(&format!("\n{alias}: running in account ")), "{alias}\n{}", up.stderr);
    }
    // Each lab lives in its own account, and carol's account is untouched.
    for (account, _) in &STUDENTS[..2] {
        let found = lab_resources(&class.student(account).await).await;
        let function = found.iter().find(|f| f.starts_with("function ")).unwrap_or_else(|| panic!("{found:?}"));
        assert!(function.contains(&format!(":{account}:function:")), "{function}");
        assert!(found.contains(&format!("bucket config-bucket-{account}")), "{found:?}");
    }
    assert_eq!(
        lab_resources(&carol).await,
        ["recorder corporate", "role corporate-config"],
        "nothing of the lab in carol's account"
    );

    let status = class.deploy(&["status", "--accounts", class.accounts()]).await;
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let table: Vec<&str> = status.stdout.lines().collect();
    assert!(table[0].starts_with("TARGET") && table.len() == 5, "{}", status.stdout);
    assert!(table[1].starts_with("alice") && table[1].contains("111111111111") && table[1].contains("rule ACTIVE"));
    assert!(table[3].starts_with("carol") && table[3].contains("no rule"), "{}", status.stdout);

    // The failed target alone, once the obstacle is gone.
    config.delete_configuration_recorder().configuration_recorder_name("corporate").send().await.unwrap();
    let last_run = class.dir.join("up.json");
    std::fs::write(&last_run, &up.stdout).unwrap();
    let retry =
        class.deploy(&["up", "--only-failed", last_run.to_str().unwrap(), "--zip", zip, "--output", "json"]).await;
    assert_eq!(retry.code, 0, "{}\n{}", retry.stdout, retry.stderr);
    assert_eq!(rows(&retry), [("carol".into(), "ok".into(), 0)]);

    // `down` asks once, naming every account; without a terminal it refuses and deletes nothing.
    let refused = class.deploy(&["down", "--accounts", class.accounts()]).await;
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    for (account, alias) in STUDENTS {
        assert!(
            refused.stderr.contains(&format!("{alias}: account {account}, region us-west-2")),
            "{}",
            refused.stderr
        );
    }
    assert!(lab_resources(&carol).await.iter().any(|r| r.starts_with("function ")));

    let down = class.deploy(&["down", "--accounts", class.accounts(), "--yes", "--output", "json"]).await;
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(rows(&down).iter().all(|(_, outcome, _)| outcome == "ok"));
    for (account, _) in STUDENTS {
        let left = lab_resources(&class.student(account).await).await;
        assert_eq!(
            left,
            ["role corporate-config"]
                .iter()
                .filter(|_| account == "333333333333")
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            "{account}"
        );
    }
}

fn write_profiles(dir: &Path, profiles: &[(&str, &str)]) {
    let mut config = String::new();
    let mut credentials = String::new();
    for (name, region) in profiles {
        config.push_str(&format!("[profile {name}]\nregion = {region}\n"));
        credentials.push_str(&format!("[{name}]\naws_access_key_id = local\naws_secret_access_key = local\n"));
    }
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(dir.join("credentials"), credentials).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_in_their_regions_and_a_bad_profile_fails_alone() {
    let class = class("profiles").await;
    write_profiles(&class.dir, &[("teacher", "us-west-2"), ("demo", "eu-west-1")]);
    let zip = class.zip.to_str().unwrap();
    let up =
        class.deploy(&["up", "--profiles", "teacher,nobody", "--regions", "eu-west-1,us-east-1", "--zip", zip]).await;
    assert_eq!(up.code, 2, "the unknown profile is a usage error\n{}\n{}", up.stdout, up.stderr);
    let table: Vec<&str> = up.stdout.lines().collect();
    assert_eq!(table.len(), 6, "{}", up.stdout);
    assert!(table[1].starts_with("teacher") && table[1].contains("eu-west-1") && table[1].contains(" ok "));
    assert!(table[2].starts_with("teacher") && table[2].contains("us-east-1") && table[2].contains(" ok "));
    assert!(table[3].starts_with("nobody") && table[3].contains("FAILED"), "{}", up.stdout);
    assert_eq!(table[5], "2 of 4 targets ok, 2 failed");
    assert!(
        up.stderr
            .contains("to run the failed targets again: deploy up --profiles nobody --regions eu-west-1,us-east-1"),
        "{}",
        up.stderr
    );

    // Two regions of one account: the first keeps the account-wide role for the second; each
    // region deletes its own bucket.
    let down = class
        .deploy(&["down", "--profiles", "teacher", "--regions", "eu-west-1,us-east-1", "--yes", "--output", "json"])
        .await;
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let json = down.json();
    let action = |target: usize, resource: &str| {
        json["targets"][target]["result"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["resource"] == resource)
            .map(|s| s["action"].as_str().unwrap().to_owned())
    };
    assert_eq!(action(0, "bucket").as_deref(), Some("delete"));
    assert_eq!(action(0, "function-role").as_deref(), Some("kept"));
    assert_eq!(action(0, "function").as_deref(), Some("delete"));
    assert_eq!(action(1, "bucket").as_deref(), Some("delete"));
    assert_eq!(action(1, "function-role").as_deref(), Some("delete"));
}
