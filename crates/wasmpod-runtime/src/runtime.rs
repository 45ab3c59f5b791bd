//! The process's Wasm machinery, and loading functions with it: compile each module once (or map
//! it from the artifact cache), link it once per route, run `_routes` once, build the registry.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    build_engine, ArtifactCache, CacheOutcome, EngineOptions, EpochTicker, Error, Function, FunctionSpec,
    Guest, GuestLog, HttpComponent, Interface, RawProgram, Registry, WagiModule,
};

/// The process's Wasm machinery: one engine, one linker per kind of guest, one epoch clock, and
/// the artifact cache when one is configured. Build one per process with [`Runtime::new`], then
/// [`Runtime::load`] the functions.
pub struct Runtime {
    engine: Engine,
    command_linker: Linker<CommandState>,
    component_linker: wasmtime::component::Linker<HttpState>,
    cache: Option<ArtifactCache>,
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
        Ok(Runtime { engine, command_linker, component_linker, cache, _ticker: ticker })
    }

    /// The engine every function is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Instances alive right now (pool slots in use), for the metrics.
    pub fn instances_in_use(&self) -> u64 {
        self.engine.pooling_allocator_metrics().map_or(0, |m| m.core_instances())
    }

    /// Loads every function, or none: a module that is missing, invalid, or whose `_routes` fails
    /// stops the load with an error that names the route and the reason.
    ///
    /// Each distinct module file is compiled once (or mapped from the artifact cache), in parallel
    /// across the machine's cores, with a log line giving its compile or load time.
    pub async fn load(&self, specs: &[FunctionSpec], log_dir: Option<&Path>) -> Result<Registry, Error> {
        let modules = self.compile_all(specs).await?;
        let mut registry = Registry::default();
        for spec in specs {
            let spec = Arc::new(spec.clone());
            let route = RoutePattern::parse(&spec.route);
            let module = match (&modules[&spec.module], spec.interface) {
                (Compiled::Module(module), None | Some(Interface::Wagi)) => module,
                (Compiled::Module(module), Some(Interface::Raw)) => {
                    let command = self.prepare_command(&spec, module, &route, &spec.entrypoint, log_dir)?;
                    let guest = Guest::Raw(RawProgram::new(command));
                    registry.push(Arc::new(Function::new(route, spec.clone(), guest)));
                    continue;
                }
                (Compiled::Component(component), None | Some(Interface::WasiHttp)) => {
                    registry.push(Arc::new(self.prepare_component(&spec, component, route, log_dir)?));
                    continue;
                }
                (Compiled::Module(_), Some(interface @ Interface::WasiHttp))
                | (Compiled::Component(_), Some(interface @ (Interface::Wagi | Interface::Raw))) => {
                    let (needs, is) = match interface {
                        Interface::WasiHttp => ("a component", "a core module"),
                        _ => ("a core module (a WASI command)", "a component"),
                    };
                    let reason =
                        format!("interface {:?} needs {needs}, and this file is {is}", interface.name());
                    return Err(module_error(&route.text(), &spec, reason));
                }
            };
            let parent = self.prepare_wagi(&spec, module, &route, &spec.entrypoint, log_dir)?;
            if module.get_export("_routes").is_some() {
                let sub_routes = parent
                    .dynamic_routes(&route)
                    .await
                    .map_err(|reason| module_error(&route.text(), &spec, reason))?;
                // WAGI's precedence: the module's sub-routes, last printed first, then its own route.
                for (pattern, entrypoint) in sub_routes.into_iter().rev() {
                    let sub = self.prepare_wagi(&spec, module, &pattern, &entrypoint, log_dir)?;
                    registry.push(Arc::new(Function::new(pattern, spec.clone(), Guest::Wagi(sub))));
                }
            }
            registry.push(Arc::new(Function::new(route, spec, Guest::Wagi(parent))));
        }
        Ok(registry)
    }

    async fn compile_all(&self, specs: &[FunctionSpec]) -> Result<HashMap<PathBuf, Compiled>, Error> {
        // Each distinct file once, in config order (a set, not a scan: pods load 10,000 functions).
        let mut seen = HashSet::new();
        let jobs: Vec<(PathBuf, String)> = specs
            .iter()
            .filter(|spec| seen.insert(&spec.module))
            .map(|spec| (spec.module.clone(), spec.route.clone()))
            .collect();
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let compiled =
            tokio::task::spawn_blocking(move || compile_in_parallel(&engine, cache.as_ref(), jobs))
                .await
                .map_err(|e| Error::Engine(format!("compile task failed: {e}")))??;
        Ok(compiled.into_iter().collect())
    }

    /// Links a core module once for one route and entrypoint as a WAGI module.
    fn prepare_wagi(
        &self,
        spec: &FunctionSpec,
        module: &Module,
        route: &RoutePattern,
        entrypoint: &str,
        log_dir: Option<&Path>,
    ) -> Result<WagiModule, Error> {
        let command = self.prepare_command(spec, module, route, entrypoint, log_dir)?;
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
    ) -> Result<Command, Error> {
        let name: Arc<str> = Arc::from(route.text().as_str());
        let sandbox = Sandbox::new(name.clone(), spec, GuestLog::open(log_dir, &name)?);
        Command::prepare(&self.command_linker, module, entrypoint, spec, sandbox)
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
    ) -> Result<Function, Error> {
        let name: Arc<str> = Arc::from(route.text().as_str());
        let sandbox = Sandbox::new(name.clone(), spec, GuestLog::open(log_dir, &name)?);
        let component = HttpComponent::prepare(&self.component_linker, component, spec, sandbox)
            .map_err(|reason| module_error(&name, spec, reason))?;
        Ok(Function::new(route, spec.clone(), Guest::Http(component)))
    }
}

fn module_error(route: &str, spec: &FunctionSpec, reason: String) -> Error {
    Error::Module { route: route.to_owned(), module: spec.module.clone(), reason }
}

/// Compiles each module (or maps it from the artifact cache) on one of the machine's cores
/// (wasmtime also parallelises inside a module). Logs one line per module with its time.
fn compile_in_parallel(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    jobs: Vec<(PathBuf, String)>,
) -> Result<Vec<(PathBuf, Compiled)>, Error> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let next = AtomicUsize::new(0);
    let from_cache = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<(PathBuf, Compiled), Error>>> = Mutex::new(Vec::with_capacity(jobs.len()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, route)) = jobs.get(index) else { break };
                let result = compile_one(engine, cache, path, route).map(|(m, outcome)| {
                    if outcome == CacheOutcome::Hit {
                        from_cache.fetch_add(1, Ordering::Relaxed);
                    }
                    (path.clone(), m)
                });
                results.lock().unwrap_or_else(|e| e.into_inner()).push(result);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let compiled = results.into_iter().collect::<Result<Vec<_>, Error>>()?;
    let from_cache = from_cache.into_inner();
    tracing::info!(
        modules = compiled.len(),
        from_cache,
        compiled = compiled.len() - from_cache,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "modules ready"
    );
    Ok(compiled)
}

/// Reads and compiles one file (or maps it from the artifact cache), with a log line.
fn compile_one(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    path: &Path,
    route: &str,
) -> Result<(Compiled, CacheOutcome), Error> {
    let module_error =
        |reason: String| Error::Module { route: route.to_owned(), module: path.to_owned(), reason };
    let bytes = std::fs::read(path).map_err(|e| module_error(format!("cannot read: {e}")))?;
    let start = Instant::now();
    let kind = if artifact_cache::is_component(&bytes) { "component" } else { "module" };
    let (compiled, outcome) = artifact_cache::compile(engine, cache, &bytes, path).map_err(|e| match e {
        Error::InvalidModule { reason, .. } => module_error(format!("invalid {kind}: {reason}")),
        other => other,
    })?;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
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
    Ok((compiled, outcome))
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
        let modules = runtime.compile_all(&specs).await.unwrap();
        assert_eq!(modules.len(), 1);
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
