//! `up` (lab steps 1, 3, 4) and `down` (lab step 6).
//!
//! `up` checks every resource's ownership before its first change, then converges two
//! independent chains concurrently — bucket and Config role → recorder → channel → recording;
//! function role → function → invoke permission — and puts the rule when both are done.
//! `down` walks the reverse order, deletes only what carries the lab's mark, continues past
//! failures and reports each one.

use std::path::PathBuf;

use serde_json::json;

use crate::artifact::Artifact;
use crate::error::{Error, Result};
use crate::lab::{FunctionPolicy, Lab, RULE_DESCRIPTION, RULE_PARAMETERS, SECURITY_GROUP};
use crate::recorder::Mode;
use crate::report::{Action, Report, Step};
use crate::role::RoleSpec;
use crate::{bucket, fast_path, function, recorder, role, rule};

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub zip: Option<PathBuf>,
    pub dry_run: bool,
    pub use_existing_recorder: bool,
    /// Add the event fast path (trail, EventBridge rule, permission); kept once deployed.
    pub fast_path: bool,
    /// The function role's inline policy; `up` puts it in place of the other. `None`: the one
    /// deployed (like the fast path, a choice is kept once made), else the lab's.
    pub policy: Option<FunctionPolicy>,
}

/// Steps done so far, and the error that stopped a chain.
type Chain = (Vec<Step>, Option<Error>);

fn push(chain: &mut Chain, step: Result<Step>, dry_run: bool) -> bool {
    match step {
        Ok(step) => {
            chain.0.push(step.announce(dry_run));
            true
        }
        Err(err) => {
            chain.1 = Some(err);
            false
        }
    }
}

/// Checks, before any change, that nothing in the way belongs to someone else.
async fn preflight(lab: &Lab, use_existing: bool) -> Result<Mode> {
    let (mode, bucket, config_role, function_role, function, rule) = tokio::try_join!(
        recorder::preflight(lab, use_existing),
        bucket::ownership(lab),
        role::ownership(lab, &lab.names.config_role),
        role::ownership(lab, &lab.names.function_role),
        function::ownership(lab),
        rule::find(lab),
    )?;
    // With the fast path the trail needs the lab's bucket, whoever records.
    if mode == Mode::Manage || lab.fast_path {
        if let bucket::Ownership::Foreign(why) = bucket {
            return Err(bucket::conflict(lab, &why));
        }
    }
    if mode == Mode::Manage && config_role == role::Ownership::Foreign {
        return Err(role::conflict("config-role", &lab.names.config_role, "--config-role-name"));
    }
    if function_role == role::Ownership::Foreign {
        return Err(role::conflict("function-role", &lab.names.function_role, "--function-role-name"));
    }
    if function == function::Ownership::Foreign {
        return Err(function::conflict(lab));
    }
    // A rule Config is deleting is no one's any more: `rule::ensure` waits for it to go.
    if let Some(existing) = rule.filter(|r| !rule::is_deleting(r)) {
        if !rule::is_ours(lab, &existing).await? {
            return Err(rule::conflict(lab));
        }
    }
    if lab.fast_path {
        if fast_path::trail_ownership(lab).await? == fast_path::Ownership::Foreign {
            return Err(fast_path::conflict(&format!("trail {}", crate::lab::TRAIL_NAME)));
        }
        if fast_path::rule_ownership(lab).await? == fast_path::Ownership::Foreign {
            return Err(fast_path::conflict(&format!("EventBridge rule {}", crate::lab::FAST_PATH_RULE)));
        }
    }
    Ok(mode)
}

/// The state `up` converges to, for `--dry-run --output json` and for comparison with the CDK
/// app.
pub fn desired(lab: &Lab, artifact: &Artifact, mode: &Mode) -> serde_json::Value {
    let config_role = RoleSpec::config(lab);
    let function_role = RoleSpec::function(lab);
    let role_json = |spec: &RoleSpec| {
        json!({
            "name": spec.name,
            "trust": spec.trust,
            "managedPolicies": spec.managed,
            "inlinePolicies": { spec.inline_name: spec.inline },
        })
    };
    json!({
        "names": lab.names,
        "bucket": {
            "name": lab.names.bucket,
            "policy": lab.bucket_policy(),
            "blockPublicAccess": true,
            "encryption": "AES256",
        },
        "configRole": role_json(&config_role),
        "recorder": {
            "name": lab.names.recorder,
            "managed": *mode == Mode::Manage,
            "roleArn": lab.role_arn(&lab.names.config_role),
            "allSupported": false,
            "includeGlobalResourceTypes": false,
            "resourceTypes": [SECURITY_GROUP],
        },
        "deliveryChannel": { "name": lab.names.channel, "s3BucketName": lab.names.bucket, "snsTopicArn": null },
        "functionRole": role_json(&function_role),
        "function": {
            "name": lab.names.function,
            "runtime": function::RUNTIME,
            "handler": function::HANDLER,
            "memorySize": function::MEMORY_MB,
            "timeout": function::TIMEOUT_S,
            "description": crate::lab::FUNCTION_DESCRIPTION,
            "architecture": artifact.architecture,
            "codeSha256": artifact.sha256,
            "roleArn": lab.role_arn(&lab.names.function_role),
        },
        "invokePermission": function::desired_permission(lab),
        "rule": {
            "name": lab.names.rule,
            "description": RULE_DESCRIPTION,
            "owner": "CUSTOM_LAMBDA",
            "sourceIdentifier": lab.function_arn(),
            "messageTypes": rule::MESSAGE_TYPES,
            "scope": [SECURITY_GROUP],
            "inputParameters": serde_json::from_str::<serde_json::Value>(RULE_PARAMETERS).unwrap_or_default(),
        },
        "fastPath": if lab.fast_path { fast_path::desired(lab) } else { serde_json::Value::Null },
    })
}

/// Runs `up`. The report lists every step reached; the error, if any, is the first failure.
pub async fn up(lab: &Lab, options: &UpOptions) -> (Report, Option<Error>) {
    let fast = match fast_path::deployed(lab).await {
        Ok(deployed) => options.fast_path || deployed,
        Err(err) => return (Report::empty("up", lab, options.dry_run), Some(err)),
    };
    let policy = match options.policy {
        Some(policy) => policy,
        None => match role::function_policy(lab).await {
            Ok(role::CarriedPolicy::Is(deployed)) => deployed,
            Ok(role::CarriedPolicy::Absent | role::CarriedPolicy::Other) => FunctionPolicy::default(),
            Err(err) => return (Report::empty("up", lab, options.dry_run), Some(err)),
        },
    };
    let lab = match bucket::in_region(lab).await {
        Ok(lab) => Lab { fast_path: fast, function_policy: policy, ..lab },
        Err(err) => return (Report::empty("up", lab, options.dry_run), Some(err)),
    };
    let lab = &lab;
    let mut report = Report {
        command: "up",
        account: lab.account.clone(),
        region: lab.region.clone(),
        dry_run: options.dry_run,
        steps: Vec::new(),
        desired: None,
        impact: None,
    };
    let artifact = match Artifact::locate(options.zip.as_deref()) {
        Ok(artifact) => artifact,
        Err(err) => return (report, Some(err)),
    };
    let mode = match preflight(lab, options.use_existing_recorder).await {
        Ok(mode) => mode,
        Err(err) => return (report, Some(err)),
    };
    report.desired = Some(desired(lab, &artifact, &mode));
    let groups = match crate::impact::preview_groups(lab).await {
        Ok((impact, groups)) => {
            report.impact = Some(impact);
            groups
        }
        Err(err) => return (report, Some(err)),
    };
    let dry_run = options.dry_run;

    let config_chain = async {
        let mut chain: Chain = (Vec::new(), None);
        if let Mode::UseExisting { recorder } = &mode {
            let step = Step::new("recorder", recorder, Action::Kept).detail("existing recorder, used as it is");
            chain.0.push(step.announce(dry_run));
            // The fast path's trail delivers to the lab's bucket and needs its CloudTrail
            // statements: created here too (the existing recorder keeps its own channel and
            // bucket, which the lab never changes). Created rather than refused: accounts that
            // already record (an organization's recorder) are where the fast path's seconds
            // matter as much, and the bucket is the lab's alone, tagged, deleted by `down`.
            if lab.fast_path {
                push(&mut chain, bucket::ensure(lab, dry_run).await, dry_run);
            }
            return chain;
        }
        let spec = RoleSpec::config(lab);
        let (bucket, config_role) =
            tokio::join!(bucket::ensure(lab, dry_run), role::ensure(lab, &spec, dry_run, "--config-role-name"));
        let ok = push(&mut chain, bucket, dry_run) & push(&mut chain, config_role, dry_run);
        let _ = ok
            && push(&mut chain, recorder::ensure_recorder(lab, dry_run).await, dry_run)
            && push(&mut chain, recorder::ensure_channel(lab, dry_run).await, dry_run)
            && push(&mut chain, recorder::ensure_started(lab, dry_run).await, dry_run);
        chain
    };
    let function_chain = async {
        let mut chain: Chain = (Vec::new(), None);
        let function_role = role::ensure(lab, &RoleSpec::function(lab), dry_run, "--function-role-name").await;
        let _ = push(&mut chain, function_role, dry_run)
            && push(&mut chain, function::ensure(lab, &artifact, dry_run).await, dry_run)
            && push(&mut chain, function::ensure_permission(lab, dry_run).await, dry_run);
        chain
    };
    let ((config_steps, config_error), (function_steps, function_error)) = tokio::join!(config_chain, function_chain);
    report.steps.extend(config_steps);
    report.steps.extend(function_steps);
    if let Some(err) = config_error.or(function_error) {
        return (report, Some(err));
    }
    // The record of the groups before the rule exists (crate::snapshot), in the lab's bucket:
    // created here when the existing recorder is used without the fast path.
    if mode != Mode::Manage && !lab.fast_path {
        match bucket::ensure(lab, dry_run).await {
            Ok(step) => report.record([step]),
            Err(err) => return (report, Some(err)),
        }
    }
    // Without a record `down` cannot put the groups back: only the lab's own default group
    // may go unrecorded (say, on a plain moto, which denies the TLS-only bucket over HTTP).
    let others = report.impact.as_ref().is_some_and(crate::impact::Impact::needs_confirmation);
    match crate::snapshot::record(lab, &groups, dry_run).await {
        Ok(step) => report.record([step]),
        Err(err) if !others => {
            tracing::warn!("{err}; `down` will not restore the default group");
            let name = format!("s3://{}/{}", lab.names.bucket, crate::snapshot::KEY);
            let detail = format!("not recorded, so `down` will not restore the default group: {err}");
            report.record([Step::new("group-record", name, Action::Failed).detail(detail)]);
        }
        Err(err) => return (report, Some(err)),
    }
    match rule::ensure(lab, dry_run).await {
        Ok(step) => report.record([step]),
        Err(err) => return (report, Some(err)),
    }
    if lab.fast_path {
        for step in [fast_path::ensure_trail(lab, dry_run).await, fast_path::ensure_rule(lab, dry_run).await] {
            match step {
                Ok(step) => report.record([step]),
                Err(err) => return (report, Some(err)),
            }
        }
        match fast_path::ensure_permission(lab, dry_run).await {
            Ok(step) => report.record([step]),
            Err(err) => return (report, Some(err)),
        }
    }
    (report, None)
}

/// How `down` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownOptions {
    pub dry_run: bool,
    /// Keep the account-wide resources (the function role) because the lab in another region of
    /// the account still uses them. The bucket is not one: each region has its own
    /// ([`bucket::in_region`]).
    pub keep_account_wide: bool,
    /// Leave the security groups as the lab left them (no restore from the record).
    pub keep_groups: bool,
}

/// Runs `down`: every step is attempted; failures are reported as failed steps.
pub async fn down(lab: &Lab, dry_run: bool) -> Report {
    down_with(lab, &DownOptions { dry_run, ..DownOptions::default() }).await
}

/// [`down`] with options.
pub async fn down_with(lab: &Lab, options: &DownOptions) -> Report {
    let dry_run = options.dry_run;
    let kept = |kind: &'static str, name: &str| {
        Step::new(kind, name, Action::Kept).detail("account-wide; still used by the lab in another region")
    };
    let mut report = Report {
        command: "down",
        account: lab.account.clone(),
        region: lab.region.clone(),
        dry_run,
        steps: Vec::new(),
        desired: None,
        impact: None,
    };
    let failed =
        |kind: &'static str, name: &str, err: Error| Step::new(kind, name, Action::Failed).detail(err.to_string());
    // This region's bucket: the channel and trail are the lab's when they deliver to it.
    let (lab, unresolved) = match bucket::in_region(lab).await {
        Ok(lab) => (lab, None),
        Err(err) => (lab.clone(), Some(err)),
    };
    let lab = &lab;
    let names = &lab.names;
    let one = |step: Result<Step>, kind, name: &str| vec![step.unwrap_or_else(|err| failed(kind, name, err))];
    let many = |steps: Result<Vec<Step>>, kind, name: &str| steps.unwrap_or_else(|err| vec![failed(kind, name, err)]);
    let rule_step = one(rule::delete(lab, dry_run).await, "rule", &names.rule);
    let deployed = rule_step.iter().any(|s| s.action == Action::Delete);
    report.record(rule_step);
    report.record(many(fast_path::delete(lab, dry_run).await, "fast-path", crate::lab::FAST_PATH_RULE));
    report.record(many(function::delete(lab, dry_run).await, "function", &names.function));
    // Nothing remediates any more: the groups go back as recorded, before the bucket goes.
    let mut keep_bucket = false;
    if options.keep_groups {
        let name = format!("s3://{}/{}", names.bucket, crate::snapshot::KEY);
        report.record([
            Step::new("group-record", name, Action::Kept).detail("--keep-groups: groups left as the lab left them")
        ]);
    } else if unresolved.is_none() {
        match crate::impact::parameters() {
            Ok((_, baseline)) => {
                let restored = crate::snapshot::restore(lab, &baseline, deployed, dry_run).await;
                keep_bucket = restored.keep_bucket;
                report.record(restored.steps);
            }
            Err(err) => report.record([failed("group-record", crate::snapshot::KEY, err)]),
        }
    }
    if options.keep_account_wide {
        report.record([kept("function-role", &names.function_role)]);
    } else {
        let function_role = role::delete(lab, "function-role", &names.function_role, dry_run).await;
        report.record(one(function_role, "function-role", &names.function_role));
    }
    report.record(many(recorder::delete(lab, dry_run).await, "recorder", &names.recorder));
    let config_role = role::delete(lab, "config-role", &names.config_role, dry_run).await;
    report.record(one(config_role, "config-role", &names.config_role));
    // The bucket of `lab prepare`, when there is one (it is per region).
    match crate::prepare::delete(lab, dry_run).await {
        Ok(step) => report.record(step),
        Err(err) => report.record([failed(crate::prepare::KIND, &crate::prepare::bucket_name(lab), err)]),
    }
    match unresolved {
        None if keep_bucket => report.record([Step::new("bucket", &names.bucket, Action::Kept)
            .detail("holds the record of groups not restored; run `deploy down` again")]),
        None => report.record(one(bucket::delete(lab, dry_run).await, "bucket", &names.bucket)),
        Some(err) => report.record([failed("bucket", &names.bucket, err)]),
    }
    report
}
