//! A loaded function and the life of one request through it.
//!
//! Everything that can be prepared was prepared at load (module, linker, `InstancePre`, the
//! entrypoint's export index, the log file). Per request: a WASI context with in-memory pipes, a
//! `Store` with the request's limits, instantiation from the pool, the call, and the parse of
//! stdout. That is the whole hot path; it reads top to bottom in [`Function::run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmpod_wagi::{parse_output, CgiResponse, RoutePattern};
use wasmtime::{Extern, InstancePre, ModuleExport, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::experimental_http::RequestHttp;
use crate::limits::{yield_on_epoch, CpuQuota, GuestLimits, MemoryLimiter};
use crate::outbound::OutboundPolicy;
use crate::{FunctionSpec, GuestLog, RequestLimits, RunError};

/// The most a guest may print to stdout for one response (a larger write traps: 500).
pub const MAX_STDOUT_BYTES: usize = 64 << 20;

/// Store data of a WAGI guest: its WASI context and the limiter that holds it to its grant.
pub struct WagiState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) cpu: Option<CpuQuota>,
    /// Outbound HTTP state, for modules that import `wasi_experimental_http` only.
    pub(crate) http: Option<Box<RequestHttp>>,
}

impl WagiState {
    pub(crate) fn new(wasi: WasiP1Ctx, limits: &RequestLimits) -> WagiState {
        WagiState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu: limits.cpu_quota_millicores.map(CpuQuota::new),
            http: None,
        }
    }
}

impl GuestLimits for WagiState {
    fn cpu_quota(&mut self) -> Option<&mut CpuQuota> {
        self.cpu.as_mut()
    }
}

/// One routable function: a module or component prepared once, and how a request enters it.
pub struct Function {
    pub(crate) route: RoutePattern,
    pub(crate) name: Arc<str>,
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) prepared: Prepared,
    pub(crate) log: GuestLog,
}

/// What was prepared at load, by the kind of guest.
pub(crate) enum Prepared {
    /// A WAGI core module: the instance and which export a request calls.
    Wagi {
        pre: InstancePre<WagiState>,
        entrypoint: ModuleExport,
        entrypoint_name: String,
        results: usize,
        /// Set when the module imports `wasi_experimental_http`.
        outbound: Option<Arc<OutboundPolicy>>,
    },
    /// A `wasi:http/incoming-handler` component.
    Http(crate::wasi_http::HttpFunction),
}

/// What a WAGI request hands its guest.
#[derive(Debug, Clone, Default)]
pub struct WagiInput {
    pub env: wasmpod_wagi::CgiEnv,
    pub argv: Vec<String>,
    pub body: Bytes,
}

/// A response and what it cost, for the metrics.
#[derive(Debug)]
pub struct Outcome {
    pub response: CgiResponse,
    pub instantiate: Duration,
    pub peak_memory_bytes: u64,
}

impl Function {
    /// The route this function answers (for `_routes` entries, the joined route).
    pub fn route(&self) -> &RoutePattern {
        &self.route
    }

    /// The name used in logs and metric labels: the route as written, never a raw request path.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// The export a WAGI request calls; a component's is `wasi:http/incoming-handler`.
    pub fn entrypoint(&self) -> &str {
        match &self.prepared {
            Prepared::Wagi { entrypoint_name, .. } => entrypoint_name,
            Prepared::Http(_) => crate::wasi_http::INCOMING_HANDLER,
        }
    }

    /// Whether this function is a `wasi:http` component (served by [`Function::serve_http`])
    /// rather than a WAGI module (served by [`Function::run`]).
    pub fn is_component(&self) -> bool {
        matches!(self.prepared, Prepared::Http(_))
    }

    /// Runs one request in a fresh instance and parses what it printed.
    ///
    /// A trap, a non-zero exit, a blown memory grant or the time limit end this request only: the
    /// instance is dropped, its pool slot returns, and the caller turns the error into a 5xx.
    pub async fn run(&self, input: WagiInput, limits: &RequestLimits) -> Result<Outcome, RunError> {
        let Prepared::Wagi { pre, entrypoint, entrypoint_name, results, outbound } = &self.prepared else {
            return Err(RunError::Instantiate(format!("{} is a component, not a WAGI module", self.name)));
        };
        let stdout = MemoryOutputPipe::new(MAX_STDOUT_BYTES);
        let timeout = limits.timeout;
        let mut store = self.new_store(pre, input, stdout.clone(), limits);
        if let Some(policy) = outbound {
            let deadline = Instant::now() + timeout;
            let http =
                RequestHttp::new(self.name.clone(), policy.clone(), self.spec.http_max_concurrency, deadline);
            store.data_mut().http = Some(Box::new(http));
        }
        let mut instantiate = Duration::ZERO;

        let result = tokio::time::timeout(timeout, async {
            let start = Instant::now();
            let instance = pre.instantiate_async(&mut store).await.map_err(instantiate_error)?;
            instantiate = start.elapsed();
            let Some(Extern::Func(func)) = instance.get_module_export(&mut store, entrypoint) else {
                return Err(RunError::Trap(format!("export {entrypoint_name:?} is not a function")));
            };
            let mut values = [const { Val::I32(0) }; 4];
            let values = values.get_mut(..*results).unwrap_or_default();
            if let Some(quota) = &store.data().cpu {
                quota.resume_here();
            }
            match func.call_async(&mut store, &[], values).await {
                Ok(()) => Ok(()),
                Err(e) => exit_or_error(e, &store),
            }
        })
        .await;

        let peak_memory_bytes = store.data().limiter.peak;
        match result {
            Err(_elapsed) => return Err(RunError::Timeout(timeout)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
        }
        drop(store);
        let stdout = stdout.try_into_inner().map(|b| b.freeze()).unwrap_or_default();
        let response = parse_output(stdout)?;
        Ok(Outcome { response, instantiate, peak_memory_bytes })
    }

    fn new_store(
        &self,
        pre: &InstancePre<WagiState>,
        input: WagiInput,
        stdout: MemoryOutputPipe,
        limits: &RequestLimits,
    ) -> Store<WagiState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(input.body))
            .stdout(stdout)
            .stderr(self.log.clone())
            .args(&input.argv)
            .envs(&input.env);
        for (guest, host) in &self.spec.volumes {
            // WAGI's rule: a volume that cannot be opened is logged and the request runs without it.
            if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadWrite) {
                tracing::error!(function = %self.name, volume = %guest, host = %host.display(), "cannot open volume: {e:#}");
            }
        }
        let mut store = Store::new(pre.module().engine(), WagiState::new(wasi.build_p1(), limits));
        store.limiter(|s| &mut s.limiter);
        yield_on_epoch(&mut store);
        store
    }
}

pub(crate) fn instantiate_error(e: wasmtime::Error) -> RunError {
    if e.is::<wasmtime::PoolConcurrencyLimitError>() {
        RunError::PoolExhausted(format!("{e:#}"))
    } else {
        RunError::Instantiate(format!("{e:#}"))
    }
}

/// `proc_exit(0)` after output is success (a deliberate deviation: WAGI answers 500); any other
/// exit code, or a trap, is a failure. A refused memory growth is reported as such, whatever trap
/// the guest turned it into.
fn exit_or_error(e: wasmtime::Error, store: &Store<WagiState>) -> Result<(), RunError> {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => Ok(()),
            code => Err(RunError::Exit(code)),
        };
    }
    let limiter = &store.data().limiter;
    if limiter.refused {
        return Err(RunError::MemoryLimit { limit_mb: limiter.limit.unwrap_or(0) >> 20 });
    }
    Err(RunError::Trap(format!("{e:?}")))
}
