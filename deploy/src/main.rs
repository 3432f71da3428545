//! `deploy`: parses the command line, connects, runs one command, prints its result to stdout
//! (text or JSON) and maps errors to the exit codes listed in docs/deploy.md.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use deploy::cli::{Cli, Command, Global, LabCommand, LocalCommand, Output};
use deploy::command::{destroys, execute, Context, Done};
use deploy::error::{Error, Result};
use deploy::fanout::Target;
use deploy::progress::Progress;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.global.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        || EnvFilter::try_from_env("DEPLOY_LOG").unwrap_or_else(|_| EnvFilter::new(format!("warn,deploy={level}")));
    let terminal = std::io::stderr().is_terminal();
    let fan_out = deploy::fanout::targets(&cli.global).map(|t| t.is_some()).unwrap_or(false);
    let screen = deploy::progress::init(terminal, fan_out);
    if fan_out {
        // One line per target: its current step.
        tracing_subscriber::registry().with(Progress::new(screen).with_filter(filter())).init();
    } else {
        tracing_subscriber::fmt()
            // Above a wait's spinner, never through it.
            .with_writer(deploy::progress::stderr)
            .with_target(cli.global.verbose > 0)
            .without_time()
            .with_ansi(terminal)
            .with_env_filter(filter())
            .init();
    }
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
    // Nothing is redrawn on stderr while the result prints.
    deploy::progress::finish();
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
    if let Some(targets) = deploy::fanout::targets(global)? {
        return fan_out(global, &cli.command, targets).await;
    }
    let lab = deploy::connect::connect(global).await?;
    // `status` opens its result with this line itself (stdout, and the JSON's fields).
    if !matches!(cli.command, Command::Status) {
        eprintln!("account {}, region {}", lab.account, lab.region);
    }
    if let Command::Logs { filter, since, follow } = &cli.command {
        deploy::logs::logs(&lab, filter.as_deref(), *since, *follow, global.output == Output::Json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if destroys(&cli.command, global) && !global.yes {
        if let Command::Lab { command: LabCommand::Reset { .. } } = &cli.command {
            // Name every resource, and why it counts as the lab's, before asking.
            eprint!("{}", deploy::reset::reset(&lab, true).await);
        }
        confirm(&[(String::new(), lab.account.clone(), lab.region.clone())])?;
    }
    // `lab run` runs `up` too.
    if let Command::Up { dry_run: false, .. } | Command::Lab { command: LabCommand::Run { .. } } = &cli.command {
        if !global.yes {
            let impact = deploy::impact::preview(&lab).await?;
            deploy::impact::confirm(&[(format!("account {}, region {}", lab.account, lab.region), impact)])?;
        }
    }
    let (done, error) = execute(&lab, &cli.command, global, Context::default()).await;
    if let Some(done) = &done {
        print(global.output, done);
    }
    if let (Command::Lab { command: LabCommand::Check { html: Some(path) } }, Some(Done::Check(check))) =
        (&cli.command, &done)
    {
        let row = deploy::check_html::Row {
            student: global.profile.clone().unwrap_or_else(|| lab.account.clone()),
            account: lab.account.clone(),
            region: lab.region.clone(),
            check: Ok((**check).clone()),
        };
        deploy::check_html::write(path, std::slice::from_ref(&row), &check.checked_at)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(err) = error {
        if matches!(cli.command, Command::Up { .. }) && done.is_some() {
            eprintln!("up stopped; `deploy down` removes what it created");
        }
        return Err(err);
    }
    Ok(ExitCode::SUCCESS)
}

/// The command on every target of the target list: a table (or JSON) with one row per target.
async fn fan_out(global: &Global, command: &Command, targets: Vec<Target>) -> Result<ExitCode> {
    if matches!(command, Command::Logs { .. }) {
        return Err(Error::Usage(
            "`logs` reads one target at a time: pass --profile/--region (or AWS_PROFILE) instead of a target list"
                .into(),
        ));
    }
    if matches!(command, Command::Lab { command: LabCommand::Reset { dry_run: false } }) && !global.yes {
        // Name every resource, and why it counts as the lab's, before asking.
        let plan = Command::Lab { command: LabCommand::Reset { dry_run: true } };
        let planned = deploy::fanout::run(global, &plan, targets.clone(), &confirm).await?;
        deploy::progress::finish();
        eprint!("{}", deploy::reset::describe_plan(&planned));
    }
    let run = deploy::fanout::run(global, command, targets, &confirm).await?;
    print(global.output, &run);
    if let Command::Lab { command: LabCommand::Check { html: Some(path) } } = command {
        let rows = deploy::check_html::rows_of_run(&run);
        deploy::check_html::write(path, &rows, &deploy::check_html::checked_at(&rows))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(hint) = deploy::fanout::retry_hint(&run) {
        eprintln!("to run the failed targets again: {hint}");
    }
    Ok(ExitCode::from(run.exit_code()))
}

async fn local(command: &LocalCommand, output: Output) -> Result<ExitCode> {
    match command {
        LocalCommand::Start { port, faults, aws_like } => {
            let endpoint = tokio::task::block_in_place(|| deploy::local::ensure_running(*port))?;
            println!("local AWS running on {endpoint}");
            if let Some(spec) = faults {
                let answer = deploy::local::set_faults(*port, spec)?;
                println!("injecting faults: {}", answer["spec"]);
            }
            if let Some(spec) = aws_like {
                deploy::local::set_behaviours(*port, spec)?;
            }
            if let Some(behaviours) = deploy::local::behaviours(*port) {
                println!("AWS behaviours: {}", deploy::local::describe_behaviours(&behaviours));
            }
            println!("export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-west-2");
        }
        LocalCommand::Status { port } => match deploy::local::health(*port) {
            Some(health) => {
                let calls = deploy::local::calls(*port).unwrap_or_default();
                let faults = deploy::local::faults(*port).unwrap_or_default();
                let behaviours = deploy::local::behaviours(*port);
                match output {
                    Output::Json => {
                        let status = serde_json::json!({
                            "running": true, "health": health, "calls": calls, "faults": faults, "behaviours": behaviours,
                        });
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
                        if let Some(behaviours) = &behaviours {
                            println!("AWS behaviours: {}", deploy::local::describe_behaviours(behaviours));
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
        LocalCommand::Serve { port, faults, aws_like } => {
            deploy::local::serve(*port, faults.as_deref(), aws_like.as_deref()).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks once before destruction, naming every account and region.
fn confirm(targets: &[(String, String, String)]) -> Result<()> {
    let listed: Vec<String> = targets
        .iter()
        .map(|(label, account, region)| match label.as_str() {
            "" => format!("account {account}, region {region}"),
            label => format!("{label}: account {account}, region {region}"),
        })
        .collect();
    if !std::io::stdin().is_terminal() {
        return Err(Error::Declined(format!(
            "refusing to delete the lab in {} without confirmation: stdin is not a terminal; pass --yes",
            listed.join("; ")
        )));
    }
    let prompt = if let [one] = listed.as_slice() {
        format!("Delete the lab's resources in {one}? [y/N] ")
    } else {
        eprintln!("Delete the lab's resources in these {} targets?", listed.len());
        for line in &listed {
            eprintln!("  {line}");
        }
        "[y/N] ".to_owned()
    };
    if deploy::confirm::ask(&prompt)? {
        Ok(())
    } else {
        Err(Error::Declined("not confirmed; nothing was deleted".into()))
    }
}
