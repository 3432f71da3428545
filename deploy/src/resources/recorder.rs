//! The configuration recorder (security groups only), its delivery channel (the lab bucket, no
//! SNS) and its recording state. Only one of each may exist per account and region, so
//! ownership matters most here: a recorder is the lab's when it uses the lab's Config role and
//! that role carries the lab's tag; the channel is the lab's when it delivers to the lab's
//! bucket and the recorder is the lab's.

use aws_sdk_config::types::{ConfigurationRecorder, DeliveryChannel, RecordingGroup, ResourceType};
use tracing::info;

use crate::error::{code_of, Error, Result};
use crate::lab::{Lab, SECURITY_GROUP};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};
use crate::role;

/// How `up` treats the account's recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// None exists, or the lab's: create or update it.
    Manage,
    /// Someone else's, used as it is (`--use-existing-recorder`); never changed or deleted.
    UseExisting { recorder: String },
}

/// The recorder and channel that exist now.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub recorder: Option<ConfigurationRecorder>,
    pub channel: Option<DeliveryChannel>,
    /// The recorder uses the lab's (tagged) Config role.
    pub recorder_ours: bool,
    pub channel_ours: bool,
}

pub async fn existing(lab: &Lab) -> Result<Existing> {
    let config = &lab.clients.config;
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| Error::aws("reading the configuration recorders", e))?;
    let channels =
        config.describe_delivery_channels().send().await.map_err(|e| Error::aws("reading the delivery channels", e))?;
    let recorder = recorders.configuration_recorders().first().cloned();
    let channel = channels.delivery_channels().first().cloned();
    let our_role = lab.role_arn(&lab.names.config_role);
    let recorder_ours = match &recorder {
        Some(r) if r.role_arn() == Some(our_role.as_str()) => {
            role::ownership(lab, &lab.names.config_role).await? == role::Ownership::Ours
        }
        _ => false,
    };
    let channel_ours =
        recorder_ours && channel.as_ref().is_some_and(|c| c.s3_bucket_name() == Some(lab.names.bucket.as_str()));
    Ok(Existing { recorder, channel, recorder_ours, channel_ours })
}

/// Decides, before any change, whether `up` may manage the recorder.
pub async fn preflight(lab: &Lab, use_existing: bool) -> Result<Mode> {
    let found = existing(lab).await?;
    if let Some(recorder) = &found.recorder {
        let name = recorder.name().unwrap_or("?");
        if !found.recorder_ours {
            if !use_existing {
                return Err(Error::Conflict(format!(
                    "a configuration recorder `{name}` (role {}) already exists in account {}, region {}, and it is not this lab's; only one may exist per region. Run `up --use-existing-recorder` to use it as it is (it must record {SECURITY_GROUP}), or delete it first",
                    recorder.role_arn().unwrap_or("none"),
                    lab.account,
                    lab.region
                )));
            }
            if !records_security_groups(recorder) {
                return Err(Error::Conflict(format!(
                    "the existing configuration recorder `{name}` does not record {SECURITY_GROUP}; add that resource type to it, or delete it and let `up` create the lab's"
                )));
            }
            return Ok(Mode::UseExisting { recorder: name.to_owned() });
        }
    }
    if let Some(channel) = &found.channel {
        if !found.channel_ours && !use_existing {
            return Err(Error::Conflict(format!(
                "a delivery channel `{}` (bucket {}) already exists in account {}, region {}, and it is not this lab's; only one may exist per region. Delete it first, or run `up --use-existing-recorder`",
                channel.name().unwrap_or("?"),
                channel.s3_bucket_name().unwrap_or("none"),
                lab.account,
                lab.region
            )));
        }
        if !found.channel_ours {
            return Ok(Mode::UseExisting {
                recorder: found.recorder.as_ref().and_then(|r| r.name()).unwrap_or("none").to_owned(),
            });
        }
    }
    Ok(Mode::Manage)
}

fn records_security_groups(recorder: &ConfigurationRecorder) -> bool {
    recorder
        .recording_group()
        .is_some_and(|g| g.all_supported() || g.resource_types().iter().any(|t| t.as_str() == SECURITY_GROUP))
}

fn desired_group() -> RecordingGroup {
    RecordingGroup::builder()
        .all_supported(false)
        .include_global_resource_types(false)
        .resource_types(ResourceType::from(SECURITY_GROUP))
        .build()
}

pub async fn ensure_recorder(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "recorder";
    let name = &lab.names.recorder;
    let found = existing(lab).await?;
    let role_arn = lab.role_arn(&lab.names.config_role);
    let action = match &found.recorder {
        None => Action::Create,
        Some(r) => {
            let group = r.recording_group();
            let same = r.name() == Some(name.as_str())
                && r.role_arn() == Some(role_arn.as_str())
                && group.is_some_and(|g| {
                    !g.all_supported()
                        && !g.include_global_resource_types()
                        && g.resource_types().iter().map(|t| t.as_str()).collect::<Vec<_>>() == [SECURITY_GROUP]
                });
            if same {
                return Ok(Step::new(KIND, name, Action::Unchanged));
            }
            Action::Update
        }
    };
    if !dry_run {
        info!("putting configuration recorder {name}");
        let recorder =
            ConfigurationRecorder::builder().name(name).role_arn(&role_arn).recording_group(desired_group()).build();
        retry(
            &format!("role {} to propagate to Config", lab.names.config_role),
            Backoff::IAM,
            |e: &Error| {
                e.code() == Some("InsufficientDeliveryPolicyException") || e.code() == Some("InvalidRoleException")
            },
            || async {
                lab.clients
                    .config
                    .put_configuration_recorder()
                    .configuration_recorder(recorder.clone())
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("putting configuration recorder {name}"), e))
            },
        )
        .await?;
    }
    Ok(Step::new(KIND, name, action).detail(format!("records {SECURITY_GROUP} only")))
}

pub async fn ensure_channel(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "delivery-channel";
    let name = &lab.names.channel;
    let found = existing(lab).await?;
    let action = match &found.channel {
        None => Action::Create,
        Some(c)
            if c.name() == Some(name.as_str())
                && c.s3_bucket_name() == Some(lab.names.bucket.as_str())
                && c.s3_key_prefix().unwrap_or_default().is_empty()
                && c.sns_topic_arn().unwrap_or_default().is_empty() =>
        {
            return Ok(Step::new(KIND, name, Action::Unchanged));
        }
        Some(_) => Action::Update,
    };
    if !dry_run {
        info!("putting delivery channel {name}");
        let channel = DeliveryChannel::builder().name(name).s3_bucket_name(&lab.names.bucket).build();
        retry(
            &format!("bucket {} to accept Config's delivery", lab.names.bucket),
            Backoff::IAM,
            |e: &Error| e.code() == Some("InsufficientDeliveryPolicyException"),
            || async {
                lab.clients
                    .config
                    .put_delivery_channel()
                    .delivery_channel(channel.clone())
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("putting delivery channel {name}"), e))
            },
        )
        .await?;
    }
    Ok(Step::new(KIND, name, action).detail(format!("to bucket {}, no SNS", lab.names.bucket)))
}

/// Whether the recorder `name` is recording.
pub async fn recording(lab: &Lab, name: &str) -> Result<bool> {
    let status = lab
        .clients
        .config
        .describe_configuration_recorder_status()
        .send()
        .await
        .map_err(|e| Error::aws("reading the recorder status", e))?;
    Ok(status.configuration_recorders_status().iter().any(|s| s.name() == Some(name) && s.recording()))
}

pub async fn ensure_started(lab: &Lab, dry_run: bool) -> Result<Step> {
    const KIND: &str = "recording";
    let name = &lab.names.recorder;
    if !dry_run && recording(lab, name).await? {
        return Ok(Step::new(KIND, name, Action::Unchanged));
    }
    // In a dry run the recorder may not exist yet.
    if dry_run {
        let found = existing(lab).await?;
        if found.recorder.is_some() && recording(lab, name).await? {
            return Ok(Step::new(KIND, name, Action::Unchanged));
        }
        return Ok(Step::new(KIND, name, Action::Update).detail("start"));
    }
    info!("starting configuration recorder {name}");
    lab.clients
        .config
        .start_configuration_recorder()
        .configuration_recorder_name(name)
        .send()
        .await
        .map_err(|e| Error::aws(format!("starting configuration recorder {name}"), e))?;
    Ok(Step::new(KIND, name, Action::Update).detail("started"))
}

/// Stops and deletes the lab's recorder and channel; leaves anyone else's alone.
pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Vec<Step>> {
    let found = existing(lab).await?;
    let config = &lab.clients.config;
    let mut steps = Vec::new();
    match &found.channel {
        None => steps.push(Step::new("delivery-channel", &lab.names.channel, Action::Absent)),
        Some(c) if !found.channel_ours => {
            steps.push(Step::new("delivery-channel", c.name().unwrap_or("?"), Action::Kept).detail("not the lab's"))
        }
        Some(c) => {
            let name = c.name().unwrap_or_default();
            if !dry_run {
                let recorder = found.recorder.as_ref().and_then(|r| r.name()).unwrap_or_default();
                // A channel cannot be deleted while its recorder records.
                match config.stop_configuration_recorder().configuration_recorder_name(recorder).send().await {
                    Ok(_) => {}
                    Err(err) if code_of(&err) == Some("NoSuchConfigurationRecorderException") => {}
                    Err(err) => return Err(Error::aws(format!("stopping configuration recorder {recorder}"), err)),
                }
                config
                    .delete_delivery_channel()
                    .delivery_channel_name(name)
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("deleting delivery channel {name}"), e))?;
            }
            steps.push(Step::new("delivery-channel", name, Action::Delete));
        }
    }
    match &found.recorder {
        None => steps.push(Step::new("recorder", &lab.names.recorder, Action::Absent)),
        Some(r) if !found.recorder_ours => {
            steps.push(Step::new("recorder", r.name().unwrap_or("?"), Action::Kept).detail("not the lab's"))
        }
        Some(r) => {
            let name = r.name().unwrap_or_default();
            if !dry_run {
                let _ = config.stop_configuration_recorder().configuration_recorder_name(name).send().await;
                config
                    .delete_configuration_recorder()
                    .configuration_recorder_name(name)
                    .send()
                    .await
                    .map_err(|e| Error::aws(format!("deleting configuration recorder {name}"), e))?;
            }
            steps.push(Step::new("recorder", name, Action::Delete));
        }
    }
    Ok(steps)
}
