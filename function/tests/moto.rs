//! The handler with the real SDK clients: EC2 against a moto server started per test, Config
//! against a recording endpoint (moto answers PutEvaluations without TestMode with HTTP 500).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
use serde_json::{json, Value};
use sg_function::Handler;
use testkit::{CountingProxy, MotoServer, RecordingEndpoint};

struct Lab {
    _moto: MotoServer,
    ec2: aws_sdk_ec2::Client,
    recorder: RecordingEndpoint,
    handler: Handler<aws_sdk_ec2::Client, aws_sdk_config::Client>,
}

async fn lab(put_evaluations_response: Value) -> Lab {
    let moto = MotoServer::start();
    let sdk = moto.sdk_config().await;
    let recorder = RecordingEndpoint::start(put_evaluations_response).await;
    let config = aws_sdk_config::Client::from_conf(
        aws_sdk_config::config::Builder::from(&sdk).endpoint_url(&recorder.endpoint).build(),
    );
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let handler = Handler::new(ec2.clone(), config).unwrap();
    Lab { _moto: moto, ec2, recorder, handler }
}

fn tcp(port: i32, cidrs: &[&str]) -> IpPermission {
    let mut permission = IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port);
    for cidr in cidrs {
        permission = if cidr.contains(':') {
            permission.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(*cidr).build())
        } else {
            permission.ip_ranges(IpRange::builder().cidr_ip(*cidr).description("lab").build())
        };
    }
    permission.build()
}

async fn default_group(ec2: &aws_sdk_ec2::Client) -> String {
    let groups = ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("default").build())
        .send()
        .await
        .unwrap();
    groups.security_groups()[0].group_id().unwrap().to_owned()
}

/// The group's ingress as compact rules.
async fn ingress(ec2: &aws_sdk_ec2::Client, group_id: &str) -> BTreeSet<String> {
    let out = ec2.describe_security_groups().group_ids(group_id).send().await.unwrap();
    let mut rules = BTreeSet::new();
    for p in out.security_groups()[0].ip_permissions() {
        let ports = match (p.from_port(), p.to_port()) {
            (Some(from), Some(to)) if from == to => format!("/{from}"),
            (Some(from), Some(to)) if from >= 0 => format!("/{from}-{to}"),
            _ => String::new(),
        };
        let protocol = p.ip_protocol().unwrap();
        for r in p.ip_ranges() {
            rules.insert(format!("{protocol}{ports}@{}", r.cidr_ip().unwrap()));
        }
        for r in p.ipv6_ranges() {
            rules.insert(format!("{protocol}{ports}@{}", r.cidr_ipv6().unwrap()));
        }
        for r in p.user_id_group_pairs() {
            rules.insert(format!("{protocol}{ports}@{}", r.group_id().unwrap()));
        }
    }
    rules
}

fn change_event(group_id: &str) -> Value {
    let mut event: Value = serde_json::from_str(include_str!("fixtures/change-notification.json")).unwrap();
    let mut invoking: Value = serde_json::from_str(event["invokingEvent"].as_str().unwrap()).unwrap();
    invoking["configurationItem"]["resourceId"] = json!(group_id);
    invoking["configurationItem"]["configuration"]["groupId"] = json!(group_id);
    event["invokingEvent"] = json!(invoking.to_string());
    event
}

fn baseline() -> BTreeSet<String> {
    ["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"].map(String::from).into()
}

#[tokio::test]
async fn lab_group_is_reduced_to_80_and_443_and_the_evaluation_is_sent() {
    let lab = lab(json!({"FailedEvaluations": []})).await;
    let group = default_group(&lab.ec2).await;
    // Lab step 2: HTTP, HTTPS, SMTPS and IMAPS from anywhere.
    lab.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some([80, 443, 465, 993].map(|p| tcp(p, &["0.0.0.0/0"])).to_vec()))
        .send()
        .await
        .unwrap();

    let outcome = lab.handler.handle(change_event(&group)).await.unwrap();

    assert_eq!(ingress(&lab.ec2, &group).await, baseline());
    assert_eq!(outcome.revoked[0].rules, ["tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"]);
    let requests = lab.recorder.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].target, "StarlingDoveService.PutEvaluations");
    let body = &requests[0].body;
    assert_eq!(body["ResultToken"], "eyJyZXN1bHRUb2tlbiI6ImxhYiJ9");
    let evaluation = &body["Evaluations"][0];
    assert_eq!(evaluation["ComplianceResourceType"], "AWS::EC2::SecurityGroup");
    assert_eq!(evaluation["ComplianceResourceId"], group.as_str());
    assert_eq!(evaluation["ComplianceType"], "NON_COMPLIANT");
    assert_eq!(evaluation["Annotation"], "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    assert_eq!(evaluation["OrderingTimestamp"].as_f64(), Some(1_468_963_472.582));

    // The evaluation that Config runs after the remediation finds the group compliant.
    lab.handler.handle(change_event(&group)).await.unwrap();
    let requests = lab.recorder.requests();
    assert_eq!(requests[1].body["Evaluations"][0]["ComplianceType"], "COMPLIANT");
    assert_eq!(requests[1].body["Evaluations"][0]["Annotation"], "Permissions are correct.");
}

#[tokio::test]
async fn multi_source_permissions_are_revoked_rule_by_rule() {
    let lab = lab(json!({"FailedEvaluations": []})).await;
    let vpc = lab.ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_owned();
    let group =
        lab.ec2.create_security_group().group_name("mixed").description("mixed").vpc_id(&vpc).send().await.unwrap();
    let group = group.group_id().unwrap().to_owned();
    let other = default_group(&lab.ec2).await;
    lab.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(vec![
            tcp(80, &["0.0.0.0/0", "10.0.0.0/8"]),
            tcp(443, &["::/0"]),
            IpPermission::builder()
                .ip_protocol("-1")
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&other).build())
                .build(),
        ]))
        .send()
        .await
        .unwrap();

    let outcome = lab.handler.handle(change_event(&group)).await.unwrap();

    assert_eq!(ingress(&lab.ec2, &group).await, baseline());
    assert_eq!(outcome.authorized[0].rules, ["tcp/443@0.0.0.0/0"]);
    let evaluation = &lab.recorder.requests()[0].body["Evaluations"][0];
    assert_eq!(
        evaluation["Annotation"],
        format!("Revoked all@{other}, tcp/80@10.0.0.0/8, tcp/443@::/0; authorized tcp/443@0.0.0.0/0.").as_str()
    );
}

#[tokio::test]
async fn scheduled_sweep_fixes_every_group_of_the_region() {
    let lab = lab(json!({"FailedEvaluations": []})).await;
    let vpc = lab.ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_owned();
    let mut created = Vec::new();
    for i in 0..12 {
        let id = lab
            .ec2
            .create_security_group()
            .group_name(format!("g{i}"))
            .description("sweep")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        let id = id.group_id().unwrap().to_owned();
        lab.ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(vec![tcp(80, &["0.0.0.0/0"]), tcp(1000 + i, &["192.168.0.0/16"])]))
            .send()
            .await
            .unwrap();
        created.push(id);
    }
    let all = lab.ec2.describe_security_groups().send().await.unwrap().security_groups().len();

    let event: Value = serde_json::from_str(include_str!("fixtures/scheduled-notification.json")).unwrap();
    lab.handler.handle(event).await.unwrap();

    for id in &created {
        assert_eq!(ingress(&lab.ec2, id).await, baseline(), "{id}");
    }
    let evaluated: Vec<Value> =
        lab.recorder.requests().iter().flat_map(|r| r.body["Evaluations"].as_array().unwrap().clone()).collect();
    assert_eq!(evaluated.len(), all);
    assert!(evaluated.iter().all(|e| e["OrderingTimestamp"].as_f64() == Some(1_468_965_600.0)));
}

#[tokio::test]
async fn failed_evaluations_fail_the_invocation() {
    let lab = lab(json!({"FailedEvaluations": [{"ComplianceResourceType": "AWS::EC2::SecurityGroup", "ComplianceResourceId": "sg-x", "ComplianceType": "COMPLIANT", "OrderingTimestamp": 1.0}]})).await;
    let group = default_group(&lab.ec2).await;
    let err = lab.handler.handle(change_event(&group)).await.unwrap_err();
    assert_eq!(err.to_string(), "PutEvaluations rejected 1 of 1 evaluations; Config will retry the evaluation");
}

/// The lab's case on the wire: the group opened to 80, 443, 465 and 993, evaluated from
/// `event(group)`. Every EC2 call of the function goes through a counting proxy to moto; its
/// Config call (PutEvaluations) reaches the recorder, after the EC2 calls. Returns the EC2
/// operations (sorted) and the sequential round trips, the report included.
async fn lab_case_on_the_wire(event: impl Fn(&str) -> Value) -> (Vec<String>, usize) {
    let moto = MotoServer::start();
    let sdk = moto.sdk_config().await;
    let recorder = RecordingEndpoint::start(json!({"FailedEvaluations": []})).await;
    let ec2_wire = CountingProxy::start(&moto.endpoint).await;
    let direct = aws_sdk_ec2::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk).endpoint_url(&ec2_wire.endpoint).build(),
    );
    let config = aws_sdk_config::Client::from_conf(
        aws_sdk_config::config::Builder::from(&sdk).endpoint_url(&recorder.endpoint).build(),
    );
    let handler = Handler::new(ec2, config).unwrap();
    let group = default_group(&direct).await;
    direct
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some([80, 443, 465, 993].map(|p| tcp(p, &["0.0.0.0/0"])).to_vec()))
        .send()
        .await
        .unwrap();

    handler.handle(event(&group)).await.unwrap();

    assert_eq!(ingress(&direct, &group).await, baseline());
    let calls = ec2_wire.calls();
    let mut operations: Vec<String> = calls.iter().filter_map(|c| c.operation.clone()).collect();
    operations.sort();
    let puts = recorder.requests().len();
    assert_eq!(puts, 1);
    let evaluation = &recorder.requests()[0].body["Evaluations"][0];
    assert_eq!(evaluation["Annotation"], "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    (operations, testkit::round_trips(&calls) + puts)
}

#[tokio::test]
async fn the_lab_case_takes_two_round_trips_on_the_wire() {
    // The lab's function takes 4 (describe, revoke 465, revoke 993, put). This one acts on the
    // configuration item Config sent: the revoke of 465 and 993, then the report.
    let (operations, trips) = lab_case_on_the_wire(change_event).await;
    assert_eq!(operations, ["RevokeSecurityGroupIngress"], "one revoke of 465 and 993; no read before or after");
    assert_eq!(trips, 2);
}

#[tokio::test]
async fn the_lab_case_read_from_ec2_takes_three_round_trips_on_the_wire() {
    // An item without the group's configuration (an oversized item's summary): the group and
    // its rule ids read together, the revoke, the report.
    let summary = |group: &str| {
        let mut event = change_event(group);
        let mut invoking: Value = serde_json::from_str(event["invokingEvent"].as_str().unwrap()).unwrap();
        invoking["configurationItem"].as_object_mut().unwrap().remove("configuration");
        event["invokingEvent"] = json!(invoking.to_string());
        event
    };
    let (operations, trips) = lab_case_on_the_wire(summary).await;
    assert_eq!(
        operations,
        ["DescribeSecurityGroupRules", "DescribeSecurityGroups", "RevokeSecurityGroupIngress"],
        "one read of the group with its rule ids, one revoke of 465 and 993; no re-read"
    );
    assert_eq!(trips, 3);
}

#[tokio::test]
async fn a_referenced_group_of_another_account_is_revoked_with_its_owner() {
    // A rule referencing a group of account 999999999999 (a peer's group, as EC2 describes it).
    // The sweep revokes by permission: EC2 matches the rule only with the group's UserId.
    let lab = lab(json!({"FailedEvaluations": []})).await;
    let group = default_group(&lab.ec2).await;
    let peer = UserIdGroupPair::builder().group_id(&group).user_id("999999999999").build();
    lab.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(vec![
            tcp(80, &["0.0.0.0/0"]),
            tcp(443, &["0.0.0.0/0"]),
            IpPermission::builder().ip_protocol("tcp").from_port(5432).to_port(5432).user_id_group_pairs(peer).build(),
        ]))
        .send()
        .await
        .unwrap();

    let event: Value = serde_json::from_str(include_str!("fixtures/scheduled-notification.json")).unwrap();
    lab.handler.handle(event).await.unwrap();

    assert_eq!(ingress(&lab.ec2, &group).await, baseline());
    let evaluated: Vec<Value> =
        lab.recorder.requests().iter().flat_map(|r| r.body["Evaluations"].as_array().unwrap().clone()).collect();
    let mine = evaluated.iter().find(|e| e["ComplianceResourceId"] == group.as_str()).unwrap();
    assert_eq!(mine["Annotation"], format!("Revoked tcp/5432@{group}.").as_str());
}
