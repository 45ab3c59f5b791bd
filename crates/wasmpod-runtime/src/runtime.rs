//! The process's Wasm machinery, and loading functions with it: compile each module once (or map
//! it from the artifact cache), link it once per route, run `_routes` once, build the registry.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmpod_wagi::RoutePattern;
use wasmtime::component::Component;
use wasmtime::{Engine, Linker, Module};

use crate::artifact_cache::{self, Compiled};
use crate::command::{self, Command, CommandState};
use crate::store::Sandbox;
use crate::wasi_http::{self, HttpState};
use crate::{
    build_engine, ArtifactCache, CacheOutcome, CgroupCpu, EngineOptions, EpochTicker, Error, Function,
    FunctionSpec, Guest, GuestLog, HttpComponent, Interface, ModuleLimits, RawProgram, Registry, WagiModule,
};

/// The process's Wasm machinery: one engine, one linker per kind of guest, one epoch clock, and
/// the artifact cache when one is configured. Build one per process with [`Runtime::new`], then
/// [`Runtime::load`] the functions.
pub struct Runtime {
    engine: Engine,
    command_linker: Linker<CommandState>,
    component_linker: wasmtime::component::Linker<HttpState>,
    cache: Option<ArtifactCache>,
    cgroup_cpu: Option<Arc<CgroupCpu>>,
    module_limits: ModuleLimits,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine, links WASI for both kinds of guest, starts the epoch clock and opens
    /// the artifact cache (if `options` names one).
    pub fn new(options: &EngineOptions) -> Result<Runtime, Error> {
        let engine = build_engine(options)?;
        let cache = options.cache_dir.as_ref().map(ArtifactCache::open).transpose()?;
        let command_linker = command::linker(&engine)?;
        let component_linker = wasi_http::linker(&engine)?;
        let ticker = EpochTicker::start(&engine);
        let cgroup_cpu = options.cgroup_cpu.clone();
        let module_limits = options.module_limits;
        Ok(Runtime {
            engine,
            command_linker,
            component_linker,
            cache,
            cgroup_cpu,
            module_limits,
            _ticker: ticker,
        })
    }

    /// The engine every function is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Instances alive right now (pool slots in use), for the metrics.
    pub fn instances_in_use(&self) -> u64 {
        self.engine.pooling_allocator_metrics().map_or(0, |m| m.core_instances())
    }

    /// The instance pool's idle slots that still hold memory, for the metrics: what the pod
    /// keeps resident between requests on purpose (see [`EngineOptions::keep_resident_bytes`]
    /// and [`EngineOptions::max_warm_slots`]).
    pub fn pool_idle(&self) -> crate::PoolIdle {
        self.engine.pooling_allocator_metrics().map_or(crate::PoolIdle::default(), |m| crate::PoolIdle {
            warm_slots: u64::from(m.unused_warm_memories()),
            resident_bytes: (m.unused_memory_bytes_resident() + m.unused_table_bytes_resident()) as u64,
        })
    }

    /// Loads every function, or none: a module that is missing, invalid, whose `_routes` fails or
    /// whose entrypoint is not exported stops the load with an error that names the route and
    /// the reason. (A served pod loads through [`crate::LiveRegistry`], which keeps serving
    /// around a broken function.)
    ///
    /// Each distinct module file is compiled once (or mapped from the artifact cache), in parallel
    /// across the machine's cores, with a log line giving its compile or load time.
    pub async fn load(&self, specs: &[FunctionSpec], log_dir: Option<&Path>) -> Result<Registry, Error> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut files = self.compile_files(specs.iter(), threads).await;
        let mut registry = Registry::default();
        let mut counters = Counters::new();
        for spec in specs {
            let file = match files.get_mut(&spec.module) {
                Some(Ok(file)) => &*file,
                Some(Err(e)) => return Err(std::mem::replace(e, Error::Engine(String::new()))),
                None => return Err(Error::Engine("a module was not compiled".to_owned())),
            };
            let prepared = self
                .prepare_source(
                    &Arc::new(spec.clone()),
                    &file.compiled,
                    log_dir,
                    &mut counters,
                    Entrypoints::Required,
                )
                .await?;
            for function in prepared.functions {
                registry.push(function);
            }
        }
        Ok(registry)
    }

    /// Compiles each distinct module file of `specs` once (or maps it from the artifact cache),
    /// on at most `threads` threads, off the async workers. Every file gets its own result.
    pub(crate) async fn compile_files<'s>(
        &self,
        specs: impl Iterator<Item = &'s FunctionSpec>,
        threads: usize,
    ) -> HashMap<PathBuf, Result<CompiledFile, Error>> {
        // Each distinct file once, in config order (a set, not a scan: pods load 10,000 functions).
        let mut seen = HashSet::new();
        let jobs: Vec<(PathBuf, String)> = specs
            .filter(|spec| seen.insert(&spec.module))
            .map(|spec| (spec.module.clone(), spec.route.clone()))
            .collect();
        if jobs.is_empty() {
            return HashMap::new();
        }
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let limits = self.module_limits;
        let paths: Vec<PathBuf> = jobs.iter().map(|(path, _)| path.clone()).collect();
        match tokio::task::spawn_blocking(move || {
            compile_in_parallel(&engine, cache.as_ref(), limits, jobs, threads)
        })
        .await
        {
            Ok(compiled) => compiled.into_iter().collect(),
            Err(e) => paths
                .into_iter()
                .map(|path| (path, Err(Error::Engine(format!("compile task failed: {e}")))))
                .collect(),
        }
    }

    /// Prepares every route of one configured function from its compiled file: one for a raw
    /// program or a component; for a WAGI module its own route and those its `_routes` prints
    /// (in WAGI's precedence: the sub-routes, last printed first, then its own).
    ///
    /// A route whose entrypoint is not exported is an error under [`Entrypoints::Required`], and
    /// a [`Guest::Failed`] function (500 per request, as in WAGI) with a warning otherwise.
    pub(crate) async fn prepare_source(
        &self,
        spec: &Arc<FunctionSpec>,
        compiled: &Compiled,
        log_dir: Option<&Path>,
        counters: &mut Counters,
        entrypoints: Entrypoints,
    ) -> Result<Prepared, Error> {
        let route = RoutePattern::parse(&spec.route);
        let mut prepared = Prepared::default();
        let module = match (compiled, spec.interface) {
            (Compiled::Module(module), None | Some(Interface::Wagi)) => module,
            (Compiled::Module(module), Some(Interface::Raw)) => {
                let command =
                    self.prepare_command(spec, module, &route, &spec.entrypoint, log_dir, counters)?;
                prepared
                    .push((Function::new(route, spec.clone(), Guest::Raw(RawProgram::new(command))), None));
                return Ok(prepared);
            }
            (Compiled::Component(component), None | Some(Interface::WasiHttp)) => {
                prepared.push((self.prepare_component(spec, component, route, log_dir, counters)?, None));
                return Ok(prepared);
            }
            (Compiled::Module(_), Some(interface @ Interface::WasiHttp))
            | (Compiled::Component(_), Some(interface @ (Interface::Wagi | Interface::Raw))) => {
                let (needs, is) = match interface {
                    Interface::WasiHttp => ("a component", "a core module"),
                    _ => ("a core module (a WASI command)", "a component"),
                };
                let reason = format!("interface {:?} needs {needs}, and this file is {is}", interface.name());
                return Err(module_error(&route.text(), spec, reason));
            }
        };
        let parent =
            self.wagi_route(spec, module, route.clone(), &spec.entrypoint, log_dir, counters, entrypoints)?;
        if module.get_export("_routes").is_some() {
            // `_routes` runs once, in an instance of its own.
            let runner = self.prepare_wagi(spec, module, &route, "_routes", log_dir, counters)?;
            let sub_routes = runner
                .dynamic_routes(&route)
                .await
                .map_err(|reason| module_error(&route.text(), spec, reason))?;
            for (pattern, entrypoint) in sub_routes.into_iter().rev() {
                let sub =
                    self.wagi_route(spec, module, pattern, &entrypoint, log_dir, counters, entrypoints)?;
                prepared.push(sub);
            }
        }
        prepared.push(parent);
        Ok(prepared)
    }

    /// One route of a WAGI module: ready, or failed for a missing entrypoint when `entrypoints`
    /// allows it (with the warning).
    #[allow(clippy::too_many_arguments)]
    fn wagi_route(
        &self,
        spec: &Arc<FunctionSpec>,
        module: &Module,
        route: RoutePattern,
        entrypoint: &str,
        log_dir: Option<&Path>,
        counters: &mut Counters,
        entrypoints: Entrypoints,
    ) -> Result<(Function, Option<Error>), Error> {
        match self.prepare_wagi(spec, module, &route, entrypoint, log_dir, counters) {
            Ok(wagi) => Ok((Function::new(route, spec.clone(), Guest::Wagi(wagi)), None)),
            Err(error @ Error::MissingEntrypoint { .. }) if entrypoints == Entrypoints::ServeFailed => {
                let failed = Guest::Failed(Arc::from(error.to_string().as_str()));
                Ok((Function::new(route, spec.clone(), failed), Some(error)))
            }
            Err(error) => Err(error),
        }
    }

    /// Links a core module once for one route and entrypoint as a WAGI module.
    fn prepare_wagi(
        &self,
        spec: &FunctionSpec,
        module: &Module,
        route: &RoutePattern,
        entrypoint: &str,
        log_dir: Option<&Path>,
        counters: &mut Counters,
    ) -> Result<WagiModule, Error> {
        let command = self.prepare_command(spec, module, route, entrypoint, log_dir, counters)?;
        Ok(WagiModule::new(command, spec.argv.clone()))
    }

    /// Links a core module once for one route and entrypoint (this is the `InstancePre` every
    /// request instantiates from).
    fn prepare_command(
        &self,
        spec: &FunctionSpec,
        module: &Module,
        route: &RoutePattern,
        entrypoint: &str,
        log_dir: Option<&Path>,
        counters: &mut Counters,
    ) -> Result<Command, Error> {
        let name: Arc<str> = Arc::from(route.text().as_str());
        if module.get_export(entrypoint).is_none() {
            return Err(Error::MissingEntrypoint {
                route: name.to_string(),
                module: spec.module.clone(),
                entrypoint: entrypoint.to_owned(),
            });
        }
        let sandbox = Sandbox::new(name.clone(), spec, GuestLog::open(log_dir, &name)?, counters.get(&name));
        Command::prepare(&self.command_linker, module, entrypoint, spec, sandbox, self.cgroup_cpu.clone())
            .map_err(|reason| module_error(&name, spec, reason))
    }

    /// Links a `wasi:http` component once (its `ProxyPre`) and parses its outbound allow-list.
    /// A wildcard route hands the component the full request path.
    fn prepare_component(
        &self,
        spec: &Arc<FunctionSpec>,
        component: &Component,
        route: RoutePattern,
        log_dir: Option<&Path>,
        counters: &mut Counters,
    ) -> Result<Function, Error> {
        let name: Arc<str> = Arc::from(route.text().as_str());
        let sandbox = Sandbox::new(name.clone(), spec, GuestLog::open(log_dir, &name)?, counters.get(&name));
        let component = HttpComponent::prepare(&self.component_linker, component, spec, sandbox)
            .map_err(|reason| module_error(&name, spec, reason))?;
        Ok(Function::new(route, spec.clone(), Guest::Http(component)))
    }
}

/// Whether a route whose entrypoint is not exported stops the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entrypoints {
    /// It is a load error (`Runtime::load`, `--strict`).
    Required,
    /// It loads as a [`Guest::Failed`] function that answers 500, with a warning (WAGI's rule).
    ServeFailed,
}

/// The routes one configured function became.
#[derive(Default)]
pub(crate) struct Prepared {
    /// In precedence order.
    pub(crate) functions: Vec<Arc<Function>>,
    /// Routes that loaded as failed ([`Entrypoints::ServeFailed`]).
    pub(crate) warnings: Vec<Error>,
}

impl Prepared {
    fn push(&mut self, (function, warning): (Function, Option<Error>)) {
        self.functions.push(Arc::new(function));
        self.warnings.extend(warning);
    }
}

/// Each function's outbound refusal count by name, shared by its versions.
#[derive(Default)]
pub(crate) struct Counters(HashMap<Arc<str>, Arc<AtomicU64>>);

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters::default()
    }

    /// The counter of `name`, created at 0 the first time.
    fn get(&mut self, name: &Arc<str>) -> Arc<AtomicU64> {
        self.0.entry(name.clone()).or_default().clone()
    }

    /// The counters of `functions` (what a new [`Counters`] for the next load starts from).
    pub(crate) fn of<'f>(functions: impl Iterator<Item = &'f Arc<Function>>) -> Counters {
        let mut counters = Counters::new();
        for function in functions {
            if let Some(sandbox) = function.sandbox() {
                counters.0.insert(function.name().clone(), sandbox.denied.clone());
            }
        }
        counters
    }
}

fn module_error(route: &str, spec: &FunctionSpec, reason: String) -> Error {
    Error::Module { route: route.to_owned(), module: spec.module.clone(), reason }
}

/// A compiled module file, and what identifies the bytes it was compiled from.
pub(crate) struct CompiledFile {
    pub(crate) compiled: Compiled,
    /// The file as it was when read (a reload compares it to tell a changed file).
    pub(crate) stamp: FileStamp,
    /// Hex SHA-256 of the bytes.
    pub(crate) sha256: String,
    pub(crate) size: u64,
    /// Compiling (or mapping from the cache) took this long.
    pub(crate) compile_time: std::time::Duration,
}

/// What a file's metadata says about its content: a file whose stamp is unchanged is not read
/// again on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` now, if it can be read.
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() })
    }
}

/// Compiles each module (or maps it from the artifact cache) on at most `threads` threads
/// (wasmtime compiles one module on one thread: the engine has parallel compilation off, so that
/// `threads` bounds what compiling takes from serving). Logs one line per module with its time.
fn compile_in_parallel(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    limits: ModuleLimits,
    jobs: Vec<(PathBuf, String)>,
    threads: usize,
) -> Vec<(PathBuf, Result<CompiledFile, Error>)> {
    let workers = threads.min(jobs.len()).max(1);
    let next = AtomicUsize::new(0);
    let from_cache = AtomicUsize::new(0);
    let results: Mutex<Vec<(PathBuf, Result<CompiledFile, Error>)>> =
        Mutex::new(Vec::with_capacity(jobs.len()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, route)) = jobs.get(index) else { break };
                let result = compile_one(engine, cache, limits, path, route).map(|(file, outcome)| {
                    if outcome == CacheOutcome::Hit {
                        from_cache.fetch_add(1, Ordering::Relaxed);
                    }
                    file
                });
                results.lock().unwrap_or_else(|e| e.into_inner()).push((path.clone(), result));
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let ready = results.iter().filter(|(_, r)| r.is_ok()).count();
    let from_cache = from_cache.into_inner();
    tracing::info!(
        modules = ready,
        failed = results.len() - ready,
        from_cache,
        compiled = ready - from_cache,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "modules ready"
    );
    results
}

/// Reads and compiles one file (or maps it from the artifact cache), with a log line. A file
/// that changes while it is read is refused: it is being written, and its next version will be
/// loaded when the writer is done.
fn compile_one(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    limits: ModuleLimits,
    path: &Path,
    route: &str,
) -> Result<(CompiledFile, CacheOutcome), Error> {
    let module_error =
        |reason: String| Error::Module { route: route.to_owned(), module: path.to_owned(), reason };
    limits.check_file(path).map_err(module_error)?;
    let stamp = FileStamp::of(path);
    let bytes = std::fs::read(path).map_err(|e| module_error(format!("cannot read: {e}")))?;
    limits.check_bytes(&bytes).map_err(module_error)?;
    let start = Instant::now();
    let kind = if artifact_cache::is_component(&bytes) { "component" } else { "module" };
    let (compiled, outcome) = artifact_cache::compile(engine, cache, &bytes, path).map_err(|e| match e {
        Error::InvalidModule { reason, .. } => module_error(format!("invalid {kind}: {reason}")),
        other => other,
    })?;
    let compile_time = start.elapsed();
    let stamp = match (stamp, FileStamp::of(path)) {
        (Some(before), Some(after)) if before == after => after,
        _ => {
            return Err(module_error("the file changed while it was read (still being written?)".to_owned()))
        }
    };
    let elapsed_ms = compile_time.as_secs_f64() * 1000.0;
    if outcome == CacheOutcome::Hit {
        // Not slow work, and a pod may map thousands: the "modules ready" line counts them.
        tracing::debug!(module = %path.display(), kind, bytes = bytes.len(), load_ms = elapsed_ms, "loaded from artifact cache");
    } else {
        tracing::info!(
            module = %path.display(),
            kind,
            bytes = bytes.len(),
            compile_ms = elapsed_ms,
            cache = cache.map(|_| tracing::field::display(&outcome)),
            "compiled"
        );
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let file = CompiledFile { compiled, stamp, sha256, size: bytes.len() as u64, compile_time };
    Ok((file, outcome))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A runtime sized for tests: a few small instance slots.
    pub(crate) fn runtime() -> Runtime {
        let options =
            EngineOptions { max_instances: 8, max_memory_bytes: 256 << 20, ..EngineOptions::default() };
        Runtime::new(&options).expect("runtime")
    }

    /// Loads one function from `module` at `route`.
    pub(crate) async fn load_one(route: &str, module: impl Into<PathBuf>) -> (Runtime, Arc<Function>) {
        let runtime = runtime();
        let registry = runtime.load(&[FunctionSpec::new(route, module)], None).await.expect("load");
        let function = registry.functions().next().expect("one function").clone();
        (runtime, function)
    }

    fn routes(registry: &Registry) -> Vec<(String, &str, &str)> {
        registry
            .functions()
            .map(|f| {
                let kind = match f.guest() {
                    Guest::Wagi(_) => "wagi",
                    Guest::Raw(_) => "raw",
                    Guest::Http(_) => "http",
                    Guest::Failed(_) => "failed",
                };
                (f.route().text(), kind, f.entrypoint())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_folder_of_both_kinds_loads_each_as_its_kind() {
        let runtime = runtime();
        let specs = [
            FunctionSpec::new("/hello", wasmpod_guests::HELLO),
            FunctionSpec::new("/component/...", wasmpod_guests::HTTP_COMPONENT),
            FunctionSpec::new("/wat", wasmpod_guests::wat("hello.wat")),
        ];
        let registry = runtime.load(&specs, None).await.unwrap();
        assert_eq!(
            routes(&registry),
            [
                ("/hello".to_owned(), "wagi", "_start"),
                ("/component/...".to_owned(), "http", "wasi:http/incoming-handler"),
                ("/wat".to_owned(), "wagi", "_start"),
            ]
        );
        assert!(matches!(registry.lookup("/component/echo").map(|f| f.guest()), Some(Guest::Http(_))));
        assert!(registry.lookup("/nothing").is_none());
    }

    #[tokio::test]
    async fn dynamic_routes_come_before_their_module_last_printed_first() {
        let runtime = runtime();
        let registry =
            runtime.load(&[FunctionSpec::new("/r/...", wasmpod_guests::ROUTER)], None).await.unwrap();
        assert_eq!(
            routes(&registry),
            [
                ("/r/narrow/deep".to_owned(), "wagi", "one"),
                ("/r/narrow/...".to_owned(), "wagi", "two"),
                ("/r/wide/...".to_owned(), "wagi", "two"),
                ("/r/wide/exact".to_owned(), "wagi", "one"),
                ("/r/two/...".to_owned(), "wagi", "two"),
                ("/r/one".to_owned(), "wagi", "one"),
                ("/r/...".to_owned(), "wagi", "_start"),
            ]
        );
    }

    #[tokio::test]
    async fn one_file_used_by_two_routes_is_compiled_once() {
        let runtime = runtime();
        let specs =
            [FunctionSpec::new("/a", wasmpod_guests::HELLO), FunctionSpec::new("/b", wasmpod_guests::HELLO)];
        let files = runtime.compile_files(specs.iter(), 1).await;
        assert_eq!(files.len(), 1);
        assert_eq!(runtime.load(&specs, None).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn load_errors_name_the_route_and_the_reason() {
        struct Case {
            spec: FunctionSpec,
            message: &'static str,
        }
        let mut no_entrypoint = FunctionSpec::new("/e", wasmpod_guests::HELLO);
        no_entrypoint.entrypoint = "nope".to_owned();
        let mut bad_hosts = FunctionSpec::new("/c", wasmpod_guests::HTTP_COMPONENT);
        bad_hosts.allowed_hosts = vec!["example.com".to_owned()];
        let cases = [
            Case {
                spec: FunctionSpec::new("/m", "/no/such/file.wasm"),
                message: "route \"/m\": module /no/such/file.wasm: cannot read",
            },
            Case { spec: no_entrypoint, message: "no exported function \"nope\" (the entrypoint)" },
            Case { spec: bad_hosts, message: "allowed_hosts entry \"example.com\": expected scheme://host" },
        ];
        let runtime = runtime();
        for case in cases {
            let error = runtime.load(std::slice::from_ref(&case.spec), None).await.err().expect(case.message);
            assert!(error.to_string().contains(case.message), "{}: {error}", case.spec.route);
        }
    }

    #[tokio::test]
    async fn invalid_wasm_is_a_load_error_naming_the_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0garbage").unwrap();
        let err = runtime().load(&[FunctionSpec::new("/j", &path)], None).await.err().expect("an error");
        assert!(err.to_string().starts_with("route \"/j\": module "), "{err}");
        assert!(err.to_string().contains("invalid module"), "{err}");
    }
}
