//! The pod's admission settings, their defaults, and the settings admission cannot work with.

use std::time::Duration;

use crate::learned::Learning;
use crate::tenant::TenantLimits;

/// MB a pod admits in flight unless told otherwise (Knative's `concurrent-resource-request`).
pub const DEFAULT_CAPACITY_MB: u64 = 8000;
/// MB running plus queued beyond which requests are refused at once (`queue-depth-resource-units`).
pub const DEFAULT_QUEUE_DEPTH_MB: u64 = 16000;
/// How often a request held back by the CPU or memory gate re-checks it: the CPU sampling period.
pub const DEFAULT_GATE_RECHECK: Duration = Duration::from_millis(50);
/// Units a tenant's credit grows by per turn in the fair round (see [`Admission`](crate::Admission)).
/// About one request declaring the server's default `Memory-Request` (200 MB): under contention,
/// tenants then alternate request by request for typical sizes, and a tenant of small requests
/// starts several per turn. Not a user setting: fairness holds for any quantum, only its grain
/// changes.
pub const DEFAULT_FAIR_QUANTUM_MB: u64 = 200;
/// Percent of the pod's real-memory budget above which no request starts
/// (`--memory-high-water-percent`); see [`high_water_mark`].
pub const DEFAULT_MEMORY_HIGH_WATER_PERCENT: u64 = 90;

/// The high-water mark, in bytes, for a real-memory budget of `budget_mb` MB and a percent of it:
/// what [`BreakerConfig::memory_high_water_bytes`] is set to from the command line.
pub const fn high_water_mark(budget_mb: u64, percent: u64) -> u64 {
    budget_mb.saturating_mul(1 << 20) / 100 * percent
}

/// The pod's admission settings, named after the Knative settings they replace.
///
/// One unit is one MB of admission weight: the declared memory (`Memory-Request`), or in
/// [`WeightMode::Learned`](crate::WeightMode::Learned) what the function was seen to use.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// MB allowed in flight at once (`concurrent-resource-request`). A request declaring more can
    /// never run and is rejected at once.
    pub capacity_units: u64,
    /// Cap on MB running plus queued (`queue-depth-resource-units`). A request that would push
    /// past it is rejected at once rather than left to time out; must be `>= capacity_units`.
    pub queue_depth_units: u64,
    /// CPU cores busy above which no new request starts (`resource-utilization-threshold`).
    /// `None` turns the gate off.
    pub cpu_threshold: Option<f64>,
    /// Real memory in use by the pod's guests (bytes) at or above which no new request starts:
    /// the safety net under learned weights. `None` turns the gate off. The readings come from the
    /// runtime, which sums its instances' memory.
    pub memory_high_water_bytes: Option<u64>,
    /// How often a request held back by a gate re-checks it. CPU and memory can fall while
    /// nothing completes, so releases alone cannot be the only wake-up.
    pub gate_recheck: Duration,
    /// The caps of every tenant that has no limits of its own.
    pub tenant_limits: TenantLimits,
    /// Units of credit per turn in the fair round ([`DEFAULT_FAIR_QUANTUM_MB`]).
    pub fair_quantum_units: u64,
    /// Declared or learned weights, and how they are learned.
    pub learning: Learning,
}

impl Default for BreakerConfig {
    /// Knative's defaults for a superpod (8000 MB in flight, 16000 MB running plus queued), no CPU
    /// or memory gate, gates re-checked every 50 ms when set, default tenant caps, declared
    /// weights.
    fn default() -> Self {
        BreakerConfig {
            capacity_units: DEFAULT_CAPACITY_MB,
            queue_depth_units: DEFAULT_QUEUE_DEPTH_MB,
            cpu_threshold: None,
            memory_high_water_bytes: None,
            gate_recheck: DEFAULT_GATE_RECHECK,
            tenant_limits: TenantLimits::default(),
            fair_quantum_units: DEFAULT_FAIR_QUANTUM_MB,
            learning: Learning::default(),
        }
    }
}

impl BreakerConfig {
    /// Checks the settings once, so that no decision later has to.
    pub(crate) fn validate(&self) -> Result<(), AdmissionError> {
        if self.capacity_units == 0 {
            return Err(AdmissionError::ZeroCapacity);
        }
        if self.queue_depth_units < self.capacity_units {
            return Err(AdmissionError::DepthBelowCapacity {
                depth: self.queue_depth_units,
                capacity: self.capacity_units,
            });
        }
        if let Some(threshold) = self.cpu_threshold {
            if !threshold.is_finite() || threshold < 0.0 {
                return Err(AdmissionError::InvalidCpuThreshold(threshold));
            }
        }
        if self.gate_recheck.is_zero() {
            return Err(AdmissionError::ZeroGateRecheck);
        }
        if self.fair_quantum_units == 0 {
            return Err(AdmissionError::ZeroQuantum);
        }
        let learning = &self.learning;
        if learning.after == 0 {
            return Err(AdmissionError::ZeroLearnAfter);
        }
        if !(learning.percentile > 0.0 && learning.percentile <= 1.0) {
            return Err(AdmissionError::InvalidPercentile(learning.percentile));
        }
        if !(learning.margin.is_finite() && learning.margin >= 1.0) {
            return Err(AdmissionError::InvalidMargin(learning.margin));
        }
        Ok(())
    }
}

/// A configuration admission cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    /// Nothing could ever run.
    #[error("concurrent resource capacity must be at least 1 MB, got 0")]
    ZeroCapacity,
    /// Requests that fit capacity would be refused for want of queue room.
    #[error("queue depth ({depth} MB) must be at least the concurrent resource capacity ({capacity} MB)")]
    DepthBelowCapacity {
        /// The queue depth given.
        depth: u64,
        /// The capacity given.
        capacity: u64,
    },
    /// A threshold that no reading compares sensibly against.
    #[error("resource utilization threshold must be a finite, non-negative number of cores, got {0}")]
    InvalidCpuThreshold(f64),
    /// A zero period would turn queued waiters into a busy loop.
    #[error("gate recheck period must be greater than zero")]
    ZeroGateRecheck,
    /// A tenant's credit would never grow, and no queued request would ever be selected.
    #[error("fair quantum must be at least 1 MB, got 0")]
    ZeroQuantum,
    /// A weight learned from no sample at all.
    #[error("learned weights need at least 1 completed request, got 0")]
    ZeroLearnAfter,
    /// Not a percentile.
    #[error("learned weight percentile must be in (0, 1], got {0}")]
    InvalidPercentile(f64),
    /// A margin below 1 would admit by less than what was seen.
    #[error("learned weight margin must be a finite number of at least 1, got {0}")]
    InvalidMargin(f64),
}
