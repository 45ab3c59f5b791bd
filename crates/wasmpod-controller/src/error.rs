//! The crate's one error.

use wasmpod_autoscale::SettingsError;

/// Why a tick, a scrape or the set-up failed, with what was being done and to what.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A call to the Kubernetes API failed.
    #[error("{action} {target}: {source}")]
    Api {
        /// What the controller was doing: `get deployment`, `list pods`, `patch scale`.
        action: &'static str,
        /// The object, `namespace/name`.
        target: String,
        /// The client's error.
        source: kube::Error,
    },
    /// The Deployment cannot be scaled by selector (it has none, or one that cannot be written).
    #[error("deployment {target}: {reason}")]
    Selector {
        /// The Deployment, `namespace/name`.
        target: String,
        /// What is wrong with its selector.
        reason: String,
    },
    /// A pod's `/metrics` could not be fetched.
    #[error("scrape pod {pod} ({url}): {reason}")]
    Scrape {
        /// The pod's name.
        pod: String,
        /// The URL scraped.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A line of a pod's `/metrics` text that cannot be read.
    #[error("pod metrics line {line}: {reason}")]
    MetricsText {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A gauge the autoscaler needs is not in a pod's `/metrics` (not a wasmpod pod, or too old).
    #[error("pod metrics: no {0} series")]
    MissingMetric(&'static str),
    /// The autoscaler's settings are invalid.
    #[error("autoscaler settings: {0}")]
    Settings(#[from] SettingsError),
}
