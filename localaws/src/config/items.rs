//! What Config records and sends: a security group as a configuration item (version 1.3),
//! which rules a change triggers, and the events a custom rule's function receives
//! (`ConfigurationItemChangeNotification`, `ScheduledNotification`).

use aws_sdk_config::types::{ConfigRule, Owner};
use serde_json::{json, Value};

use super::{now, SECURITY_GROUP};

/// The rule applies to security-group changes: a custom Lambda rule triggered by configuration
/// changes whose scope includes security groups (or has no scope).
pub fn change_triggered(rule: &ConfigRule) -> bool {
    let Some(source) = rule.source() else { return false };
    let custom = *source.owner() == Owner::CustomLambda;
    let on_change = source
        .source_details()
        .iter()
        .any(|d| d.message_type().is_some_and(|m| m.as_str() == "ConfigurationItemChangeNotification"));
    custom && on_change && in_scope(rule)
}

/// The rule is periodic (ScheduledNotification).
pub fn periodic(rule: &ConfigRule) -> bool {
    let Some(source) = rule.source() else { return false };
    *source.owner() == Owner::CustomLambda
        && source
            .source_details()
            .iter()
            .any(|d| d.message_type().is_some_and(|m| m.as_str() == "ScheduledNotification"))
}

fn in_scope(rule: &ConfigRule) -> bool {
    rule.scope().is_none_or(|s| {
        s.compliance_resource_types().is_empty() || s.compliance_resource_types().iter().any(|t| t == SECURITY_GROUP)
    })
}

/// A security group as Config records it (`configuration` of a configuration item).
pub fn group_configuration(group: &aws_sdk_ec2::types::SecurityGroup) -> Value {
    let permissions = |list: &[aws_sdk_ec2::types::IpPermission]| -> Vec<Value> {
        list.iter()
            .map(|p| {
                let v4: Vec<&str> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
                json!({
                    "fromPort": p.from_port(),
                    "ipProtocol": p.ip_protocol(),
                    "ipv6Ranges": p.ipv6_ranges().iter().map(|r| json!({"cidrIpv6": r.cidr_ipv6(), "description": r.description()})).collect::<Vec<_>>(),
                    "prefixListIds": p.prefix_list_ids().iter().map(|r| json!({"prefixListId": r.prefix_list_id(), "description": r.description()})).collect::<Vec<_>>(),
                    "toPort": p.to_port(),
                    "userIdGroupPairs": p.user_id_group_pairs().iter().map(|r| json!({"groupId": r.group_id(), "userId": r.user_id(), "description": r.description()})).collect::<Vec<_>>(),
                    "ipv4Ranges": p.ip_ranges().iter().map(|r| json!({"cidrIp": r.cidr_ip(), "description": r.description()})).collect::<Vec<_>>(),
                    "ipRanges": v4,
                })
            })
            .collect()
    };
    json!({
        "description": group.description(),
        "groupName": group.group_name(),
        "ipPermissions": permissions(group.ip_permissions()),
        "ownerId": group.owner_id(),
        "groupId": group.group_id(),
        "ipPermissionsEgress": permissions(group.ip_permissions_egress()),
        "tags": group.tags().iter().map(|t| json!({"key": t.key(), "value": t.value()})).collect::<Vec<_>>(),
        "vpcId": group.vpc_id(),
    })
}

fn iso(seconds: f64) -> String {
    aws_smithy_types::DateTime::from_secs_f64(seconds)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

/// A configuration item (version 1.3) of a security group; `group` is `None` when it was deleted.
pub fn configuration_item(
    account: &str,
    region: &str,
    group_id: &str,
    group: Option<&aws_sdk_ec2::types::SecurityGroup>,
    captured: f64,
) -> Value {
    let tags: serde_json::Map<String, Value> = group
        .map(|g| {
            g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), json!(t.value().unwrap_or_default())))).collect()
        })
        .unwrap_or_default();
    let relationships: Vec<Value> = group
        .and_then(|g| g.vpc_id())
        .map(|vpc| vec![json!({"resourceId": vpc, "resourceName": null, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"})])
        .unwrap_or_default();
    json!({
        "relatedEvents": [],
        "relationships": relationships,
        "configuration": group.map(group_configuration),
        "supplementaryConfiguration": {},
        "tags": tags,
        "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": iso(captured),
        "configurationStateId": (captured * 1000.0) as u64,
        "awsAccountId": account,
        "configurationItemStatus": if group.is_some() { "OK" } else { "ResourceDeleted" },
        "resourceType": SECURITY_GROUP,
        "resourceId": group_id,
        "resourceName": group.and_then(|g| g.group_name()),
        "ARN": format!("arn:aws:ec2:{region}:{account}:security-group/{group_id}"),
        "awsRegion": region,
        "availabilityZone": "Not Applicable",
        "configurationStateMd5Hash": "",
        "resourceCreationTime": null,
    })
}

/// The event Config sends a custom rule's function.
pub fn rule_event(
    account: &str,
    rule: &ConfigRule,
    invoking_event: &Value,
    token: &str,
    execution_role: &str,
) -> Value {
    json!({
        "version": "1.0",
        "invokingEvent": invoking_event.to_string(),
        "ruleParameters": rule.input_parameters().unwrap_or("{}"),
        "resultToken": token,
        "eventLeftScope": false,
        "executionRoleArn": execution_role,
        "configRuleArn": rule.config_rule_arn(),
        "configRuleName": rule.config_rule_name(),
        "configRuleId": rule.config_rule_id(),
        "accountId": account,
        "evaluationMode": "DETECTIVE",
    })
}

pub fn change_notification(item: Value) -> Value {
    json!({
        "configurationItemDiff": null,
        "configurationItem": item,
        "notificationCreationTime": iso(now()),
        "messageType": "ConfigurationItemChangeNotification",
        "recordVersion": "1.3",
    })
}

pub fn scheduled_notification(account: &str) -> Value {
    json!({"awsAccountId": account, "notificationCreationTime": iso(now()), "messageType": "ScheduledNotification", "recordVersion": "1.0"})
}
