//! Shared by the reliability tests (faults, kill and ownership matrices): an in-process local
//! AWS on its own runtime, the real `deploy` binary run against it, and reads of the lab's
//! resources straight from the AWS APIs — what exists (leftovers) and how it is configured
//! (the end state `up` converges to).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use deploy::cli::Cli;
use deploy::lab::Lab;
use localaws::LocalAws;
use serde_json::{json, Value};

pub use testkit::bootstrap_zip;

/// A local AWS on a free port, on a runtime of its own so that a test can block on child
/// processes while the front keeps serving; a lab connected to it; the function zip.
pub struct Local {
    // Dropped first: stops moto while the runtime still runs.
    pub local: LocalAws,
    pub lab: Lab,
    pub zip: PathBuf,
    pub dir: PathBuf,
    pub rt: tokio::runtime::Runtime,
}

impl Local {
    /// With the real function (built by the workspace), which Config runs on every change.
    pub fn start(name: &str) -> Self {
        Self::with_function(name, true)
    }

    /// With a stub for the function's code: a tiny zip that uploads in no time and fails when
    /// run. For tests of the lab's resources, not of what the function does.
    pub fn with_stub(name: &str) -> Self {
        Self::with_function(name, false)
    }

    fn with_function(name: &str, real: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("sg-lab-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let options = localaws::Options {
            port: 0,
            moto: deploy::local::moto_program(),
            data_dir: dir.clone(),
            behaviours: localaws::behaviours::Behaviours::aws_like(),
        };
        let local = rt.block_on(localaws::start(options)).unwrap();
        let lab = rt.block_on(connect(&local.endpoint));
        let zip = if real {
            bootstrap_zip(&dir)
        } else {
            let path = dir.join("stub.zip");
            std::fs::write(&path, testkit::lambda_zip(0x3e, b"stub")).unwrap();
            path
        };
        Local { local, lab, zip, dir, rt }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// Empties the local AWS (moto's state and the front's) and clears the faults.
    pub fn reset(&self) {
        self.local.set_faults(None);
        self.block_on(async {
            assert!(self.local.settle(Duration::from_secs(30)).await, "evaluations still running");
            let status = admin_post(&self.local.endpoint, "/moto-api/reset").await;
            assert_eq!(status, 200, "reset failed");
        });
    }

    /// Runs `deploy ARGS… --local --endpoint-url <this> --region us-west-2 --yes`.
    pub fn deploy(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_deploy"));
        command
            .current_dir(&self.dir)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("SG_LAB_FAULTS")
            .env_remove("DEPLOY_LOG")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .args(["--local", "--endpoint-url", &self.local.endpoint, "--region", "us-west-2", "--yes"]);
        command
    }

    /// `deploy up` with the workspace's function zip; asserts it succeeded.
    pub fn up(&self) -> Value {
        let zip = self.zip.display().to_string();
        let run = self.deploy(&["up", "--zip", &zip, "--output", "json"]);
        assert_eq!(run.code, 0, "up failed:\n{}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// Runs `deploy ARGS…` and SIGKILLs it once `kill_when` says so, given each stderr line
    /// (or, with `None`, polled every 10 ms). Bounded: at most 60 s.
    pub fn run_killed(&self, args: &[&str], mut kill_when: impl FnMut(Option<&str>) -> bool) -> Killed {
        let mut child = self.command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        let outcome = loop {
            assert!(
                Instant::now() < deadline,
                "deploy {args:?} neither finished nor reached the kill point:\n{seen:#?}"
            );
            let trigger = match received.recv_timeout(Duration::from_millis(10)) {
                Ok(line) => {
                    let hit = kill_when(Some(&line));
                    seen.push(line);
                    hit
                }
                Err(mpsc::RecvTimeoutError::Timeout) => kill_when(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => false,
            };
            if trigger {
                let finished = child.try_wait().unwrap();
                let _ = child.kill();
                break match finished {
                    Some(status) => Killed::Finished(status.code().unwrap_or(-1)),
                    None => Killed::Killed,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                break Killed::Finished(status.code().unwrap_or(-1));
            }
        };
        let _ = child.wait();
        let _ = reader.join();
        outcome
    }

    pub fn leftovers(&self) -> Vec<String> {
        self.block_on(leftovers(&self.lab))
    }

    pub fn end_state(&self) -> Value {
        self.block_on(end_state(&self.lab))
    }

    /// Calls per operation the front saw so far.
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.local.calls()
    }
}

/// A minimal HTTP POST to the front (the admin and moto-api paths need no signature).
async fn admin_post(endpoint: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut response)).await;
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub async fn connect(endpoint: &str) -> Lab {
    let cli = Cli::parse_from(["deploy", "--local", "--region", "us-west-2", "--endpoint-url", endpoint, "status"]);
    deploy::connect::connect(&cli.global).await.unwrap()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    Killed,
    /// It was over before the kill point (its exit code).
    Finished(i32),
}

/// The resource kind of a progress line `… done: KIND NAME ACTION`.
pub fn step_done(line: &str) -> Option<&str> {
    line.split("done: ").nth(1).and_then(|rest| rest.split(' ').next())
}

/// Operations that change something, by their name.
pub fn is_mutating(operation: &str) -> bool {
    let op = operation.split(':').nth(1).unwrap_or(operation);
    [
        "Create",
        "Put",
        "Delete",
        "Attach",
        "Detach",
        "Add",
        "Remove",
        "Start",
        "Stop",
        "Update",
        "Tag",
        "Untag",
        "Authorize",
        "Revoke",
    ]
    .iter()
    .any(|verb| op.starts_with(verb))
}

/// Mutating calls between two call counts.
pub fn mutating_between(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(op, n)| is_mutating(op) && **n > before.get(*op).copied().unwrap_or(0))
        .map(|(op, _)| op.clone())
        .collect()
}

/// Whatever of the lab still exists, read from the AWS APIs.
pub async fn leftovers(lab: &Lab) -> Vec<String> {
    let c = &lab.clients;
    let mut left = Vec::new();
    if c.s3.head_bucket().bucket(&lab.names.bucket).send().await.is_ok() {
        left.push(format!("bucket {}", lab.names.bucket));
    }
    for role in [&lab.names.config_role, &lab.names.function_role] {
        if c.iam.get_role().role_name(role).send().await.is_ok() {
            left.push(format!("role {role}"));
        }
    }
    if c.lambda.get_function().function_name(&lab.names.function).send().await.is_ok() {
        left.push(format!("function {}", lab.names.function));
    }
    let rules = c.config.describe_config_rules().send().await.unwrap();
    // A rule Config is deleting (DELETING) goes on its own: not left behind.
    let rules = rules.config_rules().iter().filter(|r| !deploy::rule::is_deleting(r));
    left.extend(rules.map(|r| format!("rule {}", r.config_rule_name().unwrap_or("?"))));
    let recorders = c.config.describe_configuration_recorders().send().await.unwrap();
    left.extend(recorders.configuration_recorders().iter().map(|r| format!("recorder {}", r.name().unwrap_or("?"))));
    let channels = c.config.describe_delivery_channels().send().await.unwrap();
    left.extend(channels.delivery_channels().iter().map(|r| format!("channel {}", r.name().unwrap_or("?"))));
    let groups = c.logs.describe_log_groups().log_group_name_prefix(lab.log_group()).send().await.unwrap();
    left.extend(groups.log_groups().iter().map(|g| format!("log group {}", g.log_group_name().unwrap_or("?"))));
    let trails = c.cloudtrail.describe_trails().send().await.unwrap();
    left.extend(trails.trail_list().iter().map(|t| format!("trail {}", t.name().unwrap_or("?"))));
    let rules = c.events.list_rules().send().await.unwrap();
    left.extend(rules.rules().iter().map(|r| format!("event rule {}", r.name().unwrap_or("?"))));
    left
}

/// The fast path as deployed: the trail, the EventBridge rule with its targets, the events
/// permission (`null` for each part that is absent).
pub async fn fast_path_state(lab: &Lab) -> Value {
    let c = &lab.clients;
    let trail = match c.cloudtrail.get_trail().name(deploy::lab::TRAIL_NAME).send().await {
        Err(_) => Value::Null,
        Ok(out) => {
            let logging = c.cloudtrail.get_trail_status().name(deploy::lab::TRAIL_NAME).send().await.ok();
            let t = out.trail();
            json!({
                "bucket": t.and_then(|t| t.s3_bucket_name()),
                "prefix": t.and_then(|t| t.s3_key_prefix()),
                "logging": logging.and_then(|l| l.is_logging()),
            })
        }
    };
    let rule = match c.events.describe_rule().name(deploy::lab::FAST_PATH_RULE).send().await {
        Err(_) => Value::Null,
        Ok(out) => {
            let targets = c.events.list_targets_by_rule().rule(deploy::lab::FAST_PATH_RULE).send().await.unwrap();
            json!({
                "state": out.state().map(|s| s.as_str().to_owned()),
                "pattern": out.event_pattern().and_then(|p| serde_json::from_str::<Value>(p).ok()),
                "targets": targets.targets().iter().map(|t| format!("{}={}", t.id(), t.arn())).collect::<Vec<_>>(),
            })
        }
    };
    let permission = deploy::function::statement(lab, deploy::lab::EVENTS_PERMISSION_SID).await.unwrap_or(None);
    json!({"trail": trail, "rule": rule, "permission": permission.map(|mut p| { p.as_object_mut().map(|o| o.remove("Resource")); p })})
}

fn policy(text: Option<&str>) -> Value {
    text.and_then(deploy::lab::parse_policy).unwrap_or(Value::Null)
}

/// How every resource of the lab is configured, without ids that change between runs.
pub async fn end_state(lab: &Lab) -> Value {
    let c = &lab.clients;
    let names = &lab.names;
    let bucket = match c.s3.head_bucket().bucket(&names.bucket).send().await {
        Err(_) => Value::Null,
        Ok(_) => {
            let tags = c.s3.get_bucket_tagging().bucket(&names.bucket).send().await.ok();
            let policy_text = c.s3.get_bucket_policy().bucket(&names.bucket).send().await.ok();
            let encryption = c.s3.get_bucket_encryption().bucket(&names.bucket).send().await.ok();
            let block = c.s3.get_public_access_block().bucket(&names.bucket).send().await.ok();
            json!({
                "tags": tags.map(|t| t.tag_set().iter().map(|t| format!("{}={}", t.key(), t.value())).collect::<Vec<_>>()),
                "policy": policy(policy_text.as_ref().and_then(|p| p.policy())),
                "encryption": encryption.map(|e| format!("{:?}", e.server_side_encryption_configuration().map(|c| c.rules().iter().map(|r| r.apply_server_side_encryption_by_default().map(|d| d.sse_algorithm().as_str().to_owned())).collect::<Vec<_>>()))),
                "publicAccessBlock": block.map(|b| format!("{:?}", b.public_access_block_configuration())),
            })
        }
    };
    let mut roles = serde_json::Map::new();
    for name in [&names.config_role, &names.function_role] {
        let state = match c.iam.get_role().role_name(name).send().await {
            Err(_) => Value::Null,
            Ok(out) => {
                let role = out.role();
                let attached = c.iam.list_attached_role_policies().role_name(name).send().await.unwrap();
                let mut attached: Vec<String> =
                    attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect();
                attached.sort();
                let listed = c.iam.list_role_policies().role_name(name).send().await.unwrap();
                let mut inline = serde_json::Map::new();
                for policy_name in listed.policy_names() {
                    let doc = c.iam.get_role_policy().role_name(name).policy_name(policy_name).send().await.unwrap();
                    inline.insert(policy_name.clone(), policy(Some(doc.policy_document())));
                }
                json!({
                    "trust": policy(role.and_then(|r| r.assume_role_policy_document())),
                    "tags": role.map(|r| r.tags().iter().map(|t| format!("{}={}", t.key(), t.value())).collect::<Vec<_>>()),
                    "attached": attached,
                    "inline": inline,
                })
            }
        };
        roles.insert(name.clone(), state);
    }
    let recorders = c.config.describe_configuration_recorders().send().await.unwrap();
    let status = c.config.describe_configuration_recorder_status().send().await.unwrap();
    let recorders: Vec<Value> = recorders
        .configuration_recorders()
        .iter()
        .map(|r| {
            let group = r.recording_group();
            json!({
                "name": r.name(),
                "roleArn": r.role_arn(),
                "allSupported": group.map(|g| g.all_supported()),
                "global": group.map(|g| g.include_global_resource_types()),
                "types": group.map(|g| g.resource_types().iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>()),
                "recording": status.configuration_recorders_status().iter().any(|s| s.name() == r.name() && s.recording()),
            })
        })
        .collect();
    let channels = c.config.describe_delivery_channels().send().await.unwrap();
    let channels: Vec<Value> = channels
        .delivery_channels()
        .iter()
        .map(|ch| json!({"name": ch.name(), "bucket": ch.s3_bucket_name(), "prefix": ch.s3_key_prefix(), "sns": ch.sns_topic_arn()}))
        .collect();
    let function = match c.lambda.get_function().function_name(&names.function).send().await {
        Err(_) => Value::Null,
        Ok(out) => {
            let config = out.configuration();
            let permission = deploy::function::statement(lab, deploy::lab::PERMISSION_SID).await.unwrap();
            json!({
                "runtime": config.and_then(|c| c.runtime()).map(|r| r.as_str().to_owned()),
                "handler": config.and_then(|c| c.handler()),
                "memory": config.and_then(|c| c.memory_size()),
                "timeout": config.and_then(|c| c.timeout()),
                "role": config.and_then(|c| c.role()),
                "description": config.and_then(|c| c.description()),
                "codeSha256": config.and_then(|c| c.code_sha256()),
                "architectures": config.map(|c| c.architectures().iter().map(|a| a.as_str().to_owned()).collect::<Vec<_>>()),
                "environment": config.and_then(|c| c.environment()).and_then(|e| e.variables()).map(|v| json!(v)),
                "tags": out.tags().map(|t| json!(t)),
                "permission": permission.map(|mut p| { p.as_object_mut().map(|o| o.remove("Resource")); p }),
            })
        }
    };
    let rules = c.config.describe_config_rules().send().await.unwrap();
    let mut rule_states = Vec::new();
    for r in rules.config_rules().iter().filter(|r| !deploy::rule::is_deleting(r)) {
        let tags = match r.config_rule_arn() {
            Some(arn) => c.config.list_tags_for_resource().resource_arn(arn).send().await.ok(),
            None => None,
        };
        let source = r.source();
        rule_states.push(json!({
            "name": r.config_rule_name(),
            "description": r.description(),
            "owner": source.map(|s| s.owner().as_str().to_owned()),
            "sourceIdentifier": source.and_then(|s| s.source_identifier()),
            "messageTypes": source.map(|s| { let mut m: Vec<String> = s.source_details().iter().map(|d| format!("{:?}", d.message_type())).collect(); m.sort(); m }),
            "scope": r.scope().map(|s| s.compliance_resource_types().to_vec()),
            "parameters": r.input_parameters().and_then(|p| serde_json::from_str::<Value>(p).ok()),
            "tags": tags.map(|t| t.tags().iter().map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or(""))).collect::<Vec<_>>()),
        }));
    }
    json!({
        "fastPath": fast_path_state(lab).await,
        "bucket": bucket,
        "roles": roles,
        "recorders": recorders,
        "channels": channels,
        "function": function,
        "rules": rule_states,
    })
}

/// Prints a matrix: a header and one row per case, columns padded.
pub fn print_matrix(title: &str, header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r.get(i).map_or(0, String::len)).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join(" | ").trim_end().to_owned()
    };
    println!("\n{title}");
    println!("{}", line(header.to_vec()));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-"));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}
