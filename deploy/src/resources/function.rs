//! The Lambda function (`provided.al2023`, `bootstrap`, 128 MB, 60 s, the lab's description)
//! and the permission that lets Config invoke it. The function carries the lab's tag; the
//! permission is the lab's by its statement id on the lab's function.

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture as LambdaArch, Environment, FunctionCode, LastUpdateStatus, Runtime, State};
use tracing::info;

use crate::artifact::Artifact;
use crate::error::{code_of, done_already, Error, Result};
use crate::lab::{Lab, FUNCTION_DESCRIPTION, OWNER_TAG, OWNER_VALUE, PERMISSION_SID};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};

const KIND: &str = "function";
pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";
pub const MEMORY_MB: i32 = 128;
pub const TIMEOUT_S: i32 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    Foreign,
}

pub async fn ownership(lab: &Lab) -> Result<Ownership> {
    let name = &lab.names.function;
    match lab.clients.lambda.get_function().function_name(name).send().await {
        Ok(out) => {
            let ours = out.tags().and_then(|t| t.get(OWNER_TAG)).is_some_and(|v| v == OWNER_VALUE);
            Ok(if ours { Ownership::Ours } else { Ownership::Foreign })
        }
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => Ok(Ownership::Absent),
        Err(err) => Err(Error::aws(format!("reading function {name}"), err)),
    }
}

pub fn conflict(lab: &Lab) -> Error {
    Error::Conflict(format!(
        "function {} exists and is not tagged {OWNER_TAG}={OWNER_VALUE}: it is not this lab's; pick another name with --function-name",
        lab.names.function
    ))
}

pub async fn ensure(lab: &Lab, artifact: &Artifact, dry_run: bool) -> Result<Step> {
    let name = &lab.names.function;
    let lambda = &lab.clients.lambda;
    let role_arn = lab.role_arn(&lab.names.function_role);
    let arch = LambdaArch::from(artifact.architecture.as_str());
    match ownership(lab).await? {
        Ownership::Foreign => return Err(conflict(lab)),
        Ownership::Absent if dry_run => {
            return Ok(Step::new(KIND, name, Action::Create).detail(artifact.architecture.as_str()));
        }
        Ownership::Absent => {
            info!("creating function {name} ({})", artifact.architecture.as_str());
            let created = retry(
                &format!("role {} to become assumable by Lambda", lab.names.function_role),
                Backoff::IAM,
                // Lambda's answer while a new role propagates: "The role defined for the
                // function cannot be assumed by Lambda."
                |e: &Error| e.code() == Some("InvalidParameterValueException"),
                || async {
                    lambda
                        .create_function()
                        .function_name(name)
                        .runtime(Runtime::from(RUNTIME))
                        .handler(HANDLER)
                        .role(&role_arn)
                        .description(FUNCTION_DESCRIPTION)
                        .memory_size(MEMORY_MB)
                        .timeout(TIMEOUT_S)
                        .architectures(arch.clone())
                        .environment(Environment::builder().set_variables(Some(lab.function_environment())).build())
                        .code(FunctionCode::builder().zip_file(Blob::new(artifact.bytes.clone())).build())
                        .tags(OWNER_TAG, OWNER_VALUE)
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| Error::aws(format!("creating function {name}"), e))
                },
            )
            .await;
            match created {
                // A retry of a create that took effect ("Function already exist"): ours if tagged.
                Err(err) if err.code() == Some("ResourceConflictException") => {
                    if ownership(lab).await? != Ownership::Ours {
                        return Err(err);
                    }
                }
                other => other?,
            }
            wait_until_ready(lab, Change::Create).await?;
            return Ok(Step::new(KIND, name, Action::Create).detail(artifact.architecture.as_str()));
        }
        Ownership::Ours => {}
    }

    // A function still Pending (an `up` killed after CreateFunction, or a create moments ago)
    // or being updated refuses updates with ResourceConflictException: wait until it is ready.
    let current = if dry_run {
        lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| Error::aws(format!("reading function {name}"), e))?
    } else {
        wait_until_ready(lab, Change::None).await?
    };
    let mut changed = Vec::new();
    let code_differs = current.code_sha256() != Some(artifact.sha256.as_str())
        || current.architectures().first().map(|a| a.as_str()) != Some(artifact.architecture.as_str());
    if code_differs {
        changed.push(format!("code ({})", artifact.architecture.as_str()));
        if !dry_run {
            info!("updating the code of function {name}");
            lambda
                .update_function_code()
                .function_name(name)
                .zip_file(Blob::new(artifact.bytes.clone()))
                .architectures(arch)
                .send()
                .await
                .map_err(|e| Error::aws(format!("updating the code of function {name}"), e))?;
            wait_until_ready(lab, Change::Update).await?;
        }
    }
    let settings_differ = current.runtime().map(|r| r.as_str()) != Some(RUNTIME)
        || current.handler() != Some(HANDLER)
        || current.memory_size() != Some(MEMORY_MB)
        || current.timeout() != Some(TIMEOUT_S)
        || current.description() != Some(FUNCTION_DESCRIPTION)
        || current.role() != Some(role_arn.as_str())
        || current.environment().and_then(|e| e.variables()).cloned().unwrap_or_default() != lab.function_environment();
    if settings_differ {
        changed.push("configuration".to_owned());
        if !dry_run {
            info!("updating the configuration of function {name}");
            lambda
                .update_function_configuration()
                .function_name(name)
                .runtime(Runtime::from(RUNTIME))
                .handler(HANDLER)
                .role(&role_arn)
                .description(FUNCTION_DESCRIPTION)
                .memory_size(MEMORY_MB)
                .timeout(TIMEOUT_S)
                .environment(Environment::builder().set_variables(Some(lab.function_environment())).build())
                .send()
                .await
                .map_err(|e| Error::aws(format!("updating the configuration of function {name}"), e))?;
            wait_until_ready(lab, Change::Update).await?;
        }
    }
    let action = if changed.is_empty() { Action::Unchanged } else { Action::Update };
    Ok(Step::new(KIND, name, action).detail(changed.join(", ")))
}

/// The change a wait follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// None of ours: whatever state the function is in, it must be ready for one.
    None,
    Create,
    Update,
}

/// How long a function may stay Pending or InProgress: about 100 s (Lambda: seconds without a
/// VPC; Lambda Developer Guide, "Lambda function states").
const READY: Backoff =
    Backoff { attempts: 30, first: std::time::Duration::from_millis(250), max: std::time::Duration::from_secs(4) };

/// The error code of a function not yet ready (retried by the wait, never from AWS).
const NOT_READY: &str = "FunctionNotReady";

/// Waits, bounded, until the function is ready for a change — `State` not `Pending` and
/// `LastUpdateStatus` not `InProgress` (GetFunctionConfiguration) — and returns its
/// configuration. A function whose creation failed (`State: Failed`) or, after our update, whose
/// update failed is an error saying why.
async fn wait_until_ready(lab: &Lab, after: Change) -> Result<GetFunctionConfigurationOutput> {
    let name = &lab.names.function;
    retry(
        &format!("function {name} to be ready (State Active, LastUpdateStatus not InProgress)"),
        READY,
        |e: &Error| e.code() == Some(NOT_READY),
        || async {
            let current = lab
                .clients
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| Error::aws(format!("reading function {name}"), e))?;
            let state = current.state();
            let update = current.last_update_status();
            if state == Some(&State::Failed) {
                return Err(Error::Failed(format!(
                    "function {name} is in state Failed ({}); run `deploy down`, then `deploy up`",
                    current.state_reason().unwrap_or("no reason given")
                )));
            }
            if state == Some(&State::Pending) || update == Some(&LastUpdateStatus::InProgress) {
                return Err(Error::Aws {
                    what: format!("waiting for function {name} to be ready"),
                    code: Some(NOT_READY.into()),
                    message: format!(
                        "it is still State {}, LastUpdateStatus {} after {:?}",
                        state.map_or("unknown", |s| s.as_str()),
                        update.map_or("unknown", |s| s.as_str()),
                        READY.bound()
                    ),
                });
            }
            if after == Change::Update && update == Some(&LastUpdateStatus::Failed) {
                return Err(Error::Failed(format!(
                    "function {name} failed to update: {}",
                    current.last_update_status_reason().unwrap_or("no reason given")
                )));
            }
            Ok(current)
        },
    )
    .await
}

/// AddPermission's answer, where "the statement id provided already exists"
/// (ResourceConflictException) after a retry of a call that took effect counts as added when
/// the statement is there.
pub async fn added_already(lab: &Lab, sid: &str, added: Result<()>) -> Result<()> {
    match added {
        Err(err) if err.code() == Some("ResourceConflictException") && statement(lab, sid).await?.is_some() => Ok(()),
        other => other,
    }
}

/// The permission statement `up` wants on the function's resource policy.
pub fn desired_permission(lab: &Lab) -> serde_json::Value {
    serde_json::json!({
        "Sid": PERMISSION_SID,
        "Effect": "Allow",
        "Principal": {"Service": "config.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": lab.function_arn(),
        "Condition": {"StringEquals": {"AWS:SourceAccount": lab.account}},
    })
}

/// The statement `sid` of the function's resource policy, if any.
pub async fn statement(lab: &Lab, sid: &str) -> Result<Option<serde_json::Value>> {
    let name = &lab.names.function;
    let policy = match lab.clients.lambda.get_policy().function_name(name).send().await {
        Ok(out) => out.policy().map(str::to_owned),
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => None,
        Err(err) => return Err(Error::aws(format!("reading the resource policy of function {name}"), err)),
    };
    let Some(policy) = policy.and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok()) else {
        return Ok(None);
    };
    Ok(policy["Statement"].as_array().and_then(|s| s.iter().find(|s| s["Sid"] == sid)).cloned())
}

pub async fn ensure_permission(lab: &Lab, dry_run: bool) -> Result<Step> {
    const PERMISSION: &str = "invoke-permission";
    let name = &lab.names.function;
    let desired = desired_permission(lab);
    let current = if dry_run && ownership(lab).await? == Ownership::Absent {
        None
    } else {
        statement(lab, PERMISSION_SID).await?
    };
    let matches = |s: &serde_json::Value| {
        s["Principal"] == desired["Principal"]
            && s["Action"] == desired["Action"]
            && s["Condition"]["StringEquals"]["AWS:SourceAccount"]
                == desired["Condition"]["StringEquals"]["AWS:SourceAccount"]
    };
    let action = match &current {
        Some(statement) if matches(statement) => return Ok(Step::new(PERMISSION, PERMISSION_SID, Action::Unchanged)),
        Some(_) => Action::Update,
        None => Action::Create,
    };
    if !dry_run {
        if action == Action::Update {
            let removed = lab
                .clients
                .lambda
                .remove_permission()
                .function_name(name)
                .statement_id(PERMISSION_SID)
                .send()
                .await
                .map(drop)
                .map_err(|e| Error::aws(format!("replacing the invoke permission of function {name}"), e));
            done_already(removed, &["ResourceNotFoundException"])?;
        }
        info!("allowing config.amazonaws.com to invoke function {name}");
        let added = lab
            .clients
            .lambda
            .add_permission()
            .function_name(name)
            .statement_id(PERMISSION_SID)
            .action("lambda:InvokeFunction")
            .principal("config.amazonaws.com")
            .source_account(&lab.account)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws(format!("allowing Config to invoke function {name}"), e));
        added_already(lab, PERMISSION_SID, added).await?;
    }
    Ok(Step::new(PERMISSION, PERMISSION_SID, action)
        .detail(format!("config.amazonaws.com, SourceAccount {}", lab.account)))
}

/// Deletes the lab's function (its resource policy goes with it) and its log group.
///
/// The log group goes first: it is the lab's only while the lab's function exists, so a `down`
/// interrupted between the two must leave the function, not the log group, for the next `down`.
pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    let name = &lab.names.function;
    match ownership(lab).await? {
        Ownership::Absent => return Ok(vec![Step::new(KIND, name, Action::Absent)]),
        Ownership::Foreign => {
            return Ok(
                vec![Step::new(KIND, name, Action::Kept).detail(format!("not tagged {OWNER_TAG}={OWNER_VALUE}"))],
            )
        }
        Ownership::Ours => {}
    }
    let log_group = lab.log_group();
    let mut log_exists = log_group_exists(lab).await?;
    if !dry_run {
        if log_exists {
            delete_log_group(lab).await?;
        }
        info!("deleting function {name}");
        let deleted = lab
            .clients
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws(format!("deleting function {name}"), e));
        done_already(deleted, &["ResourceNotFoundException"])?;
        // An invocation still running may have written to it again.
        if log_group_exists(lab).await? {
            delete_log_group(lab).await?;
            log_exists = true;
        }
    }
    let mut steps = vec![Step::new(KIND, name, Action::Delete).detail("with its invoke permission")];
    if log_exists {
        steps.push(Step::new("log-group", log_group, Action::Delete).detail("the function's own logs"));
    }
    Ok(steps)
}

/// Whether the function's log group `/aws/lambda/<function>` exists.
pub(crate) async fn log_group_exists(lab: &Lab) -> Result<bool> {
    let log_group = lab.log_group();
    let found = lab
        .clients
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&log_group)
        .send()
        .await
        .map_err(|e| Error::aws(format!("reading log group {log_group}"), e))?;
    Ok(found.log_groups().iter().any(|g| g.log_group_name() == Some(log_group.as_str())))
}

async fn delete_log_group(lab: &Lab) -> Result<()> {
    let log_group = lab.log_group();
    match lab.clients.logs.delete_log_group().log_group_name(&log_group).send().await {
        Ok(_) => Ok(()),
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => Ok(()),
        Err(err) => Err(Error::aws(format!("deleting log group {log_group}"), err)),
    }
}
