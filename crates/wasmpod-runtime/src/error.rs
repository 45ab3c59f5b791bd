use std::path::PathBuf;

use thiserror::Error;

/// Why functions could not be loaded: each names the file or route and the reason, because a
/// server that cannot load its functions must refuse to start with a message a user can act on.
#[derive(Debug, Error)]
pub enum Error {
    /// One function's module could not be read, compiled, linked or prepared.
    #[error("route {route:?}: module {}: {reason}", module.display())]
    Module {
        /// The route as configured.
        route: String,
        /// The module file.
        module: PathBuf,
        /// What went wrong, for a person.
        reason: String,
    },
    /// A route's entrypoint is not an export of its module. WAGI serves such a route with a 500
    /// per request; so does wasmpod, unless `--strict`.
    #[error("route {route:?}: module {}: no exported function {entrypoint:?} (the entrypoint)", module.display())]
    MissingEntrypoint {
        /// The route as configured (or as `_routes` printed it).
        route: String,
        /// The module file.
        module: PathBuf,
        /// The export named as the entrypoint.
        entrypoint: String,
    },
    /// The engine could not be built or WASI linked (a bug or an unsupported host, not a user error).
    #[error("engine: {0}")]
    Engine(String),
    /// A guest stderr log file could not be created under `--log-dir`.
    #[error("log dir {}: {source}", path.display())]
    LogDir {
        /// The file that could not be opened.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The artifact cache directory could not be created.
    #[error("artifact cache {}: {source}", path.display())]
    ArtifactCache {
        /// The cache directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The bytes are not a valid module or component (from [`crate::ArtifactCache`], which does
    /// not know routes).
    #[error("module {}: invalid module: {reason}", module.display())]
    InvalidModule {
        /// The module file.
        module: PathBuf,
        /// wasmtime's reason.
        reason: String,
    },
}

/// Why one request's guest did not produce a response. Each answers that request only.
#[derive(Debug, Error)]
pub enum RunError {
    /// The guest ran past its time limit and was stopped (504).
    #[error("guest ran past its time limit of {0:?}")]
    Timeout(std::time::Duration),
    /// The guest tried to grow its memory past the request's grant.
    #[error("memory limit of {limit_mb} MB exceeded")]
    MemoryLimit {
        /// The grant, in MB.
        limit_mb: u64,
    },
    /// The guest tried to grow its memory while the pod's real memory budget was in use: the
    /// pod is overbooked, and this request pays for it with a retry (503), not the pod with an
    /// out-of-memory kill.
    #[error("memory pressure: the pod's memory budget of {budget_mb} MB is in use")]
    MemoryPressure {
        /// The pod's budget, in MB.
        budget_mb: u64,
    },
    /// The guest called `proc_exit` with a non-zero code.
    #[error("guest exited with status {0}")]
    Exit(i32),
    /// The guest trapped (`unreachable`, an out-of-bounds access, a stack overflow, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The instance could not be created (its start function failed, a limit was hit).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// Every instance slot of the pool is in use (503: admission should have prevented it).
    #[error("no instance slot free (pool exhausted): {0}")]
    PoolExhausted(String),
    /// The function could not be loaded; the reason is its load error.
    #[error("function not loaded: {0}")]
    Unavailable(String),
    /// The request's cgroup worker could not be prepared (`--cgroup-cpu`): the request fails
    /// rather than run without the quota it asked for.
    #[error("cpu isolation: {0}")]
    Isolation(String),
    /// A WAGI guest's stdout is not a valid CGI response.
    #[error("guest output: {0}")]
    Output(#[from] wasmpod_wagi::OutputError),
}

impl RunError {
    /// A short, stable name for metrics labels (`traps by kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Timeout(_) => "timeout",
            RunError::MemoryLimit { .. } => "memory_limit",
            RunError::MemoryPressure { .. } => "memory_pressure",
            RunError::Exit(_) => "exit",
            RunError::Trap(_) => "trap",
            RunError::Instantiate(_) => "instantiate",
            RunError::PoolExhausted(_) => "pool_exhausted",
            RunError::Isolation(_) => "isolation",
            RunError::Output(_) => "bad_output",
            RunError::Unavailable(_) => "unavailable",
        }
    }

    /// An instantiation failure, told apart from an exhausted instance pool.
    pub(crate) fn instantiate(e: wasmtime::Error) -> RunError {
        if e.is::<wasmtime::PoolConcurrencyLimitError>() {
            RunError::PoolExhausted(format!("{e:#}"))
        } else {
            RunError::Instantiate(format!("{e:#}"))
        }
    }
}
