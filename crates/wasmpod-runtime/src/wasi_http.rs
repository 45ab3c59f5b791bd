//! The `wasi:http` path: a component exporting `wasi:http/incoming-handler` (0.2.x), prepared once
//! as a `ProxyPre`, and the life of one request through it.
//!
//! Per request, as `wasmtime serve` does it: a fresh store (WASI context, HTTP context, resource
//! table, the request's limits), the request and a response outparam pushed into its table,
//! instantiation, and the call to `handle` on a task of its own, so the guest keeps running while
//! hyper streams its response body out. The request body streams in the same way: the guest reads
//! hyper's body directly. Outbound requests go through [`Outbound`], which enforces the
//! function's `allowed_hosts` and the request's deadline.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::function::{instantiate_error, Function, Prepared};
use crate::limits::{yield_on_epoch, CpuQuota, GuestLimits, MemoryLimiter};
use crate::outbound::{self, OutboundPolicy};
use crate::{RequestLimits, RunError};

/// The export a component must have to be served.
pub(crate) const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// A response body streamed out of a component.
pub type HttpBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// What a component answered, and what instantiating it cost.
pub struct HttpOutcome {
    /// Headers are final; the body streams while the guest writes it.
    pub response: http::Response<HttpBody>,
    pub instantiate: Duration,
}

/// How a component's guest ended after it had responded.
#[derive(Debug)]
pub struct GuestEnd {
    /// Why it failed while (or after) writing its body, if it did.
    pub error: Option<RunError>,
    pub instantiate: Duration,
    pub peak_memory_bytes: u64,
}

/// A component prepared at load.
pub(crate) struct HttpFunction {
    pub(crate) pre: ProxyPre<HttpState>,
    pub(crate) outbound: Arc<OutboundPolicy>,
}

/// Store data of a `wasi:http` guest.
pub(crate) struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Outbound,
    limiter: MemoryLimiter,
    cpu: Option<CpuQuota>,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl GuestLimits for HttpState {
    fn cpu_quota(&mut self) -> Option<&mut CpuQuota> {
        self.cpu.as_mut()
    }
}

impl Function {
    /// Serves one request with a component: returns once the guest has set its response (or has
    /// failed without one). The guest goes on running on a task of its own while the response
    /// body streams; `on_end` is called when it finishes, and whatever it holds (the admission
    /// grant) is held until then. When this returns an error, or its future is dropped before
    /// the response, the guest is stopped and `on_end` is dropped without being called.
    ///
    /// `env` is the guest's environment (the server's `--env` values).
    pub async fn serve_http<B>(
        &self,
        request: http::Request<B>,
        env: &[(String, String)],
        limits: &RequestLimits,
        on_end: impl FnOnce(GuestEnd) + Send + 'static,
    ) -> Result<HttpOutcome, RunError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Prepared::Http(function) = &self.prepared else {
            return Err(RunError::Instantiate(format!("{} is a WAGI module, not a component", self.name)));
        };
        let deadline = Instant::now() + limits.timeout;
        let mut store = self.new_http_store(function, env, limits, deadline);

        let request = request.map(|body| body.map_err(incoming_body_error));
        let (response_tx, response_rx) = tokio::sync::oneshot::channel();
        let responded = Arc::new(AtomicBool::new(false));
        let (request, outparam) = {
            let mut http = store.data_mut().http();
            let request = http
                .new_incoming_request(Scheme::Http, request)
                .map_err(|e| RunError::Instantiate(format!("request: {e:#}")))?;
            let responded = responded.clone();
            let outparam = http
                .new_response_outparam_from_callback(move |response| {
                    responded.store(true, Ordering::SeqCst);
                    let _ = response_tx.send(response);
                })
                .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
            (request, outparam)
        };

        let start = Instant::now();
        let proxy = match tokio::time::timeout_at(deadline.into(), function.pre.instantiate_async(&mut store))
            .await
        {
            Err(_elapsed) => return Err(RunError::Timeout(limits.timeout)),
            Ok(result) => result.map_err(instantiate_error)?,
        };
        let instantiate = start.elapsed();

        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let timeout = limits.timeout;
        let guest = tokio::spawn(async move {
            if let Some(quota) = &store.data().cpu {
                quota.resume_here();
            }
            let call = proxy.wasi_http_incoming_handler().call_handle(&mut store, request, outparam);
            let error = match tokio::time::timeout_at(deadline.into(), call).await {
                Err(_elapsed) => Some(RunError::Timeout(timeout)),
                Ok(Err(e)) => Some(trap_error(e, &store.data().limiter)),
                Ok(Ok(())) => None,
            };
            let end = GuestEnd { error, instantiate, peak_memory_bytes: store.data().limiter.peak };
            // Dropping the store ends the response body: complete if the guest finished it,
            // an error (hyper aborts the response) if not.
            drop(store);
            if responded.load(Ordering::SeqCst) {
                on_end(end);
            } else {
                let _ = end_tx.send(end);
            }
        });
        // Until the guest has responded, a dropped request (client gone) stops it.
        let mut guard = AbortOnDrop(Some(guest));

        let response = match response_rx.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                return Err(RunError::Trap(format!("guest answered with error code {code:?}")));
            }
            // The outparam is gone without a response: the guest ended; say why.
            Err(_) => {
                let end = end_rx.await.ok();
                return Err(match end.and_then(|e| e.error) {
                    Some(error) => error,
                    None => RunError::Trap("guest returned without setting a response".to_owned()),
                });
            }
        };
        guard.disarm();
        Ok(HttpOutcome { response, instantiate })
    }

    /// Outbound requests this component was refused, since load.
    pub fn outbound_denied(&self) -> u64 {
        match &self.prepared {
            Prepared::Http(function) => function.outbound.denied(),
            Prepared::Wagi { outbound, .. } => outbound.as_ref().map_or(0, |policy| policy.denied()),
        }
    }

    fn new_http_store(
        &self,
        function: &HttpFunction,
        env: &[(String, String)],
        limits: &RequestLimits,
        deadline: Instant,
    ) -> Store<HttpState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(self.log.clone()).stderr(self.log.clone()).envs(env);
        for (guest, host) in &self.spec.volumes {
            if let Err(e) = wasi.preopened_dir(host, guest, FsPerms::ReadWrite) {
                tracing::error!(function = %self.name, volume = %guest, host = %host.display(), "cannot open volume: {e:#}");
            }
        }
        let state = HttpState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound: Outbound { function: self.name.clone(), policy: function.outbound.clone(), deadline },
            limiter: MemoryLimiter::for_component(limits.memory_bytes),
            cpu: limits.cpu_quota_millicores.map(CpuQuota::new),
        };
        let mut store = Store::new(function.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        yield_on_epoch(&mut store);
        store
    }
}

/// Aborts a guest task when dropped (the request went away before the response).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// Lets the task run to its end (it has responded).
    fn disarm(&mut self) {
        self.0.take();
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

fn incoming_body_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> wasmtime_wasi_http::Error {
    match e.into().downcast::<hyper::Error>() {
        Ok(e) => wasmtime_wasi_http::Error::from(*e),
        Err(e) => wasmtime_wasi_http::Error::InternalError(Some(e.to_string())),
    }
}

/// A refused memory growth is reported as such, whatever the guest turned it into.
fn trap_error(e: wasmtime::Error, limiter: &MemoryLimiter) -> RunError {
    if limiter.refused {
        return RunError::MemoryLimit { limit_mb: limiter.limit.unwrap_or(0) >> 20 };
    }
    RunError::Trap(format!("{e:?}"))
}

/// The outbound side of a component: every request it sends passes here.
struct Outbound {
    function: Arc<str>,
    policy: Arc<OutboundPolicy>,
    /// When the incoming request's time is up; no outbound call may outlive it.
    deadline: Instant,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_error: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !self.policy.permits(&self.function, request.uri()) {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        tracing::debug!(function = %self.function, target = %request.uri(), "outbound request");
        let deadline = self.deadline;
        Box::new(async move {
            let (response, io) = outbound::send(request, options, deadline).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}
