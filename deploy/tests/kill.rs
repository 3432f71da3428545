//! The kill matrix: the real `deploy` binary, SIGKILLed at every step boundary of `up` and
//! `down` (right after the step's `done:` line on stderr) and in the middle of every mutating
//! call (the local AWS carries the call out and holds its answer back; the process dies before
//! it learns the call succeeded). From each killed state, `up` again must converge to the end
//! state of an uninterrupted `up`, and `down` must leave nothing of the lab.

mod common;

use common::{step_done, Killed, Local};
use localaws::faults::{FaultKind, FaultSpec};
use serde_json::Value;

/// `up`'s steps, by the resource kind of their progress line.
const UP_STEPS: [&str; 9] = [
    "bucket",
    "config-role",
    "recorder",
    "delivery-channel",
    "recording",
    "function-role",
    "function",
    "invoke-permission",
    "rule",
];

/// `up`'s mutating calls.
const UP_CALLS: [&str; 12] = [
    "CreateBucket",
    "PutBucketTagging",
    "PutBucketPolicy",
    "CreateRole",
    "AttachRolePolicy",
    "PutRolePolicy",
    "PutConfigurationRecorder",
    "PutDeliveryChannel",
    "StartConfigurationRecorder",
    "CreateFunction",
    "AddPermission",
    "PutConfigRule",
];

/// With `--fast-path`: the fast path's steps and calls, after the rest of `up`.
const FAST_UP_POINTS: [Point; 7] = [
    Point::After("rule"),
    Point::After("trail"),
    Point::After("event-rule"),
    Point::During("CreateTrail"),
    Point::During("StartLogging"),
    Point::During("PutRule"),
    Point::During("PutTargets"),
];

/// `down` with the fast path deployed: its steps and calls come right after the rule's.
const FAST_DOWN_POINTS: [Point; 5] = [
    Point::After("rule"),
    Point::After("event-rule"),
    Point::During("RemoveTargets"),
    Point::During("DeleteRule"),
    Point::During("DeleteTrail"),
];

const DOWN_STEPS: [&str; 8] =
    ["rule", "function", "log-group", "function-role", "delivery-channel", "recorder", "config-role", "bucket"];

const DOWN_CALLS: [&str; 10] = [
    "DeleteConfigRule",
    "DeleteLogGroup",
    "DeleteFunction",
    "DeleteRolePolicy",
    "DeleteRole",
    "StopConfigurationRecorder",
    "DeleteDeliveryChannel",
    "DeleteConfigurationRecorder",
    "DetachRolePolicy",
    "DeleteBucket",
];

#[derive(Debug, Clone, Copy)]
enum Point {
    /// Right after the step's `done:` line.
    After(&'static str),
    /// While the call is in flight (carried out, answer not yet received).
    During(&'static str),
}

impl Point {
    fn label(self) -> String {
        match self {
            Point::After(step) => format!("after {step}"),
            Point::During(call) => format!("during {call}"),
        }
    }
}

fn outcome(killed: Killed) -> String {
    match killed {
        Killed::Killed => "killed".into(),
        Killed::Finished(code) => format!("ended first ({code})"),
    }
}

impl Local {
    /// Runs `deploy COMMAND` and kills it at `point`; then waits until the calls it had sent
    /// are carried out, as AWS carries out a request whose client died.
    fn kill(&self, command: &str, point: Point, fast: bool) -> Killed {
        let zip = self.zip.display().to_string();
        let mut args: Vec<&str> = if command == "up" { vec!["up", "--zip", &zip] } else { vec![command] };
        if fast && command == "up" {
            args.push("--fast-path");
        }
        let killed = match point {
            Point::After(step) => self.run_killed(&args, |line| line.and_then(step_done) == Some(step)),
            Point::During(call) => {
                let spec = FaultSpec {
                    seed: 0,
                    rate: None,
                    nth: None,
                    operations: vec![call.to_owned()],
                    kind: FaultKind::Delay,
                    delay_ms: Some(30_000),
                };
                self.local.set_faults(Some(spec));
                let killed = self.run_killed(&args, |_| self.local.faults()["total"].as_u64().unwrap_or(0) > 0);
                self.local.set_faults(None);
                killed
            }
        };
        self.settle();
        killed
    }

    /// A fresh, complete lab with the function's log group (the stub function writes none).
    fn full_lab(&self, fast: bool) {
        self.reset();
        if fast {
            let zip = self.zip.display().to_string();
            let run = self.deploy(&["up", "--zip", &zip, "--fast-path"]);
            assert_eq!(run.code, 0, "up --fast-path failed:\n{}", run.stderr);
        } else {
            self.up();
        }
        self.settle();
        let logs = &self.lab.clients.logs;
        self.block_on(logs.create_log_group().log_group_name(self.lab.log_group()).send()).unwrap();
    }

    fn settle(&self) {
        assert!(self.block_on(self.local.settle(std::time::Duration::from_secs(30))), "evaluations still running");
    }

    /// `up` from the current state: ok when it succeeds with the uninterrupted end state.
    fn up_converges(&self, full: &Value, fast: bool) -> Result<(), String> {
        let zip = self.zip.display().to_string();
        let mut args = vec!["up", "--zip", &zip];
        if fast {
            args.push("--fast-path");
        }
        let run = self.deploy(&args);
        if run.code != 0 {
            return Err(format!("up exited {}: {}", run.code, run.stderr.lines().last().unwrap_or("")));
        }
        self.settle();
        let state = self.end_state();
        if &state != full {
            return Err(format!("end state differs:\n{state:#}\nexpected:\n{full:#}"));
        }
        Ok(())
    }

    /// `down` from the current state: ok when it succeeds and nothing of the lab is left.
    fn down_clears(&self) -> Result<(), String> {
        let run = self.deploy(&["down"]);
        if run.code != 0 {
            return Err(format!("down exited {}: {}", run.code, run.stderr.lines().last().unwrap_or("")));
        }
        self.settle();
        let left = self.leftovers();
        if !left.is_empty() {
            return Err(format!("left: {}", left.join(", ")));
        }
        Ok(())
    }
}

fn cell(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(why) => format!("FAIL: {}", why.lines().next().unwrap_or("")),
    }
}

/// Kills `up` at each point; from each killed state runs `up` again, and (from a second kill at
/// the same point) `down`.
fn up_matrix(name: &str, points: &[Point], fast: bool) {
    let env = Local::with_stub(name);
    env.full_lab(fast);
    let full = env.end_state();
    assert!(full["function"].is_object() && full["rules"][0].is_object(), "{full:#}");
    assert_eq!(full["fastPath"]["rule"]["targets"].as_array().map(Vec::len), fast.then_some(1), "{full:#}");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for point in points {
        env.reset();
        let first = env.kill("up", *point, fast);
        let up_again = env.up_converges(&full, fast);
        env.reset();
        let second = env.kill("up", *point, fast);
        let down = env.down_clears();
        for (what, result) in [("up again", &up_again), ("down", &down)] {
            if let Err(why) = result {
                failures.push(format!("up killed {}, then {what}: {why}", point.label()));
            }
        }
        rows.push(vec![
            point.label(),
            format!("{} / {}", outcome(first), outcome(second)),
            cell(&up_again),
            cell(&down),
        ]);
    }
    common::print_matrix(
        &format!("kill matrix: `up` killed ({name})"),
        &["kill point", "outcome", "then up: same end state", "then down: nothing left"],
        &rows,
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // The points were reached: most runs died there rather than finishing first.
    let killed = rows.iter().filter(|r| r[1].starts_with("killed /")).count();
    assert!(killed >= points.len() - 1, "{rows:?}");
}

/// Kills `down` of a complete lab at each point; then `down` again must clear the lab, and (from
/// a second kill) `up` must bring it back whole.
fn down_matrix(name: &str, points: &[Point], fast: bool) {
    let env = Local::with_stub(name);
    env.full_lab(fast);
    let full = env.end_state();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for point in points {
        env.full_lab(fast);
        let first = env.kill("down", *point, fast);
        let down_again = env.down_clears();
        env.full_lab(fast);
        let second = env.kill("down", *point, fast);
        let up = env.up_converges(&full, fast);
        for (what, result) in [("down again", &down_again), ("up", &up)] {
            if let Err(why) = result {
                failures.push(format!("down killed {}, then {what}: {why}", point.label()));
            }
        }
        rows.push(vec![
            point.label(),
            format!("{} / {}", outcome(first), outcome(second)),
            cell(&down_again),
            cell(&up),
        ]);
    }
    common::print_matrix(
        &format!("kill matrix: `down` killed ({name})"),
        &["kill point", "outcome", "then down: nothing left", "then up: same end state"],
        &rows,
    );
    assert!(failures.is_empty(), "{failures:#?}");
    let killed = rows.iter().filter(|r| r[1].starts_with("killed /")).count();
    assert!(killed >= points.len() - 1, "{rows:?}");
}

#[test]
fn up_killed_after_each_step_recovers() {
    up_matrix("kill-up-steps", &UP_STEPS.map(Point::After), false);
}

#[test]
fn up_killed_during_each_mutating_call_recovers() {
    up_matrix("kill-up-calls", &UP_CALLS.map(Point::During), false);
}

#[test]
fn down_killed_after_each_step_recovers() {
    down_matrix("kill-down-steps", &DOWN_STEPS.map(Point::After), false);
}

#[test]
fn down_killed_during_each_mutating_call_recovers() {
    down_matrix("kill-down-calls", &DOWN_CALLS.map(Point::During), false);
}

/// `up --fast-path` killed at the fast path's steps and in its calls: `up --fast-path` again
/// reaches the same end state (trail logging, the rule with its one target, the permission);
/// `down` leaves neither trail nor rule.
#[test]
fn up_with_the_fast_path_killed_at_its_steps_and_calls_recovers() {
    up_matrix("kill-up-fast", &FAST_UP_POINTS, true);
}

/// `down` of a lab with the fast path killed at its steps and calls.
#[test]
fn down_with_the_fast_path_killed_at_its_steps_and_calls_recovers() {
    down_matrix("kill-down-fast", &FAST_DOWN_POINTS, true);
}
