//! Resource-aware admission: the [`Breaker`] admits requests by the memory they declare
//! (`Memory-Request`, in MB) and by the pod's CPU utilization, which [`CpuSampler`] reads from the
//! pod's cgroup into a [`CpuGauge`].
//!
//! This crate must never depend on wasmtime or hyper, so that admission rules test in
//! milliseconds. It sits on the request path between the router and the executor: a request is
//! routed, then waits here for a [`Grant`], then runs while it holds that grant.
//!
//! The semantics are Wasabi's resource breaker (see `ARCHITECTURE.md`, "Admission") with its flaws fixed: waiters start
//! in arrival order, the CPU gate is re-checked on a timer, a request larger than capacity is
//! rejected at once, and a waiter that goes away returns its units at once.

mod breaker;
mod cpu;

pub use breaker::{
    units_from_header, AdmissionError, Breaker, BreakerConfig, Grant, Rejection, Snapshot,
    DEFAULT_CAPACITY_MB, DEFAULT_QUEUE_DEPTH_MB,
};
pub use cpu::{CpuGauge, CpuSampler, CpuSource};
