//! The HTTP front of wasmpod: accept, route, hand the request to the runtime, answer; plus the
//! endpoints a platform needs (health, readiness, metrics), resource-aware admission, and a graceful drain on shutdown.
//!
//! It owns the request path from the socket to the response (`ARCHITECTURE.md`, "The request
//! path") and reads top to bottom
//! in [`App::handle`]; the Wasm work itself is the runtime's. No WAGI rule is decided here: they
//! come from `wasmpod-wagi`.

mod app;
mod identity;
mod metrics;
mod running;
mod serve;

pub use app::{
    App, AppConfig, ResponseBody, CPU_QUOTA_HEADER, DEFAULT_MEMORY_REQUEST_MB, MEMORY_REQUEST_HEADER,
};
pub use identity::ServiceIdentity;
pub use serve::{serve, ShutdownConfig, Stop, DEFAULT_DRAIN_PERIOD, DEFAULT_SHUTDOWN_TIMEOUT};
pub use wasmpod_admission::{BreakerConfig, DEFAULT_CAPACITY_MB, DEFAULT_QUEUE_DEPTH_MB};
