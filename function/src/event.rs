//! The events that invoke the function, parsed into our own types: what AWS Config sends a
//! custom-rule Lambda, and (the fast path) what EventBridge delivers for an EC2 API call
//! recorded by CloudTrail.
//!
//! Config's outer event carries `invokingEvent` and `ruleParameters` as JSON *strings*; this
//! module parses both layers and keeps only what the rule needs. A malformed event is an error
//! that names the missing or wrong field, raised before any AWS call is made.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::Deserialize;

/// The resource type this rule evaluates.
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

/// An event Config sent to the rule's function.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEvent {
    pub result_token: String,
    /// The raw `ruleParameters` JSON string; parsed by [`crate::parameters::Parameters`].
    pub rule_parameters: Option<String>,
    /// True when the resource left the rule's scope.
    pub event_left_scope: bool,
    pub config_rule_name: Option<String>,
    pub message: Message,
}

/// The `messageType` of the invoking event, with what the rule needs of each.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `ConfigurationItemChangeNotification`: a full configuration item.
    ItemChange(ResourceRef),
    /// `OversizedConfigurationItemChangeNotification`: only a summary; the group's state is
    /// read from EC2.
    OversizedItemChange(ResourceRef),
    /// `ScheduledNotification`: evaluate every group of the region.
    Scheduled { notification_time: DateTime },
}

/// The resource a change notification is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRef {
    pub resource_type: String,
    pub resource_id: String,
    pub status: String,
    /// The capture time of the configuration item: the evaluation's ordering timestamp.
    pub capture_time: DateTime,
    /// The item's `configuration` (the group as Config recorded it), when the message carries
    /// one: an oversized item's summary does not; read by [`crate::item::group_of`].
    pub configuration: Option<serde_json::Value>,
}

impl ResourceRef {
    /// `ResourceDeleted` or `ResourceDeletedNotRecorded`.
    pub fn is_deleted(&self) -> bool {
        matches!(self.status.as_str(), "ResourceDeleted" | "ResourceDeletedNotRecorded")
    }
}

/// What invoked the function.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Config(ConfigEvent),
    ApiCall(ApiCall),
}

/// An EC2 API call recorded by CloudTrail, delivered by EventBridge
/// (`detail-type: AWS API Call via CloudTrail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub event_name: String,
    /// The security groups the call changed.
    pub groups: Vec<String>,
    /// When the call named its group by name only (default VPC) and its answer no group id:
    /// the names, for the handler to resolve.
    pub group_names: Vec<String>,
    /// Set when the call failed; such calls changed nothing.
    pub error_code: Option<String>,
}

impl Invocation {
    /// Parses either kind of event.
    pub fn parse(event: &serde_json::Value) -> Result<Self, EventError> {
        if event.get("detail-type").is_some() {
            return ApiCall::parse(event).map(Invocation::ApiCall);
        }
        ConfigEvent::parse(event).map(Invocation::Config)
    }
}

impl ApiCall {
    pub fn parse(event: &serde_json::Value) -> Result<Self, EventError> {
        let detail_type = event["detail-type"].as_str().unwrap_or_default();
        if detail_type != "AWS API Call via CloudTrail" || event["source"] != "aws.ec2" {
            return Err(EventError(format!(
                "EventBridge event of source {} and detail-type `{detail_type}` is not an EC2 API call recorded by CloudTrail",
                event["source"]
            )));
        }
        let detail = &event["detail"];
        let event_name = detail["eventName"]
            .as_str()
            .ok_or_else(|| EventError("the CloudTrail event has no detail.eventName".into()))?
            .to_owned();
        let error_code = detail["errorCode"].as_str().map(str::to_owned);
        let request = &detail["requestParameters"];
        let response = &detail["responseElements"];
        // The changed group only: group ids inside ipPermissions are sources, not targets. A
        // change by name (default VPC: `groupName`, no `groupId`) has the id in its answer's
        // rules (`securityGroupRuleSet`, `revokedSecurityGroupRuleSet`) when it has any.
        let rule_sets = ["securityGroupRuleSet", "revokedSecurityGroupRuleSet"]
            .into_iter()
            .flat_map(|set| response[set]["items"].as_array().into_iter().flatten())
            .map(|rule| &rule["groupId"]);
        let candidates =
            [&request["groupId"], &request["ModifySecurityGroupRulesRequest"]["GroupId"], &response["groupId"]];
        let mut groups: Vec<String> = Vec::new();
        for id in candidates.into_iter().chain(rule_sets).filter_map(|v| v.as_str()) {
            if !groups.iter().any(|g| g == id) {
                groups.push(id.to_owned());
            }
        }
        let mut group_names = Vec::new();
        if groups.is_empty() {
            group_names.extend(request["groupName"].as_str().filter(|n| !n.trim().is_empty()).map(str::to_owned));
        }
        if groups.is_empty() && group_names.is_empty() && error_code.is_none() {
            return Err(EventError(format!(
                "the CloudTrail event of {event_name} names no security group (requestParameters.groupId or groupName, ModifySecurityGroupRulesRequest.GroupId, responseElements.groupId or securityGroupRuleSet)"
            )));
        }
        if let Some(bad) = groups.iter().find(|g| !g.starts_with("sg-")) {
            return Err(EventError(format!(
                "`{bad}` in the CloudTrail event of {event_name} is not a security group id"
            )));
        }
        Ok(ApiCall { event_name, groups, group_names, error_code })
    }
}

/// An event that is not what Config or EventBridge sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Config event: {0}")]
pub struct EventError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    invoking_event: String,
    #[serde(default)]
    rule_parameters: Option<String>,
    result_token: String,
    #[serde(default)]
    event_left_scope: Option<bool>,
    #[serde(default)]
    config_rule_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInvokingEvent {
    message_type: String,
    #[serde(default)]
    configuration_item: Option<RawItem>,
    #[serde(default)]
    configuration_item_summary: Option<RawItem>,
    #[serde(default)]
    notification_creation_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawItem {
    resource_type: String,
    resource_id: String,
    configuration_item_status: String,
    #[serde(default)]
    configuration_item_capture_time: Option<String>,
    #[serde(default)]
    configuration: Option<serde_json::Value>,
}

impl ConfigEvent {
    /// Parses both layers of a Config event.
    pub fn parse(event: &serde_json::Value) -> Result<Self, EventError> {
        if !event.is_object() {
            return Err(EventError(format!("expected a JSON object, got {}", kind(event))));
        }
        let raw = RawEvent::deserialize(event).map_err(|e| {
            EventError(format!(
                "{e} (expected the fields invokingEvent, resultToken and optionally ruleParameters, eventLeftScope)"
            ))
        })?;
        let invoking: RawInvokingEvent = serde_json::from_str(&raw.invoking_event)
            .map_err(|e| EventError(format!("`invokingEvent` is not the JSON string of an invoking event: {e}")))?;
        let notification_time = invoking
            .notification_creation_time
            .as_deref()
            .map(|t| timestamp("notificationCreationTime", t))
            .transpose()?;
        let message = match invoking.message_type.as_str() {
            "ConfigurationItemChangeNotification" => {
                let item = invoking
                    .configuration_item
                    .ok_or_else(|| EventError("`invokingEvent` of a ConfigurationItemChangeNotification has no configurationItem".into()))?;
                Message::ItemChange(resource(item, notification_time, "configurationItem")?)
            }
            "OversizedConfigurationItemChangeNotification" => {
                let summary = invoking.configuration_item_summary.ok_or_else(|| {
                    EventError("`invokingEvent` of an OversizedConfigurationItemChangeNotification has no configurationItemSummary".into())
                })?;
                Message::OversizedItemChange(resource(summary, notification_time, "configurationItemSummary")?)
            }
            "ScheduledNotification" => Message::Scheduled {
                notification_time: notification_time
                    .ok_or_else(|| EventError("`invokingEvent` of a ScheduledNotification has no notificationCreationTime".into()))?,
            },
            other => {
                return Err(EventError(format!(
                    "messageType `{other}` is not one this rule handles (ConfigurationItemChangeNotification, OversizedConfigurationItemChangeNotification, ScheduledNotification)"
                )))
            }
        };
        if raw.result_token.trim().is_empty() {
            return Err(EventError("`resultToken` is empty".into()));
        }
        Ok(ConfigEvent {
            result_token: raw.result_token,
            rule_parameters: raw.rule_parameters,
            event_left_scope: raw.event_left_scope.unwrap_or(false),
            config_rule_name: raw.config_rule_name,
            message,
        })
    }
}

fn resource(item: RawItem, notification_time: Option<DateTime>, field: &str) -> Result<ResourceRef, EventError> {
    let capture_time = match item.configuration_item_capture_time.as_deref() {
        Some(t) => timestamp("configurationItemCaptureTime", t)?,
        // Deleted-and-not-recorded items may lack a capture time; order by the notification.
        None => notification_time.ok_or_else(|| {
            EventError(format!(
                "`{field}` has no configurationItemCaptureTime and the event no notificationCreationTime"
            ))
        })?,
    };
    if item.resource_id.trim().is_empty() {
        return Err(EventError(format!("`{field}.resourceId` is empty")));
    }
    Ok(ResourceRef {
        resource_type: item.resource_type,
        resource_id: item.resource_id,
        status: item.configuration_item_status,
        capture_time,
        configuration: item.configuration.filter(|c| !c.is_null()),
    })
}

fn timestamp(field: &str, value: &str) -> Result<DateTime, EventError> {
    DateTime::from_str(value, Format::DateTime).map_err(|e| {
        EventError(format!("`{field}` is `{value}`, not an ISO 8601 time such as 2016-07-13T21:50:00.373Z: {e}"))
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
