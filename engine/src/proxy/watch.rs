//! Reload on config file change (SPEC §1): a debounced watch on the config's directory.
//!
//! The directory is watched, not the file: editors save by writing a temporary file and
//! renaming it over the config, and Kubernetes updates a mounted ConfigMap by swapping a
//! `..data` symlink, so the inode a file watch holds is no longer the config after the first
//! save. Events are filtered to the config's file name plus any name starting with `..`
//! (Kubernetes' atomic writer keeps its versioned directories and the `..data` / `..data_tmp`
//! links under such names, and a swap touches nothing else in the directory). Everything else
//! in the directory, such as the usage snapshot that is usually written beside the config, is
//! ignored.
//!
//! On Linux the watch asks inotify only for files written and closed, created, deleted or
//! renamed ([`dir`]), so that the request log's writes beside the config wake nothing;
//! elsewhere it goes through `notify` and filters what it is sent.
//!
//! Not covered: a config that is a symlink into some other directory sees edits of its target
//! only through SIGHUP or `POST /admin/reload`; so does a metadata-only change (`touch`,
//! `chmod`), which leaves the text as it was.

#[cfg(target_os = "linux")]
mod dir;

use super::Gateway;
#[cfg(not(target_os = "linux"))]
use notify::event::{Event, EventKind};
#[cfg(not(target_os = "linux"))]
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

/// Quiet time after the last event before reloading: an editor's save (truncate, write,
/// rename, chmod) and a ConfigMap swap each arrive as several events within a few
/// milliseconds, and should compile once.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A file rewritten more often than `DEBOUNCE` (a log-like generator, a slow copy) would
/// otherwise never go quiet; reload at least this often while changes keep coming.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Watches the config and reloads after each (debounced) change, until the process ends.
/// The watch is in place when this returns, so that a change made as soon as the gateway
/// reports its addresses is not missed; the reloading runs on a task. If the watch cannot be
/// set up the gateway runs on without it: SIGHUP and `POST /admin/reload` still reload.
pub fn spawn(gw: Arc<Gateway>) {
    // One slot is enough: a full channel already means "something changed", and `try_send`
    // never blocks the watch thread.
    let (tx, rx) = mpsc::channel::<()>(1);
    if let Some(watcher) = start_watcher(&gw.config_path, tx) {
        tokio::spawn(reload_on_change(gw, watcher, rx));
    }
}

/// What keeps the events coming; dropping it stops them.
#[cfg(target_os = "linux")]
type DirWatcher = dir::DirWatch;
#[cfg(not(target_os = "linux"))]
type DirWatcher = RecommendedWatcher;

async fn reload_on_change(gw: Arc<Gateway>, watcher: DirWatcher, mut rx: mpsc::Receiver<()>) {
    // Held for as long as this loop runs: dropping it would stop the events.
    let _watcher = watcher;
    loop {
        if rx.recv().await.is_none() {
            return;
        }
        settle(&mut rx, DEBOUNCE, MAX_DELAY).await;
        tracing::debug!(config = %gw.config_path.display(), "config file changed; reloading");
        let g = gw.clone();
        // Compiling a large config takes long enough to stall a request worker, so it runs on
        // the blocking pool. `reload` logs and counts both outcomes itself; on error the old
        // plan keeps serving. Events during the compile stay queued and cause one more reload,
        // so an edit made after the file was read is not lost.
        if let Err(e) = tokio::task::spawn_blocking(move || g.reload()).await {
            tracing::error!(error = %e, "config reload task failed");
        }
    }
}

/// Waits until no event has arrived for `quiet`, or `max` has passed since the first one. A
/// closed channel also ends the wait: the change already seen is still worth loading, and the
/// caller's next `recv` then notices the end.
async fn settle(rx: &mut mpsc::Receiver<()>, quiet: Duration, max: Duration) {
    let give_up = Instant::now() + max;
    loop {
        let quiet_until = (Instant::now() + quiet).min(give_up);
        match timeout_at(quiet_until, rx.recv()).await {
            Ok(Some(())) if Instant::now() < give_up => continue,
            _ => return,
        }
    }
}

/// Starts the watcher thread on the config's directory; `None` (after a warning) when the
/// platform refuses, e.g. when the inotify instance or watch limit is reached.
fn start_watcher(config: &Path, tx: mpsc::Sender<()>) -> Option<DirWatcher> {
    let Some(name) = config.file_name().map(OsStr::to_os_string) else {
        tracing::warn!(config = %config.display(), "config path has no file name; not watching it");
        return None;
    };
    // A bare `-c tollgate.yaml` has an empty parent: that is the working directory.
    let dir = match config.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    let watcher = watch_dir(&dir, name, tx)?;
    tracing::info!(dir = %dir.display(), "watching the config for changes");
    Some(watcher)
}

#[cfg(target_os = "linux")]
fn watch_dir(dir: &Path, name: OsString, tx: mpsc::Sender<()>) -> Option<DirWatcher> {
    dir::start(dir, name, tx)
        .inspect_err(|e| {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP or POST /admin/reload");
        })
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn watch_dir(dir: &Path, name: OsString, tx: mpsc::Sender<()>) -> Option<DirWatcher> {
    let handler = move |event: notify::Result<Event>| {
        let relevant = match event {
            Ok(event) => is_relevant(&event, &name),
            Err(e) => {
                // The backend may have dropped events (queue overflow): a reload cannot hurt,
                // missing a change can.
                tracing::warn!(error = %e, "config watch error; reloading to be safe");
                true
            }
        };
        if relevant {
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /admin/reload");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config directory; reload with SIGHUP or POST /admin/reload");
        return None;
    }
    Some(watcher)
}

/// Whether a file name in the config's directory is the config's (`config`) or a Kubernetes
/// atomic writer's `..` entry.
fn is_config_name(file: &OsStr, config: &OsStr) -> bool {
    file == config || file.as_encoded_bytes().starts_with(b"..")
}

/// Whether an event may have changed the config's text.
#[cfg(not(target_os = "linux"))]
fn is_relevant(event: &Event, name: &OsString) -> bool {
    if event.need_rescan() {
        return true;
    }
    match event.kind {
        // Opens and closes, including our own reads of the config during a reload (which
        // would otherwise reload forever), and metadata-only changes leave the text as is.
        EventKind::Access(_) | EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => {
            return false
        }
        _ => {}
    }
    event
        .paths
        .iter()
        .any(|p| p.file_name().is_some_and(|f| is_config_name(f, name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(target_os = "linux"))]
    use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode};
    #[cfg(not(target_os = "linux"))]
    use std::path::PathBuf;

    #[test]
    fn config_and_configmap_names_count() {
        let name = OsStr::new("tollgate.yaml");
        assert!(is_config_name(OsStr::new("tollgate.yaml"), name));
        assert!(is_config_name(OsStr::new("..data"), name));
        assert!(is_config_name(OsStr::new("..2026_01_01"), name));
        for other in ["usage.json", "tollgate.yaml.swp", "logs.db-wal"] {
            assert!(!is_config_name(OsStr::new(other), name), "{other}");
        }
        // A hidden file with a single dot is an editor's, not Kubernetes'.
        assert!(!is_config_name(OsStr::new(".tollgate.yaml.swp"), name));
    }

    #[cfg(not(target_os = "linux"))]
    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        e.paths = paths.iter().map(PathBuf::from).collect();
        e
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn only_config_and_configmap_names_count() {
        let name = OsString::from("tollgate.yaml");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(is_relevant(&ev(write, &["/etc/t/tollgate.yaml"]), &name));
        assert!(!is_relevant(&ev(write, &["/etc/t/usage.json"]), &name));
        assert!(!is_relevant(
            &ev(write, &["/etc/t/tollgate.yaml.swp"]),
            &name
        ));
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(is_relevant(
            &ev(rename, &["/etc/t/.tmp123", "/etc/t/tollgate.yaml"]),
            &name
        ));
        assert!(is_relevant(
            &ev(rename, &["/etc/t/..data_tmp", "/etc/t/..data"]),
            &name
        ));
        let mkdir = EventKind::Create(CreateKind::Folder);
        assert!(is_relevant(&ev(mkdir, &["/etc/t/..2026_01_01"]), &name));
        // A hidden file with a single dot is an editor's, not Kubernetes'.
        assert!(!is_relevant(
            &ev(write, &["/etc/t/.tollgate.yaml.swp"]),
            &name
        ));
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn reads_and_metadata_do_not_count() {
        let name = OsString::from("tollgate.yaml");
        for kind in [
            EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any)),
            EventKind::Access(AccessKind::Close(notify::event::AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ] {
            assert!(!is_relevant(&ev(kind, &["/etc/t/tollgate.yaml"]), &name));
        }
        let rescan = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert!(is_relevant(&rescan, &name));
    }

    // Real time, scaled down (10 ms between events, 100 ms quiet): bounds are checked only in
    // the direction a slow machine cannot break.
    const QUIET: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(400);

    #[tokio::test]
    async fn a_burst_settles_once() {
        let (tx, mut rx) = mpsc::channel(1);
        let start = Instant::now();
        // Five events 10 ms apart, as from an editor saving five times quickly.
        let burst = tokio::spawn(async move {
            for _ in 0..5 {
                let _ = tx.send(()).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Kept open, as the watcher keeps it.
            tx
        });
        // The caller takes the first event, then settles.
        assert_eq!(rx.recv().await, Some(()));
        settle(&mut rx, QUIET, MAX).await;
        assert!(Instant::now() - start >= Duration::from_millis(40) + QUIET);
        assert!(burst.await.is_ok());
        assert!(rx.try_recv().is_err(), "the whole burst is one reload");
    }

    #[tokio::test]
    async fn a_stream_of_events_is_capped() {
        let (tx, mut rx) = mpsc::channel(1);
        // Events every 20 ms never go quiet for 100 ms.
        let feeder = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        let begun = Instant::now();
        let settled = tokio::time::timeout(Duration::from_secs(10), settle(&mut rx, QUIET, MAX));
        assert!(settled.await.is_ok(), "settle must give up waiting");
        assert!(Instant::now() - begun >= MAX);
        feeder.abort();
    }
}
