use thiserror::Error;

/// Everything a WAGI input (a flag, a `_routes` table) can get wrong, worded for the person who wrote it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error("export \"_routes\" printed an empty table")]
    EmptyRoutesText,
    #[error("export \"_routes\" line {line}: expected \"<path> <entrypoint>\", got {text:?}")]
    MalformedRoutesLine { line: usize, text: String },
    #[error("export \"_routes\" printed text that is not UTF-8")]
    RoutesTextNotUtf8,
    #[error("environment variable {text:?}: expected NAME=VALUE")]
    InvalidEnvVar { text: String },
}
