//! The rule parameters, parsed strictly.
//!
//! Config hands them over as a JSON string holding an object of strings. The lab's function
//! treated any `debug` value as true; here an unknown key or a value outside the allowed set
//! fails the invocation before any group is read or touched, with a message naming the
//! parameter and what it accepts.

use std::collections::BTreeMap;

use crate::rules::{parse_compact_list, Rule};

/// What the function does with a drifted group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Revoke extra rules, authorize missing ones (the lab's behaviour).
    #[default]
    Remediate,
    /// Report the drift as NON_COMPLIANT and change nothing.
    Report,
}

/// Parsed rule parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters {
    /// Log the whole event and the group definition.
    pub debug: bool,
    pub mode: Mode,
    /// Groups carrying a tag with this key are NOT_APPLICABLE and never changed.
    pub exempt_tag: Option<String>,
    /// Replaces the embedded baseline when set.
    pub required_ingress: Option<Vec<Rule>>,
}

/// A rule parameter that is unknown or has a value outside its allowed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule parameter {0}")]
pub struct ParameterError(String);

/// The `requiredIngress` value that asks for an empty baseline explicitly.
pub const NO_INGRESS: &str = "none";

const KNOWN: &str = "debug, mode, exemptTag, requiredIngress";

impl Parameters {
    /// Parses the `ruleParameters` JSON string of a Config event. `None` or an empty string
    /// means no parameters.
    pub fn parse(rule_parameters: Option<&str>) -> Result<Self, ParameterError> {
        let text = rule_parameters.map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Ok(Parameters::default());
        }
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(text).map_err(|e| {
            ParameterError(format!(
                "text is not a JSON object of strings ({e}): set the rule's parameters to e.g. {{\"debug\":\"true\"}}"
            ))
        })?;
        let mut parameters = Parameters::default();
        for (key, value) in map {
            let value = value.as_str().ok_or_else(|| {
                ParameterError(format!(
                    "`{key}` must be a string (Config passes every parameter as a string), got {value}"
                ))
            })?;
            match key.as_str() {
                "debug" => {
                    parameters.debug = match value.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ParameterError(format!(
                                "`debug` is `{value}`: allowed values are true and false"
                            )))
                        }
                    }
                }
                "mode" => {
                    parameters.mode = match value.trim() {
                        "remediate" => Mode::Remediate,
                        "report" => Mode::Report,
                        _ => {
                            return Err(ParameterError(format!(
                                "`mode` is `{value}`: allowed values are remediate and report"
                            )))
                        }
                    }
                }
                "exemptTag" => {
                    let tag = value.trim();
                    if tag.is_empty() || tag.len() > 128 {
                        return Err(ParameterError(format!(
                            "`exemptTag` is `{value}`: give a tag key of 1 to 128 characters"
                        )));
                    }
                    parameters.exempt_tag = Some(tag.to_owned());
                }
                "requiredIngress" => {
                    // An empty baseline strips every ingress rule of every group in scope: only
                    // when asked for by name.
                    if value.trim() == NO_INGRESS {
                        parameters.required_ingress = Some(Vec::new());
                        continue;
                    }
                    let rules = parse_compact_list(value)
                        .map_err(|e| ParameterError(format!("`requiredIngress` is invalid: {e}")))?;
                    if rules.is_empty() {
                        return Err(ParameterError(format!(
                            "`requiredIngress` is empty: an empty baseline would revoke every ingress rule of every group; list the rules to keep, e.g. tcp/80@0.0.0.0/0,tcp/443@0.0.0.0/0, remove the parameter to use the built-in baseline, or write `{NO_INGRESS}` if every group in scope must have no ingress at all"
                        )));
                    }
                    parameters.required_ingress = Some(rules);
                }
                other => {
                    return Err(ParameterError(format!("`{other}` is unknown: allowed parameters are {KNOWN}")));
                }
            }
        }
        Ok(parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_parameters_are_defaults() {
        assert_eq!(Parameters::parse(None).unwrap(), Parameters::default());
        assert_eq!(Parameters::parse(Some("")).unwrap(), Parameters::default());
        assert_eq!(Parameters::parse(Some("{}")).unwrap(), Parameters::default());
    }

    #[test]
    fn the_labs_parameter_turns_debug_on() {
        assert!(Parameters::parse(Some(r#"{"debug":"true"}"#)).unwrap().debug);
        assert!(!Parameters::parse(Some(r#"{"debug":"false"}"#)).unwrap().debug);
    }

    #[test]
    fn regression_debug_no_is_an_error_not_true() {
        let err = Parameters::parse(Some(r#"{"debug":"no"}"#)).unwrap_err();
        assert_eq!(err.to_string(), "rule parameter `debug` is `no`: allowed values are true and false");
    }

    #[test]
    fn every_parameter_parses() {
        let p = Parameters::parse(Some(
            r#"{"debug":"false","mode":"report","exemptTag":"sg-guardrail:exempt","requiredIngress":"tcp/443@0.0.0.0/0, tcp/1020-1025@::/0"}"#,
        ))
        .unwrap();
        assert_eq!(p.mode, Mode::Report);
        assert_eq!(p.exempt_tag.as_deref(), Some("sg-guardrail:exempt"));
        let rules: Vec<String> = p.required_ingress.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(rules, ["tcp/443@0.0.0.0/0", "tcp/1020-1025@::/0"]);
    }

    #[test]
    fn an_empty_baseline_only_when_asked_for_by_name() {
        for empty in [r#"{"requiredIngress":""}"#, r#"{"requiredIngress":" , "}"#] {
            let err = Parameters::parse(Some(empty)).unwrap_err().to_string();
            assert!(err.contains("write `none`"), "{empty}: {err}");
        }
        let p = Parameters::parse(Some(r#"{"requiredIngress":" none "}"#)).unwrap();
        assert_eq!(p.required_ingress, Some(Vec::new()));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_parameter() {
        let cases = [
            (
                r#"{"Debug":"true"}"#,
                "`Debug` is unknown: allowed parameters are debug, mode, exemptTag, requiredIngress",
            ),
            (r#"{"mode":"fix"}"#, "`mode` is `fix`: allowed values are remediate and report"),
            (r#"{"debug":true}"#, "`debug` must be a string"),
            (r#"{"requiredIngress":"tcp/80"}"#, "`requiredIngress` is invalid"),
            (r#"{"requiredIngress":" , "}"#, "`requiredIngress` is empty"),
            (r#"{"exemptTag":""}"#, "`exemptTag` is ``"),
            ("debug=true", "not a JSON object"),
        ];
        for (input, expected) in cases {
            let err = Parameters::parse(Some(input)).unwrap_err().to_string();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }
}
