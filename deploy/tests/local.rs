//! The lab on the local AWS (moto behind the `localaws` front), end to end: the real function
//! binary runs behind the Runtime API and Config evaluates the rule on every group change.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use clap::Parser;
use deploy::cli::Cli;
use deploy::lab::Lab;
use deploy::up::{down, up, UpOptions};
use localaws::LocalAws;
use serde_json::{json, Value};

struct Env {
    local: LocalAws,
    lab: Lab,
    zip: PathBuf,
}

async fn env(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("local-aws-test-{name}-{}", std::process::id()));
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.clone(),
        behaviours: localaws::behaviours::Behaviours::aws_like(),
    };
    let local = localaws::start(options).await.unwrap();
    let cli =
        Cli::parse_from(["deploy", "--local", "--region", "us-west-2", "--endpoint-url", &local.endpoint, "status"]);
    let lab = deploy::connect::connect(&cli.global).await.unwrap();
    let zip = testkit::bootstrap_zip(&dir);
    Env { local, lab, zip }
}

impl Env {
    async fn up(&self) {
        let (report, error) = up(&self.lab, &UpOptions { zip: Some(self.zip.clone()), ..UpOptions::default() }).await;
        assert!(error.is_none(), "{error:?}\n{report}");
        assert!(self.local.settle(Duration::from_secs(30)).await);
    }

    async fn inbound(&self) -> Vec<String> {
        deploy::status::status(&self.lab).await.unwrap().default_group.unwrap().inbound
    }

    async fn rule_status(&self) -> aws_sdk_config::types::ConfigRuleEvaluationStatus {
        let out = self
            .lab
            .clients
            .config
            .describe_config_rule_evaluation_status()
            .config_rule_names(&self.lab.names.rule)
            .send()
            .await
            .unwrap();
        out.config_rules_evaluation_status()[0].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lab_loop_reverts_the_open_group_within_seconds() {
    let env = env("loop").await;
    // AWS's default group references itself; the local AWS reproduces that.
    let group = deploy::status::default_group_id(&env.lab).await.unwrap().unwrap();
    assert_eq!(env.inbound().await, [format!("all@{group}")]);

    env.up().await;
    deploy::open_ports::open_ports(&env.lab).await.unwrap();
    let opened = Instant::now();
    let baseline = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];
    while env.inbound().await != baseline && opened.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.inbound().await, baseline, "not reverted within 10 s");
    assert!(env.local.settle(Duration::from_secs(10)).await);

    // Compliance through the SDK: the latest evaluation of the group is COMPLIANT…
    let details = env
        .lab
        .clients
        .config
        .get_compliance_details_by_config_rule()
        .config_rule_name(&env.lab.names.rule)
        .send()
        .await
        .unwrap();
    let result = details
        .evaluation_results()
        .iter()
        .find(|r| {
            r.evaluation_result_identifier().and_then(|i| i.evaluation_result_qualifier()).and_then(|q| q.resource_id())
                == Some(group.as_str())
        })
        .unwrap();
    assert_eq!(result.compliance_type().unwrap().as_str(), "COMPLIANT");
    // …after a NON_COMPLIANT one naming what was revoked.
    let history: Vec<(String, Option<String>)> = env
        .local
        .evaluations()
        .into_iter()
        .filter(|e| e.resource_id == group)
        .map(|e| (e.compliance, e.annotation))
        .collect();
    let smtps = testkit::reported_revoked(&history, "tcp/465@0.0.0.0/0");
    let imaps = testkit::reported_revoked(&history, "tcp/993@0.0.0.0/0");
    let compliant = history.iter().rposition(|(c, _)| c == "COMPLIANT");
    assert!(smtps.is_some() && imaps.is_some(), "465 and 993 were not both reported revoked: {history:?}");
    assert!(compliant > smtps.max(imaps), "no compliant evaluation after the revokes: {history:?}");
    assert!(env.rule_status().await.last_successful_evaluation_time().is_some());

    // The function's logs, as the student reads them.
    let events = deploy::logs::fetch(&env.lab, None, 0).await.unwrap();
    let text: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    for port in [465, 993] {
        assert!(
            text.iter()
                .any(|l| l.contains(&format!("revoking for {group}")) && l.contains(&format!("\"FromPort\":{port}"))),
            "{text:#?}"
        );
    }
    assert!(text.iter().any(|l| l.starts_with("START RequestId: ")));
    // The lab's line as it is, without the runtime's `Lambda runtime invoke{requestId=…}:` span.
    assert!(text.iter().any(|l| l.starts_with(&format!("revoking for {group}, ip_permissions ["))), "{text:#?}");
    assert!(text
        .iter()
        .any(|l| l.starts_with("REPORT RequestId: ") && l.contains("Max Memory Used") && l.contains("Init Duration")));
    assert!(!text.iter().any(|l| l.contains('\u{1b}')), "no terminal colours in the logs");

    let report = down(&env.lab, false).await;
    assert!(report.failed().next().is_none(), "{report}");
    // Gone, or DELETING (Config deletes rules asynchronously; it goes on its own).
    let rules = env.lab.clients.config.describe_config_rules().send().await.unwrap();
    assert!(rules.config_rules().iter().all(deploy::rule::is_deleting), "{rules:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_function_is_visible_in_the_rule_status_and_changes_nothing() {
    let env = env("failing").await;
    env.up().await;
    // A rule parameter the function refuses: every evaluation now fails.
    let rule = env.lab.clients.config.describe_config_rules().send().await.unwrap().config_rules()[0].clone();
    let broken = aws_sdk_config::types::ConfigRule::builder()
        .set_config_rule_name(rule.config_rule_name().map(str::to_owned))
        .set_source(rule.source().cloned())
        .set_scope(rule.scope().cloned())
        .input_parameters(r#"{"debug":"no"}"#)
        .build();
    env.lab.clients.config.put_config_rule().config_rule(broken).send().await.unwrap();
    deploy::open_ports::open_ports(&env.lab).await.unwrap();
    assert!(env.local.settle(Duration::from_secs(20)).await);

    assert_eq!(env.inbound().await.len(), 4, "the group must stay as the student left it");
    let status = env.rule_status().await;
    assert_eq!(status.last_error_code(), Some("InvalidRuleParameter"));
    assert!(status.last_error_message().unwrap().contains("`debug` is `no`"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_invoke_permission_config_cannot_invoke_the_function() {
    let env = env("permission").await;
    env.up().await;
    env.lab
        .clients
        .lambda
        .remove_permission()
        .function_name(&env.lab.names.function)
        .statement_id("config-invoke")
        .send()
        .await
        .unwrap();
    deploy::open_ports::open_ports(&env.lab).await.unwrap();
    assert!(env.local.settle(Duration::from_secs(20)).await);

    assert_eq!(env.inbound().await.len(), 4);
    let status = env.rule_status().await;
    assert_eq!(status.last_error_code(), Some("InsufficientPermissionsException"));
    assert!(status.last_error_message().unwrap().contains("does not allow config.amazonaws.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_round_trips_and_the_timeout_is_enforced() {
    let env = env("invoke").await;
    let lambda = &env.lab.clients.lambda;
    let role = env.lab.clients.iam.create_role().role_name("r").assume_role_policy_document("{}").send().await.unwrap();
    // An EC2 endpoint that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    lambda
        .create_function()
        .function_name("probe")
        .runtime(aws_sdk_lambda::types::Runtime::from("provided.al2023"))
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .timeout(2)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("AWS_ENDPOINT_URL_EC2", format!("http://{silent_addr}"))
                .build(),
        )
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(std::fs::read(&env.zip).unwrap()))
                .build(),
        )
        .send()
        .await
        .unwrap();

    // A malformed event: the function's error comes back as a function error.
    let out = lambda.invoke().function_name("probe").payload(Blob::new(b"{}".to_vec())).send().await.unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
    let error: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(error["errorType"], "MalformedEvent");

    // A sweep whose EC2 calls never answer: killed at the function's timeout.
    let started = Instant::now();
    let event = json!({
        "invokingEvent": json!({"messageType": "ScheduledNotification", "notificationCreationTime": "2016-07-19T22:00:00.000Z"}).to_string(),
        "resultToken": "t", "ruleParameters": "{}"
    });
    let out = lambda
        .invoke()
        .function_name("probe")
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.function_error(), Some("Unhandled"));
    let error: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(error["errorType"], "Sandbox.Timedout");
    use base64::Engine;
    let tail = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(out.log_result().unwrap()).unwrap())
        .unwrap();
    assert!(tail.contains("Task timed out after 2.00 seconds"), "{tail}");

    // An asynchronous invocation is accepted at once.
    let out = lambda
        .invoke()
        .function_name("probe")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn security_group_calls_reach_matching_eventbridge_rules_as_cloudtrail_events() {
    let env = env("events").await;
    let sdk = testkit::sdk_config(&env.local.endpoint).await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let lambda = &env.lab.clients.lambda;
    let role = env.lab.clients.iam.create_role().role_name("r").assume_role_policy_document("{}").send().await.unwrap();
    let function = lambda
        .create_function()
        .function_name("fast")
        .runtime(aws_sdk_lambda::types::Runtime::from("provided.al2023"))
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(std::fs::read(&env.zip).unwrap()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let pattern = json!({
        "source": ["aws.ec2"],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventName": [{"prefix": "AuthorizeSecurityGroup"}], "errorCode": [{"exists": false}]}
    });
    let rule = events.put_rule().name("sg-changes").event_pattern(pattern.to_string()).send().await.unwrap();
    let target =
        aws_sdk_eventbridge::types::Target::builder().id("fn").arn(function.function_arn().unwrap()).build().unwrap();
    events.put_targets().rule("sg-changes").targets(target).send().await.unwrap();
    let group = deploy::status::default_group_id(&env.lab).await.unwrap().unwrap();
    let authorize = |port: i32| {
        let permission = aws_sdk_ec2::types::IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        env.lab.clients.ec2.authorize_security_group_ingress().group_id(&group).ip_permissions(permission).send()
    };
    let invocations = || async {
        let events = deploy::logs::fetch_group(&env.lab, "/aws/lambda/fast", 0).await.unwrap_or_default();
        events.into_iter().filter(|e| e.message.starts_with("START ")).count()
    };

    // Without a permission for events.amazonaws.com nothing is invoked.
    authorize(22).await.unwrap();
    // Until the event of that call has been delivered (or refused): no race with the grant below.
    assert!(env.local.settle(Duration::from_secs(30)).await);
    assert_eq!(invocations().await, 0);

    lambda
        .add_permission()
        .function_name("fast")
        .statement_id("events")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .source_arn(rule.rule_arn().unwrap())
        .send()
        .await
        .unwrap();
    authorize(23).await.unwrap();
    let started = Instant::now();
    while invocations().await == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The function took the group from the CloudTrail event and reverted it; its own
    // AuthorizeSecurityGroupIngress comes back once more (delivered once reads show it) and
    // finds nothing to do.
    assert!(env.local.settle(Duration::from_secs(15)).await);
    let mut settled = invocations().await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = invocations().await;
        if now == settled {
            break;
        }
        settled = now;
        assert!(started.elapsed() < Duration::from_secs(15), "still invoking");
    }
    assert!((1..=2).contains(&settled), "{settled}");
    let events = deploy::logs::fetch_group(&env.lab, "/aws/lambda/fast", 0).await.unwrap();
    assert!(events.iter().any(|e| e.message.contains(&format!("revoking for {group}"))), "{events:#?}");
    assert_eq!(env.inbound().await, ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]);
    // A failed call carries errorCode: this pattern excludes it.
    authorize(80).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(invocations().await, settled);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fast_path_reverts_within_two_seconds_converges_and_goes_with_down() {
    let env = env("fast").await;
    let options = UpOptions { zip: Some(env.zip.clone()), fast_path: true, ..UpOptions::default() };
    let (report, error) = up(&env.lab, &options).await;
    assert!(error.is_none(), "{error:?}\n{report}");
    assert!(
        report.steps.iter().any(|s| s.resource == "trail") && report.steps.iter().any(|s| s.resource == "event-rule")
    );
    assert!(env.local.settle(Duration::from_secs(30)).await);
    // Once deployed, the fast path stays: a plain `up` finds it unchanged.
    let (again, error) = up(&env.lab, &UpOptions { zip: Some(env.zip.clone()), ..UpOptions::default() }).await;
    assert!(error.is_none(), "{error:?}");
    assert!(again.steps.iter().all(|s| s.action == deploy::report::Action::Unchanged), "{again}");
    // With the record of the groups (crate::snapshot), unchanged too.
    assert_eq!(again.steps.len(), 13);
    let status = deploy::status::status(&env.lab).await.unwrap();
    let fast = status.fast_path.unwrap();
    assert_eq!((fast.trail_logging, fast.rule_state.as_deref()), (Some(true), Some("ENABLED")));

    // Take the Config path out of the race: only the fast path can revert now.
    env.lab.clients.config.delete_config_rule().config_rule_name(&env.lab.names.rule).send().await.unwrap();
    assert!(env.local.settle(Duration::from_secs(10)).await);
    let group = deploy::status::default_group_id(&env.lab).await.unwrap().unwrap();
    let invocations = || async {
        deploy::logs::fetch(&env.lab, None, 0)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|e| e.message.starts_with("START "))
            .count()
    };
    let before = invocations().await;
    let permission = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(3389)
        .to_port(3389)
        .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build();
    env.lab
        .clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission)
        .send()
        .await
        .unwrap();
    let opened = Instant::now();
    let baseline = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];
    // EC2's reads lag its writes: the baseline a read shows right after the change is the group
    // before it. Wait for a read that shows the opened rule first.
    let open = "tcp/3389@0.0.0.0/0".to_owned();
    while !env.inbound().await.contains(&open) && opened.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while env.inbound().await != baseline && opened.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reverted = opened.elapsed();
    assert_eq!(env.inbound().await, baseline, "not reverted within 2 s");
    eprintln!("fast path reverted the group in {reverted:?}");

    // The function's own revoke comes back as an event: a bounded number of invocations, then
    // quiet.
    assert!(env.local.settle(Duration::from_secs(10)).await);
    let mut last = invocations().await;
    let quiet = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = invocations().await;
        if now == last {
            break;
        }
        last = now;
        assert!(quiet.elapsed() < Duration::from_secs(10), "still invoking after 10 s: {now}");
    }
    let caused = last - before;
    assert!((1..=3).contains(&caused), "{caused} invocations for one violation");

    let report = down(&env.lab, false).await;
    assert!(report.failed().next().is_none(), "{report}");
    for kind in ["event-rule", "trail"] {
        assert!(
            report.steps.iter().any(|s| s.resource == kind && s.action == deploy::report::Action::Delete),
            "{report}"
        );
    }
    let rules = env.lab.clients.events.list_rules().send().await.unwrap();
    assert!(rules.rules().is_empty());
    let trails = env.lab.clients.cloudtrail.describe_trails().send().await.unwrap();
    assert!(trails.trail_list().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn lab_run_reports_the_revert_history_and_logs_then_tears_down() {
    let env = env("run").await;
    let options = deploy::lab_run::RunOptions {
        zip: Some(env.zip.clone()),
        keep: false,
        timeout: Duration::from_secs(20),
        local_port: None,
        fast_path: false,
        poll: deploy::lab_run::poll_interval(true),
    };
    let report = deploy::lab_run::run(&env.lab, &options).await.unwrap();
    assert!(report.reverted, "{report}");
    assert!(report.revert_ms.is_some_and(|ms| ms < 20_000));
    assert_eq!(report.before.len(), 4);
    assert_eq!(report.after, ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]);
    assert!(report.log_lines.iter().any(|l| l.contains("revoking for")), "{report}");
    assert_eq!(report.evaluations.last().map(|e| e.compliance.as_str()), Some("COMPLIANT"), "{report}");
    let down = report.down.as_ref().unwrap();
    assert!(down.failed().next().is_none(), "{down}");
    assert!(report.to_string().contains("reverted"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn evaluation_apis_answer_as_config_does() {
    let env = env("apis").await;
    env.up().await;
    let config = &env.lab.clients.config;
    let group = deploy::status::default_group_id(&env.lab).await.unwrap().unwrap();
    // The initial evaluation fixed the default group (its self-referencing rule is not HTTP/HTTPS).
    let by_rule = config.describe_compliance_by_config_rule().send().await.unwrap();
    let rule = &by_rule.compliance_by_config_rules()[0];
    assert_eq!(rule.config_rule_name(), Some(env.lab.names.rule.as_str()));
    assert_eq!(rule.compliance().and_then(|c| c.compliance_type()).map(|c| c.as_str()), Some("COMPLIANT"));
    let by_resource = config
        .describe_compliance_by_resource()
        .resource_type("AWS::EC2::SecurityGroup")
        .resource_id(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_resource.compliance_by_resources()[0].compliance().and_then(|c| c.compliance_type()).map(|c| c.as_str()),
        Some("COMPLIANT")
    );

    // StartConfigRulesEvaluation runs the rule again.
    let before = env.local.evaluations().len();
    config.start_config_rules_evaluation().config_rule_names(&env.lab.names.rule).send().await.unwrap();
    assert!(env.local.settle(Duration::from_secs(20)).await);
    assert!(env.local.evaluations().len() > before);
    let unknown = config.start_config_rules_evaluation().config_rule_names("no-such-rule").send().await.unwrap_err();
    assert_eq!(aws_sdk_config::error::ProvideErrorMetadata::code(&unknown), Some("NoSuchConfigRuleException"));

    // A result token must be one Config issued.
    let evaluation = aws_sdk_config::types::Evaluation::builder()
        .compliance_resource_type("AWS::EC2::SecurityGroup")
        .compliance_resource_id(&group)
        .compliance_type(aws_sdk_config::types::ComplianceType::Compliant)
        .ordering_timestamp(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap();
    let forged = config.put_evaluations().result_token("forged").evaluations(evaluation).send().await.unwrap_err();
    assert_eq!(aws_sdk_config::error::ProvideErrorMetadata::code(&forged), Some("InvalidResultTokenException"));

    config.delete_evaluation_results().config_rule_name(&env.lab.names.rule).send().await.unwrap();
    let details =
        config.get_compliance_details_by_config_rule().config_rule_name(&env.lab.names.rule).send().await.unwrap();
    assert!(details.evaluation_results().is_empty());
}
