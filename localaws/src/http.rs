//! HTTP plumbing of the front: a hyper server loop, buffered requests and responses, and the
//! forwarding client to moto.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub type Body = Full<Bytes>;
pub type Response = hyper::Response<Body>;

/// A request with its body read.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The region of the SigV4 credential scope (`Credential=AKID/DATE/REGION/SERVICE/…`).
    pub fn region(&self) -> Option<String> {
        self.scope().and_then(|s| s.get(2).map(|r| r.to_string()))
    }

    /// The service of the SigV4 credential scope.
    pub fn service(&self) -> Option<String> {
        self.scope().and_then(|s| s.get(3).map(|r| r.to_string()))
    }

    fn scope(&self) -> Option<Vec<&str>> {
        let auth = self.header("authorization")?;
        let credential = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
        Some(credential.split('/').collect())
    }

    /// Parameters of a query-protocol (form-encoded) body.
    pub fn form(&self) -> Vec<(String, String)> {
        form_decode(&String::from_utf8_lossy(&self.body))
    }
}

/// Decodes `application/x-www-form-urlencoded` text.
pub fn form_decode(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as IAM and form bodies encode text).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// An AWS JSON-protocol answer (Config).
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    response(status, "application/x-amz-json-1.1", value.to_string())
}

/// An AWS JSON-protocol error.
pub fn json_error(status: u16, code: &str, message: &str) -> Response {
    let mut r = json(status, &serde_json::json!({"__type": code, "message": message}));
    if let Ok(value) = hyper::header::HeaderValue::from_str(code) {
        r.headers_mut().insert("x-amzn-errortype", value);
    }
    r
}

/// Serves `handler` on `listener` until the process ends.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = match body.collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(err) => {
                            return Ok::<_, Infallible>(response(400, "text/plain", format!("bad body: {err}")))
                        }
                    };
                    let request = Request { method: parts.method, uri: parts.uri, headers: parts.headers, body };
                    Ok(handler(request).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Binds a loopback port (0 for any free one).
pub async fn bind(port: u16) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Forwards requests unchanged to an upstream endpoint.
#[derive(Clone)]
pub struct Forwarder {
    upstream: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
}

impl Forwarder {
    pub fn new(upstream: &str) -> Self {
        Forwarder {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn forward(&self, request: &Request) -> Response {
        let path = request.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut builder =
            hyper::Request::builder().method(request.method.clone()).uri(format!("{}{path}", self.upstream));
        for (name, value) in &request.headers {
            if name != hyper::header::HOST && name != hyper::header::CONNECTION {
                builder = builder.header(name, value);
            }
        }
        let Ok(upstream) = builder.body(Full::new(request.body.clone())) else {
            return response(502, "text/plain", "cannot build the upstream request");
        };
        match self.client.request(upstream).await {
            Ok(answer) => {
                let (mut parts, body) = answer.into_parts();
                let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                parts.headers.remove(hyper::header::TRANSFER_ENCODING);
                parts.headers.remove(hyper::header::CONTENT_LENGTH);
                parts.headers.remove(hyper::header::CONNECTION);
                hyper::Response::from_parts(parts, Full::new(body))
            }
            Err(err) => response(502, "text/plain", format!("the local AWS backend did not answer: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let form = form_decode(
            "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0%2F0&X=a+b",
        );
        assert_eq!(form[0], ("Action".into(), "AuthorizeSecurityGroupIngress".into()));
        assert_eq!(form[2].1, "0.0.0.0/0");
        assert_eq!(form[3].1, "a b");
    }
}
