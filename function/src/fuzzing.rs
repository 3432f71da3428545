//! The checks of the fuzz target (`fuzz/`): any input, no panic, and the guardrail's invariants.
//! `tests/fuzz_regressions.rs` runs them over the fixtures and every crasher kept in
//! `fuzz/regressions/`.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::evaluate::{plan, Plan};
use crate::event::Invocation;
use crate::fake::{FakeConfig, FakeEc2};
use crate::handler::{Handler, HandlerError};
use crate::parameters::Parameters;
use crate::rules::{embedded_baseline, ObservedRule, Rule};

/// The groups of the fuzzed region: the fixtures' group and two more, each drifted.
const GROUPS: [&str; 3] = ["sg-0a1b2c3d4e5f60718", "sg-00000000000000001", "sg-00000000000000002"];

/// Runs the handler on `data` (a JSON event, as Config or EventBridge would send it) against an
/// in-memory region, and checks: an event or parameters that do not parse make no AWS call at
/// all; every group the handler changed ends up holding exactly the required baseline.
pub fn check_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut ec2 = FakeEc2 { page_size: 2, ..FakeEc2::default() };
    for (i, id) in GROUPS.iter().enumerate() {
        let extra = format!("tcp/{}@0.0.0.0/0", 22 + i);
        ec2 = ec2.with_group(id, &["tcp/80@0.0.0.0/0", &extra, "udp/53@::/0"]);
    }
    let Ok(handler) = Handler::new(ec2, FakeConfig::default()) else { panic!("the embedded baseline is invalid") };
    let result = run(handler.handle(event.clone()));
    match result {
        Err(HandlerError::Event(_) | HandlerError::Parameters(_)) => {
            assert!(handler.ec2().calls().is_empty(), "a malformed event made calls: {:?}", handler.ec2().calls());
            assert!(handler.config().puts().is_empty(), "a malformed event reported evaluations");
        }
        Err(err) => panic!("the in-memory region never fails, yet: {err}"),
        Ok(outcome) => {
            let required = required_of(&event);
            let expected: BTreeSet<String> = required.iter().map(ToString::to_string).collect();
            for change in &outcome.revoked {
                assert!(change.rules.iter().all(|r| !expected.contains(r)), "a required rule was revoked: {change:?}");
            }
            for change in outcome.revoked.iter().chain(&outcome.authorized) {
                let now: BTreeSet<String> = handler.ec2().rules_of(&change.group_id).into_iter().collect();
                assert_eq!(now, expected, "{} after remediation", change.group_id);
            }
        }
    }
}

/// The baseline the event asks for: its `requiredIngress`, else the embedded one.
fn required_of(event: &serde_json::Value) -> Vec<Rule> {
    let parameters = match Invocation::parse(event) {
        Ok(Invocation::Config(parsed)) => Parameters::parse(parsed.rule_parameters.as_deref()),
        _ => Parameters::parse(None),
    };
    parameters.ok().and_then(|p| p.required_ingress).unwrap_or_else(|| embedded_baseline().unwrap_or_default())
}

/// Builds a group's rules and a baseline from `data` and checks the plan: applied, it yields
/// exactly the baseline, and it never revokes a required rule.
pub fn check_plan(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else { return };
    let rules: Vec<Rule> = data.chunks_exact(3).filter_map(rule_of).collect();
    let at = usize::from(split) % (rules.len() + 1);
    let (required, current) = rules.split_at(at);
    let current: Vec<ObservedRule> = current
        .iter()
        .enumerate()
        .map(|(i, rule)| ObservedRule::new(rule.clone(), (i % 3 != 0).then(|| format!("sgr-{i:04}"))))
        .collect();
    let Plan { revoke, authorize } = plan(&current, required);
    let required: BTreeSet<&Rule> = required.iter().collect();
    assert!(revoke.iter().all(|o| !required.contains(&o.rule)), "a required rule was revoked");
    let mut left = current.clone();
    for revoked in &revoke {
        match &revoked.id {
            Some(id) => left.retain(|o| o.id.as_ref() != Some(id)),
            None => left.retain(|o| o.rule != revoked.rule),
        }
    }
    let after: BTreeSet<&Rule> = left.iter().map(|o| &o.rule).chain(&authorize).collect();
    assert_eq!(after, required, "the plan does not yield the baseline");
}

/// Three bytes to a rule: protocol, port, source.
fn rule_of(bytes: &[u8]) -> Option<Rule> {
    let [protocol, port, source] = bytes else { return None };
    let protocol = ["tcp", "udp", "icmp", "all", "50"][usize::from(*protocol) % 5];
    let source = ["0.0.0.0/0", "10.0.0.0/8", "::/0", "pl-0a1b2c", "sg-0123456789abcdef0"][usize::from(*source) % 5];
    let text = match protocol {
        "all" | "50" => format!("{protocol}@{source}"),
        "icmp" => format!("icmp/{}:0@{source}", port % 16),
        _ => format!("{protocol}/{}@{source}", [22, 80, 443, 8080][usize::from(*port) % 4]),
    };
    text.parse().ok()
}

/// Polls a future of the in-memory fakes to completion; they never wait.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("a future of the in-memory fakes did not complete")
}
