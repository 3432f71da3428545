//! The delivery bucket: created with the console's default name, tagged as the lab's, public
//! access blocked, encrypted (SSE-S3), and carrying the Config delivery policy with TLS-only
//! access (`policy/config-bucket-policy.json`). `delete` empties every version first.

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};
use tracing::info;

use crate::error::{code_of, Error, Result};
use crate::lab::{parse_policy, Lab, OWNER_TAG, OWNER_VALUE};
use crate::report::{Action, Step};

const KIND: &str = "bucket";

/// Whose the bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    Foreign(String),
}

pub async fn ownership(lab: &Lab) -> Result<Ownership> {
    let name = &lab.names.bucket;
    match lab.clients.s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            return match status {
                Some(404) => Ok(Ownership::Absent),
                Some(403) => Ok(Ownership::Foreign("belongs to another account".into())),
                _ => Err(Error::aws(format!("reading bucket {name}"), err)),
            };
        }
    }
    match lab.clients.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) if out.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE) => {
            Ok(Ownership::Ours)
        }
        Ok(_) => Ok(Ownership::Foreign(format!("is not tagged {OWNER_TAG}={OWNER_VALUE}"))),
        Err(err) if code_of(&err) == Some("NoSuchTagSet") => Ok(Ownership::Foreign("has no tags".into())),
        Err(err) => Err(Error::aws(format!("reading the tags of bucket {name}"), err)),
    }
}

pub fn conflict(lab: &Lab, why: &str) -> Error {
    Error::Conflict(format!(
        "bucket {} exists and {why}: it is not this lab's; pick another name with --bucket-name",
        lab.names.bucket
    ))
}

pub async fn ensure(lab: &Lab, dry_run: bool) -> Result<Step> {
    let name = &lab.names.bucket;
    match ownership(lab).await? {
        Ownership::Foreign(why) => Err(conflict(lab, &why)),
        Ownership::Absent if dry_run => Ok(Step::new(KIND, name, Action::Create)),
        Ownership::Absent => {
            create(lab).await?;
            configure(lab, false).await?;
            Ok(Step::new(KIND, name, Action::Create))
        }
        Ownership::Ours => {
            let changed = configure(lab, dry_run).await?;
            let action = if changed.is_empty() { Action::Unchanged } else { Action::Update };
            Ok(Step::new(KIND, name, action).detail(changed.join(", ")))
        }
    }
}

async fn create(lab: &Lab) -> Result<()> {
    let s3 = &lab.clients.s3;
    let name = &lab.names.bucket;
    info!("creating bucket {name}");
    let tag = Tag::builder().key(OWNER_TAG).value(OWNER_VALUE).build().map_err(|e| Error::Failed(e.to_string()))?;
    // Tagged in the same call, so no moment exists when the bucket is there and not marked as
    // the lab's (an `up` killed right after CreateBucket would otherwise leave a bucket that
    // neither `up` nor `down` may touch).
    let mut configuration = CreateBucketConfiguration::builder().tags(tag.clone());
    if lab.region != "us-east-1" {
        configuration = configuration.location_constraint(BucketLocationConstraint::from(lab.region.as_str()));
    }
    s3.create_bucket()
        .bucket(name)
        .create_bucket_configuration(configuration.build())
        .send()
        .await
        .map_err(|e| Error::aws(format!("creating bucket {name}"), e))?;
    // Again for endpoints that ignore tags on creation (moto).
    let tagging = Tagging::builder().tag_set(tag).build().map_err(|e| Error::Failed(e.to_string()))?;
    if let Err(err) = s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await {
        // Possibly untagged, `down` could not tell it is ours: take it back now.
        let _ = s3.delete_bucket().bucket(name).send().await;
        return Err(Error::aws(format!("tagging bucket {name} (the bucket was deleted again)"), err));
    }
    Ok(())
}

/// Brings the bucket's settings to the desired state; returns what it changed (or would).
async fn configure(lab: &Lab, dry_run: bool) -> Result<Vec<&'static str>> {
    let s3 = &lab.clients.s3;
    let name = &lab.names.bucket;
    let mut changed = Vec::new();

    let blocked = match s3.get_public_access_block().bucket(name).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(err) if code_of(&err) == Some("NoSuchPublicAccessBlockConfiguration") => false,
        Err(err) => return Err(Error::aws(format!("reading the public access block of bucket {name}"), err)),
    };
    if !blocked {
        changed.push("public access block");
        if !dry_run {
            let config = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            s3.put_public_access_block()
                .bucket(name)
                .public_access_block_configuration(config)
                .send()
                .await
                .map_err(|e| Error::aws(format!("blocking public access to bucket {name}"), e))?;
        }
    }

    let encrypted = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .is_some_and(|c| c.rules().iter().any(|r| r.apply_server_side_encryption_by_default().is_some())),
        Err(err) if code_of(&err) == Some("ServerSideEncryptionConfigurationNotFoundError") => false,
        Err(err) => return Err(Error::aws(format!("reading the encryption of bucket {name}"), err)),
    };
    if !encrypted {
        changed.push("encryption");
        if !dry_run {
            let by_default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| Error::Failed(e.to_string()))?;
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build())
                .build()
                .map_err(|e| Error::Failed(e.to_string()))?;
            s3.put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .map_err(|e| Error::aws(format!("encrypting bucket {name}"), e))?;
        }
    }

    let desired = lab.bucket_policy();
    let current = match s3.get_bucket_policy().bucket(name).send().await {
        Ok(out) => out.policy().and_then(parse_policy),
        Err(err) if code_of(&err) == Some("NoSuchBucketPolicy") => None,
        Err(err) => return Err(Error::aws(format!("reading the policy of bucket {name}"), err)),
    };
    if current.as_ref() != Some(&desired) {
        changed.push("bucket policy");
        if !dry_run {
            s3.put_bucket_policy()
                .bucket(name)
                .policy(desired.to_string())
                .send()
                .await
                .map_err(|e| Error::aws(format!("setting the policy of bucket {name}"), e))?;
        }
    }
    Ok(changed)
}

pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Step> {
    let name = &lab.names.bucket;
    match ownership(lab).await? {
        Ownership::Absent => Ok(Step::new(KIND, name, Action::Absent)),
        Ownership::Foreign(why) => Ok(Step::new(KIND, name, Action::Kept).detail(format!("not the lab's: {why}"))),
        Ownership::Ours if dry_run => Ok(Step::new(KIND, name, Action::Delete)),
        Ownership::Ours => {
            let removed = empty(lab).await?;
            lab.clients
                .s3
                .delete_bucket()
                .bucket(name)
                .send()
                .await
                .map_err(|e| Error::aws(format!("deleting bucket {name}"), e))?;
            Ok(Step::new(KIND, name, Action::Delete).detail(format!("{removed} object versions removed")))
        }
    }
}

/// Deletes every object version and delete marker; returns how many.
async fn empty(lab: &Lab) -> Result<usize> {
    let s3 = &lab.clients.s3;
    let name = &lab.names.bucket;
    let mut removed = 0;
    // Each pass deletes up to 1,000 versions; bounded so a bucket written to faster than we
    // delete cannot keep `down` running forever.
    for _ in 0..10_000 {
        let out = s3
            .list_object_versions()
            .bucket(name)
            .max_keys(1000)
            .send()
            .await
            .map_err(|e| Error::aws(format!("listing the objects of bucket {name}"), e))?;
        let mut objects = Vec::new();
        for (key, version) in out
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(out.delete_markers().iter().map(|m| (m.key(), m.version_id())))
        {
            let Some(key) = key else { continue };
            let id = ObjectIdentifier::builder()
                .key(key)
                .set_version_id(version.filter(|v| *v != "null").map(str::to_owned))
                .build()
                .map_err(|e| Error::Failed(e.to_string()))?;
            objects.push(id);
        }
        if objects.is_empty() {
            return Ok(removed);
        }
        removed += objects.len();
        info!("emptying bucket {name}: deleting {} object versions", objects.len());
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::Failed(e.to_string()))?;
        let result = s3
            .delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| Error::aws(format!("emptying bucket {name}"), e))?;
        if let Some(failure) = result.errors().first() {
            return Err(Error::Failed(format!(
                "emptying bucket {name}: {} could not be deleted: {}",
                failure.key().unwrap_or("?"),
                failure.message().unwrap_or("no reason given")
            )));
        }
    }
    Err(Error::Failed(format!("bucket {name} is still not empty after 10,000 passes")))
}
