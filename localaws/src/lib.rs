//! The lab's local AWS: a moto server (the backend) behind a front that fills exactly the gaps
//! the lab needs — Lambda execution of `provided` zips without Docker, Config evaluation of
//! custom rules driven by security-group changes, the evaluation and compliance APIs, and the
//! default security group's self-referencing rule. Requests the front does not handle reach
//! moto unchanged.
//!
//! This module starts moto and the front, and the front only routes: each service's requests go
//! to its module under `api/` (what the front answers), which keeps its state in the service's
//! own module here — [`lambda`] the executor and [`function_states`], [`config`] the
//! evaluations and event shapes, [`ec2`] EC2's answers, [`events`] and [`eventbridge`] the
//! CloudTrail-shaped events and EventBridge's answers, [`s3`] the buckets, [`accounts`] the
//! account of a request as moto tells it, [`faults`] the injected faults. [`http`] is the server
//! and forwarding plumbing. Everything the front does on behalf of a request happens in that
//! request's account.

pub mod accounts;
mod api;
pub mod behaviours;
pub mod config;
pub mod ec2;
pub mod ec2_quotas;
pub mod eventbridge;
pub mod events;
pub mod faults;
pub mod function_states;
pub mod http;
pub mod lambda;
pub mod moto;
pub mod s3;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tracing::info;

use crate::accounts::{AccountHeader, Accounts};
use crate::api::config::{worker, Trigger};
use crate::api::lambda::{lambda_operation, lambda_segments};
use crate::api::s3::s3_operation;
use crate::behaviours::Behaviours;
use crate::config::Evaluations;
use crate::faults::{Decision, FaultSpec, Faults, Protocol};
use crate::http::{Forwarder, Request, Response};
use crate::lambda::Executor;

pub use crate::api::lambda::function_name;

/// The moto version the project's scripts install and the front is tested with.
pub const MOTO_VERSION: &str = "5.2.1";

/// How to start the local AWS.
#[derive(Debug, Clone)]
pub struct Options {
    /// The front's port (0: any free port).
    pub port: u16,
    /// The `moto_server` program.
    pub moto: String,
    /// Where function code is unpacked and moto's output is written.
    pub data_dir: PathBuf,
    /// The AWS behaviours the front reproduces on top of moto ([`behaviours`]).
    pub behaviours: Behaviours,
}

/// A running local AWS; dropping it stops moto.
pub struct LocalAws {
    pub endpoint: String,
    pub backend: String,
    front: Arc<Front>,
    moto: tokio::process::Child,
    server: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl LocalAws {
    /// Resolves when an admin `POST /_sg-lab/shutdown` arrives.
    pub async fn shutdown_requested(&self) {
        self.front.shutdown.notified().await;
    }

    /// Calls per operation (`service:Operation`) seen by the front.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.front.calls).clone()
    }

    /// Injects faults into client requests from now on (`None`: no more faults).
    pub fn set_faults(&self, spec: Option<FaultSpec>) {
        lock(&self.front.faults).set(spec);
    }

    /// The fault spec in force and the faults injected under it: `{"spec", "injected", "total"}`.
    pub fn faults(&self) -> Value {
        lock(&self.front.faults).report()
    }

    /// Reproduces these AWS behaviours from now on.
    pub fn set_behaviours(&self, behaviours: Behaviours) {
        *lock(&self.front.behaviours) = behaviours;
    }

    /// EC2 requests answered `RequestLimitExceeded` so far ([`ec2_quotas`]).
    pub fn ec2_throttled(&self) -> u64 {
        self.front.ec2_quotas.throttled()
    }

    /// The AWS behaviours in force.
    pub fn behaviours(&self) -> Behaviours {
        self.front.behaviours()
    }

    /// Every evaluation the functions reported, oldest first.
    pub fn evaluations(&self) -> Vec<config::Stored> {
        self.front.evaluations.history()
    }

    /// Waits until no client request is being carried out and no evaluation, EventBridge
    /// delivery or asynchronous invocation is queued or running, at most `timeout`.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.front.busy.load(std::sync::atomic::Ordering::SeqCst) == 0
                && self.front.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        self.server.abort();
        self.worker.abort();
        let _ = self.moto.start_kill();
    }
}

#[derive(Clone)]
struct Backend {
    ec2: aws_sdk_ec2::Client,
    config: aws_sdk_config::Client,
    lambda: aws_sdk_lambda::Client,
}

struct Front {
    forwarder: Forwarder,
    backend: String,
    executor: Executor,
    accounts: Arc<Accounts>,
    evaluations: Evaluations,
    triggers: mpsc::UnboundedSender<Trigger>,
    busy: std::sync::atomic::AtomicI64,
    /// Client requests being carried out.
    in_flight: std::sync::atomic::AtomicI64,
    calls: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<Faults>,
    behaviours: Mutex<Behaviours>,
    /// S3 as AWS has it: bucket regions, held names, late deliveries ([`s3`]).
    buckets: s3::Buckets,
    /// EventBridge entries counted for partial failures ([`eventbridge`]).
    entry_counts: eventbridge::EntryCounts,
    /// Functions Pending or being updated ([`function_states`]).
    function_states: function_states::FunctionStates,
    /// (account, region) whose default groups have their self-referencing rule.
    fixed_regions: Mutex<HashSet<(String, String)>>,
    /// The backend's clients per (account, region).
    clients: Mutex<HashMap<(String, String), Backend>>,
    /// EC2's answers as AWS gives them: read lag, what the change calls did ([`ec2`]).
    ec2_answers: ec2::Ec2Answers,
    /// EC2's request-rate limits ([`ec2_quotas`]).
    ec2_quotas: ec2_quotas::Ec2Quotas,
    shutdown: Notify,
}

/// Counts one piece of work in one of the front's counters while it lives.
struct Busy {
    front: Arc<Front>,
    counter: fn(&Front) -> &std::sync::atomic::AtomicI64,
}

impl Busy {
    fn new(front: Arc<Front>, counter: fn(&Front) -> &std::sync::atomic::AtomicI64) -> Self {
        counter(&front).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Busy { front, counter }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        (self.counter)(&self.front).fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
            "local", "local", None, None, "localaws",
        )))
        .build()
}

/// Starts moto and the front.
pub async fn start(options: Options) -> Result<LocalAws, String> {
    std::fs::create_dir_all(&options.data_dir).map_err(|e| format!("creating {}: {e}", options.data_dir.display()))?;
    let (_, moto_addr) = http::bind(0).await.map_err(|e| format!("finding a free port for moto: {e}"))?;
    let moto_port = moto_addr.port();
    let log =
        std::fs::File::create(options.data_dir.join("moto.log")).map_err(|e| format!("creating moto.log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let moto = moto::command(&options.moto, &["-H", "127.0.0.1", "-p", &moto_port.to_string()])
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        // It would put every request in one account, whatever the front tells apart.
        .env_remove("MOTO_ACCOUNT_ID")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!("cannot start `{}` ({e}): run scripts/setup, which installs moto {MOTO_VERSION}", options.moto)
        })?;
    let backend = format!("http://127.0.0.1:{moto_port}");
    let forwarder = Forwarder::new(&backend);
    let ready = wait_for(&forwarder, Duration::from_secs(60)).await;
    if !ready {
        return Err(format!(
            "moto did not answer on {backend} within 60 s; see {}",
            options.data_dir.join("moto.log").display()
        ));
    }
    // moto's server writes what it patched before it serves (moto/server.py).
    let moto_log = std::fs::read_to_string(options.data_dir.join("moto.log")).unwrap_or_default();
    let ec2_answers = ec2::Ec2Answers::new(moto_log.contains(ec2::MOTO_ANSWERS_CHANGES));
    let (listener, addr) =
        http::bind(options.port).await.map_err(|e| format!("binding 127.0.0.1:{}: {e}", options.port))?;
    let endpoint = format!("http://127.0.0.1:{}", addr.port());
    let (triggers, receiver) = mpsc::unbounded_channel();
    let accounts = Arc::new(Accounts::default());
    let front = Arc::new(Front {
        forwarder,
        backend: backend.clone(),
        executor: Executor::new(
            options.data_dir.join("functions"),
            endpoint.clone(),
            backend.clone(),
            accounts.clone(),
        ),
        accounts,
        evaluations: Evaluations::default(),
        triggers,
        busy: Default::default(),
        in_flight: Default::default(),
        calls: Default::default(),
        faults: Default::default(),
        behaviours: Mutex::new(options.behaviours.clone()),
        buckets: Default::default(),
        entry_counts: Default::default(),
        function_states: Default::default(),
        fixed_regions: Default::default(),
        clients: Default::default(),
        ec2_answers,
        ec2_quotas: Default::default(),
        shutdown: Notify::new(),
    });
    let handler = front.clone();
    let server = tokio::spawn(http::serve(listener, move |request| {
        let front = handler.clone();
        async move { front.handle(request).await }
    }));
    let worker = tokio::spawn(worker(front.clone(), receiver));
    info!("local AWS on {endpoint} (backend {backend})");
    Ok(LocalAws { endpoint, backend, front, moto, server, worker })
}

async fn wait_for(forwarder: &Forwarder, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let probe = Request {
            method: hyper::Method::GET,
            uri: hyper::Uri::from_static("/moto-api/data.json"),
            headers: Default::default(),
            body: Bytes::new(),
        };
        if forwarder.forward(&probe).await.status() == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Front {
    /// The AWS behaviours in force (a copy: they may change between requests).
    fn behaviours(&self) -> Behaviours {
        lock(&self.behaviours).clone()
    }

    fn count(&self, operation: String) {
        *lock(&self.calls).entry(operation).or_default() += 1;
    }

    /// The backend's clients acting in `account` (every request names it).
    fn backend(&self, account: &str, region: &str) -> Backend {
        let mut clients = lock(&self.clients);
        clients
            .entry((account.to_owned(), region.to_owned()))
            .or_insert_with(|| {
                let sdk = sdk_config(&self.backend, region);
                let header = AccountHeader::new(account);
                Backend {
                    ec2: aws_sdk_ec2::Client::from_conf(
                        aws_sdk_ec2::config::Builder::from(&sdk).interceptor(header.clone()).build(),
                    ),
                    config: aws_sdk_config::Client::from_conf(
                        aws_sdk_config::config::Builder::from(&sdk).interceptor(header.clone()).build(),
                    ),
                    lambda: aws_sdk_lambda::Client::from_conf(
                        aws_sdk_lambda::config::Builder::from(&sdk).interceptor(header).build(),
                    ),
                }
            })
            .clone()
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Response {
        let path = request.path().to_owned();
        if let Some(admin) = path.strip_prefix("/_sg-lab/") {
            return self.admin(admin, &request).await;
        }
        if path.starts_with("/moto-api/") {
            let answer = self.forwarder.forward(&request).await;
            if request.method == hyper::Method::POST && path == "/moto-api/reset" && answer.status() == 200 {
                self.reset().await;
            }
            return answer;
        }
        let (service, operation) = operation_of(&request);
        self.count(format!("{service}:{operation}"));
        let decision = lock(&self.faults).decide(&service, &operation);
        match decision {
            Decision::Pass => self.carry_out(service, operation, request).await,
            Decision::Fail { kind, second } => {
                info!("fault injected: {service}:{operation} answers {kind:?}");
                faults::answer(Protocol::of(&service, &request), kind, second)
            }
            Decision::Delay(delay) => {
                let what = format!("{service}:{operation}");
                let answer = self.carry_out(service, operation, request).await;
                info!("fault injected: the answer of {what} is held back {delay:?}");
                tokio::time::sleep(delay).await;
                answer
            }
            Decision::ThenFail { second } => {
                let protocol = Protocol::of(&service, &request);
                let what = format!("{service}:{operation}");
                let answer = self.carry_out(service, operation, request).await;
                info!("fault injected: {what} was carried out ({}), answered with a server error", answer.status());
                faults::answer(protocol, faults::FaultKind::ThenServerError, second)
            }
        }
    }

    /// Carries a client request out to its end in a task of its own, as AWS completes a request
    /// it received whether or not the client still listens: a client killed mid-call never
    /// leaves half an operation behind (a bucket created, its tags not yet put). `settle` waits
    /// for these.
    async fn carry_out(self: &Arc<Self>, service: String, operation: String, request: Request) -> Response {
        let guard = Busy::new(self.clone(), |front| &front.in_flight);
        let front = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            front.dispatch(&service, &operation, &request).await
        });
        task.await.unwrap_or_else(|err| http::response(500, "text/plain", format!("the local AWS failed: {err}")))
    }

    async fn dispatch(self: &Arc<Self>, service: &str, operation: &str, request: &Request) -> Response {
        if s3::Buckets::concerns(service, request) {
            let region = request.region().unwrap_or_else(|| "us-east-1".to_owned());
            let account = self.accounts.of(request);
            let behaviours = self.behaviours();
            let inner = self.route(service, operation, request);
            let buckets = &self.buckets;
            return buckets
                .around(&behaviours, &self.forwarder, service, operation, &account, &region, request, inner)
                .await;
        }
        self.route(service, operation, request).await
    }

    async fn route(self: &Arc<Self>, service: &str, operation: &str, request: &Request) -> Response {
        let region = request.region().unwrap_or_else(|| "us-east-1".to_owned());
        let account = self.accounts.of(request);
        if let Some(target) = request.header("x-amz-target") {
            if target.starts_with("StarlingDoveService.") {
                return self.config(operation, &account, &region, request).await;
            }
            let nth = self.behaviours().eventbridge_failed_entry_nth;
            if target.starts_with("AWSEvents.") && nth > 0 {
                let counts = &self.entry_counts;
                return eventbridge::partial(&self.forwarder, counts, &account, &region, operation, request, nth).await;
            }
            return self.pass(&account, operation, request).await;
        }
        if request.path().starts_with("/2015-03-31/functions") {
            return self.lambda(operation, &account, &region, request).await;
        }
        match service {
            "ec2" if request.form().iter().any(|(k, _)| k == "Action") => {
                self.ec2(operation, &account, &region, request).await
            }
            "s3" if operation == "CreateBucket" => self.create_bucket(request).await,
            _ => self.pass(&account, operation, request).await,
        }
    }
}

/// The service and operation of a client request, as the call counts and the faults name them.
fn operation_of(request: &Request) -> (String, String) {
    let service = request.service().unwrap_or_default();
    if let Some(target) = request.header("x-amz-target") {
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        let service = if prefix == "StarlingDoveService" { "config".to_owned() } else { service };
        return (service, operation.to_owned());
    }
    if request.path().starts_with("/2015-03-31/functions") {
        return ("lambda".to_owned(), lambda_operation(&request.method, &lambda_segments(request.path())).to_owned());
    }
    if service == "s3" {
        return (service, s3_operation(request));
    }
    match request.form().into_iter().find(|(k, _)| k == "Action") {
        Some((_, action)) => (service, action),
        None => (service, request.method.to_string()),
    }
}
