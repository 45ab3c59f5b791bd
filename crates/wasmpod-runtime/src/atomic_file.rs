//! Files that appear whole or not at all, even when the writer is killed: the bytes go to a
//! locked temp file in the same directory, are fsynced, and the temp file is renamed over the
//! name. A crash leaves at worst a temp file, which no loader reads (its name has the writer's
//! prefix) and which [`remove_abandoned`] deletes at the next start.
//!
//! Two writers use it: the artifact cache's entries and the admin API's uploads into a served
//! folder. It uses only std and `tempfile`, so the fuzz target that includes the cache entry
//! reader by path can include this file beside it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temp file this old was left by a writer that died (a write takes milliseconds to seconds),
/// even if something still holds its lock (a writer hung on a dead network volume).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// Writes `bytes` to `path` through a temp file in `dir` named `<prefix><random>`, and returns
/// the written file, still open. The writer holds an exclusive lock on the temp file until the
/// rename, so a temp file whose lock can be taken belongs to a writer that died.
///
/// `dir` is not fsynced after the rename: callers that need the name itself to survive a power
/// cut do that (uploads do; a lost cache entry only costs a recompile).
pub fn write_atomically(dir: &Path, prefix: &str, bytes: &[u8], path: &Path) -> io::Result<File> {
    let mut temp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
    temp.as_file().lock()?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)
}

/// Deletes the temp files with `prefix` in `dir` that dead writers left: those whose lock can be
/// taken, or older than [`STALE_TEMP_AGE`]. A file another process is writing right now (a pod
/// sharing the directory) is locked and young, and left alone. Returns what was deleted and
/// what could not be, for the caller to log.
pub fn remove_abandoned(dir: &Path, prefix: &str) -> Vec<(PathBuf, io::Result<()>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(|n| n.starts_with(prefix)) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= STALE_TEMP_AGE));
        let unlocked = File::open(entry.path()).is_ok_and(|file| file.try_lock().is_ok());
        if stale || unlocked {
            let result = std::fs::remove_file(entry.path());
            removed.push((entry.path(), result));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(dir.path(), ".t-", b"one", &path).unwrap();
        write_atomically(dir.path(), ".t-", b"two", &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, ["f"]);
    }

    // Which temp files `remove_abandoned` deletes is tested through the cache that uses it:
    // `artifact_cache::tests::temp_files_of_crashed_writes_are_deleted_at_once_or_once_stale`.
}
