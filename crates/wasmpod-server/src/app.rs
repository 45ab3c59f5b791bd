//! One request, from parsed HTTP to response: route, admit, execute, respond.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::Guard;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use wasmpod_admission::{
    cpu_quota_from_header, units_from_header, Breaker, BreakerConfig, CpuGauge, CpuSampler, Grant,
    RefusalReason, Ticket,
};
use wasmpod_config::{FunctionSource, TenantSettings};
use wasmpod_runtime::{
    cpu_metered, Function, Guest, GuestEnd, HttpComponent, LiveRegistry, LoadOutcome, LoadReport,
    OutboundLimits, PodMemory, RawProgram, Registry, RequestLimits, RunError, WagiInput, WagiModule,
};
use wasmpod_wagi::{build_argv, build_env, CgiRequest, OutputError, DEFAULT_HOST, MISSING_HEADERS_MESSAGE};

use crate::admin::{Catalog, SharedCatalog};
use crate::identity::ServiceIdentity;
use crate::metrics::{ClientTimeout, Connections, FunctionMetrics, Metrics, Refusal};
use crate::running::{RunningGuest, RunningGuests};
use crate::tenants::{tenant_name, Tenant, TenantTable, Usage};
use crate::wasmbox::{raw_stdin, RawReply};
use crate::ResponseBody;

/// The header a request declares its memory in, in MB (Wasabi's contract).
pub const MEMORY_REQUEST_HEADER: &str = "memory-request";
/// The header a request declares its CPU quota in, in millicores (WasmBox's contract).
pub const CPU_QUOTA_HEADER: &str = "cpu_quota";
/// MB a request declares when it sends no valid `Memory-Request` (Wasabi's default).
pub const DEFAULT_MEMORY_REQUEST_MB: u64 = 200;

/// The largest request body accepted (`--max-body-size`), by default: 413 beyond it, before the
/// guest runs. As large as the most a guest may print ([`wasmpod_runtime::MAX_STDOUT_BYTES`]): a
/// WAGI or raw body is held in memory whole, and it counts against the request's memory grant too.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;

/// How long a whole request body may take to arrive when the guest reads it whole (WAGI modules,
/// raw programs; `--body-read-timeout`), by default: 408 beyond it. (A component reads its body
/// as it runs, under the guest's own timeout.)
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// `--wasmbox-compat`: raw programs answer byte for byte as WasmBox does, and `/<name>.wasm`
    /// reaches the function `/<name>`.
    pub wasmbox_compat: bool,
    /// `--memory-budget`: MB of real memory the guests may hold in total; a growth past it fails
    /// in that guest with a 503 (memory pressure). `None`: counted, unbounded.
    pub memory_budget_mb: Option<u64>,
    /// `--max-body-size`: the largest request body, in bytes (413 beyond it).
    pub max_body_bytes: u64,
    /// `--body-read-timeout`: how long a body read whole may take to arrive (408 beyond it).
    pub body_read_timeout: Duration,
    /// `--outbound-connect-timeout` and `--outbound-response-timeout`: how long a guest's
    /// outbound HTTP call may take (never past the request's own timeout).
    pub outbound: OutboundLimits,
    /// `--max-response-size`: the most a WAGI module or raw program may print for one response, in
    /// bytes (a 500 beyond it; a request's memory grant caps it too).
    pub max_response_bytes: usize,
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
            wasmbox_compat: false,
            memory_budget_mb: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            outbound: OutboundLimits::default(),
            max_response_bytes: wasmpod_runtime::MAX_STDOUT_BYTES,
        }
    }
}

/// Everything a request needs, shared by all connections (never cloned per request).
pub struct App {
    /// The functions served now; owns the engine and its epoch clock.
    live: LiveRegistry,
    /// Where the functions come from, read again by [`App::reload`] (`None`: fixed functions).
    source: Option<FunctionSource>,
    config: AppConfig,
    breaker: Option<Breaker>,
    cpu: Arc<CpuGauge>,
    /// Shared with component guests that outlive their response (their end is counted later).
    metrics: Arc<Metrics>,
    /// Every tenant seen: admission ids, series, own caps.
    tenants: TenantTable,
    /// What the last load of each route said, for the admin API.
    catalog: SharedCatalog,
    draining: AtomicBool,
    /// Guests running now, for the shutdown (which may have to stop them).
    running: Arc<RunningGuests>,
    /// The real memory of the running instances, against the pod's budget.
    pod_memory: Arc<PodMemory>,
    next_request_id: AtomicU64,
}

impl App {
    /// Builds the app over loaded functions (`report`: their first load, for the log and the
    /// metrics) and starts the pod's CPU sampler (it must be called inside a tokio runtime).
    /// `source` is where [`App::reload`] reads the functions again.
    pub fn new(
        live: LiveRegistry,
        report: &LoadReport,
        source: Option<FunctionSource>,
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
        let pod_memory =
            Arc::new(PodMemory::new(config.memory_budget_mb.map(|mb| mb.saturating_mul(1 << 20))));
        if let Some(breaker) = &breaker {
            let pod_memory = pod_memory.clone();
            breaker.watch_real_memory(move || pod_memory.used_bytes());
        }
        let metrics = Arc::new(Metrics::new(&config.identity));
        let running = Arc::new(RunningGuests::new(metrics.cancelled()));
        let app = App {
            live,
            source,
            config,
            breaker,
            cpu,
            metrics,
            tenants: TenantTable::default(),
            catalog: SharedCatalog::default(),
            draining: AtomicBool::new(false),
            running,
            pod_memory,
            next_request_id: AtomicU64::new(1),
        };
        app.loaded(report, true);
        Ok(app)
    }

    /// Where the functions come from, if they can be reloaded.
    pub fn source(&self) -> Option<&FunctionSource> {
        self.source.as_ref()
    }

    /// The functions served now.
    pub fn registry(&self) -> Guard<Arc<Registry>> {
        self.live.current()
    }

    /// Reads the functions' source again and makes what it says the served functions: new and
    /// changed functions are compiled off the request path and swapped in, removed ones
    /// unloaded; requests in flight finish on the version they started with. A source that
    /// cannot be read (a bad `modules.toml`) changes nothing: the old functions go on serving,
    /// and the error, with its file, line and field, is logged. Returns what changed.
    pub async fn reload(&self) -> Option<LoadReport> {
        let source = self.source.as_ref()?;
        let loaded = match source.read() {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(source = %source.path().display(), "reload refused, the functions loaded before go on serving: {error}");
                return None;
            }
        };
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        let report = self.live.update(loaded.functions).await;
        self.loaded(&report, false);
        self.set_tenant_caps(&loaded.tenants);
        Some(report)
    }

    /// Gives the tenants of `settings` their own caps (`[tenants.<name>]`), and every other
    /// tenant the defaults (`--tenant-max-inflight-mb`, `--tenant-max-queued-mb`). Caps need
    /// admission: with `--no-admission` they are ignored, with a warning.
    pub fn set_tenant_caps(&self, settings: &[TenantSettings]) {
        match (&self.breaker, &self.config.admission) {
            (Some(breaker), Some(admission)) => {
                self.tenants.set_caps(settings, breaker, admission.tenant_limits, &self.metrics);
            }
            _ if !settings.is_empty() => tracing::warn!("admission is off: tenant caps are ignored"),
            _ => {}
        }
    }

    /// Logs what a load did, counts it, and brings the per-function metrics in line with the
    /// functions served now. `initial`: the pod's first load, whose functions are logged at debug.
    fn loaded(&self, report: &LoadReport, initial: bool) {
        for event in &report.events {
            let route = &event.route;
            let module = event.module.display();
            match &event.outcome {
                LoadOutcome::Loaded { replaced, compile_time, sha256, size, warnings } => {
                    self.metrics.function_loaded(true);
                    // Compiling, or mapping from the artifact cache: its own line said which.
                    let load_ms = compile_time.as_secs_f64() * 1000.0;
                    let what = if *replaced { "function reloaded" } else { "function loaded" };
                    if initial {
                        // A pod may start with thousands: the "modules ready" line sums them up.
                        tracing::debug!(%route, %module, load_ms, sha256 = %sha256, bytes = size, "{what}");
                    } else {
                        tracing::info!(%route, %module, load_ms, sha256 = %sha256, bytes = size, "{what}");
                    }
                    for warning in warnings {
                        tracing::warn!(%route, %module, "route answers 500 until fixed: {warning}");
                    }
                }
                LoadOutcome::Failed { error, kept_previous } => {
                    self.metrics.function_loaded(false);
                    let then = if *kept_previous {
                        "its previous version goes on serving"
                    } else {
                        "its route answers 500 until fixed"
                    };
                    tracing::error!(%route, %module, "function failed to load, {then}: {error}");
                }
                LoadOutcome::Removed => tracing::info!(%route, %module, "function unloaded"),
            }
        }
        crate::admin::lock(&self.catalog).record(report);
        let registry = self.live.current();
        self.metrics.set_functions(registry.functions().map(|f| (f.name(), f.load_error().is_none())));
        for function in registry.functions() {
            self.tenants.add(tenant_name(function), self.breaker.as_ref(), &self.metrics);
        }
    }

    /// What the last load of each route said (digest, size, compile time).
    pub(crate) fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        crate::admin::lock(&self.catalog)
    }

    /// Requests function `name` has answered since it was first loaded.
    pub(crate) fn requests_of(&self, name: &str) -> u64 {
        self.metrics.function(name).map_or(0, |m| m.requests())
    }

    /// Marks the pod as going away: `/readyz` fails from now on, requests still run.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`App::start_draining`] was called.
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

    /// The connections open now, held to `--max-connections` by the accepting side.
    pub(crate) fn connections(&self) -> &Connections {
        self.metrics.connections()
    }

    /// A connection was closed because its request head did not arrive in time.
    pub(crate) fn header_timeout(&self) {
        self.metrics.client_timeout(ClientTimeout::Header);
    }

    /// The request path, top to bottom: built-in endpoints; route; the guest's input; admission
    /// by declared memory; the guest (one `match` on its kind); one epilogue that logs, counts
    /// and answers, whatever happened.
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

        // Route.
        let Some(function) = self.lookup(parts.uri.path()) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let function = &function;
        let trace = Trace {
            tenant: self.tenants.of(function, self.breaker.as_ref(), &self.metrics),
            function,
            request_id: self.next_request_id.fetch_add(1, Ordering::Relaxed),
            started: Instant::now(),
            metrics: self.metrics.function(function.name()),
        };

        // What the request declares: its memory (admission weight and grant) and CPU quota.
        let declared = self.declared(&trace, &parts.headers);

        // The guest's input, within the body limits.
        let limits = BodyLimits {
            max_bytes: self.config.max_body_bytes,
            grant_bytes: declared.limits.memory_bytes.unwrap_or(u64::MAX),
            timeout: self.config.body_read_timeout,
        };
        let call = match Call::prepare(function, &parts.method, body, &limits).await {
            Ok(call) => call,
            Err(PrepareError::Body(error)) => {
                let refused = self.body_refused(&trace, &limits, error);
                return self.respond(&trace, 0, Err(Failure::Refused(refused)));
            }
            Err(PrepareError::Failed(failure)) => return self.respond(&trace, 0, Err(failure)),
        };

        // Admit.
        let admitted = match self.admit(&trace, declared).await {
            Ok(admitted) => admitted,
            Err(refused) => return self.respond(&trace, 0, Err(Failure::Refused(refused))),
        };
        let memory_mb = admitted.limits.memory_bytes.unwrap_or(0) >> 20;

        // Execute: one match on the guest kind.
        let answer = match call {
            Call::Wagi(module, body) => self.run_wagi(&trace, module, &parts, body, remote, admitted).await,
            Call::Raw(program, stdin) => self.run_raw(&trace, program, stdin, admitted).await,
            Call::Http(component, body) => {
                self.serve_component(&trace, component, parts, body, admitted).await
            }
        };

        // Respond.
        self.respond(&trace, memory_mb, answer)
    }

    /// The function serving `path`. With `--wasmbox-compat`, a WasmBox client's
    /// `/<name>.wasm` reaches `/<name>` too (WasmBox routes by file name).
    fn lookup(&self, path: &str) -> Option<Arc<Function>> {
        let registry = self.live.current();
        let found = registry.lookup(path);
        if found.is_some() || !self.config.wasmbox_compat {
            return found.cloned();
        }
        registry.lookup(path.strip_suffix(".wasm")?).cloned()
    }

    /// The environment `function`'s guests see: the server's `--env` values, then the
    /// function's own `env` (which win). Borrowed unless the function has its own.
    fn guest_env(&self, function: &Function) -> Cow<'_, [(String, String)]> {
        let own = &function.spec().env;
        if own.is_empty() {
            return Cow::Borrowed(&self.config.user_env);
        }
        let mut env: Vec<(String, String)> = self
            .config
            .user_env
            .iter()
            .filter(|(name, _)| !own.iter().any(|(n, _)| n == name))
            .cloned()
            .collect();
        env.extend(own.iter().cloned());
        Cow::Owned(env)
    }

    /// A WAGI module: the CGI environment and the whole body in, the parsed output back. The
    /// grant is held until the guest has finished.
    async fn run_wagi(
        &self,
        trace: &Trace<'_>,
        module: &WagiModule,
        parts: &http::request::Parts,
        body: Bytes,
        remote: IpAddr,
        admitted: Admitted,
    ) -> Result<Answer, Failure> {
        let cgi = CgiRequest {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            body_len: body.len(),
            remote_addr: remote,
            route: trace.function.route(),
            default_host: &self.config.default_host,
        };
        let input = WagiInput {
            env: build_env(&cgi, &self.guest_env(trace.function)),
            argv: build_argv(parts.uri.path(), parts.uri.query(), module.argv_template()),
            body,
        };
        let mut admitted = admitted;
        let result = cpu_metered(module.run(input, &admitted.limits), &mut admitted.usage.cpu).await;
        admitted.running.finish();
        drop(admitted.usage);
        learn_from(admitted.grant, result.as_ref().map(|o| o.peak_memory_bytes));
        let outcome = result.map_err(Failure::guest)?;
        let response = outcome.response;
        for warning in &response.warnings {
            tracing::warn!(function = %trace.function.name(), request_id = trace.request_id, "guest output: {warning}");
        }
        let mut builder = Response::builder().status(response.status);
        for (name, value) in response.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .body(ResponseBody::full(response.body))
            .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR));
        Ok(Answer {
            response,
            instantiate: outcome.instantiate,
            peak_memory_bytes: Some(outcome.peak_memory_bytes),
        })
    }

    /// A raw program: `stdin` in, what it printed out, with WasmBox's timing headers whatever
    /// happened. The grant is held until the guest has finished.
    async fn run_raw(
        &self,
        trace: &Trace<'_>,
        program: &RawProgram,
        stdin: Bytes,
        admitted: Admitted,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let mut admitted = admitted;
        let env = self.guest_env(trace.function);
        let result = cpu_metered(program.run(stdin, &env, &admitted.limits), &mut admitted.usage.cpu).await;
        let reply = RawReply {
            compat: self.config.wasmbox_compat,
            execution: started.elapsed(),
            // This request is still among them, as WasmBox counts it.
            in_flight: self.running.count(),
        };
        admitted.running.finish();
        drop(admitted.usage);
        learn_from(admitted.grant, result.as_ref().map(|o| o.peak_memory_bytes));
        match result {
            Ok(outcome) => Ok(Answer {
                response: reply.success(outcome.stdout),
                instantiate: outcome.instantiate,
                peak_memory_bytes: Some(outcome.peak_memory_bytes),
            }),
            Err(error) => {
                let response = reply.failure(status_for(&error));
                Err(Failure::Guest { error, response: Some(response) })
            }
        }
    }

    /// A `wasi:http` component: the request handed over as it streams in, the response streamed
    /// back as the guest writes it. The guest keeps running after it has answered, while its
    /// body streams; the grant is held until the guest has finished.
    async fn serve_component<B>(
        &self,
        trace: &Trace<'_>,
        component: &HttpComponent,
        mut parts: http::request::Parts,
        body: B,
        admitted: Admitted,
    ) -> Result<Answer, Failure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        // wasi:http needs an authority; an HTTP/1.0 request (or `wasmpod run`) may not have one.
        if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
            if let Ok(host) = HeaderValue::from_str(&self.config.default_host) {
                parts.headers.insert(header::HOST, host);
            }
        }
        let metrics = self.metrics.clone();
        let name = trace.function.name().clone();
        let request_id = trace.request_id;
        let Admitted { grant, limits, running, mut usage } = admitted;
        let tenant = trace.tenant.metrics.clone();
        let on_end = move |end: GuestEnd| {
            // Held until now: the guest's memory was in use until it finished.
            usage.cpu += end.cpu;
            drop(usage);
            learn_from(grant, end.error.as_ref().map_or(Ok(end.peak_memory_bytes), Err));
            running.finish();
            tenant.observe_peak(end.peak_memory_bytes);
            if let Some(m) = metrics.function(&name) {
                m.observe_instance(end.instantiate, end.peak_memory_bytes);
            }
            if let Some(error) = end.error {
                metrics.guest_error(&name, error.kind());
                tracing::error!(function = %name, request_id, kind = error.kind(), "guest failed after responding: {error}");
            }
        };
        let request = Request::from_parts(parts, body);
        let env = self.guest_env(trace.function);
        // The instantiation's CPU; the guest's own is in its end (`on_end`).
        let mut cpu = std::time::Duration::ZERO;
        let served = cpu_metered(component.serve(request, &env, &limits, on_end), &mut cpu).await;
        trace.tenant.metrics.add_cpu(cpu);
        let outcome = served.map_err(Failure::guest)?;
        let response = outcome.response.map(ResponseBody::stream);
        // The instance's peak is known only when the guest ends (`on_end`).
        Ok(Answer { response, instantiate: outcome.instantiate, peak_memory_bytes: None })
    }

    /// The one epilogue of every guest request, whatever happened: the request's log line (debug
    /// on success, error with the reason on a guest failure; a refusal was logged by
    /// [`App::admit`]), its metrics, and its response.
    fn respond(
        &self,
        trace: &Trace<'_>,
        memory_mb: u64,
        result: Result<Answer, Failure>,
    ) -> Response<ResponseBody> {
        let elapsed = trace.started.elapsed();
        let function = trace.function.name();
        let response = match result {
            Ok(answer) => {
                if let Some(peak) = answer.peak_memory_bytes {
                    trace.tenant.metrics.observe_peak(peak);
                    if let Some(m) = &trace.metrics {
                        m.observe_instance(answer.instantiate, peak);
                    }
                }
                tracing::debug!(
                    %function,
                    tenant = %trace.tenant.name,
                    request_id = trace.request_id,
                    status = answer.response.status().as_u16(),
                    elapsed_us = elapsed.as_micros() as u64,
                    instantiate_us = answer.instantiate.as_micros() as u64,
                    memory_mb,
                    "request"
                );
                answer.response
            }
            Err(Failure::Refused(response)) => response,
            Err(Failure::Guest { error, response }) => {
                let response = response.unwrap_or_else(|| match &error {
                    RunError::Output(OutputError::MissingHeaders) => {
                        text(status_for(&error), MISSING_HEADERS_MESSAGE)
                    }
                    _ => empty(status_for(&error)),
                });
                let status = response.status();
                self.metrics.guest_error(function, error.kind());
                tracing::error!(
                    %function,
                    tenant = %trace.tenant.name,
                    request_id = trace.request_id,
                    status = status.as_u16(),
                    kind = error.kind(),
                    elapsed_us = elapsed.as_micros() as u64,
                    memory_mb,
                    "request failed: {error}"
                );
                response
            }
        };
        let status = response.status().as_u16();
        trace.tenant.metrics.observe(status);
        if let Some(m) = &trace.metrics {
            m.observe(status, elapsed);
        }
        response
    }

    /// What a request declares in its headers, with its function's settings applied: the units
    /// it is admitted by, and the limits it will run under (its memory grant, which its buffered
    /// body and its output count against too, its timeout, its CPU quota).
    fn declared(&self, trace: &Trace<'_>, headers: &http::HeaderMap) -> Declared {
        let spec = trace.function.spec();
        let default_units = spec.memory_request_mb.unwrap_or(self.config.default_memory_request_mb);
        let units =
            units_from_header(headers.get(MEMORY_REQUEST_HEADER).map(|v| v.as_bytes()), default_units);
        let grant_mb = spec.max_memory_mb.map_or(units, |max| units.min(max));
        let limits = RequestLimits {
            memory_bytes: Some(grant_mb.saturating_mul(1 << 20)),
            timeout: spec.timeout.unwrap_or(self.config.timeout),
            cpu_quota_millicores: cpu_quota_from_header(headers.get(CPU_QUOTA_HEADER).map(|v| v.as_bytes())),
            pod_memory: Some(self.pod_memory.clone()),
            outbound: self.config.outbound,
            max_output_bytes: self.config.max_response_bytes,
        };
        Declared { units, grant_mb, limits }
    }

    /// Waits for the breaker to admit the request's declared memory; or answers why not.
    /// Dropping this future (the client went away) leaves the queue and returns the units at once.
    async fn admit(&self, trace: &Trace<'_>, declared: Declared) -> Result<Admitted, Response<ResponseBody>> {
        let grant = match &self.breaker {
            None => None,
            Some(breaker) => Some(self.acquire(breaker, trace, declared.units).await?),
        };
        let running = self.running.enter(trace.function.name().clone(), trace.request_id);
        let usage = Usage::start(&trace.tenant, declared.grant_mb);
        Ok(Admitted { grant, limits: declared.limits, running, usage })
    }

    /// The answer to a body that could not be taken: 413 (larger than `--max-body-size`, or than
    /// the memory grant it would be held under), 408 (too slow), 400 (broken off). The first two
    /// close the connection: the rest of the body is never read.
    fn body_refused(
        &self,
        trace: &Trace<'_>,
        limits: &BodyLimits,
        error: BodyError,
    ) -> Response<ResponseBody> {
        let (status, reason) = match error {
            BodyError::OverMaxBodySize => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than the limit of {} bytes (--max-body-size)", limits.max_bytes),
            ),
            BodyError::OverGrant => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body larger than its memory grant of {} MB: a body the guest reads whole \
                     is held in memory and counts against the Memory-Request it declares",
                    limits.grant_bytes >> 20
                ),
            ),
            BodyError::Timeout => {
                self.metrics.client_timeout(ClientTimeout::Body);
                (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request body not received within {} s (--body-read-timeout)",
                        limits.timeout.as_secs_f64()
                    ),
                )
            }
            BodyError::Broken(e) => {
                tracing::debug!(function = %trace.function.name(), request_id = trace.request_id, "reading request body: {e}");
                return empty(StatusCode::BAD_REQUEST);
            }
        };
        tracing::warn!(
            function = %trace.function.name(),
            request_id = trace.request_id,
            status = status.as_u16(),
            "refused: {reason}"
        );
        let mut response = plain(status, format!("{reason}\n"));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    async fn acquire(
        &self,
        breaker: &Breaker,
        trace: &Trace<'_>,
        units: u64,
    ) -> Result<Grant, Response<ResponseBody>> {
        let queue_timeout = self.config.queue_timeout.unwrap_or(self.config.timeout);
        // The function's peaks are learned in either weight mode (its weight is in the metrics
        // before it is trusted); `--admission-weight learned` admits by them.
        let function = Some(breaker.function(trace.function.name()));
        let ticket = Ticket {
            tenant: trace.tenant.id,
            function,
            queue_timeout: Some(queue_timeout),
            ..Ticket::new(units)
        };
        let rejection = match breaker.acquire(ticket).await {
            Ok(grant) => {
                self.metrics.admitted();
                return Ok(grant);
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
        tracing::warn!(
            function = %trace.function.name(),
            tenant = %trace.tenant.name,
            request_id = trace.request_id,
            units,
            status = status.as_u16(),
            "refused: {reason}"
        );
        Err(plain(status, format!("{reason}\n")))
    }

    fn metrics_response(&self) -> Response<ResponseBody> {
        let snapshot = self.breaker.as_ref().map(Breaker::snapshot);
        let registry = self.live.current();
        let outbound_denied = registry.functions().map(|f| (f.name(), f.outbound_denied()));
        let instances = self.live.runtime().instances_in_use();
        let learned = self.breaker.as_ref().map(Breaker::function_snapshots).unwrap_or_default();
        self.metrics.observe_memory(
            self.pod_memory.used_bytes(),
            self.pod_memory.budget_bytes(),
            self.pod_memory.refused_growths(),
            learned.iter().filter_map(|f| Some((&*f.name, f.learned_mb?))),
        );
        let tenants = self.breaker.as_ref().map(Breaker::tenant_snapshots).unwrap_or_default();
        let pool = self.live.runtime().pool_idle();
        let body =
            self.metrics.render(snapshot, self.cpu.cores(), instances, pool, outbound_denied, &tenants);
        let mut response = Response::new(ResponseBody::full(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// One guest request, for its log lines and metrics: which function, its id, its clock.
struct Trace<'a> {
    function: &'a Function,
    tenant: Arc<Tenant>,
    request_id: u64,
    started: Instant,
    metrics: Option<Arc<FunctionMetrics>>,
}

/// What a request declared, before admission: its units and the limits it will run under.
struct Declared {
    units: u64,
    /// The memory the guest may use, in MB: the units, capped by the function's `max_memory`.
    grant_mb: u64,
    limits: RequestLimits,
}

/// A request past admission: the grant to hold while the guest runs, the limits it runs under,
/// and its place among the guests running.
struct Admitted {
    grant: Option<Grant>,
    limits: RequestLimits,
    running: RunningGuest,
    /// Billed to the tenant when dropped, after the guest has finished.
    usage: Usage,
}

/// A routed request ready to run: its guest, and the input that kind of guest takes.
enum Call<'f, B> {
    /// A WAGI module reads the whole body from stdin.
    Wagi(&'f WagiModule, Bytes),
    /// A raw program reads its stdin: the body, the JSON `parameter` of WasmBox's requests, or
    /// nothing for a GET.
    Raw(&'f RawProgram, Bytes),
    /// A component reads the body as it streams (cut off past `--max-body-size`).
    Http(&'f HttpComponent, Limited<B>),
}

/// What a request body may cost the pod.
struct BodyLimits {
    /// `--max-body-size`.
    max_bytes: u64,
    /// The request's memory grant: a body read whole is held in memory, so it must fit.
    grant_bytes: u64,
    /// `--body-read-timeout`, for a body read whole.
    timeout: Duration,
}

/// Why a request body was not taken.
enum BodyError {
    OverMaxBodySize,
    OverGrant,
    Timeout,
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

/// Why a routed request got no input for its guest.
enum PrepareError {
    /// Its body was refused.
    Body(BodyError),
    /// Its function cannot run (it failed to load).
    Failed(Failure),
}

impl From<BodyError> for PrepareError {
    fn from(error: BodyError) -> PrepareError {
        PrepareError::Body(error)
    }
}

impl<'f, B> Call<'f, B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Reads what the guest needs before it may start. A whole body is read before admission,
    /// so a slow upload holds no memory grant; a body declared (`Content-Length`) larger than
    /// allowed is refused before a byte of it is read.
    async fn prepare(
        function: &'f Function,
        method: &Method,
        body: B,
        limits: &BodyLimits,
    ) -> Result<Call<'f, B>, PrepareError> {
        let declared = body.size_hint().exact();
        if declared.is_some_and(|len| len > limits.max_bytes) {
            return Err(BodyError::OverMaxBodySize.into());
        }
        Ok(match function.guest() {
            Guest::Wagi(module) => Call::Wagi(module, read_whole(body, limits).await?),
            Guest::Raw(program) => Call::Raw(program, raw_stdin(method, read_whole(body, limits).await?)),
            Guest::Http(component) => {
                let max = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
                Call::Http(component, Limited::new(body, max))
            }
            // A function that did not load answers 500 at once, before admission.
            Guest::Failed(reason) => {
                let failure = Failure::guest(RunError::Unavailable(reason.to_string()));
                return Err(PrepareError::Failed(failure));
            }
        })
    }
}

/// Reads a whole body within `limits` (its size, its grant, its time). A body in one frame is
/// passed on without a copy; a longer one is gathered into one buffer sized from its
/// `Content-Length` (collecting frames and then joining them would hold it twice).
async fn read_whole<B>(body: B, limits: &BodyLimits) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().exact().is_some_and(|len| len > limits.grant_bytes) {
        return Err(BodyError::OverGrant);
    }
    tokio::time::timeout(limits.timeout, gather(body, limits.max_bytes, limits.grant_bytes))
        .await
        .map_err(|_| BodyError::Timeout)?
}

async fn gather<B>(body: B, max_bytes: u64, grant_bytes: u64) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let expected = body.size_hint().lower();
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.into()))?;
        let Ok(data) = frame.into_data() else { continue };
        total = total.saturating_add(data.len() as u64);
        if total > max_bytes {
            return Err(BodyError::OverMaxBodySize);
        }
        if total > grant_bytes {
            return Err(BodyError::OverGrant);
        }
        match (&mut first, &mut gathered) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                let capacity = usize::try_from(expected.max(total)).unwrap_or(usize::MAX);
                let mut buffer = BytesMut::with_capacity(capacity);
                buffer.extend_from_slice(&first.take().unwrap_or_default());
                buffer.extend_from_slice(&data);
                gathered = Some(buffer);
            }
            (_, Some(buffer)) => buffer.extend_from_slice(&data),
        }
    }
    Ok(match gathered {
        Some(buffer) => buffer.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// What a guest answered, for the epilogue.
struct Answer {
    response: Response<ResponseBody>,
    instantiate: Duration,
    /// The instance's peak memory, when the guest has already finished (a component still
    /// writing its body reports it when it ends).
    peak_memory_bytes: Option<u64>,
}

/// Why a request got no answer from its guest.
enum Failure {
    /// Admission said no, or the request could not be read; the response says why.
    Refused(Response<ResponseBody>),
    /// The guest failed. `response` tells the client, when the guest kind has its own way to
    /// (`None`: the server's usual 5xx for the error).
    Guest { error: RunError, response: Option<Response<ResponseBody>> },
}

impl Failure {
    fn guest(error: RunError) -> Failure {
        Failure::Guest { error, response: None }
    }
}

fn status_for(error: &RunError) -> StatusCode {
    match error {
        RunError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        RunError::PoolExhausted(_) | RunError::MemoryPressure { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Hands a grant back when its guest has finished. A guest that completed teaches admission its
/// function's peak memory, and so does one stopped at its grant (it needed at least that much);
/// any other failure says nothing about its footprint and only returns the units.
fn learn_from(grant: Option<Grant>, outcome: Result<u64, &RunError>) {
    let Some(grant) = grant else { return };
    match outcome {
        Ok(peak_memory_bytes) => grant.finish(peak_memory_bytes),
        Err(RunError::MemoryLimit { limit_mb }) => grant.finish(limit_mb.saturating_mul(1 << 20)),
        Err(_) => drop(grant),
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
