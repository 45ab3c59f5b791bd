//! One request, from parsed HTTP to response.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use wasmpod_runtime::{Registry, RequestLimits, RunError, Runtime, WagiInput};
use wasmpod_wagi::{build_argv, build_env, CgiRequest, OutputError, DEFAULT_HOST, MISSING_HEADERS_MESSAGE};

/// The body of every response the server sends.
pub type ResponseBody = Full<Bytes>;

/// Server-wide settings that shape each request.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `--env` / `--env-file` values every guest sees (CGI variables override them).
    pub user_env: Vec<(String, String)>,
    /// `--default-host`: `SERVER_NAME`/`SERVER_PORT` when the request has no `Host`.
    pub default_host: String,
    /// `--timeout`: how long a guest may run unless its route says otherwise.
    pub timeout: Duration,
    /// Whether the listener is TLS (only changes the scheme of `X_FULL_URL`).
    pub tls: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            user_env: Vec::new(),
            default_host: DEFAULT_HOST.to_owned(),
            timeout: Duration::from_secs(30),
            tls: false,
        }
    }
}

/// Everything a request needs, shared by all connections (never cloned per request).
pub struct App {
    registry: Registry,
    /// Owns the engine and its epoch clock for as long as requests may run.
    _runtime: Runtime,
    config: AppConfig,
    draining: AtomicBool,
    next_request_id: AtomicU64,
}

impl App {
    pub fn new(runtime: Runtime, registry: Registry, config: AppConfig) -> App {
        App {
            registry,
            _runtime: runtime,
            config,
            draining: AtomicBool::new(false),
            next_request_id: AtomicU64::new(1),
        }
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

    /// The request path: built-in endpoints, route, CGI environment, guest, response.
    pub async fn handle(&self, request: Request<Bytes>, remote: IpAddr) -> Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        match path {
            // WAGI's built-in health check wins over any user route of the same path.
            "/healthz" => return text(StatusCode::OK, "OK"),
            "/readyz" if self.is_draining() => return text(StatusCode::SERVICE_UNAVAILABLE, "draining"),
            "/readyz" => return text(StatusCode::OK, "OK"),
            _ => {}
        }
        let Some(function) = self.registry.lookup(path) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();

        let cgi = CgiRequest {
            method: &parts.method,
            uri: &parts.uri,
            version: parts.version,
            headers: &parts.headers,
            body_len: body.len(),
            remote_addr: remote,
            route: function.route(),
            default_host: &self.config.default_host,
            tls: self.config.tls,
        };
        let input = WagiInput {
            env: build_env(&cgi, &self.config.user_env),
            argv: build_argv(path, parts.uri.query(), function.spec().argv.as_deref()),
            body,
        };
        let limits = RequestLimits {
            memory_bytes: None,
            timeout: function.spec().timeout.unwrap_or(self.config.timeout),
        };

        let result = function.run(input, &limits).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        match result {
            Ok(outcome) => {
                let response = outcome.response;
                for warning in &response.warnings {
                    tracing::warn!(function = %function.name(), request_id, "guest output: {warning}");
                }
                tracing::debug!(
                    function = %function.name(),
                    request_id,
                    status = response.status.as_u16(),
                    elapsed_us,
                    instantiate_us = outcome.instantiate.as_micros() as u64,
                    "request"
                );
                let mut builder = Response::builder().status(response.status);
                for (name, value) in response.headers {
                    builder = builder.header(name, value);
                }
                builder
                    .body(Full::new(response.body))
                    .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Err(error) => {
                let status = status_for(&error);
                tracing::error!(
                    function = %function.name(),
                    request_id,
                    status = status.as_u16(),
                    kind = error.kind(),
                    elapsed_us,
                    "request failed: {error}"
                );
                match error {
                    RunError::Output(OutputError::MissingHeaders) => text(status, MISSING_HEADERS_MESSAGE),
                    _ => empty(status),
                }
            }
        }
    }
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
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
