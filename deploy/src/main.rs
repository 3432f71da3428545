//! `deploy`: parses the command line, connects, runs one command, prints its result to stdout
//! (text or JSON) and maps errors to the exit codes listed in the README.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use deploy::cli::{Cli, Command, LabCommand, LocalCommand, Output};
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
    if let Command::Local { command } = &cli.command {
        return local(command, global.output).await;
    }
    let lab = deploy::connect::connect(global).await?;
    eprintln!("account {}, region {}", lab.account, lab.region);
    match cli.command {
        Command::Up { zip, dry_run, use_existing_recorder, fast_path } => {
            let options = UpOptions { zip, dry_run, use_existing_recorder, fast_path };
            let (report, error) = deploy::up::up(&lab, &options).await;
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
        Command::Lab { command: LabCommand::Run { zip, keep, wait, fast_path } } => {
            let local = global.local && global.endpoint_url.is_none();
            if !keep && !global.yes && !local {
                confirm(&lab)?;
            }
            let timeout =
                wait.unwrap_or(if global.local { Duration::from_secs(60) } else { Duration::from_secs(20 * 60) });
            let options = deploy::lab_run::RunOptions {
                zip,
                keep,
                timeout,
                local_port: local.then_some(deploy::local::LOCAL_PORT),
                fast_path,
            };
            let report = deploy::lab_run::run(&lab, &options).await?;
            print(global.output, &report);
            if !report.reverted {
                return Err(Error::Failed(format!("the rule did not revert {} within {timeout:?}", report.group)));
            }
            if report.down.as_ref().is_some_and(|d| d.failed().next().is_some()) {
                return Err(Error::Failed("down left resources of the lab behind; run `deploy down` again".into()));
            }
        }
        Command::Local { .. } => {}
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

async fn local(command: &LocalCommand, output: Output) -> Result<ExitCode> {
    match command {
        LocalCommand::Start { port, faults } => {
            let endpoint = tokio::task::block_in_place(|| deploy::local::ensure_running(*port))?;
            println!("local AWS running on {endpoint}");
            if let Some(spec) = faults {
                let answer = deploy::local::set_faults(*port, spec)?;
                println!("injecting faults: {}", answer["spec"]);
            }
            println!("export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-west-2");
        }
        LocalCommand::Status { port } => match deploy::local::health(*port) {
            Some(health) => {
                let calls = deploy::local::calls(*port).unwrap_or_default();
                let faults = deploy::local::faults(*port).unwrap_or_default();
                match output {
                    Output::Json => {
                        let status =
                            serde_json::json!({"running": true, "health": health, "calls": calls, "faults": faults});
                        println!("{status}")
                    }
                    Output::Text => {
                        println!(
                            "local AWS running on {} (backend {})",
                            deploy::local::endpoint(*port),
                            health["backend"]
                        );
                        for (operation, count) in calls.as_object().into_iter().flatten() {
                            println!("  {count:>6}  {operation}");
                        }
                        if !faults["spec"].is_null() {
                            println!("faults {}: {} injected", faults["spec"], faults["total"]);
                        }
                    }
                }
            }
            None => {
                println!("local AWS not running on port {port}");
                return Ok(ExitCode::from(deploy::error::exit::FAILED));
            }
        },
        LocalCommand::Stop { port } => {
            let stopped = tokio::task::block_in_place(|| deploy::local::stop(*port))?;
            println!("{}", if stopped { "local AWS stopped" } else { "local AWS was not running" });
        }
        LocalCommand::Serve { port, faults } => deploy::local::serve(*port, faults.as_deref()).await?,
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
