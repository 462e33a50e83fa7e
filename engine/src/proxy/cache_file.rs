//! The in-process cache kept across restarts beside the usage snapshot (see
//! `cache::persist`): restored at start, saved at shutdown and, while it changes, every
//! `SAVE_EVERY`. A cache is disposable, unlike usage: an unreadable file is moved aside with
//! an error in the log and the gateway starts with an empty cache rather than not at all.

use super::Gateway;
use crate::cache::{cache_file_for, ResponseCache};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// A full cache (100,000 vectors and their answers) is tens of megabytes: written once a
/// minute rather than at every usage snapshot. A crash loses at most this much caching.
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Loads the cache file that goes with `snapshot`, if there is one.
pub(super) fn restore(cache: &ResponseCache, snapshot: &Path) {
    if !cache.keeps_local_data() {
        return;
    }
    let file = cache_file_for(snapshot);
    match cache.restore_from(&file) {
        Ok(Some(n)) => tracing::info!(
            file = %file.display(),
            answers = n.answers,
            vectors = n.vectors,
            "response cache restored"
        ),
        Ok(None) => {}
        Err(e) => {
            let aside = moved_aside(&file);
            match std::fs::rename(&file, &aside) {
                Ok(()) => tracing::error!(
                    error = %e,
                    moved_to = %aside.display(),
                    "response cache not restored; starting with an empty cache"
                ),
                Err(move_err) => tracing::error!(
                    error = %e,
                    move_error = %move_err,
                    "response cache not restored, nor its file moved aside; starting with an \
                     empty cache"
                ),
            }
        }
    }
}

fn moved_aside(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".unreadable");
    PathBuf::from(name)
}

impl Gateway {
    /// Writes the cache file, if the config names a snapshot file and something was stored
    /// since the last save.
    pub fn save_cache(&self) {
        let plan = self.plan.load();
        let Some(snapshot) = &plan.snapshot_file else {
            return;
        };
        if !self.cache.keeps_local_data() {
            return;
        }
        let stores = self.cache.metrics().stores.load(Relaxed);
        if stores == self.cache_saved_at.load(Relaxed) {
            return;
        }
        let file = cache_file_for(snapshot);
        match self.cache.save_to(&file) {
            Ok(n) => {
                self.cache_saved_at.store(stores, Relaxed);
                tracing::debug!(
                    answers = n.answers,
                    vectors = n.vectors,
                    "response cache saved"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot save the response cache"),
        }
    }
}

pub(super) async fn save_periodically(gw: Arc<Gateway>) {
    loop {
        tokio::time::sleep(SAVE_EVERY).await;
        let g = gw.clone();
        // Serialising and writing tens of megabytes: off the request workers.
        let _ = tokio::task::spawn_blocking(move || g.save_cache()).await;
    }
}
