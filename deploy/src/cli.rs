//! Command-line interface: global flags (accepted before or after the command) and commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lab::FunctionPolicy;

/// The region `--local` uses when none is configured (the lab's).
pub const LOCAL_REGION: &str = "us-west-2";

#[derive(Debug, Parser)]
#[command(name = "deploy", version, about = "Provision, inspect and tear down the security-group monitoring lab")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// AWS region (default: AWS_REGION or the profile's)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS profile (default: AWS_PROFILE or `default`)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (also: AWS_ENDPOINT_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Use the local AWS on this machine (started if needed on port 4599; test credentials and
    /// region us-west-2 unless configured)
    #[arg(long, global = true)]
    pub local: bool,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// More diagnostics on stderr (-v debug, -vv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not ask before deleting
    #[arg(long, global = true)]
    pub yes: bool,
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help = "Delivery bucket [default: config-bucket-<account-id>, or config-bucket-<account-id>-<region> where that name is in another region]"
    )]
    pub bucket_name: Option<String>,
    #[arg(long, global = true, value_name = "NAME", help = "Config role [default: config-role-<region>]")]
    pub config_role_name: Option<String>,
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help = "Function role [default: awsconfig_lambda_ec2_security_group_role]"
    )]
    pub function_role_name: Option<String>,
    #[arg(long, global = true, value_name = "NAME", help = "Function [default: awsconfig_lambda_security_group]")]
    pub function_name: Option<String>,
    #[arg(long, global = true, value_name = "NAME", help = "Config rule [default: EC2_Security_Group]")]
    pub rule_name: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// Many targets at once (a classroom): each profile or account, in each region.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Targets (many accounts and regions at once)")]
pub struct TargetArgs {
    /// Run for each of these profiles
    #[arg(long, global = true, value_name = "A,B,…", value_delimiter = ',', conflicts_with_all = ["profile", "accounts"])]
    pub profiles: Vec<String>,
    /// Run for each account in FILE (one 12-digit id per line, optionally followed by an alias),
    /// by assuming --assume-role in it from the current credentials
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "only_failed")]
    pub accounts: Option<PathBuf>,
    /// The role assumed in each account of --accounts
    #[arg(long, global = true, value_name = "NAME", requires = "accounts", default_value = DEFAULT_ASSUME_ROLE)]
    pub assume_role: String,
    /// Run in each of these regions [default: each target's configured region]
    #[arg(long, global = true, value_name = "R1,R2,…", value_delimiter = ',', conflicts_with = "region")]
    pub regions: Vec<String>,
    /// Targets run at once; targets in the same account always run one after another
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Only the targets that failed in an earlier run, from its `--output json`
    #[arg(long, global = true, value_name = "FILE", conflicts_with_all = ["profiles", "regions"])]
    pub only_failed: Option<PathBuf>,
}

/// The role AWS Organizations creates in every member account.
pub const DEFAULT_ASSUME_ROLE: &str = "OrganizationAccountAccessRole";
/// Enough to overlap the network waits of a class; few enough to stay far from the per-account
/// API limits of the caller's own account (STS) and of each service.
pub const DEFAULT_CONCURRENCY: u16 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update every lab resource (lab steps 1, 3, 4)
    Up {
        /// The function zip [default: target/lambda/x86_64/bootstrap/bootstrap.zip, then arm64]
        #[arg(long, value_name = "PATH")]
        zip: Option<PathBuf>,
        /// Show the plan; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Use the account's existing configuration recorder as it is, never change or delete it
        #[arg(long)]
        use_existing_recorder: bool,
        /// Also revert changes within seconds: CloudTrail → EventBridge → the function
        #[arg(long)]
        fast_path: bool,
        /// The function role's inline policy: the lab's exact one, or one scoped to what the
        /// function calls (its own log group, this account's security groups) [default: the
        /// one deployed, else lab]
        #[arg(long, value_enum)]
        policy: Option<FunctionPolicy>,
    },
    /// The student's exercises
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Re-run the rule now
    Evaluate {
        /// Wait (bounded) for the new evaluation and print it
        #[arg(long)]
        wait: bool,
    },
    /// What the student looks at: recorder, rule, compliance, the default group's inbound rules
    Status,
    /// The function's log events
    Logs {
        /// Only events containing this text, e.g. `revoking`
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// How far back, e.g. 30s, 15m, 2h, 1d
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::logs::parse_duration)]
        since: std::time::Duration,
        /// Keep polling for new events until interrupted
        #[arg(long)]
        follow: bool,
    },
    /// The local AWS: moto behind a front that runs the function and evaluates the rule
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// Delete everything `up` created, and nothing else, and put the security groups back as
    /// `up` recorded them (lab step 6)
    Down {
        /// Show the plan; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Leave the security groups as the lab left them (keep the rule's baseline as a
        /// guardrail) instead of restoring their ingress from before `up`
        #[arg(long)]
        keep_groups: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Open the default group to tcp 80, 443, 465 and 993 from anywhere (lab step 2)
    OpenPorts,
    /// The whole lab: up, open the ports, wait for the revert, show what happened, down
    Run {
        /// The function zip (see `up --zip`)
        #[arg(long, value_name = "PATH")]
        zip: Option<PathBuf>,
        /// Leave the lab deployed at the end
        #[arg(long)]
        keep: bool,
        /// Deploy the event fast path too (see `up --fast-path`)
        #[arg(long)]
        fast_path: bool,
        /// How long to wait for the revert [default: 60s with --local, 20m on AWS]
        #[arg(long, value_name = "DURATION", value_parser = crate::logs::parse_duration)]
        wait: Option<std::time::Duration>,
    },
    /// Check each step of the lab, made in the console or by `up`: done, missing or unknown,
    /// with a hint (exit 0 when every step is done, 1 otherwise)
    Check {
        /// Also write the result as one self-contained HTML page (a grid of students by steps)
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Delete what a student made by hand for the lab, found by the lab's names and shapes;
    /// anything else is reported and kept
    Reset {
        /// Show what would be deleted and why; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Put the function zip in an S3 bucket of the account for the Lambda console, and print
    /// what the student enters
    Prepare {
        /// The function zip (see `up --zip`)
        #[arg(long, value_name = "PATH")]
        zip: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start the local AWS in the background and print how to use it
    Start {
        #[arg(long, default_value_t = crate::local::LOCAL_PORT)]
        port: u16,
        /// Inject faults into client calls, e.g. '{"seed":1,"rate":0.2,"kind":"throttle"}'
        /// (also on a running local AWS; see docs/local-aws.md)
        #[arg(long, value_name = "JSON", env = "SG_LAB_FAULTS")]
        faults: Option<String>,
        /// The AWS behaviours it reproduces on top of moto: `aws` (all, with short windows),
        /// `off` (moto as is), or JSON such as '{"ruleDeletingMs":60000}' (see localaws's
        /// behaviours module); also changes a running local AWS
        #[arg(long, value_name = "aws|off|JSON", env = "SG_LAB_AWS_LIKE")]
        aws_like: Option<String>,
    },
    /// Is it running; calls per operation so far
    Status {
        #[arg(long, default_value_t = crate::local::LOCAL_PORT)]
        port: u16,
    },
    /// Stop it
    Stop {
        #[arg(long, default_value_t = crate::local::LOCAL_PORT)]
        port: u16,
    },
    /// Run it in the foreground (what `start` runs)
    #[command(hide = true)]
    Serve {
        #[arg(long, default_value_t = crate::local::LOCAL_PORT)]
        port: u16,
        #[arg(long, value_name = "JSON", env = "SG_LAB_FAULTS")]
        faults: Option<String>,
        #[arg(long, value_name = "aws|off|JSON", env = "SG_LAB_AWS_LIKE")]
        aws_like: Option<String>,
    },
}
