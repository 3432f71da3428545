//! The handler against in-memory fakes of EC2 and Config, fed with events shaped exactly as
//! AWS Config sends them (`tests/fixtures/`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sg_function::aws::EvaluationRecord;
use sg_function::evaluate::Compliance;
use sg_function::fake::{FakeConfig, FakeEc2};
use sg_function::{Handler, HandlerError};

const LAB_GROUP: &str = "sg-0a1b2c3d4e5f60718";
const TOKEN: &str = "eyJyZXN1bHRUb2tlbiI6ImxhYiJ9";

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!("fixtures/", $name))).unwrap()
    };
}

fn lab_ec2() -> FakeEc2 {
    FakeEc2::default()
        .with_group(LAB_GROUP, &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"])
}

fn handler(ec2: FakeEc2) -> Handler<FakeEc2, FakeConfig> {
    Handler::new(ec2, FakeConfig::default()).unwrap()
}

fn puts(h: &Handler<FakeEc2, FakeConfig>) -> Vec<(String, Vec<EvaluationRecord>)> {
    h.config().puts()
}

/// The event with its configuration item's `configuration` replaced by `configuration`
/// (`Value::Null`: removed, so the function reads the group from EC2).
fn with_configuration(mut event: Value, configuration: Value) -> Value {
    let mut invoking: Value = serde_json::from_str(event["invokingEvent"].as_str().unwrap()).unwrap();
    match configuration {
        Value::Null => {
            invoking["configurationItem"].as_object_mut().unwrap().remove("configuration");
        }
        configuration => invoking["configurationItem"]["configuration"] = configuration,
    }
    event["invokingEvent"] = Value::String(invoking.to_string());
    event
}

/// The lab's change event without the group's configuration: the group is read from EC2.
fn read_from_ec2(event: Value) -> Value {
    with_configuration(event, Value::Null)
}

/// The `configuration` of an item recording `LAB_GROUP` with these ingress rules (`tcp/P@CIDR`).
fn recorded(rules: &[&str], tags: &[(&str, &str)]) -> Value {
    let permissions: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let (port, cidr) = rule.trim_start_matches("tcp/").split_once('@').unwrap();
            let port: i32 = port.parse().unwrap();
            serde_json::json!({"fromPort": port, "toPort": port, "ipProtocol": "tcp", "ipv4Ranges": [{"cidrIp": cidr}],
                "ipRanges": [cidr], "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []})
        })
        .collect();
    let tags: Vec<Value> = tags.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect();
    serde_json::json!({"groupId": LAB_GROUP, "groupName": "default", "vpcId": "vpc-0a1b2c3d", "ipPermissions": permissions, "tags": tags})
}

fn time(record: &EvaluationRecord) -> String {
    record.ordering_timestamp.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap()
}

#[tokio::test]
async fn lab_group_is_reduced_to_http_and_https_and_reported_non_compliant() {
    let h = handler(lab_ec2());
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.revoked[0].rules, ["tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"]);
    assert!(outcome.authorized.is_empty());
    let puts = puts(&h);
    assert_eq!(puts.len(), 1);
    let (token, evaluations) = &puts[0];
    assert_eq!(token, TOKEN);
    let e = &evaluations[0];
    assert_eq!(
        (e.compliance_resource_type.as_str(), e.compliance_resource_id.as_str()),
        ("AWS::EC2::SecurityGroup", LAB_GROUP)
    );
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert_eq!(e.annotation, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    assert_eq!(time(e), "2016-07-19T21:24:32.582Z");
    // Revoked from the configuration item, by permission, and verified from the revoke's
    // answer: no read before the change or after it.
    assert_eq!(h.ec2().calls(), ["RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn an_item_without_configuration_is_read_from_ec2_with_its_rule_ids() {
    let h = handler(lab_ec2());
    let outcome = h.handle(read_from_ec2(fixture!("change-notification.json"))).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.evaluations[0].annotation, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    // Revoked by rule id and verified from the revoke's answer: no read after the change.
    assert_eq!(h.ec2().calls(), ["DescribeSecurityGroups", "DescribeSecurityGroupRules", "RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn an_item_older_than_the_group_is_checked_against_ec2() {
    // The item shows 465 and 993; since then 465 went and 22 came (its own item follows).
    // EC2 does not confirm revoking 465, so the group is read, and 22 goes too.
    let h = handler(
        FakeEc2::default()
            .with_group(LAB_GROUP, &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/993@0.0.0.0/0", "tcp/22@0.0.0.0/0"]),
    );
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    // What this invocation revoked: 993 from the item, 22 after the read; never 465.
    assert_eq!(e.annotation, "Revoked tcp/993@0.0.0.0/0, tcp/22@0.0.0.0/0.");
    assert_eq!(
        h.ec2().calls(),
        [
            "RevokeSecurityGroupIngress",
            "DescribeSecurityGroups",
            "DescribeSecurityGroupRules",
            "RevokeSecurityGroupIngress"
        ]
    );
}

#[tokio::test]
async fn an_item_whose_changes_were_already_made_reports_the_group_as_it_is() {
    // The fast path fixed the group before Config's evaluation of the item arrived.
    let h = handler(FakeEc2::default().with_group(LAB_GROUP, &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]));
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    let e = &outcome.evaluations[0];
    assert_eq!((e.compliance_type, e.annotation.as_str()), (Compliance::Compliant, "Permissions are correct."));
    assert!(outcome.revoked.is_empty() && outcome.authorized.is_empty());
}

#[tokio::test]
async fn an_item_the_function_cannot_act_on_is_read_from_ec2() {
    let other_group = serde_json::json!({"groupId": "sg-0000000000000dead", "ipPermissions": []});
    let bad_rule = serde_json::json!({"groupId": LAB_GROUP, "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 1, "toPort": 1, "ipv4Ranges": [{"cidrIp": "ten/8"}]}]});
    for configuration in [other_group, bad_rule, Value::String("{".into())] {
        let h = handler(lab_ec2());
        let outcome = h.handle(with_configuration(fixture!("change-notification.json"), configuration)).await.unwrap();
        assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
        assert_eq!(outcome.evaluations[0].annotation, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
        assert_eq!(h.ec2().calls()[0], "DescribeSecurityGroups");
    }
}

#[tokio::test]
async fn an_item_missing_a_required_rule_gets_it_added_with_no_read() {
    let h = handler(FakeEc2::default().with_group(LAB_GROUP, &["tcp/80@0.0.0.0/0", "tcp/22@10.0.0.0/8"]));
    let event = with_configuration(
        fixture!("change-notification.json"),
        recorded(&["tcp/80@0.0.0.0/0", "tcp/22@10.0.0.0/8"], &[]),
    );
    let outcome = h.handle(event).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.evaluations[0].annotation, "Revoked tcp/22@10.0.0.0/8; authorized tcp/443@0.0.0.0/0.");
    let mut calls = h.ec2().calls();
    calls.sort();
    assert_eq!(calls, ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn a_read_that_lags_the_revoke_does_not_make_a_fixed_group_incomplete() {
    // EC2's reads lag its writes: right after the revoke, a read still shows 465 and 993.
    let h = handler(FakeEc2 { stale_reads: true, ..lab_ec2() });
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    let e = &outcome.evaluations[0];
    assert_eq!(
        (e.compliance_type, e.annotation.as_str()),
        (Compliance::NonCompliant, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.")
    );
}

#[tokio::test]
async fn a_change_its_answer_leaves_in_doubt_is_read_again_bounded() {
    // The revoke's answer says it matched nothing (a default VPC's UnknownIpPermissions) and
    // the rules stay: the group is read again, a bounded number of times, then reported.
    let mut ec2 = lab_ec2().deny("DescribeSecurityGroupRules");
    ec2.unmatched_revokes = true;
    let h = handler(ec2);
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert_eq!(e.annotation, "Remediation incomplete: still extra tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    let reads = h.ec2().calls().iter().filter(|c| *c == "DescribeSecurityGroups").count();
    assert_eq!(reads, 1 + sg_function::handler::VERIFY_READS as usize);
}

#[tokio::test]
async fn a_denied_rule_listing_is_asked_once_per_process() {
    // The lab's policy denies DescribeSecurityGroupRules; each denied call is an
    // UnauthorizedOperation in CloudTrail. A warm function does not ask again.
    let h = handler(lab_ec2().deny("DescribeSecurityGroupRules"));
    h.handle(fixture!("change-notification.json")).await.unwrap();
    h.handle(fixture!("change-notification-no-left-scope.json")).await.unwrap();
    h.handle(fixture!("cloudtrail-authorize-ingress.json")).await.unwrap();
    let asked = h.ec2().calls().iter().filter(|c| *c == "DescribeSecurityGroupRules").count();
    assert_eq!(asked, 1, "{:?}", h.ec2().calls());
}

#[tokio::test]
async fn the_evaluation_after_the_remediation_reports_compliant_without_changes() {
    let h = handler(lab_ec2());
    h.handle(fixture!("change-notification.json")).await.unwrap();
    let second = h.handle(fixture!("change-notification-no-left-scope.json")).await.unwrap();
    assert!(second.revoked.is_empty() && second.authorized.is_empty());
    let e = &second.evaluations[0];
    assert_eq!((e.compliance_type, e.annotation.as_str()), (Compliance::Compliant, "Permissions are correct."));
    assert_eq!(puts(&h).len(), 2);
}

#[tokio::test]
async fn oversized_notification_reads_the_group_from_ec2() {
    let h = handler(lab_ec2());
    let outcome = h.handle(fixture!("oversized-notification.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NonCompliant);
    assert_eq!(time(&outcome.evaluations[0]), "2016-07-19T21:24:32.582Z");
}

#[tokio::test]
async fn not_applicable_events_make_no_ec2_call() {
    let cases = [
        (
            fixture!("change-notification-other-type.json"),
            "The rule doesn't apply to resources of type AWS::EC2::Instance.",
            "2016-07-19T21:24:32.582Z",
        ),
        (
            fixture!("change-notification-deleted.json"),
            "The configuration item was deleted and therefore cannot be validated.",
            "2016-07-19T21:24:32.582Z",
        ),
        (
            fixture!("change-notification-deleted-not-recorded.json"),
            "The configuration item was deleted and therefore cannot be validated.",
            "2016-07-19T21:24:33.383Z",
        ),
        (
            fixture!("change-notification-left-scope.json"),
            "The resource left the rule's scope.",
            "2016-07-19T21:24:32.582Z",
        ),
    ];
    for (event, annotation, ordering) in cases {
        let h = handler(lab_ec2());
        let outcome = h.handle(event).await.unwrap();
        let e = &outcome.evaluations[0];
        assert_eq!((e.compliance_type, e.annotation.as_str()), (Compliance::NotApplicable, annotation));
        assert_eq!(time(e), ordering);
        assert!(h.ec2().calls().is_empty(), "{annotation}: {:?}", h.ec2().calls());
        assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
        assert_eq!(puts(&h).len(), 1);
    }
}

#[tokio::test]
async fn a_group_gone_when_read_is_not_applicable() {
    let h = handler(FakeEc2::default());
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NotApplicable);
    assert_eq!(e.annotation, format!("The security group {LAB_GROUP} no longer exists."));
}

#[tokio::test]
async fn malformed_events_fail_before_any_call() {
    let cases = [
        (
            fixture!("malformed-invoking-event-not-json.json"),
            "`invokingEvent` is not the JSON string of an invoking event",
        ),
        (fixture!("malformed-invoking-event-not-a-string.json"), "invalid type: map, expected a string"),
        (fixture!("malformed-missing-result-token.json"), "missing field `resultToken`"),
        (fixture!("malformed-missing-resource-id.json"), "missing field `resourceId`"),
        (fixture!("malformed-bad-capture-time.json"), "`configurationItemCaptureTime` is `yesterday`"),
        (
            fixture!("malformed-unknown-message-type.json"),
            "messageType `ComplianceChangeNotification` is not one this rule handles",
        ),
        (serde_json::json!([1, 2]), "expected a JSON object, got an array"),
        (serde_json::json!({}), "missing field `invokingEvent`"),
    ];
    for (event, expected) in cases {
        let h = handler(lab_ec2());
        let err = h.handle(event).await.unwrap_err();
        assert!(matches!(err, HandlerError::Event(_)), "{err}");
        assert!(err.to_string().starts_with("malformed Config event: "), "{err}");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert_eq!(err.error_type(), "MalformedEvent");
        assert!(h.ec2().calls().is_empty());
        assert!(puts(&h).is_empty());
        assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
    }
}

#[tokio::test]
async fn bad_rule_parameters_fail_before_any_call() {
    let cases = [
        (fixture!("bad-parameter-debug-no.json"), "rule parameter `debug` is `no`: allowed values are true and false"),
        (fixture!("bad-parameter-unknown-key.json"), "rule parameter `ports` is unknown"),
    ];
    for (event, expected) in cases {
        let h = handler(lab_ec2());
        let err = h.handle(event).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        assert!(err.to_string().ends_with("no security group was read or changed"), "{err}");
        assert!(h.ec2().calls().is_empty());
        assert!(puts(&h).is_empty());
    }
}

fn with_parameters(parameters: &str) -> Value {
    let mut event = fixture!("change-notification.json");
    event["ruleParameters"] = Value::String(parameters.to_owned());
    event
}

#[tokio::test]
async fn report_mode_changes_nothing() {
    let h = handler(lab_ec2());
    let outcome = h.handle(with_parameters(r#"{"mode":"report"}"#)).await.unwrap();
    // Evaluated from the configuration item: nothing to read, nothing changed.
    assert!(h.ec2().calls().is_empty(), "{:?}", h.ec2().calls());
    assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert_eq!(e.annotation, "Report mode, not changed: extra tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
}

#[tokio::test]
async fn exempt_group_is_not_applicable_and_untouched() {
    let h = handler(lab_ec2().tag(LAB_GROUP, "guardrail-exempt"));
    let lab = ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"];
    let event = with_configuration(
        with_parameters(r#"{"exemptTag":"guardrail-exempt"}"#),
        recorded(&lab, &[("guardrail-exempt", "")]),
    );
    let outcome = h.handle(event).await.unwrap();
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NotApplicable);
    // The item carries the tag: nothing read, nothing changed.
    assert!(h.ec2().calls().is_empty(), "{:?}", h.ec2().calls());
    assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);

    // Read from EC2 (the rule ids at the same time as the group), never changed.
    let h = handler(lab_ec2().tag(LAB_GROUP, "guardrail-exempt"));
    let outcome = h.handle(read_from_ec2(with_parameters(r#"{"exemptTag":"guardrail-exempt"}"#))).await.unwrap();
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NotApplicable);
    assert_eq!(h.ec2().calls(), ["DescribeSecurityGroups", "DescribeSecurityGroupRules"]);
    assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
}

#[tokio::test]
async fn required_ingress_parameter_replaces_the_baseline() {
    let h = handler(lab_ec2());
    let outcome =
        h.handle(with_parameters(r#"{"requiredIngress":"tcp/443@0.0.0.0/0,tcp/1020-1025@::/0"}"#)).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/1020-1025@::/0", "tcp/443@0.0.0.0/0"]);
    assert_eq!(
        outcome.evaluations[0].annotation,
        "Revoked tcp/80@0.0.0.0/0, tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0; authorized tcp/1020-1025@::/0."
    );
}

#[tokio::test]
async fn denied_revoke_is_non_compliant_naming_the_permission() {
    let h = handler(lab_ec2().deny("RevokeSecurityGroupIngress"));
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert_eq!(
        e.annotation,
        format!(
            "Could not check {LAB_GROUP}: ec2:RevokeSecurityGroupIngress was denied; grant it to the function's role."
        )
    );
    assert_eq!(puts(&h).len(), 1);
}

#[tokio::test]
async fn denied_rule_listing_falls_back_to_revoking_by_permission() {
    // The lab's policy grants DescribeSecurityGroups but not DescribeSecurityGroupRules.
    let h = handler(lab_ec2().deny("DescribeSecurityGroupRules"));
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.evaluations[0].annotation, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
}

#[tokio::test]
async fn other_ec2_failures_fail_the_invocation_without_an_evaluation() {
    let h = handler(lab_ec2().fail("DescribeSecurityGroups"));
    let err = h.handle(read_from_ec2(fixture!("change-notification.json"))).await.unwrap_err();
    assert_eq!(err.error_type(), "AwsCallFailed");
    assert_eq!(
        err.to_string(),
        format!("DescribeSecurityGroups failed: RequestLimitExceeded: Request limit exceeded. (security group {LAB_GROUP}; Config retries the evaluation)")
    );
    assert!(puts(&h).is_empty());
}

#[tokio::test]
async fn rejected_evaluations_fail_the_invocation() {
    let h = Handler::new(lab_ec2(), FakeConfig { failed: 1, ..FakeConfig::default() }).unwrap();
    let err = h.handle(fixture!("change-notification.json")).await.unwrap_err();
    assert!(matches!(err, HandlerError::EvaluationsRejected { failed: 1, sent: 1 }), "{err}");
}

#[tokio::test]
async fn scheduled_sweep_pages_through_every_group_and_reports_in_batches_of_100() {
    let mut ec2 = FakeEc2 { page_size: 40, ..FakeEc2::default() };
    for i in 0..250 {
        let rules: &[&str] = if i % 3 == 0 {
            &["tcp/22@0.0.0.0/0", "tcp/80@0.0.0.0/0"]
        } else {
            &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]
        };
        ec2 = ec2.with_group(&format!("sg-{i:017}"), rules);
    }
    let h = handler(ec2);
    let outcome = h.handle(fixture!("scheduled-notification.json")).await.unwrap();
    let puts = puts(&h);
    assert_eq!(puts.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(), [100, 100, 50]);
    let ids: BTreeSet<&str> =
        puts.iter().flat_map(|(_, e)| e.iter().map(|e| e.compliance_resource_id.as_str())).collect();
    assert_eq!(ids.len(), 250);
    assert!(puts.iter().flat_map(|(_, e)| e).all(|e| time(e) == "2016-07-19T22:00:00Z"));
    assert_eq!(outcome.revoked.len(), 84);
    assert_eq!(outcome.authorized.len(), 84);
    let count = |op: &str| h.ec2().calls().iter().filter(|c| *c == op).count();
    // 7 pages of 40 and no read after the changes (their answers confirm them); revokes go by
    // permission, from the page, with no read of rule ids.
    assert_eq!(count("DescribeSecurityGroups"), 7);
    assert_eq!(count("DescribeSecurityGroupRules"), 0);
    assert_eq!(count("RevokeSecurityGroupIngress"), 84);
    for i in 0..250 {
        assert_eq!(h.ec2().rules_of(&format!("sg-{i:017}")), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    }
}

#[tokio::test]
async fn api_call_events_remediate_the_changed_group_without_reporting() {
    let h = handler(lab_ec2());
    let outcome = h.handle(fixture!("cloudtrail-authorize-ingress.json")).await.unwrap();
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    assert_eq!(outcome.revoked[0].group_id, LAB_GROUP);
    assert!(outcome.evaluations.is_empty());
    assert!(puts(&h).is_empty(), "no result token, no PutEvaluations");
    // The function's own revoke comes back as an event: it finds nothing to do.
    let again = h.handle(fixture!("cloudtrail-authorize-ingress.json")).await.unwrap();
    assert!(again.revoked.is_empty() && again.authorized.is_empty());
}

#[tokio::test]
async fn failed_api_calls_are_ignored() {
    let h = handler(lab_ec2());
    let outcome = h.handle(fixture!("cloudtrail-authorize-ingress-failed.json")).await.unwrap();
    assert_eq!(outcome, sg_function::Outcome::default());
    assert!(h.ec2().calls().is_empty());
}

#[tokio::test]
async fn api_call_groups_come_from_request_or_response() {
    use sg_function::event::{ApiCall, Invocation};
    let parse = |v: Value| match Invocation::parse(&v).unwrap() {
        Invocation::ApiCall(call) => call,
        other => panic!("{other:?}"),
    };
    let call = parse(fixture!("cloudtrail-authorize-ingress.json"));
    // The referenced group in ipPermissions is a source, not a changed group.
    assert_eq!(
        call,
        ApiCall {
            event_name: "AuthorizeSecurityGroupIngress".into(),
            groups: vec![LAB_GROUP.into()],
            group_names: vec![],
            error_code: None
        }
    );
    // By name in the default VPC: the id is in the answer's rules, or only the name is known.
    assert_eq!(parse(fixture!("cloudtrail-authorize-ingress-by-group-name.json")).groups, [LAB_GROUP]);
    let by_name = parse(fixture!("cloudtrail-revoke-ingress-by-group-name.json"));
    assert_eq!((by_name.groups.len(), by_name.group_names), (0, vec!["default".to_owned()]));
    assert_eq!(parse(fixture!("cloudtrail-create-security-group.json")).groups, ["sg-0123456789abcdef1"]);
    assert_eq!(parse(fixture!("cloudtrail-modify-security-group-rules.json")).groups, [LAB_GROUP]);
    let failed = parse(fixture!("cloudtrail-authorize-ingress-failed.json"));
    assert_eq!(failed.error_code.as_deref(), Some("Client.InvalidPermission.Duplicate"));
    let mut no_group = fixture!("cloudtrail-authorize-ingress.json");
    no_group["detail"]["requestParameters"] = serde_json::json!({"ipPermissions": {}});
    no_group["detail"]["responseElements"] = serde_json::json!({"_return": true});
    let err = Invocation::parse(&no_group).unwrap_err();
    assert!(err.to_string().contains("names no security group"), "{err}");
}

#[tokio::test]
async fn changes_by_group_name_are_evaluated_not_malformed() {
    // Authorize by name: the group id comes from the answer's securityGroupRuleSet.
    let h = handler(lab_ec2());
    let outcome = h.handle(fixture!("cloudtrail-authorize-ingress-by-group-name.json")).await.unwrap();
    assert_eq!(outcome.revoked[0].group_id, LAB_GROUP);
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    // Revoke by name, whose answer names no group: the name is resolved.
    let ec2 = FakeEc2 { names: BTreeMap::from([("default".to_owned(), LAB_GROUP.to_owned())]), ..lab_ec2() };
    let h = handler(ec2);
    let outcome = h.handle(fixture!("cloudtrail-revoke-ingress-by-group-name.json")).await.unwrap();
    assert_eq!(outcome.revoked[0].group_id, LAB_GROUP);
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
}

#[tokio::test]
async fn api_call_events_use_the_functions_rule_parameters() {
    let h = Handler::new(lab_ec2(), FakeConfig::default())
        .unwrap()
        .with_api_call_parameters(Some(r#"{"mode":"report"}"#.into()));
    let outcome = h.handle(fixture!("cloudtrail-authorize-ingress.json")).await.unwrap();
    assert!(outcome.revoked.is_empty());
    assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
    let bad = Handler::new(lab_ec2(), FakeConfig::default())
        .unwrap()
        .with_api_call_parameters(Some(r#"{"debug":"no"}"#.into()));
    let err = bad.handle(fixture!("cloudtrail-authorize-ingress.json")).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRuleParameter");
    assert!(bad.ec2().calls().is_empty());
}

/// Three drifted groups: one with a rule the function cannot interpret, one whose rule ids
/// cannot be read completely, one deleted meanwhile; and a drifted group that is fine.
fn troubled_region() -> FakeEc2 {
    let drifted = ["tcp/22@0.0.0.0/0", "tcp/80@0.0.0.0/0"];
    let mut ec2 = FakeEc2 { page_size: 10, ..FakeEc2::default() }
        .with_group("sg-00000000000000001", &drifted)
        .with_group("sg-00000000000000002", &drifted)
        .with_group("sg-00000000000000003", &drifted)
        .with_group("sg-00000000000000004", &drifted);
    ec2.unreadable.insert("sg-00000000000000001".into());
    ec2.rules_unreadable.insert("sg-00000000000000002".into());
    ec2.vanishing.insert("sg-00000000000000003".into());
    ec2
}

#[tokio::test]
async fn a_sweep_never_changes_a_group_it_could_not_read_completely() {
    let h = handler(troubled_region());
    let outcome = h.handle(fixture!("scheduled-notification.json")).await.unwrap();
    let by_id: BTreeMap<&str, &EvaluationRecord> =
        outcome.evaluations.iter().map(|e| (e.compliance_resource_id.as_str(), e)).collect();
    assert_eq!(by_id.len(), 4, "{by_id:?}");
    let unread = "sg-00000000000000001";
    assert_eq!(by_id[unread].compliance_type, Compliance::NonCompliant);
    assert!(by_id[unread].annotation.starts_with("Not changed: "), "{}", by_id[unread].annotation);
    assert_eq!(h.ec2().rules_of(unread), ["tcp/22@0.0.0.0/0", "tcp/80@0.0.0.0/0"], "untouched");
    // A sweep revokes by permission from the page it read completely: no rule-id read to fail.
    assert_eq!(h.ec2().rules_of("sg-00000000000000002"), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    let gone = by_id["sg-00000000000000003"];
    assert_eq!(gone.compliance_type, Compliance::NotApplicable);
    assert_eq!(gone.annotation, "The security group sg-00000000000000003 no longer exists.");
    assert_eq!(h.ec2().rules_of("sg-00000000000000004"), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    let changed: Vec<&str> = outcome.revoked.iter().map(|c| c.group_id.as_str()).collect();
    assert_eq!(changed, ["sg-00000000000000002", "sg-00000000000000004"]);
}

#[tokio::test]
async fn a_change_event_whose_rule_ids_cannot_be_read_completely_changes_nothing() {
    let mut ec2 = lab_ec2();
    ec2.rules_unreadable.insert(LAB_GROUP.into());
    let h = handler(ec2);
    let outcome = h.handle(read_from_ec2(fixture!("change-notification.json"))).await.unwrap();
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NonCompliant);
    assert!(outcome.evaluations[0].annotation.starts_with("Not changed: "));
    assert!(!h.ec2().calls().iter().any(|c| c.ends_with("Ingress")), "{:?}", h.ec2().calls());
}

#[tokio::test]
async fn a_change_event_for_an_unreadable_group_changes_nothing() {
    let mut ec2 = lab_ec2();
    ec2.unreadable.insert(LAB_GROUP.into());
    let h = handler(ec2);
    let outcome = h.handle(read_from_ec2(fixture!("change-notification.json"))).await.unwrap();
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NonCompliant);
    assert!(outcome.revoked.is_empty() && outcome.authorized.is_empty());
    assert!(!h.ec2().calls().iter().any(|c| c.ends_with("Ingress")), "{:?}", h.ec2().calls());
}

#[tokio::test]
async fn an_empty_baseline_strips_ingress_only_when_asked_for_by_name() {
    let h = handler(lab_ec2());
    let err = h.handle(with_parameters(r#"{"requiredIngress":""}"#)).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidRuleParameter");
    assert!(h.ec2().calls().is_empty(), "nothing read or changed: {:?}", h.ec2().calls());

    let h = handler(lab_ec2());
    h.handle(with_parameters(r#"{"requiredIngress":"none"}"#)).await.unwrap();
    assert!(h.ec2().rules_of(LAB_GROUP).is_empty());
}

#[tokio::test]
async fn a_rule_the_baseline_requires_is_never_revoked() {
    // The baseline's rules next to all traffic and look-alikes: only the extras go.
    let h = handler(FakeEc2::default().with_group(
        LAB_GROUP,
        &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/8080@0.0.0.0/0", "tcp/443@::/0", "all@0.0.0.0/0"],
    ));
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
    let revoked: Vec<&String> = outcome.revoked.iter().flat_map(|c| &c.rules).collect();
    assert!(revoked.iter().all(|r| *r != "tcp/80@0.0.0.0/0" && *r != "tcp/443@0.0.0.0/0"), "{revoked:?}");
    assert_eq!(h.ec2().rules_of(LAB_GROUP), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
}

#[tokio::test]
async fn a_changed_group_that_reads_back_unreadable_is_not_verified_rather_than_gone() {
    // Read back because the revoke's answer left the rules in doubt.
    let mut ec2 = lab_ec2().deny("DescribeSecurityGroupRules");
    ec2.unmatched_revokes = true;
    ec2.unreadable_once_changed.insert(LAB_GROUP.into());
    let h = handler(ec2);
    let outcome = h.handle(read_from_ec2(fixture!("change-notification.json"))).await.unwrap();
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert!(e.annotation.starts_with("Not verified: "), "{}", e.annotation);
}

/// The fakes behind a round trip of `ms` milliseconds, logging every call in one sequence.
struct Timed<T> {
    inner: T,
    ms: u64,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl<T> Timed<T> {
    async fn trip(&self, op: &str) {
        tokio::time::sleep(std::time::Duration::from_millis(self.ms)).await;
        self.log.lock().unwrap().push(op.to_owned());
    }
}

impl sg_function::aws::Ec2 for Timed<FakeEc2> {
    async fn describe_groups(&self, ids: &[String]) -> Result<sg_function::aws::GroupPage, sg_function::aws::AwsError> {
        self.trip("DescribeSecurityGroups").await;
        self.inner.describe_groups(ids).await
    }
    async fn describe_groups_page(
        &self,
        next: Option<String>,
    ) -> Result<sg_function::aws::GroupPage, sg_function::aws::AwsError> {
        self.trip("DescribeSecurityGroups").await;
        self.inner.describe_groups_page(next).await
    }
    async fn ingress_rules_of(
        &self,
        ids: &[String],
    ) -> Result<sg_function::aws::RulesByGroup, sg_function::aws::AwsError> {
        self.trip("DescribeSecurityGroupRules").await;
        self.inner.ingress_rules_of(ids).await
    }
    async fn revoke(
        &self,
        id: &str,
        rules: &[sg_function::rules::ObservedRule],
    ) -> Result<sg_function::aws::Answered<sg_function::rules::ObservedRule>, sg_function::aws::AwsError> {
        self.trip("RevokeSecurityGroupIngress").await;
        self.inner.revoke(id, rules).await
    }
    async fn authorize(
        &self,
        id: &str,
        rules: &[sg_function::rules::Rule],
    ) -> Result<sg_function::aws::Answered<sg_function::rules::Rule>, sg_function::aws::AwsError> {
        self.trip("AuthorizeSecurityGroupIngress").await;
        self.inner.authorize(id, rules).await
    }
    async fn group_ids_named(&self, names: &[String]) -> Result<Vec<String>, sg_function::aws::AwsError> {
        self.trip("DescribeSecurityGroups").await;
        self.inner.group_ids_named(names).await
    }
    async fn pause(&self, duration: std::time::Duration) {
        self.inner.pause(duration).await
    }
}

impl sg_function::aws::Evaluations for Timed<FakeConfig> {
    async fn put_evaluations(
        &self,
        token: &str,
        evaluations: &[EvaluationRecord],
    ) -> Result<usize, sg_function::aws::AwsError> {
        self.trip("PutEvaluations").await;
        self.inner.put_evaluations(token, evaluations).await
    }
}

type TimedHandler = Handler<Timed<FakeEc2>, Timed<FakeConfig>>;

/// A scheduled sweep of `n` groups, `page_size` a page, 20 ms a call; the groups `drifted(i)`
/// also open tcp/22. The handler after it, its outcome, and every call in the order answered.
async fn timed_sweep(
    n: usize,
    page_size: usize,
    drifted: impl Fn(usize) -> bool,
) -> (TimedHandler, sg_function::Outcome, Vec<String>) {
    let mut ec2 = FakeEc2 { page_size, ..FakeEc2::default() };
    for i in 0..n {
        let rules: &[&str] = if drifted(i) {
            &["tcp/22@0.0.0.0/0", "tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]
        } else {
            &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]
        };
        ec2 = ec2.with_group(&format!("sg-{i:017}"), rules);
    }
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ec2 = Timed { inner: ec2, ms: 20, log: log.clone() };
    let config = Timed { inner: FakeConfig::default(), ms: 20, log: log.clone() };
    let h = Handler::new(ec2, config).unwrap();
    let outcome = h.handle(fixture!("scheduled-notification.json")).await.unwrap();
    let log = log.lock().unwrap().clone();
    (h, outcome, log)
}

/// A page's drifted groups are changed as soon as their page is read, not once every page is:
/// a run whose drift sits past the first page spends no time with EC2's bucket full and idle.
#[tokio::test]
async fn a_sweep_changes_each_page_while_it_reads_the_next() {
    // Four pages of 100: only the second holds drifted groups.
    let (h, outcome, log) = timed_sweep(400, 100, |i| (100..108).contains(&i)).await;
    let describes: Vec<usize> =
        log.iter().enumerate().filter(|(_, c)| *c == "DescribeSecurityGroups").map(|(k, _)| k).collect();
    let first_revoke = log.iter().position(|c| c == "RevokeSecurityGroupIngress").unwrap();
    assert_eq!(describes.len(), 4, "{log:?}");
    // Changed once the second page is read, before the last one is (20 ms a call).
    assert!(describes[1] < first_revoke && first_revoke < describes[3], "{log:?}");
    assert_eq!(outcome.revoked.len(), 8);
    assert_eq!(outcome.evaluations.len(), 400);
    let puts = h.config().inner.puts();
    assert_eq!(puts.iter().map(|(_, e)| e.len()).sum::<usize>(), 400);
    assert_eq!(h.ec2().inner.rules_of("sg-00000000000000107"), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
}

/// A region of one page reports the groups that need nothing while it changes the drifted ones:
/// what is left to report at the end, and so the time kept for it, is the drift alone.
#[tokio::test]
async fn a_one_page_sweep_reports_its_unchanged_groups_while_it_changes_the_rest() {
    let (h, _, log) = timed_sweep(250, 1000, |i| i % 25 == 0).await;
    assert_eq!(log.iter().filter(|c| *c == "DescribeSecurityGroups").count(), 1, "{log:?}");
    let first_put = log.iter().position(|c| c == "PutEvaluations").unwrap();
    let last_revoke = log.iter().rposition(|c| c == "RevokeSecurityGroupIngress").unwrap();
    assert!(first_put < last_revoke, "{log:?}");
    // 240 unchanged: two whole hundreds early; the last call carries the 40 and the 10 changed.
    let puts = h.config().inner.puts();
    assert_eq!(puts.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(), [100, 100, 50]);
}

#[tokio::test]
async fn a_sweep_changes_the_first_page_while_it_reads_the_rest_and_reports_the_unchanged_groups_meanwhile() {
    // Three pages of 100: the first holds the drifted groups, all three compliant ones.
    let (h, outcome, log) = timed_sweep(300, 100, |i| i < 12).await;
    let first = |op: &str| log.iter().position(|c| c == op).unwrap();
    let last = |op: &str| log.iter().rposition(|c| c == op).unwrap();
    // 12 revokes, four at a time, 20 ms each: they begin before the third page is read, and
    // groups that needed nothing are reported before the last revoke.
    assert!(first("RevokeSecurityGroupIngress") < last("DescribeSecurityGroups"), "{log:?}");
    assert!(first("PutEvaluations") < last("RevokeSecurityGroupIngress"), "{log:?}");
    // Every group reported once, in as many calls as 300 evaluations need, each one's result final.
    let puts = h.config().inner.puts();
    assert_eq!(puts.iter().map(|(_, e)| e.len()).collect::<Vec<_>>(), [100, 100, 100]);
    let reported: BTreeMap<String, Compliance> = puts
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| (e.compliance_resource_id.clone(), e.compliance_type)))
        .collect();
    assert_eq!(reported.len(), 300);
    assert_eq!(reported.values().filter(|c| **c == Compliance::NonCompliant).count(), 12);
    assert_eq!(outcome.evaluations.len(), 300);
    assert_eq!(outcome.evaluations[0].compliance_resource_id, "sg-00000000000000000", "in read order");
    assert_eq!(outcome.revoked.len(), 12);
    assert_eq!(h.ec2().inner.rules_of("sg-00000000000000011"), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
}
