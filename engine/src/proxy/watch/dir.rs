//! The directory watch on Linux, on inotify directly rather than through `notify`.
//!
//! `notify` asks inotify for every kind of event, file opens and writes included. The request
//! log's SQLite file usually sits beside the config, and its writer appends to the `-wal` file
//! with one or two `pwrite`s per page: every one of them queued an event and woke the watch
//! thread, only for the name filter to drop it (2.2 % of the gateway's CPU samples under load).
//! Here the kernel is asked only for what can change which text the config path reads:
//! a file written and closed, created, deleted or renamed. Writes still in progress, opens,
//! reads and metadata changes are never queued. A program rewriting the config then reloads it
//! when it closes the file, which is also when the text is whole.

use super::is_config_name;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::ffi::OsString;
use std::io;
use std::path::Path;
use tokio::sync::mpsc;

/// The events that may change the config's text; see the module comment.
const MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO);

/// The watch; dropping it removes the watch, which ends the thread reading its events.
pub struct DirWatch {
    watches: Watches,
    wd: WatchDescriptor,
}

impl Drop for DirWatch {
    fn drop(&mut self) {
        // The kernel answers the removal with IN_IGNORED, which wakes the thread to exit.
        let _ = self.watches.remove(self.wd.clone());
    }
}

/// Watches `dir` and sends on `tx` after each batch of events that name the config (`name`)
/// or a Kubernetes `..` entry, or that overflowed the kernel's queue.
pub fn start(dir: &Path, name: OsString, tx: mpsc::Sender<()>) -> io::Result<DirWatch> {
    let mut inotify = Inotify::init()?;
    let mut watches = inotify.watches();
    let wd = watches.add(dir, MASK)?;
    std::thread::Builder::new()
        .name("tollgate-watch".into())
        .spawn(move || read_events(&mut inotify, &name, &tx))?;
    Ok(DirWatch { watches, wd })
}

fn read_events(inotify: &mut Inotify, name: &OsString, tx: &mpsc::Sender<()>) {
    // Room for many events per read: each is 16 bytes plus its name, at most NAME_MAX + 1.
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let events = match inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "config watch stopped; reload with SIGHUP or POST /admin/reload");
                return;
            }
        };
        let (mut relevant, mut ended) = (false, false);
        for event in events {
            // Dropped events may have included the config's: a reload cannot hurt.
            relevant |= event.mask.contains(EventMask::Q_OVERFLOW);
            // The watch was removed (dropped, or the directory is gone).
            ended |= event.mask.contains(EventMask::IGNORED);
            relevant |= event.name.is_some_and(|n| is_config_name(n, name));
        }
        if relevant && matches!(tx.try_send(()), Err(mpsc::error::TrySendError::Closed(_))) {
            return;
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    /// Waits up to `within` for an event; the watch thread sends from outside the runtime.
    fn got_event(rx: &mut mpsc::Receiver<()>, within: Duration) -> bool {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if rx.try_recv().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_log_written_beside_the_config_wakes_nothing_and_a_save_does() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.yaml");
        std::fs::write(&config, "a: 1\n").unwrap();
        let (tx, mut rx) = mpsc::channel(1);
        let watch = start(dir.path(), "tollgate.yaml".into(), tx).unwrap();

        // As SQLite keeps its write-ahead log: open, written to again and again.
        let mut wal = std::fs::File::create(dir.path().join("logs.db-wal")).unwrap();
        for _ in 0..100 {
            wal.write_all(&[0u8; 4096]).unwrap();
        }
        std::fs::write(dir.path().join("usage.json"), "{}").unwrap();
        assert!(!got_event(&mut rx, Duration::from_millis(200)));

        std::fs::write(&config, "a: 2\n").unwrap();
        assert!(
            got_event(&mut rx, Duration::from_secs(5)),
            "a save was missed"
        );
        let renamed = dir.path().join(".tollgate.yaml.tmp");
        std::fs::write(&renamed, "a: 3\n").unwrap();
        std::fs::rename(&renamed, &config).unwrap();
        assert!(
            got_event(&mut rx, Duration::from_secs(5)),
            "a rename was missed"
        );
        drop(watch);
    }
}
