//! The lab's local AWS: a moto server (the backend) behind a front that fills exactly the gaps
//! the lab needs — Lambda execution of `provided` zips without Docker, Config evaluation of
//! custom rules driven by security-group changes, the evaluation and compliance APIs, and the
//! default security group's self-referencing rule. Requests the front does not handle reach
//! moto unchanged.
//!
//! [`http`] is the server and forwarding plumbing, [`lambda`] the executor, [`config`] the
//! evaluation state and event shapes, [`accounts`] tells a request's account as moto does;
//! this module routes requests and runs the evaluation worker. Everything the front does on
//! behalf of a request happens in that request's account.

pub mod accounts;
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
pub mod s3;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_ec2::types::{Filter, IpPermission, UserIdGroupPair};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tracing::{info, warn};

use crate::accounts::{AccountHeader, Accounts};
use crate::behaviours::Behaviours;
use crate::config::{log_error, Evaluations};
use crate::faults::{Decision, FaultSpec, Faults, Protocol};
use crate::http::{Forwarder, Request, Response};
use crate::lambda::{Executor, FunctionConfig, Outcome};

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

enum Trigger {
    GroupsChanged { account: String, region: String, groups: Vec<String> },
    EvaluateRules { account: String, region: String, rules: Vec<String> },
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

/// Security-group operations that change what Config records.
const GROUP_CHANGES: [&str; 11] = [
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "CreateTags",
    "DeleteTags",
];

/// Starts moto and the front.
pub async fn start(options: Options) -> Result<LocalAws, String> {
    std::fs::create_dir_all(&options.data_dir).map_err(|e| format!("creating {}: {e}", options.data_dir.display()))?;
    let (_, moto_addr) = http::bind(0).await.map_err(|e| format!("finding a free port for moto: {e}"))?;
    let moto_port = moto_addr.port();
    let log =
        std::fs::File::create(options.data_dir.join("moto.log")).map_err(|e| format!("creating moto.log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let moto = tokio::process::Command::new(&options.moto)
        .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
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
        ec2_answers: Default::default(),
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

    /// Forwards a request unchanged, learning the access keys STS and IAM hand out.
    async fn pass(&self, account: &str, operation: &str, request: &Request) -> Response {
        let answer = self.forwarder.forward(request).await;
        let teaches = ["AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "CreateAccessKey"];
        if !answer.status().is_success() || !teaches.contains(&operation) {
            return answer;
        }
        let (parts, body) = answer.into_parts();
        let body = http_body_util::BodyExt::collect(body).await.map(|c| c.to_bytes()).unwrap_or_default();
        if let Some(key) = self.accounts.observe(operation, account, &body) {
            info!("access key {key} acts in account {}", self.accounts.account_of_key(&key).unwrap_or_default());
        }
        hyper::Response::from_parts(parts, http_body_util::Full::new(body))
    }

    fn trigger(&self, trigger: Trigger) {
        self.busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.triggers.send(trigger).is_err() {
            self.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
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

    /// CreateBucket with tags (`CreateBucketConfiguration/Tags`), which moto ignores: the tags
    /// are put before the answer, so the bucket is never seen untagged, as on AWS.
    async fn create_bucket(&self, request: &Request) -> Response {
        let answer = self.forwarder.forward(request).await;
        let body = String::from_utf8_lossy(&request.body);
        let tags = body.split("<Tags>").nth(1).and_then(|s| s.split("</Tags>").next());
        let (true, Some(tags)) = (answer.status().is_success(), tags) else { return answer };
        let bucket = request.path().trim_end_matches('/');
        let mut headers = hyper::HeaderMap::new();
        if let Some(auth) = request.headers.get(hyper::header::AUTHORIZATION) {
            headers.insert(hyper::header::AUTHORIZATION, auth.clone());
        }
        let Ok(uri) = format!("{bucket}?tagging").parse::<hyper::Uri>() else { return answer };
        let tagging = Request {
            method: hyper::Method::PUT,
            uri,
            headers: headers.clone(),
            body: Bytes::from(format!("<Tagging><TagSet>{tags}</TagSet></Tagging>")),
        };
        let tagged = self.forwarder.forward(&tagging).await;
        if tagged.status().is_success() {
            return answer;
        }
        // On AWS a bucket with bad tags is not created.
        if let Ok(uri) = bucket.parse::<hyper::Uri>() {
            let delete = Request { method: hyper::Method::DELETE, uri, headers, body: Bytes::new() };
            self.forwarder.forward(&delete).await;
        }
        tagged
    }

    /// After moto's reset: forget the evaluations, the functions' code and processes, and which
    /// default groups were given their self-referencing rule.
    async fn reset(&self) {
        self.evaluations.clear();
        lock(&self.fixed_regions).clear();
        self.buckets.reset();
        self.entry_counts.clear();
        self.function_states.clear();
        self.ec2_answers.reset();
        self.ec2_quotas.reset();
        self.executor.reset().await;
        info!("reset: moto's state and the front's");
    }

    async fn admin(&self, path: &str, request: &Request) -> Response {
        match (request.method.as_str(), path) {
            ("GET", "health") => {
                http::json(200, &json!({"status": "ok", "backend": self.backend, "motoVersion": MOTO_VERSION}))
            }
            ("GET", "calls") => http::json(200, &json!(lock(&self.calls).clone())),
            ("DELETE", "calls") => {
                lock(&self.calls).clear();
                http::json(200, &json!({}))
            }
            ("GET", "faults") => http::json(200, &lock(&self.faults).report()),
            ("POST", "faults") => match FaultSpec::parse(&String::from_utf8_lossy(&request.body)) {
                Ok(spec) => {
                    info!("faults: {}", serde_json::to_string(&spec).unwrap_or_default());
                    let mut faults = lock(&self.faults);
                    faults.set(Some(spec));
                    http::json(200, &faults.report())
                }
                Err(message) => http::json(400, &json!({"error": message})),
            },
            ("DELETE", "faults") => {
                let mut faults = lock(&self.faults);
                let report = faults.report();
                faults.set(None);
                http::json(200, &report)
            }
            ("GET", "behaviours") => http::json(200, &json!(self.behaviours())),
            ("POST", "behaviours") => match Behaviours::parse(&String::from_utf8_lossy(&request.body)) {
                Ok(behaviours) => {
                    info!("AWS behaviours: {}", behaviours.describe().join("; "));
                    *lock(&self.behaviours) = behaviours.clone();
                    http::json(200, &json!(behaviours))
                }
                Err(message) => http::json(400, &json!({"error": message})),
            },
            ("GET", "evaluations") => http::json(200, &json!(self.evaluations.history())),
            ("POST", "shutdown") => {
                self.shutdown.notify_waiters();
                http::json(200, &json!({"status": "stopping"}))
            }
            _ => http::response(
                404,
                "text/plain",
                "unknown admin path: health, calls, faults, behaviours, evaluations, shutdown",
            ),
        }
    }

    async fn config(self: &Arc<Self>, operation: &str, account: &str, region: &str, request: &Request) -> Response {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        match operation {
            "StartConfigRulesEvaluation" => {
                let rules: Vec<String> = body["ConfigRuleNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let names: Vec<&str> = rules.iter().map(String::as_str).collect();
                if let Some(refused) = self.evaluations.in_use(account, region, &names) {
                    return refused;
                }
                let backend = self.backend(account, region);
                for rule in &rules {
                    let found = backend.config.describe_config_rules().config_rule_names(rule).send().await;
                    if found.is_err() {
                        return http::json_error(400, "NoSuchConfigRuleException", &format!("The ConfigRule '{rule}' provided in the request is invalid. Please check the configRule name."));
                    }
                }
                let interval = Behaviours::window(self.behaviours().evaluation_interval_ms);
                if let Some(refused) = self.evaluations.start_evaluation(account, region, &rules, interval) {
                    return refused;
                }
                self.trigger(Trigger::EvaluateRules { account: account.to_owned(), region: region.to_owned(), rules });
                http::json(200, &json!({}))
            }
            "PutConfigRule" => {
                let name = body["ConfigRule"]["ConfigRuleName"].as_str().unwrap_or_default();
                if let Some(refused) = self.evaluations.in_use(account, region, &[name]) {
                    return refused;
                }
                let answer = self.forwarder.forward(request).await;
                if answer.status() == 200 {
                    if let Some(rule) = body["ConfigRule"]["ConfigRuleName"].as_str() {
                        self.evaluations.activated(account, region, rule);
                        // Config evaluates a new or changed rule at once: it counts as started.
                        self.evaluations.start_evaluation(account, region, &[rule.to_owned()], None);
                        self.trigger(Trigger::EvaluateRules {
                            account: account.to_owned(),
                            region: region.to_owned(),
                            rules: vec![rule.to_owned()],
                        });
                    }
                }
                answer
            }
            "DeleteConfigRule" => {
                let window = Behaviours::window(self.behaviours().rule_deleting_ms);
                self.evaluations.delete_rule(&self.forwarder, account, region, request, window).await
            }
            "DescribeConfigRules" => self.evaluations.describe_rules(&self.forwarder, account, region, request).await,
            _ => match self.evaluations.handle(operation, account, region, request, &self.behaviours()) {
                Some(answer) => answer,
                None => self.forwarder.forward(request).await,
            },
        }
    }

    async fn lambda(self: &Arc<Self>, operation: &str, account: &str, region: &str, request: &Request) -> Response {
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
    async fn lambda_call(
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

    async fn function_config(&self, account: &str, region: &str, name: &str) -> Result<FunctionConfig, Response> {
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

    async fn invoke_api(self: &Arc<Self>, account: &str, region: &str, name: String, request: &Request) -> Response {
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

    async fn ec2(self: &Arc<Self>, action: &str, account: &str, region: &str, request: &Request) -> Response {
        let behaviours = self.behaviours();
        if behaviours.ec2_quotas {
            let percent = behaviours.ec2_quota_percent;
            if let Some(throttled) = self.ec2_quotas.admit(percent, account, region, action, &request.form()) {
                return throttled;
            }
        }
        self.fix_default_groups(account, region).await;
        let lag = Behaviours::window(behaviours.ec2_read_lag_ms);
        let answer = self.ec2_answers.carry_out(&self.forwarder, action, account, region, request, lag).await;
        if GROUP_CHANGES.contains(&action) {
            // Buffer the answer: its XML feeds the CloudTrail event.
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
            let text = String::from_utf8_lossy(&body).to_string();
            let front = self.clone();
            let (account_owned, region_owned) = (account.to_owned(), region.to_owned());
            let (action_owned, form) = (action.to_owned(), request.form());
            let guard = Busy::new(self.clone(), |front| &front.busy);
            tokio::spawn(async move {
                let _guard = guard;
                // Delivered once reads show the change, as EC2's read lag passes before it.
                ec2::after_read_lag(lag).await;
                let (account, region) = (&account_owned, &region_owned);
                front.deliver_api_call(account, region, &action_owned, &form, status.as_u16(), &text).await
            });
            let mut rebuilt = hyper::Response::new(http_body_util::Full::new(body));
            *rebuilt.status_mut() = status;
            *rebuilt.headers_mut() = headers;
            return self.after_ec2(action, account, region, request, rebuilt).await;
        }
        self.after_ec2(action, account, region, request, answer).await
    }

    async fn after_ec2(
        self: &Arc<Self>,
        action: &str,
        account: &str,
        region: &str,
        request: &Request,
        answer: Response,
    ) -> Response {
        if answer.status() != 200 {
            return answer;
        }
        if action == "CreateVpc" {
            lock(&self.fixed_regions).remove(&(account.to_owned(), region.to_owned()));
        }
        if GROUP_CHANGES.contains(&action) {
            let form = request.form();
            let mut groups: Vec<String> = form
                .iter()
                .filter(|(k, v)| (k == "GroupId" || k.starts_with("ResourceId.")) && v.starts_with("sg-"))
                .map(|(_, v)| v.clone())
                .collect();
            if action == "CreateSecurityGroup" {
                let body = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&body).to_string();
                if let Some(id) = text.split("<groupId>").nth(1).and_then(|s| s.split('<').next()) {
                    groups.push(id.to_owned());
                }
                if !groups.is_empty() {
                    let (account, region) = (account.to_owned(), region.to_owned());
                    self.trigger(Trigger::GroupsChanged { account, region, groups });
                }
                return http::response(200, "text/xml", body);
            }
            if groups.is_empty() {
                if let Some((_, name)) = form.iter().find(|(k, _)| k == "GroupName") {
                    let ec2 = self.backend(account, region).ec2;
                    let found = ec2.describe_security_groups().group_names(name).send().await;
                    if let Ok(found) = found {
                        groups.extend(found.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)));
                    }
                }
            }
            if !groups.is_empty() {
                let trigger = Trigger::GroupsChanged { account: account.to_owned(), region: region.to_owned(), groups };
                // Config records the change once reads show it: after EC2's read lag.
                match Behaviours::window(self.behaviours().ec2_read_lag_ms) {
                    None => self.trigger(trigger),
                    Some(lag) => {
                        let (front, guard) = (self.clone(), Busy::new(self.clone(), |front| &front.busy));
                        tokio::spawn(async move {
                            let _guard = guard;
                            ec2::after_read_lag(Some(lag)).await;
                            front.trigger(trigger);
                        });
                    }
                }
            }
        }
        answer
    }

    /// Delivers the CloudTrail event of an EC2 call made in `account` to every enabled
    /// EventBridge rule of that account's default bus whose pattern matches, invoking its Lambda
    /// targets asynchronously.
    async fn deliver_api_call(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        action: &str,
        form: &[(String, String)],
        status: u16,
        body: &str,
    ) {
        let tag =
            |name: &str| body.split(&format!("<{name}>")).nth(1).and_then(|s| s.split('<').next()).map(str::to_owned);
        let mut response = json!(null);
        let mut request_parameters = events::request_parameters(form);
        if status == 200 {
            response = match tag("groupId") {
                Some(id) if action == "CreateSecurityGroup" => json!({"_return": true, "groupId": id}),
                _ => json!({"_return": true}),
            };
        }
        let time = aws_smithy_types::DateTime::from_secs_f64(config::now())
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        let id = format!("{:016x}", (config::now() * 1e6) as u64);
        let mut event =
            events::cloudtrail_event(account, region, action, request_parameters.take(), response, &time, &id);
        if status != 200 {
            event["detail"]["errorCode"] = json!(tag("Code").unwrap_or_else(|| "Client.Error".into()));
            event["detail"]["errorMessage"] = json!(tag("Message").unwrap_or_default());
        }
        let rules = self.events_call(account, region, "ListRules", json!({"EventBusName": "default"})).await;
        for rule in rules["Rules"].as_array().into_iter().flatten() {
            let enabled = rule["State"] == "ENABLED";
            let pattern = rule["EventPattern"].as_str().and_then(|p| serde_json::from_str::<Value>(p).ok());
            if !enabled || !pattern.is_some_and(|p| events::matches(&p, &event)) {
                continue;
            }
            let rule_arn = rule["Arn"].as_str().unwrap_or_default().to_owned();
            let targets = self.events_call(account, region, "ListTargetsByRule", json!({"Rule": rule["Name"]})).await;
            for target in targets["Targets"].as_array().into_iter().flatten() {
                let Some(arn) = target["Arn"].as_str().filter(|a| a.contains(":lambda:")) else { continue };
                let function = function_name(arn);
                let home = accounts::account_of_arn(arn).unwrap_or_else(|| account.to_owned());
                if !self.allows(&home, region, &function, "events.amazonaws.com", Some(&rule_arn), account).await {
                    warn!(
                        "EventBridge rule {rule_arn} may not invoke {function}: no permission for events.amazonaws.com"
                    );
                    continue;
                }
                let Ok(config) = self.function_config(&home, region, &function).await else { continue };
                let payload = target["Input"]
                    .as_str()
                    .map(|i| Bytes::from(i.to_owned()))
                    .unwrap_or_else(|| Bytes::from(event.to_string()));
                log_error("EventBridge delivery", self.executor.invoke(&config, payload).await);
            }
        }
    }

    /// A JSON call to the backend's EventBridge in `account` (moto takes the region from the scope).
    async fn events_call(&self, account: &str, region: &str, operation: &str, body: Value) -> Value {
        let mut headers = hyper::HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=local/20260101/{region}/events/aws4_request, SignedHeaders=host, Signature=0"
        );
        for (name, value) in [
            ("x-amz-target", format!("AWSEvents.{operation}")),
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("authorization", auth),
            (accounts::ACCOUNT_HEADER, account.to_owned()),
        ] {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let request = Request {
            method: hyper::Method::POST,
            uri: hyper::Uri::from_static("/"),
            headers,
            body: Bytes::from(body.to_string()),
        };
        let answer = self.forwarder.forward(&request).await;
        let bytes = http_body_util::BodyExt::collect(answer).await.map(|c| c.to_bytes()).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// Whether the resource policy of the function (of `account`) lets `service` invoke it on
    /// behalf of `source_account` (from `source_arn`).
    async fn allows(
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

    /// Gives every default group of the account's region AWS's self-referencing ingress rule.
    async fn fix_default_groups(&self, account: &str, region: &str) {
        let key = (account.to_owned(), region.to_owned());
        if !lock(&self.fixed_regions).insert(key.clone()) {
            return;
        }
        let ec2 = self.backend(account, region).ec2;
        let Some(groups) = log_error(
            "reading the default security groups",
            ec2.describe_security_groups()
                .filters(Filter::builder().name("group-name").values("default").build())
                .send()
                .await,
        ) else {
            lock(&self.fixed_regions).remove(&key);
            return;
        };
        for group in groups.security_groups() {
            let Some(id) = group.group_id() else { continue };
            let has_self =
                group.ip_permissions().iter().any(|p| p.user_id_group_pairs().iter().any(|u| u.group_id() == Some(id)));
            if !has_self {
                let permission = IpPermission::builder()
                    .ip_protocol("-1")
                    .user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
                    .build();
                log_error(
                    "adding the default group's self-referencing rule",
                    ec2.authorize_security_group_ingress().group_id(id).ip_permissions(permission).send().await,
                );
            }
        }
    }

    /// Evaluates what a trigger calls for, invoking each rule's function in turn.
    async fn evaluate(&self, trigger: Trigger) {
        let (account, region, groups, only) = match trigger {
            Trigger::GroupsChanged { account, region, groups } => (account, region, Some(groups), None),
            Trigger::EvaluateRules { account, region, rules } => (account, region, None, Some(rules)),
        };
        let backend = self.backend(&account, &region);
        // Config evaluates only what a running recorder records.
        let Some(recorders) =
            log_error("reading recorders", backend.config.describe_configuration_recorders().send().await)
        else {
            return;
        };
        let Some(status) =
            log_error("reading recorder status", backend.config.describe_configuration_recorder_status().send().await)
        else {
            return;
        };
        let recorder = recorders.configuration_recorders().iter().find(|r| {
            let records = r.recording_group().is_none_or(|g| {
                g.all_supported() || g.resource_types().iter().any(|t| t.as_str() == config::SECURITY_GROUP)
            });
            let running = status.configuration_recorders_status().iter().any(|s| s.name() == r.name() && s.recording());
            records && running
        });
        let Some(recorder) = recorder else {
            info!("no running recorder records security groups in {account} {region}: nothing evaluated");
            return;
        };
        let role = recorder.role_arn().unwrap_or_default().to_owned();
        let Some(rules) = log_error("reading rules", backend.config.describe_config_rules().send().await) else {
            return;
        };
        let rules: Vec<_> = rules
            .config_rules()
            .iter()
            .filter(|r| {
                only.as_ref().is_none_or(|names| names.iter().any(|n| Some(n.as_str()) == r.config_rule_name()))
            })
            .cloned()
            .collect();
        for rule in rules {
            if only.is_some() && config::periodic(&rule) {
                let notification = config::scheduled_notification(&account);
                self.invoke_rule(&account, &region, &rule, &notification, &role).await;
            }
            if !config::change_triggered(&rule) {
                continue;
            }
            let ids = match &groups {
                Some(ids) => ids.clone(),
                None => {
                    let all = backend.ec2.describe_security_groups().send().await;
                    let Some(all) = log_error("listing security groups", all) else { continue };
                    all.security_groups().iter().filter_map(|g| g.group_id().map(str::to_owned)).collect()
                }
            };
            for id in ids {
                let group = match backend.ec2.describe_security_groups().group_ids(&id).send().await {
                    Ok(out) => out.security_groups().first().cloned(),
                    Err(_) => None,
                };
                let item = config::configuration_item(&account, &region, &id, group.as_ref(), config::now());
                self.invoke_rule(&account, &region, &rule, &config::change_notification(item), &role).await;
            }
        }
    }

    /// Invokes the function of a rule of `account` (the function lives in the account its ARN
    /// names, else in the rule's).
    async fn invoke_rule(
        &self,
        account: &str,
        region: &str,
        rule: &aws_sdk_config::types::ConfigRule,
        invoking: &Value,
        role: &str,
    ) {
        let rule_name = rule.config_rule_name().unwrap_or_default().to_owned();
        let source = rule.source().and_then(|s| s.source_identifier());
        let Some(function) = source.map(function_name) else { return };
        let home = source.and_then(accounts::account_of_arn).unwrap_or_else(|| account.to_owned());
        let allowed = self.allows(&home, region, &function, "config.amazonaws.com", None, account).await;
        if !allowed {
            let message = format!(
                "AWS Config could not invoke function {function}: its resource policy does not allow config.amazonaws.com (add it with lambda add-permission)"
            );
            warn!("{message}");
            let error = Some(("InsufficientPermissionsException".into(), message));
            self.evaluations.invoked(account, region, &rule_name, error);
            return;
        }
        let config = match self.function_config(&home, region, &function).await {
            Ok(config) => config,
            Err(_) => {
                let message = format!("function {function} of rule {rule_name} does not exist");
                self.evaluations.invoked(
                    account,
                    region,
                    &rule_name,
                    Some(("ResourceNotFoundException".into(), message)),
                );
                return;
            }
        };
        let token = self.evaluations.token(account, region, &rule_name);
        let event = config::rule_event(account, rule, invoking, &token, role);
        match self.executor.invoke(&config, Bytes::from(event.to_string())).await {
            Ok(invocation) => match invocation.outcome {
                Outcome::Response(_) => self.evaluations.invoked(account, region, &rule_name, None),
                Outcome::FunctionError { error_type, message, .. } => {
                    warn!("rule {rule_name}: function {function} failed: {error_type}: {message}");
                    self.evaluations.invoked(account, region, &rule_name, Some((error_type, message)));
                }
            },
            Err(message) => {
                warn!("rule {rule_name}: {message}");
                self.evaluations.invoked(account, region, &rule_name, Some(("LocalExecutorError".into(), message)));
            }
        }
    }
}

async fn worker(front: Arc<Front>, mut receiver: mpsc::UnboundedReceiver<Trigger>) {
    while let Some(trigger) = receiver.recv().await {
        front.evaluate(trigger).await;
        front.busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
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

/// The decoded segments of a Lambda API path (`2015-03-31`, `functions`, NAME, …).
fn lambda_segments(path: &str) -> Vec<String> {
    path.trim_matches('/').split('/').map(http::percent_decode).collect()
}

fn lambda_operation(method: &hyper::Method, segments: &[String]) -> &'static str {
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

/// The S3 operation of a path-style request: the SDK's `x-id` when it sends one, else from the
/// method, the path and the sub-resource.
fn s3_operation(request: &Request) -> String {
    let query = http::form_decode(request.uri.query().unwrap_or_default());
    if let Some((_, id)) = query.iter().find(|(k, _)| k == "x-id") {
        return id.clone();
    }
    let has = |key: &str| query.iter().any(|(k, _)| k == key);
    let method = request.method.as_str();
    let path = request.path().trim_matches('/');
    if path.is_empty() {
        return if method == "GET" { "ListBuckets".into() } else { method.into() };
    }
    if path.contains('/') {
        let operation = match method {
            "GET" => "GetObject",
            "PUT" => "PutObject",
            "HEAD" => "HeadObject",
            "DELETE" => "DeleteObject",
            other => other,
        };
        return operation.into();
    }
    const SUBRESOURCES: [(&str, &str); 9] = [
        ("tagging", "BucketTagging"),
        ("policy", "BucketPolicy"),
        ("encryption", "BucketEncryption"),
        ("publicAccessBlock", "PublicAccessBlock"),
        ("versioning", "BucketVersioning"),
        ("acl", "BucketAcl"),
        ("location", "BucketLocation"),
        ("lifecycle", "BucketLifecycleConfiguration"),
        ("ownershipControls", "BucketOwnershipControls"),
    ];
    if has("versions") {
        return "ListObjectVersions".into();
    }
    if has("delete") && method == "POST" {
        return "DeleteObjects".into();
    }
    if let Some((_, name)) = SUBRESOURCES.iter().find(|(key, _)| has(key)) {
        let verb = match method {
            "GET" => "Get",
            "PUT" => "Put",
            "DELETE" => "Delete",
            other => other,
        };
        return format!("{verb}{name}");
    }
    let operation = match method {
        "HEAD" => "HeadBucket",
        "PUT" => "CreateBucket",
        "DELETE" => "DeleteBucket",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "ListObjects",
        other => other,
    };
    operation.into()
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
