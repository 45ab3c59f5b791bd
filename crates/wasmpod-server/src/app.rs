//! One request, from parsed HTTP to response.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use wasmpod_admission::{
    units_from_header, Breaker, BreakerConfig, CpuGauge, CpuSampler, RefusalReason, Ticket,
};
use wasmpod_runtime::{Function, GuestEnd, HttpBody, Registry, RequestLimits, RunError, Runtime, WagiInput};
use wasmpod_wagi::{build_argv, build_env, CgiRequest, OutputError, DEFAULT_HOST, MISSING_HEADERS_MESSAGE};

use crate::identity::ServiceIdentity;
use crate::metrics::{FunctionMetrics, Metrics, Refusal};
use crate::running::{RunningGuest, RunningGuests};

/// The body of every response the server sends: bytes in hand (WAGI output, built-in
/// endpoints) or a component's stream. An enum rather than a boxed body, so that a WAGI response
/// costs no allocation beyond its bytes.
#[derive(Debug, Default)]
pub struct ResponseBody(BodyKind);

#[derive(Debug)]
enum BodyKind {
    Full(Full<Bytes>),
    Stream(HttpBody),
}

impl Default for BodyKind {
    fn default() -> Self {
        BodyKind::Full(Full::default())
    }
}

impl ResponseBody {
    /// A body whose bytes are all here.
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody(BodyKind::Full(Full::new(bytes.into())))
    }

    /// A body a component is still writing.
    pub fn stream(body: HttpBody) -> ResponseBody {
        ResponseBody(BodyKind::Stream(body))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(body) => Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            BodyKind::Stream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Full(body) => body.is_end_stream(),
            BodyKind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(body) => body.size_hint(),
            BodyKind::Stream(body) => body.size_hint(),
        }
    }
}

/// The header a request declares its memory in, in MB (Wasabi's contract).
pub const MEMORY_REQUEST_HEADER: &str = "memory-request";
/// The header a request declares its CPU quota in, in millicores (WasmBox's contract).
pub const CPU_QUOTA_HEADER: &str = "cpu_quota";
/// MB a request declares when it sends no valid `Memory-Request` (Wasabi's default).
pub const DEFAULT_MEMORY_REQUEST_MB: u64 = 200;

/// How often the pod's CPU use is sampled, and how many samples are averaged.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);
const CPU_SAMPLE_WINDOW: usize = 5;

/// Server-wide settings that shape each request.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `--env` / `--env-file` values every guest sees (CGI variables override them).
    pub user_env: Vec<(String, String)>,
    /// `--default-host`: `SERVER_NAME`/`SERVER_PORT` when the request has no `Host`.
    pub default_host: String,
    /// `--timeout`: how long a guest may run unless its route says otherwise.
    pub timeout: Duration,
    /// MB a request declares without a valid `Memory-Request` (unless its function says).
    pub default_memory_request_mb: u64,
    /// Resource-aware admission; `None` admits everything (for benchmarks and one-shot runs).
    pub admission: Option<BreakerConfig>,
    /// How long a request may wait for admission before a 503 (default: the guest timeout).
    pub queue_timeout: Option<Duration>,
    /// The Knative service and revision this pod serves: constant labels on `/metrics`.
    pub identity: ServiceIdentity,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            user_env: Vec::new(),
            default_host: DEFAULT_HOST.to_owned(),
            timeout: wasmpod_runtime::DEFAULT_TIMEOUT,
            default_memory_request_mb: DEFAULT_MEMORY_REQUEST_MB,
            admission: Some(BreakerConfig::default()),
            queue_timeout: None,
            identity: ServiceIdentity::default(),
        }
    }
}

/// Everything a request needs, shared by all connections (never cloned per request).
pub struct App {
    registry: Registry,
    /// Owns the engine and its epoch clock for as long as requests may run.
    runtime: Runtime,
    config: AppConfig,
    breaker: Option<Breaker>,
    cpu: Arc<CpuGauge>,
    /// Shared with component guests that outlive their response (their end is counted later).
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    /// Guests running now, for the shutdown (which may have to stop them).
    running: Arc<RunningGuests>,
    next_request_id: AtomicU64,
}

impl App {
    /// Builds the app and starts the pod's CPU sampler (it must be called inside a tokio runtime).
    pub fn new(
        runtime: Runtime,
        registry: Registry,
        config: AppConfig,
    ) -> Result<App, wasmpod_admission::AdmissionError> {
        let cpu = Arc::new(CpuGauge::new());
        let sampler = CpuSampler::detect();
        tracing::info!(source = %sampler.source(), "sampling pod CPU use");
        sampler.spawn(cpu.clone(), CPU_SAMPLE_INTERVAL, CPU_SAMPLE_WINDOW);
        let breaker = match &config.admission {
            Some(settings) => Some(Breaker::new(settings.clone(), Some(cpu.clone()))?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new(registry.functions().map(|f| f.name()), &config.identity));
        Ok(App {
            registry,
            runtime,
            config,
            breaker,
            cpu,
            metrics,
            draining: AtomicBool::new(false),
            running: Arc::default(),
            next_request_id: AtomicU64::new(1),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Marks the pod as going away: `/readyz` fails from now on, requests still run.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Guests running now (admitted and not yet ended).
    pub(crate) fn guests_running(&self) -> usize {
        self.running.count()
    }

    /// The shutdown timeout has passed: each guest dropped from now on before it finished logs
    /// that it was stopped.
    pub(crate) fn stop_guests(&self) {
        self.running.stop_all();
    }

    /// The request path: built-in endpoints, route, admission, then the guest: a WAGI module
    /// (CGI environment, whole body in, parsed output back) or a `wasi:http` component (the
    /// request handed over as it streams in, the response streamed back as the guest writes it).
    pub async fn handle<B>(&self, request: Request<B>, remote: IpAddr) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        // Built-in endpoints bypass admission. WAGI's /healthz wins over any user route.
        match parts.uri.path() {
            "/healthz" => return text(StatusCode::OK, "OK"),
            "/readyz" if self.is_draining() => return text(StatusCode::SERVICE_UNAVAILABLE, "draining"),
            "/readyz" => return text(StatusCode::OK, "OK"),
            "/metrics" => return self.metrics_response(),
            _ => {}
        }
        let Some(function) = self.registry.lookup(parts.uri.path()) else {
            return empty(StatusCode::NOT_FOUND);
        };
        if function.is_component() {
            return self.handle_component(function, parts, body).await;
        }
        // WAGI hands the guest the whole body on stdin: read it before asking for admission, as
        // always (a single-chunk body is passed on without a copy).
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::debug!("reading request body: {e}");
                return empty(StatusCode::BAD_REQUEST);
            }
        };
        self.handle_wagi(function, parts, body, remote).await
    }

    async fn handle_wagi(
        &self,
        function: &Function,
        parts: http::request::Parts,
        body: Bytes,
        remote: IpAddr,
    ) -> Response<ResponseBody> {
        let Admitted { request_id, started, function_metrics, grant, limits, running } =
            match self.admit_request(function, &parts.headers).await {
                Ok(admitted) => admitted,
                Err(response) => return response,
            };
        let _grant = grant;

        let path = parts.uri.path();
        let cgi = CgiRequest {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            body_len: body.len(),
            remote_addr: remote,
            route: function.route(),
            default_host: &self.config.default_host,
        };
        let input = WagiInput {
            env: build_env(&cgi, &self.config.user_env),
            argv: build_argv(path, parts.uri.query(), function.spec().argv.as_deref()),
            body,
        };

        let result = function.run(input, &limits).await;
        running.finish();
        let elapsed = started.elapsed();
        let response = match result {
            Ok(outcome) => {
                if let Some(m) = function_metrics {
                    m.observe_instance(outcome.instantiate, outcome.peak_memory_bytes);
                }
                let response = outcome.response;
                for warning in &response.warnings {
                    tracing::warn!(function = %function.name(), request_id, "guest output: {warning}");
                }
                tracing::debug!(
                    function = %function.name(),
                    request_id,
                    status = response.status.as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    instantiate_us = outcome.instantiate.as_micros() as u64,
                    memory_mb = limits.memory_bytes.unwrap_or(0) >> 20,
                    "request"
                );
                let mut builder = Response::builder().status(response.status);
                for (name, value) in response.headers {
                    builder = builder.header(name, value);
                }
                builder
                    .body(ResponseBody::full(response.body))
                    .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(error) => self.failure(function, request_id, elapsed, error),
        };
        if let Some(m) = function_metrics {
            m.observe(response.status().as_u16(), elapsed);
        }
        response
    }

    /// A `wasi:http` component: the guest keeps running after it has answered, while its body
    /// streams; the admission grant is held until the guest has finished.
    async fn handle_component<B>(
        &self,
        function: &Function,
        mut parts: http::request::Parts,
        body: B,
    ) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Admitted { request_id, started, function_metrics, grant, limits, running } =
            match self.admit_request(function, &parts.headers).await {
                Ok(admitted) => admitted,
                Err(response) => return response,
            };
        // wasi:http needs an authority; an HTTP/1.0 request (or `wasmpod run`) may not have one.
        if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(&self.config.default_host) {
                parts.headers.insert(header::HOST, host);
            }
        }

        let metrics = self.metrics.clone();
        let name = function.name().clone();
        let on_end = move |end: GuestEnd| {
            // Held until now: the guest's memory was in use until it finished.
            drop(grant);
            running.finish();
            if let Some(m) = metrics.function(&name) {
                m.observe_instance(end.instantiate, end.peak_memory_bytes);
            }
            if let Some(error) = end.error {
                metrics.guest_error(&name, error.kind());
                tracing::error!(function = %name, request_id, kind = error.kind(), "guest failed after responding: {error}");
            }
        };
        let request = Request::from_parts(parts, body);
        let result = function.serve_http(request, &self.config.user_env, &limits, on_end).await;
        let elapsed = started.elapsed();
        let response = match result {
            Ok(outcome) => {
                tracing::debug!(
                    function = %function.name(),
                    request_id,
                    status = outcome.response.status().as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    instantiate_us = outcome.instantiate.as_micros() as u64,
                    memory_mb = limits.memory_bytes.unwrap_or(0) >> 20,
                    "request"
                );
                outcome.response.map(ResponseBody::stream)
            }
            Err(error) => self.failure(function, request_id, elapsed, error),
        };
        if let Some(m) = function_metrics {
            m.observe(response.status().as_u16(), elapsed);
        }
        response
    }

    /// Starts a guest request: its id and clock, then admission by its declared memory, and the
    /// limits it will run under.
    async fn admit_request<'a>(
        &'a self,
        function: &Function,
        headers: &http::HeaderMap,
    ) -> Result<Admitted<'a>, Response<ResponseBody>> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let function_metrics = self.metrics.function(function.name());
        let default_units =
            function.spec().memory_request_mb.unwrap_or(self.config.default_memory_request_mb);
        let units =
            units_from_header(headers.get(MEMORY_REQUEST_HEADER).map(|v| v.as_bytes()), default_units);
        let grant = match self.admit(function, units, request_id).await {
            Ok(grant) => grant,
            Err(response) => {
                if let Some(m) = function_metrics {
                    m.observe(response.status().as_u16(), started.elapsed());
                }
                return Err(response);
            }
        };
        let grant_mb = function.spec().max_memory_mb.map_or(units, |max| units.min(max));
        let limits = RequestLimits {
            memory_bytes: Some(grant_mb.saturating_mul(1 << 20)),
            timeout: function.spec().timeout.unwrap_or(self.config.timeout),
            cpu_quota_millicores: cpu_quota(headers),
        };
        let running = self.running.enter(function.name().clone(), request_id);
        Ok(Admitted { request_id, started, function_metrics, grant, limits, running })
    }

    /// A guest that produced no response: logged, counted, answered with a 5xx.
    fn failure(
        &self,
        function: &Function,
        request_id: u64,
        elapsed: Duration,
        error: RunError,
    ) -> Response<ResponseBody> {
        let status = status_for(&error);
        self.metrics.guest_error(function.name(), error.kind());
        tracing::error!(
            function = %function.name(),
            request_id,
            status = status.as_u16(),
            kind = error.kind(),
            elapsed_us = elapsed.as_micros() as u64,
            "request failed: {error}"
        );
        match error {
            RunError::Output(OutputError::MissingHeaders) => text(status, MISSING_HEADERS_MESSAGE),
            _ => empty(status),
        }
    }

    /// Waits for the breaker to admit `units` MB, or answers why not. Dropping this future (the
    /// client went away) leaves the queue and returns the units at once.
    async fn admit(
        &self,
        function: &Function,
        units: u64,
        request_id: u64,
    ) -> Result<Option<wasmpod_admission::Grant>, Response<ResponseBody>> {
        let Some(breaker) = &self.breaker else { return Ok(None) };
        let queue_timeout = self.config.queue_timeout.unwrap_or(self.config.timeout);
        // Every request is the default tenant's until functions carry tenants.
        let ticket = Ticket { queue_timeout: Some(queue_timeout), ..Ticket::new(units) };
        let rejection = match breaker.acquire(ticket).await {
            Ok(grant) => {
                self.metrics.admitted();
                return Ok(Some(grant));
            }
            Err(rejection) => rejection,
        };
        let (refusal, status) = match rejection.reason() {
            RefusalReason::TooLarge | RefusalReason::TenantTooLarge => {
                (Refusal::TooLarge, StatusCode::PAYLOAD_TOO_LARGE)
            }
            RefusalReason::QueueFull | RefusalReason::TenantQueueFull => {
                (Refusal::QueueFull, StatusCode::SERVICE_UNAVAILABLE)
            }
            RefusalReason::QueueTimeout => (Refusal::QueueTimeout, StatusCode::SERVICE_UNAVAILABLE),
        };
        let reason = rejection.to_string();
        self.metrics.refused(refusal);
        tracing::warn!(function = %function.name(), request_id, units, status = status.as_u16(), "refused: {reason}");
        Err(plain(status, format!("{reason}\n")))
    }

    fn metrics_response(&self) -> Response<ResponseBody> {
        let snapshot = self.breaker.as_ref().map(Breaker::snapshot);
        let outbound_denied = self.registry.functions().map(|f| (f.name(), f.outbound_denied()));
        let body =
            self.metrics.render(snapshot, self.cpu.cores(), self.runtime.instances_in_use(), outbound_denied);
        let mut response = Response::new(ResponseBody::full(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// A guest request past admission: its id and clock (logs, metrics), its function's metrics, the
/// grant to hold while the guest runs, the limits it runs under, and its place among the guests
/// running.
struct Admitted<'a> {
    request_id: u64,
    started: Instant,
    function_metrics: Option<&'a FunctionMetrics>,
    grant: Option<wasmpod_admission::Grant>,
    limits: RequestLimits,
    running: RunningGuest,
}

/// The `cpu_quota` header in millicores; absent, zero or unparsable means unthrottled.
fn cpu_quota(headers: &http::HeaderMap) -> Option<u32> {
    let value = headers.get(CPU_QUOTA_HEADER)?.to_str().ok()?.trim().parse::<f64>().ok()?;
    (value.is_finite() && value >= 1.0).then(|| value.min(f64::from(u32::MAX)) as u32)
}

fn status_for(error: &RunError) -> StatusCode {
    match error {
        RunError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        RunError::PoolExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A short fixed body without a content type, as WAGI sends its own messages.
fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// A server-made explanation (admission refusals).
fn plain(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_header_cases() {
        let quota = |v: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(CPU_QUOTA_HEADER, HeaderValue::from_str(v).unwrap());
            cpu_quota(&headers)
        };
        assert_eq!(quota("250"), Some(250));
        assert_eq!(quota(" 1000 "), Some(1000));
        assert_eq!(quota("0"), None);
        assert_eq!(quota("-5"), None);
        assert_eq!(quota("lots"), None);
        assert_eq!(cpu_quota(&http::HeaderMap::new()), None);
    }
}
