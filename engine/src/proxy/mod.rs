//! The HTTP side: listeners, routing of paths, forwarding to providers.

mod admin;
mod admit;
mod answer_headers;
mod attempt;
mod body;
mod cache_file;
mod cached;
mod client_format;
mod data_plane;
mod finish;
mod forward;
mod genai;
mod inbound;
mod messages;
mod native;
mod outbound;
mod provider_request;
mod ready;
mod relay;
mod request;
pub(crate) mod respond;
mod responses;
mod server;
mod spans;
mod translated;
mod upstream;
mod view;
mod watch;

// For the criterion benches of the request path and of the whole per-request decision
// (bench/benches/request_path.rs, bench/benches/policy.rs).
pub use admit::{admit, Admission, Target};
pub use relay::EventScanner;
pub use request::{parse_head, RequestHead};
pub use view::ProxyView;

pub(crate) use body::{read_limited, ProxyBody};
pub(crate) use inbound::{action_name, webhook_flags};
pub(crate) use respond::ProxyResponse;

use crate::admission::limits::Ledger;
use crate::cache::ResponseCache;
use crate::compile::{compile, compile_with};
use crate::config::{load_file, ConfigError};
use crate::plan::Plan;
use crate::reliability::health::{Circuit, Health, WindowStats};
use crate::reliability::trackers::HealthRegistry;
use crate::reqlog::RequestLog;
use crate::state::{MemoryStore, RedisStore, Snapshot};
use crate::telemetry::{Metrics, TraceExporter};
use arc_swap::ArcSwap;
use server::Listener;
use smallvec::SmallVec;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
pub(crate) use upstream::mcp_client;
pub use upstream::UpstreamClient;
use upstream::Upstreams;

/// Everything a running gateway shares across requests. The plan is swapped whole on reload.
pub struct Gateway {
    pub plan: ArcSwap<Plan>,
    /// Shared with relayed streams, which count output guardrail actions after the handler returns.
    pub metrics: Arc<Metrics>,
    /// Usage counters: outside the plan, so a reload keeps them.
    pub state: MemoryStore,
    /// Health of each provider and provider key: outlives plans, like usage counters, and is
    /// bound into each plan before it serves.
    health: HealthRegistry,
    /// Set when `state.kind: redis`: counters then live there, shared by replicas.
    redis: Option<RedisStore>,
    /// Pooled upstream clients, one per connect timeout: outlive plans, like health.
    upstreams: Upstreams,
    /// One record per request, written off the response path (`logs:`, read at start).
    pub request_log: RequestLog,
    /// OTLP trace export (`traces:`, read at start); `None` when off.
    pub traces: Option<TraceExporter>,
    /// The response cache (`cache:`, read at start). Present even with `mode: off`, since a
    /// request may turn caching on for itself.
    pub cache: ResponseCache,
    /// `cache.metrics().stores` at the last cache file save: unchanged means nothing to save.
    cache_saved_at: std::sync::atomic::AtomicU64,
    /// Upstream MCP servers: outlive plans; a reload reconciles them with the new config.
    pub mcp: crate::mcp::McpRuntime,
    config_path: PathBuf,
}

/// The circuit of one provider and of each of its keys (by name; never the secret).
pub struct ProviderReport {
    pub name: Arc<str>,
    pub circuit: Circuit,
    pub stats: WindowStats,
    pub keys: Vec<KeyReport>,
}

pub struct KeyReport {
    pub name: Arc<str>,
    pub circuit: Circuit,
    pub stats: WindowStats,
}

/// Reads and compiles a config file into a plan.
pub fn load_plan(path: &Path) -> Result<Plan, Vec<ConfigError>> {
    compile(&load_file(path)?)
}

impl Gateway {
    /// Compiles the config, connects the state store and restores saved usage; nothing is
    /// served yet.
    pub async fn open(config_path: PathBuf) -> Result<Gateway, Vec<String>> {
        let state = MemoryStore::new();
        let health = HealthRegistry::default();
        let loaded = load_file(&config_path).map_err(strings)?;
        let mut plan = compile_with(&loaded, &state).map_err(strings)?;
        // A relative `logs.path` is relative to the config file, like the snapshot file.
        let request_log = RequestLog::open(&loaded.config.logs, &loaded.base_dir)
            .map_err(|e| vec![e.to_string()])?;
        let upstreams = Upstreams::new();
        let traces =
            TraceExporter::start(&loaded.config.traces, upstreams.default_client().clone())
                .map_err(|e| vec![e])?;
        let cache = ResponseCache::from_config(loaded.config.cache.clone(), &loaded.base_dir)
            .map_err(|e| vec![e])?;
        plan.health = health.bind(&plan.providers);
        upstreams.attach(&mut plan);
        if let Some(path) = &plan.snapshot_file {
            match Snapshot::read_file(path) {
                Ok(Some(snapshot)) => {
                    let n = state.restore(&snapshot);
                    tracing::info!(file = %path.display(), counters = n, "usage restored");
                }
                Ok(None) => {}
                // Starting with zero usage would silently lift every budget: refuse instead.
                Err(e) => {
                    return Err(vec![format!(
                        "{e} (move the file away to start from zero usage)"
                    )])
                }
            }
        }
        if let Some(path) = &plan.snapshot_file {
            cache_file::restore(&cache, path);
        }
        let redis = match &plan.redis {
            Some((url, _)) => Some(
                RedisStore::connect(url)
                    .await
                    .map_err(|e| vec![e.to_string()])?,
            ),
            None => None,
        };
        if plan.counts_tokens {
            crate::admission::estimate::warm_up();
        }
        let mcp = crate::mcp::McpRuntime::default();
        mcp.apply(&plan.mcp);
        Ok(Gateway {
            plan: ArcSwap::from_pointee(plan),
            metrics: Arc::default(),
            state,
            health,
            redis,
            upstreams,
            request_log,
            traces,
            cache,
            cache_saved_at: Default::default(),
            mcp,
            config_path,
        })
    }

    /// Providers whose circuit is open for this request (`roll` picks half-open probes).
    pub fn unhealthy(&self, plan: &Plan, roll: f64) -> SmallVec<[usize; 4]> {
        let now = crate::state::unix_now() as u64;
        plan.providers
            .iter()
            .enumerate()
            .filter(|&(i, p)| {
                plan.health
                    .provider(i)
                    .is_some_and(|h| !h.provider.admits(&p.health, now, roll))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The circuit of every provider and provider key, for `/admin/health` and metrics.
    pub fn health_report(&self, plan: &Plan) -> Vec<ProviderReport> {
        let now = crate::state::unix_now() as u64;
        plan.providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let trackers = plan.health.provider(i);
                let circuit =
                    |h: Option<&Health>| h.map_or(Circuit::Closed, |h| h.circuit(&p.health, now));
                let stats = |h: Option<&Health>| h.map_or(WindowStats::default(), |h| h.stats(now));
                let provider = trackers.map(|t| &*t.provider);
                ProviderReport {
                    name: p.name.clone(),
                    circuit: circuit(provider),
                    stats: stats(provider),
                    keys: p
                        .keys
                        .iter()
                        .enumerate()
                        .map(|(k, key)| {
                            let tracker = trackers.and_then(|t| t.key(k));
                            KeyReport {
                                name: key.name.clone(),
                                circuit: circuit(tracker),
                                stats: stats(tracker),
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Where this request's counters live. The failure policy follows the current plan; the
    /// Redis connection is the one opened at start.
    pub fn ledger<'a>(&'a self, plan: &Plan) -> Ledger<'a> {
        match (&self.redis, &plan.redis) {
            (Some(store), Some((_, on_error))) => Ledger::Redis(store, *on_error),
            (Some(store), None) => Ledger::Redis(store, crate::config::OnStateError::Deny),
            (None, _) => Ledger::Memory,
        }
    }

    /// Writes the usage snapshot, if the config names a file.
    pub fn save_state(&self) {
        let plan = self.plan.load();
        let Some(path) = &plan.snapshot_file else {
            return;
        };
        if let Err(e) = self.state.snapshot().write_file(path) {
            tracing::error!(error = %e, "cannot save usage snapshot");
        }
    }

    /// Compiles the config file again and swaps the new plan in; on any error the old plan
    /// keeps serving and every error is returned (and logged).
    pub fn reload(&self) -> Result<(), Vec<ConfigError>> {
        match load_file(&self.config_path).and_then(|l| compile_with(&l, &self.state)) {
            Ok(mut plan) => {
                plan.health = self.health.bind(&plan.providers);
                self.upstreams.attach(&mut plan);
                if plan.counts_tokens {
                    crate::admission::estimate::warm_up();
                }
                let old = self.plan.load();
                if plan.listen != old.listen || plan.admin_listen != old.admin_listen {
                    tracing::warn!("listen addresses changed; they take effect on restart");
                }
                if plan.redis.as_ref().map(|r| &r.0) != old.redis.as_ref().map(|r| &r.0) {
                    tracing::warn!("state store changed; it takes effect on restart");
                }
                self.mcp.apply(&plan.mcp);
                self.plan.store(Arc::new(plan));
                self.metrics.config_reloads_ok.fetch_add(1, Relaxed);
                tracing::info!(config = %self.config_path.display(), "config reloaded");
                Ok(())
            }
            Err(errors) => {
                self.metrics.config_reloads_failed.fetch_add(1, Relaxed);
                for e in &errors {
                    tracing::error!(error = %e, "config reload rejected");
                }
                Err(errors)
            }
        }
    }
}

/// Binds both listeners, prints their addresses, and serves until SIGINT/SIGTERM.
pub async fn serve(gw: Arc<Gateway>) -> anyhow::Result<()> {
    let (listen, admin_listen) = {
        let plan = gw.plan.load();
        (plan.listen, plan.admin_listen)
    };
    // Upstream MCP servers get a moment to list their tools, so the first `tools/list` is whole.
    gw.mcp
        .wait_started(std::time::Duration::from_secs(20))
        .await;
    let data = server::bind(listen, "data plane").await?;
    let admin = server::bind(admin_listen, "admin listener").await?;
    if gw.plan.load().watch_config {
        watch::spawn(gw.clone());
    }
    println!(
        "tollgate data plane listening on http://{}",
        data.local_addr()?
    );
    println!("tollgate admin listening on http://{}", admin.local_addr()?);
    tracing::info!(listen = %data.local_addr()?, admin = %admin.local_addr()?, "tollgate started");
    tokio::spawn(server::accept_loop(gw.clone(), data, Listener::DataPlane));
    tokio::spawn(server::accept_loop(gw.clone(), admin, Listener::Admin));
    tokio::spawn(reload_on_sighup(gw.clone()));
    tokio::spawn(save_state_periodically(gw.clone()));
    tokio::spawn(cache_file::save_periodically(gw.clone()));
    shutdown_signal().await;
    tracing::info!("tollgate stopping");
    gw.save_state();
    gw.save_cache();
    // Records of requests already answered are written before the process exits.
    let g = gw.clone();
    let _ = tokio::task::spawn_blocking(move || g.request_log.shutdown()).await;
    Ok(())
}

async fn save_state_periodically(gw: Arc<Gateway>) {
    loop {
        let every = gw.plan.load().snapshot_interval;
        tokio::time::sleep(every).await;
        let g = gw.clone();
        // File I/O off the request workers.
        let _ = tokio::task::spawn_blocking(move || g.save_state()).await;
    }
}

fn strings(errors: Vec<ConfigError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

async fn reload_on_sighup(gw: Arc<Gateway>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through POST /admin/reload");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = gw.reload();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
