//! Normalised ingress rules.
//!
//! EC2 describes ingress as permissions that each hold several sources (CIDRs, prefix lists,
//! group references) and optional descriptions. Comparing those structs directly breaks on the
//! first reordering or description. This module expands every permission into atomic [`Rule`]s
//! — one protocol, one port range, exactly one source — with protocol names and numbers
//! normalised and descriptions dropped, so that two rules are equal exactly when EC2 would treat
//! them as the same rule. It also owns the two textual forms of a rule: the EC2 permission JSON
//! (used by `policy/required-ingress.json` and the lab's log lines) and the compact form
//! `tcp/80@0.0.0.0/0` used by the `requiredIngress` rule parameter and in annotations.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IP protocol as EC2 understands it, with names and numbers folded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `-1`: every protocol, every port.
    All,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other protocol number (0–255); EC2 ignores ports for these.
    Number(u8),
}

impl Protocol {
    fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp | Protocol::Icmp | Protocol::Icmpv6)
    }

    /// The value EC2 expects in `IpProtocol`.
    pub fn api_name(self) -> String {
        match self {
            Protocol::All => "-1".to_owned(),
            Protocol::Tcp => "tcp".to_owned(),
            Protocol::Udp => "udp".to_owned(),
            Protocol::Icmp => "icmp".to_owned(),
            Protocol::Icmpv6 => "icmpv6".to_owned(),
            Protocol::Number(n) => n.to_string(),
        }
    }
}

impl FromStr for Protocol {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "icmpv6" | "58" => Protocol::Icmpv6,
            other => match other.parse::<u8>() {
                Ok(n) => Protocol::Number(n),
                Err(_) => {
                    return Err(RuleError(format!(
                        "unknown protocol `{s}`: use tcp, udp, icmp, icmpv6, all (-1) or a protocol number 0-255"
                    )))
                }
            },
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::All => f.write_str("all"),
            other => f.write_str(&other.api_name()),
        }
    }
}

/// Where traffic may come from: exactly one of the four kinds EC2 supports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Ipv4 {
        addr: Ipv4Addr,
        prefix: u8,
    },
    Ipv6 {
        addr: Ipv6Addr,
        prefix: u8,
    },
    PrefixList(String),
    /// A reference to a security group. The owning account is not part of the identity:
    /// group ids are unique across accounts.
    Group(String),
}

impl Source {
    /// Parses a CIDR (v4 or v6, host bits cleared), a prefix-list id (`pl-…`) or a group id
    /// (`sg-…`).
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let s = s.trim();
        if s.starts_with("pl-") {
            return Ok(Source::PrefixList(s.to_owned()));
        }
        if s.starts_with("sg-") {
            return Ok(Source::Group(s.to_owned()));
        }
        parse_cidr(s)
    }
}

fn parse_cidr(s: &str) -> Result<Source, RuleError> {
    let bad = || {
        RuleError(format!(
            "`{s}` is not a source: use an IPv4 or IPv6 CIDR (0.0.0.0/0, ::/0), a prefix list (pl-…) or a security group (sg-…)"
        ))
    };
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        if prefix > 32 {
            return Err(bad());
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        return Ok(Source::Ipv4 { addr: Ipv4Addr::from(u32::from(v4) & mask), prefix });
    }
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        if prefix > 128 {
            return Err(bad());
        }
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        return Ok(Source::Ipv6 { addr: Ipv6Addr::from(u128::from(v6) & mask), prefix });
    }
    Err(bad())
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ipv4 { addr, prefix } => write!(f, "{addr}/{prefix}"),
            Source::Ipv6 { addr, prefix } => write!(f, "{addr}/{prefix}"),
            Source::PrefixList(id) | Source::Group(id) => f.write_str(id),
        }
    }
}

/// One atomic ingress rule. Two rules are equal exactly when EC2 treats them as the same rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: Protocol,
    /// `(from, to)` for TCP/UDP; `(type, code)` for ICMP, where -1 means any. `None` for
    /// protocols without ports.
    pub ports: Option<(i32, i32)>,
    pub source: Source,
}

impl Rule {
    /// Builds a rule from EC2's fields, normalising the protocol and dropping ports that EC2
    /// ignores.
    pub fn new(protocol: &str, from: Option<i32>, to: Option<i32>, source: Source) -> Result<Self, RuleError> {
        let protocol: Protocol = protocol.parse()?;
        let ports = if protocol.has_ports() {
            let (from, to) = match (protocol, from, to) {
                // Any type means any code.
                (Protocol::Icmp | Protocol::Icmpv6, from, to) => {
                    let from = from.unwrap_or(-1);
                    (from, if from == -1 { -1 } else { to.unwrap_or(-1) })
                }
                (_, Some(from), Some(to)) => (from, to),
                _ => {
                    return Err(RuleError(format!(
                        "{protocol} rule from {source} has no port range: give FromPort and ToPort"
                    )))
                }
            };
            let valid = match protocol {
                Protocol::Tcp | Protocol::Udp => 0 <= from && from <= to && to <= 65535,
                _ => (-1..=255).contains(&from) && (-1..=255).contains(&to),
            };
            if !valid {
                return Err(RuleError(format!(
                    "{protocol} port range {from}-{to} is invalid: TCP/UDP ports are 0-65535 with from <= to; ICMP type and code are -1-255"
                )));
            }
            Some((from, to))
        } else {
            None
        };
        Ok(Rule { protocol, ports, source })
    }

    /// The rule as one EC2 permission holding one source, in the shape of
    /// `policy/required-ingress.json` (and of the lab's log lines).
    pub fn to_permission(&self) -> Permission {
        let mut permission = Permission {
            ip_protocol: self.protocol.api_name(),
            from_port: self.ports.map(|(from, _)| from),
            to_port: self.ports.map(|(_, to)| to),
            ..Permission::default()
        };
        match &self.source {
            Source::Ipv4 { .. } => {
                permission.ip_ranges.push(IpRange { cidr_ip: self.source.to_string(), description: None })
            }
            Source::Ipv6 { .. } => {
                permission.ipv6_ranges.push(Ipv6Range { cidr_ipv6: self.source.to_string(), description: None })
            }
            Source::PrefixList(id) => {
                permission.prefix_list_ids.push(PrefixListId { prefix_list_id: id.clone(), description: None })
            }
            Source::Group(id) => permission.user_id_group_pairs.push(GroupPair {
                group_id: Some(id.clone()),
                user_id: None,
                description: None,
            }),
        }
        permission
    }
}

/// Compact form: `tcp/80@0.0.0.0/0`, `tcp/1020-1025@::/0`, `all@sg-123`, `icmp/8:0@10.0.0.0/8`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.protocol)?;
        match (self.protocol, self.ports) {
            (Protocol::Icmp | Protocol::Icmpv6, Some((-1, _))) => {}
            (Protocol::Icmp | Protocol::Icmpv6, Some((t, -1))) => write!(f, "/{t}")?,
            (Protocol::Icmp | Protocol::Icmpv6, Some((t, c))) => write!(f, "/{t}:{c}")?,
            (_, Some((from, to))) if from == to => write!(f, "/{from}")?,
            (_, Some((from, to))) => write!(f, "/{from}-{to}")?,
            (_, None) => {}
        }
        write!(f, "@{}", self.source)
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let format = || {
            RuleError(format!(
                "`{s}` is not a rule: write PROTOCOL[/PORT[-PORT]]@SOURCE, e.g. tcp/80@0.0.0.0/0, tcp/1020-1025@::/0, icmp/8:0@10.0.0.0/8, all@sg-0123"
            ))
        };
        let (left, source) = s.split_once('@').ok_or_else(format)?;
        let source = Source::parse(source)?;
        let (protocol, ports) = match left.split_once('/') {
            Some((protocol, ports)) => (protocol, Some(ports)),
            None => (left, None),
        };
        let parsed: Protocol = protocol.parse()?;
        let number = |p: &str| p.trim().parse::<i32>().map_err(|_| format());
        let (from, to) = match (parsed, ports) {
            (_, None) => (None, None),
            (Protocol::Icmp | Protocol::Icmpv6, Some(p)) => match p.split_once(':') {
                Some((t, c)) => (Some(number(t)?), Some(number(c)?)),
                None => (Some(number(p)?), Some(-1)),
            },
            (Protocol::Tcp | Protocol::Udp, Some(p)) => match p.split_once('-') {
                Some((a, b)) => (Some(number(a)?), Some(number(b)?)),
                None => (Some(number(p)?), Some(number(p)?)),
            },
            (_, Some(_)) => {
                return Err(RuleError(format!("`{s}`: protocol {parsed} has no ports; write {parsed}@SOURCE")))
            }
        };
        Rule::new(protocol, from, to, source)
    }
}

/// A rule as it exists in a group, with the `SecurityGroupRuleId` EC2 gave it when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRule {
    pub rule: Rule,
    pub id: Option<String>,
    /// For a rule that references a group: the owner and peering EC2 described with it. Not part
    /// of the rule's identity (group ids are unique), but a revoke by permission must repeat
    /// them: EC2 matches a referenced group of another account only with its `UserId`, and one
    /// across a peering connection only with its `VpcId` and `VpcPeeringConnectionId`.
    pub peer: Option<GroupPeer>,
}

/// Who owns a referenced group and through which VPC peering it is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPeer {
    pub user_id: Option<String>,
    pub vpc_id: Option<String>,
    pub vpc_peering_connection_id: Option<String>,
}

impl GroupPeer {
    /// `None` when EC2 named none of the three.
    pub fn of(user_id: Option<&str>, vpc_id: Option<&str>, vpc_peering_connection_id: Option<&str>) -> Option<Self> {
        let own = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
        let peer = GroupPeer {
            user_id: own(user_id),
            vpc_id: own(vpc_id),
            vpc_peering_connection_id: own(vpc_peering_connection_id),
        };
        (peer != GroupPeer::default()).then_some(peer)
    }
}

impl ObservedRule {
    pub fn new(rule: Rule, id: Option<String>) -> Self {
        ObservedRule { rule, id, peer: None }
    }
}

impl From<Rule> for ObservedRule {
    fn from(rule: Rule) -> Self {
        ObservedRule::new(rule, None)
    }
}

/// Error in a rule's textual or API form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// An EC2 `IpPermission` in its JSON form (`policy/required-ingress.json`, the lab's
/// `REQUIRED_PERMISSIONS`, and the `ip_permissions` of the lab's log lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Permission {
    pub ip_protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    #[serde(default)]
    pub user_id_group_pairs: Vec<GroupPair>,
    #[serde(default)]
    pub ip_ranges: Vec<IpRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_ranges: Vec<Ipv6Range>,
    #[serde(default)]
    pub prefix_list_ids: Vec<PrefixListId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IpRange {
    pub cidr_ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Ipv6Range {
    pub cidr_ipv6: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PrefixListId {
    pub prefix_list_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GroupPair {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Permission {
    /// Expands the permission into one rule per source.
    pub fn expand(&self) -> Result<Vec<Rule>, RuleError> {
        let sources = self
            .ip_ranges
            .iter()
            .map(|r| Source::parse(&r.cidr_ip))
            .chain(self.ipv6_ranges.iter().map(|r| Source::parse(&r.cidr_ipv6)))
            .chain(self.prefix_list_ids.iter().map(|p| Ok(Source::PrefixList(p.prefix_list_id.clone()))))
            .chain(self.user_id_group_pairs.iter().map(|pair| {
                pair.group_id
                    .clone()
                    .map(Source::Group)
                    .ok_or_else(|| RuleError("a group reference has no GroupId".to_owned()))
            }));
        sources.map(|source| Rule::new(&self.ip_protocol, self.from_port, self.to_port, source?)).collect()
    }
}

/// The embedded baseline, `policy/required-ingress.json`: the lab's REQUIRED_PERMISSIONS.
pub const REQUIRED_INGRESS_JSON: &str = include_str!("../../policy/required-ingress.json");

/// Parses a baseline in EC2 permission JSON into atomic rules.
pub fn parse_permissions_json(json: &str) -> Result<Vec<Rule>, RuleError> {
    let permissions: Vec<Permission> = serde_json::from_str(json)
        .map_err(|e| RuleError(format!("baseline is not a list of EC2 IpPermissions: {e}")))?;
    let mut rules = Vec::new();
    for permission in &permissions {
        rules.extend(permission.expand()?);
    }
    Ok(dedup(rules))
}

/// Parses the compact list of the `requiredIngress` parameter
/// (`tcp/80@0.0.0.0/0,tcp/443@0.0.0.0/0`).
pub fn parse_compact_list(list: &str) -> Result<Vec<Rule>, RuleError> {
    let rules =
        list.split(',').filter(|item| !item.trim().is_empty()).map(str::parse).collect::<Result<Vec<Rule>, _>>()?;
    Ok(dedup(rules))
}

/// The baseline compiled into the function.
pub fn embedded_baseline() -> Result<Vec<Rule>, RuleError> {
    parse_permissions_json(REQUIRED_INGRESS_JSON)
}

fn dedup(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.sort();
    rules.dedup();
    rules
}

/// Renders rules as the `ip_permissions` JSON of the lab's log lines.
pub fn permissions_json<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> String {
    let permissions: Vec<Permission> = rules.into_iter().map(Rule::to_permission).collect();
    serde_json::to_string(&permissions).unwrap_or_else(|e| format!("<unprintable permissions: {e}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap()
    }

    #[test]
    fn protocol_names_and_numbers_are_one_protocol() {
        assert_eq!(rule("tcp/80@0.0.0.0/0"), rule("6/80@0.0.0.0/0"));
        assert_eq!(rule("udp/53@0.0.0.0/0"), rule("17/53@0.0.0.0/0"));
        assert_eq!(rule("all@0.0.0.0/0"), rule("-1@0.0.0.0/0"));
        assert_eq!(rule("TCP/80@0.0.0.0/0"), rule("tcp/80@0.0.0.0/0"));
    }

    #[test]
    fn all_traffic_ignores_ports() {
        let r = Rule::new("-1", Some(-1), Some(-1), Source::parse("0.0.0.0/0").unwrap()).unwrap();
        assert_eq!(r.ports, None);
        assert_eq!(r, rule("all@0.0.0.0/0"));
    }

    #[test]
    fn cidrs_are_canonical() {
        assert_eq!(rule("tcp/22@10.1.2.3/8"), rule("tcp/22@10.0.0.0/8"));
        assert_eq!(rule("tcp/22@0:0:0:0:0:0:0:0/0"), rule("tcp/22@::/0"));
        assert_eq!(rule("tcp/22@2001:DB8::1/32").to_string(), "tcp/22@2001:db8::/32");
    }

    #[test]
    fn compact_form_round_trips() {
        for s in [
            "tcp/80@0.0.0.0/0",
            "tcp/1020-1025@::/0",
            "all@sg-0123",
            "icmp/8:0@10.0.0.0/8",
            "icmp@0.0.0.0/0",
            "icmp/3@0.0.0.0/0",
            "udp/0-65535@pl-12ab",
            "47@192.168.0.0/16",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
    }

    #[test]
    fn bad_compact_rules_name_the_problem() {
        let err = "tcp/80".parse::<Rule>().unwrap_err();
        assert!(err.0.contains("PROTOCOL[/PORT[-PORT]]@SOURCE"), "{err}");
        let err = "tcp/90-80@0.0.0.0/0".parse::<Rule>().unwrap_err();
        assert!(err.0.contains("90-80"), "{err}");
        let err = "tcp/80@0.0.0.0/33".parse::<Rule>().unwrap_err();
        assert!(err.0.contains("0.0.0.0/33"), "{err}");
        let err = "smtp/25@0.0.0.0/0".parse::<Rule>().unwrap_err();
        assert!(err.0.contains("unknown protocol `smtp`"), "{err}");
        let err = "all/80@0.0.0.0/0".parse::<Rule>().unwrap_err();
        assert!(err.0.contains("has no ports"), "{err}");
    }

    #[test]
    fn a_permission_expands_to_one_rule_per_source() {
        let permission = Permission {
            ip_protocol: "tcp".into(),
            from_port: Some(80),
            to_port: Some(80),
            ip_ranges: vec![
                IpRange { cidr_ip: "0.0.0.0/0".into(), description: Some("web".into()) },
                IpRange { cidr_ip: "10.0.0.0/8".into(), description: None },
            ],
            ipv6_ranges: vec![Ipv6Range { cidr_ipv6: "::/0".into(), description: None }],
            prefix_list_ids: vec![PrefixListId { prefix_list_id: "pl-1".into(), description: None }],
            user_id_group_pairs: vec![GroupPair {
                group_id: Some("sg-1".into()),
                user_id: Some("123".into()),
                description: None,
            }],
        };
        let rules = permission.expand().unwrap();
        assert_eq!(
            rules,
            vec![
                rule("tcp/80@0.0.0.0/0"),
                rule("tcp/80@10.0.0.0/8"),
                rule("tcp/80@::/0"),
                rule("tcp/80@pl-1"),
                rule("tcp/80@sg-1")
            ]
        );
    }

    #[test]
    fn embedded_baseline_is_the_labs_required_permissions() {
        assert_eq!(embedded_baseline().unwrap(), vec![rule("tcp/80@0.0.0.0/0"), rule("tcp/443@0.0.0.0/0")]);
    }

    #[test]
    fn log_json_has_the_ec2_shape() {
        let json = permissions_json(&[rule("tcp/465@0.0.0.0/0")]);
        assert_eq!(
            json,
            r#"[{"IpProtocol":"tcp","FromPort":465,"ToPort":465,"UserIdGroupPairs":[],"IpRanges":[{"CidrIp":"0.0.0.0/0"}],"PrefixListIds":[]}]"#
        );
        assert_eq!(parse_permissions_json(&json).unwrap(), vec![rule("tcp/465@0.0.0.0/0")]);
    }
}
