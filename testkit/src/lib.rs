//! Test support shared by the workspace's integration tests: a private moto server per test
//! (started from the `moto_server` that `scripts/setup` installs) and a recording endpoint that
//! answers the AWS JSON calls moto cannot (Config's PutEvaluations without TestMode).
//!
//! Tests may panic here: a missing tool is a broken test environment, named in the message.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The region the tests run in (the lab's).
pub const REGION: &str = "us-west-2";

/// A moto server on a free loopback port, killed on drop.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    /// Starts `moto_server` (or `$MOTO_SERVER`) with the managed IAM policies loaded and waits,
    /// at most 60 s, until it answers.
    pub fn start() -> Self {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{program}` ({e}): run scripts/setup, which installs moto"));
        let server = MotoServer { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        while Instant::now() < deadline {
            if http_get(addr, "/moto-api/data.json").is_some() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto server on port {port} did not answer within 60 s");
    }

    /// Clears every resource of the server (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let addr: SocketAddr = self.endpoint.trim_start_matches("http://").parse().expect("moto address");
        let mut stream = TcpStream::connect(addr).expect("connect to moto");
        write!(
            stream,
            "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("reset moto");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 200"), "moto reset failed: {response}");
    }

    /// SDK configuration for this server: test credentials, the lab's region.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration pointing every client at `endpoint`, with static test credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "testkit"))
        .load()
        .await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

/// One request the recording endpoint received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The `X-Amz-Target` header, e.g. `StarlingDoveService.PutEvaluations`.
    pub target: String,
    pub body: serde_json::Value,
}

/// An HTTP endpoint that records AWS JSON-protocol requests and answers each with `response`.
pub struct RecordingEndpoint {
    pub endpoint: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl RecordingEndpoint {
    /// Starts the endpoint on a free loopback port; it lives as long as the test's runtime.
    pub async fn start(response: serde_json::Value) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let body = response.to_string();
        let endpoint = serve(move |request: Request| {
            recorded.lock().expect("recording lock").push(Recorded {
                target: request.header("x-amz-target").unwrap_or_default(),
                body: serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null),
            });
            let body = body.clone();
            async move { Response::json(200, body) }
        })
        .await;
        RecordingEndpoint { endpoint, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("recording lock").clone()
    }
}

/// What the function answered to one invocation through [`RuntimeApi`].
#[derive(Debug, Clone)]
pub enum Invocation {
    Response(serde_json::Value),
    Error(serde_json::Value),
}

/// A minimal Lambda Runtime API: hands out queued events on `next` and records each
/// `response` or `error`, so that a test can run the real `bootstrap` binary.
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    results: Arc<Mutex<Vec<Invocation>>>,
}

impl RuntimeApi {
    pub async fn start(events: Vec<serde_json::Value>) -> Self {
        let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(events)));
        let results = Arc::new(Mutex::new(Vec::new()));
        let recorded = results.clone();
        let counter = Arc::new(Mutex::new(0u32));
        let endpoint = serve(move |request: Request| {
            let queue = queue.clone();
            let recorded = recorded.clone();
            let counter = counter.clone();
            async move {
                if request.method == "GET" && request.path.ends_with("/runtime/invocation/next") {
                    // Long poll, as Lambda does; the test ends the process when it is done.
                    loop {
                        let next = queue.lock().expect("queue lock").pop_front();
                        if let Some(event) = next {
                            let mut n = counter.lock().expect("counter lock");
                            *n += 1;
                            let deadline = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_millis() + 60_000)
                                .unwrap_or_default();
                            return Response::json(200, event.to_string()).with_headers(vec![
                                ("Lambda-Runtime-Aws-Request-Id".into(), format!("request-{n}")),
                                ("Lambda-Runtime-Deadline-Ms".into(), deadline.to_string()),
                                (
                                    "Lambda-Runtime-Invoked-Function-Arn".into(),
                                    "arn:aws:lambda:us-west-2:123456789012:function:test".into(),
                                ),
                            ]);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                let body = serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
                if request.path.ends_with("/response") {
                    recorded.lock().expect("results lock").push(Invocation::Response(body));
                } else {
                    recorded.lock().expect("results lock").push(Invocation::Error(body));
                }
                Response::json(202, "{}".into())
            }
        })
        .await;
        RuntimeApi { address: endpoint.trim_start_matches("http://").to_owned(), results }
    }

    /// Waits, at most `timeout`, until `count` invocations have answered.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Invocation> {
        let deadline = Instant::now() + timeout;
        loop {
            let results = self.results.lock().expect("results lock").clone();
            if results.len() >= count || Instant::now() > deadline {
                return results;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One HTTP request, as the test servers see it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

/// An HTTP response of the test servers.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: String) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
            body: body.into_bytes(),
        }
    }

    /// An answer with these headers and body.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Response { status, headers, body }
    }

    fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers.extend(headers);
        self
    }
}

/// Serves HTTP/1.1 (keep-alive, Content-Length bodies) on a free loopback port.
async fn serve<F, Fut>(handler: F) -> String
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream, handler.clone()));
        }
    });
    endpoint
}

async fn connection<F, Fut>(mut stream: tokio::net::TcpStream, handler: Arc<F>)
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let mut buffer = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let header_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        let mut lines = head.lines();
        let mut request_line = lines.next().unwrap_or_default().split_whitespace();
        let method = request_line.next().unwrap_or_default().to_owned();
        let path = request_line.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..header_end + length).skip(header_end).collect();
        let response = handler(Request { method, path, headers, body }).await;
        let mut reply = format!("HTTP/1.1 {} OK\r\nContent-Length: {}\r\n", response.status, response.body.len());
        for (key, value) in &response.headers {
            reply.push_str(&format!("{key}: {value}\r\n"));
        }
        reply.push_str("\r\n");
        let mut bytes = reply.into_bytes();
        bytes.extend_from_slice(&response.body);
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// A Lambda deployment zip holding `bootstrap`: an ELF header for `machine` (0x3e x86_64,
/// 0xb7 arm64) followed by `payload`, so that different payloads give different code hashes.
pub fn lambda_zip(machine: u16, payload: &[u8]) -> Vec<u8> {
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    elf.resize(18, 0);
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.resize(64, 0);
    elf.extend_from_slice(payload);
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    writer.start_file("bootstrap", options).expect("zip entry");
    std::io::Write::write_all(&mut writer, &elf).expect("zip write");
    writer.finish().expect("zip finish");
    out.into_inner()
}

/// Where, in a group's evaluation history (compliance, annotation), the function last reported
/// revoking `rule` (`tcp/465@0.0.0.0/0`): a `NON_COMPLIANT` evaluation whose annotation
/// `Revoked …, …` names it, alone or with others (`Revoked …; authorized ….` too).
///
/// The lab's `open-ports` is two changes (the default rule revoked, then the four authorized),
/// and a change-triggered rule is evaluated for each: the function may run between the two,
/// add 80 and 443 itself, and then meet 465 and 993 in two changes (EC2 answers the four
/// `InvalidPermission.Duplicate`, and they are added one by one). One report or two are both
/// right; a test asks that each rule was reported.
pub fn reported_revoked(history: &[(String, Option<String>)], rule: &str) -> Option<usize> {
    history.iter().rposition(|(compliance, annotation)| {
        compliance == "NON_COMPLIANT"
            && annotation
                .as_deref()
                .and_then(|a| a.strip_prefix("Revoked "))
                .and_then(|a| a.trim_end_matches('.').split(';').next())
                .is_some_and(|revoked| revoked.split(", ").any(|r| r == rule))
    })
}

/// One AWS call seen by a [`CountingProxy`].
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The operation for the JSON (`X-Amz-Target`) and query (`Action=`) protocols.
    pub operation: Option<String>,
    /// When the proxy received the request and when it had the answer.
    pub started: std::time::Instant,
    pub finished: std::time::Instant,
}

/// Sequential round trips among these calls: a call that starts only after every call before
/// it has answered opens a new one; calls in flight together share one.
pub fn round_trips(calls: &[Call]) -> usize {
    let mut calls: Vec<&Call> = calls.iter().collect();
    calls.sort_by_key(|c| c.started);
    let mut trips = 0;
    let mut last_answer: Option<std::time::Instant> = None;
    for call in calls {
        if last_answer.is_none_or(|end| call.started >= end) {
            trips += 1;
        }
        last_answer = Some(last_answer.map_or(call.finished, |end| end.max(call.finished)));
    }
    trips
}

impl Call {
    /// Whether the call can change state: every operation but reads.
    pub fn is_mutating(&self) -> bool {
        match &self.operation {
            Some(op) => !["Get", "List", "Describe", "Head", "Filter", "Lookup"].iter().any(|p| op.starts_with(p)),
            None => !matches!(self.method.as_str(), "GET" | "HEAD"),
        }
    }
}

/// A forwarding proxy in front of an endpoint that records every call.
pub struct CountingProxy {
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// A proxy's hook on each request before it is forwarded: it may change the request, or
/// answer it itself (`Some`), in which case upstream never sees it.
pub type Rewrite = Arc<dyn Fn(&mut Request) -> Option<Response> + Send + Sync>;

impl CountingProxy {
    pub async fn start(upstream: &str) -> Self {
        Self::start_with(upstream, Arc::new(|_: &mut Request| None)).await
    }

    /// A proxy that passes each request through `rewrite` first (calls are recorded as made).
    pub async fn start_with(upstream: &str, rewrite: Rewrite) -> Self {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().expect("upstream host:port");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let endpoint = serve(move |mut request: Request| {
            let recorded = recorded.clone();
            let rewrite = rewrite.clone();
            async move {
                let body = String::from_utf8_lossy(&request.body).to_string();
                let operation = request
                    .header("x-amz-target")
                    .and_then(|t| t.rsplit('.').next().map(str::to_owned))
                    .or_else(|| body.split('&').find_map(|kv| kv.strip_prefix("Action=").map(str::to_owned)));
                let (method, path, started) = (request.method.clone(), request.path.clone(), std::time::Instant::now());
                let answer = match rewrite(&mut request) {
                    Some(answer) => answer,
                    None => forward(upstream, request).await,
                };
                let finished = std::time::Instant::now();
                recorded.lock().expect("calls lock").push(Call { method, path, operation, started, finished });
                answer
            }
        })
        .await;
        CountingProxy { endpoint, calls }
    }

    /// The calls answered so far, in the order they were made.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = self.calls.lock().expect("calls lock").clone();
        calls.sort_by_key(|c| c.started);
        calls
    }

    pub fn clear(&self) {
        self.calls.lock().expect("calls lock").clear();
    }
}

async fn forward(upstream: SocketAddr, request: Request) -> Response {
    let mut stream = tokio::net::TcpStream::connect(upstream).await.expect("connect upstream");
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (key, value) in &request.headers {
        if !key.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{key}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("forward head");
    stream.write_all(&request.body).await.expect("forward body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read upstream");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(502);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .filter(|(k, _)| {
            !["content-length", "connection", "transfer-encoding"].iter().any(|h| k.eq_ignore_ascii_case(h))
        })
        .collect();
    Response { status, headers, body: raw[split..].to_vec() }
}

/// Zips the function binary the workspace's tests build (`cargo test --workspace` builds
/// `bootstrap` next to the test binaries) into `dir/bootstrap.zip`.
pub fn bootstrap_zip(dir: &std::path::Path) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bootstrap = exe.parent().and_then(|deps| deps.parent()).map(|d| d.join("bootstrap")).unwrap();
    assert!(
        bootstrap.is_file(),
        "{} is missing: run the workspace's tests (cargo test --workspace)",
        bootstrap.display()
    );
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    writer.start_file("bootstrap", options).unwrap();
    std::io::Write::write_all(&mut writer, &std::fs::read(&bootstrap).unwrap()).unwrap();
    writer.finish().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("bootstrap.zip");
    std::fs::write(&path, out.into_inner()).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::reported_revoked;

    #[test]
    fn a_revoke_is_found_alone_with_others_or_before_an_authorize() {
        let e = |c: &str, a: &str| (c.to_owned(), Some(a.to_owned()));
        // A history CI met: the function ran between open-ports' two changes.
        let history = [
            e("NON_COMPLIANT", "Authorized tcp/80@0.0.0.0/0, tcp/443@0.0.0.0/0."),
            e("NON_COMPLIANT", "Revoked tcp/465@0.0.0.0/0."),
            e("NON_COMPLIANT", "Revoked tcp/993@0.0.0.0/0; authorized tcp/443@0.0.0.0/0."),
            e("COMPLIANT", "Permissions are correct."),
        ];
        assert_eq!(reported_revoked(&history, "tcp/465@0.0.0.0/0"), Some(1));
        assert_eq!(reported_revoked(&history, "tcp/993@0.0.0.0/0"), Some(2));
        assert_eq!(reported_revoked(&history, "tcp/443@0.0.0.0/0"), None, "authorized is not revoked");
        assert_eq!(reported_revoked(&history, "tcp/80@0.0.0.0/0"), None);
        let both = [e("NON_COMPLIANT", "Revoked tcp/465@0.0.0.0/0, tcp/993@0.0.0.0/0.")];
        assert_eq!(reported_revoked(&both, "tcp/993@0.0.0.0/0"), Some(0));
        assert_eq!(reported_revoked(&[e("COMPLIANT", "Revoked tcp/465@0.0.0.0/0.")], "tcp/465@0.0.0.0/0"), None);
    }
}
