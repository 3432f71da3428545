//! The deploy error: what failed, on which resource, and the exit code it maps to.

use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Exit codes, listed in the README.
pub mod exit {
    /// An AWS call failed, or `down` left resources of the lab behind.
    pub const FAILED: u8 = 1;
    /// Bad invocation or input: flags, zip, region, credentials, unreachable endpoint.
    pub const USAGE: u8 = 2;
    /// A resource exists that this lab does not own; nothing was changed.
    pub const CONFLICT: u8 = 3;
    /// Destruction was not confirmed.
    pub const DECLINED: u8 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; the message says how to fix it.
    #[error("{0}")]
    Usage(String),
    /// A resource that is not the lab's is in the way.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Declined(String),
    /// An AWS call failed after the SDK's retries.
    #[error("{what}: {message}")]
    Aws { what: String, code: Option<String>, message: String },
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Conflict(_) => exit::CONFLICT,
            Error::Declined(_) => exit::DECLINED,
            Error::Aws { .. } | Error::Failed(_) => exit::FAILED,
        }
    }

    /// The AWS error code, when the failure was an AWS error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Wraps an SDK error, naming what was being done. Unreachable endpoints become usage errors
    /// (the fix is on the caller's side); an HTTP 500 without an AWS error code means the
    /// endpoint does not implement the operation (the local AWS answers that way).
    pub fn aws<E>(what: impl Into<String>, err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = what.into();
        if let SdkError::DispatchFailure(failure) = &err {
            if failure.is_io() || failure.is_timeout() {
                return Error::Usage(format!(
                    "{what}: cannot reach the AWS endpoint ({}); check --endpoint-url / AWS_ENDPOINT_URL and that the endpoint is running",
                    DisplayErrorContext(&err)
                ));
            }
        }
        let code = err.code().map(str::to_owned);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let message = match (err.code(), err.message(), status) {
            (Some(code), Some(message), _) => format!("{code}: {message}"),
            (Some(code), None, _) => code.to_owned(),
            (None, _, Some(500..=599)) => format!(
                "the endpoint answered HTTP {} without an AWS error; it does not implement this operation",
                status.unwrap_or_default()
            ),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Error::Aws { what, code, message }
    }
}

/// The AWS error code of an SDK error, if any.
pub fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    err.code()
}
