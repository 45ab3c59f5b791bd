//! Reload on change: a served folder (or a `modules.toml`) is watched with `notify`; once the
//! changes settle for [`RELOAD_DEBOUNCE`], the app reloads (see [`App::reload`]).
//!
//! Every change is treated the same way, by reading the whole source again: the reload compiles
//! only what changed, so a burst of events costs one reload, and a missed or reordered event
//! costs nothing. Events on hidden and temporary names (an upload's or an editor's temporary
//! file) and reads are not changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use wasmpod_config::{is_ignored_name, FunctionSource};

use crate::App;

/// How long the source must stay unchanged before a reload starts: a copy or an editor's save
/// is a burst of events a few milliseconds apart, and one reload should follow it, not one per
/// event.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// Keeps the watch alive; dropping it stops watching.
pub struct SourceWatch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `app`'s source (if it has one) and reloading on change.
pub fn watch_source(app: Arc<App>) -> Result<Option<SourceWatch>, notify::Error> {
    let Some(source) = app.source().cloned() else { return Ok(None) };
    let changed = Arc::new(tokio::sync::Notify::new());
    let (path, mode, file): (PathBuf, RecursiveMode, Option<std::ffi::OsString>) = match &source {
        FunctionSource::Folder(dir) => (dir.clone(), RecursiveMode::Recursive, None),
        // Editors replace a file by renaming a new one over it: watch its folder, for its name.
        FunctionSource::ModulesToml(file) => {
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            (dir.to_owned(), RecursiveMode::NonRecursive, file.file_name().map(|n| n.to_owned()))
        }
    };
    let notify = changed.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
        Ok(event) if is_change(&event, file.as_deref()) => notify.notify_one(),
        Ok(_) => {}
        Err(e) => tracing::warn!("watching for changes: {e}"),
    })?;
    watcher.watch(&path, mode)?;
    tracing::info!(path = %path.display(), "watching for changes");
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            // Debounce: wait until no change has come for a whole period.
            while tokio::time::timeout(RELOAD_DEBOUNCE, changed.notified()).await.is_ok() {}
            app.reload().await;
        }
    });
    Ok(Some(SourceWatch { _watcher: watcher }))
}

/// Whether `event` changes the source: a file created, written, renamed or removed, whose name
/// is not hidden or temporary (and, for a `modules.toml`, is that file). Reads and metadata
/// changes (loading a module reads it) are not changes.
fn is_change(event: &notify::Event, file: Option<&std::ffi::OsStr>) -> bool {
    let kind = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
    );
    kind && event.paths.iter().any(|path| {
        let Some(name) = path.file_name() else { return false };
        match file {
            Some(file) => name == file,
            None => !name.to_str().is_some_and(is_ignored_name),
        }
    })
}
