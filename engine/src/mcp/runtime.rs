//! The running side of the MCP gateway: one [`Upstream`] per configured server, kept across
//! plan reloads. A reload starts servers that appeared, stops those that left, and restarts
//! those whose launch spec (command, URL, headers) changed.

use super::plan::McpPlan;
use super::upstream::{ServerStatus, Upstream};
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct McpRuntime {
    servers: ArcSwap<Vec<Arc<Upstream>>>,
    /// Serialises reconciliations (a reload racing the start).
    reconcile: Mutex<()>,
    /// Signs session ids when the config sets no `mcp.session_secret`.
    random_secret: [u8; 32],
    /// Bumped on any catalogue change of any server.
    pub version: Arc<AtomicU64>,
}

impl Default for McpRuntime {
    fn default() -> Self {
        let mut random_secret = [0u8; 32];
        random_secret.fill_with(|| fastrand::u8(..));
        McpRuntime {
            servers: ArcSwap::from_pointee(Vec::new()),
            reconcile: Mutex::new(()),
            random_secret,
            version: Arc::default(),
        }
    }
}

impl McpRuntime {
    /// Brings the running servers in line with `plan`. Must run inside the tokio runtime.
    pub fn apply(&self, plan: &McpPlan) {
        let _guard = self.reconcile.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.servers.load_full();
        let mut next = Vec::with_capacity(plan.servers.len());
        for s in &plan.servers {
            match current
                .iter()
                .find(|u| u.name == s.name && u.launch == s.launch)
            {
                Some(running) => next.push(running.clone()),
                None => {
                    let up = Upstream::new(s.name.clone(), s.launch.clone(), self.version.clone());
                    tokio::spawn(up.clone().supervise(plan.refresh_interval));
                    next.push(up);
                }
            }
        }
        for old in current.iter() {
            if !next.iter().any(|n| Arc::ptr_eq(n, old)) {
                old.shut_down();
            }
        }
        self.servers.store(Arc::new(next));
    }

    pub fn servers(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.servers.load_full()
    }

    pub fn server(&self, name: &str) -> Option<Arc<Upstream>> {
        self.servers
            .load()
            .iter()
            .find(|u| &*u.name == name)
            .cloned()
    }

    pub fn secret<'a>(&'a self, plan: &'a McpPlan) -> &'a [u8; 32] {
        plan.session_secret.as_ref().unwrap_or(&self.random_secret)
    }

    pub fn statuses(&self) -> Vec<ServerStatus> {
        self.servers.load().iter().map(|u| u.status()).collect()
    }

    /// Waits until every server has opened its first session or failed once (at most `max`):
    /// lets `serve` print its address when the catalogue is ready.
    pub async fn wait_started(&self, max: Duration) {
        let deadline = tokio::time::Instant::now() + max;
        while tokio::time::Instant::now() < deadline {
            if self.statuses().iter().all(|s| s.status != "starting") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
