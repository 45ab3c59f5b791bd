use std::path::PathBuf;

use thiserror::Error;

/// Why a configuration could not be read: each names the file (and the line and field when the
/// text is at fault), because a server that cannot read its configuration must refuse it with a
/// message a user can act on.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file or folder could not be read at all.
    #[error("{}: {source}", path.display())]
    Read {
        /// What was being read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The text is not a valid configuration.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file as given.
        file: String,
        /// 1-based line of the offending value (0 when the parser could not say).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
}
