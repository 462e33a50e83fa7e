//! The HTTP side: listeners, routing of paths, forwarding to providers.

mod admin;
mod body;
mod data_plane;
mod forward;
mod request;
mod respond;
mod server;
mod upstream;

use crate::compile::compile;
use crate::config::{load_file, ConfigError};
use crate::plan::Plan;
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use server::Listener;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use upstream::UpstreamClient;

/// Everything a running gateway shares across requests. The plan is swapped whole on reload.
pub struct Gateway {
    pub plan: ArcSwap<Plan>,
    pub metrics: Metrics,
    upstream: UpstreamClient,
    config_path: PathBuf,
}

/// Reads and compiles a config file into a plan.
pub fn load_plan(path: &Path) -> Result<Plan, Vec<ConfigError>> {
    compile(&load_file(path)?)
}

impl Gateway {
    pub fn new(plan: Plan, config_path: PathBuf) -> Gateway {
        Gateway {
            plan: ArcSwap::from_pointee(plan),
            metrics: Metrics::default(),
            upstream: upstream::build_client(),
            config_path,
        }
    }

    /// Compiles the config file again and swaps the new plan in; on any error the old plan
    /// keeps serving and every error is returned (and logged).
    pub fn reload(&self) -> Result<(), Vec<ConfigError>> {
        match load_plan(&self.config_path) {
            Ok(plan) => {
                let old = self.plan.load();
                if plan.listen != old.listen || plan.admin_listen != old.admin_listen {
                    tracing::warn!("listen addresses changed; they take effect on restart");
                }
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
    let data = server::bind(listen, "data plane").await?;
    let admin = server::bind(admin_listen, "admin listener").await?;
    println!(
        "tollgate data plane listening on http://{}",
        data.local_addr()?
    );
    println!("tollgate admin listening on http://{}", admin.local_addr()?);
    tracing::info!(listen = %data.local_addr()?, admin = %admin.local_addr()?, "tollgate started");
    tokio::spawn(server::accept_loop(gw.clone(), data, Listener::DataPlane));
    tokio::spawn(server::accept_loop(gw.clone(), admin, Listener::Admin));
    tokio::spawn(reload_on_sighup(gw.clone()));
    shutdown_signal().await;
    tracing::info!("tollgate stopping");
    Ok(())
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
