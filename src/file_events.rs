//! File events for hot-reloaded files (the keytab, TLS certificates and keys): `notify`
//! (inotify on Linux) on each file's *directory*, so that an atomic rename into place and a
//! Kubernetes Secret's `..data` symlink swap are seen — a watch on the file itself would follow
//! the old inode and miss both. Callers coalesce bursts ([`DEBOUNCE`]) and keep polling as a
//! fallback: events can be lost, and some filesystems have none.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// How long to wait after an event for the rest of a burst (a non-atomic writer, a cert and its
/// key written one after the other) before checking once.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A watch on the directories of some files. Dropping it stops the events.
pub struct FileEvents {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: UnboundedReceiver<()>,
}

impl std::fmt::Debug for FileEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEvents")
            .field("watching", &self._watcher.is_some())
            .finish()
    }
}

/// The directory a path lives in (`.` for a bare file name).
fn dir_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

impl FileEvents {
    /// Watches the directories of `files`; `what` names them in the warning logged when file
    /// events are unavailable (then only polling sees changes, and [`Self::changed`] never
    /// resolves).
    pub fn watch(files: &[PathBuf], what: &str) -> Self {
        let (tx, rx) = unbounded_channel::<()>();
        let names: BTreeSet<OsString> = files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect();
        let dirs: BTreeSet<PathBuf> = files.iter().map(|p| dir_of(p)).collect();
        let handler = move |res: notify::Result<notify::Event>| {
            let relevant = match &res {
                // One of the files, or Kubernetes' projected-volume swap (`..data` symlink), whose
                // events never name the files.
                Ok(ev) => {
                    ev.paths.is_empty()
                        || ev.paths.iter().any(|p| {
                            p.file_name()
                                .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
                        })
                }
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        };
        use notify::Watcher as _;
        let watcher = match notify::recommended_watcher(handler) {
            Ok(mut w) => {
                let mut ok = true;
                for dir in &dirs {
                    if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the {what} directory; polling only");
                        ok = false;
                    }
                }
                ok.then_some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling the {what} only");
                None
            }
        };
        Self {
            _watcher: watcher,
            rx,
        }
    }

    /// Resolves after an event and the rest of its burst ([`DEBOUNCE`]); never, when file
    /// events are unavailable.
    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while self.rx.try_recv().is_ok() {}
    }
}
