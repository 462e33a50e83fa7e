//! One upstream MCP server: a supervisor task keeps one session open (a child process over
//! stdio, or streamable HTTP), restarts it with exponential backoff when it ends, and keeps
//! the server's catalogue (tools, resources, prompts) fresh — on
//! `notifications/tools/list_changed` and every `refresh_interval`.
//!
//! All clients of the gateway share this one session: tool calls are independent requests,
//! so multiplexing them on one upstream session keeps upstream state (child processes,
//! HTTP sessions) constant however many clients connect.

use super::catalogue::Catalogue;
use super::config::McpTransport;
use super::plan::Launch;
use arc_swap::ArcSwap;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lived this long was healthy: the next failure starts over at the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Calls in flight on one streamable-HTTP session.
const MAX_CONCURRENT_CALLS: usize = 256;
/// Longest wait for a new session to answer `initialize`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `/admin/health` shows of a server.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub transport: &'static str,
    /// `up` (a session is open), `starting` or `down`.
    pub status: &'static str,
    /// The child's process id (stdio).
    pub pid: Option<u32>,
    /// Sessions opened after the first.
    pub restarts: u64,
    pub tools: usize,
    pub last_error: Option<String>,
}

pub struct Upstream {
    pub name: Arc<str>,
    pub launch: Launch,
    /// The open session's peer, `None` while (re)connecting.
    peer: watch::Sender<Option<Peer<RoleClient>>>,
    pub catalogue: ArcSwap<Catalogue>,
    status: Mutex<ServerStatus>,
    refresh: Arc<Notify>,
    stop: Notify,
    /// Bumped whenever the catalogue changes, so sessions can be told (`list_changed`).
    pub version: Arc<AtomicU64>,
}

impl Upstream {
    pub fn new(name: Arc<str>, launch: Launch, version: Arc<AtomicU64>) -> Arc<Upstream> {
        let status = ServerStatus {
            name: name.to_string(),
            transport: launch.transport().as_str(),
            status: "starting",
            ..Default::default()
        };
        Arc::new(Upstream {
            name,
            launch,
            peer: watch::Sender::new(None),
            catalogue: ArcSwap::from_pointee(Catalogue::default()),
            status: Mutex::new(status),
            refresh: Arc::new(Notify::new()),
            stop: Notify::new(),
            version,
        })
    }

    pub fn status(&self) -> ServerStatus {
        self.lock_status().clone()
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, ServerStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open session, waiting up to `wait` for one while the server (re)starts.
    pub async fn peer(&self, wait: Duration) -> Option<Peer<RoleClient>> {
        let mut rx = self.peer.subscribe();
        let ready = async {
            rx.wait_for(|p| p.as_ref().is_some_and(|p| !p.is_transport_closed()))
                .await
                .ok()
                .and_then(|p| p.clone())
        };
        tokio::time::timeout(wait, ready).await.ok().flatten()
    }

    /// Ends the supervisor (and the session) for good: the server left the config.
    pub fn shut_down(&self) {
        self.stop.notify_one();
    }

    /// Keeps a session open until [`Upstream::shut_down`]. Spawned once per server.
    pub async fn supervise(self: Arc<Self>, refresh_every: Duration) {
        let mut backoff = FIRST_BACKOFF;
        let mut sessions = 0u64;
        loop {
            let started = Instant::now();
            let opened = tokio::select! {
                r = tokio::time::timeout(CONNECT_TIMEOUT, self.connect()) => {
                    r.unwrap_or_else(|_| Err(format!("no answer to initialize within {CONNECT_TIMEOUT:?}")))
                }
                _ = self.stop.notified() => return,
            };
            match opened {
                Ok((service, pid)) => {
                    let restarts = sessions;
                    sessions += 1;
                    tracing::info!(server = %self.name, pid, "MCP server connected");
                    let opened = Opened { pid, restarts };
                    if self.run_session(service, opened, refresh_every).await {
                        return;
                    }
                    if started.elapsed() >= STABLE_AFTER {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Err(e) => {
                    tracing::warn!(server = %self.name, error = %e, "MCP server unavailable");
                    let mut st = self.lock_status();
                    st.status = "down";
                    st.last_error = Some(e);
                }
            }
            // Jitter keeps many gateways from restarting a shared server in lockstep.
            let pause = backoff.mul_f64(0.8 + fastrand::f64() * 0.4);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.stop.notified() => return,
            }
        }
    }

    /// Serves one session until it closes; `true` when told to stop for good.
    async fn run_session(
        &self,
        service: RunningService<RoleClient, Handler>,
        opened: Opened,
        refresh_every: Duration,
    ) -> bool {
        let peer = service.peer().clone();
        {
            let mut st = self.lock_status();
            st.pid = opened.pid;
            st.restarts = opened.restarts;
        }
        self.peer.send_replace(Some(peer.clone()));
        self.refresh_catalogue(&peer).await;
        {
            // `up` only once the catalogue is listed, so a starting gateway serves it whole.
            let mut st = self.lock_status();
            st.status = "up";
            if st
                .last_error
                .as_deref()
                .is_some_and(|e| !e.starts_with("listing"))
            {
                st.last_error = None;
            }
        }
        let cancel = service.cancellation_token();
        let mut waiting = Box::pin(service.waiting());
        let stopped = loop {
            tokio::select! {
                _ = &mut waiting => break false,
                _ = tokio::time::sleep(refresh_every) => self.refresh_catalogue(&peer).await,
                _ = self.refresh.notified() => self.refresh_catalogue(&peer).await,
                _ = self.stop.notified() => {
                    cancel.cancel();
                    let _ = waiting.await;
                    break true;
                }
            }
        };
        self.peer.send_replace(None);
        let mut st = self.lock_status();
        st.status = "down";
        st.pid = None;
        if !stopped {
            st.last_error = Some("session closed (process exited or connection lost)".into());
            tracing::warn!(server = %self.name, "MCP server session closed; restarting");
        }
        stopped
    }

    async fn connect(&self) -> Result<(RunningService<RoleClient, Handler>, Option<u32>), String> {
        let handler = Handler {
            refresh: self.refresh.clone(),
        };
        match &self.launch {
            Launch::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env);
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                let (transport, stderr) = rmcp::transport::TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start `{command}`: {e}"))?;
                let pid = transport.id();
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.name.clone(), stderr));
                }
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("initialize failed: {e}"))?;
                Ok((service, pid))
            }
            Launch::Http {
                transport: McpTransport::Sse,
                url,
                headers,
            } => {
                let headers = headers
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                            http::HeaderValue::from_str(v).ok()?,
                        ))
                    })
                    .collect();
                let transport =
                    super::sse::SseTransport::connect(crate::proxy::mcp_client(), url, headers)
                        .await?;
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("initialize at {url} failed: {e}"))?;
                Ok((service, None))
            }
            Launch::Http { url, headers, .. } => {
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                use rmcp::transport::StreamableHttpClientTransport;
                super::install_crypto_provider();
                let custom = headers
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                            http::HeaderValue::from_str(v).ok()?,
                        ))
                    })
                    .collect();
                // Every client of the gateway shares this session, so it may carry many calls
                // at once (rmcp's default is 16). A session the server expired is
                // re-initialized transparently (rmcp's default, kept).
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom)
                    .max_concurrent_requests(MAX_CONCURRENT_CALLS)
                    .reinit_on_expired_session(true);
                let transport = StreamableHttpClientTransport::from_config(config);
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("initialize at {url} failed: {e}"))?;
                Ok((service, None))
            }
        }
    }

    /// Lists everything the server offers and publishes it; on failure keeps the last list.
    async fn refresh_catalogue(&self, peer: &Peer<RoleClient>) {
        match Catalogue::fetch(&self.name, peer).await {
            Ok(fresh) => {
                let changed = **self.catalogue.load() != fresh;
                self.lock_status().tools = fresh.tools.len();
                if changed {
                    self.catalogue.store(Arc::new(fresh));
                    self.version.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!(server = %self.name, error = %e, "cannot list MCP server tools");
                self.lock_status().last_error = Some(format!("listing tools failed: {e}"));
            }
        }
    }
}

/// A session just opened: its child's pid and how many sessions came before it.
struct Opened {
    pid: Option<u32>,
    restarts: u64,
}

/// The client side of an upstream session: reports catalogue changes, nothing else.
struct Handler {
    refresh: Arc<Notify>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("tollgate", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }
}

/// A child's stderr goes to the gateway's log, so a crashing server says why.
async fn log_stderr(server: Arc<str>, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(server = %server, "{line}");
    }
}
