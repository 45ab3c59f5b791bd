//! The Wasm side of wasmpod: the one engine, loading functions (compile once, or map the code
//! from the artifact cache; link once, `InstancePre` per function), and running one request in a
//! fresh, limited instance.
//!
//! It must never depend on hyper's server side or on admission: the server hands it a function,
//! the guest's input and the request's limits, and gets back a response or the reason there is
//! none. It knows WAGI's rules only through `wasmpod-wagi` and reads configuration only as
//! `wasmpod-config`'s [`FunctionSpec`]s. It sits at the executor step of the request path.
//!
//! Each kind of guest has its own type behind [`Guest`]: [`WagiModule`] (WASI preview1, CGI over
//! stdin/stdout), [`RawProgram`] (a preview1 command: stdin in, stdout out, for
//! `interface = "raw"`) and [`HttpComponent`] (`wasi:http/incoming-handler`, bodies streamed both
//! ways); a module or a component is told apart by its bytes at load. Their stores are all built in one place
//! (`store.rs`), under the same limits (`limits.rs`).

#![warn(missing_docs)]

mod artifact_cache;
pub mod atomic_file;
mod cache_entry;
mod cgroup_cpu;
mod command;
mod engine;
mod error;
mod experimental_http;
mod function;
mod guest_log;
mod limits;
mod live;
mod module_limits;
mod outbound;
mod raw;
mod registry;
mod runtime;
mod store;
mod wagi;
mod wasi_http;

pub use artifact_cache::{Artifact, ArtifactCache, CacheOutcome};
pub use cache_entry::{BadEntry, TEMP_PREFIX as CACHE_TEMP_PREFIX};
pub use cgroup_cpu::{
    CgroupCpu, CgroupError, CgroupUnsupported, Mechanism, CGROUP_CPU_PERIOD, MAX_CGROUP_WORKERS,
};
pub use command::MAX_STDOUT_BYTES;
pub use engine::{build_engine, EngineOptions, EpochTicker, PoolIdle, DEFAULT_MAX_WARM_SLOTS, EPOCH_TICK};
pub use error::{Error, RunError};
pub use experimental_http::MAX_RESPONSE_BYTES;
pub use function::{Function, Guest};
pub use guest_log::{log_file_path, GuestLog};
pub use limits::{cpu_metered, PodMemory, RequestLimits, DEFAULT_TIMEOUT};
pub use live::{LiveRegistry, LoadEvent, LoadOutcome, LoadReport, DEFAULT_COMPILE_THREADS};
pub use module_limits::{ModuleLimits, DEFAULT_MAX_MODULE_BYTES, DEFAULT_MAX_MODULE_FUNCTIONS};
pub use outbound::{OutboundLimits, DEFAULT_OUTBOUND_CONNECT_TIMEOUT, DEFAULT_OUTBOUND_RESPONSE_TIMEOUT};
pub use raw::{RawOutcome, RawProgram};
pub use registry::Registry;
pub use runtime::Runtime;
pub use store::MAX_GUEST_HANDLES;
pub use wagi::{Outcome, WagiInput, WagiModule, ROUTES_TIMEOUT};
pub use wasi_http::{GuestEnd, HttpBody, HttpComponent, HttpOutcome};
pub use wasmpod_config::{AllowedHosts, FunctionSpec, Interface};
