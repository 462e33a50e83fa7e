//! `loadgen mock`: a fake LLM provider (OpenAI, Anthropic, Gemini and Bedrock endpoints) with configurable
//! latency, streaming, failures and faults, fast enough never to be the bottleneck of a benchmark.

mod anthropic;
mod bedrock;
mod bedrock_embed;
mod body;
mod faults;
mod gemini;
mod json;
mod openai;
mod outcome;
mod record;
mod reply;
mod request;
mod route;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::clock::PreciseTimer;
use crate::duration::parse_duration;
use faults::Fault;
use outcome::Outcomes;
use record::Recorder;
use reply::Replies;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Openai,
    Anthropic,
    Gemini,
    Bedrock,
}

#[derive(Args, Debug)]
pub struct MockArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Delay before the response headers (time to first byte), e.g. 50ms.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Uniform ± jitter added to --latency.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub jitter: Duration,
    /// Format of /models and of errors on unknown paths. Chat (/chat/completions), Anthropic
    /// (/messages), Gemini (:generateContent, :batchEmbedContents) and Bedrock
    /// (/model/{id}/converse) endpoints are served whatever the format.
    #[arg(long, value_enum, default_value = "openai")]
    pub format: Format,
    /// Probability (0..=1) of answering --fail-status instead of a normal reply.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Fail the first N chat/messages/generate requests with --fail-status, then answer
    /// normally: a deterministic "fails, then recovers" upstream for retry tests.
    #[arg(long, default_value_t = 0)]
    pub fail_first: u64,
    /// Status used by --fail-rate and --fail-first (429 also sends `retry-after: 1`).
    #[arg(long, default_value = "500", value_parser = parse_status_arg)]
    pub fail_status: u16,
    /// Number of content chunks in a streamed reply.
    #[arg(long, default_value_t = 5)]
    pub stream_chunks: usize,
    /// Answer this text to every chat/messages/generate request instead of `mock reply 3 4 …`
    /// (streams cut it into --stream-chunks pieces by characters; token caps are ignored).
    #[arg(long)]
    pub reply: Option<String>,
    /// Delay between stream chunks.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub chunk_delay: Duration,
    /// Keep the last N requests for GET /_mock/requests (0 disables recording).
    #[arg(long, default_value_t = 200)]
    pub record: usize,
    /// Never answer any request (same as --fault hang).
    #[arg(long)]
    pub hang: bool,
    /// Fault applied to every request unless its `x-mock-fault` header overrides it: none | hang |
    /// slow-first-byte[:DURATION] | disconnect-mid-stream | malformed-json | status:NNN.
    #[arg(long, value_parser = parse_fault_arg)]
    pub fault: Option<Fault>,
    /// Delay of the slow-first-byte fault.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub first_byte_delay: Duration,
    /// Provider keys refused with --fail-keys-status (comma-separated; matched against Bearer, x-api-key,
    /// x-goog-api-key and ?key=).
    #[arg(long, value_delimiter = ',')]
    pub fail_keys: Vec<String>,
    /// Status answered to a --fail-keys key: 401 (a revoked key) or e.g. 429 (a key out of quota).
    #[arg(long, default_value = "401", value_parser = parse_status_arg)]
    pub fail_keys_status: u16,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_status_arg(s: &str) -> Result<u16, String> {
    faults::parse_status(s)
}

fn parse_fault_arg(s: &str) -> Result<Fault, String> {
    s.parse()
}

/// Validated settings shared by all connections.
pub struct Config {
    pub format: Format,
    pub latency: Duration,
    pub jitter: Duration,
    pub fail_rate: f64,
    pub fail_status: u16,
    /// Requests still to fail under --fail-first.
    pub fail_first: AtomicU64,
    pub chunk_delay: Duration,
    pub fault: Fault,
    pub first_byte_delay: Duration,
    pub fail_keys: HashSet<String>,
    pub fail_keys_status: u16,
}

pub struct State {
    pub config: Config,
    pub replies: Replies,
    pub recorder: Recorder,
    /// Requests answered completely vs. cancelled by the client (`GET /_mock/stats`).
    pub outcomes: Arc<Outcomes>,
    pub next_id: AtomicU64,
    /// Latency delays: tokio's 1 ms timer would turn `--latency 2ms` into ~3 ms.
    pub timer: PreciseTimer,
}

impl MockArgs {
    fn into_state(self) -> anyhow::Result<State> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            bail!(
                "--fail-rate must be between 0 and 1, got {}",
                self.fail_rate
            );
        }
        if self.stream_chunks == 0 || self.stream_chunks > 100_000 {
            bail!(
                "--stream-chunks must be between 1 and 100000, got {}",
                self.stream_chunks
            );
        }
        let fault = match (self.hang, self.fault) {
            (true, Some(f)) if f != Fault::Hang => bail!("--hang conflicts with --fault {f:?}"),
            (true, _) => Fault::Hang,
            (false, f) => f.unwrap_or(Fault::None),
        };
        let fail_keys = self
            .fail_keys
            .into_iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        Ok(State {
            config: Config {
                format: self.format,
                latency: self.latency,
                jitter: self.jitter,
                fail_rate: self.fail_rate,
                fail_status: self.fail_status,
                fail_first: AtomicU64::new(self.fail_first),
                chunk_delay: self.chunk_delay,
                fault,
                first_byte_delay: self.first_byte_delay,
                fail_keys,
                fail_keys_status: self.fail_keys_status,
            },
            replies: match &self.reply {
                Some(text) => Replies::new(self.stream_chunks).with_fixed(text),
                None => Replies::new(self.stream_chunks),
            },
            recorder: Recorder::new(self.record),
            outcomes: Arc::default(),
            next_id: AtomicU64::new(1),
            timer: PreciseTimer::start().context("starting the timer thread")?,
        })
    }
}

/// Binds, prints `loadgen mock listening on http://ADDR`, serves until SIGINT/SIGTERM.
/// Errors returned here are setup errors (bad flags, address in use).
pub async fn serve(args: MockArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let state = Arc::new(args.into_state()?);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    {
        // Tests parse this exact line to find the port, so it is the only thing on stdout.
        let mut out = std::io::stdout().lock();
        writeln!(out, "loadgen mock listening on http://{local}")?;
        out.flush()?;
    }

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| route::handle(state.clone(), req));
                        // Errors here are clients going away or injected disconnects: not ours.
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(e) => {
                    // Usually EMFILE under heavy load: back off instead of spinning.
                    eprintln!("loadgen mock: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut shutdown => return Ok(()),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
