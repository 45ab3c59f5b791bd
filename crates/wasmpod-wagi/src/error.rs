use thiserror::Error;

/// Everything a WAGI input (a flag, a `_routes` table) can get wrong, worded for the person who wrote it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    /// `_routes` printed nothing but blank lines (WAGI refuses such a module).
    #[error("export \"_routes\" printed an empty table")]
    EmptyRoutesText,
    /// A `_routes` line is not two words.
    #[error("export \"_routes\" line {line}: expected \"<path> <entrypoint>\", got {text:?}")]
    MalformedRoutesLine {
        /// 1-based line number.
        line: usize,
        /// The line as printed.
        text: String,
    },
    /// `_routes` printed bytes that are not text.
    #[error("export \"_routes\" printed text that is not UTF-8")]
    RoutesTextNotUtf8,
    /// An `--env` value without `=`.
    #[error("environment variable {text:?}: expected NAME=VALUE")]
    InvalidEnvVar {
        /// The value as given.
        text: String,
    },
}
