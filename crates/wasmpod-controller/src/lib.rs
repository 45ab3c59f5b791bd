//! The `wasmpod autoscale` controller: it scales one Kubernetes Deployment of wasmpod pods on the
//! declared memory of their requests, with the algorithm of [`wasmpod_autoscale`].
//!
//! Each second it lists the Deployment's ready pods, scrapes their `/metrics` and records the
//! sum; every two seconds it decides and patches the Deployment's `scale` subresource. It owns
//! the I/O only (the Kubernetes API, the scrapes, its own `/metrics`); every decision rule lives
//! in the pure `wasmpod-autoscale` crate, and it never depends on the server or runtime crates.
//! It holds no timer: the binary calls [`Controller::tick`] on an interval, and the tests call it
//! directly against a stand-in API server.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//! use wasmpod_autoscale::{Settings, BUCKET};
//! use wasmpod_controller::{Controller, ControllerConfig, PodPort, DEFAULT_SCRAPE_TIMEOUT};
//!
//! let client = kube::Client::try_default().await?;
//! let config = ControllerConfig {
//!     namespace: "default".into(),
//!     deployment: "superpod".into(),
//!     pod_port: PodPort::Name("http".into()),
//!     settings: Settings::with_capacity(8000.0),
//!     capacity_from_pods: true,
//!     dry_run: true,
//!     scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
//! };
//! let mut controller = Controller::new(client, config)?;
//! let start = Instant::now();
//! let mut interval = tokio::time::interval(BUCKET);
//! loop {
//!     interval.tick().await;
//!     match controller.tick(start.elapsed()).await {
//!         Ok(tick) => println!("{tick}"),
//!         Err(error) => eprintln!("{error}"),
//!     }
//! }
//! # }
//! ```

#![warn(missing_docs)]

mod annotations;
mod cluster;
mod controller;
mod error;
mod metrics;
mod pod_metrics;
mod scrape;

pub use annotations::{
    apply_annotations, MAX_SCALE, MIN_SCALE, TARGET, TARGET_BURST_CAPACITY, TARGET_UTILIZATION_PERCENTAGE,
};
pub use cluster::{PodPort, DEFAULT_POD_PORT, FIELD_MANAGER};
pub use controller::{Controller, ControllerConfig, Tick, DEFAULT_MIN_SCALE, TICKS_PER_DECISION};
pub use error::ControllerError;
pub use metrics::{serve_metrics, ControllerMetrics, DEFAULT_METRICS_LISTEN};
pub use pod_metrics::{
    PodLoad, CAPACITY_MEMORY, INFLIGHT_MEMORY, INFLIGHT_REQUESTS, QUEUED_MEMORY, QUEUED_REQUESTS,
};
pub use scrape::{scrape, DEFAULT_SCRAPE_TIMEOUT, MAX_METRICS_BYTES};
