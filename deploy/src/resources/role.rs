//! IAM roles: the Config role (`config-role-<region>`: AWS_ConfigRole + bucket delivery) and the
//! function role (the lab's inline policy, or the least-privilege one with `up --policy`). Both
//! are created with the lab's tag, which is how `down` knows they are the lab's.

use aws_sdk_iam::types::Tag;
use tracing::info;

use crate::error::{code_of, done_already, Error, Result};
use crate::lab::{parse_policy, FunctionPolicy, Lab, FUNCTION_POLICY_NAME, OWNER_TAG, OWNER_VALUE};
use crate::report::{Action, Step};

/// What a role must look like.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub kind: &'static str,
    pub name: String,
    pub trust: serde_json::Value,
    pub managed: Vec<String>,
    pub inline_name: &'static str,
    pub inline: serde_json::Value,
    /// Which variant of the inline policy it is, for the report (the function role's).
    pub inline_variant: Option<FunctionPolicy>,
}

impl RoleSpec {
    pub fn config(lab: &Lab) -> Self {
        RoleSpec {
            kind: "config-role",
            name: lab.names.config_role.clone(),
            trust: lab.config_trust(),
            managed: vec![lab.managed_policy_arn()],
            inline_name: crate::lab::DELIVERY_POLICY_NAME,
            inline: lab.config_delivery_policy(),
            inline_variant: None,
        }
    }

    pub fn function(lab: &Lab) -> Self {
        RoleSpec {
            kind: "function-role",
            name: lab.names.function_role.clone(),
            trust: lab.lambda_trust(),
            managed: vec![],
            inline_name: FUNCTION_POLICY_NAME,
            inline: lab.lambda_policy(),
            inline_variant: Some(lab.function_policy),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    Foreign,
}

pub async fn ownership(lab: &Lab, name: &str) -> Result<Ownership> {
    match lab.clients.iam.get_role().role_name(name).send().await {
        Ok(out) => {
            let ours =
                out.role().is_some_and(|r| r.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE));
            Ok(if ours { Ownership::Ours } else { Ownership::Foreign })
        }
        Err(err) if code_of(&err) == Some("NoSuchEntity") => Ok(Ownership::Absent),
        Err(err) => Err(Error::aws(format!("reading role {name}"), err)),
    }
}

pub fn conflict(kind: &str, name: &str, flag: &str) -> Error {
    Error::Conflict(format!(
        "{kind} {name} exists and is not tagged {OWNER_TAG}={OWNER_VALUE}: it is not this lab's; pick another name with {flag} or delete that role"
    ))
}

pub async fn ensure(lab: &Lab, spec: &RoleSpec, dry_run: bool, flag: &str) -> Result<Step> {
    let iam = &lab.clients.iam;
    let name = &spec.name;
    match ownership(lab, name).await? {
        Ownership::Foreign => Err(conflict(spec.kind, name, flag)),
        Ownership::Absent if dry_run => Ok(created(spec)),
        Ownership::Absent => {
            info!("creating role {name}");
            let tag =
                Tag::builder().key(OWNER_TAG).value(OWNER_VALUE).build().map_err(|e| Error::Failed(e.to_string()))?;
            let made = iam
                .create_role()
                .role_name(name)
                .assume_role_policy_document(spec.trust.to_string())
                .tags(tag)
                .send()
                .await
                .map_err(|e| Error::aws(format!("creating role {name}"), e));
            match made {
                // A retry of a create that took effect: the role is there, and ours if tagged.
                Err(err) if err.code() == Some("EntityAlreadyExists") => {
                    if ownership(lab, name).await? != Ownership::Ours {
                        return Err(conflict(spec.kind, name, flag));
                    }
                }
                other => drop(other?),
            }
            converge(lab, spec, false).await?;
            Ok(created(spec))
        }
        Ownership::Ours => {
            let changed = converge(lab, spec, dry_run).await?;
            let action = if changed.is_empty() { Action::Unchanged } else { Action::Update };
            Ok(Step::new(spec.kind, name, action).detail(changed.join(", ")))
        }
    }
}

/// The step of a role `ensure` creates: it names the variant of the function role's policy.
fn created(spec: &RoleSpec) -> Step {
    let step = Step::new(spec.kind, &spec.name, Action::Create);
    match spec.inline_variant {
        Some(variant) => step.detail(format!("{variant} policy")),
        None => step,
    }
}

/// Brings trust, managed and inline policies to the spec; returns what changed (or would).
async fn converge(lab: &Lab, spec: &RoleSpec, dry_run: bool) -> Result<Vec<String>> {
    let iam = &lab.clients.iam;
    let name = &spec.name;
    let mut changed = Vec::new();

    let role =
        iam.get_role().role_name(name).send().await.map_err(|e| Error::aws(format!("reading role {name}"), e))?;
    let trust = role.role().and_then(|r| r.assume_role_policy_document()).and_then(parse_policy);
    if trust.as_ref() != Some(&spec.trust) {
        changed.push("trust policy".to_owned());
        if !dry_run {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(spec.trust.to_string())
                .send()
                .await
                .map_err(|e| Error::aws(format!("updating the trust policy of role {name}"), e))?;
        }
    }

    let attached = attached(lab, name).await?;
    for arn in spec.managed.iter().filter(|arn| !attached.contains(arn)) {
        changed.push(format!("attach {arn}"));
        if !dry_run {
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| Error::aws(format!("attaching {arn} to role {name}"), e))?;
        }
    }
    for arn in attached.iter().filter(|arn| !spec.managed.contains(arn)) {
        changed.push(format!("detach {arn}"));
        if !dry_run {
            detach(lab, name, arn).await?;
        }
    }

    let inline = inline_policy(lab, name, spec.inline_name).await?;
    if inline.as_ref() != Some(&spec.inline) {
        changed.push(match spec.inline_variant {
            Some(variant) => format!("inline policy {} ({variant})", spec.inline_name),
            None => format!("inline policy {}", spec.inline_name),
        });
        if !dry_run {
            iam.put_role_policy()
                .role_name(name)
                .policy_name(spec.inline_name)
                .policy_document(spec.inline.to_string())
                .send()
                .await
                .map_err(|e| Error::aws(format!("setting policy {} of role {name}", spec.inline_name), e))?;
        }
    }
    Ok(changed)
}

/// A role's inline policy `policy`, parsed; `None` when the role or the policy does not exist.
pub async fn inline_policy(lab: &Lab, name: &str, policy: &str) -> Result<Option<serde_json::Value>> {
    match lab.clients.iam.get_role_policy().role_name(name).policy_name(policy).send().await {
        Ok(out) => Ok(parse_policy(out.policy_document())),
        Err(err) if code_of(&err) == Some("NoSuchEntity") => Ok(None),
        Err(err) => Err(Error::aws(format!("reading policy {policy} of role {name}"), err)),
    }
}

/// What the function role's inline policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarriedPolicy {
    /// No role, or no inline policy.
    Absent,
    /// One of the lab's documents.
    Is(FunctionPolicy),
    /// A document that is none of them (edited by hand); `up` puts one back.
    Other,
}

pub async fn function_policy(lab: &Lab) -> Result<CarriedPolicy> {
    let Some(current) = inline_policy(lab, &lab.names.function_role, FUNCTION_POLICY_NAME).await? else {
        return Ok(CarriedPolicy::Absent);
    };
    Ok(FunctionPolicy::ALL
        .into_iter()
        .find(|p| lab.lambda_policy_of(*p) == current)
        .map_or(CarriedPolicy::Other, CarriedPolicy::Is))
}

/// The ARNs of the managed policies attached to a role.
async fn attached(lab: &Lab, name: &str) -> Result<Vec<String>> {
    let out = lab
        .clients
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("listing the policies of role {name}"), e))?;
    Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect())
}

async fn detach(lab: &Lab, name: &str, arn: &str) -> Result<()> {
    lab.clients
        .iam
        .detach_role_policy()
        .role_name(name)
        .policy_arn(arn)
        .send()
        .await
        .map(drop)
        .map_err(|e| Error::aws(format!("detaching {arn} from role {name}"), e))
}

pub async fn delete(lab: &Lab, kind: &'static str, name: &str, dry_run: bool) -> Result<Step> {
    let iam = &lab.clients.iam;
    match ownership(lab, name).await? {
        Ownership::Absent => return Ok(Step::new(kind, name, Action::Absent)),
        Ownership::Foreign => {
            return Ok(Step::new(kind, name, Action::Kept).detail(format!("not tagged {OWNER_TAG}={OWNER_VALUE}")))
        }
        Ownership::Ours if dry_run => return Ok(Step::new(kind, name, Action::Delete)),
        Ownership::Ours => {}
    }
    for arn in attached(lab, name).await? {
        done_already(detach(lab, name, &arn).await, &["NoSuchEntity"])?;
    }
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("listing the inline policies of role {name}"), e))?;
    for policy in inline.policy_names() {
        let deleted = iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws(format!("deleting policy {policy} of role {name}"), e));
        done_already(deleted, &["NoSuchEntity"])?;
    }
    info!("deleting role {name}");
    let deleted = iam
        .delete_role()
        .role_name(name)
        .send()
        .await
        .map(drop)
        .map_err(|e| Error::aws(format!("deleting role {name}"), e));
    done_already(deleted, &["NoSuchEntity"])?;
    Ok(Step::new(kind, name, Action::Delete))
}
