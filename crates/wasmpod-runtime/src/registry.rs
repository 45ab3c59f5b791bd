//! Loading functions: compile each module once (or map it from the artifact cache), link once,
//! run `_routes` once, build the table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmpod_wagi::{parse_routes_text, RouteMatch, RoutePattern, RouteTable};
use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, Linker, Module, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::artifact_cache::{self, Compiled};
use crate::experimental_http;
use crate::function::{Function, Prepared, WagiState};
use crate::limits::yield_on_epoch;
use crate::outbound::OutboundPolicy;
use crate::wasi_http::{HttpFunction, HttpState};
use crate::{
    build_engine, ArtifactCache, CacheOutcome, EngineOptions, EpochTicker, Error, FunctionSpec, GuestLog,
    RequestLimits,
};

/// How long a module's `_routes` export may run at load.
const ROUTES_TIMEOUT: Duration = Duration::from_secs(10);

/// The process's Wasm machinery: one engine, one linker per kind of guest, one epoch clock, and
/// the artifact cache when one is configured.
pub struct Runtime {
    engine: Engine,
    linker: Linker<WagiState>,
    /// WASI 0.2 plus `wasi:http`, for components.
    component_linker: wasmtime::component::Linker<HttpState>,
    cache: Option<ArtifactCache>,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(options: &EngineOptions) -> Result<Runtime, Error> {
        let engine = build_engine(options)?;
        let cache = options.cache_dir.as_ref().map(ArtifactCache::open).transpose()?;
        let mut linker = Linker::new(&engine);
        let link_error = |e: wasmtime::Error| Error::Engine(format!("linking WASI: {e:#}"));
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut WagiState| &mut s.wasi)
            .map_err(link_error)?;
        wasmtime_wasi::p0::add_to_linker_async(&mut linker, |s: &mut WagiState| &mut s.wasi)
            .map_err(link_error)?;
        experimental_http::add_to_linker(&mut linker).map_err(link_error)?;
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component_linker).map_err(link_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component_linker).map_err(link_error)?;
        let ticker = EpochTicker::start(&engine);
        Ok(Runtime { engine, linker, component_linker, cache, _ticker: ticker })
    }

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
        let mut routes = RouteTable::default();
        for spec in specs {
            let spec = Arc::new(spec.clone());
            let module = match &modules[&spec.module] {
                Compiled::Module(module) => module,
                Compiled::Component(component) => {
                    let function = self.prepare_component(&spec, component, log_dir)?;
                    routes.push(function.route.clone(), Arc::new(function));
                    continue;
                }
            };
            let parent =
                self.prepare(&spec, module, RoutePattern::parse(&spec.route), &spec.entrypoint, log_dir)?;
            if module.get_export("_routes").is_some() {
                let sub_routes = self.dynamic_routes(&parent).await?;
                // WAGI's precedence: the module's sub-routes, last printed first, then its own route.
                for (pattern, entrypoint) in sub_routes.into_iter().rev() {
                    let function = self.prepare(&spec, module, pattern, &entrypoint, log_dir)?;
                    routes.push(function.route.clone(), Arc::new(function));
                }
            }
            routes.push(parent.route.clone(), Arc::new(parent));
        }
        Ok(Registry { routes })
    }

    async fn compile_all(&self, specs: &[FunctionSpec]) -> Result<HashMap<PathBuf, Compiled>, Error> {
        // Each distinct file once, in config order (a set, not a scan: pods load 10,000 functions).
        let mut seen = std::collections::HashSet::new();
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

    /// Links a module once for one route and entrypoint (this is the `InstancePre` every request
    /// instantiates from).
    fn prepare(
        &self,
        spec: &Arc<FunctionSpec>,
        module: &Module,
        route: RoutePattern,
        entrypoint: &str,
        log_dir: Option<&Path>,
    ) -> Result<Function, Error> {
        let name = route.text();
        let module_error =
            |reason: String| Error::Module { route: name.clone(), module: spec.module.clone(), reason };
        let pre = self.linker.instantiate_pre(module).map_err(|e| module_error(format!("{e:#}")))?;
        // Only a module that can call out needs its allow-list (as in WAGI, which never read it
        // otherwise); a malformed one stops the load instead of failing every call.
        let outbound = if module.imports().any(|i| i.module() == experimental_http::MODULE) {
            Some(Arc::new(OutboundPolicy::parse(&spec.allowed_hosts).map_err(module_error)?))
        } else {
            None
        };

        let results = match module.get_export(entrypoint) {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() <= 4 => {
                ty.results().len()
            }
            Some(ExternType::Func(_)) => {
                return Err(module_error(format!("entrypoint {entrypoint:?} must take no parameters")));
            }
            Some(_) => return Err(module_error(format!("export {entrypoint:?} is not a function"))),
            None => {
                return Err(module_error(format!("no exported function {entrypoint:?} (the entrypoint)")))
            }
        };
        let Some(export) = module.get_export_index(entrypoint) else {
            return Err(module_error(format!("no exported function {entrypoint:?} (the entrypoint)")));
        };
        Ok(Function {
            name: Arc::from(name.as_str()),
            log: GuestLog::open(log_dir, &name)?,
            route,
            spec: spec.clone(),
            prepared: Prepared::Wagi {
                pre,
                entrypoint: export,
                entrypoint_name: entrypoint.to_owned(),
                results,
                outbound,
            },
        })
    }

    /// Links a `wasi:http` component once (its `ProxyPre`) and parses its outbound allow-list.
    /// A wildcard route hands the component the full request path.
    fn prepare_component(
        &self,
        spec: &Arc<FunctionSpec>,
        component: &Component,
        log_dir: Option<&Path>,
    ) -> Result<Function, Error> {
        let route = RoutePattern::parse(&spec.route);
        let name = route.text();
        let module_error =
            |reason: String| Error::Module { route: name.clone(), module: spec.module.clone(), reason };
        let pre =
            self.component_linker.instantiate_pre(component).map_err(|e| module_error(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| {
            module_error(format!("a component must export wasi:http/incoming-handler (0.2.x): {e:#}"))
        })?;
        let outbound = Arc::new(OutboundPolicy::parse(&spec.allowed_hosts).map_err(module_error)?);
        Ok(Function {
            name: Arc::from(name.as_str()),
            log: GuestLog::open(log_dir, &name)?,
            route,
            spec: spec.clone(),
            prepared: Prepared::Http(HttpFunction { pre, outbound }),
        })
    }

    /// Runs the module's `_routes` export once, with nothing but a stdout, and joins what it
    /// printed under the module's route.
    async fn dynamic_routes(&self, parent: &Function) -> Result<Vec<(RoutePattern, String)>, Error> {
        let route_error = |reason: String| Error::Module {
            route: parent.name.to_string(),
            module: parent.spec.module.clone(),
            reason,
        };
        let stdout = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).stderr(parent.log.clone()).build_p1();
        let mut store = Store::new(&self.engine, WagiState::new(wasi, &RequestLimits::default()));
        yield_on_epoch(&mut store);
        let call = async {
            let Prepared::Wagi { pre, .. } = &parent.prepared else {
                return Err(wasmtime::format_err!("not a WAGI module"));
            };
            let instance = pre.instantiate_async(&mut store).await?;
            let func = instance.get_typed_func::<(), ()>(&mut store, "_routes")?;
            func.call_async(&mut store, ()).await
        };
        match tokio::time::timeout(ROUTES_TIMEOUT, call).await {
            Err(_) => {
                return Err(route_error(format!("export \"_routes\" ran longer than {ROUTES_TIMEOUT:?}")))
            }
            Ok(Err(e)) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) if exit.0 == 0 => {}
                _ => return Err(route_error(format!("export \"_routes\" failed: {e:#}"))),
            },
            Ok(Ok(())) => {}
        }
        drop(store);
        let text = stdout.contents();
        let routes = parse_routes_text(&text).map_err(|e| route_error(e.to_string()))?;
        Ok(routes.into_iter().map(|r| (parent.route.join(&r.path), r.entrypoint)).collect())
    }
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
    let kind = if is_component(&bytes) { "component" } else { "module" };
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

/// The loaded functions behind their routes, in WAGI's precedence order.
pub struct Registry {
    routes: RouteTable<Arc<Function>>,
}

impl Registry {
    /// The function that serves `path` (raw, without the query), if any.
    pub fn lookup(&self, path: &str) -> Option<&Arc<Function>> {
        self.routes.lookup(path).map(|RouteMatch { target, .. }| target)
    }

    /// Every function in precedence order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.routes.iter().map(|(_, f)| f)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
