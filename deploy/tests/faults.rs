//! The lab under injected faults: the real `deploy` binary and the real function against the
//! local AWS while it answers a seeded fifth of all calls with throttling or server errors.
//! Everything converges; a call that keeps failing surfaces within the retry bound.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Local;
use deploy::retry::{sdk_backoff_bound, SDK_MAX_ATTEMPTS};
use localaws::faults::FaultSpec;
use serde_json::Value;

const BASELINE: [&str; 2] = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"];

fn spec(text: &str) -> FaultSpec {
    FaultSpec::parse(text).unwrap()
}

fn injected(env: &Local) -> Vec<(String, u64)> {
    let report = env.local.faults();
    report["injected"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()
}

#[test]
fn up_lab_run_and_down_converge_when_one_call_in_five_fails() {
    let env = Local::start("faults-rate");
    env.up();
    let clean = env.end_state();
    let mut rows = Vec::new();
    for kind in ["throttle", "5xx"] {
        env.reset();
        let calls_before: u64 = env.calls().values().sum();
        let started = Instant::now();
        env.local.set_faults(Some(spec(&format!(r#"{{"seed":20,"rate":0.2,"operations":["*"],"kind":"{kind}"}}"#))));

        // `up` reaches the same end state as without faults.
        env.up();
        let after_up = env.local.faults()["total"].as_u64().unwrap_or(0);
        let state = env.end_state();
        assert_eq!(state, clean, "{kind}: up under faults differs from up without");

        // `lab run`: up again (nothing to change), open the ports, the function reverts them
        // (its own calls are faulted too), then down.
        let zip = env.zip.display().to_string();
        let run = env.deploy(&["lab", "run", "--zip", &zip, "--wait", "60s", "--output", "json"]);
        assert_eq!(run.code, 0, "{kind}: lab run failed:\n{}", run.stderr);
        let report: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(report["reverted"], true, "{report:#}");
        assert_eq!(report["after"], serde_json::json!(BASELINE), "{report:#}");
        let up_steps = report["up"]["steps"].as_array().unwrap();
        assert!(up_steps.iter().all(|s| s["action"] == "unchanged"), "{kind}: {report:#}");
        let down_steps = report["down"]["steps"].as_array().unwrap();
        // The default group goes back as it was before `up` (crate::snapshot): a `group` row.
        let (groups, rest): (Vec<&Value>, Vec<&Value>) = down_steps.iter().partition(|s| s["resource"] == "group");
        assert!(rest.iter().all(|s| s["action"] == "delete"), "{kind}: {report:#}");
        assert!(groups.len() == 1 && groups[0]["action"] == "update", "{kind}: {report:#}");

        let faults = env.local.faults();
        let calls = env.calls().values().sum::<u64>() - calls_before;
        env.local.set_faults(None);
        assert_eq!(env.leftovers(), Vec::<String>::new(), "{kind}: down left resources");
        let total = faults["total"].as_u64().unwrap_or(0);
        assert!(after_up > 0 && total > after_up, "{kind}: faults were not injected: {faults}");
        rows.push(vec![
            kind.to_owned(),
            calls.to_string(),
            format!("{after_up} / {total}"),
            format!("{} ms", report["revertMs"]),
            format!("{:.1} s", started.elapsed().as_secs_f64()),
        ]);
    }
    common::print_matrix(
        "up, lab run, down with 20% of calls faulted (seed 20)",
        &["fault", "calls", "faults (up / all)", "revert", "wall"],
        &rows,
    );
}

/// "Carried out, then 5xx": a seeded fifth of all calls take effect and are answered with a
/// server error, so the SDK retries a change that was already made (a create meets what it
/// created, a delete what it deleted). `up` still reaches the clean end state, the function
/// still reverts the opened ports, and `down` leaves nothing.
#[test]
fn up_down_and_the_function_converge_when_changes_are_made_then_answered_5xx() {
    let env = Local::start("faults-then-5xx");
    env.up();
    let clean = env.end_state();
    env.reset();
    // Every change `up`, `down` and the function make, but DeleteConfigRule: a replay of it
    // meets the rule DELETING (ResourceInUseException), which is the Config rules' part of
    // issue 13 (item 2: `down` counts a DELETING rule as deleted).
    let changes = [
        "CreateBucket",
        "PutBucketTagging",
        "PutBucketPolicy",
        "PutBucketEncryption",
        "PutPublicAccessBlock",
        "CreateRole",
        "AttachRolePolicy",
        "PutRolePolicy",
        "PutConfigurationRecorder",
        "PutDeliveryChannel",
        "StartConfigurationRecorder",
        "CreateFunction",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "AddPermission",
        "PutConfigRule",
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "PutEvaluations",
        "DeleteLogGroup",
        "DeleteFunction",
        "DeleteRolePolicy",
        "DetachRolePolicy",
        "DeleteRole",
        "StopConfigurationRecorder",
        "DeleteDeliveryChannel",
        "DeleteConfigurationRecorder",
        "DeleteObjects",
        "DeleteObject",
        "DeleteBucket",
    ];
    let operations = serde_json::to_string(&changes).unwrap();
    env.local
        .set_faults(Some(spec(&format!(r#"{{"seed":13,"rate":0.25,"operations":{operations},"kind":"then-5xx"}}"#))));
    env.up();
    let after_up = env.local.faults()["total"].as_u64().unwrap_or(0);
    assert_eq!(env.end_state(), clean, "up under then-5xx differs from up without");

    let open = env.deploy(&["lab", "open-ports"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let inbound =
        || env.block_on(deploy::status::status(&env.lab)).ok().and_then(|s| s.default_group).map(|g| g.inbound);
    let reverted = || inbound().is_some_and(|rules| rules == BASELINE);
    while !reverted() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(reverted(), "the function did not revert the opened ports within 60 s: {:?}", inbound());
    assert!(env.block_on(env.local.settle(Duration::from_secs(30))));
    let down = env.deploy(&["down"]);
    let faults = env.local.faults();
    env.local.set_faults(None);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(env.leftovers(), Vec::<String>::new(), "down under then-5xx left resources");
    let total = faults["total"].as_u64().unwrap_or(0);
    assert!(after_up > 0 && total > after_up, "faults were not injected: {faults}");
    println!("then-5xx faults (up / all): {after_up} / {total}: {}", faults["injected"]);
}

/// The creates and deletes whose replay meets their own result, each made to take effect and
/// fail on its first call and pass on the retry: `up` and `down` take the replay's "exists" /
/// "not found" as done (the role and the function are the lab's by their tag, the permission by
/// its statement).
#[test]
fn replayed_creates_and_deletes_count_as_done() {
    let env = Local::with_stub("faults-replays");
    env.up();
    let clean = env.end_state();
    env.reset();
    let operations =
        ["iam:CreateRole", "lambda:CreateFunction", "lambda:AddPermission", "lambda:DeleteFunction", "iam:DeleteRole"];
    let text = |seed: u64| {
        let operations = serde_json::to_string(&operations).unwrap();
        format!(r#"{{"seed":{seed},"rate":0.5,"operations":{operations},"kind":"then-5xx"}}"#)
    };
    // A seed that faults the first call of each and not the second.
    let seed = (0..100_000)
        .find(|seed| {
            let mut faults = localaws::faults::Faults::default();
            faults.set(Some(spec(&text(*seed))));
            operations.iter().all(|op| {
                let (service, name) = op.split_once(':').unwrap();
                let first = faults.decide(service, name);
                let second = faults.decide(service, name);
                first != localaws::faults::Decision::Pass && second == localaws::faults::Decision::Pass
            })
        })
        .unwrap();
    env.local.set_faults(Some(spec(&text(seed))));
    env.up();
    assert_eq!(env.end_state(), clean, "up with replayed creates differs from up without");
    let down = env.deploy(&["down"]);
    let faults = env.local.faults();
    env.local.set_faults(None);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(env.leftovers(), Vec::<String>::new());
    for op in operations {
        assert!(faults["injected"][op].as_u64() >= Some(1), "{op} was not replayed: {faults}");
    }
}

#[test]
fn the_function_remediates_when_its_calls_fail() {
    let env = Local::start("faults-function");
    // Every second call of the calls only the function makes fails with a server error: the
    // initial evaluation's calls pass, the remediation's are faulted and retried.
    let only_the_function =
        r#"["config:PutEvaluations","ec2:RevokeSecurityGroupIngress","ec2:DescribeSecurityGroupRules"]"#;
    env.local.set_faults(Some(spec(&format!(r#"{{"nth":2,"operations":{only_the_function},"kind":"5xx"}}"#))));
    env.up();
    let open = env.deploy(&["lab", "open-ports"]);
    assert_eq!(open.code, 0, "{}", open.stderr);
    let group = env.block_on(deploy::status::default_group_id(&env.lab)).unwrap().unwrap();
    // Each faulted call is retried after the SDK's backoff, and this binary's six tests each run
    // a local AWS at once: 30 s was once too short on two cores (a fresh clone's run).
    let deadline = Instant::now() + Duration::from_secs(60);
    let inbound = || env.block_on(deploy::status::status(&env.lab)).unwrap().default_group.unwrap().inbound;
    while inbound() != BASELINE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(inbound(), BASELINE, "not reverted within 60 s");
    assert!(env.block_on(env.local.settle(Duration::from_secs(30))));
    let faulted = injected(&env);
    println!("faults injected into the function's calls: {faulted:?}");
    // The change evaluation acts on the configuration item Config sent: its calls are the revoke
    // and the report. DescribeSecurityGroupRules stays in the faulted set for the fallback to
    // reading EC2 (a stale item), which this test does not force, so it is not required here.
    for op in ["config:PutEvaluations", "ec2:RevokeSecurityGroupIngress"] {
        assert!(faulted.iter().any(|(k, n)| k == op && *n > 0), "no fault on {op}: {faulted:?}");
    }
    // The evaluations went through: each revert was reported, then the group was compliant.
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
    let status = env
        .block_on(
            env.lab
                .clients
                .config
                .describe_config_rule_evaluation_status()
                .config_rule_names(&env.lab.names.rule)
                .send(),
        )
        .unwrap();
    let status = &status.config_rules_evaluation_status()[0];
    assert!(status.last_error_code().is_none(), "the function failed an invocation: {status:?}");
}

#[test]
fn a_call_that_keeps_failing_surfaces_within_the_retry_bound() {
    let env = Local::with_stub("faults-persistent");
    let zip = env.zip.display().to_string();
    let bound = sdk_backoff_bound();
    let mut rows = Vec::new();
    // Both roles are created concurrently: each call gives up after its attempts.
    for (fault, operation, calls_expected, message) in [
        (r#"{"operations":["iam:CreateRole"],"kind":"throttle"}"#, "iam:CreateRole", 2, "Throttling: Rate exceeded"),
        (r#"{"operations":["s3:PutBucketPolicy"],"kind":"5xx"}"#, "s3:PutBucketPolicy", 1, "ServiceUnavailable"),
    ] {
        env.reset();
        env.local.set_faults(Some(spec(fault)));
        let before = env.calls().get(operation).copied().unwrap_or(0);
        let started = Instant::now();
        let run = env.deploy(&["up", "--zip", &zip]);
        let elapsed = started.elapsed();
        let calls = env.calls().get(operation).copied().unwrap_or(0) - before;
        env.local.set_faults(None);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(message), "{}", run.stderr);
        assert!(run.stderr.contains("`deploy down` removes what it created"), "{}", run.stderr);
        assert_eq!(calls, calls_expected * u64::from(SDK_MAX_ATTEMPTS), "attempts of {operation}");
        // Generous: the waits, plus the rest of `up` on a loaded machine.
        assert!(elapsed < bound * 2 + Duration::from_secs(30), "{elapsed:?}");
        let down = env.deploy(&["down"]);
        assert_eq!(down.code, 0, "{}", down.stderr);
        assert_eq!(env.leftovers(), Vec::<String>::new());
        rows.push(vec![operation.to_owned(), calls.to_string(), format!("{:.1} s", elapsed.as_secs_f64())]);
    }
    common::print_matrix(
        &format!("a call failing every attempt (bound on the waits: {bound:?})"),
        &["operation", "attempts seen", "up failed after"],
        &rows,
    );
}

/// `deploy local serve --faults JSON` starts with the spec in force, and with the AWS behaviours
/// of `SG_LAB_AWS_LIKE`, which `local status` shows; a bad spec of either exits 2 before anything
/// starts.
#[test]
fn local_serve_takes_a_fault_spec_and_refuses_a_bad_one() {
    let home = std::env::temp_dir().join(format!("sg-lab-serve-faults-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let deploy = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deploy"));
        command.env("SG_LAB_HOME", &home).env_remove("SG_LAB_FAULTS").env_remove("SG_LAB_AWS_LIKE");
        command
    };
    let bad = deploy().args(["local", "serve", "--port", "0", "--faults", r#"{"rate":2,"kind":"throttle"}"#]).output();
    let bad = bad.unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not between 0 and 1"), "{bad:?}");
    let bad = deploy().args(["local", "serve", "--port", "0", "--aws-like", r#"{"ruleDeleting":1}"#]).output();
    let bad = bad.unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("bad AWS behaviours spec") && stderr.contains("ruleDeleting"), "{stderr}");

    let mut serve = deploy()
        .args(["local", "serve", "--port", "0"])
        .env("SG_LAB_FAULTS", r#"{"seed":3,"rate":0.5,"kind":"5xx"}"#)
        .env("SG_LAB_AWS_LIKE", r#"{"ruleDeletingMs":2500}"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // The line naming the endpoint (an `AWS behaviours: …` line comes first).
    let first = std::iter::from_fn(|| received.recv_timeout(Duration::from_secs(90)).ok())
        .find(|line| line.contains("127.0.0.1:"))
        .unwrap();
    let port: u16 =
        first.split("127.0.0.1:").nth(1).and_then(|s| s.split(' ').next()).and_then(|p| p.parse().ok()).unwrap();
    let status = deploy().args(["local", "status", "--port", &port.to_string(), "--output", "json"]).output().unwrap();
    let stopped = deploy().args(["local", "stop", "--port", &port.to_string()]).output().unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["faults"]["spec"]["rate"], 0.5, "{status}");
    assert_eq!(status["faults"]["spec"]["kind"], "5xx", "{status}");
    assert_eq!(status["faults"]["total"], 0, "{status}");
    assert_eq!(status["behaviours"]["ruleDeletingMs"], 2500, "{status}");
    assert_eq!(status["behaviours"]["regionalBuckets"], false, "{status}");
    assert!(stopped.status.success());
}
