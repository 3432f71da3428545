//! `deploy local start|status|stop`: the local AWS (moto behind the `localaws` front) as a
//! background process, and what `--local` uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The front's default port.
pub const LOCAL_PORT: u16 = 4599;

/// Where the local AWS keeps its files.
pub fn home() -> PathBuf {
    std::env::var_os("SG_LAB_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sg-lab")))
        .unwrap_or_else(|| std::env::temp_dir().join("sg-lab"))
}

/// `moto_server` from PATH, else from the environment `scripts/setup` creates.
pub fn moto_program() -> String {
    if let Ok(program) = std::env::var("MOTO_SERVER") {
        return program;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()))
        .unwrap_or(false);
    let venv = home().join("venv/bin/moto_server");
    if !on_path && venv.is_file() {
        return venv.display().to_string();
    }
    "moto_server".to_owned()
}

pub fn endpoint(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn request(port: u16, method: &str, path: &str) -> Option<String> {
    exchange(port, method, path, "").and_then(|(status, body)| (status == 200).then_some(body))
}

/// One HTTP/1.1 exchange with the local AWS's admin endpoints: the status and the body.
fn exchange(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

/// Sets the fault spec of the local AWS on `port` (see `localaws::faults`).
pub fn set_faults(port: u16, spec: &str) -> Result<serde_json::Value> {
    post_spec(port, "/_sg-lab/faults", spec)
}

/// POSTs a spec to an admin path of the local AWS on `port`: its answer, or the error it gives.
fn post_spec(port: u16, path: &str, spec: &str) -> Result<serde_json::Value> {
    match exchange(port, "POST", path, spec) {
        Some((200, body)) => {
            serde_json::from_str(&body).map_err(|e| Error::Failed(format!("the local AWS answered: {e}")))
        }
        Some((_, body)) => {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            Err(Error::Usage(answer["error"].as_str().unwrap_or(&body).to_owned()))
        }
        None => Err(Error::Failed(format!("the local AWS on port {port} did not answer"))),
    }
}

/// Sets the AWS behaviours the local AWS on `port` reproduces (`aws`, `off` or JSON; see
/// `localaws::behaviours`).
pub fn set_behaviours(port: u16, spec: &str) -> Result<serde_json::Value> {
    localaws::behaviours::Behaviours::parse(spec).map_err(Error::Usage)?;
    post_spec(port, "/_sg-lab/behaviours", spec)
}

/// The AWS behaviours the local AWS on `port` reproduces.
pub fn behaviours(port: u16) -> Option<localaws::behaviours::Behaviours> {
    request(port, "GET", "/_sg-lab/behaviours").and_then(|b| serde_json::from_str(&b).ok())
}

/// The faults injected so far by the local AWS on `port`.
pub fn faults(port: u16) -> Option<serde_json::Value> {
    request(port, "GET", "/_sg-lab/faults").and_then(|b| serde_json::from_str(&b).ok())
}

/// The health document of a running local AWS on `port`.
pub fn health(port: u16) -> Option<serde_json::Value> {
    request(port, "GET", "/_sg-lab/health").and_then(|b| serde_json::from_str(&b).ok())
}

/// Calls per operation seen by the local AWS on `port`.
pub fn calls(port: u16) -> Option<serde_json::Value> {
    request(port, "GET", "/_sg-lab/calls").and_then(|b| serde_json::from_str(&b).ok())
}

/// The evaluation history of the local AWS on `port`.
pub fn evaluations(port: u16) -> Option<serde_json::Value> {
    request(port, "GET", "/_sg-lab/evaluations").and_then(|b| serde_json::from_str(&b).ok())
}

/// Starts the local AWS in the background unless it already runs; returns its endpoint.
pub fn ensure_running(port: u16) -> Result<String> {
    if health(port).is_some() {
        return Ok(endpoint(port));
    }
    let dir = home().join("local");
    std::fs::create_dir_all(&dir).map_err(|e| Error::Failed(format!("creating {}: {e}", dir.display())))?;
    let log_path = dir.join("local.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| Error::Failed(format!("creating {}: {e}", log_path.display())))?;
    let log_err = log.try_clone().map_err(|e| Error::Failed(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| Error::Failed(format!("finding the deploy binary: {e}")))?;
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .args(["local", "serve", "--port", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Failed(format!("starting the local AWS: {e}")))?;
    eprintln!("starting the local AWS on {} (log: {})", endpoint(port), log_path.display());
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if health(port).is_some() {
            return Ok(endpoint(port));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    Err(Error::Usage(format!(
        "the local AWS did not start within 90 s: {}; is moto installed (scripts/setup)?",
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    )))
}

/// The behaviours that are on, in one line.
pub fn describe_behaviours(behaviours: &localaws::behaviours::Behaviours) -> String {
    let on = behaviours.describe();
    if on.is_empty() {
        "none (moto as is)".to_owned()
    } else {
        on.join("; ")
    }
}

/// Asks the local AWS on `port` to stop and waits (bounded) until it has.
pub fn stop(port: u16) -> Result<bool> {
    if health(port).is_none() {
        return Ok(false);
    }
    request(port, "POST", "/_sg-lab/shutdown");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if health(port).is_none() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Failed(format!("the local AWS on port {port} did not stop within 30 s")))
}

/// Runs the local AWS in the foreground until Ctrl-C, SIGTERM or `deploy local stop`.
///
/// It reproduces the AWS behaviours of `aws_like` (`aws` when not given: the lab on this machine
/// meets what it will meet on AWS).
pub async fn serve(port: u16, faults: Option<&str>, aws_like: Option<&str>) -> Result<()> {
    let faults = faults.map(localaws::faults::FaultSpec::parse).transpose().map_err(Error::Usage)?;
    let behaviours = localaws::behaviours::Behaviours::parse(aws_like.unwrap_or("aws")).map_err(Error::Usage)?;
    let described = describe_behaviours(&behaviours);
    let options = localaws::Options { port, moto: moto_program(), data_dir: home().join("local"), behaviours };
    let local = localaws::start(options).await.map_err(Error::Usage)?;
    println!("local AWS on {} (backend {})", local.endpoint, local.backend);
    println!("AWS behaviours: {described}");
    if let Some(spec) = faults {
        println!("injecting faults: {}", serde_json::to_string(&spec).unwrap_or_default());
        local.set_faults(Some(spec));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Failed(format!("installing the SIGTERM handler: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        _ = local.shutdown_requested() => {}
    }
    drop(local);
    Ok(())
}
