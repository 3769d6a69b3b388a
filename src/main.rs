//! `longhaul`: one binary for the API, the workers, the scheduler and their
//! tools. This file only wires the CLI; each command lives in its module.

mod bench;
mod chaos;
mod cli;
mod client;
mod config;
mod serve;
mod simulator;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that print for a person or a script keep logs quiet and off stdout.
    let quiet = matches!(
        cli.command,
        Command::Token(_) | Command::Submit(_) | Command::Demo(_) | Command::Bench(_) | Command::Chaos(_)
    );
    if let Err(err) = telemetry::init(quiet) {
        eprintln!("error: {err:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up(args) => serve::up(args).await,
        Command::Api(args) => serve::api(args).await,
        Command::Worker(args) => serve::worker(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Token(args) => client::token(args),
        Command::Submit(args) => client::submit(args).await,
        Command::Demo(args) => client::demo(args).await,
        Command::Bench(args) => bench::run(*args).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::AgencySim(args) => longhaul_agency_sim::run(args).await.map(|()| ExitCode::SUCCESS),
    }
}
