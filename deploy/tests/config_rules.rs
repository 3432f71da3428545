//! The Config rule as AWS handles it, not as moto does: a deleted rule stays DELETING for a
//! while (PutConfigRule and DeleteConfigRule on it answer ResourceInUseException),
//! StartConfigRulesEvaluation is allowed about once a minute per rule, and
//! GetComplianceDetailsByConfigRule answers in pages. The local AWS reproduces each
//! (`localaws::behaviours`); these tests run the real `deploy` binary against it.

mod common;

use common::Local;
use localaws::behaviours::Behaviours;
use serde_json::Value;

fn rule_state(env: &Local) -> Option<String> {
    let rules = env.block_on(env.lab.clients.config.describe_config_rules().send()).unwrap();
    let rule = rules.config_rules().iter().find(|r| r.config_rule_name() == Some(env.lab.names.rule.as_str()));
    rule.map(|r| r.config_rule_state().map(|s| s.as_str().to_owned()).unwrap_or_default())
}

/// `down`, `down`, `up`: the second `down` finds the rule DELETING and counts it deleted (exit
/// 0, and says so); `up` waits, saying so, until Config is done, then creates the rule.
#[test]
fn down_twice_then_up_waits_for_the_rule_config_is_deleting() {
    let env = Local::with_stub("config-rules-deleting");
    // Long enough that the rule is still DELETING through the second `down` and up to `up`'s
    // rule step, short enough for a test.
    env.local.set_behaviours(Behaviours { rule_deleting_ms: 12_000, ..Behaviours::aws_like() });
    env.up();

    let first = env.deploy(&["down"]);
    assert_eq!(first.code, 0, "first down failed:\n{}\n{}", first.stdout, first.stderr);
    assert_eq!(rule_state(&env).as_deref(), Some("DELETING"), "the local AWS does not keep the rule DELETING");

    let second = env.deploy(&["down"]);
    assert_eq!(second.code, 0, "a second down right after the first failed:\n{}\n{}", second.stdout, second.stderr);
    let rule_line = second.stdout.lines().find(|l| l.contains(&env.lab.names.rule)).unwrap_or_default();
    assert!(rule_line.contains("absent") && rule_line.contains("being deleted"), "{}", second.stdout);

    let status = env.deploy(&["status"]);
    assert_eq!(status.code, 0, "status failed:\n{}", status.stderr);
    assert!(status.stdout.contains("DELETING"), "{}", status.stdout);

    let zip = env.zip.display().to_string();
    let up = env.deploy(&["up", "--zip", &zip]);
    assert_eq!(up.code, 0, "up right after down failed:\n{}\n{}", up.stdout, up.stderr);
    assert!(
        up.stderr.contains("waiting for Config to finish deleting rule"),
        "up did not say what it waited for:\n{}",
        up.stderr
    );
    let rule_line = up.stdout.lines().find(|l| l.contains(&env.lab.names.rule)).unwrap_or_default();
    assert!(rule_line.contains("created"), "{}", up.stdout);
    assert_eq!(rule_state(&env).as_deref(), Some("ACTIVE"));

    let last = env.deploy(&["down"]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert_eq!(env.leftovers(), Vec::<String>::new());
}

/// `evaluate` right after `up` and right after another `evaluate`: Config refuses the second
/// request within its interval; `deploy` retries, saying so, and succeeds.
#[test]
fn evaluate_twice_in_a_row_retries_until_config_accepts() {
    let env = Local::with_stub("config-rules-evaluate");
    // Longer than a `deploy` run takes to reach its first call on a loaded machine (seconds).
    env.local.set_behaviours(Behaviours { evaluation_interval_ms: 10_000, ..Behaviours::aws_like() });
    env.up();
    let calls = |env: &Local| env.calls().get("config:StartConfigRulesEvaluation").copied().unwrap_or(0);

    let first = env.deploy(&["evaluate"]);
    assert_eq!(first.code, 0, "evaluate right after up failed:\n{}", first.stderr);
    let before = calls(&env);
    let second = env.deploy(&["evaluate"]);
    assert_eq!(second.code, 0, "a second evaluate failed:\n{}", second.stderr);
    assert!(
        second.stderr.contains("waiting for Config to accept another evaluation"),
        "the second evaluate did not say it waited:\n{}",
        second.stderr
    );
    assert!(calls(&env) - before >= 2, "the second evaluate was not refused once and retried");
    assert_eq!(env.deploy(&["down"]).code, 0);
}

/// 25 groups and the default one, evaluated: `status` shows all 26, read in one page of 100
/// (Config's default page is 10).
#[test]
fn status_shows_every_evaluated_group() {
    let env = Local::start("config-rules-paging");
    let ec2 = &env.lab.clients.ec2;
    let vpc = env.block_on(deploy::status::default_group_id(&env.lab)).unwrap().unwrap();
    let vpc = env.block_on(ec2.describe_security_groups().group_ids(&vpc).send()).unwrap().security_groups()[0]
        .vpc_id()
        .unwrap()
        .to_owned();
    for n in 0..25 {
        let created = ec2
            .create_security_group()
            .group_name(format!("paging-{n:02}"))
            .description("paging test")
            .vpc_id(&vpc)
            .send();
        env.block_on(created).unwrap();
    }
    env.up();
    assert!(env.block_on(env.local.settle(std::time::Duration::from_secs(60))), "evaluations still running");

    // Config pages by 10 unless asked for more: so does the local AWS.
    let details = env.lab.clients.config.get_compliance_details_by_config_rule().config_rule_name(&env.lab.names.rule);
    let first_page = env.block_on(details.send()).unwrap();
    assert_eq!(first_page.evaluation_results().len(), 10);
    assert!(first_page.next_token().is_some());

    let before = env.calls().get("config:GetComplianceDetailsByConfigRule").copied().unwrap_or(0);
    let run = env.deploy(&["status", "--output", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    let results = status["compliance"]["results"].as_array().unwrap();
    let mut ids: Vec<&str> = results.iter().filter_map(|r| r["groupId"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 26, "status shows {} groups, not 26: {status:#}", ids.len());
    let pages = env.calls().get("config:GetComplianceDetailsByConfigRule").copied().unwrap_or(0) - before;
    assert_eq!(pages, 1, "status read compliance in {pages} pages, not one page of 100");

    // The text shows them all too.
    let text = env.deploy(&["status"]);
    assert_eq!(text.stdout.lines().filter(|l| l.trim_start().starts_with("sg-")).count(), 26, "{}", text.stdout);
    assert_eq!(env.deploy(&["down"]).code, 0);
}
