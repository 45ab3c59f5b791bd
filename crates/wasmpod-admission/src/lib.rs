//! Resource-aware admission: whether, when and in which order a request may run, by the memory it
//! weighs, fairly across tenants, behind CPU and real-memory gates.
//!
//! This crate must never depend on wasmtime or hyper, so that admission rules test in
//! milliseconds. It sits on the request path between the router and the executor: a request is
//! routed, then waits here for a [`Grant`], then runs while it holds that grant. The decisions
//! are made by [`Admission`], a state machine with no I/O and no clock of its own; the server
//! awaits them through the async [`Breaker`], and the cluster simulator drives the same
//! [`Admission`] under virtual time.
//!
//! The semantics are Wasabi's resource breaker (see `ARCHITECTURE.md`, "Admission") with its
//! flaws fixed and tenants added: a request larger than capacity is refused at once, a waiter that
//! goes away returns its units at once, the CPU gate is re-checked on a timer, waiters start in
//! arrival order within a tenant and by deficit round robin across tenants (the `fair` module),
//! each tenant has caps on what it holds, and a function's weight can be learned from what it
//! really uses ([`WeightMode`]).
//!
//! The property test in `tests/admission_fuzz.rs` is this crate's fuzz target: it drives random
//! event sequences through [`Admission`] and checks the invariants after each one.
#![warn(missing_docs)]

mod admission;
mod breaker;
mod config;
mod cpu;
mod declared;
mod fair;
mod learned;
mod rejection;
mod tenant;

pub use admission::{Admission, Admitted, Clock, Decision, Event, Request, Snapshot};
pub use breaker::{Breaker, Grant, Ticket};
pub use config::{
    high_water_mark, AdmissionError, BreakerConfig, DEFAULT_CAPACITY_MB, DEFAULT_FAIR_QUANTUM_MB,
    DEFAULT_GATE_RECHECK, DEFAULT_MEMORY_HIGH_WATER_PERCENT, DEFAULT_QUEUE_DEPTH_MB,
};
pub use cpu::{CpuGauge, CpuSampler, CpuSource};
pub use declared::{cpu_quota_from_header, units_from_header};
pub use learned::{
    FunctionId, FunctionSnapshot, Learning, WeightMode, DEFAULT_LEARN_AFTER, DEFAULT_LEARN_MARGIN,
    DEFAULT_LEARN_PERCENTILE, LEARN_WINDOW,
};
pub use rejection::{RefusalReason, Refusals, Rejection};
pub use tenant::{
    RequestId, TenantId, TenantLimits, TenantSnapshot, DEFAULT_TENANT, DEFAULT_TENANT_MAX_INFLIGHT_MB,
    DEFAULT_TENANT_MAX_QUEUED_MB,
};
