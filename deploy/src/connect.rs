//! From the command line to a [`Lab`]: the AWS configuration (standard chain: environment,
//! profiles, SSO), checked region and credentials, and the account from STS — printed before
//! any change.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::cli::{Global, LOCAL_REGION};
use crate::error::{Error, Result};
use crate::lab::{Clients, FunctionPolicy, Lab, NameOverrides, Names};

pub async fn sdk_config(global: &Global) -> Result<SdkConfig> {
    // Retries and timeouts chosen in `retry` (why there).
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(crate::retry::sdk_retry_config())
        .timeout_config(crate::retry::sdk_timeout_config());
    if let Some(profile) = &global.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &global.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &global.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if global.local {
        if global.endpoint_url.is_none() {
            // Blocking for at most the bounded start-up wait, before any AWS call.
            let endpoint = tokio::task::block_in_place(|| crate::local::ensure_running(crate::local::LOCAL_PORT));
            match endpoint {
                Ok(endpoint) => loader = loader.endpoint_url(endpoint),
                Err(err) => return Err(err),
            }
        }
        let env_keys = std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
        if !env_keys && global.profile.is_none() {
            loader = loader.credentials_provider(Credentials::new("local", "local", None, None, "deploy --local"));
        }
    }
    let region_from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().any(|v| std::env::var_os(v).is_some());
    if global.local && global.region.is_none() && global.profile.is_none() && !region_from_env {
        // Nothing configured: the lab's region, without asking the instance metadata service.
        loader = loader.region(Region::new(LOCAL_REGION));
    }
    Ok(loader.load().await)
}

pub async fn connect(global: &Global) -> Result<Lab> {
    connect_with(global, sdk_config(global).await?).await
}

/// Like [`sdk_config`], with the credentials of `role` assumed in `account` from the configured
/// ones (`--accounts` with `--assume-role`).
pub async fn assumed_sdk_config(global: &Global, account: &str, role: &str) -> Result<SdkConfig> {
    let sdk = sdk_config(global).await?;
    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        Error::Usage("no AWS region: pass --region or --regions, set AWS_REGION, or set one in your profile".into())
    })?;
    let partition = match region.as_str() {
        r if r.starts_with("cn-") => "aws-cn",
        r if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(format!("arn:{partition}:iam::{account}:role/{role}"))
        .session_name("sg-monitoring-lab")
        .configure(&sdk)
        .build()
        .await;
    Ok(sdk.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build())
}

/// Checks the credentials of `sdk` and reads the account they act in.
pub async fn connect_with(global: &Global, sdk: SdkConfig) -> Result<Lab> {
    let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        Error::Usage("no AWS region: pass --region, set AWS_REGION, or set one in your profile".into())
    })?;
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| no_credentials(global.profile.as_deref(), "no credentials provider"))?;
    provider.provide_credentials().await.map_err(|e| {
        no_credentials(global.profile.as_deref(), &aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
    })?;
    let sts = aws_sdk_sts::Client::new(&sdk);
    let identity =
        sts.get_caller_identity().send().await.map_err(|e| Error::aws("reading the caller identity (STS)", e))?;
    let account = identity.account().ok_or_else(|| Error::Failed("STS returned no account id".into()))?.to_owned();
    let partition = identity.arn().and_then(|arn| arn.split(':').nth(1)).unwrap_or("aws").to_owned();
    let overrides = NameOverrides {
        bucket: global.bucket_name.clone(),
        config_role: global.config_role_name.clone(),
        function_role: global.function_role_name.clone(),
        function: global.function_name.clone(),
        rule: global.rule_name.clone(),
    };
    let names = Names::new(&account, &region, &overrides);
    Ok(Lab {
        account,
        region,
        partition,
        names,
        clients: Clients::new(&sdk),
        fast_path: false,
        function_policy: FunctionPolicy::default(),
    })
}

fn no_credentials(profile: Option<&str>, why: &str) -> Error {
    let whose = profile.map(|p| format!(" for profile `{p}`")).unwrap_or_default();
    // The fix first: the provider chain's account of what it tried spans lines.
    Error::Usage(format!(
        "no AWS credentials{whose}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass --profile, run `aws sso login`, or use --local for the local AWS ({why})"
    ))
}
