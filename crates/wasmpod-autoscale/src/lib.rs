//! Knative's KPA autoscaling algorithm on Wasabi's memory metric: given the declared memory of the
//! requests running and queued on a service's pods (and, with wasmpod's CPU rule on, the cores
//! they use), second by second, decide how many pods the service should have.
//!
//! This crate is pure: no Kubernetes client, no HTTP, no async runtime, and no clock (time is an
//! argument), so the same code runs in the `wasmpod autoscale` controller, which feeds it scrapes
//! of the pods' `/metrics`, and in the cluster simulator, which feeds it virtual time. It depends
//! on nothing else in the workspace.
//!
//! # The algorithm
//!
//! Every default is a constant of this crate ([`DEFAULT_STABLE_WINDOW`] and its neighbours), and
//! every rule has a field in [`Settings`]. Knative's names are in brackets.
//!
//! - **Observed**: the declared MB of running plus queued requests, summed over the pods
//!   ([`Sample`]), recorded in one-second buckets ([`BUCKET`]).
//! - **Windows**: the average over the last 60 s (stable) and the last 6 s (panic).
//! - **Target** per pod: an explicit target (`autoscaling.knative.dev/target`), or the pods'
//!   capacity x 0.70 ([`DEFAULT_TARGET_UTILIZATION`]).
//! - **Desired** = `ceil(average / target)`, for each window.
//! - **0 <-> 1**: no memory but requests (a buffer at zero pods reports only requests) asks for one
//!   pod; memory but no requests asks for none.
//! - **Rates**: a decision asks for at most `ceil(1000 x ready)` and at least `floor(ready / 2)`
//!   pods, with zero ready pods counted as one [max-scale-up-rate, max-scale-down-rate].
//! - **Panic**: starts when the panic window asks for at least twice the ready pods; while
//!   panicking the decision is the larger of both windows and never goes down; it ends when a
//!   whole stable window has passed since the panic window last crossed the threshold.
//! - **Scale to zero**: when the rules ask for zero, the last pod stays for the grace period (30 s)
//!   first. With the stable window, the last pod leaves about 90 s after the last request.
//! - **Excess burst capacity** = `floor(ready x capacity - target burst capacity - panic MB)`,
//!   with the target burst capacity 211 MB by default; 0 means "no burst buffer wanted" (EBC 0)
//!   and -1 "buffer always in the path" (EBC -1). Below zero, Knative would put its activator in
//!   the request path.
//!
//! # The CPU rule (a wasmpod extension over Wasabi)
//!
//! Declared memory cannot see CPU: compute-bound functions that declare little memory fill a
//! pod's cores long before its memory target, and a memory-scaled service settles on saturated
//! pods. With [`Settings::cpu_limit_cores`] set (off by default), the autoscaler also averages the
//! cores in use ([`Autoscaler::record_cpu`], the pods' `wasmpod_cpu_utilization_cores` summed)
//! over the same windows, and each window asks for the larger of `ceil(MB / target MB)` and
//! `ceil(cores / (limit x cpu_target_utilization))` (0.70 by default,
//! [`DEFAULT_CPU_TARGET_UTILIZATION`]), as Kubernetes' HPA takes the largest of several metrics.
//! The concurrency override, rates, panic, delay, bounds and scale to zero then apply unchanged.
//! A saturated pod reports at most its limit, so a saturated service asks for `1 / utilization`
//! times its pods at each decision until its pods have headroom again. With the CPU rule off,
//! the decisions are Knative-Wasabi's exactly.
//!
//! Call [`Autoscaler::record`] once per second and [`Autoscaler::decide`] every
//! [`TICK_INTERVAL`] (2 s):
//!
//! ```
//! use std::time::Duration;
//! use wasmpod_autoscale::{Autoscaler, Sample, Settings};
//!
//! let mut autoscaler = Autoscaler::new(Settings::with_capacity(8000.0)).unwrap();
//! let mut pods = 1;
//! for second in 0..120u64 {
//!     let now = Duration::from_secs(second);
//!     // A step: 2000 MB of requests, then 30000 MB from the 60th second on.
//!     let memory_mb = if second < 60 { 2000.0 } else { 30_000.0 };
//!     autoscaler.record(now, Sample { memory_mb, concurrency: memory_mb / 100.0 });
//!     if second % 2 == 0 {
//!         if let Some(decision) = autoscaler.decide(now, pods) {
//!             pods = decision.desired; // pretend pods start at once
//!         }
//!     }
//! }
//! assert_eq!(pods, 6); // ceil(30000 / 5600)
//! ```
//!
//! What this crate leaves out of Knative's KPA, because nothing here needs it: the activation
//! scale, the initial scale, the scale-to-zero pod retention period, reachability, and the
//! exponentially weighted window average (the average is the plain one, Knative's default).

#![warn(missing_docs)]

mod autoscaler;
mod delay;
mod error;
mod sample;
mod settings;
mod window;

pub use autoscaler::{Autoscaler, Decision, Rule};
pub use error::SettingsError;
pub use sample::{cores_over_pods, Sample};
pub use settings::{
    Settings, BUCKET, DEFAULT_CPU_LIMIT_CORES, DEFAULT_CPU_TARGET_UTILIZATION, DEFAULT_MAX_SCALE,
    DEFAULT_MAX_SCALE_DOWN_RATE, DEFAULT_MAX_SCALE_UP_RATE, DEFAULT_MIN_SCALE, DEFAULT_PANIC_THRESHOLD,
    DEFAULT_PANIC_WINDOW, DEFAULT_SCALE_DOWN_DELAY, DEFAULT_SCALE_TO_ZERO, DEFAULT_SCALE_TO_ZERO_GRACE,
    DEFAULT_STABLE_WINDOW, DEFAULT_TARGET_BURST_CAPACITY_MB, DEFAULT_TARGET_UTILIZATION, MAX_STABLE_WINDOW,
    MIN_STABLE_WINDOW, TARGET_BURST_CAPACITY_ALWAYS, TICK_INTERVAL,
};
