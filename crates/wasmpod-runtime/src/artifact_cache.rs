//! The artifact cache: compiled modules on disk, so a module is compiled at most once per engine
//! and a restart (or a new pod sharing the volume) maps the code instead of compiling it.
//!
//! An entry is two files named by its key, `<sha256 of the module>-<engine hash>`:
//! `<key>.cwasm` (wasmtime's precompiled image, mapped with mmap so pages are shared and memory
//! images are copy-on-write) and `<key>.sha256` (the hex sha256 of the `.cwasm`). The engine hash
//! covers everything wasmtime says makes compiled code incompatible (target, compiler flags,
//! tunables, features, wasmtime version), so engines that differ get different entries.
//!
//! Deserializing trusts its input, so an entry is never trusted blindly: it is written atomically
//! (temp file, fsync, rename) and its checksum is verified on the same open file that is then
//! mapped (the files' side is [`crate::cache_entry`], free of wasmtime so it can be fuzzed). A
//! missing checksum, a mismatch, an unreadable file or an image wasmtime refuses is logged,
//! deleted and rebuilt. A writer killed mid-write (`kill -9`, an OOM kill) leaves only a temp file
//! ([`crate::CACHE_TEMP_PREFIX`]), never a key and so never loaded; the writer holds a lock on
//! it until the rename, so [`ArtifactCache::open`] deletes at once every temp file no live writer
//! holds. The directory must be writable only by wasmpod's user: the cache
//! defends against crashes, torn writes and foreign files, not against someone who can rewrite a
//! file in place under a running server.

use std::fmt;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::atomic_file;
use crate::cache_entry::{self, BadEntry};
use crate::Error;

/// Compiled modules on disk, keyed by module bytes and engine compatibility.
///
/// Use one per process (or share the directory between processes and pods: writers never modify
/// a file in place, so readers and concurrent writers are safe).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = wasmtime::Engine::default();
/// let cache = wasmpod_runtime::ArtifactCache::open("/var/cache/wasmpod")?;
/// let bytes = std::fs::read("app.wasm")?;
/// let (module, outcome) = cache.load_or_compile::<wasmtime::Module>(&engine, &bytes, "app.wasm".as_ref())?;
/// println!("{outcome}: {} exports", module.exports().count());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// The last engine's hash: computing it hashes the engine's whole configuration, and a pod
    /// loading thousands of modules asks for the same engine's every time.
    engine_hash: Arc<Mutex<Option<(Engine, String)>>>,
}

/// Code wasmtime can precompile to an image and map back: core modules and components (their
/// images are not interchangeable, and wasmtime refuses one kind's image as the other).
pub trait Artifact: Sized {
    /// Compiles `bytes` (binary or text) for `engine`, in memory.
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;

    /// Compiles `bytes` (binary or text) to an image for `engine`.
    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>>;

    /// Maps an image from an open file.
    ///
    /// # Safety
    /// As `Module::deserialize_open_file`: the file holds an image wasmtime produced and does not
    /// change while the artifact lives.
    unsafe fn deserialize_open_file(engine: &Engine, file: File) -> wasmtime::Result<Self>;

    /// Loads an image from memory.
    ///
    /// # Safety
    /// As `Module::deserialize`: `image` is an image wasmtime produced.
    unsafe fn deserialize(engine: &Engine, image: &[u8]) -> wasmtime::Result<Self>;
}

impl Artifact for Module {
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }

    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_module(bytes)
    }

    unsafe fn deserialize_open_file(engine: &Engine, file: File) -> wasmtime::Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Module::deserialize_open_file(engine, file) }
    }

    unsafe fn deserialize(engine: &Engine, image: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Module::deserialize(engine, image) }
    }
}

impl Artifact for Component {
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }

    fn precompile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        engine.precompile_component(bytes)
    }

    /// wasmtime 48 maps components only by path. `/proc/self/fd/N` reopens the very inode behind
    /// `file` (a magic link, not a name lookup in the cache directory), which keeps the property
    /// the cache relies on: what is mapped is what was hashed.
    unsafe fn deserialize_open_file(engine: &Engine, file: File) -> wasmtime::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let path = format!("/proc/self/fd/{}", file.as_raw_fd());
            // SAFETY: forwarded to the caller; `file` stays open until the mapping is made.
            let component = unsafe { Component::deserialize_file(engine, &path) };
            drop(file);
            component
        }
        #[cfg(not(target_os = "linux"))]
        {
            use std::io::Read;
            let mut image = Vec::new();
            let mut file = file;
            file.read_to_end(&mut image)?;
            // SAFETY: forwarded to the caller.
            unsafe { Component::deserialize(engine, &image) }
        }
    }

    unsafe fn deserialize(engine: &Engine, image: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Component::deserialize(engine, image) }
    }
}

/// A compiled guest, of the kind its bytes say it is.
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

/// Compiles `bytes` as a core module or a component, whichever they are (no setting: the same
/// `module = "x.wasm"` serves both), through `cache` when there is one.
pub(crate) fn compile(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    bytes: &[u8],
    module_path: &Path,
) -> Result<(Compiled, CacheOutcome), Error> {
    fn one<A: Artifact>(
        engine: &Engine,
        cache: Option<&ArtifactCache>,
        bytes: &[u8],
        module_path: &Path,
    ) -> Result<(A, CacheOutcome), Error> {
        match cache {
            Some(cache) => cache.load_or_compile(engine, bytes, module_path),
            None => A::compile(engine, bytes).map(|artifact| (artifact, CacheOutcome::Miss)).map_err(|e| {
                Error::InvalidModule { module: module_path.to_owned(), reason: format!("{e:#}") }
            }),
        }
    }
    if is_component(bytes) {
        one(engine, cache, bytes, module_path).map(|(c, outcome)| (Compiled::Component(c), outcome))
    } else {
        one(engine, cache, bytes, module_path).map(|(m, outcome)| (Compiled::Module(m), outcome))
    }
}

/// Whether `bytes` (binary or text) are a component rather than a core module. A binary says so
/// in its header's layer field (what `wasmparser::Parser::is_component` reads); a `.wat` file by
/// its first form.
pub(crate) fn is_component(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\0asm") {
        // The 16-bit layer field after the version: 0 for a core module, 1 for a component.
        return bytes.get(6..8) == Some(&[1, 0]);
    }
    let text = String::from_utf8_lossy(bytes);
    let mut rest = text.trim_start();
    // Skip leading `;;` line comments.
    while let Some(comment) = rest.strip_prefix(";;") {
        rest = comment.split_once('\n').map_or("", |(_, after)| after).trim_start();
    }
    rest.starts_with("(component")
}

/// Where a module's code came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Mapped from a verified cache entry: nothing was compiled.
    Hit,
    /// No entry: compiled and written.
    Miss,
    /// An entry was there but unusable: deleted, compiled again and rewritten.
    Rebuilt(BadEntry),
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory, and deletes the temp files of writes that
    /// died (see [`crate::CACHE_TEMP_PREFIX`]).
    pub fn open(dir: impl Into<PathBuf>) -> Result<ArtifactCache, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::ArtifactCache { path: dir.clone(), source })?;
        remove_abandoned_temp_files(&dir);
        Ok(ArtifactCache { dir, engine_hash: Arc::default() })
    }

    /// The cache directory (for logs, and for tests that inspect entries).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The module or component for `bytes` (Wasm binary or text): mapped from the cache when a
    /// verified entry exists, else compiled and written to the cache first. `module_path` only names the module
    /// in errors and logs.
    ///
    /// Failing to write the cache is not an error (the module is compiled and used from memory,
    /// with a warning); an invalid module is.
    pub fn load_or_compile<A: Artifact>(
        &self,
        engine: &Engine,
        bytes: &[u8],
        module_path: &Path,
    ) -> Result<(A, CacheOutcome), Error> {
        let entry = self.entry(engine, bytes);
        let outcome = match entry.load(engine) {
            Ok(Some(module)) => return Ok((module, CacheOutcome::Hit)),
            Ok(None) => CacheOutcome::Miss,
            Err(bad) => {
                tracing::warn!(
                    module = %module_path.display(),
                    entry = %entry.artifact.display(),
                    reason = %bad,
                    "artifact cache entry not trusted: deleting and recompiling"
                );
                entry.remove();
                CacheOutcome::Rebuilt(bad)
            }
        };
        let image = A::precompile(engine, bytes)
            .map_err(|e| Error::InvalidModule { module: module_path.to_owned(), reason: format!("{e:#}") })?;
        let module = entry.store(engine, &image, module_path)?;
        Ok((module, outcome))
    }

    /// Makes sure `bytes` (a module or a component, told apart as `serve` does) has a verified
    /// entry, compiling it if not: what `wasmpod compile` does to warm a cache ahead of a rollout.
    pub fn fill(&self, engine: &Engine, bytes: &[u8], module_path: &Path) -> Result<CacheOutcome, Error> {
        compile(engine, Some(self), bytes, module_path).map(|(_, outcome)| outcome)
    }

    fn engine_hash(&self, engine: &Engine) -> String {
        let mut last = self.engine_hash.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((known, hash)) if Engine::same(known, engine) => hash.clone(),
            _ => {
                let hash = engine_hash(engine);
                *last = Some((engine.clone(), hash.clone()));
                hash
            }
        }
    }

    /// The entry for `bytes` compiled by `engine`.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> Entry<'_> {
        let key = format!("{}-{}", hex::encode(Sha256::digest(bytes)), self.engine_hash(engine));
        Entry {
            dir: &self.dir,
            artifact: self.dir.join(format!("{key}.cwasm")),
            checksum: self.dir.join(format!("{key}.sha256")),
        }
    }
}

/// Deletes the temp files crashed writers left in `dir`: never loaded, but they hold disk.
fn remove_abandoned_temp_files(dir: &Path) {
    for (path, result) in atomic_file::remove_abandoned(dir, cache_entry::TEMP_PREFIX) {
        match result {
            Ok(()) => {
                tracing::info!(path = %path.display(), "deleted a temp file a crashed write left in the artifact cache")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot delete a stale artifact cache temp file: {e}")
            }
        }
    }
}

/// 128 bits of sha256 over the engine's compatibility hash, in hex. sha256 rather than std's
/// `DefaultHasher`, whose algorithm may change between Rust releases: keys must be stable on disk.
fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

/// Feeds a `Hash` impl into sha256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

/// One key's two files.
struct Entry<'a> {
    dir: &'a Path,
    artifact: PathBuf,
    checksum: PathBuf,
}

impl Entry<'_> {
    /// `Ok(None)` when there is no entry; `Err` when there is one that must not be used.
    fn load<A: Artifact>(&self, engine: &Engine) -> Result<Option<A>, BadEntry> {
        let Some(file) = cache_entry::open_verified(&self.artifact, &self.checksum)? else {
            return Ok(None);
        };
        // SAFETY: `deserialize_open_file` trusts that the file is an image wasmtime produced and
        // that it does not change while the module lives. The file is in our cache directory and
        // was written only by `cache_entry::write_entry` (temp file, fsync, rename, so it is never
        // seen half-written and never modified in place afterwards; a rebuild renames a new file
        // over the name and leaves this inode intact). Its bytes, read through this same open
        // file, hash to the checksum written beside it, so it is the complete image that was
        // written, and wasmtime itself still checks that the image's engine settings match
        // `engine`. Hashing and mapping the same handle leaves no window for a swap between them.
        let module = unsafe { A::deserialize_open_file(engine, file) }
            .map_err(|e| BadEntry::Rejected(format!("{e:#}")))?;
        Ok(Some(module))
    }

    /// Best effort: a file that cannot be deleted is overwritten by the rebuild's rename anyway.
    fn remove(&self) {
        for path in [&self.checksum, &self.artifact] {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "cannot delete artifact cache file: {e}");
                }
            }
        }
    }

    /// Writes `image` as this entry and maps it from the written file (so a first run gets the
    /// same mapped, copy-on-write image as later ones). Falls back to the image in memory when
    /// the cache cannot be written.
    fn store<A: Artifact>(&self, engine: &Engine, image: &[u8], module_path: &Path) -> Result<A, Error> {
        match cache_entry::write_entry(self.dir, &self.artifact, &self.checksum, image) {
            // SAFETY: `file` is the handle we just wrote `image` to, fsynced and renamed into
            // place; the image is `engine.precompile_module`'s output for this same engine. No
            // code modifies a cache file in place (see `Entry::load`).
            Ok(file) => match unsafe { A::deserialize_open_file(engine, file) } {
                Ok(module) => return Ok(module),
                Err(e) => tracing::warn!(
                    module = %module_path.display(),
                    entry = %self.artifact.display(),
                    "cannot map the artifact just written (using it from memory): {e:#}"
                ),
            },
            Err(e) => tracing::warn!(
                module = %module_path.display(),
                dir = %self.dir.display(),
                "cannot write to the artifact cache (module compiled, not cached): {e}"
            ),
        }
        // SAFETY: `image` is `engine.precompile_module`'s output for this same engine, in memory.
        unsafe { A::deserialize(engine, image) }
            .map_err(|e| Error::InvalidModule { module: module_path.to_owned(), reason: format!("{e:#}") })
    }
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOutcome::Hit => f.write_str("hit"),
            CacheOutcome::Miss => f.write_str("compiled"),
            CacheOutcome::Rebuilt(_) => f.write_str("rebuilt"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Config, Instance, Store};

    const ANSWER: &str = r#"(module (func (export "answer") (result i32) i32.const 42))"#;

    fn engine() -> Engine {
        Engine::new(&Config::new()).unwrap()
    }

    /// Instantiates `module` and calls its `answer` export.
    fn answer(engine: &Engine, module: &Module) -> i32 {
        let mut store = Store::new(engine, ());
        // Engines with epoch interruption trap at once without a deadline; nothing ticks here.
        store.set_epoch_deadline(1);
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        instance.get_typed_func::<(), i32>(&mut store, "answer").unwrap().call(&mut store, ()).unwrap()
    }

    fn load(cache: &ArtifactCache, engine: &Engine) -> CacheOutcome {
        let (module, outcome) =
            cache.load_or_compile::<Module>(engine, ANSWER.as_bytes(), "answer.wat".as_ref()).unwrap();
        assert_eq!(answer(engine, &module), 42);
        outcome
    }

    /// The one `.cwasm` in the cache.
    fn artifact(cache: &ArtifactCache) -> PathBuf {
        let mut found = files(cache, "cwasm");
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    fn files(cache: &ArtifactCache, extension: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == extension))
            .collect();
        found.sort();
        found
    }

    /// Replaces `path`'s bytes by rename, as a crash-free tamperer would (never in place, so no
    /// live mapping sees it).
    fn replace(path: &Path, bytes: &[u8]) {
        let temp = path.with_extension("tampered");
        std::fs::write(&temp, bytes).unwrap();
        std::fs::rename(&temp, path).unwrap();
    }

    #[test]
    fn open_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path().join("a/b")).unwrap();
        assert!(cache.dir().is_dir());
    }

    #[test]
    fn first_load_compiles_and_second_maps_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = engine();
        assert_eq!(load(&cache, &engine), CacheOutcome::Miss);
        assert_eq!(load(&cache, &engine), CacheOutcome::Hit);
        // A second process (a new engine with the same settings) hits too.
        assert_eq!(load(&cache, &Engine::new(&Config::new()).unwrap()), CacheOutcome::Hit);
        assert_eq!(files(&cache, "sha256").len(), 1);
        let name = artifact(&cache).file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&hex::encode(Sha256::digest(ANSWER))), "{name}");
    }

    #[test]
    fn corrupted_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = engine();
        load(&cache, &engine);
        let path = artifact(&cache);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        for byte in &mut bytes[middle..middle + 16] {
            *byte ^= 0xff;
        }
        replace(&path, &bytes);
        assert_eq!(load(&cache, &engine), CacheOutcome::Rebuilt(BadEntry::ChecksumMismatch));
        assert_eq!(load(&cache, &engine), CacheOutcome::Hit);
    }

    #[test]
    fn truncated_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = engine();
        load(&cache, &engine);
        let path = artifact(&cache);
        let bytes = std::fs::read(&path).unwrap();
        replace(&path, &bytes[..bytes.len() / 3]);
        assert_eq!(load(&cache, &engine), CacheOutcome::Rebuilt(BadEntry::ChecksumMismatch));
        assert_eq!(load(&cache, &engine), CacheOutcome::Hit);

        replace(&path, b"");
        assert_eq!(load(&cache, &engine), CacheOutcome::Rebuilt(BadEntry::ChecksumMismatch));
    }

    #[test]
    fn entry_without_checksum_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = engine();
        load(&cache, &engine);
        std::fs::remove_file(&files(&cache, "sha256")[0]).unwrap();
        assert_eq!(load(&cache, &engine), CacheOutcome::Rebuilt(BadEntry::MissingChecksum));
        assert_eq!(load(&cache, &engine), CacheOutcome::Hit);
    }

    #[test]
    fn each_engine_config_gets_its_own_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let plain = engine();
        let epochs = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        assert_ne!(engine_hash(&plain), engine_hash(&epochs));
        assert_eq!(load(&cache, &plain), CacheOutcome::Miss);
        assert_eq!(load(&cache, &epochs), CacheOutcome::Miss);
        assert_eq!(files(&cache, "cwasm").len(), 2);
        assert_eq!(load(&cache, &plain), CacheOutcome::Hit);
        assert_eq!(load(&cache, &epochs), CacheOutcome::Hit);
    }

    #[test]
    fn foreign_entry_under_our_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let ours = engine();
        let foreign = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        load(&cache, &foreign);
        let foreign_artifact = artifact(&cache);
        let foreign_checksum = foreign_artifact.with_extension("sha256");

        // A foreign image with its valid checksum, copied under our key: only wasmtime's own
        // engine check can tell, and it must.
        let entry = cache.entry(&ours, ANSWER.as_bytes());
        std::fs::copy(&foreign_artifact, &entry.artifact).unwrap();
        std::fs::copy(&foreign_checksum, &entry.checksum).unwrap();
        match load(&cache, &ours) {
            CacheOutcome::Rebuilt(BadEntry::Rejected(reason)) => assert!(!reason.is_empty()),
            other => panic!("expected a rejected entry, got {other:?}"),
        }
        assert_eq!(load(&cache, &ours), CacheOutcome::Hit);
        // The foreign engine's own entry is untouched.
        assert_eq!(load(&cache, &foreign), CacheOutcome::Hit);
    }

    #[test]
    fn components_are_cached_and_mapped_too() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = engine();
        let component = b"(component (core module (func (export \"f\"))))";
        assert_eq!(cache.fill(&engine, component, "c.wat".as_ref()).unwrap(), CacheOutcome::Miss);
        let (mapped, outcome) =
            cache.load_or_compile::<Component>(&engine, component, "c.wat".as_ref()).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
        assert_eq!(mapped.component_type().exports(&engine).count(), 0);
        // A module's image is refused as a component (and rebuilt), never misread.
        let module_image = engine.precompile_module(ANSWER.as_bytes()).unwrap();
        let path = artifact(&cache);
        replace(&path, &module_image);
        std::fs::write(
            files(&cache, "sha256")[0].clone(),
            format!("{}\n", hex::encode(Sha256::digest(&module_image))),
        )
        .unwrap();
        match cache.load_or_compile::<Component>(&engine, component, "c.wat".as_ref()).unwrap().1 {
            CacheOutcome::Rebuilt(BadEntry::Rejected(_)) => {}
            other => panic!("expected a rejected entry, got {other:?}"),
        }
    }

    #[test]
    fn pool_size_does_not_change_the_key() {
        // `wasmpod run`, `serve` and `compile` size the pool differently and must share entries.
        let small = crate::build_engine(&crate::EngineOptions { max_instances: 2, ..Default::default() });
        let large = crate::build_engine(&crate::EngineOptions { max_instances: 8, ..Default::default() });
        assert_eq!(engine_hash(&small.unwrap()), engine_hash(&large.unwrap()));
    }

    #[test]
    fn invalid_module_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let err = cache
            .load_or_compile::<Module>(&engine(), b"\0asm\x01\0\0\0garbage", "junk.wasm".as_ref())
            .unwrap_err();
        assert!(err.to_string().contains("junk.wasm"), "{err}");
        assert!(files(&cache, "cwasm").is_empty());
    }

    #[test]
    fn temp_files_of_crashed_writes_are_deleted_at_once_or_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{}crashed", cache_entry::TEMP_PREFIX));
        let just_killed = dir.path().join(format!("{}killed", cache_entry::TEMP_PREFIX));
        let writing = dir.path().join(format!("{}writing", cache_entry::TEMP_PREFIX));
        let other = dir.path().join("unrelated.old");
        for path in [&stale, &just_killed, &writing, &other] {
            std::fs::write(path, b"half an image").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - atomic_file::STALE_TEMP_AGE * 2;
        for path in [&stale, &other] {
            File::options().write(true).open(path).unwrap().set_modified(long_ago).unwrap();
        }
        // A live writer (another process sharing the directory) holds the lock on its temp file.
        let writer = File::open(&writing).unwrap();
        writer.lock().unwrap();
        // A stale file someone still holds (a writer hung for ten minutes) goes too.
        let hung = File::open(&stale).unwrap();
        hung.lock().unwrap();
        ArtifactCache::open(dir.path()).unwrap();
        assert!(!stale.exists(), "a stale temp file is deleted");
        assert!(!just_killed.exists(), "a young one no writer holds is deleted at once");
        assert!(writing.exists(), "a young one a live writer holds is its write in progress");
        assert!(other.exists(), "only the cache's own temp files are touched");
        drop(writer);
        ArtifactCache::open(dir.path()).unwrap();
        assert!(!writing.exists(), "once its writer is gone, it is deleted");
    }

    #[test]
    fn unwritable_cache_still_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path().join("gone")).unwrap();
        std::fs::remove_dir(cache.dir()).unwrap();
        assert_eq!(load(&cache, &engine()), CacheOutcome::Miss);
    }
}
