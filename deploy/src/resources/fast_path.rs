//! The event fast path (`up --fast-path`): a CloudTrail trail for management events delivering
//! to the lab bucket under `cloudtrail/`, an EventBridge rule matching security-group ingress
//! calls (`policy/fast-path-event-pattern.json`) that targets the lab's function, and an invoke
//! permission for `events.amazonaws.com` limited to that rule. The trail and the rule carry the
//! lab's tag; the permission is the statement `events-invoke` on the lab's function.

use aws_sdk_cloudtrail::types::Tag as TrailTag;
use std::time::Duration;

use aws_sdk_eventbridge::types::{RuleState, Tag as EventsTag, Target};
use tracing::info;

use crate::error::{code_of, done_already, Error, Result};
use crate::function;
use crate::lab::{
    Lab, EVENTS_PERMISSION_SID, FAST_PATH_EVENT_PATTERN, FAST_PATH_RULE, OWNER_TAG, OWNER_VALUE, TRAIL_NAME,
    TRAIL_PREFIX,
};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};

/// The target id of the function on the rule.
const TARGET_ID: &str = "function";

/// Attempts at PutTargets and RemoveTargets while EventBridge leaves entries unapplied
/// (`FailedEntries`, HTTP 200), and at DeleteRule while the rule still has targets: about
/// 15 s in all.
const ENTRIES: Backoff = Backoff { attempts: 8, first: Duration::from_millis(250), max: Duration::from_secs(4) };

/// Entry error codes worth another attempt: contention and EventBridge's own failures.
/// EventBridge API reference, PutTargetsResultEntry: "If the value is
/// ConcurrentModificationException, too many requests were made at the same time."
fn entry_retryable(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("ConcurrentModificationException" | "InternalException" | "InternalFailure" | "ThrottlingException")
    )
}

/// The entries EventBridge did not apply, as an error naming each (`None`: all applied).
fn failed_entries<'a>(
    what: &str,
    verb: &str,
    count: i32,
    entries: impl Iterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
) -> Option<Error> {
    if count == 0 {
        return None;
    }
    let mut code = None;
    let described: Vec<String> = entries
        .map(|(id, c, message)| {
            code = code.or(c);
            format!(
                "target {} ({}: {})",
                id.unwrap_or("?"),
                c.unwrap_or("no error code"),
                message.unwrap_or("no message")
            )
        })
        .collect();
    let list = if described.is_empty() { format!("{count} entries") } else { described.join(", ") };
    Some(Error::Aws {
        what: what.to_owned(),
        code: code.map(str::to_owned),
        message: format!("EventBridge answered 200 but did not {verb} {list}"),
    })
}

/// After the attempts ran out on unapplied entries: what to do next.
fn gave_up(err: Error) -> Error {
    match err {
        Error::Aws { what, code, message } if entry_retryable(code.as_deref()) => Error::Aws {
            what,
            code,
            message: format!("{message}, in {} attempts; run the command again", ENTRIES.attempts),
        },
        other => other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    Foreign,
}

pub async fn trail_ownership(lab: &Lab) -> Result<Ownership> {
    let trails = lab
        .clients
        .cloudtrail
        .describe_trails()
        .trail_name_list(TRAIL_NAME)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading trail {TRAIL_NAME}"), e))?;
    let Some(arn) = trails.trail_list().iter().find(|t| t.name() == Some(TRAIL_NAME)).and_then(|t| t.trail_arn())
    else {
        return Ok(Ownership::Absent);
    };
    let tags = lab
        .clients
        .cloudtrail
        .list_tags()
        .resource_id_list(arn)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading the tags of trail {TRAIL_NAME}"), e))?;
    let ours = tags
        .resource_tag_list()
        .iter()
        .flat_map(|r| r.tags_list())
        .any(|t| t.key() == OWNER_TAG && t.value() == Some(OWNER_VALUE));
    Ok(if ours { Ownership::Ours } else { Ownership::Foreign })
}

pub async fn rule_ownership(lab: &Lab) -> Result<Ownership> {
    let events = &lab.clients.events;
    let rule = match events.describe_rule().name(FAST_PATH_RULE).send().await {
        Ok(rule) => rule,
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => return Ok(Ownership::Absent),
        Err(err) => return Err(Error::aws(format!("reading EventBridge rule {FAST_PATH_RULE}"), err)),
    };
    let arn = rule.arn().unwrap_or_default();
    let tags = events
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading the tags of EventBridge rule {FAST_PATH_RULE}"), e))?;
    let ours = tags.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE);
    Ok(if ours { Ownership::Ours } else { Ownership::Foreign })
}

/// Whether the lab's fast path is deployed (its trail exists and is the lab's).
pub async fn deployed(lab: &Lab) -> Result<bool> {
    Ok(trail_ownership(lab).await? == Ownership::Ours)
}

pub fn conflict(what: &str) -> Error {
    Error::Conflict(format!(
        "{what} exists and is not tagged {OWNER_TAG}={OWNER_VALUE}: it is not this lab's; delete it or leave out --fast-path"
    ))
}

/// The desired state of the fast path, for `--dry-run --output json`.
pub fn desired(lab: &Lab) -> serde_json::Value {
    serde_json::json!({
        "trail": {
            "name": TRAIL_NAME,
            "s3BucketName": lab.names.bucket,
            "s3KeyPrefix": TRAIL_PREFIX,
            "isMultiRegionTrail": false,
            "includeGlobalServiceEvents": false,
            "logging": true,
        },
        "rule": {
            "name": FAST_PATH_RULE,
            "eventPattern": serde_json::from_str::<serde_json::Value>(FAST_PATH_EVENT_PATTERN).unwrap_or_default(),
            "state": "ENABLED",
            "targetArn": lab.function_arn(),
        },
        "permission": desired_permission(lab),
        "functionEnvironment": lab.function_environment(),
    })
}

fn desired_permission(lab: &Lab) -> serde_json::Value {
    serde_json::json!({
        "Sid": EVENTS_PERMISSION_SID,
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": lab.function_arn(),
        "Condition": {"ArnLike": {"AWS:SourceArn": lab.fast_path_rule_arn()}},
    })
}

pub async fn ensure_trail(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "trail";
    let trail = &lab.clients.cloudtrail;
    let action = match trail_ownership(lab).await? {
        Ownership::Foreign => return Err(conflict(&format!("trail {TRAIL_NAME}"))),
        Ownership::Absent => Action::Create,
        Ownership::Ours => {
            let found = trail
                .get_trail()
                .name(TRAIL_NAME)
                .send()
                .await
                .map_err(|e| Error::aws(format!("reading trail {TRAIL_NAME}"), e))?;
            let status = trail
                .get_trail_status()
                .name(TRAIL_NAME)
                .send()
                .await
                .map_err(|e| Error::aws(format!("reading trail {TRAIL_NAME}"), e))?;
            let same = found.trail().is_some_and(|t| {
                t.s3_bucket_name() == Some(lab.names.bucket.as_str())
                    && t.s3_key_prefix() == Some(TRAIL_PREFIX)
                    && t.is_multi_region_trail() != Some(true)
                    && t.include_global_service_events() != Some(true)
            });
            if same && status.is_logging() == Some(true) {
                return Ok(Step::new(KIND, TRAIL_NAME, Action::Unchanged));
            }
            Action::Update
        }
    };
    if dry_run {
        return Ok(Step::new(KIND, TRAIL_NAME, action));
    }
    if action == Action::Create {
        info!("creating trail {TRAIL_NAME}");
        let tag =
            TrailTag::builder().key(OWNER_TAG).value(OWNER_VALUE).build().map_err(|e| Error::Failed(e.to_string()))?;
        retry(
            &format!("bucket {} to admit CloudTrail", lab.names.bucket),
            Backoff::IAM,
            |e: &Error| e.code() == Some("InsufficientS3BucketPolicyException"),
            || async {
                trail
                    .create_trail()
                    .name(TRAIL_NAME)
                    .s3_bucket_name(&lab.names.bucket)
                    .s3_key_prefix(TRAIL_PREFIX)
                    .is_multi_region_trail(false)
                    .include_global_service_events(false)
                    .tags_list(tag.clone())
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("creating trail {TRAIL_NAME}"), e))
            },
        )
        .await?;
    } else {
        trail
            .update_trail()
            .name(TRAIL_NAME)
            .s3_bucket_name(&lab.names.bucket)
            .s3_key_prefix(TRAIL_PREFIX)
            .is_multi_region_trail(false)
            .include_global_service_events(false)
            .send()
            .await
            .map_err(|e| Error::aws(format!("updating trail {TRAIL_NAME}"), e))?;
    }
    trail
        .start_logging()
        .name(TRAIL_NAME)
        .send()
        .await
        .map_err(|e| Error::aws(format!("starting trail {TRAIL_NAME}"), e))?;
    Ok(Step::new(KIND, TRAIL_NAME, action)
        .detail(format!("management events to s3://{}/{TRAIL_PREFIX}/", lab.names.bucket)))
}

/// The targets of the fast-path rule.
async fn targets(lab: &Lab) -> Result<Vec<Target>> {
    let out = lab
        .clients
        .events
        .list_targets_by_rule()
        .rule(FAST_PATH_RULE)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading the targets of {FAST_PATH_RULE}"), e))?;
    Ok(out.targets().to_vec())
}

/// Removes targets from the fast-path rule (nothing to do for none), again for the entries
/// EventBridge did not apply, bounded.
async fn remove_targets(lab: &Lab, ids: Vec<String>) -> Result<()> {
    let what = format!("removing the targets of EventBridge rule {FAST_PATH_RULE}");
    let left = std::sync::Mutex::new(ids);
    retry(
        &format!("EventBridge to remove the targets of {FAST_PATH_RULE}"),
        ENTRIES,
        |e: &Error| entry_retryable(e.code()),
        || async {
            let ids = left.lock().map(|l| l.clone()).unwrap_or_default();
            if ids.is_empty() {
                return Ok(());
            }
            let out = lab
                .clients
                .events
                .remove_targets()
                .rule(FAST_PATH_RULE)
                .set_ids(Some(ids))
                .send()
                .await
                .map_err(|e| Error::aws(&what, e))?;
            let failed = out.failed_entries();
            let unapplied: Vec<String> = failed.iter().filter_map(|f| f.target_id().map(str::to_owned)).collect();
            // Without ids in the answer, every id is tried again.
            if let (Ok(mut left), false) = (left.lock(), unapplied.is_empty() && out.failed_entry_count() > 0) {
                *left = unapplied;
            }
            let entries = failed.iter().map(|f| (f.target_id(), f.error_code(), f.error_message()));
            match failed_entries(&what, "remove", out.failed_entry_count(), entries) {
                Some(err) => Err(err),
                None => Ok(()),
            }
        },
    )
    .await
    .map_err(gave_up)
}

/// Puts the function as the rule's target, again while EventBridge does not apply it, bounded.
async fn put_target(lab: &Lab) -> Result<()> {
    let what = format!("targeting function {} from EventBridge rule {FAST_PATH_RULE}", lab.names.function);
    let target =
        Target::builder().id(TARGET_ID).arn(lab.function_arn()).build().map_err(|e| Error::Failed(e.to_string()))?;
    retry(
        &format!("EventBridge to add target {TARGET_ID} to {FAST_PATH_RULE}"),
        ENTRIES,
        |e: &Error| entry_retryable(e.code()),
        || async {
            let out = lab
                .clients
                .events
                .put_targets()
                .rule(FAST_PATH_RULE)
                .targets(target.clone())
                .send()
                .await
                .map_err(|e| Error::aws(&what, e))?;
            let failed = out.failed_entries().iter().map(|f| (f.target_id(), f.error_code(), f.error_message()));
            match failed_entries(&what, "add", out.failed_entry_count(), failed) {
                Some(err) => Err(err),
                None => Ok(()),
            }
        },
    )
    .await
    .map_err(gave_up)
}

/// Deletes the fast-path rule after removing its targets; while DeleteRule answers that the
/// rule still has targets (a removal not yet applied, or a target added meanwhile), removes
/// them again and retries, bounded.
async fn delete_rule(lab: &Lab) -> Result<()> {
    let has_targets = |e: &Error| e.code() == Some("ValidationException") && e.to_string().contains("has targets");
    retry(&format!("EventBridge rule {FAST_PATH_RULE} to have no targets"), ENTRIES, has_targets, || async {
        let ids = targets(lab).await?.iter().map(|t| t.id().to_owned()).collect();
        remove_targets(lab, ids).await?;
        lab.clients
            .events
            .delete_rule()
            .name(FAST_PATH_RULE)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws(format!("deleting EventBridge rule {FAST_PATH_RULE}"), e))
    })
    .await
}

pub async fn ensure_rule(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "event-rule";
    let events = &lab.clients.events;
    let pattern: serde_json::Value = serde_json::from_str(FAST_PATH_EVENT_PATTERN).unwrap_or_default();
    let mut changed = Vec::new();
    match rule_ownership(lab).await? {
        Ownership::Foreign => return Err(conflict(&format!("EventBridge rule {FAST_PATH_RULE}"))),
        Ownership::Absent => changed.push("rule"),
        Ownership::Ours => {
            let rule = events
                .describe_rule()
                .name(FAST_PATH_RULE)
                .send()
                .await
                .map_err(|e| Error::aws(format!("reading EventBridge rule {FAST_PATH_RULE}"), e))?;
            let current = rule.event_pattern().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
            if current.as_ref() != Some(&pattern) || rule.state() != Some(&RuleState::Enabled) {
                changed.push("pattern");
            }
            let targets = targets(lab).await?;
            let only_ours = targets.len() == 1
                && targets.iter().all(|t| t.id() == TARGET_ID && t.arn() == lab.function_arn().as_str());
            if !only_ours {
                changed.push("target");
            }
        }
    }
    let created = changed.first() == Some(&"rule");
    let action = if changed.is_empty() {
        return Ok(Step::new(KIND, FAST_PATH_RULE, Action::Unchanged));
    } else if created {
        Action::Create
    } else {
        Action::Update
    };
    if dry_run {
        return Ok(Step::new(KIND, FAST_PATH_RULE, action).detail(if created {
            String::new()
        } else {
            changed.join(", ")
        }));
    }
    info!("putting EventBridge rule {FAST_PATH_RULE}");
    let tag =
        EventsTag::builder().key(OWNER_TAG).value(OWNER_VALUE).build().map_err(|e| Error::Failed(e.to_string()))?;
    let mut put = events
        .put_rule()
        .name(FAST_PATH_RULE)
        .event_pattern(pattern.to_string())
        .state(RuleState::Enabled)
        .description("Security-group ingress changes, to the lab's function");
    if created {
        put = put.tags(tag);
    }
    put.send().await.map_err(|e| Error::aws(format!("putting EventBridge rule {FAST_PATH_RULE}"), e))?;
    let extra = targets(lab).await?.iter().filter(|t| t.id() != TARGET_ID).map(|t| t.id().to_owned()).collect();
    remove_targets(lab, extra).await?;
    put_target(lab).await?;
    Ok(Step::new(KIND, FAST_PATH_RULE, action).detail(format!("to function {}", lab.names.function)))
}

pub async fn ensure_permission(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "events-permission";
    let name = &lab.names.function;
    let desired = desired_permission(lab);
    let current = if dry_run && function::ownership(lab).await? == function::Ownership::Absent {
        None
    } else {
        function::statement(lab, EVENTS_PERMISSION_SID).await?
    };
    let action = match &current {
        Some(s)
            if s["Principal"] == desired["Principal"]
                && s["Condition"]["ArnLike"] == desired["Condition"]["ArnLike"] =>
        {
            return Ok(Step::new(KIND, EVENTS_PERMISSION_SID, Action::Unchanged));
        }
        Some(_) => Action::Update,
        None => Action::Create,
    };
    if !dry_run {
        let lambda = &lab.clients.lambda;
        if action == Action::Update {
            let removed = lambda
                .remove_permission()
                .function_name(name)
                .statement_id(EVENTS_PERMISSION_SID)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::aws(format!("replacing the events permission of {name}"), e));
            done_already(removed, &["ResourceNotFoundException"])?;
        }
        let added = lambda
            .add_permission()
            .function_name(name)
            .statement_id(EVENTS_PERMISSION_SID)
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .source_arn(lab.fast_path_rule_arn())
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws(format!("allowing EventBridge to invoke {name}"), e));
        function::added_already(lab, EVENTS_PERMISSION_SID, added).await?;
    }
    Ok(Step::new(KIND, EVENTS_PERMISSION_SID, action).detail(format!("events.amazonaws.com from {FAST_PATH_RULE}")))
}

/// Removes the lab's EventBridge rule (targets first) and trail.
pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    match rule_ownership(lab).await? {
        Ownership::Absent => {}
        Ownership::Foreign => steps.push(Step::new("event-rule", FAST_PATH_RULE, Action::Kept).detail("not the lab's")),
        Ownership::Ours => {
            if !dry_run {
                delete_rule(lab).await?;
            }
            steps.push(Step::new("event-rule", FAST_PATH_RULE, Action::Delete).detail("with its target"));
        }
    }
    match trail_ownership(lab).await? {
        Ownership::Absent => {}
        Ownership::Foreign => steps.push(Step::new("trail", TRAIL_NAME, Action::Kept).detail("not the lab's")),
        Ownership::Ours => {
            if !dry_run {
                lab.clients
                    .cloudtrail
                    .delete_trail()
                    .name(TRAIL_NAME)
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("deleting trail {TRAIL_NAME}"), e))?;
            }
            steps.push(Step::new("trail", TRAIL_NAME, Action::Delete));
        }
    }
    Ok(steps)
}
