//! The HTTP front of wasmpod: accept, route, admit, hand the request to the runtime, answer; plus
//! the endpoints a platform needs (health, readiness, metrics) and a graceful drain on shutdown.
//!
//! It owns the request path from the socket to the response (`ARCHITECTURE.md`, "The request
//! path"), which reads top to bottom in [`App::handle`]; the Wasm work itself is the runtime's
//! and the admission rules are `wasmpod-admission`'s. It must never decide a WAGI rule (they come
//! from `wasmpod-wagi`) nor read the environment (only the binary does).

#![warn(missing_docs)]

mod admin;
mod app;
mod body;
mod identity;
mod linger;
mod metrics;
mod running;
mod serve;
mod tenants;
mod wasmbox;
mod watch;

pub use admin::{serve_admin, AdminConfig, AdminError, UPLOAD_TEMP_PREFIX};
pub use app::{
    App, AppConfig, CPU_QUOTA_HEADER, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MEMORY_REQUEST_MB, MEMORY_REQUEST_HEADER,
};
pub use body::ResponseBody;
pub use identity::ServiceIdentity;
pub use serve::{
    serve, ConnectionLimits, ShutdownConfig, Stop, DEFAULT_DRAIN_PERIOD, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_SHUTDOWN_TIMEOUT, MIN_MAX_HEADER_BYTES,
};
pub use wasmbox::{raw_stdin, EXECUTION_TIME_HEADER, NUM_CURRENT_REQUESTS_HEADER, WASMBOX_FAILURE_BODY};
pub use wasmpod_admission::{
    high_water_mark, BreakerConfig, Learning, TenantLimits, WeightMode, DEFAULT_CAPACITY_MB,
    DEFAULT_MEMORY_HIGH_WATER_PERCENT, DEFAULT_QUEUE_DEPTH_MB, DEFAULT_TENANT_MAX_INFLIGHT_MB,
    DEFAULT_TENANT_MAX_QUEUED_MB,
};
pub use watch::{watch_source, SourceWatch, RELOAD_DEBOUNCE};
