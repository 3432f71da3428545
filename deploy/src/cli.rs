//! Command-line interface: global flags (accepted before or after the command) and commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The endpoint `--local` points at: moto's default port on this machine.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:5000";
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

#[derive(Debug, Args)]
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
    /// Use the local AWS on this machine (endpoint http://127.0.0.1:5000, test credentials and
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
    #[arg(long, global = true, value_name = "NAME", help = "Delivery bucket [default: config-bucket-<account-id>]")]
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
}

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
    /// Delete everything `up` created, and nothing else (lab step 6)
    Down {
        /// Show the plan; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Open the default group to tcp 80, 443, 465 and 993 from anywhere (lab step 2)
    OpenPorts,
}
