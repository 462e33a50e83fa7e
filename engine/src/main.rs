//! The `tollgate` command: a thin CLI over the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tollgate::proxy::{load_plan, serve, Gateway};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Self-hosted AI gateway with policies as code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (YAML or JSON). Default: $TOLLGATE_CONFIG, else ./tollgate.yaml.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Parse and compile the config, print a summary; exit 1 with located errors.
    Check {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Run policy test cases against the compiled plan, with no network; exit 1 on failure.
    Test {
        /// Case files, or directories of them.
        #[arg(default_value = tollgate::cli::policy_test::DEFAULT_PATH)]
        paths: Vec<PathBuf>,
    },
    /// Print the decision trace for one request: key, model, guardrails, rules, route, limits.
    Explain {
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The request body (OpenAI chat completions JSON); `-` reads standard input.
        #[arg(long)]
        request: PathBuf,
        /// Virtual key id (no secret); required unless `auth.required: false`.
        #[arg(long)]
        key: Option<String>,
        /// A request header, `-H 'x-tier: premium'`; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Print the trace as JSON.
        #[arg(long)]
        json: bool,
        /// Decide against the usage in this state snapshot file.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("TOLLGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("tollgate.yaml"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config_path(config)),
        Command::Serve { config } => run_server(config_path(config)),
        Command::Test { paths } => tollgate::cli::policy_test::run(&paths),
        Command::Explain {
            config,
            request,
            key,
            headers,
            json,
            state,
        } => tollgate::cli::explain::run(&tollgate::cli::ExplainArgs {
            config: config_path(config),
            request,
            key,
            headers,
            json,
            state,
        }),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let started = Instant::now();
    match load_plan(path) {
        Ok(plan) => {
            for w in unpriced_models(&plan) {
                println!("warning: {w}");
            }
            // Only configs with an MCP gateway mention it, so existing summaries stay as they were.
            let mcp = match plan.mcp.servers.len() {
                0 => String::new(),
                n => format!(", {n} MCP servers"),
            };
            println!(
                "{}: ok — {} providers, {} virtual keys{mcp}; compiled in {:.1} ms",
                path.display(),
                plan.providers.len(),
                plan.keys.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s); config rejected", errors.len());
            ExitCode::FAILURE
        }
    }
}

fn run_server(path: PathBuf) -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                // rmcp logs every session's full server description at info; its warnings
                // are what an operator needs.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gateway = match runtime.block_on(Gateway::open(path)) {
        Ok(gw) => Arc::new(gw),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(gateway)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Models a budget would count as free: listed by a provider that carries a budget (or
/// whose keys do), with no price in the table or the config.
fn unpriced_models(plan: &tollgate::plan::Plan) -> Vec<String> {
    use tollgate::state::LimitKind;
    let any_budget = plan.all_limits.iter().any(|l| l.kind == LimitKind::Budget);
    if !any_budget {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in &plan.providers {
        for model in p.models.exact_names() {
            let priced = plan.prices.price(&p.name, model).is_some()
                || plan.prices.price(p.pricing_name, model).is_some();
            if !priced {
                out.push(format!(
                    "no price for {}/{model}: budgets count it as $0 (add it under `pricing:`)",
                    p.name
                ));
            }
        }
    }
    out
}

/// glibc gives each thread that contends for the heap an arena of its own, up to eight per
/// core, and memory freed into one arena is not reused by another: the request workers, the
/// log writer and the blocking pool each kept megabytes of their own free memory resident.
/// Two arenas (one per core here) cut resident memory under load by 2–4 MB with no CPU cost
/// measured (docs/BENCHMARKS.md). `MALLOC_ARENA_MAX`, when set, still decides.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
