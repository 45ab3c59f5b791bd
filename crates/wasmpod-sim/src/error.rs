//! The simulator's one error type.

use std::path::PathBuf;

/// Why a simulation could not be set up. Every input error names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A row or field of an input file is not what its format says.
    #[error("{path}:{line}: field {field:?}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// The column (or JSON key) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting no simulation can run with.
    #[error("invalid setting {name}: {reason}")]
    Setting {
        /// The setting, named as on the command line.
        name: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// A chart could not be drawn or written.
    #[error("chart {path}: {reason}")]
    Chart {
        /// The SVG file.
        path: PathBuf,
        /// What the plotting library said.
        reason: String,
    },
}
