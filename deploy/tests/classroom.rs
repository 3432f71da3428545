//! The classroom on the local AWS, student accounts reached by AssumeRole as in tests/fanout.rs:
//! `lab check` per step for a lab built by `up` and one built by hand in the console (plain SDK
//! calls, nothing tagged), the class table, JSON and HTML page (rendered in a real headless
//! Chromium), `lab reset` of the hand-made lab (dry run, refusal, the real thing, what it
//! keeps), and `lab prepare`'s bucket, which `down` and `lab reset` remove.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use clap::Parser;
use deploy::cli::Cli;
use deploy::lab::{Clients, Lab, NameOverrides, Names};
use localaws::LocalAws;
use serde_json::{json, Value};

const ALICE: &str = "111111111111";
const BOB: &str = "222222222222";
const CAROL: &str = "333333333333";
const REGION: &str = "us-west-2";
const STEPS: [&str; 9] =
    ["recorder", "delivery", "config-role", "function", "function-role", "permission", "rule", "exercise", "logs"];
const BASELINE: [&str; 2] = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];

struct Class {
    local: LocalAws,
    dir: PathBuf,
    zip: PathBuf,
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
    let dir = std::env::temp_dir().join(format!("classroom-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.join("local"),
        behaviours: localaws::behaviours::Behaviours::aws_like(),
    };
    let local = localaws::start(options).await.unwrap();
    let zip = testkit::bootstrap_zip(&dir);
    std::fs::write(dir.join("config"), "").unwrap();
    std::fs::write(dir.join("credentials"), "").unwrap();
    Class { local, dir, zip }
}

impl Class {
    /// An `--accounts` file of these students.
    fn accounts(&self, students: &[(&str, &str)]) -> String {
        let file = self.dir.join(format!("{}.txt", students.iter().map(|(_, a)| *a).collect::<Vec<_>>().join("-")));
        let lines: Vec<String> = students.iter().map(|(id, alias)| format!("{id} {alias}")).collect();
        std::fs::write(&file, lines.join("\n")).unwrap();
        file.display().to_string()
    }

    async fn deploy(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_deploy"))
            .current_dir(&self.dir)
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.join("credentials"))
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .args(args)
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

    async fn student(&self, account: &str) -> SdkConfig {
        let cli = Cli::parse_from([
            "deploy",
            "--local",
            "--endpoint-url",
            &self.local.endpoint,
            "--region",
            REGION,
            "status",
        ]);
        deploy::connect::assumed_sdk_config(&cli.global, account, "OrganizationAccountAccessRole").await.unwrap()
    }

    async fn lab(&self, account: &str) -> Lab {
        let sdk = self.student(account).await;
        Lab {
            account: account.to_owned(),
            region: REGION.to_owned(),
            partition: "aws".to_owned(),
            names: Names::new(account, REGION, &NameOverrides::default()),
            clients: Clients::new(&sdk),
            fast_path: false,
            function_policy: Default::default(),
        }
    }
}

/// Every resource of an account the lab could touch, by kind and name.
async fn resources(lab: &Lab) -> Vec<String> {
    let c = &lab.clients;
    let mut found = Vec::new();
    for role in c.iam.list_roles().send().await.unwrap().roles() {
        found.push(format!("role {}", role.role_name()));
    }
    for bucket in c.s3.list_buckets().send().await.unwrap().buckets() {
        found.push(format!("bucket {}", bucket.name().unwrap_or_default()));
    }
    for function in c.lambda.list_functions().send().await.unwrap().functions() {
        found.push(format!("function {}", function.function_name().unwrap_or_default()));
    }
    for rule in c.config.describe_config_rules().send().await.unwrap().config_rules() {
        let state = rule.config_rule_state().map(|s| s.as_str().to_owned()).unwrap_or_default();
        found.push(format!("rule {} {state}", rule.config_rule_name().unwrap_or_default()));
    }
    for recorder in c.config.describe_configuration_recorders().send().await.unwrap().configuration_recorders() {
        found.push(format!("recorder {}", recorder.name().unwrap_or_default()));
    }
    for channel in c.config.describe_delivery_channels().send().await.unwrap().delivery_channels() {
        found.push(format!("channel {}", channel.name().unwrap_or_default()));
    }
    let groups = c.logs.describe_log_groups().send().await.unwrap();
    for group in groups.log_groups() {
        found.push(format!("log group {}", group.log_group_name().unwrap_or_default()));
    }
    found.sort();
    found
}

/// The lab as a student clicks it through the console, with plain SDK calls and no tags: a
/// recorder for all resource types (the lab wants security groups only), a correct delivery
/// channel and Config role, a correct function, role and invoke permission, no rule. Plus an
/// app of the student's own (function and role) that has nothing to do with the lab.
async fn by_hand(lab: &Lab, zip: &Path) {
    let c = &lab.clients;
    let account = &lab.account;
    let config_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = c
        .iam
        .create_role()
        .role_name(&lab.names.config_role)
        .path("/service-role/")
        .assume_role_policy_document(config_trust.to_string())
        .send()
        .await
        .unwrap();
    let config_role_arn = role.role().unwrap().arn().to_owned();
    c.iam
        .attach_role_policy()
        .role_name(&lab.names.config_role)
        .policy_arn("arn:aws:iam::aws:policy/service-role/AWS_ConfigRole")
        .send()
        .await
        .unwrap();
    let bucket = &lab.names.bucket;
    c.s3.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The policy the Config console writes.
    let bucket_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSConfigBucketPermissionsCheck", "Effect": "Allow", "Principal": {"Service": ["config.amazonaws.com"]}, "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{bucket}")},
        {"Sid": "AWSConfigBucketExistenceCheck", "Effect": "Allow", "Principal": {"Service": ["config.amazonaws.com"]}, "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{bucket}")},
        {"Sid": "AWSConfigBucketDelivery", "Effect": "Allow", "Principal": {"Service": ["config.amazonaws.com"]}, "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/AWSLogs/{account}/Config/*"), "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]});
    c.s3.put_bucket_policy().bucket(bucket).policy(bucket_policy.to_string()).send().await.unwrap();
    let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
        .name("default")
        .role_arn(&config_role_arn)
        .recording_group(
            aws_sdk_config::types::RecordingGroup::builder()
                .all_supported(true)
                .include_global_resource_types(true)
                .build(),
        )
        .build();
    c.config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();
    let channel = aws_sdk_config::types::DeliveryChannel::builder().name("default").s3_bucket_name(bucket).build();
    c.config.put_delivery_channel().delivery_channel(channel).send().await.unwrap();
    c.config.start_configuration_recorder().configuration_recorder_name("default").send().await.unwrap();
    // What Config delivers (the bucket is emptied before it is deleted).
    let snapshot = format!("AWSLogs/{account}/Config/{REGION}/ConfigSnapshot.json.gz");
    c.s3.put_object().bucket(bucket).key(snapshot).body(b"{}".to_vec().into()).send().await.unwrap();

    let lambda_trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    // The lab's policy as a student pastes it: same grants, another order and layout.
    let lab_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:RevokeSecurityGroupIngress", "config:PutEvaluations", "ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "arn:aws:logs:*:*:*"}]});
    let bytes = std::fs::read(zip).unwrap();
    for (role_name, policy, function, runtime, handler) in [
        (lab.names.function_role.as_str(), &lab_policy, lab.names.function.as_str(), "provided.al2023", "bootstrap"),
        (
            "students-own-app-role",
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
            "students-own-app",
            "python3.12",
            "app.handler",
        ),
    ] {
        let role = c
            .iam
            .create_role()
            .role_name(role_name)
            .path("/service-role/")
            .assume_role_policy_document(lambda_trust.to_string())
            .send()
            .await
            .unwrap();
        c.iam
            .put_role_policy()
            .role_name(role_name)
            .policy_name("typed-in-the-console")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
        c.lambda
            .create_function()
            .function_name(function)
            .runtime(aws_sdk_lambda::types::Runtime::from(runtime))
            .handler(handler)
            .role(role.role().unwrap().arn())
            .memory_size(128)
            .timeout(60)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(bytes.clone()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    // The console's test invocation leaves the function's log group (without a revert in it).
    c.logs.create_log_group().log_group_name(lab.log_group()).send().await.unwrap();
    c.lambda
        .add_permission()
        .function_name(&lab.names.function)
        .statement_id("console-config-invoke")
        .action("lambda:InvokeFunction")
        .principal("config.amazonaws.com")
        .source_account(account)
        .send()
        .await
        .unwrap();
}

/// Someone else's Config setup on the lab's names: a recorder `default` recording other types
/// for a corporate role, and a rule `EC2_Security_Group` whose source is another function.
async fn foreign(lab: &Lab) {
    let c = &lab.clients;
    let role = c
        .iam
        .create_role()
        .role_name("corporate-config")
        .assume_role_policy_document(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string())
        .send()
        .await
        .unwrap();
    let recorder = aws_sdk_config::types::ConfigurationRecorder::builder()
        .name("default")
        .role_arn(role.role().unwrap().arn())
        .recording_group(
            aws_sdk_config::types::RecordingGroup::builder()
                .all_supported(false)
                .resource_types(aws_sdk_config::types::ResourceType::from("AWS::EC2::Instance"))
                .build(),
        )
        .build();
    c.config.put_configuration_recorder().configuration_recorder(recorder).send().await.unwrap();
    let rule = aws_sdk_config::types::ConfigRule::builder()
        .config_rule_name(&lab.names.rule)
        .source(
            aws_sdk_config::types::Source::builder()
                .owner(aws_sdk_config::types::Owner::Aws)
                .source_identifier("INCOMING_SSH_DISABLED")
                .build()
                .unwrap(),
        )
        .build();
    c.config.put_config_rule().config_rule(rule).send().await.unwrap();
}

async fn inbound(lab: &Lab) -> Vec<String> {
    deploy::status::status(lab).await.unwrap().default_group.map(|g| g.inbound).unwrap_or_default()
}

/// Per student alias: each step's status.
fn statuses(run: &Run) -> Vec<(String, Vec<(String, String)>)> {
    run.json()["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let steps = t["result"]["steps"].as_array().cloned().unwrap_or_default();
            (
                t["target"]["alias"].as_str().unwrap_or_default().to_owned(),
                steps
                    .iter()
                    .map(|s| (s["id"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
                    .collect(),
            )
        })
        .collect()
}

fn not_done(steps: &[(String, String)]) -> BTreeSet<&str> {
    steps.iter().filter(|(_, s)| s != "done").map(|(id, _)| id.as_str()).collect()
}

/// The browser, installed by scripts/chromium when missing; `None` (with the reason) when it
/// cannot be installed.
fn chromium() -> Result<PathBuf, String> {
    let browser = PathBuf::from("/usr/bin/chromium");
    if browser.is_file() {
        return Ok(browser);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/chromium");
    let output = std::process::Command::new(&script).output().map_err(|e| format!("{}: {e}", script.display()))?;
    if !output.status.success() || !browser.is_file() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    Ok(browser)
}

/// Loads the page in headless Chromium (its own profile in a new temp dir); returns the
/// rendered DOM and the browser's log.
fn render(browser: &Path, page: &Path, scratch: &Path) -> (String, String) {
    let profile = scratch.join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let command = || {
        let mut command = std::process::Command::new(browser);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ]);
        command.arg(format!("--user-data-dir={}", profile.display()));
        command
    };
    let screenshot = scratch.join("check.png");
    let dom = command().arg("--dump-dom").arg(format!("file://{}", page.display())).output().unwrap();
    assert!(dom.status.success(), "chromium failed: {}", String::from_utf8_lossy(&dom.stderr));
    let shot = command()
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1600,900")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.status.success() && screenshot.is_file(), "{}", String::from_utf8_lossy(&shot.stderr));
    (String::from_utf8_lossy(&dom.stdout).into_owned(), String::from_utf8_lossy(&dom.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_checked_step_by_step_then_the_hand_made_lab_reset() {
    let class = class("check").await;
    let (alice, bob, carol) = tokio::join!(class.lab(ALICE), class.lab(BOB), class.lab(CAROL));
    let zip = class.zip.to_str().unwrap();
    let everyone = class.accounts(&[(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")]);
    let alice_only = class.accounts(&[(ALICE, "alice")]);
    let bob_only = class.accounts(&[(BOB, "bob")]);
    let carol_only = class.accounts(&[(CAROL, "carol")]);

    // Alice: `up`, `lab open-ports`, and the rule's revert.
    let up = class.deploy(&["up", "--accounts", &alice_only, "--zip", zip]).await;
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let opened = class.deploy(&["lab", "open-ports", "--accounts", &alice_only]).await;
    assert_eq!(opened.code, 0, "{}\n{}", opened.stdout, opened.stderr);
    let started = Instant::now();
    while inbound(&alice).await != BASELINE && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(inbound(&alice).await, BASELINE, "alice's group was not reverted");
    assert!(class.local.settle(Duration::from_secs(30)).await);
    // Bob: by hand. Carol: someone else's Config setup on the lab's names.
    by_hand(&bob, &class.zip).await;
    foreign(&carol).await;

    let html = class.dir.join("class.html");
    let html_arg = html.display().to_string();
    let check = class.deploy(&["lab", "check", "--accounts", &everyone, "--output", "json", "--html", &html_arg]).await;
    assert_eq!(check.code, 1, "not every student is done\n{}\n{}", check.stdout, check.stderr);
    let rows = statuses(&check);
    assert_eq!(rows.iter().map(|(alias, _)| alias.as_str()).collect::<Vec<_>>(), ["alice", "bob", "carol"]);
    for (alias, steps) in &rows {
        assert_eq!(steps.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), STEPS, "{alias}");
    }
    assert!(not_done(&rows[0].1).is_empty(), "alice: {:?}\n{}", rows[0].1, check.stdout);
    assert_eq!(
        not_done(&rows[1].1),
        BTreeSet::from(["recorder", "rule", "exercise", "logs"]),
        "bob: {:?}\n{}",
        rows[1].1,
        check.stdout
    );
    assert!(rows[1].1.contains(&("function".into(), "done".into())));
    let json = check.json();
    let bob_hint = |id: &str| {
        json["targets"][1]["result"]["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["hint"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(bob_hint("recorder").contains("records all resource types; the lab records only AWS::EC2::SecurityGroup"));
    assert!(bob_hint("rule").contains("no Config rule EC2_Security_Group"), "{}", bob_hint("rule"));
    assert!(json["targets"][1]["result"]["checkedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let carol_recorder = &rows[2].1[0];
    assert_eq!(carol_recorder, &("recorder".to_owned(), "missing".to_owned()));

    // The class table: a row per student, a column per step.
    let table = class.deploy(&["lab", "check", "--accounts", &everyone]).await;
    assert_eq!(table.code, 1, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[..3], ["TARGET", "ACCOUNT", "REGION"]);
    assert_eq!(header[3..], STEPS, "{}", table.stdout);
    let alice_row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(alice_row[..3], ["alice", ALICE, REGION]);
    assert!(alice_row[3..].iter().all(|s| *s == "done"), "{}", table.stdout);
    let bob_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(bob_row[3..], ["missing", "done", "done", "done", "done", "done", "missing", "missing", "missing"]);
    assert!(table.stdout.contains("1 of 3 students done with every step"), "{}", table.stdout);

    // The page, in a real browser: every student and step, the script ran (no JS error stops it).
    let page = std::fs::read_to_string(&html).unwrap();
    for external in ["<script src", "<link", "@import", "url("] {
        assert!(!page.contains(external), "the page must be self-contained: {external}");
    }
    let scratch = tempdir("chromium");
    match chromium() {
        Err(why) => eprintln!("SKIPPED the browser check: chromium cannot be installed ({why})"),
        Ok(browser) => {
            let (dom, log) = render(&browser, &html, &scratch);
            assert!(dom.contains(r#"data-cells="27""#) && dom.contains("rendered 27 cells"), "{dom}");
            for who in ["alice", "bob", "carol", ALICE, BOB, CAROL] {
                assert!(dom.contains(&format!(">{who}<")), "{who} missing from the rendered page");
            }
            for step in STEPS {
                assert!(dom.contains(&format!(">{step}</th>")), "step {step} missing from the rendered page");
            }
            assert!(dom.contains("records all resource types"), "hints in text");
            assert!(dom.contains("Checked at <time"), "time of the check");
            let errors: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("SyntaxError"))
                .collect();
            assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);

    // What cannot be read is `unknown`, with why; the other steps are still checked.
    let spec = json!({"operations": ["config:DescribeDeliveryChannels"], "kind": "5xx"});
    class.local.set_faults(Some(serde_json::from_value(spec).unwrap()));
    let faulted = class.deploy(&["lab", "check", "--accounts", &alice_only, "--output", "json"]).await;
    class.local.set_faults(None);
    assert_eq!(faulted.code, 1, "{}", faulted.stderr);
    let steps = faulted.json()["targets"][0]["result"]["steps"].clone();
    for step in steps.as_array().unwrap() {
        let expected = if step["id"] == "delivery" { "unknown" } else { "done" };
        assert_eq!(step["status"], expected, "{step}");
    }
    assert!(
        steps[1]["hint"].as_str().unwrap().starts_with("could not check: reading the delivery channels"),
        "{steps:#}"
    );

    // `lab prepare` in bob's account: the zip where the console can use it.
    let prepare = class.deploy(&["lab", "prepare", "--accounts", &bob_only, "--zip", zip, "--output", "json"]).await;
    assert_eq!(prepare.code, 0, "{}\n{}", prepare.stdout, prepare.stderr);
    let prepared = &prepare.json()["targets"][0]["result"];
    let artifact_bucket = format!("sg-lab-artifacts-{BOB}-{REGION}");
    assert_eq!(prepared["bucket"], artifact_bucket.as_str());
    assert_eq!(prepared["runtime"], "provided.al2023");
    assert_eq!(prepared["handler"], "bootstrap");
    assert_eq!(prepared["rolePolicy"]["Statement"][1]["Action"][0], "config:PutEvaluations");
    let object =
        bob.clients.s3.get_object().bucket(&artifact_bucket).key(prepared["key"].as_str().unwrap()).send().await;
    let uploaded = object.unwrap().body.collect().await.unwrap().into_bytes();
    assert_eq!(uploaded.as_ref(), std::fs::read(&class.zip).unwrap(), "the uploaded zip is the function's");
    let table = class.deploy(&["lab", "prepare", "--accounts", &bob_only, "--zip", zip]).await;
    assert!(table.stdout.contains(&format!("uploaded s3://{artifact_bucket}/")), "{}", table.stdout);

    // `lab reset` of bob's account: a dry run, then a refusal without a terminal, change nothing.
    let before = resources(&bob).await;
    let calls = class.local.calls();
    let dry = class.deploy(&["lab", "reset", "--accounts", &bob_only, "--dry-run", "--output", "json"]).await;
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    let refused = class.deploy(&["lab", "reset", "--accounts", &bob_only]).await;
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("stdin is not a terminal"), "{}", refused.stderr);
    // The plan came first: each resource and why it counts as the lab's.
    assert!(
        refused.stderr.contains("function          awsconfig_lambda_security_group          delete  the lab's name, runtime provided.al2023"),
        "{}",
        refused.stderr
    );
    assert_eq!(resources(&bob).await, before, "a dry run and a refusal change nothing");
    let changed: Vec<String> = class
        .local
        .calls()
        .into_iter()
        .filter(|(op, n)| is_mutating(op) && *n > calls.get(op).copied().unwrap_or(0))
        .map(|(op, _)| op)
        .collect();
    assert!(changed.is_empty(), "mutating calls in a dry run: {changed:?}");
    let plan = &dry.json()["targets"][0]["result"]["steps"];
    let action = |steps: &Value, resource: &str| -> Vec<(String, String, String)> {
        steps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["resource"] == resource)
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["action"].as_str().unwrap().to_owned(),
                    s["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    for resource in [
        "function",
        "invoke-permission",
        "log-group",
        "function-role",
        "recorder",
        "delivery-channel",
        "config-role",
        "bucket",
        "artifact-bucket",
    ] {
        let found = action(plan, resource);
        assert!(
            found.len() == 1 && found[0].1 == "delete" && !found[0].2.is_empty(),
            "{resource}: {found:?}\n{plan:#}"
        );
    }
    assert!(action(plan, "recorder")[0].2.contains("uses the lab's Config role"));

    let reset = class.deploy(&["lab", "reset", "--accounts", &bob_only, "--yes", "--output", "json"]).await;
    assert_eq!(reset.code, 0, "{}\n{}", reset.stdout, reset.stderr);
    assert_eq!(
        resources(&bob).await,
        ["function students-own-app", "role students-own-app-role"],
        "the student's own app stays; everything of the lab is gone"
    );
    let after = class.deploy(&["lab", "check", "--accounts", &bob_only, "--output", "json"]).await;
    assert_eq!(after.code, 1, "{}", after.stderr);
    let after = statuses(&after);
    assert!(after[0].1.iter().all(|(_, status)| status == "missing"), "{:?}", after[0].1);

    // Carol's recorder and rule have the lab's names but not its shape: reported and kept.
    let before = resources(&carol).await;
    let kept = class.deploy(&["lab", "reset", "--accounts", &carol_only, "--yes", "--output", "json"]).await;
    assert_eq!(kept.code, 0, "{}\n{}", kept.stdout, kept.stderr);
    let steps = &kept.json()["targets"][0]["result"]["steps"];
    let recorder = action(steps, "recorder");
    assert_eq!(recorder[0].1, "kept", "{steps:#}");
    assert!(recorder[0].2.contains("corporate-config"), "{recorder:?}");
    let rule = action(steps, "rule");
    assert_eq!(rule[0].1, "kept", "{steps:#}");
    assert!(rule[0].2.contains("INCOMING_SSH_DISABLED"), "{rule:?}");
    assert_eq!(resources(&carol).await, before);

    // Alice's lab came from `up`: `down` removes it, with the bucket of `lab prepare`.
    let prepare = class.deploy(&["lab", "prepare", "--accounts", &alice_only, "--zip", zip]).await;
    assert_eq!(prepare.code, 0, "{}\n{}", prepare.stdout, prepare.stderr);
    let down = class.deploy(&["down", "--accounts", &alice_only, "--yes", "--output", "json"]).await;
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let steps = &down.json()["targets"][0]["result"]["steps"];
    assert_eq!(action(steps, "artifact-bucket")[0].1, "delete", "{steps:#}");
    let left = resources(&alice).await;
    assert!(left.iter().all(|r| !r.starts_with("bucket ")), "{left:?}");

    // One target (the caller's own, empty account): the check as text and a one-row page;
    // prepare says what to enter; reset names what it would delete before refusing.
    let page = class.dir.join("one.html");
    let one = class.deploy(&["lab", "check", "--region", REGION, "--html", page.to_str().unwrap()]).await;
    assert_eq!(one.code, 1, "{}\n{}", one.stdout, one.stderr);
    assert!(one.stdout.starts_with("lab check in account 123456789012, region us-west-2, at "), "{}", one.stdout);
    assert!(one.stdout.contains("0 of 9 steps done"), "{}", one.stdout);
    assert!(one.stderr.contains("error: not every step of the lab is done: recorder, delivery"), "{}", one.stderr);
    assert_eq!(std::fs::read_to_string(&page).unwrap().matches("data-step=").count(), 9);
    let prepare = class.deploy(&["lab", "prepare", "--region", REGION, "--zip", zip]).await;
    assert_eq!(prepare.code, 0, "{}\n{}", prepare.stdout, prepare.stderr);
    for line in [
        "Upload from Amazon S3 location: https://sg-lab-artifacts-123456789012-us-west-2.s3.us-west-2.amazonaws.com/awsconfig_lambda_security_group/bootstrap.zip",
        "Runtime         Amazon Linux 2023 (provided.al2023)",
        "Handler         bootstrap",
        "Execution role  awsconfig_lambda_ec2_security_group_role",
        "\"config:PutEvaluations\"",
    ] {
        assert!(prepare.stdout.contains(line), "{line}\n{}", prepare.stdout);
    }
    let refused = class.deploy(&["lab", "reset", "--region", REGION]).await;
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.lines().any(|l| l.starts_with("  artifact-bucket")
            && l.contains("sg-lab-artifacts-123456789012-us-west-2")
            && l.contains("delete")
            && l.contains("made by `lab prepare`")),
        "{}",
        refused.stderr
    );
    let reset = class.deploy(&["lab", "reset", "--region", REGION, "--yes"]).await;
    assert_eq!(reset.code, 0, "{}\n{}", reset.stdout, reset.stderr);
    assert!(reset.stdout.contains("deleted"), "{}", reset.stdout);
    let teacher = class.deploy(&["lab", "prepare", "--region", REGION, "--zip", zip, "--output", "json"]).await;
    assert_eq!(teacher.code, 0, "a reset bucket name can be prepared again: {}", teacher.stderr);
}

fn is_mutating(operation: &str) -> bool {
    let op = operation.split(':').nth(1).unwrap_or(operation);
    ["Create", "Put", "Delete", "Attach", "Detach", "Add", "Remove", "Start", "Stop", "Update", "Tag", "Untag"]
        .iter()
        .any(|verb| op.starts_with(verb))
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("classroom-{name}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
