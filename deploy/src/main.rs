//! `deploy`: parses the command line, connects, runs one command, prints its result to stdout
//! (text or JSON) and maps errors to the exit codes listed in the README.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use deploy::cli::{Cli, Command, LabCommand, Output};
use deploy::error::{Error, Result};
use deploy::lab::Lab;
use deploy::up::UpOptions;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.global.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(cli.global.verbose > 0)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("DEPLOY_LOG").unwrap_or_else(|_| EnvFilter::new(format!("warn,deploy={level}"))),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(deploy::error::exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn print<T: std::fmt::Display + serde::Serialize>(output: Output, value: &T) {
    match output {
        Output::Text => print!("{value}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let global = &cli.global;
    let lab = deploy::connect::connect(global).await?;
    eprintln!("account {}, region {}", lab.account, lab.region);
    match cli.command {
        Command::Up { zip, dry_run, use_existing_recorder } => {
            let (report, error) = deploy::up::up(&lab, &UpOptions { zip, dry_run, use_existing_recorder }).await;
            if let Some(err) = error {
                if !report.steps.is_empty() {
                    print(global.output, &report);
                    eprintln!("up stopped; `deploy down` removes what it created");
                }
                return Err(err);
            }
            print(global.output, &report);
        }
        Command::Lab { command: LabCommand::OpenPorts } => {
            print(global.output, &deploy::open_ports::open_ports(&lab).await?);
        }
        Command::Evaluate { wait } => {
            if let Some(compliance) = deploy::evaluate::evaluate(&lab, wait).await? {
                match global.output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&compliance).unwrap_or_default()),
                    Output::Text => {
                        for r in &compliance.results {
                            println!("{} {} {}", r.group_id, r.compliance, r.annotation.as_deref().unwrap_or(""));
                        }
                    }
                }
            }
        }
        Command::Status => print(global.output, &deploy::status::status(&lab).await?),
        Command::Logs { filter, since, follow } => {
            deploy::logs::logs(&lab, filter.as_deref(), since, follow, global.output == Output::Json).await?;
        }
        Command::Down { dry_run } => {
            if !dry_run && !global.yes {
                confirm(&lab)?;
            }
            let report = deploy::up::down(&lab, dry_run).await;
            print(global.output, &report);
            let failed: Vec<String> = report.failed().map(|s| format!("{} {}", s.resource, s.name)).collect();
            if !failed.is_empty() {
                return Err(Error::Failed(format!(
                    "down left resources of the lab behind: {}; run `deploy down` again",
                    failed.join(", ")
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks before destruction, naming the account and region.
fn confirm(lab: &Lab) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Declined(format!(
            "refusing to delete the lab in account {}, region {} without confirmation: stdin is not a terminal; pass --yes",
            lab.account, lab.region
        )));
    }
    eprint!("Delete the lab's resources in account {}, region {}? [y/N] ", lab.account, lab.region);
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| Error::Declined(format!("no answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Declined("not confirmed; nothing was deleted".into()))
    }
}
