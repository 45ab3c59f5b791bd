//! A discrete-event simulator of a cluster of wasmpod pods (and, for comparison, of one container
//! per function), in virtual time: it replays a workload (the Azure Functions 2019 trace, or a
//! seeded synthetic one of the same shape) and reports pods, memory, cold starts and latency per
//! scaling policy.
//!
//! It must never depend on wasmtime, hyper, tokio or any clock: time is an input, so a run is
//! exactly reproducible from its seed. It sits beside the request path, not on it: it drives the
//! same admission (`wasmpod-admission`) and autoscaling (`wasmpod-autoscale`) cores that production runs, so what it
//! shows is what those cores do.

#![warn(missing_docs)]

pub mod azure;
mod chart;
mod compare;
mod cpu_share;
mod engine;
mod error;
mod nodes;
mod policy;
mod profile;
mod quantiles;
mod replay;
mod report;
pub mod synthetic;
mod trace;
mod workload;

pub use chart::write_charts;
pub use compare::compare;
pub use engine::simulate;
pub use error::SimError;
pub use policy::*;
pub use profile::{
    FunctionProfile, Profiles, DEFAULT_INSTANCE_OVERHEAD_MB, DEFAULT_INSTANTIATE_MS,
    DEFAULT_LOAD_MS_PER_FUNCTION,
};
pub use quantiles::Quantiles;
pub use replay::{replay, PodConfig, PodReplay, ReplaySummary, ReplayedCall};
pub use report::{Comparison, Percentiles, PolicyReport, Rejected, TimelinePoint};
pub use trace::{load_trace, parse_trace, TraceCall, TRACE_HEADER};
pub use workload::{Arrival, FunctionSpec, Micros, Trigger, Workload, MINUTE};
