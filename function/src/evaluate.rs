//! The evaluation: a pure function from a group's current ingress, the required baseline and the
//! rule parameters to a compliance result and the rules to revoke and authorize.
//!
//! No AWS call happens here; [`crate::handler`] reads the group, calls [`evaluate`], applies the
//! plan and reports. Most of the function's tests live next to this module.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::parameters::{Mode, Parameters};
use crate::rules::{ObservedRule, Rule};

/// Config's limit on an annotation's length.
pub const MAX_ANNOTATION: usize = 256;

/// Annotation of a group that matches the baseline (the lab's words).
pub const COMPLIANT_ANNOTATION: &str = "Permissions are correct.";

/// The compliance types this rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Compliance {
    #[serde(rename = "COMPLIANT")]
    Compliant,
    #[serde(rename = "NON_COMPLIANT")]
    NonCompliant,
    #[serde(rename = "NOT_APPLICABLE")]
    NotApplicable,
}

impl Compliance {
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Compliant => "COMPLIANT",
            Compliance::NonCompliant => "NON_COMPLIANT",
            Compliance::NotApplicable => "NOT_APPLICABLE",
        }
    }
}

impl fmt::Display for Compliance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A security group as the evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupState {
    pub group_id: String,
    pub tags: BTreeMap<String, String>,
    pub ingress: Vec<ObservedRule>,
}

/// What to change so that a group's ingress equals the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Rules present but not required. Rules known by id are listed once per id; rules without
    /// an id once per distinct rule.
    pub revoke: Vec<ObservedRule>,
    /// Required rules that are missing, sorted.
    pub authorize: Vec<Rule>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.revoke.is_empty() && self.authorize.is_empty()
    }
}

/// Computes the revokes and authorizes that turn `current` into exactly `required`.
pub fn plan(current: &[ObservedRule], required: &[Rule]) -> Plan {
    let required_set: BTreeSet<&Rule> = required.iter().collect();
    let present: BTreeSet<&Rule> = current.iter().map(|o| &o.rule).collect();
    let mut revoke = Vec::new();
    let mut seen_without_id = BTreeSet::new();
    for observed in current {
        if required_set.contains(&observed.rule) {
            continue;
        }
        if observed.id.is_none() && !seen_without_id.insert(&observed.rule) {
            continue;
        }
        revoke.push(observed.clone());
    }
    revoke.sort_by(|a, b| a.rule.cmp(&b.rule).then_with(|| a.id.cmp(&b.id)));
    let authorize = required_set.into_iter().filter(|r| !present.contains(r)).cloned().collect();
    Plan { revoke, authorize }
}

/// The evaluation of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub compliance: Compliance,
    pub annotation: String,
    /// What the function must change; empty unless the mode is remediate.
    pub plan: Plan,
}

/// Evaluates one group against the baseline.
pub fn evaluate(group: &GroupState, required: &[Rule], parameters: &Parameters) -> Decision {
    if let Some(tag) = &parameters.exempt_tag {
        if group.tags.contains_key(tag) {
            return Decision {
                compliance: Compliance::NotApplicable,
                annotation: truncate(format!(
                    "Exempt: the group carries the tag `{tag}`, so it is neither evaluated nor changed."
                )),
                plan: Plan::default(),
            };
        }
    }
    let plan = plan(&group.ingress, required);
    if plan.is_empty() {
        return Decision { compliance: Compliance::Compliant, annotation: COMPLIANT_ANNOTATION.to_owned(), plan };
    }
    match parameters.mode {
        Mode::Remediate => Decision {
            compliance: Compliance::NonCompliant,
            annotation: describe_changes("Revoked", "authorized", &plan),
            plan,
        },
        Mode::Report => Decision {
            compliance: Compliance::NonCompliant,
            annotation: describe_changes("Report mode, not changed: extra", "missing", &plan),
            plan: Plan::default(),
        },
    }
}

/// `"Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0; authorized tcp/443@0.0.0.0/0."`, cut to
/// Config's limit.
pub fn describe_changes(revoked: &str, authorized: &str, plan: &Plan) -> String {
    let revoke: Vec<String> = plan.revoke.iter().map(|o| o.rule.to_string()).collect();
    let authorize: Vec<String> = plan.authorize.iter().map(ToString::to_string).collect();
    describe_named(revoked, authorized, &revoke, &authorize)
}

/// [`describe_changes`] of rules already named (`tcp/465@0.0.0.0/0`).
pub fn describe_named(revoked: &str, authorized: &str, revoke: &[String], authorize: &[String]) -> String {
    let mut parts = Vec::new();
    if !revoke.is_empty() {
        parts.push(format!("{revoked} {}", join(revoke)));
    }
    if !authorize.is_empty() {
        let verb = if parts.is_empty() { capitalise(authorized) } else { authorized.to_owned() };
        parts.push(format!("{verb} {}", join(authorize)));
    }
    truncate(format!("{}.", parts.join("; ")))
}

fn join(names: &[String]) -> String {
    let mut names = names.to_vec();
    names.dedup();
    names.join(", ")
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Cuts an annotation to Config's 256-character limit, marking the cut.
pub fn truncate(text: String) -> String {
    if text.chars().count() <= MAX_ANNOTATION {
        return text;
    }
    const MARK: &str = " …";
    let keep = MAX_ANNOTATION - MARK.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(MARK);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{embedded_baseline, Permission};

    fn r(s: &str) -> Rule {
        s.parse().unwrap()
    }

    fn group(rules: &[&str]) -> GroupState {
        GroupState {
            group_id: "sg-0123456789abcdef0".into(),
            tags: BTreeMap::new(),
            ingress: rules.iter().map(|s| ObservedRule::from(r(s))).collect(),
        }
    }

    fn remediate(rules: &[&str]) -> Decision {
        evaluate(&group(rules), &embedded_baseline().unwrap(), &Parameters::default())
    }

    fn names(plan: &Plan) -> (Vec<String>, Vec<String>) {
        (
            plan.revoke.iter().map(|o| o.rule.to_string()).collect(),
            plan.authorize.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn already_compliant_group_needs_nothing() {
        let d = remediate(&["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"]);
        assert_eq!(d.compliance, Compliance::Compliant);
        assert_eq!(d.annotation, "Permissions are correct.");
        assert!(d.plan.is_empty());
    }

    #[test]
    fn lab_case_revokes_smtps_and_imaps() {
        let d = remediate(&["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/465@0.0.0.0/0", "tcp/993@0.0.0.0/0"]);
        assert_eq!(d.compliance, Compliance::NonCompliant);
        assert_eq!(names(&d.plan), (vec!["tcp/465@0.0.0.0/0".into(), "tcp/993@0.0.0.0/0".into()], vec![]));
        assert_eq!(d.annotation, "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.");
    }

    #[test]
    fn multi_cidr_permission_is_one_required_rule_plus_one_extra() {
        let permission: Permission = serde_json::from_str(
            r#"{"IpProtocol":"tcp","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"0.0.0.0/0"},{"CidrIp":"10.0.0.0/8"}]}"#,
        )
        .unwrap();
        let mut g = group(&["tcp/443@0.0.0.0/0"]);
        g.ingress.extend(permission.expand().unwrap().into_iter().map(ObservedRule::from));
        let d = evaluate(&g, &embedded_baseline().unwrap(), &Parameters::default());
        assert_eq!(names(&d.plan), (vec!["tcp/80@10.0.0.0/8".into()], vec![]));
    }

    #[test]
    fn required_rule_with_a_description_is_kept_without_churn() {
        let permission: Permission = serde_json::from_str(
            r#"{"IpProtocol":"6","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"web"}]}"#,
        )
        .unwrap();
        let mut g = group(&["tcp/443@0.0.0.0/0"]);
        g.ingress.extend(permission.expand().unwrap().into_iter().map(ObservedRule::from));
        let d = evaluate(&g, &embedded_baseline().unwrap(), &Parameters::default());
        assert_eq!(d.compliance, Compliance::Compliant);
    }

    #[test]
    fn ipv6_on_443_is_extra_and_ipv4_443_is_missing() {
        let d = remediate(&["tcp/80@0.0.0.0/0", "tcp/443@::/0"]);
        assert_eq!(names(&d.plan), (vec!["tcp/443@::/0".into()], vec!["tcp/443@0.0.0.0/0".into()]));
        assert_eq!(d.annotation, "Revoked tcp/443@::/0; authorized tcp/443@0.0.0.0/0.");
    }

    #[test]
    fn prefix_list_and_group_reference_are_extras() {
        let d = remediate(&["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0", "tcp/443@pl-0a1b2c", "all@sg-0123456789abcdef0"]);
        assert_eq!(names(&d.plan).0, vec!["all@sg-0123456789abcdef0", "tcp/443@pl-0a1b2c"]);
        assert!(d.plan.authorize.is_empty());
    }

    #[test]
    fn all_traffic_does_not_cover_the_required_rules() {
        let d = remediate(&["-1@0.0.0.0/0"]);
        assert_eq!(
            names(&d.plan),
            (vec!["all@0.0.0.0/0".into()], vec!["tcp/80@0.0.0.0/0".into(), "tcp/443@0.0.0.0/0".into()])
        );
    }

    #[test]
    fn full_port_range_is_not_the_required_ports() {
        let d = remediate(&["tcp/0-65535@0.0.0.0/0"]);
        assert_eq!(names(&d.plan).0, vec!["tcp/0-65535@0.0.0.0/0"]);
        assert_eq!(d.plan.authorize.len(), 2);
    }

    #[test]
    fn empty_group_gets_the_baseline() {
        let d = remediate(&[]);
        assert_eq!(names(&d.plan), (vec![], vec!["tcp/80@0.0.0.0/0".into(), "tcp/443@0.0.0.0/0".into()]));
        assert_eq!(d.annotation, "Authorized tcp/80@0.0.0.0/0, tcp/443@0.0.0.0/0.");
    }

    #[test]
    fn duplicates_are_revoked_once_without_ids_and_per_id_with_ids() {
        let d = remediate(&[
            "tcp/80@0.0.0.0/0",
            "tcp/443@0.0.0.0/0",
            "tcp/22@0.0.0.0/0",
            "tcp/22@0.0.0.0/0",
            "tcp/80@0.0.0.0/0",
        ]);
        assert_eq!(names(&d.plan), (vec!["tcp/22@0.0.0.0/0".into()], vec![]));

        let mut g = group(&["tcp/80@0.0.0.0/0", "tcp/443@0.0.0.0/0"]);
        for id in ["sgr-1", "sgr-2"] {
            g.ingress.push(ObservedRule::new(r("tcp/22@0.0.0.0/0"), Some(id.into())));
        }
        let d = evaluate(&g, &embedded_baseline().unwrap(), &Parameters::default());
        let ids: Vec<_> = d.plan.revoke.iter().map(|o| o.id.clone().unwrap()).collect();
        assert_eq!(ids, ["sgr-1", "sgr-2"]);
    }

    #[test]
    fn report_mode_names_the_drift_and_changes_nothing() {
        let params = Parameters { mode: Mode::Report, ..Parameters::default() };
        let d = evaluate(&group(&["tcp/80@0.0.0.0/0", "tcp/993@0.0.0.0/0"]), &embedded_baseline().unwrap(), &params);
        assert_eq!(d.compliance, Compliance::NonCompliant);
        assert!(d.plan.is_empty());
        assert_eq!(d.annotation, "Report mode, not changed: extra tcp/993@0.0.0.0/0; missing tcp/443@0.0.0.0/0.");
    }

    #[test]
    fn exempt_group_is_not_applicable_and_untouched() {
        let params = Parameters { exempt_tag: Some("lab:exempt".into()), ..Parameters::default() };
        let mut g = group(&["all@0.0.0.0/0"]);
        g.tags.insert("lab:exempt".into(), String::new());
        let d = evaluate(&g, &embedded_baseline().unwrap(), &params);
        assert_eq!(d.compliance, Compliance::NotApplicable);
        assert!(d.plan.is_empty());
        assert!(d.annotation.contains("lab:exempt"));
        g.tags.clear();
        assert_eq!(evaluate(&g, &embedded_baseline().unwrap(), &params).compliance, Compliance::NonCompliant);
    }

    #[test]
    fn annotation_never_exceeds_configs_limit() {
        let rules: Vec<String> = (1000..1100).map(|p| format!("tcp/{p}@0.0.0.0/0")).collect();
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let d = remediate(&refs);
        assert_eq!(d.annotation.chars().count(), MAX_ANNOTATION);
        assert!(d.annotation.starts_with("Revoked tcp/1000@0.0.0.0/0, tcp/1001@0.0.0.0/0"));
        assert!(d.annotation.ends_with(" …"));
    }

    mod properties {
        use super::*;
        use crate::rules::Source;
        use proptest::prelude::*;
        use std::net::{Ipv4Addr, Ipv6Addr};

        fn source() -> impl Strategy<Value = Source> {
            prop_oneof![
                (any::<u32>(), 0u8..=32)
                    .prop_map(|(a, p)| Source::parse(&format!("{}/{p}", Ipv4Addr::from(a))).unwrap()),
                Just(Source::parse("0.0.0.0/0").unwrap()),
                (any::<u128>(), 0u8..=128)
                    .prop_map(|(a, p)| Source::parse(&format!("{}/{p}", Ipv6Addr::from(a))).unwrap()),
                "pl-[0-9a-f]{4}".prop_map(Source::PrefixList),
                "sg-[0-9a-f]{4}".prop_map(Source::Group),
            ]
        }

        fn rule() -> impl Strategy<Value = Rule> {
            let protocol = prop_oneof![Just("tcp"), Just("udp"), Just("-1"), Just("icmp"), Just("6"), Just("50")];
            (protocol, 0i32..=65535, 0i32..=200, source(), prop::bool::ANY).prop_map(
                |(p, from, width, source, common)| {
                    if common {
                        let port = if width % 2 == 0 { 80 } else { 443 };
                        return Rule::new("tcp", Some(port), Some(port), Source::parse("0.0.0.0/0").unwrap()).unwrap();
                    }
                    let (from, to) = match p {
                        "icmp" => (from % 256, width % 256),
                        _ => (from, (from + width).min(65535)),
                    };
                    Rule::new(p, Some(from), Some(to), source).unwrap()
                },
            )
        }

        fn observed() -> impl Strategy<Value = Vec<ObservedRule>> {
            prop::collection::vec((rule(), prop::option::of("sgr-[0-9a-f]{6}")), 0..24)
                .prop_map(|v| v.into_iter().map(|(rule, id)| ObservedRule::new(rule, id)).collect())
        }

        fn apply(current: &[ObservedRule], plan: &Plan) -> BTreeSet<Rule> {
            // Revoking by id removes that entry; revoking by rule removes every entry of it.
            let mut left: Vec<&ObservedRule> = current.iter().collect();
            for revoked in &plan.revoke {
                match &revoked.id {
                    Some(id) => left.retain(|o| o.id.as_ref() != Some(id) || o.rule != revoked.rule),
                    None => left.retain(|o| o.rule != revoked.rule),
                }
            }
            left.into_iter().map(|o| o.rule.clone()).chain(plan.authorize.iter().cloned()).collect()
        }

        proptest! {
            #[test]
            fn applying_the_plan_yields_exactly_the_baseline(current in observed(), required in prop::collection::vec(rule(), 1..6)) {
                let current: Vec<ObservedRule> = {
                    // EC2 gives every rule its own id; make ids unique as EC2 does.
                    let mut seen = BTreeSet::new();
                    current.into_iter().map(|mut o| { if let Some(id) = &o.id { if !seen.insert(id.clone()) { o.id = None; } } o }).collect()
                };
                let p = plan(&current, &required);
                let expected: BTreeSet<Rule> = required.iter().cloned().collect();
                prop_assert_eq!(apply(&current, &p), expected.clone());
                // The result is compliant: planning again changes nothing.
                let after: Vec<ObservedRule> = expected.iter().cloned().map(ObservedRule::from).collect();
                prop_assert!(plan(&after, &required).is_empty());
                // Nothing required is ever revoked.
                prop_assert!(p.revoke.iter().all(|o| !expected.contains(&o.rule)));
            }

            #[test]
            fn compact_form_round_trips(r in rule()) {
                prop_assert_eq!(r.to_string().parse::<Rule>().unwrap(), r);
            }
        }
    }
}
