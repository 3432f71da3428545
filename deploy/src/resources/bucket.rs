//! The delivery bucket: created with the console's default name, tagged as the lab's, public
//! access blocked, encrypted (SSE-S3), and carrying the Config delivery policy with TLS-only
//! access (`policy/config-bucket-policy.json`). `delete` empties every version first, and again
//! when a late delivery lands before DeleteBucket; `create` waits while S3 still holds the name
//! of a bucket deleted moments ago.
//!
//! # One bucket per region
//!
//! A bucket lives in one region: S3 answers a request signed for another region with 301
//! `PermanentRedirect` and the header `x-amz-bucket-region`, and the Rust SDK does not follow
//! it. So the lab of each region has a bucket of its own, in its region ([`in_region`]): the
//! console's default `config-bucket-<account-id>` where that name is free or already in this
//! region, else `config-bucket-<account-id>-<region>` (the default name is in another region,
//! or this region already uses the regional name). Chosen over one shared bucket reached by an
//! S3 client in the bucket's region because a shared bucket is shared mutable state: `down` in
//! one region would delete the bucket another region's delivery channel and trail still write
//! to (or have to keep a register of users), and every region's `up` would rewrite the one
//! bucket policy, so the trail of the region that ran `up` before the last would lose its
//! CloudTrail grant unless every `up` merged every region's trail into it. With a bucket per
//! region, `down` of a region deletes only its own bucket, each bucket's policy grants exactly
//! its region's trail, and `up` twice finds the same bucket. The cost: a second region's
//! bucket does not have the console's name, and an account with the lab in N regions has N
//! buckets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};
use tracing::info;

use crate::error::{code_of, Error, Result};
use crate::lab::{parse_policy, Lab, Names, OWNER_TAG, OWNER_VALUE};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};

const KIND: &str = "bucket";

/// S3 holds a deleted bucket's name for a while (CreateBucket answers 409 `OperationAborted`,
/// "A conflicting conditional operation is currently in progress against this resource"): AWS
/// Knowledge Center, "s3-conflicting-conditional-operation". Usually seconds to minutes after a
/// `down`, but AWS says it can take hours; `up` waits about four minutes, then says so.
pub const NAME_HOLD: Backoff =
    Backoff { attempts: 20, first: Duration::from_millis(500), max: Duration::from_secs(15) };

/// Config and CloudTrail deliver asynchronously: a delivery in flight when the channel or trail
/// was deleted can land after the bucket was emptied, and DeleteBucket answers 409
/// `BucketNotEmpty`. Emptied again and retried, about half a minute at most.
pub const LATE_DELIVERY: Backoff =
    Backoff { attempts: 6, first: Duration::from_millis(500), max: Duration::from_secs(8) };

/// The console's default bucket name.
pub fn default_name(account: &str) -> String {
    format!("config-bucket-{account}")
}

/// The bucket name of the lab of `region` when the default name is in another region.
pub fn regional_name(account: &str, region: &str) -> String {
    format!("config-bucket-{account}-{region}")
}

/// Where a bucket name stands, seen from the lab's region.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Here,
    Elsewhere(String),
    Absent,
    /// Someone else's (403), wherever it is.
    Forbidden,
}

/// The region S3 names for the bucket of a failed call (`x-amz-bucket-region`).
fn bucket_region<E>(err: &SdkError<E>) -> Option<String> {
    err.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_owned)
}

/// An S3 error as a sentence: a redirect names the bucket's region, which the SDK's own error
/// leaves out (it does not follow the redirect either).
fn s3_error<E>(lab: &Lab, what: String, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (status, bucket_region(&err)) {
        (Some(301), Some(home)) => Error::Aws {
            what: format!("{what} in {}", lab.region),
            code: Some("PermanentRedirect".into()),
            message: format!("S3 answered 301 PermanentRedirect: the bucket is in {home}"),
        },
        _ => Error::aws(what, err),
    }
}

async fn locate(lab: &Lab, name: &str) -> Result<Location> {
    match lab.clients.s3.head_bucket().bucket(name).send().await {
        Ok(out) => match out.bucket_region().filter(|r| *r != lab.region) {
            Some(home) => Ok(Location::Elsewhere(home.to_owned())),
            None => Ok(Location::Here),
        },
        Err(err) => {
            if let Some(home) = bucket_region(&err).filter(|r| *r != lab.region) {
                return Ok(Location::Elsewhere(home));
            }
            match err.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => Ok(Location::Absent),
                Some(403) => Ok(Location::Forbidden),
                _ => Err(s3_error(lab, format!("reading bucket {name}"), err)),
            }
        }
    }
}

/// The name of this region's bucket (see the module's documentation); a name given with
/// `--bucket-name` is used as it is.
pub async fn resolve(lab: &Lab) -> Result<String> {
    let default = default_name(&lab.account);
    if lab.names.bucket != default {
        return Ok(lab.names.bucket.clone());
    }
    let regional = regional_name(&lab.account, &lab.region);
    if locate(lab, &regional).await? == Location::Here {
        return Ok(regional);
    }
    match locate(lab, &default).await? {
        Location::Elsewhere(home) => {
            info!("bucket {default} is in {home}: the lab in {} uses bucket {regional}", lab.region);
            Ok(regional)
        }
        Location::Here | Location::Absent | Location::Forbidden => Ok(default),
    }
}

/// The lab with this region's bucket name.
pub async fn in_region(lab: &Lab) -> Result<Lab> {
    let bucket = resolve(lab).await?;
    Ok(Lab { names: Names { bucket, ..lab.names.clone() }, ..lab.clone() })
}

/// Whose the bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Absent,
    Ours,
    Foreign(String),
}

pub async fn ownership(lab: &Lab) -> Result<Ownership> {
    let name = &lab.names.bucket;
    match locate(lab, name).await? {
        Location::Here => {}
        Location::Absent => return Ok(Ownership::Absent),
        Location::Forbidden => return Ok(Ownership::Foreign("belongs to another account".into())),
        Location::Elsewhere(home) => {
            return Ok(Ownership::Foreign(format!(
                "is in {home}, not {} (S3 answered 301 PermanentRedirect)",
                lab.region
            )))
        }
    }
    match lab.clients.s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) if out.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE) => {
            Ok(Ownership::Ours)
        }
        Ok(_) => Ok(Ownership::Foreign(format!("is not tagged {OWNER_TAG}={OWNER_VALUE}"))),
        Err(err) if code_of(&err) == Some("NoSuchTagSet") => Ok(Ownership::Foreign("has no tags".into())),
        Err(err) => Err(s3_error(lab, format!("reading the tags of bucket {name}"), err)),
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
    let configuration = configuration.build();
    let created = retry(
        &format!("S3 to release the name of bucket {name}, still held after a deletion (409 OperationAborted)"),
        NAME_HOLD,
        |e: &Error| e.code() == Some("OperationAborted"),
        || async {
            s3.create_bucket()
                .bucket(name)
                .create_bucket_configuration(configuration.clone())
                .send()
                .await
                .map_err(|e| s3_error(lab, format!("creating bucket {name}"), e))
        },
    )
    .await;
    match created {
        Ok(_) => {}
        Err(err) if err.code() == Some("OperationAborted") => {
            return Err(Error::Failed(format!(
                "creating bucket {name}: S3 still holds the name after the bucket's deletion (409 OperationAborted), after waiting {} s; on AWS this can last hours: run `deploy up` again later, or pick another name with --bucket-name",
                NAME_HOLD.bound().as_secs()
            )))
        }
        Err(err) => return Err(err),
    }
    // Again for endpoints that ignore tags on creation (moto).
    let tagging = Tagging::builder().tag_set(tag).build().map_err(|e| Error::Failed(e.to_string()))?;
    if let Err(err) = s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await {
        // Possibly untagged, `down` could not tell it is ours: take it back now.
        let _ = s3.delete_bucket().bucket(name).send().await;
        return Err(s3_error(lab, format!("tagging bucket {name} (the bucket was deleted again)"), err));
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
        Err(err) => return Err(s3_error(lab, format!("reading the public access block of bucket {name}"), err)),
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
                .map_err(|e| s3_error(lab, format!("blocking public access to bucket {name}"), e))?;
        }
    }

    let encrypted = match s3.get_bucket_encryption().bucket(name).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .is_some_and(|c| c.rules().iter().any(|r| r.apply_server_side_encryption_by_default().is_some())),
        Err(err) if code_of(&err) == Some("ServerSideEncryptionConfigurationNotFoundError") => false,
        Err(err) => return Err(s3_error(lab, format!("reading the encryption of bucket {name}"), err)),
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
                .map_err(|e| s3_error(lab, format!("encrypting bucket {name}"), e))?;
        }
    }

    let desired = lab.bucket_policy();
    let current = match s3.get_bucket_policy().bucket(name).send().await {
        Ok(out) => out.policy().and_then(parse_policy),
        Err(err) if code_of(&err) == Some("NoSuchBucketPolicy") => None,
        Err(err) => return Err(s3_error(lab, format!("reading the policy of bucket {name}"), err)),
    };
    if current.as_ref() != Some(&desired) {
        changed.push("bucket policy");
        if !dry_run {
            s3.put_bucket_policy()
                .bucket(name)
                .policy(desired.to_string())
                .send()
                .await
                .map_err(|e| s3_error(lab, format!("setting the policy of bucket {name}"), e))?;
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
            let removed = &AtomicUsize::new(0);
            retry(
                &format!("bucket {name} to stay empty: a late delivery (Config or CloudTrail) wrote to it after it was emptied (409 BucketNotEmpty)"),
                LATE_DELIVERY,
                |e: &Error| e.code() == Some("BucketNotEmpty"),
                || async move {
                    removed.fetch_add(empty(lab).await?, Ordering::SeqCst);
                    lab.clients
                        .s3
                        .delete_bucket()
                        .bucket(name)
                        .send()
                        .await
                        .map_err(|e| s3_error(lab, format!("deleting bucket {name}"), e))
                },
            )
            .await?;
            Ok(Step::new(KIND, name, Action::Delete)
                .detail(format!("{} object versions removed", removed.load(Ordering::SeqCst))))
        }
    }
}

/// Deletes every object version and delete marker of the lab's bucket; returns how many.
async fn empty(lab: &Lab) -> Result<usize> {
    empty_named(lab, &lab.names.bucket).await
}

/// Deletes every object version and delete marker of bucket `name` (in the lab's region);
/// returns how many.
pub(crate) async fn empty_named(lab: &Lab, name: &str) -> Result<usize> {
    let s3 = &lab.clients.s3;
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
            .map_err(|e| s3_error(lab, format!("listing the objects of bucket {name}"), e))?;
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
            .map_err(|e| s3_error(lab, format!("emptying bucket {name}"), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_consoles_and_the_regional_one_fits_s3s_limit() {
        assert_eq!(default_name("123456789012"), "config-bucket-123456789012");
        assert_eq!(regional_name("123456789012", "eu-west-1"), "config-bucket-123456789012-eu-west-1");
        // S3 names are at most 63 characters; the longest region names are 14.
        assert!(regional_name("123456789012", "ap-southeast-4").len() <= 63);
    }

    #[test]
    fn the_waits_are_bounded_in_minutes_and_seconds() {
        let hold = NAME_HOLD.bound();
        assert!(hold > Duration::from_secs(120) && hold < Duration::from_secs(300), "{hold:?}");
        let late = LATE_DELIVERY.bound();
        assert!(late > Duration::from_secs(5) && late < Duration::from_secs(60), "{late:?}");
    }
}
