//! The live registry: the functions a pod serves now, replaced atomically while requests hold
//! the ones they started with.
//!
//! Requests read the current [`Registry`] (an `ArcSwap` load, no lock) and keep an
//! `Arc<Function>` while they run. A reload ([`LiveRegistry::update`]) is given the whole
//! desired set of functions; it compiles only what changed (a file whose size, modification time
//! or inode changed, and then only if its SHA-256 did), off the async workers on a bounded number
//! of threads, prepares the changed functions, and swaps in a new registry in one store. The old
//! version of a replaced or removed function is freed when its last request ends. A function that
//! fails to load keeps its previous version when it has one; otherwise it is served as
//! [`Guest::Failed`] (500, with the reason in the log).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};

use crate::runtime::{CompiledFile, Counters, Entrypoints, FileStamp};
use crate::{Error, Function, FunctionSpec, Guest, Registry, Runtime};

/// Threads that compile during a reload, unless configured (`--compile-threads`): one, so that
/// on a small pod compiling a large module takes one core, never every core, from serving.
pub const DEFAULT_COMPILE_THREADS: usize = 1;

/// The functions a pod serves, swapped atomically on reload. One per process; see the module
/// documentation.
pub struct LiveRegistry {
    runtime: Runtime,
    current: ArcSwap<Registry>,
    sources: tokio::sync::Mutex<Vec<Source>>,
    log_dir: Option<PathBuf>,
    reload_threads: usize,
    entrypoints: Entrypoints,
    /// Whether a first load happened (it compiles on every core; reloads on `reload_threads`).
    loaded_once: AtomicBool,
}

/// One configured function as loaded: its spec, the file it was loaded from, and its routes.
struct Source {
    spec: Arc<FunctionSpec>,
    /// The loaded file's stamp and SHA-256 (none when it never loaded).
    file: Option<(FileStamp, String)>,
    /// The stamp of the file version that last failed to load, so that an unchanged broken file
    /// is not tried (and counted) again at every reload.
    failed: Option<FileStamp>,
    functions: Vec<Arc<Function>>,
}

/// What one load or reload did, function by function (unchanged functions are not listed).
#[derive(Debug, Default)]
pub struct LoadReport {
    /// In the order of the configuration.
    pub events: Vec<LoadEvent>,
}

/// What happened to one configured function.
#[derive(Debug)]
pub struct LoadEvent {
    /// Its route as configured.
    pub route: String,
    /// Its module file.
    pub module: PathBuf,
    /// What happened.
    pub outcome: LoadOutcome,
}

/// What happened to one configured function in a load.
#[derive(Debug)]
pub enum LoadOutcome {
    /// Compiled (or mapped from the artifact cache) and serving; `replaced` when an older
    /// version was serving before. `warnings`: routes that load as failed (a missing entrypoint).
    Loaded {
        /// Whether it replaced a version that was serving.
        replaced: bool,
        /// How long compiling (or mapping) took.
        compile_time: Duration,
        /// Hex SHA-256 of the module.
        sha256: String,
        /// Module size in bytes.
        size: u64,
        /// Routes served as failed, with the reason.
        warnings: Vec<Error>,
    },
    /// It could not be loaded. `kept_previous`: its older version goes on serving; otherwise its
    /// route answers 500.
    Failed {
        /// Why.
        error: Error,
        /// Whether an older version goes on serving.
        kept_previous: bool,
    },
    /// It is no longer configured: unloaded (requests in flight finish on it).
    Removed,
}

impl LoadReport {
    /// The first problem that must stop a starting pod, if any: with `strict`, any failure or
    /// warning; otherwise any failure but a missing entrypoint (WAGI's start-up rules).
    pub fn fatal(&self, strict: bool) -> Option<&Error> {
        self.events.iter().find_map(|event| match &event.outcome {
            LoadOutcome::Failed { error, .. } => Some(error),
            LoadOutcome::Loaded { warnings, .. } if strict => warnings.first(),
            _ => None,
        })
    }
}

impl LiveRegistry {
    /// An empty registry over `runtime`; [`LiveRegistry::update`] loads it. `reload_threads`
    /// bounds the threads that compile during a reload (the first load uses every core).
    /// `strict`: a missing entrypoint is a load failure instead of a function that answers 500.
    pub fn new(
        runtime: Runtime,
        log_dir: Option<&Path>,
        reload_threads: usize,
        strict: bool,
    ) -> LiveRegistry {
        LiveRegistry {
            runtime,
            current: ArcSwap::from_pointee(Registry::default()),
            sources: tokio::sync::Mutex::new(Vec::new()),
            log_dir: log_dir.map(Path::to_owned),
            reload_threads: reload_threads.max(1),
            entrypoints: if strict { Entrypoints::Required } else { Entrypoints::ServeFailed },
            loaded_once: AtomicBool::new(false),
        }
    }

    /// The registry requests are served from now. Hold it only as long as a lookup: a request
    /// keeps the `Arc<Function>` it found, not the registry.
    pub fn current(&self) -> Guard<Arc<Registry>> {
        self.current.load()
    }

    /// The runtime functions are loaded with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Makes `specs` (the whole desired set, in precedence order) the served functions: loads
    /// what is new or changed, unloads what is gone, keeps what is unchanged, then swaps the
    /// registry in one store. Reloads run one at a time.
    pub async fn update(&self, specs: Vec<FunctionSpec>) -> LoadReport {
        let mut sources = self.sources.lock().await;
        let first_load = !self.loaded_once.swap(true, Ordering::SeqCst);
        let mut old: Vec<Option<Source>> = std::mem::take(&mut *sources).into_iter().map(Some).collect();
        let mut counters = Counters::of(old.iter().flatten().flat_map(|s| s.functions.iter()));

        // What can be kept as it is, and what must be (re)loaded.
        let mut plan = Vec::with_capacity(specs.len());
        for spec in specs {
            let stamp = FileStamp::of(&spec.module);
            let previous = old
                .iter_mut()
                .position(|s| {
                    s.as_ref().is_some_and(|s| s.spec.route == spec.route && s.spec.module == spec.module)
                })
                .and_then(|i| old[i].take());
            let unchanged = previous.as_ref().is_some_and(|p| {
                *p.spec == spec
                    && stamp.is_some()
                    && (p.file.as_ref().map(|(s, _)| Some(*s)) == Some(stamp) || p.failed == stamp)
            });
            plan.push((spec, stamp, previous, unchanged));
        }
        let threads = if first_load {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.reload_threads
        };
        let to_compile = plan.iter().filter(|(_, _, _, unchanged)| !unchanged).map(|(spec, ..)| spec);
        let files = self.runtime.compile_files(to_compile, threads).await;

        let mut report = LoadReport::default();
        for (spec, stamp, previous, unchanged) in plan {
            if unchanged {
                sources.extend(previous);
                continue;
            }
            let spec = Arc::new(spec);
            let file = files.get(&spec.module);
            let source = self.load_source(spec, stamp, file, previous, &mut counters, &mut report).await;
            sources.push(source);
        }
        for gone in old.into_iter().flatten() {
            report.events.push(LoadEvent {
                route: gone.spec.route.clone(),
                module: gone.spec.module.clone(),
                outcome: LoadOutcome::Removed,
            });
        }

        let mut registry = Registry::default();
        for function in sources.iter().flat_map(|s| s.functions.iter()) {
            registry.push(function.clone());
        }
        self.current.store(Arc::new(registry));
        report
    }

    async fn load_source(
        &self,
        spec: Arc<FunctionSpec>,
        stamp: Option<FileStamp>,
        file: Option<&Result<CompiledFile, Error>>,
        previous: Option<Source>,
        counters: &mut Counters,
        report: &mut LoadReport,
    ) -> Source {
        let loaded = match file {
            Some(Ok(file)) => {
                let prepared = self
                    .runtime
                    .prepare_source(
                        &spec,
                        &file.compiled,
                        self.log_dir.as_deref(),
                        counters,
                        self.entrypoints,
                    )
                    .await;
                prepared.map(|prepared| (file, prepared))
            }
            Some(Err(error)) => Err(for_spec(error, &spec)),
            None => Err(for_spec(&Error::Engine("not compiled".to_owned()), &spec)),
        };
        let event = |outcome| LoadEvent { route: spec.route.clone(), module: spec.module.clone(), outcome };
        match loaded {
            Ok((file, prepared)) => {
                // The same bytes as the version serving, and the same settings: keep that one.
                let same = previous.as_ref().is_some_and(|p| {
                    p.spec == spec && p.file.as_ref().is_some_and(|(_, sha)| *sha == file.sha256)
                });
                if let (true, Some(previous)) = (same, previous.as_ref()) {
                    let functions = previous.functions.clone();
                    return Source {
                        spec,
                        file: Some((file.stamp, file.sha256.clone())),
                        failed: None,
                        functions,
                    };
                }
                report.events.push(event(LoadOutcome::Loaded {
                    replaced: previous.as_ref().is_some_and(|p| p.file.is_some()),
                    compile_time: file.compile_time,
                    sha256: file.sha256.clone(),
                    size: file.size,
                    warnings: prepared.warnings,
                }));
                Source {
                    spec,
                    file: Some((file.stamp, file.sha256.clone())),
                    failed: None,
                    functions: prepared.functions,
                }
            }
            Err(error) => match previous.filter(|p| p.file.is_some()) {
                Some(previous) => {
                    report.events.push(event(LoadOutcome::Failed { error, kept_previous: true }));
                    Source { failed: stamp, ..previous }
                }
                None => {
                    let reason: Arc<str> = Arc::from(error.to_string().as_str());
                    let route = wasmpod_wagi::RoutePattern::parse(&spec.route);
                    let failed = Arc::new(Function::new(route, spec.clone(), Guest::Failed(reason)));
                    report.events.push(event(LoadOutcome::Failed { error, kept_previous: false }));
                    Source { spec, file: None, failed: stamp, functions: vec![failed] }
                }
            },
        }
    }
}

/// A compile error of a file, worded for `spec` (a file may serve several routes).
fn for_spec(error: &Error, spec: &FunctionSpec) -> Error {
    let reason = match error {
        Error::Module { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    Error::Module { route: spec.route.clone(), module: spec.module.clone(), reason }
}
