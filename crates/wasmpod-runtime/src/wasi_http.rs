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
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::limits::{cpu_metered, LimitedState, Limits};
use crate::outbound::{self, OutboundPolicy};
use crate::store::{bounded_table, new_store, Sandbox};
use crate::OutboundLimits;
use crate::{Error, FunctionSpec, RequestLimits, RunError};

/// The export a component must have to be served.
pub(crate) const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// A response body streamed out of a component.
pub type HttpBody = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// What a component answered, and what instantiating it cost.
pub struct HttpOutcome {
    /// Headers are final; the body streams while the guest writes it.
    pub response: http::Response<HttpBody>,
    /// Time to instantiate the component.
    pub instantiate: Duration,
}

/// How a component's guest ended after it had responded.
#[derive(Debug)]
pub struct GuestEnd {
    /// Why it failed while (or after) writing its body, if it did.
    pub error: Option<RunError>,
    /// Time to instantiate the component.
    pub instantiate: Duration,
    /// The most memory (all memories and tables) the instance had at once.
    pub peak_memory_bytes: u64,
    /// CPU time the guest used after instantiation ([`crate::cpu_metered`]).
    pub cpu: Duration,
}

/// A `wasi:http` component prepared at load (its `ProxyPre`). Serve a request with
/// [`HttpComponent::serve`].
pub struct HttpComponent {
    pre: ProxyPre<HttpState>,
    outbound: Arc<OutboundPolicy>,
    pub(crate) sandbox: Sandbox,
}

/// The linker every component is prepared against: WASI 0.2 and `wasi:http`.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<HttpState>, Error> {
    let link_error = |e: wasmtime::Error| Error::Engine(format!("linking WASI: {e:#}"));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_error)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link_error)?;
    Ok(linker)
}

/// Store data of a `wasi:http` guest.
pub(crate) struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Outbound,
    limits: Limits,
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

impl LimitedState for HttpState {
    fn limits(&mut self) -> &mut Limits {
        &mut self.limits
    }
}

impl HttpComponent {
    /// Links `component` once, or says why it cannot serve (the reason, for the caller to put
    /// beside the route and module).
    pub(crate) fn prepare(
        linker: &Linker<HttpState>,
        component: &Component,
        spec: &FunctionSpec,
        sandbox: Sandbox,
    ) -> Result<HttpComponent, String> {
        let pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
        let pre = ProxyPre::new(pre)
            .map_err(|e| format!("a component must export wasi:http/incoming-handler (0.2.x): {e:#}"))?;
        let outbound = Arc::new(OutboundPolicy::parse(&spec.allowed_hosts, sandbox.denied.clone())?);
        Ok(HttpComponent { pre, outbound, sandbox })
    }

    /// Serves one request with a component: returns once the guest has set its response (or has
    /// failed without one). The guest goes on running on a task of its own while the response
    /// body streams; `on_end` is called when it finishes, and whatever it holds (the admission
    /// grant) is held until then. When this returns an error, or its future is dropped before
    /// the response, the guest is stopped and `on_end` is dropped without being called.
    ///
    /// `env` is the guest's environment (the server's `--env` values).
    pub async fn serve<B>(
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
        let deadline = Instant::now() + limits.timeout;
        let mut store = self.new_store(env, limits, deadline);

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
        let proxy =
            match tokio::time::timeout_at(deadline.into(), self.pre.instantiate_async(&mut store)).await {
                Err(_elapsed) => return Err(RunError::Timeout(limits.timeout)),
                Ok(result) => result.map_err(RunError::instantiate)?,
            };
        let instantiate = start.elapsed();

        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let timeout = limits.timeout;
        let guest = tokio::spawn(async move {
            store.data().limits.resume_here();
            let call = proxy.wasi_http_incoming_handler().call_handle(&mut store, request, outparam);
            let mut cpu = Duration::ZERO;
            let error = match cpu_metered(tokio::time::timeout_at(deadline.into(), call), &mut cpu).await {
                Err(_elapsed) => Some(RunError::Timeout(timeout)),
                Ok(Err(e)) => Some(store.data().limits.trap_error(&e)),
                Ok(Ok(())) => None,
            };
            // Said before the store goes: dropping it ends the response body, and the body tells
            // the client whether that end is complete by this (see `GuestBody`).
            let _ = failed_tx.send(error.is_some());
            let peak_memory_bytes = store.data().limits.memory.peak;
            let end = GuestEnd { error, instantiate, peak_memory_bytes, cpu };
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
        let response = response.map(|inner| GuestBody { inner, failed: failed_rx }.boxed_unsync());
        Ok(HttpOutcome { response, instantiate })
    }

    /// The request's store: the function's sandbox with its log as stdout too (a component
    /// answers through `wasi:http`, so stdout is only for logging), the server's environment, an
    /// outbound hook bound to the request's deadline, and the request's limits.
    fn new_store(
        &self,
        env: &[(String, String)],
        limits: &RequestLimits,
        deadline: Instant,
    ) -> Store<HttpState> {
        let mut wasi = self.sandbox.wasi();
        wasi.stdout(self.sandbox.log.clone()).envs(env);
        let state = HttpState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: bounded_table(),
            outbound: Outbound {
                function: self.sandbox.name.clone(),
                policy: self.outbound.clone(),
                limits: limits.outbound,
                deadline,
            },
            limits: Limits::for_component(limits),
        };
        new_store(self.pre.engine(), state)
    }
}

/// A component's response body, which ends cleanly only if its guest did not fail. wasmtime ends
/// the body cleanly when the guest's store is dropped, whatever happened, so without this a guest
/// that failed half way through its body would look to the client like a complete response; with
/// it, the body ends with an error and hyper aborts the response (the client sees it truncated).
struct GuestBody {
    inner: HttpBody,
    /// Whether the guest failed, sent before its store (and with it the body's writer) is
    /// dropped; closed without a value when the guest task was stopped.
    failed: tokio::sync::oneshot::Receiver<bool>,
}

impl http_body::Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use tokio::sync::oneshot::error::TryRecvError;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            std::task::Poll::Ready(None) => {}
            other => return other,
        }
        // The body ended: finished by the guest while it runs (no word yet: complete), or because
        // its store was dropped when it ended (the word came first).
        std::task::Poll::Ready(match this.failed.try_recv() {
            Ok(false) | Err(TryRecvError::Empty) => None,
            Ok(true) | Err(TryRecvError::Closed) => Some(Err(wasmtime_wasi_http::Error::InternalError(
                Some("the guest failed before it finished its response body".to_owned()),
            ))),
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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

/// The outbound side of a component: every request it sends passes here.
struct Outbound {
    function: Arc<str>,
    policy: Arc<OutboundPolicy>,
    /// How long each call may take.
    limits: OutboundLimits,
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
        let (limits, deadline) = (self.limits, self.deadline);
        Box::new(async move {
            let (response, io) = outbound::send(request, options, limits, deadline).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::load_one;
    use crate::Guest;

    async fn serve(path: &str, body: &'static str, limits: RequestLimits) -> (u16, String, Option<GuestEnd>) {
        let (_runtime, function) = load_one("/c/...", wasmpod_guests::HTTP_COMPONENT).await;
        let Guest::Http(component) = function.guest() else { panic!("not a component") };
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .body(http_body_util::Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let (end_tx, end_rx) = tokio::sync::oneshot::channel();
        let outcome = match component.serve(request, &[], &limits, move |end| drop(end_tx.send(end))).await {
            Ok(outcome) => outcome,
            Err(e) => return (0, e.to_string(), None),
        };
        let status = outcome.response.status().as_u16();
        let body = outcome.response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, String::from_utf8_lossy(&body).into_owned(), end_rx.await.ok())
    }

    #[tokio::test]
    async fn a_component_answers_and_reports_its_end() {
        let (status, body, end) = serve("/c/hello", "", RequestLimits::default()).await;
        assert_eq!((status, body.as_str()), (200, "hello from a component\n"));
        let end = end.expect("the guest's end is reported");
        assert!(end.error.is_none(), "{:?}", end.error);
        assert!(end.peak_memory_bytes > 0);
    }

    #[tokio::test]
    async fn the_request_body_streams_through() {
        let (status, body, _) = serve("/c/echo", "streamed body", RequestLimits::default()).await;
        assert_eq!((status, body.as_str()), (200, "streamed body"));
    }

    #[tokio::test]
    async fn a_component_past_its_grant_fails_with_the_reason() {
        let limits = RequestLimits { memory_bytes: Some(16 << 20), ..RequestLimits::default() };
        let (status, message, _) = serve("/c/hog?mb=64", "", limits).await;
        assert_eq!(status, 0, "{message}");
        assert_eq!(message, "memory limit of 16 MB exceeded");
    }
}
