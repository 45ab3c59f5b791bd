use std::path::PathBuf;

use thiserror::Error;

/// Why functions could not be loaded: each names the file or route and the reason, because a
/// server that cannot load its functions must refuse to start with a message a user can act on.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    ReadConfig { path: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Config { file: String, line: usize, message: String },
    #[error("route {route:?}: module {}: {reason}", module.display())]
    Module { route: String, module: PathBuf, reason: String },
    #[error("route {route:?}: {reason}")]
    Route { route: String, reason: String },
    #[error("engine: {0}")]
    Engine(String),
    #[error("log dir {}: {source}", path.display())]
    LogDir { path: PathBuf, source: std::io::Error },
    #[error("artifact cache {}: {source}", path.display())]
    ArtifactCache { path: PathBuf, source: std::io::Error },
    #[error("module {}: invalid module: {reason}", module.display())]
    InvalidModule { module: PathBuf, reason: String },
}

/// Why one request's guest did not produce a response. Each answers that request only.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("guest ran past its time limit of {0:?}")]
    Timeout(std::time::Duration),
    #[error("memory limit of {limit_mb} MB exceeded")]
    MemoryLimit { limit_mb: u64 },
    #[error("guest exited with status {0}")]
    Exit(i32),
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("no instance slot free (pool exhausted): {0}")]
    PoolExhausted(String),
    #[error("guest output: {0}")]
    Output(#[from] wasmpod_wagi::OutputError),
}

impl RunError {
    /// A short, stable name for metrics labels (`traps by kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Timeout(_) => "timeout",
            RunError::MemoryLimit { .. } => "memory_limit",
            RunError::Exit(_) => "exit",
            RunError::Trap(_) => "trap",
            RunError::Instantiate(_) => "instantiate",
            RunError::PoolExhausted(_) => "pool_exhausted",
            RunError::Output(_) => "bad_output",
        }
    }
}
