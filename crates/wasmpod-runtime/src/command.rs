//! A WASI preview1 command prepared once, and one run of it: the core-module executor under WAGI
//! modules (CGI over stdin/stdout) and raw programs (body in, body out).
//!
//! Everything that can be prepared was prepared at load (the `InstancePre`, the entrypoint's
//! export index, the outbound policy). Per request: a WASI context with in-memory pipes, a store
//! with the request's limits ([`crate::store`]), instantiation from the pool, the call. That is
//! the whole hot path; it reads top to bottom in [`Command::run_here`]. [`Command::run`] first
//! chooses the thread: the caller's, or a cgroup worker's when the request carries a CPU quota
//! and `--cgroup-cpu` is in use ([`crate::CgroupCpu`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{Engine, Extern, ExternType, InstancePre, Linker, Module, ModuleExport, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::I32Exit;

use crate::experimental_http::{self, OutboundHost, RequestHttp};
use crate::limits::{LimitedState, Limits};
use crate::outbound::OutboundPolicy;
use crate::store::{bounded_p1, new_store, Sandbox};
use crate::{CgroupCpu, Error, FunctionSpec, RequestLimits, RunError};

/// The default of the most a guest may print to stdout for one response (`--max-response-size`;
/// a larger write traps: 500). A request's output also counts against its memory grant: it is held
/// in memory until the guest ends, so a request granted less may print no more than its grant
/// ([`output_limit`]).
pub const MAX_STDOUT_BYTES: usize = 64 << 20;

/// The most one request's guest may print: its `max_output_bytes`, or its memory grant if smaller.
fn output_limit(limits: &RequestLimits) -> usize {
    let grant = limits.memory_bytes.map_or(usize::MAX, |bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
    limits.max_output_bytes.min(grant)
}

/// Store data of a core-module guest.
pub(crate) struct CommandState {
    wasi: WasiP1Ctx,
    limits: Limits,
    /// Outbound HTTP state, for modules that import `wasi_experimental_http` only.
    http: Option<Box<RequestHttp>>,
}

impl LimitedState for CommandState {
    fn limits(&mut self) -> &mut Limits {
        &mut self.limits
    }
}

impl OutboundHost for CommandState {
    fn outbound(&self) -> Option<&RequestHttp> {
        self.http.as_deref()
    }

    fn outbound_mut(&mut self) -> Option<&mut RequestHttp> {
        self.http.as_deref_mut()
    }
}

/// The linker every core module is prepared against: WASI preview1 (and preview0, which old
/// modules import) plus WAGI's `wasi_experimental_http`. A module pays only for what it imports.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<CommandState>, Error> {
    let link_error = |e: wasmtime::Error| Error::Engine(format!("linking WASI: {e:#}"));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut CommandState| &mut s.wasi)
        .map_err(link_error)?;
    wasmtime_wasi::p0::add_to_linker_async(&mut linker, |s: &mut CommandState| &mut s.wasi)
        .map_err(link_error)?;
    experimental_http::add_to_linker(&mut linker).map_err(link_error)?;
    Ok(linker)
}

/// A core module linked once for one entrypoint: what every request instantiates.
pub(crate) struct Command {
    pre: InstancePre<CommandState>,
    entrypoint: ModuleExport,
    entrypoint_name: String,
    results: usize,
    /// Set when the module imports `wasi_experimental_http`.
    outbound: Option<Arc<OutboundPolicy>>,
    http_max_concurrency: Option<u32>,
    pub(crate) sandbox: Sandbox,
    /// Where requests with a CPU quota run, when the kernel holds quotas (`--cgroup-cpu`).
    cgroup_cpu: Option<Arc<CgroupCpu>>,
}

/// What one run hands the guest.
pub(crate) struct CommandInput<'a, K> {
    pub(crate) stdin: Bytes,
    pub(crate) argv: &'a [String],
    pub(crate) env: &'a [(K, String)],
}

/// What one run printed, and what it cost.
pub(crate) struct Finished {
    pub(crate) stdout: Bytes,
    /// Instantiation alone.
    pub(crate) instantiate: Duration,
    pub(crate) peak_memory_bytes: u64,
}

impl Command {
    /// Links `module` once for `entrypoint`, or says why it cannot serve (the reason, for the
    /// caller to put beside the route and module).
    pub(crate) fn prepare(
        linker: &Linker<CommandState>,
        module: &Module,
        entrypoint: &str,
        spec: &FunctionSpec,
        sandbox: Sandbox,
        cgroup_cpu: Option<Arc<CgroupCpu>>,
    ) -> Result<Command, String> {
        let pre = linker.instantiate_pre(module).map_err(|e| format!("{e:#}"))?;
        // Only a module that can call out needs its allow-list (as in WAGI, which never read it
        // otherwise); a malformed one stops the load instead of failing every call.
        let outbound = if module.imports().any(|i| i.module() == experimental_http::MODULE) {
            Some(Arc::new(OutboundPolicy::parse(&spec.allowed_hosts, sandbox.denied.clone())?))
        } else {
            None
        };
        let missing = || format!("no exported function {entrypoint:?} (the entrypoint)");
        let results = match module.get_export(entrypoint) {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() <= 4 => {
                ty.results().len()
            }
            Some(ExternType::Func(_)) => {
                return Err(format!("entrypoint {entrypoint:?} must take no parameters"))
            }
            Some(_) => return Err(format!("export {entrypoint:?} is not a function")),
            None => return Err(missing()),
        };
        let entrypoint_export = module.get_export_index(entrypoint).ok_or_else(missing)?;
        Ok(Command {
            pre,
            entrypoint: entrypoint_export,
            entrypoint_name: entrypoint.to_owned(),
            results,
            outbound,
            http_max_concurrency: spec.http_max_concurrency,
            sandbox,
            cgroup_cpu,
        })
    }

    /// The export a request calls.
    pub(crate) fn entrypoint(&self) -> &str {
        &self.entrypoint_name
    }

    /// Runs one request in a fresh instance and returns what it printed.
    ///
    /// A request with a CPU quota runs on a cgroup worker when there are cgroup workers: the
    /// kernel then holds it to the quota, and the runtime's throttle is off for it. Its input is
    /// copied to move it there (a few small allocations; the body is shared, not copied).
    pub(crate) async fn run<K: AsRef<str>>(
        self: &Arc<Self>,
        input: CommandInput<'_, K>,
        limits: &RequestLimits,
    ) -> Result<Finished, RunError> {
        let (Some(cgroups), Some(millicores)) = (&self.cgroup_cpu, limits.cpu_quota_millicores) else {
            return self.run_here(input, limits).await;
        };
        let command = Arc::clone(self);
        let limits = RequestLimits { cpu_quota_millicores: None, ..limits.clone() };
        let stdin = input.stdin;
        let argv = input.argv.to_vec();
        let env: Vec<(String, String)> =
            input.env.iter().map(|(name, value)| (name.as_ref().to_owned(), value.clone())).collect();
        cgroups
            .run(millicores, move || async move {
                command.run_here(CommandInput { stdin, argv: &argv, env: &env }, &limits).await
            })
            .await
            .map_err(|e| RunError::Isolation(e.to_string()))?
    }

    /// Runs one request in a fresh instance, on this thread, and returns what it printed.
    ///
    /// A trap, a non-zero exit, a blown memory grant or the time limit end this request only: the
    /// instance is dropped, its pool slot returns, and the caller turns the error into a 5xx.
    async fn run_here<K: AsRef<str>>(
        &self,
        input: CommandInput<'_, K>,
        limits: &RequestLimits,
    ) -> Result<Finished, RunError> {
        let stdout = MemoryOutputPipe::new(output_limit(limits));
        let timeout = limits.timeout;
        let mut wasi = self.sandbox.wasi();
        wasi.stdin(MemoryInputPipe::new(input.stdin)).stdout(stdout.clone()).args(input.argv).envs(input.env);
        let http = self.outbound.as_ref().map(|policy| {
            let deadline = Instant::now() + timeout;
            Box::new(RequestHttp::new(
                self.sandbox.name.clone(),
                policy.clone(),
                self.http_max_concurrency,
                limits.outbound,
                deadline,
            ))
        });
        let state = CommandState { wasi: bounded_p1(wasi), limits: Limits::for_module(limits), http };
        let mut store = new_store(self.pre.module().engine(), state);
        let mut instantiate = Duration::ZERO;
        let start = Instant::now();

        let result = tokio::time::timeout(timeout, async {
            let instance = self.pre.instantiate_async(&mut store).await.map_err(RunError::instantiate)?;
            instantiate = start.elapsed();
            let Some(Extern::Func(func)) = instance.get_module_export(&mut store, &self.entrypoint) else {
                return Err(RunError::Trap(format!("export {:?} is not a function", self.entrypoint_name)));
            };
            let mut values = [const { Val::I32(0) }; 4];
            let values = values.get_mut(..self.results).unwrap_or_default();
            store.data().limits.resume_here();
            match func.call_async(&mut store, &[], values).await {
                Ok(()) => Ok(()),
                Err(e) => exit_or_error(e, &store.data().limits),
            }
        })
        .await;

        let peak_memory_bytes = store.data().limits.memory.peak;
        match result {
            Err(_elapsed) => return Err(RunError::Timeout(timeout)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        drop(store);
        let stdout = stdout.try_into_inner().map(|b| b.freeze()).unwrap_or_default();
        Ok(Finished { stdout, instantiate, peak_memory_bytes })
    }

    /// Calls `export` once, with nothing but a stdout and the function's stderr, and returns what
    /// it printed (at most 1 MiB), or why it failed. For load-time exports such as `_routes`.
    pub(crate) async fn print_of(&self, export: &str, timeout: Duration) -> Result<Bytes, String> {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let mut wasi = self.sandbox.wasi();
        wasi.stdout(stdout.clone());
        let state = CommandState {
            wasi: bounded_p1(wasi),
            limits: Limits::for_module(&RequestLimits::default()),
            http: None,
        };
        let mut store = new_store(self.pre.module().engine(), state);
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let func = instance.get_typed_func::<(), ()>(&mut store, export)?;
            func.call_async(&mut store, ()).await
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(format!("export {export:?} ran longer than {timeout:?}")),
            Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                Some(exit) if exit.0 == 0 => {}
                _ => return Err(format!("export {export:?} failed: {e:#}")),
            },
            Ok(Ok(())) => {}
        }
        drop(store);
        Ok(stdout.contents())
    }
}

/// `proc_exit(0)` after output is success (a deliberate deviation: WAGI answers 500); any other
/// exit code, or a trap, is a failure.
fn exit_or_error(e: wasmtime::Error, limits: &Limits) -> Result<(), RunError> {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => Ok(()),
            code => Err(RunError::Exit(code)),
        };
    }
    Err(limits.trap_error(&e))
}
