//! One artifact cache entry on disk: how its two files are written, and how they are read back
//! and verified before anything trusts them.
//!
//! An entry is `<key>.cwasm` (the image) and `<key>.sha256` (the hex sha256 of the image and a
//! newline). Both are written atomically (a temp file in the same directory, fsync, rename), the
//! image first: a crash at any point leaves either no entry, a complete image without its
//! checksum, or a complete entry, and only the last one verifies. Reading hashes the image
//! through the same open file that is then handed back, so what is mapped is what was hashed.
//!
//! This file knows nothing of wasmtime (and uses nothing else from its crate but the sibling
//! `atomic_file`): the fuzz target `artifact_entry` (`fuzz/`) compiles the two on their own, so
//! corrupt entries are fuzzed without building wasmtime under a sanitizer. [`crate::ArtifactCache`] adds the wasmtime side: the keys,
//! compiling, and mapping a verified image.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::atomic_file::write_atomically;

/// Why a cache entry was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadEntry {
    /// The `.cwasm` exists without its `.sha256` (a crash between the two writes, or a stray file).
    MissingChecksum,
    /// The `.cwasm` does not hash to its recorded checksum (torn, truncated or altered).
    ChecksumMismatch,
    /// A file of the entry could not be read.
    Unreadable(String),
    /// The checksum matched but wasmtime refused the image (built by an incompatible engine).
    Rejected(String),
}

/// Opens the entry's image and checks it against its checksum file: `Ok(None)` when there is no
/// image, `Ok(Some(file))` (the image, opened once and hashed through that handle) when it
/// verifies, and why not otherwise.
pub fn open_verified(artifact: &Path, checksum: &Path) -> Result<Option<File>, BadEntry> {
    let unreadable = |e: io::Error| BadEntry::Unreadable(e.to_string());
    let mut file = match File::open(artifact) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let expected = match std::fs::read_to_string(checksum) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BadEntry::MissingChecksum),
        Err(e) => return Err(unreadable(e)),
    };
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(unreadable)?;
    if hex::encode(hasher.finalize()) != expected.trim() {
        return Err(BadEntry::ChecksumMismatch);
    }
    Ok(Some(file))
}

/// Writes `image` as the entry `artifact` + `checksum` in `dir` (see the module docs for the
/// order and why), and returns the written image, still open.
///
/// The directory is not fsynced after the renames: a rename lost in a crash only costs a
/// recompile, and it saves an fsync per entry when an empty cache is filled.
pub fn write_entry(dir: &Path, artifact: &Path, checksum: &Path, image: &[u8]) -> io::Result<File> {
    let written = write_atomically(dir, TEMP_PREFIX, image, artifact)?;
    let sum = format!("{}\n", hex::encode(Sha256::digest(image)));
    write_atomically(dir, TEMP_PREFIX, sum.as_bytes(), checksum)?;
    Ok(written)
}

/// Prefix of the temp files an entry is written through (`.tmp-entry-<random>`): a file that
/// still has it was never renamed into place (a crash mid-write), and nothing ever reads it. Its
/// writer holds an exclusive lock on it until the rename, so a temp file whose lock can be taken
/// belongs to a writer that died, and `ArtifactCache::open` deletes it.
pub const TEMP_PREFIX: &str = ".tmp-entry-";

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEntry::MissingChecksum => f.write_str("checksum file missing"),
            BadEntry::ChecksumMismatch => f.write_str("checksum mismatch"),
            BadEntry::Unreadable(e) => write!(f, "unreadable: {e}"),
            BadEntry::Rejected(e) => write!(f, "refused by wasmtime: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn paths(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        (dir.join("k.cwasm"), dir.join("k.sha256"))
    }

    #[test]
    fn a_written_entry_reads_back_verified_and_positioned_for_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let (artifact, checksum) = paths(dir.path());
        write_entry(dir.path(), &artifact, &checksum, b"image bytes").unwrap();
        let mut file = open_verified(&artifact, &checksum).unwrap().expect("an entry");
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the handle was read to the end by the hash");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with(TEMP_PREFIX)), "{names:?}");
    }

    #[test]
    fn damaged_entries_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (artifact, checksum) = paths(dir.path());
        assert_eq!(open_verified(&artifact, &checksum).unwrap().map(|_| ()), None, "no entry");
        write_entry(dir.path(), &artifact, &checksum, b"image bytes").unwrap();
        std::fs::write(&artifact, b"image byte").unwrap();
        assert_eq!(open_verified(&artifact, &checksum).unwrap_err(), BadEntry::ChecksumMismatch);
        std::fs::write(&checksum, b"\xff\xfe").unwrap();
        assert!(matches!(open_verified(&artifact, &checksum), Err(BadEntry::Unreadable(_))));
        std::fs::remove_file(&checksum).unwrap();
        assert_eq!(open_verified(&artifact, &checksum).unwrap_err(), BadEntry::MissingChecksum);
    }
}
