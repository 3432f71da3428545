//! The lab being deployed: its names, the account and region it lives in, the SDK clients, and
//! the policy documents of `policy/` rendered for this account.

use aws_config::SdkConfig;
use serde::Serialize;

/// The tag that marks every taggable resource `up` creates; `down` deletes only what carries it.
pub const OWNER_TAG: &str = "managed-by";
pub const OWNER_VALUE: &str = "sg-monitoring-lab";

/// The function role's inline policy name.
pub const FUNCTION_POLICY_NAME: &str = "awsconfig_lambda_ec2_security_group_policy";
/// The Config role's inline policy name.
pub const DELIVERY_POLICY_NAME: &str = "config-bucket-delivery";
/// The AWS managed policy the Config role carries.
pub const CONFIG_MANAGED_POLICY: &str = "service-role/AWS_ConfigRole";
/// Statement id of the permission that lets Config invoke the function.
pub const PERMISSION_SID: &str = "config-invoke";
/// The console's default name for the recorder and the delivery channel.
pub const DEFAULT_RECORDER: &str = "default";

pub const FUNCTION_DESCRIPTION: &str = "restrict ingress ports";
pub const RULE_DESCRIPTION: &str = "Restrict ingress ports to HTTP and HTTPS";
pub const RULE_PARAMETERS: &str = r#"{"debug":"true"}"#;
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

const LAMBDA_TRUST: &str = include_str!("../../policy/lambda-trust.json");
const LAMBDA_LAB_POLICY: &str = include_str!("../../policy/lambda-lab-policy.json");
const LAMBDA_LEAST_PRIVILEGE_POLICY: &str = include_str!("../../policy/lambda-least-privilege-policy.json");
const CONFIG_TRUST: &str = include_str!("../../policy/config-trust.json");
const CONFIG_DELIVERY_POLICY: &str = include_str!("../../policy/config-delivery-policy.json");
const CONFIG_BUCKET_POLICY: &str = include_str!("../../policy/config-bucket-policy.json");
const CLOUDTRAIL_BUCKET_POLICY: &str = include_str!("../../policy/cloudtrail-bucket-policy.json");
/// The fast path's EventBridge pattern.
pub const FAST_PATH_EVENT_PATTERN: &str = include_str!("../../policy/fast-path-event-pattern.json");
/// The fast path's trail, EventBridge rule and invoke-permission statement.
pub const TRAIL_NAME: &str = "sg-monitoring-lab-trail";
pub const TRAIL_PREFIX: &str = "cloudtrail";
pub const FAST_PATH_RULE: &str = "sg-monitoring-lab-fast-path";
pub const EVENTS_PERMISSION_SID: &str = "events-invoke";

/// Which inline policy the function role carries (`up --policy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FunctionPolicy {
    /// The lab's policy, exactly (`policy/lambda-lab-policy.json`).
    #[default]
    Lab,
    /// Scoped to what the function calls, on its own log group and this account's security
    /// groups (`policy/lambda-least-privilege-policy.json`).
    LeastPrivilege,
}

impl FunctionPolicy {
    pub const ALL: [FunctionPolicy; 2] = [FunctionPolicy::Lab, FunctionPolicy::LeastPrivilege];

    /// The name `--policy` takes.
    pub fn name(self) -> &'static str {
        match self {
            FunctionPolicy::Lab => "lab",
            FunctionPolicy::LeastPrivilege => "least-privilege",
        }
    }

    fn document(self) -> &'static str {
        match self {
            FunctionPolicy::Lab => LAMBDA_LAB_POLICY,
            FunctionPolicy::LeastPrivilege => LAMBDA_LEAST_PRIVILEGE_POLICY,
        }
    }
}

impl std::fmt::Display for FunctionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Names of the lab's resources; the lab's defaults unless overridden.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    pub bucket: String,
    pub config_role: String,
    pub recorder: String,
    pub channel: String,
    pub function_role: String,
    pub function: String,
    pub rule: String,
}

/// Name overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct NameOverrides {
    pub bucket: Option<String>,
    pub config_role: Option<String>,
    pub function_role: Option<String>,
    pub function: Option<String>,
    pub rule: Option<String>,
}

impl Names {
    pub fn new(account: &str, region: &str, overrides: &NameOverrides) -> Self {
        Names {
            // This region's bucket may be `config-bucket-<account-id>-<region>` instead: see
            // `bucket::in_region`, which `up` and `down` ask first.
            bucket: overrides.bucket.clone().unwrap_or_else(|| crate::bucket::default_name(account)),
            config_role: overrides.config_role.clone().unwrap_or_else(|| format!("config-role-{region}")),
            recorder: DEFAULT_RECORDER.to_owned(),
            channel: DEFAULT_RECORDER.to_owned(),
            function_role: overrides
                .function_role
                .clone()
                .unwrap_or_else(|| "awsconfig_lambda_ec2_security_group_role".to_owned()),
            function: overrides.function.clone().unwrap_or_else(|| "awsconfig_lambda_security_group".to_owned()),
            rule: overrides.rule.clone().unwrap_or_else(|| "EC2_Security_Group".to_owned()),
        }
    }
}

/// One SDK client per service, all from one configuration.
#[derive(Clone)]
pub struct Clients {
    pub iam: aws_sdk_iam::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub s3: aws_sdk_s3::Client,
    pub config: aws_sdk_config::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub fn new(sdk: &SdkConfig) -> Self {
        // Path-style addressing: bucket names as hosts do not resolve on a local endpoint.
        let s3 = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
        Clients {
            iam: aws_sdk_iam::Client::new(sdk),
            cloudtrail: aws_sdk_cloudtrail::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            config: aws_sdk_config::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
        }
    }
}

/// Everything a command needs.
#[derive(Clone)]
pub struct Lab {
    pub account: String,
    pub region: String,
    pub partition: String,
    pub names: Names,
    pub clients: Clients,
    /// The event fast path is (to be) deployed: the bucket policy admits CloudTrail and the
    /// function carries its rule parameters.
    pub fast_path: bool,
    /// The function role's inline policy.
    pub function_policy: FunctionPolicy,
}

impl Lab {
    /// Fills the placeholders of a `policy/` document for this account.
    pub fn render(&self, document: &str) -> serde_json::Value {
        let text = document
            .replace("${AWS::AccountId}", &self.account)
            .replace("${AWS::Partition}", &self.partition)
            .replace("${AWS::Region}", &self.region)
            .replace("${BucketName}", &self.names.bucket)
            .replace("${TrailName}", TRAIL_NAME)
            .replace("${FunctionName}", &self.names.function);
        // The documents are compiled in and checked by the tests.
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    pub fn config_trust(&self) -> serde_json::Value {
        self.render(CONFIG_TRUST)
    }
    pub fn config_delivery_policy(&self) -> serde_json::Value {
        self.render(CONFIG_DELIVERY_POLICY)
    }
    pub fn bucket_policy(&self) -> serde_json::Value {
        let mut policy = self.render(CONFIG_BUCKET_POLICY);
        if self.fast_path {
            let trail = self.render(CLOUDTRAIL_BUCKET_POLICY);
            if let (Some(statements), Some(more)) = (policy["Statement"].as_array_mut(), trail["Statement"].as_array())
            {
                statements.extend(more.iter().cloned());
            }
        }
        policy
    }

    /// The function's environment: the rule parameters for API-call events, with the fast path.
    pub fn function_environment(&self) -> std::collections::HashMap<String, String> {
        let mut environment = std::collections::HashMap::new();
        if self.fast_path {
            environment.insert("RULE_PARAMETERS".to_owned(), RULE_PARAMETERS.to_owned());
        }
        environment
    }

    pub fn trail_arn(&self) -> String {
        format!("arn:{}:cloudtrail:{}:{}:trail/{TRAIL_NAME}", self.partition, self.region, self.account)
    }

    pub fn fast_path_rule_arn(&self) -> String {
        format!("arn:{}:events:{}:{}:rule/{FAST_PATH_RULE}", self.partition, self.region, self.account)
    }
    pub fn lambda_trust(&self) -> serde_json::Value {
        self.render(LAMBDA_TRUST)
    }
    /// The function role's inline policy: the one `function_policy` names.
    pub fn lambda_policy(&self) -> serde_json::Value {
        self.lambda_policy_of(self.function_policy)
    }
    pub fn lambda_policy_of(&self, policy: FunctionPolicy) -> serde_json::Value {
        self.render(policy.document())
    }

    pub fn managed_policy_arn(&self) -> String {
        format!("arn:{}:iam::aws:policy/{CONFIG_MANAGED_POLICY}", self.partition)
    }

    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }

    pub fn function_arn(&self) -> String {
        format!("arn:{}:lambda:{}:{}:function:{}", self.partition, self.region, self.account, self.names.function)
    }

    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.names.function)
    }
}

/// Decodes the URL-encoded policy documents IAM returns and parses them.
pub fn parse_policy(document: &str) -> Option<serde_json::Value> {
    serde_json::from_str(document).ok().or_else(|| serde_json::from_str(&localaws::http::percent_decode(document)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_url_encoded_documents_parse() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(parse_policy(encoded), Some(serde_json::json!({"Version": "2012-10-17", "Statement": []})));
        assert_eq!(parse_policy(r#"{"a":1}"#), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_policy("%7B%22a%22%3A1%7D"), Some(serde_json::json!({"a": 1})));
        assert_eq!(parse_policy("not json"), None);
    }

    #[test]
    fn names_default_to_the_labs() {
        let names = Names::new("123456789012", "us-west-2", &NameOverrides::default());
        assert_eq!(names.bucket, "config-bucket-123456789012");
        assert_eq!(names.config_role, "config-role-us-west-2");
        assert_eq!(names.function, "awsconfig_lambda_security_group");
        assert_eq!(names.function_role, "awsconfig_lambda_ec2_security_group_role");
        assert_eq!(names.rule, "EC2_Security_Group");
        let names = Names::new("1", "r", &NameOverrides { rule: Some("Other".into()), ..NameOverrides::default() });
        assert_eq!(names.rule, "Other");
    }

    #[test]
    fn function_policy_names_are_the_flag_values() {
        use clap::ValueEnum;
        for policy in FunctionPolicy::ALL {
            let value = policy.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(value.as_deref(), Some(policy.name()));
        }
        assert_eq!(FunctionPolicy::ALL.len(), FunctionPolicy::value_variants().len());
        assert_eq!(FunctionPolicy::default(), FunctionPolicy::Lab);
    }

    #[test]
    fn every_policy_document_is_json_with_no_placeholder_left() {
        for document in [
            LAMBDA_TRUST,
            LAMBDA_LAB_POLICY,
            LAMBDA_LEAST_PRIVILEGE_POLICY,
            CONFIG_TRUST,
            CONFIG_DELIVERY_POLICY,
            CONFIG_BUCKET_POLICY,
            CLOUDTRAIL_BUCKET_POLICY,
        ] {
            let text = document
                .replace("${AWS::AccountId}", "123456789012")
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::Region}", "us-west-2")
                .replace("${BucketName}", "b")
                .replace("${TrailName}", "t")
                .replace("${FunctionName}", "f");
            assert!(!text.contains("${"), "{text}");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["Version"], "2012-10-17");
        }
    }
}
