//! The whole lab cycle in two regions of one account, with every AWS behaviour the local AWS
//! reproduces switched on (regional buckets, held bucket names, late deliveries, rules that
//! stay DELETING, the StartConfigRulesEvaluation limit, paged compliance, EC2 read lag, Pending
//! functions, EventBridge partial failures): `up`, `lab open-ports`, the revert, `status`,
//! `evaluate`, `evaluate`, `down`, `down`, `up`, `down` — with and without `--fast-path` — and
//! nothing left behind in either region.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use deploy::cli::Cli;
use deploy::lab::Lab;
use localaws::behaviours::Behaviours;
use serde_json::Value;

const REGIONS: [&str; 2] = ["us-west-2", "eu-west-1"];

struct Env {
    local: localaws::LocalAws,
    dir: std::path::PathBuf,
    zip: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

fn env(name: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("sg-lab-cycle-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = localaws::Options {
        port: 0,
        moto: deploy::local::moto_program(),
        data_dir: dir.join("local"),
        behaviours: Behaviours::aws_like(),
    };
    let local = rt.block_on(localaws::start(options)).unwrap();
    let zip = common::bootstrap_zip(&dir);
    Env { local, dir, zip, rt }
}

impl Env {
    /// `deploy ARGS… --regions us-west-2,eu-west-1 --local --endpoint-url … --yes --output json`.
    fn deploy(&self, args: &[&str]) -> Run {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_deploy"))
            .current_dir(&self.dir)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("SG_LAB_FAULTS")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(args)
            .args(["--regions", &REGIONS.join(","), "--local", "--endpoint-url", &self.local.endpoint])
            .args(["--yes", "--output", "json"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn ok(&self, step: &str, args: &[&str]) -> Value {
        let run = self.deploy(args);
        assert_eq!(run.code, 0, "{step}: deploy {args:?} exited {}:\n{}\n{}", run.code, run.stdout, run.stderr);
        run.json()
    }

    fn lab(&self, region: &str) -> Lab {
        let cli = Cli::parse_from([
            "deploy",
            "--local",
            "--region",
            region,
            "--endpoint-url",
            &self.local.endpoint,
            "status",
        ]);
        self.rt.block_on(deploy::connect::connect(&cli.global)).unwrap()
    }

    /// The default group's inbound rules in `region`, compact.
    fn inbound(&self, region: &str) -> Vec<String> {
        let lab = self.lab(region);
        self.rt.block_on(async {
            let groups = lab
                .clients
                .ec2
                .describe_security_groups()
                .filters(aws_sdk_ec2::types::Filter::builder().name("group-name").values("default").build())
                .send()
                .await
                .unwrap();
            let mut rules = Vec::new();
            for group in groups.security_groups() {
                for p in group.ip_permissions() {
                    for range in p.ip_ranges() {
                        rules.push(format!(
                            "{}/{}@{}",
                            p.ip_protocol().unwrap_or("?"),
                            p.from_port().unwrap_or(-1),
                            range.cidr_ip().unwrap_or("?")
                        ));
                    }
                }
            }
            rules.sort();
            rules
        })
    }

    /// Everything of the lab that exists in `region` (buckets: any `config-bucket-…`, wherever).
    fn leftovers(&self, region: &str) -> Vec<String> {
        let lab = self.lab(region);
        self.rt.block_on(async {
            let mut left = common::leftovers(&lab).await;
            left.retain(|l| !l.starts_with("bucket "));
            let buckets = lab.clients.s3.list_buckets().send().await.unwrap();
            for bucket in buckets.buckets() {
                let name = bucket.name().unwrap_or_default();
                if name.starts_with("config-bucket-") || name.starts_with("sg-monitoring-lab") {
                    left.push(format!("bucket {name}"));
                }
            }
            let trails = lab.clients.cloudtrail.describe_trails().send().await.unwrap();
            left.extend(trails.trail_list().iter().map(|t| format!("trail {}", t.name().unwrap_or("?"))));
            let rules = lab.clients.events.list_rules().send().await.unwrap();
            left.extend(rules.rules().iter().map(|r| format!("event rule {}", r.name().unwrap_or("?"))));
            left
        })
    }

    fn wait_for_revert(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        for region in REGIONS {
            loop {
                let rules = self.inbound(region);
                if rules == ["tcp/443@0.0.0.0/0", "tcp/80@0.0.0.0/0"] {
                    break;
                }
                assert!(Instant::now() < deadline, "{region}: the rule did not revert the default group: {rules:?}");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Every target of a fan-out answer succeeded.
fn all_ok(step: &str, answer: &Value) {
    let targets = answer["targets"].as_array().unwrap_or_else(|| panic!("{step}: no targets in {answer:#}"));
    assert_eq!(targets.len(), REGIONS.len(), "{step}: {answer:#}");
    for target in targets {
        assert_eq!(target["outcome"], "ok", "{step}: {target:#}");
    }
}

fn cycle(name: &str, fast_path: bool) {
    let env = env(name);
    let zip = env.zip.display().to_string();
    let mut up = vec!["up", "--zip", zip.as_str()];
    if fast_path {
        up.push("--fast-path");
    }
    all_ok("up", &env.ok("up", &up));
    all_ok("open-ports", &env.ok("open-ports", &["lab", "open-ports"]));
    env.wait_for_revert();
    all_ok("status", &env.ok("status", &["status"]));
    all_ok("evaluate", &env.ok("evaluate", &["evaluate"]));
    all_ok("evaluate again", &env.ok("evaluate again", &["evaluate"]));
    all_ok("down", &env.ok("down", &["down"]));
    all_ok("down again", &env.ok("down again", &["down"]));
    all_ok("up after down", &env.ok("up after down", &up));
    all_ok("down at the end", &env.ok("down at the end", &["down"]));
    env.rt.block_on(async { assert!(env.local.settle(Duration::from_secs(30)).await) });
    for region in REGIONS {
        assert_eq!(env.leftovers(region), Vec::<String>::new(), "{region}: the cycle left resources behind");
    }
}

#[test]
fn the_lab_cycle_in_two_regions_behaves_on_aws_like_behaviours() {
    cycle("plain", false);
}

#[test]
fn the_lab_cycle_with_the_fast_path_in_two_regions() {
    cycle("fast", true);
}
