//! The deploy error: what failed, on which resource, and the exit code it maps to.

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

/// Exit codes, listed in docs/deploy.md.
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

    /// Wraps an SDK error as a sentence: what was being done, then what the service answered —
    /// its name, the HTTP status, the error code and message (`reading bucket X: S3 answered
    /// 301 PermanentRedirect: the bucket is in eu-west-1`), never a Debug dump of the SDK's
    /// types. Unreachable endpoints become usage errors (the fix is on the caller's side); an
    /// HTTP 5xx without an AWS error code means the endpoint does not implement the operation
    /// (the local AWS answers that way).
    pub fn aws<E>(what: impl Into<String>, err: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = what.into();
        let service = service_of::<E>();
        let (code, message) = match &err {
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                return Error::Usage(format!(
                    "{what}: cannot reach the AWS endpoint of {service} ({}); check --endpoint-url / AWS_ENDPOINT_URL and that the endpoint is running",
                    causes(&err)
                ));
            }
            SdkError::DispatchFailure(_) => {
                (None, format!("the request to {service} could not be sent: {}", causes(&err)))
            }
            SdkError::TimeoutError(_) => (None, format!("{service} did not answer in time")),
            SdkError::ConstructionFailure(_) => {
                (None, format!("the request to {service} could not be built: {}", causes(&err)))
            }
            SdkError::ResponseError(_) => match err.raw_response().map(|r| r.status().as_u16()) {
                // moto answers an operation it lacks with 500 and an HTML page.
                Some(status @ 500..=599) => (None, not_implemented(status)),
                status => {
                    let status = status.map(|s| format!(" {s}")).unwrap_or_default();
                    (None, format!("{service} answered{status} in a form that could not be read: {}", causes(&err)))
                }
            },
            _ => service_answer(service, &err),
        };
        Error::Aws { what, code, message }
    }
}

/// The service's answer to a call, as a sentence, and its error code.
fn service_answer<E: ProvideErrorMetadata>(service: &str, err: &SdkError<E>) -> (Option<String>, String) {
    let raw = err.raw_response();
    let status = raw.map(|r| r.status().as_u16());
    // S3 answers a request for a bucket of another region with 301 and the bucket's region in a
    // header; HeadBucket's answer has no body, so the SDK sees no code.
    let region = raw.and_then(|r| r.headers().get("x-amz-bucket-region")).map(str::to_owned);
    let code = match (err.code(), status) {
        (Some(code), _) => Some(code.to_owned()),
        (None, Some(301)) => Some("PermanentRedirect".to_owned()),
        (None, _) => None,
    };
    let answered = match status {
        Some(status) => format!("{service} answered {status}"),
        None => format!("{service} answered"),
    };
    let mut message = match (&code, err.message(), status) {
        (Some(code), Some(message), _) => format!("{answered} {code}: {message}"),
        (Some(code), None, _) => format!("{answered} {code}"),
        (None, _, Some(status @ 500..=599)) => not_implemented(status),
        (None, Some(message), _) => format!("{answered} without an error code: {message}"),
        (None, None, _) => format!("{answered} without an error code or message"),
    };
    if code.as_deref() == Some("PermanentRedirect") {
        match (region, err.message()) {
            (Some(region), None) => message.push_str(&format!(": the bucket is in {region}")),
            (Some(region), Some(_)) => message.push_str(&format!(" (the bucket is in {region})")),
            (None, None) => message.push_str(": the bucket is in another region"),
            (None, Some(_)) => {}
        }
    }
    (code, message)
}

fn not_implemented(status: u16) -> String {
    format!("the endpoint answered HTTP {status} without an AWS error; it does not implement this operation")
}

/// The service an SDK error type belongs to, by its crate (`aws_sdk_s3::…` → `S3`).
fn service_of<E>() -> &'static str {
    let path = std::any::type_name::<E>();
    let krate = path.split("::").next().unwrap_or_default();
    match krate {
        "aws_sdk_s3" => "S3",
        "aws_sdk_iam" => "IAM",
        "aws_sdk_sts" => "STS",
        "aws_sdk_lambda" => "Lambda",
        "aws_sdk_config" => "Config",
        "aws_sdk_eventbridge" => "EventBridge",
        "aws_sdk_cloudtrail" => "CloudTrail",
        "aws_sdk_cloudwatchlogs" => "CloudWatch Logs",
        "aws_sdk_ec2" => "EC2",
        _ => "AWS",
    }
}

/// The messages of an SDK error's causes, each once, joined by `: ` (what `DisplayErrorContext`
/// shows, without the SDK's own "response error" / "dispatch failure", which the sentence says
/// in words).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err.source().unwrap_or(err));
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// A change that already took effect counts as done: when AWS carries a call out but its answer
/// is lost or fails (a 5xx after the change was made), the SDK's retry meets the call's own
/// result — what it deletes is gone, what it creates exists — and answers one of `codes`.
pub fn done_already<T: Default>(result: Result<T>, codes: &[&str]) -> Result<T> {
    match result {
        Err(err) if err.code().is_some_and(|c| codes.contains(&c)) => Ok(T::default()),
        other => other,
    }
}

/// The AWS error code of an SDK error, if any.
pub fn code_of<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    err.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> HttpResponse {
        let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        for (name, value) in headers {
            response.headers_mut().insert(*name, *value);
        }
        response
    }

    fn service_error<E>(err: E, status: u16, headers: &[(&'static str, &'static str)]) -> SdkError<E, HttpResponse> {
        SdkError::service_error(err, response(status, headers))
    }

    #[test]
    fn a_bucket_in_another_region_says_where_it_is() {
        let err = service_error(
            HeadBucketError::generic(ErrorMetadata::builder().build()),
            301,
            &[("x-amz-bucket-region", "eu-west-1")],
        );
        let err = Error::aws("reading bucket lab-bucket in us-west-2", err);
        assert_eq!(
            err.to_string(),
            "reading bucket lab-bucket in us-west-2: S3 answered 301 PermanentRedirect: the bucket is in eu-west-1"
        );
        assert_eq!(err.code(), Some("PermanentRedirect"));
        assert_eq!(err.exit_code(), exit::FAILED);
    }

    #[test]
    fn a_service_error_names_the_service_status_code_and_message() {
        let meta = ErrorMetadata::builder().code("AccessDenied").message("Access Denied").build();
        let err = Error::aws("putting the policy of bucket b", service_error(HeadBucketError::generic(meta), 403, &[]));
        assert_eq!(err.to_string(), "putting the policy of bucket b: S3 answered 403 AccessDenied: Access Denied");
        let meta = ErrorMetadata::builder()
            .code("ResourceConflictException")
            .message("The operation cannot be performed at this time. An update is in progress for resource: f")
            .build();
        let lambda = aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError::generic(meta);
        let err = Error::aws("updating the code of function f", service_error(lambda, 409, &[]));
        assert_eq!(
            err.to_string(),
            "updating the code of function f: Lambda answered 409 ResourceConflictException: The operation cannot be performed at this time. An update is in progress for resource: f"
        );
        assert!(!err.to_string().contains("ServiceError"), "{err}");
    }

    #[test]
    fn errors_without_a_code_or_an_answer_are_still_sentences() {
        let none = || HeadBucketError::generic(ErrorMetadata::builder().build());
        let err = Error::aws("reading bucket b", service_error(none(), 503, &[]));
        assert_eq!(
            err.to_string(),
            "reading bucket b: the endpoint answered HTTP 503 without an AWS error; it does not implement this operation"
        );
        let err = Error::aws("reading bucket b", service_error(none(), 404, &[]));
        assert_eq!(err.to_string(), "reading bucket b: S3 answered 404 without an error code or message");
        let unreadable: SdkError<HeadBucketError, HttpResponse> =
            SdkError::response_error("malformed JSON error body", response(500, &[]));
        assert!(Error::aws("reading bucket b", unreadable)
            .to_string()
            .ends_with("it does not implement this operation"));
        let unreadable: SdkError<HeadBucketError, HttpResponse> =
            SdkError::response_error("malformed XML", response(200, &[]));
        let text = Error::aws("reading bucket b", unreadable).to_string();
        assert_eq!(text, "reading bucket b: S3 answered 200 in a form that could not be read: malformed XML");
        let timeout: SdkError<HeadBucketError, HttpResponse> = SdkError::timeout_error("too slow");
        assert_eq!(Error::aws("reading bucket b", timeout).to_string(), "reading bucket b: S3 did not answer in time");
        let failed: SdkError<HeadBucketError, HttpResponse> = SdkError::construction_failure("no bucket name given");
        let text = Error::aws("reading bucket b", failed).to_string();
        assert!(text.starts_with("reading bucket b: the request to S3 could not be built: "), "{text}");
        assert!(text.contains("no bucket name given") && !text.contains("ConstructionFailure"), "{text}");
    }
}
