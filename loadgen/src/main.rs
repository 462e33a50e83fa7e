//! `loadgen`: mock LLM providers and an open-loop load generator for Tollgate.
//!
//! Exit codes: 0 success, 1 a `run` threshold was broken, 2 bad flags or setup failure.

mod clock;
mod duration;
mod mock;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Mock LLM providers and an open-loop load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a mock provider (OpenAI, Anthropic and Gemini endpoints) until killed.
    Mock(mock::MockArgs),
    /// Send open-loop load at a fixed rate and report latency percentiles.
    Run(run::RunArgs),
}

fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
}

fn fail_setup(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("loadgen: error: {err}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // clap itself exits with 2 on unknown or malformed flags.
    let cli = Cli::parse();
    match cli.command {
        Command::Mock(args) => {
            let rt = match runtime(args.threads) {
                Ok(rt) => rt,
                Err(e) => return fail_setup(e),
            };
            match rt.block_on(mock::serve(args)) {
                // Exit right away: hung or streaming connections must not delay shutdown.
                Ok(()) => std::process::exit(0),
                Err(e) => fail_setup(format!("{e:#}")),
            }
        }
        Command::Run(args) => match run::main(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => fail_setup(format!("{e:#}")),
        },
    }
}
