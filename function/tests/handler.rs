//! The handler against in-memory fakes of EC2 and Config, fed with events shaped exactly as
//! AWS Config sends them (`tests/fixtures/`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;
use sg_function::aws::{AwsError, Ec2, ErrorKind, EvaluationRecord, Evaluations, GroupPage, RulesByGroup};
use sg_function::evaluate::{Compliance, GroupState};
use sg_function::rules::{ObservedRule, Rule};
use sg_function::{Handler, HandlerError};

const LAB_GROUP: &str = "sg-0a1b2c3d4e5f60718";
const TOKEN: &str = "eyJyZXN1bHRUb2tlbiI6ImxhYiJ9";

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!("fixtures/", $name))).unwrap()
    };
}

/// A group's tags and its rules with their ids.
type FakeGroup = (BTreeMap<String, String>, Vec<(String, Rule)>);

/// EC2 in memory: groups with rules that carry ids, a call log, and operations to deny or fail.
#[derive(Default)]
struct FakeEc2 {
    groups: Mutex<BTreeMap<String, FakeGroup>>,
    calls: Mutex<Vec<String>>,
    denied: BTreeSet<&'static str>,
    failing: BTreeSet<&'static str>,
    page_size: usize,
    next_id: Mutex<u64>,
    /// Groups holding a rule that cannot be interpreted: every read of them says so.
    unreadable: BTreeSet<String>,
    /// Groups whose rule ids cannot be read completely (e.g. too many pages).
    rules_unreadable: BTreeSet<String>,
    /// Groups deleted by someone else right after they were read.
    vanishing: BTreeSet<String>,
}

impl FakeEc2 {
    fn with_group(self, id: &str, rules: &[&str]) -> Self {
        let rules = rules.iter().map(|r| (self.new_id(), r.parse().unwrap())).collect();
        self.groups.lock().unwrap().insert(id.to_owned(), (BTreeMap::new(), rules));
        self
    }

    fn tag(self, id: &str, key: &str) -> Self {
        self.groups.lock().unwrap().get_mut(id).unwrap().0.insert(key.to_owned(), "yes".into());
        self
    }

    fn deny(mut self, operation: &'static str) -> Self {
        self.denied.insert(operation);
        self
    }

    fn fail(mut self, operation: &'static str) -> Self {
        self.failing.insert(operation);
        self
    }

    fn unreadable_error(operation: &'static str, id: &str) -> AwsError {
        AwsError::new(operation, ErrorKind::Unreadable, format!("{id} has a rule this function cannot interpret"))
    }

    fn new_id(&self) -> String {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        format!("sgr-{:06}", *next)
    }

    fn rules_of(&self, id: &str) -> Vec<String> {
        let mut rules: Vec<String> = self.groups.lock().unwrap()[id].1.iter().map(|(_, r)| r.to_string()).collect();
        rules.sort();
        rules
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, operation: &'static str) -> Result<(), AwsError> {
        self.calls.lock().unwrap().push(operation.to_owned());
        if self.denied.contains(operation) {
            return Err(AwsError::new(
                operation,
                ErrorKind::AccessDenied,
                "UnauthorizedOperation: You are not authorized",
            ));
        }
        if self.failing.contains(operation) {
            return Err(AwsError::new(operation, ErrorKind::Other, "RequestLimitExceeded: Request limit exceeded."));
        }
        Ok(())
    }

    fn state(&self, id: &str, with_ids: bool) -> Option<GroupState> {
        let groups = self.groups.lock().unwrap();
        let (tags, rules) = groups.get(id)?;
        Some(GroupState {
            group_id: id.to_owned(),
            tags: tags.clone(),
            ingress: rules
                .iter()
                .map(|(rid, rule)| ObservedRule { rule: rule.clone(), id: with_ids.then(|| rid.clone()) })
                .collect(),
        })
    }
}

impl FakeEc2 {
    fn mark_unreadable(&self, mut page: GroupPage) -> GroupPage {
        let (unreadable, groups) = page.groups.into_iter().partition(|g| self.unreadable.contains(&g.group_id));
        page.groups = groups;
        page.unreadable = unreadable
            .into_iter()
            .map(|g: GroupState| {
                let err = Self::unreadable_error("DescribeSecurityGroups", &g.group_id);
                (g.group_id, err)
            })
            .collect();
        page
    }
}

impl Ec2 for FakeEc2 {
    async fn describe_groups(&self, group_ids: &[String]) -> Result<GroupPage, AwsError> {
        self.call("DescribeSecurityGroups")?;
        let groups = group_ids.iter().filter_map(|id| self.state(id, false)).collect();
        Ok(self.mark_unreadable(GroupPage { groups, ..GroupPage::default() }))
    }

    async fn describe_groups_page(&self, next_token: Option<String>) -> Result<GroupPage, AwsError> {
        self.call("DescribeSecurityGroups")?;
        let start: usize = next_token.map(|t| t.parse().unwrap()).unwrap_or(0);
        let ids: Vec<String> = self.groups.lock().unwrap().keys().cloned().collect();
        let end = (start + self.page_size).min(ids.len());
        let groups = ids[start..end].iter().map(|id| self.state(id, false).unwrap()).collect();
        Ok(self.mark_unreadable(GroupPage {
            groups,
            next_token: (end < ids.len()).then(|| end.to_string()),
            ..GroupPage::default()
        }))
    }

    async fn ingress_rules_of(&self, group_ids: &[String]) -> Result<RulesByGroup, AwsError> {
        self.call("DescribeSecurityGroupRules")?;
        Ok(group_ids
            .iter()
            .map(|id| {
                let read = if self.unreadable.contains(id) || self.rules_unreadable.contains(id) {
                    Err(Self::unreadable_error("DescribeSecurityGroupRules", id))
                } else {
                    Ok(self.state(id, true).map(|g| g.ingress).unwrap_or_default())
                };
                (id.clone(), read)
            })
            .collect())
    }

    async fn revoke(&self, group_id: &str, rules: &[ObservedRule]) -> Result<(), AwsError> {
        self.call("RevokeSecurityGroupIngress")?;
        let mut groups = self.groups.lock().unwrap();
        if self.vanishing.contains(group_id) {
            groups.remove(group_id);
            return Err(AwsError::new(
                "RevokeSecurityGroupIngress",
                ErrorKind::GroupNotFound,
                "InvalidGroup.NotFound: The security group does not exist",
            ));
        }
        let existing = &mut groups.get_mut(group_id).unwrap().1;
        for revoked in rules {
            match &revoked.id {
                Some(id) => existing.retain(|(rid, _)| rid != id),
                None => existing.retain(|(_, rule)| rule != &revoked.rule),
            }
        }
        Ok(())
    }

    async fn authorize(&self, group_id: &str, rules: &[Rule]) -> Result<(), AwsError> {
        self.call("AuthorizeSecurityGroupIngress")?;
        for rule in rules {
            let id = self.new_id();
            let mut groups = self.groups.lock().unwrap();
            let existing = &mut groups.get_mut(group_id).unwrap().1;
            if !existing.iter().any(|(_, r)| r == rule) {
                existing.push((id, rule.clone()));
            }
        }
        Ok(())
    }
}

/// Config in memory: records every PutEvaluations and answers with `failed` failures.
#[derive(Default)]
struct FakeConfig {
    puts: Mutex<Vec<(String, Vec<EvaluationRecord>)>>,
    failed: usize,
}

impl Evaluations for FakeConfig {
    async fn put_evaluations(&self, result_token: &str, evaluations: &[EvaluationRecord]) -> Result<usize, AwsError> {
        self.puts.lock().unwrap().push((result_token.to_owned(), evaluations.to_vec()));
        Ok(self.failed)
    }
}

fn lab_ec2() -> FakeEc2 {
    FakeEc2::default()
        .with_group(LAB_GROUP, &["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"])
}

fn handler(ec2: FakeEc2) -> Handler<FakeEc2, FakeConfig> {
    Handler::new(ec2, FakeConfig::default()).unwrap()
}

fn puts(h: &Handler<FakeEc2, FakeConfig>) -> Vec<(String, Vec<EvaluationRecord>)> {
    h.config().puts.lock().unwrap().clone()
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
    // Revoked by rule id, then verified with a fresh read.
    assert_eq!(
        h.ec2().calls(),
        [
            "DescribeSecurityGroups",
            "DescribeSecurityGroupRules",
            "RevokeSecurityGroupIngress",
            "DescribeSecurityGroups"
        ]
    );
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
    assert_eq!(h.ec2().calls(), ["DescribeSecurityGroups"]);
    assert_eq!(h.ec2().rules_of(LAB_GROUP).len(), 4);
    let e = &outcome.evaluations[0];
    assert_eq!(e.compliance_type, Compliance::NonCompliant);
    assert_eq!(e.annotation, "Report mode, not changed: extra tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
}

#[tokio::test]
async fn exempt_group_is_not_applicable_and_untouched() {
    let h = handler(lab_ec2().tag(LAB_GROUP, "guardrail-exempt"));
    let outcome = h.handle(with_parameters(r#"{"exemptTag":"guardrail-exempt"}"#)).await.unwrap();
    assert_eq!(outcome.evaluations[0].compliance_type, Compliance::NotApplicable);
    assert_eq!(h.ec2().calls(), ["DescribeSecurityGroups"]);
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
    let err = h.handle(fixture!("change-notification.json")).await.unwrap_err();
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
    // 7 pages of 40; per page, one read of the drifted groups' rule ids and one verification
    // read of the changed groups — not one per group.
    assert_eq!(count("DescribeSecurityGroups"), 7 + 7);
    assert_eq!(count("DescribeSecurityGroupRules"), 7);
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
            error_code: None
        }
    );
    assert_eq!(parse(fixture!("cloudtrail-create-security-group.json")).groups, ["sg-0123456789abcdef1"]);
    assert_eq!(parse(fixture!("cloudtrail-modify-security-group-rules.json")).groups, [LAB_GROUP]);
    let failed = parse(fixture!("cloudtrail-authorize-ingress-failed.json"));
    assert_eq!(failed.error_code.as_deref(), Some("Client.InvalidPermission.Duplicate"));
    let mut no_group = fixture!("cloudtrail-authorize-ingress.json");
    no_group["detail"]["requestParameters"] = serde_json::json!({"groupName": "default"});
    let err = Invocation::parse(&no_group).unwrap_err();
    assert!(err.to_string().contains("names no security group id"), "{err}");
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
    for unread in ["sg-00000000000000001", "sg-00000000000000002"] {
        assert_eq!(by_id[unread].compliance_type, Compliance::NonCompliant);
        assert!(by_id[unread].annotation.starts_with("Not changed: "), "{}", by_id[unread].annotation);
        assert_eq!(h.ec2().rules_of(unread), ["tcp/22@0.0.0.0/0", "tcp/80@0.0.0.0/0"], "untouched");
    }
    let gone = by_id["sg-00000000000000003"];
    assert_eq!(gone.compliance_type, Compliance::NotApplicable);
    assert_eq!(gone.annotation, "The security group sg-00000000000000003 no longer exists.");
    assert_eq!(h.ec2().rules_of("sg-00000000000000004"), ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
    let changed: Vec<&str> = outcome.revoked.iter().map(|c| c.group_id.as_str()).collect();
    assert_eq!(changed, ["sg-00000000000000004"]);
}

#[tokio::test]
async fn a_change_event_for_an_unreadable_group_changes_nothing() {
    let mut ec2 = lab_ec2();
    ec2.unreadable.insert(LAB_GROUP.into());
    let h = handler(ec2);
    let outcome = h.handle(fixture!("change-notification.json")).await.unwrap();
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
