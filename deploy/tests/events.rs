//! The fast path's EventBridge rule and the function against the local AWS behaving as AWS
//! does where moto does not: PutTargets and RemoveTargets leaving entries unapplied with HTTP
//! 200 (`FailedEntries`), DeleteRule refusing a rule that has targets, and a function that is
//! `Pending` after its creation and refuses updates meanwhile.

mod common;

use std::time::Duration;

use common::{fast_path_state, Local};
use localaws::behaviours::Behaviours;
use localaws::faults::{FaultKind, FaultSpec};
use serde_json::{json, Value};

impl Local {
    fn up_fast(&self) -> common::Run {
        let zip = self.zip.display().to_string();
        self.deploy(&["up", "--zip", &zip, "--fast-path", "--output", "json"])
    }

    fn targets(&self) -> Value {
        self.block_on(fast_path_state(&self.lab))["rule"]["targets"].clone()
    }

    fn the_target(&self) -> Value {
        json!([format!("function={}", self.lab.function_arn())])
    }
}

/// Every entry failing: `up --fast-path` fails naming the target and EventBridge's error, and
/// never reports the rule done. Every second entry failing: `up` puts the target again until it
/// is applied, `down` removes it again until it is gone and then deletes the rule, and `up`
/// after `down` has its target again.
#[test]
fn up_with_the_fast_path_reports_its_target_or_fails_clearly() {
    let env = Local::with_stub("events-partial");
    env.local.set_behaviours(Behaviours { eventbridge_failed_entry_nth: 1, ..Behaviours::aws_like() });
    let run = env.up_fast();
    assert_eq!(run.code, 1, "up reported success with no target applied:\n{}\n{}", run.stdout, run.stderr);
    for said in ["did not add target function", "ConcurrentModificationException", "run the command again"] {
        assert!(run.stderr.contains(said), "{said}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("done: event-rule"), "{}", run.stderr);
    assert_eq!(env.targets(), json!([]));

    env.local.set_behaviours(Behaviours { eventbridge_failed_entry_nth: 2, ..Behaviours::aws_like() });
    let before = env.calls();
    let run = env.up_fast();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.targets(), env.the_target());
    let down = env.deploy(&["down"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(down.stderr.contains("waiting for EventBridge to remove the targets"), "{}", down.stderr);
    assert_eq!(env.leftovers(), Vec::<String>::new());
    let run = env.up_fast();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("waiting for EventBridge to add target function"), "{}", run.stderr);
    assert_eq!(env.targets(), env.the_target());
    let calls = env.calls();
    let count = |op: &str| calls.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    // One PutTargets per `up`, one more for the entry that failed; the same for RemoveTargets.
    assert_eq!((count("events:PutTargets"), count("events:RemoveTargets")), (3, 2), "{calls:?}");
    let down = env.deploy(&["down"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
}

/// A rule whose target was removed (by hand, or by a partial failure nobody noticed) gets it
/// back from `up` — with `--fast-path` left out, as the fast path stays once deployed — even
/// when EventBridge leaves the first PutTargets unapplied.
#[test]
fn a_rule_that_lost_its_target_is_repaired_by_up() {
    let env = Local::with_stub("events-repair");
    env.local.set_behaviours(Behaviours { eventbridge_failed_entry_nth: 2, ..Behaviours::aws_like() });
    assert_eq!(env.up_fast().code, 0);
    assert_eq!(env.targets(), env.the_target());
    let events = &env.lab.clients.events;
    let remove =
        || env.block_on(events.remove_targets().rule(deploy::lab::FAST_PATH_RULE).ids("function").send()).unwrap();
    // The local AWS as AWS: the second entry fails, answered with HTTP 200, and is not applied.
    let first = remove();
    assert_eq!(first.failed_entry_count(), 1);
    assert_eq!(first.failed_entries()[0].error_code(), Some("ConcurrentModificationException"));
    assert_eq!(env.targets(), env.the_target());
    assert_eq!(remove().failed_entry_count(), 0);
    assert_eq!(env.targets(), json!([]));

    let zip = env.zip.display().to_string();
    let run = env.deploy(&["up", "--zip", &zip, "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let step = report["steps"].as_array().unwrap().iter().find(|s| s["resource"] == "event-rule").cloned();
    assert_eq!(step.as_ref().map(|s| s["action"].clone()), Some(json!("update")), "{report:#}");
    assert_eq!(env.targets(), env.the_target(), "up reported the rule repaired without its target");
    assert!(env.deploy(&["down"]).code == 0);
}

/// DeleteRule refuses a rule that still has targets, as AWS does; `down` removes them first,
/// again for those EventBridge leaves, and fails clearly when they never go — then a `down`
/// with EventBridge well again clears the lab.
#[test]
fn down_deletes_the_rule_only_once_its_targets_are_gone() {
    let env = Local::with_stub("events-down");
    assert_eq!(env.up_fast().code, 0);
    let events = &env.lab.clients.events;
    let refused = env.block_on(events.delete_rule().name(deploy::lab::FAST_PATH_RULE).send()).unwrap_err();
    let refused = deploy::error::Error::aws("deleting the rule", refused).to_string();
    assert!(refused.contains("ValidationException: Rule can't be deleted since it has targets."), "{refused}");

    env.local.set_behaviours(Behaviours { eventbridge_failed_entry_nth: 1, ..Behaviours::aws_like() });
    let down = env.deploy(&["down"]);
    assert_eq!(down.code, 1, "{}", down.stderr);
    // The report names the failed step with EventBridge's error.
    assert!(down.stdout.contains("did not remove target function"), "{}\n{}", down.stdout, down.stderr);
    assert!(down.stdout.contains("ConcurrentModificationException"), "{}", down.stdout);
    assert_eq!(env.targets(), env.the_target());
    // The rest of the lab went; the rule is left for the next `down`, with its target.
    assert!(env.leftovers().iter().any(|l| l.contains(deploy::lab::FAST_PATH_RULE)), "{:?}", env.leftovers());

    env.local.set_behaviours(Behaviours::aws_like());
    let down = env.deploy(&["down"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// `up` killed once CreateFunction was carried out leaves a function that is `Pending` for a
/// while; `up` right then, with other code, waits until it is ready instead of failing on
/// UpdateFunctionCode's ResourceConflictException.
#[test]
fn up_right_after_a_killed_create_waits_for_the_pending_function() {
    let env = Local::with_stub("events-pending");
    env.local.set_behaviours(Behaviours { function_pending_ms: 5_000, ..Behaviours::aws_like() });
    let spec = FaultSpec {
        seed: 0,
        rate: None,
        nth: None,
        operations: vec!["CreateFunction".to_owned()],
        kind: FaultKind::Delay,
        delay_ms: Some(30_000),
    };
    env.local.set_faults(Some(spec));
    let zip = env.zip.display().to_string();
    let killed = env.run_killed(&["up", "--zip", &zip], |_| env.local.faults()["total"].as_u64().unwrap_or(0) > 0);
    env.local.set_faults(None);
    assert_eq!(killed, common::Killed::Killed);
    assert!(env.block_on(env.local.settle(Duration::from_secs(30))));
    let lambda = &env.lab.clients.lambda;
    let name = &env.lab.names.function;
    let config = env.block_on(lambda.get_function_configuration().function_name(name).send()).unwrap();
    assert_eq!(config.state().map(|s| s.as_str()), Some("Pending"), "{config:?}");

    let other = env.dir.join("other.zip");
    let bytes = testkit::lambda_zip(0x3e, b"other code");
    std::fs::write(&other, &bytes).unwrap();
    let sha = deploy::artifact::Artifact::from_bytes(other.clone(), bytes).unwrap().sha256;
    let run = env.deploy(&["up", "--zip", &other.display().to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("waiting for function {name} to be ready")), "{}", run.stderr);
    let config = env.block_on(lambda.get_function_configuration().function_name(name).send()).unwrap();
    assert_eq!(config.code_sha256(), Some(sha.as_str()));
    assert_eq!(env.deploy(&["down"]).code, 0);
}
