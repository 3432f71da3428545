//! The custom Config rule `EC2_Security_Group`: the lab's function as source, triggered by
//! configuration changes (including oversized ones), scoped to security groups, with
//! `{"debug":"true"}`. It carries the lab's tag.

use aws_sdk_config::types::{
    ConfigRule, ConfigRuleState, EventSource, MessageType, Owner, Scope, Source, SourceDetail, Tag,
};
use tracing::info;

use crate::error::{code_of, Error, Result};
use crate::function;
use crate::lab::{Lab, OWNER_TAG, OWNER_VALUE, RULE_DESCRIPTION, RULE_PARAMETERS, SECURITY_GROUP};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};

const KIND: &str = "rule";
pub const MESSAGE_TYPES: [&str; 2] =
    ["ConfigurationItemChangeNotification", "OversizedConfigurationItemChangeNotification"];

/// The rule as DescribeConfigRules shows it, in whatever state (a rule being deleted included).
pub async fn find(lab: &Lab) -> Result<Option<ConfigRule>> {
    let name = &lab.names.rule;
    match lab.clients.config.describe_config_rules().config_rule_names(name).send().await {
        Ok(out) => Ok(out.config_rules().first().cloned()),
        Err(err) if code_of(&err) == Some("NoSuchConfigRuleException") => Ok(None),
        Err(err) => Err(Error::aws(format!("reading Config rule {name}"), err)),
    }
}

/// Config deletes a rule asynchronously: after DeleteConfigRule it stays `DELETING` for a while
/// (seconds to minutes), and PutConfigRule or DeleteConfigRule on it answer
/// ResourceInUseException (AWS Config API reference, DeleteConfigRule). Such a rule counts as
/// gone: `down` has nothing left to do, `up` waits for it to disappear, and whose it was does not
/// matter any more (its tags may already be gone).
pub fn is_deleting(rule: &ConfigRule) -> bool {
    rule.config_rule_state() == Some(&ConfigRuleState::Deleting)
}

/// Finds the rule; one Config is deleting is waited for until it is gone (bounded by
/// [`Backoff::RULE_DELETING`]), so what comes back is absent or a rule that can be changed.
pub async fn find_settled(lab: &Lab) -> Result<Option<ConfigRule>> {
    let name = &lab.names.rule;
    let still_deleting = || Error::Aws {
        what: format!("waiting for Config to finish deleting rule {name}"),
        code: Some("RuleDeleting".into()),
        message: "the rule is still DELETING".into(),
    };
    retry(
        &format!("Config to finish deleting rule {name} (DELETING after the last `down`)"),
        Backoff::RULE_DELETING,
        |e: &Error| e.code() == Some("RuleDeleting"),
        || async {
            match find(lab).await? {
                Some(rule) if is_deleting(&rule) => Err(still_deleting()),
                found => Ok(found),
            }
        },
    )
    .await
    .map_err(|e| match e.code() {
        Some("RuleDeleting") => Error::Failed(format!(
            "Config rule {name} is still being deleted (DELETING) after {:?}; run `up` again in a few minutes",
            Backoff::RULE_DELETING.bound()
        )),
        _ => e,
    })
}

/// A rule is the lab's when it carries the lab's tag, or when its source is the lab's own
/// (tagged) function — a console edit may drop tags, never the source.
pub async fn is_ours(lab: &Lab, rule: &ConfigRule) -> Result<bool> {
    if let Some(arn) = rule.config_rule_arn() {
        let tags = lab
            .clients
            .config
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| Error::aws(format!("reading the tags of Config rule {}", lab.names.rule), e))?;
        if tags.tags().iter().any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(OWNER_VALUE)) {
            return Ok(true);
        }
    }
    let our_source = rule.source().is_some_and(|s| {
        *s.owner() == Owner::CustomLambda && s.source_identifier() == Some(lab.function_arn().as_str())
    });
    Ok(our_source && function::ownership(lab).await? == function::Ownership::Ours)
}

pub fn conflict(lab: &Lab) -> Error {
    Error::Conflict(format!(
        "Config rule {} exists and is not tagged {OWNER_TAG}={OWNER_VALUE}: it is not this lab's; pick another name with --rule-name",
        lab.names.rule
    ))
}

fn desired(lab: &Lab) -> Result<ConfigRule> {
    let details = MESSAGE_TYPES
        .iter()
        .map(|m| {
            SourceDetail::builder().event_source(EventSource::AwsConfig).message_type(MessageType::from(*m)).build()
        })
        .collect();
    Ok(ConfigRule::builder()
        .config_rule_name(&lab.names.rule)
        .description(RULE_DESCRIPTION)
        .scope(Scope::builder().compliance_resource_types(SECURITY_GROUP).build())
        .source(
            Source::builder()
                .owner(Owner::CustomLambda)
                .source_identifier(lab.function_arn())
                .set_source_details(Some(details))
                .build()
                .map_err(|e| Error::Failed(format!("building the rule's source: {e}")))?,
        )
        .input_parameters(RULE_PARAMETERS)
        .build())
}

/// The fields of a rule that differ from the desired one.
fn differences(current: &ConfigRule, desired: &ConfigRule) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if current.description() != desired.description() {
        fields.push("Description");
    }
    let types = |r: &ConfigRule| r.scope().map(|s| s.compliance_resource_types().to_vec()).unwrap_or_default();
    if types(current) != types(desired) {
        fields.push("Scope");
    }
    let source = |r: &ConfigRule| {
        r.source().map(|s| {
            let mut details: Vec<String> =
                s.source_details().iter().map(|d| format!("{:?}/{:?}", d.event_source(), d.message_type())).collect();
            details.sort();
            (s.owner().clone(), s.source_identifier().map(str::to_owned), details)
        })
    };
    if source(current) != source(desired) {
        fields.push("Source");
    }
    let parameters =
        |r: &ConfigRule| r.input_parameters().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
    if parameters(current) != parameters(desired) {
        fields.push("InputParameters");
    }
    fields
}

pub async fn ensure(lab: &Lab, dry_run: bool) -> Result<Step> {
    let name = &lab.names.rule;
    let desired = desired(lab)?;
    let found = if dry_run { find(lab).await?.filter(|r| !is_deleting(r)) } else { find_settled(lab).await? };
    let action = match found {
        None => Action::Create,
        Some(current) => {
            if !is_ours(lab, &current).await? {
                return Err(conflict(lab));
            }
            let fields = differences(&current, &desired);
            if fields.is_empty() {
                return Ok(Step::new(KIND, name, Action::Unchanged));
            }
            if dry_run {
                return Ok(Step::new(KIND, name, Action::Update).detail(fields.join(", ")));
            }
            Action::Update
        }
    };
    if dry_run {
        return Ok(Step::new(KIND, name, action));
    }
    info!("putting Config rule {name}");
    let tag = Tag::builder().key(OWNER_TAG).value(OWNER_VALUE).build();
    // InsufficientPermissionsException: the invoke permission has not propagated yet.
    // ResourceInUseException: a rule of this name became DELETING since it was read (a `down`
    // running at the same time); it is gone within the same kind of bound.
    retry(
        &format!("Config to be allowed to invoke function {} (or to finish deleting rule {name})", lab.names.function),
        Backoff::IAM,
        |e: &Error| matches!(e.code(), Some("InsufficientPermissionsException" | "ResourceInUseException")),
        || async {
            lab.clients
                .config
                .put_config_rule()
                .config_rule(desired.clone())
                .tags(tag.clone())
                .send()
                .await
                .map_err(|e| Error::aws(format!("putting Config rule {name}"), e))
        },
    )
    .await?;
    Ok(Step::new(KIND, name, action))
}

const BEING_DELETED: &str = "being deleted by Config (DELETING); it disappears on its own";

/// Deletes the rule. Config finishes the deletion on its own: a rule already DELETING (the
/// last `down`'s, or a `down` running at the same time) counts as deleted.
pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Step> {
    let name = &lab.names.rule;
    let Some(current) = find(lab).await? else { return Ok(Step::new(KIND, name, Action::Absent)) };
    if is_deleting(&current) {
        info!("Config rule {name} is already being deleted");
        return Ok(Step::new(KIND, name, Action::Absent).detail(BEING_DELETED));
    }
    if !is_ours(lab, &current).await? {
        return Ok(Step::new(KIND, name, Action::Kept).detail(format!("not tagged {OWNER_TAG}={OWNER_VALUE}")));
    }
    if !dry_run {
        info!("deleting Config rule {name}");
        let deleted = lab.clients.config.delete_config_rule().config_rule_name(name).send().await;
        match deleted {
            Ok(_) => {}
            // Became DELETING since it was read; the other causes (a remediation action on
            // the rule, evaluation results being deleted) leave it ACTIVE and stay errors.
            Err(err) if code_of(&err) == Some("ResourceInUseException") => match find(lab).await? {
                None => return Ok(Step::new(KIND, name, Action::Absent)),
                Some(rule) if is_deleting(&rule) => {
                    return Ok(Step::new(KIND, name, Action::Absent).detail(BEING_DELETED))
                }
                Some(_) => return Err(Error::aws(format!("deleting Config rule {name}"), err)),
            },
            Err(err) => return Err(Error::aws(format!("deleting Config rule {name}"), err)),
        }
    }
    Ok(Step::new(KIND, name, Action::Delete))
}
