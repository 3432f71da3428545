//! `lab reset`: removes what a student made by hand for the lab (nothing tagged), so the account
//! can serve the next class. `down` never touches untagged resources; this finds the lab's by
//! its names AND shapes, and reports why each counts as the lab's:
//!
//! - a Config rule whose source is the lab's function (by name or not);
//! - the function with the lab's name, on `provided.al2023` with handler `bootstrap` (its invoke
//!   permissions go with it), and its log group;
//! - the function role by name, trusted by Lambda, with one of the lab's policies;
//! - the recorder that uses the lab's Config role, and the channel that delivers to the lab's
//!   bucket (when its recorder is the lab's or there is none);
//! - the Config role by name, trusted by Config, with AWS_ConfigRole;
//! - the bucket `config-bucket-<account>` whose policy lets Config write (emptied), and the
//!   bucket of `lab prepare`.
//!
//! A resource with a lab name but another shape is reported `kept`, with what differs. Every
//! step is attempted; failures are reported as failed steps, as `down` does.

use aws_sdk_config::types::{ConfigRule, ConfigRuleState, Owner};
use tracing::info;

use crate::check::{attached, inline_policies, lab_function_policy, role, trusts};
use crate::error::{code_of, Error, Result};
use crate::lab::{parse_policy, Lab, CONFIG_MANAGED_POLICY, OWNER_TAG, OWNER_VALUE};
use crate::report::{Action, Report, Step};

/// Runs `lab reset`.
pub async fn reset(lab: &Lab, dry_run: bool) -> Report {
    let mut report = Report::empty("lab reset", lab, dry_run);
    let failed =
        |kind: &'static str, name: &str, err: Error| Step::new(kind, name, Action::Failed).detail(err.to_string());
    let names = &lab.names;
    let many = |steps: Result<Vec<Step>>, kind, name: &str| steps.unwrap_or_else(|err| vec![failed(kind, name, err)]);
    report.record(many(rules(lab, dry_run).await, "rule", &names.rule));
    let artifact = crate::prepare::delete(lab, dry_run).await.map(|s| s.into_iter().collect());
    report.record(many(artifact, crate::prepare::KIND, &crate::prepare::bucket_name(lab)));
    report.record(many(function(lab, dry_run).await, "function", &names.function));
    let function_role = function_role(lab, dry_run).await.map(|s| vec![s]);
    report.record(many(function_role, "function-role", &names.function_role));
    let recorder = recorder(lab, dry_run).await;
    // A channel that stays and delivers to the lab's bucket keeps the bucket.
    let channel_kept = match &recorder {
        Ok(steps) => steps.iter().any(|s| {
            s.resource == "delivery-channel"
                && s.action == Action::Kept
                && s.detail.as_deref().is_some_and(|d| d.starts_with("delivers to the lab's bucket"))
        }),
        Err(_) => true,
    };
    report.record(many(recorder, "recorder", &names.recorder));
    report.record(many(config_role(lab, dry_run).await.map(|s| vec![s]), "config-role", &names.config_role));
    report.record(many(bucket(lab, dry_run, channel_kept).await.map(|s| vec![s]), "bucket", &names.bucket));
    report
}

/// The plan of a class's `lab reset --dry-run`, per target: what would be deleted or kept, and
/// why. Shown before asking.
pub fn describe_plan(run: &crate::fanout::Run) -> String {
    let mut text = String::new();
    for target in &run.targets {
        text.push_str(&format!("{}: account {}\n", target.target.label(), target.account.as_deref().unwrap_or("-")));
        let steps = target.result.as_ref().and_then(|r| r["steps"].as_array().cloned()).unwrap_or_default();
        if steps.is_empty() {
            text.push_str(&format!("  {}\n", target.detail.lines().next().unwrap_or("nothing found")));
        }
        for step in steps {
            let line = format!(
                "  {:<17} {:<40} {:<7} {}",
                step["resource"].as_str().unwrap_or_default(),
                step["name"].as_str().unwrap_or_default(),
                step["action"].as_str().unwrap_or_default(),
                step["detail"].as_str().unwrap_or_default()
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    text
}

fn kept(kind: &'static str, name: &str, why: impl Into<String>) -> Step {
    Step::new(kind, name, Action::Kept).detail(why)
}

async fn all_rules(lab: &Lab) -> Result<Vec<ConfigRule>> {
    let mut rules = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let out = lab
            .clients
            .config
            .describe_config_rules()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| Error::aws("listing the Config rules", e))?;
        rules.extend(out.config_rules().iter().cloned());
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(rules)
}

/// Rules whose source is the lab's function; a rule with the lab's name and another source is
/// kept.
async fn rules(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    const KIND: &str = "rule";
    let function = lab.function_arn();
    let mut steps = Vec::new();
    for rule in all_rules(lab).await? {
        let name = rule.config_rule_name().unwrap_or("?").to_owned();
        let source = rule.source();
        let ours =
            source.is_some_and(|s| *s.owner() == Owner::CustomLambda && s.source_identifier() == Some(&function));
        if !ours {
            if name == lab.names.rule {
                let what = source.and_then(|s| s.source_identifier()).unwrap_or("none");
                steps.push(kept(
                    KIND,
                    &name,
                    format!("has the lab's name, but its source is {what}, not the lab's function"),
                ));
            }
            continue;
        }
        let why = format!("its source is the lab's function {}", lab.names.function);
        // DeleteConfigRule is asynchronous; a DELETING rule is already on its way out.
        if rule.config_rule_state() == Some(&ConfigRuleState::Deleting) {
            steps.push(Step::new(KIND, &name, Action::Absent).detail(format!("{why}; already being deleted")));
            continue;
        }
        if !dry_run {
            info!("deleting Config rule {name}");
            match lab.clients.config.delete_config_rule().config_rule_name(&name).send().await {
                Ok(_) => {}
                Err(err) if code_of(&err) == Some("NoSuchConfigRuleException") => {}
                // Already being deleted (AWS answers this while the rule is DELETING).
                Err(err) if code_of(&err) == Some("ResourceInUseException") => {}
                Err(err) => return Err(Error::aws(format!("deleting Config rule {name}"), err)),
            }
        }
        steps.push(Step::new(KIND, &name, Action::Delete).detail(why));
    }
    if steps.is_empty() {
        steps.push(Step::new(KIND, &lab.names.rule, Action::Absent));
    }
    Ok(steps)
}

/// The function with the lab's name and shape, its invoke permissions and its log group.
async fn function(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    use crate::function::{HANDLER, RUNTIME};
    const KIND: &str = "function";
    let name = &lab.names.function;
    let log_group = lab.log_group();
    let lambda = &lab.clients.lambda;
    let mut steps = Vec::new();
    match lambda.get_function_configuration().function_name(name).send().await {
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => {
            steps.push(Step::new(KIND, name, Action::Absent));
        }
        Err(err) => return Err(Error::aws(format!("reading function {name}"), err)),
        Ok(current) => {
            let runtime = current.runtime().map(|r| r.as_str()).unwrap_or("none");
            let handler = current.handler().unwrap_or("none");
            if runtime != RUNTIME || handler != HANDLER {
                steps.push(kept(
                    KIND,
                    name,
                    format!(
                        "has the lab's name, but runtime {runtime} and handler {handler}, not {RUNTIME} and {HANDLER}"
                    ),
                ));
                steps.push(kept("log-group", &log_group, format!("belongs to function {name}, which is kept")));
                return Ok(steps);
            }
            let sids = permissions(lab).await?;
            if !dry_run {
                info!("deleting function {name}");
                match lambda.delete_function().function_name(name).send().await {
                    Ok(_) => {}
                    Err(err) if code_of(&err) == Some("ResourceNotFoundException") => {}
                    Err(err) => return Err(Error::aws(format!("deleting function {name}"), err)),
                }
            }
            steps.push(
                Step::new(KIND, name, Action::Delete)
                    .detail(format!("the lab's name, runtime {RUNTIME}, handler {HANDLER}")),
            );
            for sid in sids {
                steps.push(
                    Step::new("invoke-permission", sid, Action::Delete)
                        .detail(format!("a statement of function {name}'s policy; goes with the function")),
                );
            }
        }
    }
    if crate::function::log_group_exists(lab).await? {
        if !dry_run {
            match lab.clients.logs.delete_log_group().log_group_name(&log_group).send().await {
                Ok(_) => {}
                Err(err) if code_of(&err) == Some("ResourceNotFoundException") => {}
                Err(err) => return Err(Error::aws(format!("deleting log group {log_group}"), err)),
            }
        }
        steps.push(
            Step::new("log-group", &log_group, Action::Delete)
                .detail(format!("the log group of the lab's function {name}")),
        );
    }
    Ok(steps)
}

/// The statement ids of the function's resource policy.
async fn permissions(lab: &Lab) -> Result<Vec<String>> {
    let name = &lab.names.function;
    match lab.clients.lambda.get_policy().function_name(name).send().await {
        Ok(out) => {
            let policy: serde_json::Value = out.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
            let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
            Ok(statements.iter().filter_map(|s| s["Sid"].as_str().map(str::to_owned)).collect())
        }
        Err(err) if code_of(&err) == Some("ResourceNotFoundException") => Ok(Vec::new()),
        Err(err) => Err(Error::aws(format!("reading the resource policy of function {name}"), err)),
    }
}

async fn function_role(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "function-role";
    let name = &lab.names.function_role;
    let Some((_, trust)) = role(lab, name).await? else { return Ok(Step::new(KIND, name, Action::Absent)) };
    if !trusts(&trust, "lambda.amazonaws.com") {
        return Ok(kept(KIND, name, "has the lab's name, but is not trusted by lambda.amazonaws.com"));
    }
    let policies = inline_policies(lab, name).await?;
    let Some((policy, variant)) =
        policies.iter().find_map(|(policy, document)| lab_function_policy(lab, document).map(|v| (policy, v)))
    else {
        return Ok(kept(KIND, name, "has the lab's name, but none of its inline policies is one of the lab's"));
    };
    if !dry_run {
        delete_role(lab, name).await?;
    }
    Ok(Step::new(KIND, name, Action::Delete)
        .detail(format!("the lab's name, trusted by Lambda, inline policy {policy} is the lab's {variant} policy")))
}

async fn config_role(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "config-role";
    let name = &lab.names.config_role;
    let Some((_, trust)) = role(lab, name).await? else { return Ok(Step::new(KIND, name, Action::Absent)) };
    if !trusts(&trust, "config.amazonaws.com") {
        return Ok(kept(KIND, name, "has the lab's name, but is not trusted by config.amazonaws.com"));
    }
    if !attached(lab, name).await?.contains(&lab.managed_policy_arn()) {
        return Ok(kept(KIND, name, format!("has the lab's name, but lacks {CONFIG_MANAGED_POLICY}")));
    }
    if !dry_run {
        delete_role(lab, name).await?;
    }
    Ok(Step::new(KIND, name, Action::Delete)
        .detail(format!("the lab's name, trusted by Config, with {CONFIG_MANAGED_POLICY}")))
}

/// Deletes a role with what IAM requires gone first: managed and inline policies, instance
/// profiles (IAM API reference, DeleteRole).
async fn delete_role(lab: &Lab, name: &str) -> Result<()> {
    let iam = &lab.clients.iam;
    for arn in attached(lab, name).await? {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| Error::aws(format!("detaching {arn} from role {name}"), e))?;
    }
    for (policy, _) in inline_policies(lab, name).await? {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(&policy)
            .send()
            .await
            .map_err(|e| Error::aws(format!("deleting policy {policy} of role {name}"), e))?;
    }
    let profiles = iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("listing the instance profiles of role {name}"), e))?;
    for profile in profiles.instance_profiles() {
        let profile = profile.instance_profile_name();
        iam.remove_role_from_instance_profile()
            .role_name(name)
            .instance_profile_name(profile)
            .send()
            .await
            .map_err(|e| Error::aws(format!("removing role {name} from instance profile {profile}"), e))?;
    }
    info!("deleting role {name}");
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(err) if code_of(&err) == Some("NoSuchEntity") => Ok(()),
        Err(err) => Err(Error::aws(format!("deleting role {name}"), err)),
    }
}

/// Whether `arn` is the lab's Config role in this account (any path: the console creates it
/// under `service-role/`).
fn is_config_role(lab: &Lab, arn: &str) -> bool {
    let prefix = format!("arn:{}:iam::{}:role/", lab.partition, lab.account);
    arn.strip_prefix(&prefix).and_then(|path| path.rsplit('/').next()) == Some(lab.names.config_role.as_str())
}

/// The recorder that uses the lab's Config role and the channel that delivers to the lab's
/// bucket.
async fn recorder(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    let config = &lab.clients.config;
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| Error::aws("reading the configuration recorders", e))?;
    let channels =
        config.describe_delivery_channels().send().await.map_err(|e| Error::aws("reading the delivery channels", e))?;
    let recorder = recorders.configuration_recorders().first();
    let channel = channels.delivery_channels().first();
    let recorder_ours = recorder.is_some_and(|r| r.role_arn().is_some_and(|arn| is_config_role(lab, arn)));
    let mut steps = Vec::new();

    let recorder_name = recorder.and_then(|r| r.name()).unwrap_or_default().to_owned();
    if recorder_ours && !dry_run {
        info!("stopping configuration recorder {recorder_name}");
        match config.stop_configuration_recorder().configuration_recorder_name(&recorder_name).send().await {
            Ok(_) => {}
            Err(err) if code_of(&err) == Some("NoSuchConfigurationRecorderException") => {}
            Err(err) => return Err(Error::aws(format!("stopping configuration recorder {recorder_name}"), err)),
        }
    }
    match channel {
        None => steps.push(Step::new("delivery-channel", &lab.names.channel, Action::Absent)),
        Some(c) => {
            let name = c.name().unwrap_or("?");
            let bucket = c.s3_bucket_name().unwrap_or("none");
            if bucket != lab.names.bucket {
                steps.push(kept(
                    "delivery-channel",
                    name,
                    format!("delivers to bucket {bucket}, not the lab's {}", lab.names.bucket),
                ));
            } else if recorder.is_some() && !recorder_ours {
                steps.push(kept(
                    "delivery-channel",
                    name,
                    format!("delivers to the lab's bucket, but its recorder {recorder_name} is not the lab's (deleting the channel would stop it)"),
                ));
            } else {
                if !dry_run {
                    info!("deleting delivery channel {name}");
                    match config.delete_delivery_channel().delivery_channel_name(name).send().await {
                        Ok(_) => {}
                        Err(err) if code_of(&err) == Some("NoSuchDeliveryChannelException") => {}
                        Err(err) => return Err(Error::aws(format!("deleting delivery channel {name}"), err)),
                    }
                }
                steps.push(
                    Step::new("delivery-channel", name, Action::Delete)
                        .detail(format!("delivers to the lab's bucket {bucket}")),
                );
            }
        }
    }
    match recorder {
        None => steps.push(Step::new("recorder", &lab.names.recorder, Action::Absent)),
        Some(r) if !recorder_ours => steps.push(kept(
            "recorder",
            &recorder_name,
            format!("uses role {}, not the lab's {}", r.role_arn().unwrap_or("none"), lab.names.config_role),
        )),
        Some(_) => {
            if !dry_run {
                info!("deleting configuration recorder {recorder_name}");
                match config.delete_configuration_recorder().configuration_recorder_name(&recorder_name).send().await {
                    Ok(_) => {}
                    Err(err) if code_of(&err) == Some("NoSuchConfigurationRecorderException") => {}
                    Err(err) => {
                        return Err(Error::aws(format!("deleting configuration recorder {recorder_name}"), err))
                    }
                }
            }
            steps.push(
                Step::new("recorder", &recorder_name, Action::Delete)
                    .detail(format!("uses the lab's Config role {}", lab.names.config_role)),
            );
        }
    }
    Ok(steps)
}

/// The delivery bucket by name, when its policy lets Config write (or `up` tagged it).
async fn bucket(lab: &Lab, dry_run: bool, channel_kept: bool) -> Result<Step> {
    const KIND: &str = "bucket";
    let name = &lab.names.bucket;
    let s3 = &lab.clients.s3;
    if let Err(err) = s3.head_bucket().bucket(name).send().await {
        return match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => Ok(Step::new(KIND, name, Action::Absent)),
            Some(403) => Ok(kept(KIND, name, "belongs to another account")),
            Some(301) => Ok(kept(KIND, name, "is in another region")),
            _ => Err(Error::aws(format!("reading bucket {name}"), err)),
        };
    }
    if channel_kept {
        return Ok(kept(KIND, name, "a delivery channel that is kept may still deliver to it"));
    }
    let tagged = match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => out.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE),
        Err(err) if code_of(&err) == Some("NoSuchTagSet") => false,
        Err(err) => return Err(Error::aws(format!("reading the tags of bucket {name}"), err)),
    };
    let policy = match s3.get_bucket_policy().bucket(name).send().await {
        Ok(out) => out.policy().and_then(parse_policy).unwrap_or_default(),
        Err(err) if code_of(&err) == Some("NoSuchBucketPolicy") => serde_json::Value::Null,
        Err(err) => return Err(Error::aws(format!("reading the policy of bucket {name}"), err)),
    };
    let for_config = policy["Statement"].as_array().is_some_and(|all| {
        all.iter().any(|s| {
            s["Effect"] == "Allow"
                && (s["Principal"]["Service"] == "config.amazonaws.com"
                    || s["Principal"]["Service"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|p| p == "config.amazonaws.com")))
        })
    });
    let why = match (for_config, tagged) {
        (true, _) => "the lab's name, and its policy lets Config deliver to it",
        (false, true) => "the lab's name and tag",
        (false, false) => {
            return Ok(kept(KIND, name, "has the lab's name, but its policy does not let Config deliver to it"))
        }
    };
    if dry_run {
        return Ok(Step::new(KIND, name, Action::Delete).detail(format!("{why}; emptied first")));
    }
    let removed = crate::prepare::empty_and_delete(lab, name).await?;
    Ok(Step::new(KIND, name, Action::Delete).detail(format!("{why}; {removed} object versions removed")))
}
