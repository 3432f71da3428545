//! Lambda's API as the front answers it: CreateFunction and UpdateFunctionCode keep the zip for
//! the executor ([`crate::lambda`]), Invoke runs it (sync, `Event`, `DryRun`, `LogType: Tail`),
//! the function states of [`crate::function_states`] wrap every call, and the rest goes to moto;
//! also whether a function's resource policy lets a service invoke it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tracing::warn;

use crate::behaviours::Behaviours;
use crate::config::log_error;
use crate::function_states;
use crate::http::{self, Request, Response};
use crate::lambda::{FunctionConfig, Outcome};
use crate::{Busy, Front};

impl Front {
    pub(crate) async fn lambda(
        self: &Arc<Self>,
        operation: &str,
        account: &str,
        region: &str,
        request: &Request,
    ) -> Response {
        let segments = lambda_segments(request.path());
        let name = segments.get(2).map(|n| function_name(n));
        let window = Behaviours::window(self.behaviours().function_pending_ms);
        let states = &self.function_states;
        let phase = match window.map(|_| states.before(operation, account, region, name.as_deref())) {
            Some(Err(conflict)) => return *conflict,
            Some(Ok(phase)) => phase,
            None => None,
        };
        let answer = self.lambda_call(operation, account, region, name.clone(), request).await;
        match window {
            Some(window) => {
                let call = function_states::Call { operation, account, region, name: name.as_deref() };
                states.after(&call, window, &request.body, phase, answer).await
            }
            None => answer,
        }
    }

    /// A Lambda call: invocations run by the executor, code stored for it, the rest to moto.
    pub(crate) async fn lambda_call(
        self: &Arc<Self>,
        operation: &str,
        account: &str,
        region: &str,
        name: Option<String>,
        request: &Request,
    ) -> Response {
        match operation {
            "Invoke" => return self.invoke_api(account, region, name.unwrap_or_default(), request).await,
            "CreateFunction" | "UpdateFunctionCode" => {
                let answer = self.forwarder.forward(request).await;
                if answer.status().is_success() {
                    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                    let (name, zip) = if operation == "CreateFunction" {
                        (body["FunctionName"].as_str().map(function_name), body["Code"]["ZipFile"].as_str())
                    } else {
                        (name, body["ZipFile"].as_str())
                    };
                    if let (Some(name), Some(zip)) = (name, zip) {
                        use base64::Engine;
                        match base64::engine::general_purpose::STANDARD.decode(zip) {
                            Ok(bytes) => {
                                log_error(
                                    "storing function code",
                                    self.executor.store_code(account, region, &name, &bytes).await,
                                );
                            }
                            Err(err) => warn!("the code of {name} is not base64: {err}"),
                        }
                    }
                }
                answer
            }
            "DeleteFunction" => {
                let answer = self.forwarder.forward(request).await;
                if let (true, Some(name)) = (answer.status().is_success(), name) {
                    self.executor.forget(account, region, &name).await;
                }
                answer
            }
            _ => self.forwarder.forward(request).await,
        }
    }

    pub(crate) async fn function_config(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<FunctionConfig, Response> {
        let backend = self.backend(account, region);
        let config = backend.lambda.get_function_configuration().function_name(name).send().await.map_err(|_| {
            let mut r = http::response(
                404,
                "application/json",
                json!({"Type": "User", "message": format!("Function not found: arn:aws:lambda:{region}:{account}:function:{name}")}).to_string(),
            );
            r.headers_mut().insert("x-amzn-errortype", hyper::header::HeaderValue::from_static("ResourceNotFoundException"));
            r
        })?;
        Ok(FunctionConfig {
            name: name.to_owned(),
            arn: config.function_arn().unwrap_or_default().to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
            role: config.role().unwrap_or_default().to_owned(),
            runtime: config.runtime().map(|r| r.as_str().to_owned()).unwrap_or_default(),
            timeout: Duration::from_secs(config.timeout().unwrap_or(3).max(1) as u64),
            memory_mb: config.memory_size().unwrap_or(128) as u64,
            architecture: config
                .architectures()
                .first()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|| "x86_64".into()),
            handler: config.handler().unwrap_or("bootstrap").to_owned(),
            environment: config
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        })
    }

    pub(crate) async fn invoke_api(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        name: String,
        request: &Request,
    ) -> Response {
        let config = match self.function_config(account, region, &name).await {
            Ok(config) => config,
            Err(response) => return response,
        };
        let kind = request.header("x-amz-invocation-type").unwrap_or("RequestResponse").to_owned();
        if kind == "DryRun" {
            return http::response(204, "application/json", "");
        }
        let payload = request.body.clone();
        if kind == "Event" {
            let front = self.clone();
            let guard = Busy::new(self.clone(), |front| &front.busy);
            tokio::spawn(async move {
                let _guard = guard;
                log_error("asynchronous invocation", front.executor.invoke(&config, payload).await);
            });
            return http::response(202, "application/json", "");
        }
        match self.executor.invoke(&config, payload).await {
            Ok(invocation) => {
                let (mut response, error) = match invocation.outcome {
                    Outcome::Response(body) => (http::response(200, "application/json", body), false),
                    Outcome::FunctionError { body, .. } => (http::response(200, "application/json", body), true),
                };
                let headers = response.headers_mut();
                headers.insert("x-amz-executed-version", hyper::header::HeaderValue::from_static("$LATEST"));
                if error {
                    headers.insert("x-amz-function-error", hyper::header::HeaderValue::from_static("Unhandled"));
                }
                if request.header("x-amz-log-type") == Some("Tail") {
                    use base64::Engine;
                    let tail = &invocation.log.as_bytes()[invocation.log.len().saturating_sub(4096)..];
                    if let Ok(v) =
                        hyper::header::HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(tail))
                    {
                        headers.insert("x-amz-log-result", v);
                    }
                }
                response
            }
            Err(message) => {
                let mut r =
                    http::response(502, "application/json", json!({"Type": "Service", "message": message}).to_string());
                r.headers_mut().insert("x-amzn-errortype", hyper::header::HeaderValue::from_static("ServiceException"));
                r
            }
        }
    }

    /// Whether the resource policy of the function (of `account`) lets `service` invoke it on
    /// behalf of `source_account` (from `source_arn`).
    pub(crate) async fn allows(
        &self,
        account: &str,
        region: &str,
        function: &str,
        service: &str,
        source_arn: Option<&str>,
        source_account: &str,
    ) -> bool {
        let Ok(out) = self.backend(account, region).lambda.get_policy().function_name(function).send().await else {
            return false;
        };
        let Some(policy) = out.policy().and_then(|p| serde_json::from_str::<Value>(p).ok()) else { return false };
        policy["Statement"].as_array().is_some_and(|statements| {
            statements.iter().any(|st| {
                let condition_arn = &st["Condition"]["ArnLike"]["AWS:SourceArn"];
                let condition_account = &st["Condition"]["StringEquals"]["AWS:SourceAccount"];
                st["Effect"] == "Allow"
                    && st["Principal"]["Service"] == service
                    && (st["Action"] == "lambda:InvokeFunction" || st["Action"] == "lambda:*")
                    && (condition_arn.is_null() || source_arn.is_some_and(|a| condition_arn == a))
                    && (condition_account.is_null() || condition_account == source_account)
            })
        })
    }
}

/// The decoded segments of a Lambda API path (`2015-03-31`, `functions`, NAME, …).
pub(crate) fn lambda_segments(path: &str) -> Vec<String> {
    path.trim_matches('/').split('/').map(http::percent_decode).collect()
}

pub(crate) fn lambda_operation(method: &hyper::Method, segments: &[String]) -> &'static str {
    match (method.as_str(), segments.len(), segments.get(3).map(String::as_str)) {
        ("POST", 2, _) => "CreateFunction",
        ("GET", 2, _) => "ListFunctions",
        ("GET", 3, _) => "GetFunction",
        ("DELETE", 3, _) => "DeleteFunction",
        ("PUT", 4, Some("code")) => "UpdateFunctionCode",
        ("PUT", 4, Some("configuration")) => "UpdateFunctionConfiguration",
        ("GET", 4, Some("configuration")) => "GetFunctionConfiguration",
        ("POST", 4, Some("invocations")) => "Invoke",
        ("GET", 4, Some("policy")) => "GetPolicy",
        ("POST", 4, Some("policy")) => "AddPermission",
        ("DELETE", 5, Some("policy")) => "RemovePermission",
        _ => "other",
    }
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` or `NAME` → `NAME`.
pub fn function_name(id: &str) -> String {
    match id.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_owned(),
        None => id.split(':').next().unwrap_or(id).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_from_names_and_arns() {
        assert_eq!(function_name("fn"), "fn");
        assert_eq!(function_name("arn:aws:lambda:us-west-2:123456789012:function:fn"), "fn");
        assert_eq!(function_name("arn:aws:lambda:us-west-2:123456789012:function:fn:$LATEST"), "fn");
    }
}
