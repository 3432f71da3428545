//! `lab prepare`: the lab gave students an S3 link to the function's zip. This puts the zip in
//! the student's account where the Lambda console can use it, and prints what the student
//! enters in the console (step 3).
//!
//! Where: a bucket of its own, `sg-lab-artifacts-<account>-<region>`, in the lab's region —
//! Lambda reads a function's code only from a bucket in the function's region (Lambda API
//! reference, FunctionCode `S3Bucket`: "in the same Amazon Web Services Region as your
//! function"). Not the delivery bucket `config-bucket-<account>`: the student creates that one
//! in the Config console in step 1, which would find the name taken. The bucket is tagged as the
//! lab's, blocks public access and is encrypted; `down` and `lab reset` empty and delete it.

use std::fmt;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration, ServerSideEncryption, Tag,
    Tagging,
};
use serde::Serialize;
use tracing::info;

use crate::artifact::Artifact;
use crate::error::{code_of, Error, Result};
use crate::function::{HANDLER, MEMORY_MB, RUNTIME, TIMEOUT_S};
use crate::lab::{Lab, FUNCTION_DESCRIPTION, OWNER_TAG, OWNER_VALUE};
use crate::report::{Action, Step};
use crate::retry::{retry, Backoff};

pub const KIND: &str = "artifact-bucket";

/// The bucket `lab prepare` puts the zip in.
pub fn bucket_name(lab: &Lab) -> String {
    format!("sg-lab-artifacts-{}-{}", lab.account, lab.region)
}

/// The zip's key.
pub fn key(lab: &Lab) -> String {
    format!("{}/bootstrap.zip", lab.names.function)
}

/// What the student enters in the console.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prepared {
    pub account: String,
    pub region: String,
    pub bucket: String,
    pub key: String,
    /// Why this bucket.
    pub bucket_reason: String,
    pub s3_uri: String,
    /// What the console's "Amazon S3 link URL" field takes.
    pub s3_url: String,
    pub size: usize,
    pub sha256: String,
    pub function_name: String,
    pub description: String,
    pub runtime: String,
    pub architecture: String,
    pub handler: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub role_name: String,
    pub role_trust: serde_json::Value,
    pub role_policy: serde_json::Value,
}

impl fmt::Display for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab prepare in account {}, region {}", self.account, self.region)?;
        writeln!(f, "  uploaded {} ({} bytes, sha256 {})", self.s3_uri, self.size, self.sha256)?;
        writeln!(f, "  {}", self.bucket_reason)?;
        writeln!(f, "\nWhat the student enters in the Lambda console (step 3):")?;
        let rows = [
            ("Function name", self.function_name.clone()),
            ("Description", self.description.clone()),
            ("Runtime", format!("Amazon Linux 2023 ({})", self.runtime)),
            ("Architecture", self.architecture.clone()),
            ("Code source", format!("Upload from Amazon S3 location: {}", self.s3_url)),
            ("Handler", self.handler.clone()),
            ("Memory", format!("{} MB", self.memory_mb)),
            ("Timeout", format!("{} s (1 min 0 sec)", self.timeout_s)),
            ("Execution role", format!("{} (trusted by lambda.amazonaws.com)", self.role_name)),
        ];
        for (field, value) in rows {
            writeln!(f, "  {field:<15} {value}")?;
        }
        writeln!(f, "  Role policy (policy/lambda-lab-policy.json), inline:")?;
        let policy = serde_json::to_string_pretty(&self.role_policy).unwrap_or_default();
        for line in policy.lines() {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Whose the bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ownership {
    Absent,
    Ours,
    Foreign(String),
}

async fn ownership(lab: &Lab, name: &str) -> Result<Ownership> {
    let s3 = &lab.clients.s3;
    if let Err(err) = s3.head_bucket().bucket(name).send().await {
        return match err.raw_response().map(|r| r.status().as_u16()) {
            Some(404) => Ok(Ownership::Absent),
            Some(403) => Ok(Ownership::Foreign("belongs to another account".into())),
            Some(301) => Ok(Ownership::Foreign("is in another region".into())),
            _ => Err(Error::aws(format!("reading bucket {name}"), err)),
        };
    }
    match s3.get_bucket_tagging().bucket(name).send().await {
        Ok(out) if out.tag_set().iter().any(|t| t.key() == OWNER_TAG && t.value() == OWNER_VALUE) => {
            Ok(Ownership::Ours)
        }
        Ok(_) => Ok(Ownership::Foreign(format!("is not tagged {OWNER_TAG}={OWNER_VALUE}"))),
        Err(err) if code_of(&err) == Some("NoSuchTagSet") => Ok(Ownership::Foreign("has no tags".into())),
        Err(err) => Err(Error::aws(format!("reading the tags of bucket {name}"), err)),
    }
}

async fn create_bucket(lab: &Lab, name: &str) -> Result<()> {
    let s3 = &lab.clients.s3;
    info!("creating bucket {name}");
    let tag = Tag::builder().key(OWNER_TAG).value(OWNER_VALUE).build().map_err(|e| Error::Failed(e.to_string()))?;
    let mut configuration = CreateBucketConfiguration::builder().tags(tag.clone());
    if lab.region != "us-east-1" {
        configuration = configuration.location_constraint(BucketLocationConstraint::from(lab.region.as_str()));
    }
    let configuration = configuration.build();
    // A name deleted moments ago is held for a while (409 OperationAborted).
    retry(
        &format!("the name {name} to be released by S3"),
        Backoff::IAM,
        |e: &Error| e.code() == Some("OperationAborted"),
        || async {
            s3.create_bucket()
                .bucket(name)
                .create_bucket_configuration(configuration.clone())
                .send()
                .await
                .map_err(|e| Error::aws(format!("creating bucket {name}"), e))
        },
    )
    .await?;
    let tagging = Tagging::builder().tag_set(tag).build().map_err(|e| Error::Failed(e.to_string()))?;
    if let Err(err) = s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await {
        let _ = s3.delete_bucket().bucket(name).send().await;
        return Err(Error::aws(format!("tagging bucket {name} (the bucket was deleted again)"), err));
    }
    let block = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(block)
        .send()
        .await
        .map_err(|e| Error::aws(format!("blocking public access to bucket {name}"), e))?;
    Ok(())
}

/// Uploads the zip and says what to enter.
pub async fn prepare(lab: &Lab, zip: Option<&Path>) -> Result<Prepared> {
    let artifact = Artifact::locate(zip)?;
    let bucket = bucket_name(lab);
    match ownership(lab, &bucket).await? {
        Ownership::Foreign(why) => {
            return Err(Error::Conflict(format!(
                "bucket {bucket} exists and {why}: it is not this lab's; delete it, or upload the zip yourself"
            )))
        }
        Ownership::Absent => create_bucket(lab, &bucket).await?,
        Ownership::Ours => {}
    }
    let key = key(lab);
    info!("uploading {} to s3://{bucket}/{key}", artifact.path.display());
    lab.clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(artifact.bytes.clone()))
        .send()
        .await
        .map_err(|e| Error::aws(format!("uploading the function zip to bucket {bucket}"), e))?;
    let host = match lab.partition.as_str() {
        "aws-cn" => format!("{bucket}.s3.{}.amazonaws.com.cn", lab.region),
        _ => format!("{bucket}.s3.{}.amazonaws.com", lab.region),
    };
    Ok(Prepared {
        account: lab.account.clone(),
        region: lab.region.clone(),
        bucket_reason: format!(
            "bucket {bucket}: the lab's own, in region {} because Lambda reads code only from the function's region; not config-bucket-{}, which the student creates in step 1; `deploy down` and `deploy lab reset` delete it",
            lab.region, lab.account
        ),
        s3_uri: format!("s3://{bucket}/{key}"),
        s3_url: format!("https://{host}/{key}"),
        bucket,
        key,
        size: artifact.bytes.len(),
        sha256: artifact.sha256.clone(),
        function_name: lab.names.function.clone(),
        description: FUNCTION_DESCRIPTION.to_owned(),
        runtime: RUNTIME.to_owned(),
        architecture: artifact.architecture.as_str().to_owned(),
        handler: HANDLER.to_owned(),
        memory_mb: MEMORY_MB,
        timeout_s: TIMEOUT_S,
        role_name: lab.names.function_role.clone(),
        role_trust: lab.lambda_trust(),
        role_policy: lab.lambda_policy_of(crate::lab::FunctionPolicy::Lab),
    })
}

/// Deletes the artifact bucket when it is the lab's (name and tag); `None` when there is none.
pub async fn delete(lab: &Lab, dry_run: bool) -> Result<Option<Step>> {
    let bucket = bucket_name(lab);
    match ownership(lab, &bucket).await? {
        Ownership::Absent => Ok(None),
        Ownership::Foreign(why) => {
            Ok(Some(Step::new(KIND, &bucket, Action::Kept).detail(format!("not the lab's: {why}"))))
        }
        Ownership::Ours => {
            let why = format!("the lab's name and tag {OWNER_TAG}={OWNER_VALUE} (made by `lab prepare`)");
            if !dry_run {
                let removed = empty_and_delete(lab, &bucket).await?;
                return Ok(Some(
                    Step::new(KIND, &bucket, Action::Delete)
                        .detail(format!("{why}; {removed} object versions removed")),
                ));
            }
            Ok(Some(Step::new(KIND, &bucket, Action::Delete).detail(why)))
        }
    }
}

/// Empties a bucket (every version and delete marker) and deletes it; returns how many versions
/// it removed. A delivery that lands after the emptying (AWS delivers asynchronously) makes
/// DeleteBucket answer `BucketNotEmpty`: emptied again, a bounded number of times.
pub async fn empty_and_delete(lab: &Lab, name: &str) -> Result<usize> {
    let mut removed = 0;
    for attempt in 0..5 {
        removed += crate::bucket::empty_named(lab, name).await?;
        match lab.clients.s3.delete_bucket().bucket(name).send().await {
            Ok(_) => return Ok(removed),
            Err(err) if code_of(&err) == Some("BucketNotEmpty") && attempt < 4 => {
                info!("waiting for late deliveries to bucket {name} to land before emptying it again");
                tokio::time::sleep(std::time::Duration::from_millis(500 << attempt)).await;
            }
            Err(err) => return Err(Error::aws(format!("deleting bucket {name}"), err)),
        }
    }
    Err(Error::Failed(format!("bucket {name} kept receiving objects; delete it again")))
}
