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
use wasmtime::{Extern, InstancePre, ModuleExport, Store, UpdateDeadline, Val};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::limits::{CpuQuota, MemoryLimiter};
use crate::{FunctionSpec, GuestLog, RequestLimits, RunError};

/// The most a guest may print to stdout for one response (a larger write traps: 500).
pub const MAX_STDOUT_BYTES: usize = 64 << 20;

/// Store data of a WAGI guest: its WASI context and the limiter that holds it to its grant.
pub struct WagiState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) cpu: Option<CpuQuota>,
}

impl WagiState {
    pub(crate) fn new(wasi: WasiP1Ctx, limits: &RequestLimits) -> WagiState {
        WagiState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu: limits.cpu_quota_millicores.map(CpuQuota::new),
        }
    }
}

/// Makes a store's guest yield at every epoch tick (so it never holds a worker thread), sleeping
/// out the rest of the period when it has spent its CPU quota.
pub(crate) fn yield_on_epoch(store: &mut Store<WagiState>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let pause = match ctx.data_mut().cpu.as_mut() {
            Some(quota) => quota.on_tick(),
            None => Box::pin(tokio::task::yield_now()),
        };
        Ok(UpdateDeadline::YieldCustom(1, pause))
    });
}

/// One routable function: a module prepared once, and which export a request calls.
pub struct Function {
    pub(crate) route: RoutePattern,
    pub(crate) name: Arc<str>,
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) pre: InstancePre<WagiState>,
    pub(crate) entrypoint: ModuleExport,
    pub(crate) entrypoint_name: String,
    pub(crate) results: usize,
    pub(crate) log: GuestLog,
}

/// What a WAGI request hands its guest.
#[derive(Debug, Clone, Default)]
pub struct WagiInput {
    pub env: Vec<(String, String)>,
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

    pub fn entrypoint(&self) -> &str {
        &self.entrypoint_name
    }

    /// Runs one request in a fresh instance and parses what it printed.
    ///
    /// A trap, a non-zero exit, a blown memory grant or the time limit end this request only: the
    /// instance is dropped, its pool slot returns, and the caller turns the error into a 5xx.
    pub async fn run(&self, input: WagiInput, limits: &RequestLimits) -> Result<Outcome, RunError> {
        let stdout = MemoryOutputPipe::new(MAX_STDOUT_BYTES);
        let mut store = self.new_store(input, stdout.clone(), limits);
        let timeout = limits.timeout;
        let mut instantiate = Duration::ZERO;

        let result = tokio::time::timeout(timeout, async {
            let start = Instant::now();
            let instance = self.pre.instantiate_async(&mut store).await.map_err(instantiate_error)?;
            instantiate = start.elapsed();
            let Some(Extern::Func(func)) = instance.get_module_export(&mut store, &self.entrypoint) else {
                return Err(RunError::Trap(format!("export {:?} is not a function", self.entrypoint_name)));
            };
            let mut results = [const { Val::I32(0) }; 4];
            let results = results.get_mut(..self.results).unwrap_or_default();
            if let Some(quota) = &store.data().cpu {
                quota.resume_here();
            }
            match func.call_async(&mut store, &[], results).await {
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
        let mut store = Store::new(self.pre.module().engine(), WagiState::new(wasi.build_p1(), limits));
        store.limiter(|s| &mut s.limiter);
        yield_on_epoch(&mut store);
        store
    }
}

fn instantiate_error(e: wasmtime::Error) -> RunError {
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
