//! The Wasm side of wasmpod: the one engine, loading functions (compile once, or map the code
//! from the artifact cache; link once, `InstancePre` per function), and running one request in a
//! fresh, limited instance.
//!
//! Two kinds of guest are served: WAGI core modules (WASI preview1, CGI over stdin/stdout) and
//! `wasi:http/incoming-handler` components (`wasi:http` proxy world, bodies streamed both ways);
//! which one a file is, is read from its bytes at load.
//!
//! It knows WAGI's rules only through `wasmpod-wagi` and knows nothing of HTTP servers or
//! admission: the server hands it a function, the guest's input and the request's limits, and gets
//! back a response or the reason there is none. It sits at the executor step of the request path.

mod allowed_hosts;
mod artifact_cache;
mod config;
mod engine;
mod error;
mod experimental_http;
mod function;
mod guest_log;
mod limits;
mod outbound;
mod registry;
mod wasi_http;

pub use allowed_hosts::AllowedHosts;
pub use artifact_cache::{Artifact, ArtifactCache, BadEntry, CacheOutcome};
pub use config::{parse_modules_toml, read_functions_dir, read_modules_toml, FunctionSpec, LoadedConfig};
pub use engine::{build_engine, EngineOptions, EpochTicker, EPOCH_TICK};
pub use error::{Error, RunError};
pub use experimental_http::MAX_RESPONSE_BYTES;
pub use function::{Function, Outcome, WagiInput, WagiState, MAX_STDOUT_BYTES};
pub use guest_log::{log_file_path, GuestLog};
pub use limits::{RequestLimits, DEFAULT_TIMEOUT};
pub use outbound::{OUTBOUND_CONNECT_TIMEOUT, OUTBOUND_TIMEOUT};
pub use registry::{Registry, Runtime};
pub use wasi_http::{GuestEnd, HttpBody, HttpOutcome};
