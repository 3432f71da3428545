//! EventBridge for EC2 security-group API calls: events shaped as CloudTrail delivers them
//! through EventBridge ("AWS API Call via CloudTrail"), and a real event-pattern matcher
//! (exact values, `prefix`, `suffix`, `anything-but`, `exists`, `numeric`,
//! `equals-ignore-case`, `wildcard`, `$or`), so that rules' Lambda targets can be invoked.

use serde_json::{json, Map, Value};

/// The EventBridge event CloudTrail produces for an EC2 API call made in `account`.
pub fn cloudtrail_event(
    account: &str,
    region: &str,
    event_name: &str,
    request: Value,
    response: Value,
    time: &str,
    id: &str,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account,
        "time": time,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accountId": account, "principalId": "LOCAL", "arn": format!("arn:aws:iam::{account}:user/local")},
            "eventTime": time,
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "local",
            "requestParameters": request,
            "responseElements": response,
            "requestID": id,
            "eventID": id,
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    })
}

/// CloudTrail's `requestParameters` for the security-group calls, from the query parameters:
/// the group id or name (what the fast path reads); the rest is kept flat.
pub fn request_parameters(form: &[(String, String)]) -> Value {
    let mut out = Map::new();
    for (key, value) in form {
        if key == "Action" || key == "Version" {
            continue;
        }
        let mut chars = key.chars();
        let camel: String = chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default();
        out.insert(camel, Value::String(value.clone()));
    }
    Value::Object(out)
}

/// Whether `event` matches the EventBridge `pattern`.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(pattern) = pattern.as_object() else { return false };
    pattern.iter().all(|(key, expected)| {
        if key == "$or" {
            return expected.as_array().is_some_and(|alternatives| alternatives.iter().any(|p| matches(p, event)));
        }
        let actual = event.get(key);
        match expected {
            Value::Object(_) => actual.is_some_and(|a| a.is_object() && matches(expected, a)),
            Value::Array(conditions) => conditions.iter().any(|c| condition(c, actual)),
            _ => false,
        }
    })
}

/// One element of a pattern's value list against the event's value (absent, scalar or array).
fn condition(condition: &Value, actual: Option<&Value>) -> bool {
    if let Some(spec) = condition.as_object() {
        if let Some(exists) = spec.get("exists").and_then(Value::as_bool) {
            return actual.is_some() == exists;
        }
    }
    let values: Vec<&Value> = match actual {
        None => return false,
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value) => vec![value],
    };
    values.into_iter().any(|value| single(condition, value))
}

fn single(condition: &Value, value: &Value) -> bool {
    let Some(spec) = condition.as_object() else { return condition == value };
    let text = value.as_str();
    spec.iter().all(|(op, arg)| match op.as_str() {
        "prefix" => match (arg, text) {
            (Value::String(p), Some(t)) => t.starts_with(p.as_str()),
            (Value::Object(o), Some(t)) => o
                .get("equals-ignore-case")
                .and_then(Value::as_str)
                .is_some_and(|p| t.to_lowercase().starts_with(&p.to_lowercase())),
            _ => false,
        },
        "suffix" => matches!((arg, text), (Value::String(s), Some(t)) if t.ends_with(s.as_str())),
        "equals-ignore-case" => matches!((arg, text), (Value::String(s), Some(t)) if t.eq_ignore_ascii_case(s)),
        "wildcard" => matches!((arg, text), (Value::String(w), Some(t)) if wildcard(w, t)),
        "anything-but" => match arg {
            Value::Array(items) => !items.contains(value),
            Value::Object(inner) => !single(&Value::Object(inner.clone()), value),
            other => other != value,
        },
        "numeric" => value.as_f64().is_some_and(|n| numeric(arg, n)),
        _ => false,
    })
}

fn numeric(arg: &Value, n: f64) -> bool {
    let Some(items) = arg.as_array() else { return false };
    items.chunks(2).all(|pair| match (pair.first().and_then(Value::as_str), pair.get(1).and_then(Value::as_f64)) {
        (Some("="), Some(v)) => n == v,
        (Some("<"), Some(v)) => n < v,
        (Some("<="), Some(v)) => n <= v,
        (Some(">"), Some(v)) => n > v,
        (Some(">="), Some(v)) => n >= v,
        _ => false,
    })
}

fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        cloudtrail_event(
            "123456789012",
            "us-west-2",
            "AuthorizeSecurityGroupIngress",
            json!({"groupId": "sg-0123"}),
            json!({"return": true}),
            "2026-01-01T00:00:00Z",
            "e1",
        )
    }

    #[test]
    fn the_fast_path_pattern_matches_security_group_calls_only() {
        let pattern = json!({
            "source": ["aws.ec2"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventName": ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "CreateSecurityGroup"]}
        });
        assert!(matches(&pattern, &event()));
        assert_eq!(
            (&event()["account"], &event()["detail"]["recipientAccountId"]),
            (&json!("123456789012"), &json!("123456789012"))
        );
        let mut other = event();
        other["detail"]["eventName"] = json!("RunInstances");
        assert!(!matches(&pattern, &other));
        other["detail"]["eventName"] = json!("AuthorizeSecurityGroupIngress");
        other["source"] = json!("aws.s3");
        assert!(!matches(&pattern, &other));
    }

    #[test]
    fn content_filters_work() {
        let e = event();
        assert!(matches(&json!({"detail": {"eventName": [{"prefix": "Authorize"}]}}), &e));
        assert!(matches(&json!({"detail": {"eventName": [{"suffix": "Ingress"}]}}), &e));
        assert!(matches(&json!({"detail": {"eventName": [{"wildcard": "*SecurityGroup*"}]}}), &e));
        assert!(matches(
            &json!({"detail": {"eventName": [{"equals-ignore-case": "authorizesecuritygroupingress"}]}}),
            &e
        ));
        assert!(!matches(&json!({"detail": {"eventName": [{"anything-but": ["AuthorizeSecurityGroupIngress"]}]}}), &e));
        assert!(matches(&json!({"detail": {"errorCode": [{"exists": false}]}}), &e));
        assert!(!matches(&json!({"detail": {"errorCode": [{"exists": true}]}}), &e));
        assert!(matches(&json!({"detail": {"eventVersion": [{"anything-but": {"prefix": "2"}}]}}), &e));
        assert!(matches(&json!({"$or": [{"source": ["aws.s3"]}, {"region": ["us-west-2"]}]}), &e));
        let n = json!({"detail": {"n": 5}});
        assert!(matches(&json!({"detail": {"n": [{"numeric": [">", 1, "<=", 5]}]}}), &n));
        assert!(!matches(&json!({"detail": {"n": [{"numeric": [">", 5]}]}}), &n));
        // A list in the event matches when any element does.
        assert!(matches(&json!({"resources": [{"exists": true}]}), &e));
        assert!(!matches(&json!({"resources": ["arn:x"]}), &e));
    }

    #[test]
    fn request_parameters_carry_the_group() {
        let form = vec![("Action".into(), "AuthorizeSecurityGroupIngress".into()), ("GroupId".into(), "sg-1".into())];
        assert_eq!(request_parameters(&form), json!({"groupId": "sg-1"}));
    }
}
