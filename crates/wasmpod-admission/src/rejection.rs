//! Why a request was refused, and the per-tenant counters of refusals.

use std::sync::Arc;
use std::time::Duration;

/// Why a request was refused. The server answers with this text as the body (413 for the two
/// "too large" reasons, which no retry can cure; 503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The request declares more memory than may ever be in flight, so it could never run.
    #[error("memory request of {units} MB exceeds capacity of {capacity} MB")]
    TooLarge {
        /// Declared MB.
        units: u64,
        /// The pod's capacity in MB.
        capacity: u64,
    },
    /// Running plus queued memory would exceed the queue depth.
    #[error("pending request queue full: {units} MB requested, {pending} MB running or queued, queue depth {depth} MB")]
    QueueFull {
        /// Admission weight of the request, MB.
        units: u64,
        /// MB running plus queued in the pod.
        pending: u64,
        /// The pod's queue depth in MB.
        depth: u64,
    },
    /// The request weighs more than its tenant may ever have in flight.
    #[error(
        "tenant \"{tenant}\": memory request of {units} MB exceeds the tenant's in-flight cap of {cap} MB"
    )]
    TenantTooLarge {
        /// The tenant's name.
        tenant: Arc<str>,
        /// Admission weight of the request, MB.
        units: u64,
        /// The tenant's in-flight cap, MB.
        cap: u64,
    },
    /// The request would have to wait, and its tenant already has its cap of memory waiting.
    #[error("tenant \"{tenant}\" queue full: {units} MB requested, {queued} MB of the tenant queued, tenant queue cap {cap} MB")]
    TenantQueueFull {
        /// The tenant's name.
        tenant: Arc<str>,
        /// Admission weight of the request, MB.
        units: u64,
        /// MB of this tenant's requests already waiting.
        queued: u64,
        /// The tenant's queued cap, MB.
        cap: u64,
    },
    /// The request waited until its queue deadline without being admitted. Never returned by
    /// [`Admission::arrive`](crate::Admission::arrive), which reports an expiry as
    /// [`Event::Expired`](crate::Event::Expired); the [`Breaker`](crate::Breaker) turns that event
    /// into this refusal.
    #[error("queue timeout: waited {waited:?} for {units} MB")]
    QueueTimeout {
        /// Admission weight of the request, MB.
        units: u64,
        /// How long it waited.
        waited: Duration,
    },
}

impl Rejection {
    /// The reason alone, for counters and metric labels.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Rejection::TooLarge { .. } => RefusalReason::TooLarge,
            Rejection::QueueFull { .. } => RefusalReason::QueueFull,
            Rejection::TenantTooLarge { .. } => RefusalReason::TenantTooLarge,
            Rejection::TenantQueueFull { .. } => RefusalReason::TenantQueueFull,
            Rejection::QueueTimeout { .. } => RefusalReason::QueueTimeout,
        }
    }
}

/// A [`Rejection`] without its numbers: what metrics count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// [`Rejection::TooLarge`].
    TooLarge,
    /// [`Rejection::QueueFull`].
    QueueFull,
    /// [`Rejection::TenantTooLarge`].
    TenantTooLarge,
    /// [`Rejection::TenantQueueFull`].
    TenantQueueFull,
    /// [`Rejection::QueueTimeout`].
    QueueTimeout,
}

impl RefusalReason {
    /// Every reason, in a fixed order (the order of [`Refusals::iter`]).
    pub const ALL: [RefusalReason; 5] = [
        RefusalReason::TooLarge,
        RefusalReason::QueueFull,
        RefusalReason::TenantTooLarge,
        RefusalReason::TenantQueueFull,
        RefusalReason::QueueTimeout,
    ];

    /// The metric label: `too_large`, `queue_full`, `tenant_too_large`, `tenant_queue_full`,
    /// `queue_timeout`.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::TooLarge => "too_large",
            RefusalReason::QueueFull => "queue_full",
            RefusalReason::TenantTooLarge => "tenant_too_large",
            RefusalReason::TenantQueueFull => "tenant_queue_full",
            RefusalReason::QueueTimeout => "queue_timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Refusals counted by reason; part of a [`TenantSnapshot`](crate::TenantSnapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    counts: [u64; RefusalReason::ALL.len()],
}

impl Refusals {
    /// How many requests were refused for `reason`.
    pub fn get(&self, reason: RefusalReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Every reason with its count, in the order of [`RefusalReason::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (RefusalReason, u64)> + '_ {
        RefusalReason::ALL.into_iter().map(|reason| (reason, self.get(reason)))
    }

    /// All refusals, whatever the reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn count(&mut self, reason: RefusalReason) {
        let slot = &mut self.counts[reason.index()];
        *slot = slot.saturating_add(1);
    }
}
