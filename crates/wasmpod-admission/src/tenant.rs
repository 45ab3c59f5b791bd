//! Tenants: who a request belongs to, the caps that bound what one tenant can make the pod hold,
//! and the per-tenant queue and counters the fair scheduler works on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::learned::FunctionId;
use crate::rejection::{RefusalReason, Refusals};

/// A tenant, interned by [`Admission::tenant`](crate::Admission::tenant) or
/// [`Breaker::tenant`](crate::Breaker::tenant).
///
/// A small copyable index rather than a name, so that the hot path neither hashes nor
/// reference-counts a string. Look the id up once (when a function is loaded) and keep it. An id
/// is only meaningful to the admission state that issued it; an id from elsewhere is treated as
/// [`TenantId::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(u32);

impl TenantId {
    /// The tenant named [`DEFAULT_TENANT`], which every admission state knows from the start: the
    /// tenant of requests whose function names none.
    pub const DEFAULT: TenantId = TenantId(0);

    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// Name of [`TenantId::DEFAULT`].
pub const DEFAULT_TENANT: &str = "default";

/// MB one tenant may have in flight unless its own limits say otherwise
/// (`--tenant-max-inflight-mb`). As large as the default capacity, so that a pod with one tenant
/// runs exactly as before tenants existed.
///
/// Lower it to keep headroom for the others. A tenant allowed the whole capacity can make another
/// wait for one of its releases: in the virtual-time flood test beside the [`Breaker`](crate::Breaker)
/// (a tenant at 10x capacity with 50 ms requests), a light tenant's p99 went from 5 ms alone to
/// 44 ms; with the flooder capped at 80% of the capacity it stayed at 5 ms.
pub const DEFAULT_TENANT_MAX_INFLIGHT_MB: u64 = 8000;

/// MB one tenant may have waiting for admission unless its own limits say otherwise
/// (`--tenant-max-queued-mb`). Half of the default queue room (16000 - 8000 MB): one tenant
/// flooding the pod then holds at most 8000 MB running plus 4000 MB queued of the 16000 MB depth,
/// so another tenant always finds 4000 MB of room and is never refused because of the flood.
pub const DEFAULT_TENANT_MAX_QUEUED_MB: u64 = 4000;

/// Caps on what one tenant can make the pod hold, in admission units (MB).
///
/// The pod's own capacity and queue depth still apply on top: a cap above them changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Units of this tenant's requests running at once. A request weighing more is refused at
    /// once ([`Rejection::TenantTooLarge`](crate::Rejection::TenantTooLarge)); one that would pass
    /// the cap waits, without holding back other tenants.
    pub max_in_flight_units: u64,
    /// Units of this tenant's requests waiting at once. A request that would have to wait past it
    /// is refused at once ([`Rejection::TenantQueueFull`](crate::Rejection::TenantQueueFull)).
    pub max_queued_units: u64,
}

impl TenantLimits {
    /// No cap beyond the pod's own capacity and queue depth.
    pub const UNLIMITED: TenantLimits =
        TenantLimits { max_in_flight_units: u64::MAX, max_queued_units: u64::MAX };
}

impl Default for TenantLimits {
    /// [`DEFAULT_TENANT_MAX_INFLIGHT_MB`] and [`DEFAULT_TENANT_MAX_QUEUED_MB`].
    fn default() -> Self {
        TenantLimits {
            max_in_flight_units: DEFAULT_TENANT_MAX_INFLIGHT_MB,
            max_queued_units: DEFAULT_TENANT_MAX_QUEUED_MB,
        }
    }
}

/// A request's number within one admission state. Numbers increase in arrival order, so they also
/// order each tenant's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number, for logs and for callers that key their own tables by it.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A request waiting for admission, with what the caller attached to it (`W`).
#[derive(Debug)]
pub(crate) struct Waiter<W> {
    pub(crate) id: RequestId,
    /// Admission weight.
    pub(crate) units: u64,
    /// Declared memory: the grant it will hold.
    pub(crate) memory_mb: u64,
    pub(crate) function: Option<FunctionId>,
    pub(crate) arrived: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) payload: W,
}

/// Where a tenant stands with the fair scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Nothing queued.
    Idle,
    /// Queued, and its head fits the tenant's in-flight cap: it takes turns in the round.
    Eligible,
    /// Queued, but its head would pass the tenant's in-flight cap: out of the round until one of
    /// its own requests finishes, so that it holds back no one else.
    Capped,
}

/// One tenant's counters, queue and place in the round.
#[derive(Debug)]
pub(crate) struct Tenant<W> {
    pub(crate) name: Arc<str>,
    pub(crate) limits: TenantLimits,
    pub(crate) in_flight_units: u64,
    pub(crate) in_flight_requests: u64,
    pub(crate) queued_units: u64,
    /// FIFO: ids increase from front to back.
    pub(crate) queue: VecDeque<Waiter<W>>,
    /// Deficit round robin credit, in units; zero whenever the tenant is out of the round.
    pub(crate) deficit: u64,
    pub(crate) standing: Standing,
    pub(crate) refusals: Refusals,
}

impl<W> Tenant<W> {
    fn new(name: Arc<str>, limits: TenantLimits) -> Tenant<W> {
        Tenant {
            name,
            limits,
            in_flight_units: 0,
            in_flight_requests: 0,
            queued_units: 0,
            queue: VecDeque::new(),
            deficit: 0,
            standing: Standing::Idle,
            refusals: Refusals::default(),
        }
    }

    /// Whether `units` more in flight stay within this tenant's cap.
    pub(crate) fn fits_cap(&self, units: u64) -> bool {
        self.in_flight_units.checked_add(units).is_some_and(|total| total <= self.limits.max_in_flight_units)
    }

    /// The standing the queue and counters call for.
    pub(crate) fn due_standing(&self) -> Standing {
        match self.queue.front() {
            None => Standing::Idle,
            Some(head) if self.fits_cap(head.units) => Standing::Eligible,
            Some(_) => Standing::Capped,
        }
    }

    /// Index of a queued request, found by its id (the queue is sorted by id).
    pub(crate) fn position(&self, id: RequestId) -> Option<usize> {
        self.queue.binary_search_by_key(&id, |w| w.id).ok()
    }

    pub(crate) fn refuse(&mut self, reason: RefusalReason) {
        self.refusals.count(reason);
    }

    pub(crate) fn snapshot(&self, id: TenantId) -> TenantSnapshot {
        TenantSnapshot {
            id,
            name: Arc::clone(&self.name),
            limits: self.limits,
            in_flight_units: self.in_flight_units,
            queued_units: self.queued_units,
            in_flight_requests: self.in_flight_requests,
            queued_requests: self.queue.len() as u64,
            refusals: self.refusals,
        }
    }
}

/// Every tenant ever named, indexed by [`TenantId`]. Tenants are never forgotten, so that their
/// refusal counters never go backwards; one costs a few hundred bytes.
#[derive(Debug)]
pub(crate) struct Tenants<W> {
    list: Vec<Tenant<W>>,
    by_name: HashMap<Arc<str>, TenantId>,
    defaults: TenantLimits,
}

impl<W> Tenants<W> {
    pub(crate) fn new(defaults: TenantLimits) -> Tenants<W> {
        let mut tenants = Tenants { list: Vec::new(), by_name: HashMap::new(), defaults };
        tenants.intern(DEFAULT_TENANT);
        tenants
    }

    pub(crate) fn intern(&mut self, name: &str) -> TenantId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        // More than 4 billion tenants would need more memory than any pod has.
        let id = TenantId(u32::try_from(self.list.len()).unwrap_or(u32::MAX));
        let name: Arc<str> = Arc::from(name);
        self.list.push(Tenant::new(Arc::clone(&name), self.defaults));
        self.by_name.insert(name, id);
        id
    }

    /// The id itself when this state issued it, else [`TenantId::DEFAULT`].
    pub(crate) fn resolve(&self, id: TenantId) -> TenantId {
        if id.index() < self.list.len() {
            id
        } else {
            TenantId::DEFAULT
        }
    }

    pub(crate) fn get(&self, id: TenantId) -> &Tenant<W> {
        &self.list[self.resolve(id).index()]
    }

    pub(crate) fn get_mut(&mut self, id: TenantId) -> &mut Tenant<W> {
        let index = self.resolve(id).index();
        &mut self.list[index]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (TenantId, &Tenant<W>)> {
        self.list.iter().enumerate().map(|(i, t)| (TenantId(i as u32), t))
    }
}

/// One tenant's admission counters, read together with the pod's.
///
/// The figures a platform shows and bills a tenant on; every field is in admission units (MB of
/// admission weight) or requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSnapshot {
    /// The tenant's id in this admission state.
    pub id: TenantId,
    /// The tenant's name, as given to [`Admission::tenant`](crate::Admission::tenant).
    pub name: Arc<str>,
    /// The caps in force for this tenant.
    pub limits: TenantLimits,
    /// Units of its requests running now.
    pub in_flight_units: u64,
    /// Units of its requests waiting now.
    pub queued_units: u64,
    /// Its requests running now.
    pub in_flight_requests: u64,
    /// Its requests waiting now.
    pub queued_requests: u64,
    /// Its requests refused so far, by reason (counters: they never go down).
    pub refusals: Refusals,
}
