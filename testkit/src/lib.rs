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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let body = response.to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, recorded.clone(), body.clone()));
            }
        });
        RecordingEndpoint { endpoint, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("recording lock").clone()
    }
}

async fn serve(mut stream: tokio::net::TcpStream, recorded: Arc<Mutex<Vec<Recorded>>>, response: String) {
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
        let headers = String::from_utf8_lossy(&buffer[..header_end]).to_string();
        let header = |name: &str| {
            headers.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..header_end + length).skip(header_end).collect();
        recorded.lock().expect("recording lock").push(Recorded {
            target: header("x-amz-target").unwrap_or_default(),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{response}",
            response.len()
        );
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
