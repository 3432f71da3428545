//! Lambda execution without Docker, for `provided.al2023` / `provided.al2` zips.
//!
//! The zip given to CreateFunction or UpdateFunctionCode is unpacked; an invocation runs its
//! `bootstrap` behind a Lambda Runtime API (next / response / error / init error) with Lambda's
//! environment. One warm process per function is kept between invocations, as Lambda does;
//! invocations of one function run one at a time. The timeout is enforced by killing the
//! process. Output goes to CloudWatch Logs `/aws/lambda/<name>`, one stream per process, with
//! `START` / `END` / `REPORT` lines.
//!
//! Functions are kept per account, region and name. A process gets, as on Lambda, temporary
//! credentials of the function's execution role, obtained from the backend's STS in the
//! function's account: moto maps that key to the account, and so does the front, so every call
//! the function makes lands in the account it lives in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::{info, warn};

use crate::accounts::{self, Accounts};
use crate::http::{self, Forwarder, Request, Response};

/// What the function's code answered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler's response.
    Response(Bytes),
    /// The handler (or its initialisation) reported an error: `{"errorType","errorMessage"}`.
    FunctionError { error_type: String, message: String, body: Bytes },
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub outcome: Outcome,
    pub duration_ms: f64,
    pub max_memory_mb: u64,
    pub init_ms: Option<f64>,
    /// The invocation's log lines, for `X-Amz-Log-Type: Tail`.
    pub log: String,
}

/// What the executor needs to know of a function (read from the backend at invocation time).
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub arn: String,
    /// The account the function lives in (and acts in).
    pub account: String,
    pub region: String,
    /// The execution role's ARN.
    pub role: String,
    pub runtime: String,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub architecture: String,
    pub handler: String,
    pub environment: Vec<(String, String)>,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    deadline_ms: u128,
    arn: String,
}

type Results = Mutex<HashMap<String, oneshot::Sender<Outcome>>>;

/// The Runtime API of one process.
struct RuntimeApi {
    address: String,
    next: mpsc::Sender<Pending>,
    results: Arc<Results>,
    init_error: Arc<Mutex<Option<Outcome>>>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    async fn start() -> std::io::Result<Self> {
        let (listener, addr) = http::bind(0).await?;
        let (next, receiver) = mpsc::channel::<Pending>(1);
        let receiver = Arc::new(Mutex::new(receiver));
        let results: Arc<Results> = Arc::default();
        let init_error: Arc<Mutex<Option<Outcome>>> = Arc::default();
        let (r, e) = (results.clone(), init_error.clone());
        let server = tokio::spawn(http::serve(listener, move |request: Request| {
            let (receiver, results, init_error) = (receiver.clone(), r.clone(), e.clone());
            async move { runtime_api(request, receiver, results, init_error).await }
        }));
        Ok(RuntimeApi { address: addr.to_string(), next, results, init_error, server })
    }
}

async fn runtime_api(
    request: Request,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    results: Arc<Results>,
    init_error: Arc<Mutex<Option<Outcome>>>,
) -> Response {
    let path = request.path().to_owned();
    if request.method == hyper::Method::GET && path.ends_with("/runtime/invocation/next") {
        let Some(pending) = receiver.lock().await.recv().await else {
            return http::response(500, "text/plain", "the executor is shutting down");
        };
        let mut response = http::response(200, "application/json", pending.payload);
        let headers = response.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", pending.request_id.clone()),
            ("lambda-runtime-deadline-ms", pending.deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", pending.arn.clone()),
            (
                "lambda-runtime-trace-id",
                format!("Root=1-00000000-{}", pending.request_id.replace('-', "")[..24].to_owned()),
            ),
        ] {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        return response;
    }
    let error_outcome = |body: &Bytes| {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        Outcome::FunctionError {
            error_type: parsed["errorType"].as_str().unwrap_or("Unhandled").to_owned(),
            message: parsed["errorMessage"].as_str().unwrap_or_default().to_owned(),
            body: body.clone(),
        }
    };
    if path.ends_with("/runtime/init/error") {
        *init_error.lock().await = Some(error_outcome(&request.body));
        return http::response(202, "application/json", r#"{"status":"OK"}"#);
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["2018-06-01", "runtime", "invocation", id, kind] = parts.as_slice() {
        let outcome = match *kind {
            "response" => Outcome::Response(request.body.clone()),
            "error" => error_outcome(&request.body),
            _ => return http::response(404, "text/plain", "unknown runtime API path"),
        };
        if let Some(sender) = results.lock().await.remove(*id) {
            let _ = sender.send(outcome);
            return http::response(202, "application/json", r#"{"status":"OK"}"#);
        }
        return http::response(400, "application/json", r#"{"errorType":"InvalidRequestID"}"#);
    }
    http::response(404, "text/plain", "unknown runtime API path")
}

/// A running `bootstrap`.
struct Warm {
    child: Child,
    api: RuntimeApi,
    stream: String,
    lines: Arc<std::sync::Mutex<Vec<(i64, String)>>>,
    started: Instant,
    initialised: bool,
    code: PathBuf,
}

impl Drop for Warm {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.api.server.abort();
    }
}

#[derive(Default)]
struct Function {
    code: std::sync::Mutex<Option<PathBuf>>,
    warm: Mutex<Option<Warm>>,
}

/// Runs the functions of the local AWS.
pub struct Executor {
    root: PathBuf,
    endpoint: String,
    backend: String,
    sts: Forwarder,
    accounts: Arc<Accounts>,
    logs: std::sync::Mutex<HashMap<(String, String), aws_sdk_cloudwatchlogs::Client>>,
    functions: std::sync::Mutex<HashMap<(String, String, String), Arc<Function>>>,
    counter: AtomicU64,
}

fn key(account: &str, region: &str, name: &str) -> (String, String, String) {
    (account.to_owned(), region.to_owned(), name.to_owned())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

impl Executor {
    /// `root`: where code is unpacked; `endpoint`: the local AWS endpoint given to functions;
    /// `backend`: where the logs are written and the functions' credentials obtained;
    /// `accounts`: learns the functions' keys.
    pub fn new(root: PathBuf, endpoint: String, backend: String, accounts: Arc<Accounts>) -> Self {
        Executor {
            root,
            endpoint,
            sts: Forwarder::new(&backend),
            backend,
            accounts,
            logs: Default::default(),
            functions: Default::default(),
            counter: AtomicU64::new(0),
        }
    }

    /// The backend's CloudWatch Logs client of an account and region.
    fn logs(&self, account: &str, region: &str) -> aws_sdk_cloudwatchlogs::Client {
        let mut clients = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry((account.to_owned(), region.to_owned()))
            .or_insert_with(|| {
                let sdk = crate::sdk_config(&self.backend, region);
                let config = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk)
                    .interceptor(accounts::AccountHeader::new(account))
                    .build();
                aws_sdk_cloudwatchlogs::Client::from_conf(config)
            })
            .clone()
    }

    fn function(&self, account: &str, region: &str, name: &str) -> Arc<Function> {
        let mut functions = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        functions.entry(key(account, region, name)).or_default().clone()
    }

    /// Keeps the code of a created or updated function; the next invocation starts a new
    /// process with it.
    pub async fn store_code(&self, account: &str, region: &str, name: &str, zip: &[u8]) -> Result<(), String> {
        let id = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join(accounts::path_component(account))
            .join(accounts::path_component(region))
            .join(accounts::path_component(name))
            .join(format!("code-{id}"));
        let bytes = zip.to_vec();
        let target = dir.clone();
        tokio::task::spawn_blocking(move || unpack(&bytes, &target))
            .await
            .map_err(|e| format!("unpacking the code of {name}: {e}"))??;
        let function = self.function(account, region, name);
        let old = function.code.lock().unwrap_or_else(|e| e.into_inner()).replace(dir);
        *function.warm.lock().await = None;
        if let Some(old) = old {
            let _ = tokio::fs::remove_dir_all(old).await;
        }
        info!("stored the code of function {name} ({account}, {region})");
        Ok(())
    }

    /// Forgets every function: stops their processes, removes their code (moto was reset).
    pub async fn reset(&self) {
        let all: Vec<Arc<Function>> =
            self.functions.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, f)| f).collect();
        for function in all {
            *function.warm.lock().await = None;
            let code = function.code.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(code) = code {
                let _ = tokio::fs::remove_dir_all(code).await;
            }
        }
    }

    pub async fn forget(&self, account: &str, region: &str, name: &str) {
        let removed = self.functions.lock().unwrap_or_else(|e| e.into_inner()).remove(&key(account, region, name));
        if let Some(function) = removed {
            *function.warm.lock().await = None;
            let code = function.code.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(code) = code {
                let _ = tokio::fs::remove_dir_all(code).await;
            }
        }
    }

    /// Runs one invocation to its end (response, error, crash or timeout).
    pub async fn invoke(&self, config: &FunctionConfig, payload: Bytes) -> Result<Invocation, String> {
        if !config.runtime.starts_with("provided") {
            return Err(format!(
                "runtime {} is not supported by the local executor: only provided.al2023 and provided.al2 zips run here",
                config.runtime
            ));
        }
        let function = self.function(&config.account, &config.region, &config.name);
        let code = function.code.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
            format!("function {} has no code here: create or update it through the local AWS with a zip", config.name)
        })?;
        let bootstrap = code.join("bootstrap");
        let machine = host_machine_check(&bootstrap).await?;
        if machine != config.architecture {
            return Err(format!(
                "function {} is configured as {} but its bootstrap is built for {machine}",
                config.name, config.architecture
            ));
        }
        let mut warm = function.warm.lock().await;
        let exited = match warm.as_mut() {
            Some(w) => w.code != code || w.child.try_wait().map(|s| s.is_some()).unwrap_or(true),
            None => true,
        };
        if exited {
            *warm = Some(self.spawn(config, &code).await?);
        }
        let Some(process) = warm.as_mut() else { return Err("no process".into()) };
        let request_id = request_id(self.counter.fetch_add(1, Ordering::Relaxed));
        let (sender, receiver) = oneshot::channel();
        process.api.results.lock().await.insert(request_id.clone(), sender);
        // One clock for both: the deadline the function reads (`Lambda-Runtime-Deadline-Ms`, its
        // context's `deadline`) is the instant it is stopped at, the invocation's start plus the
        // function's timeout, as on Lambda.
        let start_ms = now_ms();
        let started = Instant::now();
        let deadline_ms = (start_ms as u128) + config.timeout.as_millis();
        let deadline = tokio::time::Instant::from_std(started + config.timeout);
        let cold = !process.initialised;
        let pending = Pending { request_id: request_id.clone(), payload, deadline_ms, arn: config.arn.clone() };
        if process.api.next.send(pending).await.is_err() {
            *warm = None;
            return Err("the function's runtime API closed".into());
        }
        let init_error = process.api.init_error.clone();
        let outcome = tokio::select! {
            outcome = receiver => outcome.ok(),
            _ = tokio::time::sleep_until(deadline) => None,
            _ = process.child.wait() => None,
            error = async {
                loop {
                    if let Some(error) = init_error.lock().await.take() { return error; }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } => Some(error),
        };
        let duration = started.elapsed();
        let init_ms = cold.then(|| started.duration_since(process.started).as_secs_f64() * 1000.0);
        let max_memory_mb = max_rss_mb(process.child.id());
        // Let the readers catch the last lines the process wrote before answering.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut lines: Vec<(i64, String)> =
            std::mem::take(&mut *process.lines.lock().unwrap_or_else(|e| e.into_inner()));
        let stream = process.stream.clone();
        let outcome = match outcome {
            Some(outcome) => {
                process.initialised = true;
                outcome
            }
            None => {
                let timed_out = duration >= config.timeout;
                let message = if timed_out {
                    format!("Task timed out after {:.2} seconds", config.timeout.as_secs_f64())
                } else {
                    "Runtime exited without providing a reason".to_owned()
                };
                lines.push((now_ms(), format!("{} {request_id} {message}", time_text(now_ms()))));
                *warm = None;
                let error_type = if timed_out { "Sandbox.Timedout" } else { "Runtime.ExitError" };
                let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
                Outcome::FunctionError { error_type: error_type.to_owned(), message, body: Bytes::from(body) }
            }
        };
        drop(warm);
        let billed = (duration.as_millis() as u64).max(1);
        let mut report = format!(
            "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {max_memory_mb} MB",
            duration.as_secs_f64() * 1000.0,
            config.memory_mb
        );
        if let Some(init) = init_ms {
            report.push_str(&format!("\tInit Duration: {init:.2} ms"));
        }
        let mut events = vec![(start_ms, format!("START RequestId: {request_id} Version: $LATEST"))];
        events.extend(lines);
        events.push((now_ms(), format!("END RequestId: {request_id}")));
        events.push((now_ms(), report));
        let log = events.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
        self.ship(config, &stream, events).await;
        Ok(Invocation {
            request_id,
            outcome,
            duration_ms: duration.as_secs_f64() * 1000.0,
            max_memory_mb,
            init_ms,
            log,
        })
    }

    /// Credentials of the function's execution role, in the function's account (a role ARN
    /// naming another account is taken by its name in the function's account).
    async fn credentials(&self, config: &FunctionConfig) -> Result<accounts::Assumed, String> {
        let role = match accounts::account_of_arn(&config.role) {
            Some(account) if account == config.account => config.role.clone(),
            _ => {
                let name = config.role.rsplit_once(":role/").map(|(_, n)| n).unwrap_or("lambda-execution-role");
                format!("arn:aws:iam::{}:role/{name}", config.account)
            }
        };
        let session: String = config.name.chars().take(64).collect();
        accounts::assume_role(&self.sts, &self.accounts, &config.account, &config.region, &role, &session)
            .await
            .map_err(|e| format!("credentials for function {}: {e}", config.name))
    }

    async fn spawn(&self, config: &FunctionConfig, code: &Path) -> Result<Warm, String> {
        let credentials = self.credentials(config).await?;
        let api = RuntimeApi::start().await.map_err(|e| format!("starting a runtime API: {e}"))?;
        let date = aws_smithy_types::DateTime::from_millis(now_ms())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        let stream = format!(
            "{}/[$LATEST]{:016x}{:016x}",
            date.get(..10).unwrap_or("1970-01-01").replace('-', "/"),
            now_ms(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let group = format!("/aws/lambda/{}", config.name);
        let mut command = Command::new(code.join("bootstrap"));
        command
            .current_dir(code)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("LAMBDA_TASK_ROOT", code)
            .env("LAMBDA_RUNTIME_DIR", code)
            .env("_HANDLER", &config.handler)
            .env("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", config.runtime))
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", config.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", &group)
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &config.region)
            .env("AWS_DEFAULT_REGION", &config.region)
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
            .env("AWS_SESSION_TOKEN", &credentials.session_token)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .envs(config.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| format!("starting the bootstrap of {}: {e}", config.name))?;
        let lines: Arc<std::sync::Mutex<Vec<(i64, String)>>> = Arc::default();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, lines.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(stderr, lines.clone()));
        }
        let logs = self.logs(&config.account, &config.region);
        let _ = logs.create_log_group().log_group_name(&group).send().await;
        if let Err(err) = logs.create_log_stream().log_group_name(&group).log_stream_name(&stream).send().await {
            warn!("creating log stream {stream}: {}", aws_smithy_types::error::display::DisplayErrorContext(err));
        }
        info!("started a process for function {}", config.name);
        Ok(Warm { child, api, stream, lines, started: Instant::now(), initialised: false, code: code.to_path_buf() })
    }

    async fn ship(&self, config: &FunctionConfig, stream: &str, mut events: Vec<(i64, String)>) {
        let name = &config.name;
        events.sort_by_key(|(t, _)| *t);
        let events: Vec<_> = events
            .into_iter()
            .filter_map(|(t, m)| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder().timestamp(t).message(m).build().ok()
            })
            .collect();
        let group = format!("/aws/lambda/{name}");
        let sent = self
            .logs(&config.account, &config.region)
            .put_log_events()
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await;
        if let Err(err) = sent {
            warn!("writing the logs of {name}: {}", aws_smithy_types::error::display::DisplayErrorContext(err));
        }
    }
}

async fn read_lines<R: tokio::io::AsyncRead + Unpin>(reader: R, lines: Arc<std::sync::Mutex<Vec<(i64, String)>>>) {
    let mut reader = BufReader::new(reader).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        lines.lock().unwrap_or_else(|e| e.into_inner()).push((now_ms(), line));
    }
}

fn request_id(n: u64) -> String {
    let t = now_ms() as u64;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        t as u32,
        (n >> 16) as u16,
        n as u16 & 0xfff,
        (t >> 32) as u16 & 0xfff,
        n
    )
}

fn time_text(ms: i64) -> String {
    aws_smithy_types::DateTime::from_millis(ms).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
}

/// Peak resident memory of a process in MB (Linux `VmHWM`), 0 when unknown.
fn max_rss_mb(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb.div_ceil(1024))
        .unwrap_or(0)
}

/// The architecture of `bootstrap`, refused when this host cannot run it.
async fn host_machine_check(bootstrap: &Path) -> Result<String, String> {
    let header = tokio::fs::read(bootstrap).await.map_err(|e| format!("reading {}: {e}", bootstrap.display()))?;
    let host = if cfg!(target_arch = "x86_64") { "x86_64" } else { "arm64" };
    if header.starts_with(b"#!") {
        // A script (e.g. starting a language runtime's interface client) runs on any host.
        return Ok(host.to_owned());
    }
    let machine = match header.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]])) {
        Some(0x3e) if header.starts_with(b"\x7fELF") => "x86_64",
        Some(0xb7) if header.starts_with(b"\x7fELF") => "arm64",
        _ => return Err("bootstrap is not a Linux x86_64 or arm64 executable, nor a script".into()),
    };
    if machine != host {
        return Err(format!(
            "this {host} host cannot run an {machine} bootstrap: build the {host} zip for the local AWS (scripts/package {host})"
        ));
    }
    Ok(machine.to_owned())
}

fn unpack(zip: &[u8], dir: &Path) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| format!("the code is not a zip: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    archive.extract(dir).map_err(|e| format!("unpacking the code: {e}"))?;
    let bootstrap = dir.join("bootstrap");
    if !bootstrap.is_file() {
        return Err("the zip has no `bootstrap` at its root".into());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod bootstrap: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bootstrap_for_another_architecture_is_refused_with_the_fix() {
        let dir = std::env::temp_dir().join(format!("localaws-arch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bootstrap");
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        elf.resize(18, 0);
        let (other, name) = if cfg!(target_arch = "x86_64") { (0xb7u16, "arm64") } else { (0x3eu16, "x86_64") };
        elf.extend_from_slice(&other.to_le_bytes());
        elf.resize(64, 0);
        std::fs::write(&path, &elf).unwrap();
        let err = host_machine_check(&path).await.unwrap_err();
        assert!(err.contains(&format!("cannot run an {name} bootstrap")) && err.contains("scripts/package"), "{err}");
        std::fs::write(&path, b"#!/bin/sh\nexec python3 -m awslambdaric app.handler\n").unwrap();
        assert!(host_machine_check(&path).await.is_ok());
        std::fs::write(&path, b"MZ").unwrap();
        assert!(host_machine_check(&path).await.unwrap_err().contains("not a Linux"));
    }
}
