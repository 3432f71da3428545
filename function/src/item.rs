//! The group as a configuration item records it: the `configuration` of an
//! `AWS::EC2::SecurityGroup` item (EC2's `SecurityGroup` in camelCase, as Config's
//! `ConfigurationItemChangeNotification` carries it).
//!
//! A change-triggered rule evaluates the item it is sent ("Components of a rule", AWS Config
//! Developer Guide): the function acts on the item instead of reading the group again, which
//! saves the read's round trip. The item is advisory, never trusted blindly: one that does not
//! name the resource it is for, or holds a rule this function cannot interpret, is not used
//! (the handler reads the group from EC2 instead), and EC2's answers to the change say whether
//! the item was still the group's state (see the handler's `check_item`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::evaluate::GroupState;
use crate::rules::{GroupPair, GroupPeer, IpRange, Ipv6Range, ObservedRule, Permission, PrefixListId, Source};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Configuration {
    group_id: String,
    #[serde(default)]
    ip_permissions: Vec<ItemPermission>,
    #[serde(default)]
    tags: Vec<ItemTag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemTag {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemPermission {
    ip_protocol: String,
    #[serde(default)]
    from_port: Option<i32>,
    #[serde(default)]
    to_port: Option<i32>,
    /// The current form; items recorded before it have only `ipRanges`, a list of CIDRs.
    #[serde(default)]
    ipv4_ranges: Option<Vec<ItemV4>>,
    #[serde(default)]
    ip_ranges: Vec<Value>,
    #[serde(default)]
    ipv6_ranges: Vec<ItemV6>,
    #[serde(default)]
    prefix_list_ids: Vec<ItemPrefixList>,
    #[serde(default)]
    user_id_group_pairs: Vec<ItemPair>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemV4 {
    cidr_ip: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemV6 {
    cidr_ipv6: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemPrefixList {
    prefix_list_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemPair {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    vpc_id: Option<String>,
    #[serde(default)]
    vpc_peering_connection_id: Option<String>,
}

/// The group the item recorded, or why the item cannot stand for it (a sentence).
pub fn group_of(resource_id: &str, configuration: &Value) -> Result<GroupState, String> {
    // Some items carry the configuration as a JSON string.
    let parsed;
    let configuration = match configuration {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|e| format!("the item's configuration is a string that is not JSON ({e})"))?;
            &parsed
        }
        other => other,
    };
    let configuration = Configuration::deserialize(configuration)
        .map_err(|e| format!("the item's configuration is not a security group's ({e})"))?;
    if configuration.group_id != resource_id {
        return Err(format!(
            "the item's configuration is of {}, not of the resource {resource_id} it is for",
            configuration.group_id
        ));
    }
    let tags: BTreeMap<String, String> =
        configuration.tags.into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect();
    let mut ingress = Vec::new();
    for p in configuration.ip_permissions {
        let ip_ranges = match p.ipv4_ranges {
            Some(ranges) => ranges.into_iter().map(|r| r.cidr_ip).collect(),
            None => p
                .ip_ranges
                .iter()
                .map(|r| match r {
                    Value::String(cidr) => Ok(cidr.clone()),
                    other => other["cidrIp"].as_str().map(str::to_owned).ok_or_else(|| {
                        format!("an ipRanges entry of the item is neither a CIDR nor has cidrIp: {other}")
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let peers: Vec<(Option<String>, Option<GroupPeer>)> = p
            .user_id_group_pairs
            .iter()
            .map(|pair| {
                let peer = GroupPeer::of(
                    pair.user_id.as_deref(),
                    pair.vpc_id.as_deref(),
                    pair.vpc_peering_connection_id.as_deref(),
                );
                (pair.group_id.clone(), peer)
            })
            .collect();
        let permission = Permission {
            ip_protocol: p.ip_protocol,
            from_port: p.from_port,
            to_port: p.to_port,
            ip_ranges: ip_ranges.into_iter().map(|cidr_ip| IpRange { cidr_ip, description: None }).collect(),
            ipv6_ranges: p
                .ipv6_ranges
                .into_iter()
                .map(|r| Ipv6Range { cidr_ipv6: r.cidr_ipv6, description: None })
                .collect(),
            prefix_list_ids: p
                .prefix_list_ids
                .into_iter()
                .map(|r| PrefixListId { prefix_list_id: r.prefix_list_id, description: None })
                .collect(),
            user_id_group_pairs: p
                .user_id_group_pairs
                .into_iter()
                .map(|pair| GroupPair { group_id: pair.group_id, user_id: None, description: None })
                .collect(),
        };
        let rules =
            permission.expand().map_err(|e| format!("the item holds a rule this function cannot interpret ({e})"))?;
        ingress.extend(rules.into_iter().map(|rule| {
            let peer = match &rule.source {
                Source::Group(id) => {
                    peers.iter().find(|(group, _)| group.as_deref() == Some(id.as_str())).and_then(|(_, p)| p.clone())
                }
                _ => None,
            };
            ObservedRule { peer, ..ObservedRule::from(rule) }
        }));
    }
    Ok(GroupState { group_id: configuration.group_id, tags, ingress })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(group: &GroupState) -> Vec<String> {
        group.ingress.iter().map(|o| o.rule.to_string()).collect()
    }

    #[test]
    fn the_lab_item_is_read_rule_by_rule_with_its_tags() {
        let configuration = json!({
            "groupId": "sg-1", "groupName": "default", "vpcId": "vpc-1", "ownerId": "123456789012",
            "tags": [{"key": "lab", "value": "yes"}],
            "ipPermissions": [
                {"fromPort": 80, "toPort": 80, "ipProtocol": "tcp", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}],
                 "ipRanges": ["0.0.0.0/0"], "ipv6Ranges": [{"cidrIpv6": "::/0"}], "prefixListIds": [], "userIdGroupPairs": []},
                {"fromPort": 465, "toPort": 465, "ipProtocol": "tcp", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0", "description": "smtps"}],
                 "ipRanges": ["0.0.0.0/0"], "ipv6Ranges": [], "prefixListIds": [{"prefixListId": "pl-1"}],
                 "userIdGroupPairs": [{"groupId": "sg-2", "userId": "999999999999", "vpcPeeringConnectionId": "pcx-1"}]},
                {"ipProtocol": "-1", "ipRanges": ["10.0.0.0/8"]}
            ]
        });
        let group = group_of("sg-1", &configuration).unwrap();
        // ipv4Ranges and ipRanges name the same CIDRs: each rule once.
        assert_eq!(
            rules(&group),
            ["tcp/80@0.0.0.0/0", "tcp/80@::/0", "tcp/465@0.0.0.0/0", "tcp/465@pl-1", "tcp/465@sg-2", "all@10.0.0.0/8"]
        );
        assert_eq!(group.tags.get("lab").map(String::as_str), Some("yes"));
        let peer = group.ingress.iter().find_map(|o| o.peer.clone()).unwrap();
        assert_eq!(peer.user_id.as_deref(), Some("999999999999"));
        assert_eq!(peer.vpc_peering_connection_id.as_deref(), Some("pcx-1"));
        assert!(group.ingress.iter().all(|o| o.id.is_none()), "an item has no rule ids");
    }

    #[test]
    fn a_configuration_sent_as_a_json_string_is_read_too() {
        let text = json!({"groupId": "sg-1", "ipPermissions": []}).to_string();
        assert!(group_of("sg-1", &Value::String(text)).unwrap().ingress.is_empty());
    }

    #[test]
    fn an_item_that_cannot_stand_for_the_group_says_why() {
        let other = json!({"groupId": "sg-2", "ipPermissions": []});
        assert_eq!(
            group_of("sg-1", &other).unwrap_err(),
            "the item's configuration is of sg-2, not of the resource sg-1 it is for"
        );
        let bad_cidr = json!({"groupId": "sg-1", "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 1, "toPort": 1, "ipv4Ranges": [{"cidrIp": "nonsense"}]}]});
        assert!(group_of("sg-1", &bad_cidr).unwrap_err().contains("cannot interpret"));
        assert!(group_of("sg-1", &json!({"ipPermissions": []})).unwrap_err().contains("not a security group's"));
        assert!(group_of("sg-1", &json!("{")).unwrap_err().contains("not JSON"));
    }
}
