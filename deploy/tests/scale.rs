//! The sweep at scale (issue 14): the real function run by the local AWS's Lambda executor
//! with a short timeout, against EC2's request-rate limits (behaviour `ec2Quotas`, buckets
//! scaled down). Every run must answer before its deadline and report every group; the runs
//! must converge; and no required rule may be revoked on the way.
//!
//! `SG_SCALE_PACING` sets the function's `EC2_REQUEST_RATE` (default: the scaled quota,
//! `20/2`; `adaptive` for the SDK's adaptive retry mode), to compare the two; each run's line
//! (`scale run …`) gives its wall time, groups left over and throttled requests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_sdk_lambda::primitives::Blob;
use localaws::behaviours::Behaviours;
use serde_json::{json, Value};
use testkit::RecordingEndpoint;

/// The function's timeout: a few seconds, so that the quota, not the work, bounds a run.
const TIMEOUT_S: i32 = 4;
/// EC2's buckets at this percentage: mutating calls 20 tokens and 2 a second.
const QUOTA_PERCENT: u64 = 40;
const GROUPS: usize = 50;
/// Drifted groups: tcp/22 open to the world; every third also lacks tcp/443.
const DRIFTED: usize = 30;

fn tcp(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

/// Each group's ingress from the world (`tcp/80`, …), read from moto directly: no quota, no
/// read lag, what EC2 holds now.
async fn world_ports(ec2: &aws_sdk_ec2::Client) -> BTreeMap<String, BTreeSet<String>> {
    let out = ec2.describe_security_groups().send().await.unwrap();
    out.security_groups()
        .iter()
        .map(|g| {
            let ports = g
                .ip_permissions()
                .iter()
                .filter(|p| p.ip_ranges().iter().any(|r| r.cidr_ip() == Some("0.0.0.0/0")))
                .map(|p| format!("{}/{}", p.ip_protocol().unwrap_or("?"), p.from_port().unwrap_or(-1)))
                .collect();
            (g.group_id().unwrap().to_owned(), ports)
        })
        .collect()
}

/// The `Duration` of the invocation's REPORT line (the log tail, base64).
fn duration(tail: &str) -> Duration {
    use base64::Engine;
    let log = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(tail).unwrap()).unwrap();
    let report = log.lines().find(|l| l.starts_with("REPORT")).unwrap_or_else(|| panic!("no REPORT line:\n{log}"));
    let ms: f64 = report.split("\tDuration: ").nth(1).and_then(|d| d.split(' ').next()).unwrap().parse().unwrap();
    Duration::from_secs_f64(ms / 1000.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_answers_in_time_reports_every_group_and_converges_under_ec2_quotas() {
    let dir = std::env::temp_dir().join(format!("sg-lab-scale-{}", std::process::id()));
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.clone(),
        behaviours: Behaviours::aws_like(),
    };
    let local = localaws::start(options).await.unwrap();
    let sdk = testkit::sdk_config(&local.endpoint).await;
    let (ec2, lambda, iam) =
        (aws_sdk_ec2::Client::new(&sdk), aws_sdk_lambda::Client::new(&sdk), aws_sdk_iam::Client::new(&sdk));
    let moto = aws_sdk_ec2::Client::new(&testkit::sdk_config(&local.backend).await);
    let config = RecordingEndpoint::start(json!({"FailedEvaluations": []})).await;

    // The region: GROUPS groups with the baseline, DRIFTED of them drifted (quotas still off).
    let vpc = ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_owned();
    for i in 0..GROUPS {
        let group = ec2
            .create_security_group()
            .group_name(format!("scale-{i}"))
            .description("scale")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        let mut rules = vec![tcp(80)];
        if i >= DRIFTED || i % 3 != 0 {
            rules.push(tcp(443));
        }
        if i < DRIFTED {
            rules.push(tcp(22));
        }
        ec2.authorize_security_group_ingress()
            .group_id(group.group_id().unwrap())
            .set_ip_permissions(Some(rules))
            .send()
            .await
            .unwrap();
    }

    let zip = testkit::bootstrap_zip(&dir);
    let role = iam.create_role().role_name("scale").assume_role_policy_document("{}").send().await.unwrap();
    let pacing = std::env::var("SG_SCALE_PACING").unwrap_or_else(|_| "20/2".to_owned());
    lambda
        .create_function()
        .function_name("sweep")
        .runtime(aws_sdk_lambda::types::Runtime::from("provided.al2023"))
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .timeout(TIMEOUT_S)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("AWS_ENDPOINT_URL_CONFIG_SERVICE", &config.endpoint)
                .variables("EC2_REQUEST_RATE", &pacing)
                .build(),
        )
        .code(aws_sdk_lambda::types::FunctionCode::builder().zip_file(Blob::new(std::fs::read(&zip).unwrap())).build())
        .send()
        .await
        .unwrap();
    let active = Instant::now() + Duration::from_secs(10);
    loop {
        let state = lambda.get_function_configuration().function_name("sweep").send().await.unwrap();
        if state.state().map(|s| s.as_str()) == Some("Active") {
            break;
        }
        assert!(Instant::now() < active, "the function is still {:?} after 10 s", state.state());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let before = world_ports(&moto).await;
    let all: BTreeSet<String> = before.keys().cloned().collect();
    assert!(all.len() > GROUPS, "the default group and the {GROUPS} created");

    // Watches EC2 while the runs go: a required rule seen in a group must stay there.
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (moto, violations, watching) = (moto.clone(), violations.clone(), watching.clone());
        let mut seen = before.clone();
        tokio::spawn(async move {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                let now = world_ports(&moto).await;
                for (id, ports) in &mut seen {
                    let current = now.get(id).cloned().unwrap_or_default();
                    for required in ["tcp/80", "tcp/443"] {
                        if ports.contains(required) && !current.contains(required) {
                            violations.lock().unwrap().push(format!("{id} lost {required}@0.0.0.0/0"));
                        }
                    }
                    ports.extend(current.into_iter().filter(|p| p == "tcp/80" || p == "tcp/443"));
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };

    local.set_behaviours(Behaviours { ec2_quotas: true, ec2_quota_percent: QUOTA_PERCENT, ..Behaviours::aws_like() });
    let mut left_over = Vec::new();
    let mut converged = false;
    for run in 1..=6 {
        let token = format!("scale-run-{run}");
        let mut event: Value =
            serde_json::from_str(include_str!("../../function/tests/fixtures/scheduled-notification.json")).unwrap();
        event["resultToken"] = json!(token);
        let throttled = local.ec2_throttled();
        let started = Instant::now();
        let out = lambda
            .invoke()
            .function_name("sweep")
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .unwrap();
        let wall = started.elapsed();
        let payload = String::from_utf8_lossy(out.payload().map(|p| p.as_ref()).unwrap_or_default()).into_owned();
        // Killed at its deadline, the function would answer `Sandbox.Timedout`.
        assert_eq!(out.function_error(), None, "run {run} failed after {wall:?}: {payload}");
        let took = duration(out.log_result().unwrap_or_default());
        assert!(took < Duration::from_secs(TIMEOUT_S as u64), "run {run} took {took:?}");

        let evaluations: Vec<Value> = config
            .requests()
            .iter()
            .filter(|r| r.body["ResultToken"] == json!(token))
            .flat_map(|r| r.body["Evaluations"].as_array().cloned().unwrap_or_default())
            .collect();
        let ids: Vec<&str> = evaluations.iter().map(|e| e["ComplianceResourceId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), all.len(), "run {run} reports each group once");
        assert_eq!(ids.iter().map(|id| id.to_string()).collect::<BTreeSet<_>>(), all, "run {run}");
        let later: Vec<&Value> = evaluations
            .iter()
            .filter(|e| e["Annotation"].as_str().is_some_and(|a| a.starts_with("Not fixed yet:")))
            .collect();
        for e in &later {
            let annotation = e["Annotation"].as_str().unwrap();
            assert_eq!(e["ComplianceType"], "NON_COMPLIANT");
            assert!(annotation.contains("tcp/22@0.0.0.0/0") && annotation.contains("next evaluation"), "{annotation}");
            assert!(annotation.chars().count() <= 256);
        }
        let compliant = evaluations.iter().filter(|e| e["ComplianceType"] == "COMPLIANT").count();
        eprintln!(
            "scale run {run}: {took:?} ({wall:?} with the invocation), {} of {} groups left for the next run, {compliant} compliant, {} requests throttled",
            later.len(),
            all.len(),
            local.ec2_throttled() - throttled
        );
        left_over.push(later.len());
        if compliant == all.len() {
            converged = true;
            break;
        }
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.await.unwrap();

    assert!(converged, "not converged in 6 runs: groups left over per run {left_over:?}");
    assert!(left_over[0] > 0, "the first run should have run out of quota: {left_over:?}");
    assert!(left_over.windows(2).all(|w| w[1] < w[0] || w[0] == 0), "each run fixes more: {left_over:?}");
    assert_eq!(*violations.lock().unwrap(), Vec::<String>::new(), "a required rule was revoked");
    for (id, ports) in world_ports(&moto).await {
        let expected: BTreeSet<String> = ["tcp/443", "tcp/80"].map(str::to_owned).into();
        assert_eq!(ports, expected, "{id}");
    }
}
