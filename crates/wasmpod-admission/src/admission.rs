//! The admission state machine: events and time in, decisions out, no I/O and no clock.
//!
//! Everything that decides whether, when and in which order a request runs lives here, so that
//! the server's async [`Breaker`](crate::Breaker) and the cluster simulator, which drives this type
//! under virtual time, make the same decisions.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::config::{AdmissionError, BreakerConfig};
use crate::fair::Round;
use crate::learned::{FunctionId, FunctionSnapshot, Weights};
use crate::rejection::{RefusalReason, Rejection};
use crate::tenant::{RequestId, Standing, TenantId, TenantLimits, TenantSnapshot, Tenants, Waiter};

/// The time of an input on the caller's clock (a [`Duration`] since any origin the caller picks,
/// never decreasing from one input to the next), read only if the decision needs it.
///
/// A simulator passes its virtual time as a plain [`Duration`]. The [`Breaker`](crate::Breaker)
/// passes a clock that reads the system time on first use: a request that starts at once needs no
/// time at all, and on a virtual machine one clock read costs about as much as the rest of an
/// uncontended admission.
pub trait Clock {
    /// The time now. Called at most a few times per input; each call of one input must give the
    /// same answer.
    fn now(&mut self) -> Duration;
}

impl Clock for Duration {
    fn now(&mut self) -> Duration {
        *self
    }
}

impl<C: Clock + ?Sized> Clock for &mut C {
    fn now(&mut self) -> Duration {
        (**self).now()
    }
}

/// A request asking for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Whose request it is: caps and fairness are per tenant.
    pub tenant: TenantId,
    /// The function it runs, if its memory use should be learned and (in
    /// [`WeightMode::Learned`](crate::WeightMode::Learned)) its weight taken from what was learned.
    pub function: Option<FunctionId>,
    /// Declared memory in MB (`Memory-Request`): the grant it runs under, and its weight unless a
    /// learned weight is smaller.
    pub memory_mb: u64,
    /// How long it may wait before it expires ([`Event::Expired`]). `None` waits until cancelled.
    pub queue_timeout: Option<Duration>,
}

/// What [`Admission::arrive`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Started now: run it, then hand the token back to [`Admission::release`].
    Started(Admitted),
    /// Waiting. It will come out of [`Admission::next_event`] as [`Event::Started`] or
    /// [`Event::Expired`], unless [`Admission::cancel`] takes it out first.
    Queued(RequestId),
    /// Refused at once.
    Rejected(Rejection),
}

/// Proof that a request was admitted: it holds its units until it is handed back to
/// [`Admission::release`]. Deliberately neither `Clone` nor `Copy`, so a request cannot be
/// released twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    id: RequestId,
    tenant: TenantId,
    function: Option<FunctionId>,
    units: u64,
    memory_mb: u64,
    waited: Duration,
}

impl Admitted {
    /// The request's number.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Its tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Its function, if it named one.
    pub fn function(&self) -> Option<FunctionId> {
        self.function
    }

    /// The admission weight it holds against the pod's capacity and its tenant's cap, MB.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// Its declared memory, MB: the hard memory limit to run it under (it stays the declaration
    /// even when the request was admitted by a smaller learned weight).
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// How long it waited for admission.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// Something that happened to a queued request, drained with [`Admission::next_event`].
#[derive(Debug, PartialEq, Eq)]
pub enum Event<W> {
    /// It was started: run it.
    Started {
        /// Its admission, to hand back to [`Admission::release`].
        admitted: Admitted,
        /// What the caller attached when it queued.
        payload: W,
    },
    /// Its deadline passed while it waited: answer it as a queue timeout.
    Expired {
        /// Its number.
        id: RequestId,
        /// Its tenant.
        tenant: TenantId,
        /// Its admission weight, MB.
        units: u64,
        /// How long it waited.
        waited: Duration,
        /// What the caller attached when it queued.
        payload: W,
    },
}

/// The pod's admission counters, read together so they are consistent with each other: what
/// `/metrics` and the autoscaler read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Units of running requests (the autoscaling signal).
    pub in_flight_units: u64,
    /// Units of waiting requests.
    pub queued_units: u64,
    /// Requests running.
    pub in_flight_requests: u64,
    /// Requests waiting.
    pub queued_requests: u64,
    /// The capacity setting.
    pub capacity_units: u64,
    /// The queue depth setting.
    pub queue_depth_units: u64,
    /// Whether the CPU gate lets requests start (always, without a threshold).
    pub cpu_gate_open: bool,
    /// Whether the real-memory gate lets requests start (always, without a high-water mark).
    pub memory_gate_open: bool,
    /// The latest reading of the guests' real memory, bytes.
    pub real_memory_bytes: u64,
    /// The high-water mark setting, bytes.
    pub memory_high_water_bytes: Option<u64>,
}

/// The admission state machine of one pod.
///
/// Inputs are events, each stamped with the caller's clock ([`Clock`]: a [`Duration`] since any
/// origin the caller picks, never decreasing): a request arrives ([`arrive`](Self::arrive)),
/// finishes ([`release`](Self::release)) or is given up by its client
/// ([`cancel`](Self::cancel)); a CPU or real-memory reading comes in
/// ([`observe_cpu`](Self::observe_cpu), [`observe_memory`](Self::observe_memory)); or the time the
/// state asked to be woken at has come ([`poll`](Self::poll), due at
/// [`next_wakeup`](Self::next_wakeup)). `arrive` answers at once; requests started or expired by
/// any input come out of [`next_event`](Self::next_event). `W` is whatever the caller attaches to
/// a queued request to find it again (the [`Breaker`](crate::Breaker) attaches a waker; a
/// simulator, its own request number).
///
/// The rules, all in units (MB of admission weight):
/// - Declared memory above the capacity: [`Rejection::TooLarge`] at once (it could never run).
///   Weight above the tenant's in-flight cap: [`Rejection::TenantTooLarge`] at once.
/// - A request starts at once when nothing that could start is waiting, it fits the capacity and
///   its tenant's cap, and the gates are open. Otherwise it waits, unless that would pass its
///   tenant's queued cap ([`Rejection::TenantQueueFull`]) or the pod's queue depth, counted as
///   running + queued + its units ([`Rejection::QueueFull`]).
/// - Waiting requests start in arrival order within a tenant, and across tenants by deficit round
///   robin on units; the selected request blocks all others until it fits, so a large request is
///   never starved by small ones. A tenant at its own in-flight cap is skipped and blocks no one.
///   See the `fair` module's documentation for the guarantees.
/// - The CPU gate (reading above the threshold) and the memory gate (reading at or above the
///   high-water mark) hold every start; while one holds a request that would otherwise fit, the
///   state asks to be polled every [`BreakerConfig::gate_recheck`].
/// - A waiter whose deadline has passed is taken out and reported as [`Event::Expired`]; a
///   cancelled one returns its units at once.
///
/// ```
/// use std::time::Duration;
/// use wasmpod_admission::{Admission, BreakerConfig, Decision, Event, Request, TenantId};
///
/// let config = BreakerConfig { capacity_units: 100, queue_depth_units: 200, ..BreakerConfig::default() };
/// let mut admission: Admission<&str> = Admission::new(config).expect("valid config");
/// let request = |memory_mb| Request { tenant: TenantId::DEFAULT, function: None, memory_mb, queue_timeout: None };
/// let now = Duration::ZERO;
///
/// let Decision::Started(first) = admission.arrive(now, request(80), || "first") else { panic!() };
/// assert!(matches!(admission.arrive(now, request(30), || "second"), Decision::Queued(_)));
/// admission.release(now, first, None);
/// let Some(Event::Started { payload, .. }) = admission.next_event() else { panic!() };
/// assert_eq!(payload, "second");
/// ```
#[derive(Debug)]
pub struct Admission<W> {
    capacity: u64,
    depth: u64,
    cpu_threshold: Option<f64>,
    high_water: Option<u64>,
    recheck: Duration,

    in_flight_units: u64,
    /// Running plus queued units.
    pending_units: u64,
    in_flight_requests: u64,
    queued_requests: u64,
    cpu_cores: f64,
    real_memory: u64,

    tenants: Tenants<W>,
    round: Round,
    weights: Weights,
    /// Queued requests with a deadline, soonest first.
    deadlines: BTreeSet<(Duration, RequestId, TenantId)>,
    /// When a gate last held back a request that fits: poll again at this time.
    recheck_at: Option<Duration>,
    next_id: u64,
    events: VecDeque<Event<W>>,
}

impl<W> Admission<W> {
    /// An idle pod with these settings; only [`TenantId::DEFAULT`] is known.
    pub fn new(config: BreakerConfig) -> Result<Admission<W>, AdmissionError> {
        config.validate()?;
        Ok(Admission {
            capacity: config.capacity_units,
            depth: config.queue_depth_units,
            cpu_threshold: config.cpu_threshold,
            high_water: config.memory_high_water_bytes,
            recheck: config.gate_recheck,
            in_flight_units: 0,
            pending_units: 0,
            in_flight_requests: 0,
            queued_requests: 0,
            cpu_cores: 0.0,
            real_memory: 0,
            tenants: Tenants::new(config.tenant_limits),
            round: Round::new(config.fair_quantum_units),
            weights: Weights::new(config.learning),
            deadlines: BTreeSet::new(),
            recheck_at: None,
            next_id: 0,
            events: VecDeque::new(),
        })
    }

    /// The id of the tenant called `name`, known from now on with the default caps. Hashes the
    /// name: call it when a function is loaded, not per request.
    pub fn tenant(&mut self, name: &str) -> TenantId {
        self.tenants.intern(name)
    }

    /// Gives a tenant its own caps (a per-tenant override from configuration). Lowering a cap
    /// below what the tenant holds refuses and holds back its new requests; nothing running is
    /// stopped. Raising one may start its waiting requests.
    pub fn set_tenant_limits(&mut self, mut now: impl Clock, tenant: TenantId, limits: TenantLimits) {
        self.tenants.get_mut(tenant).limits = limits;
        self.restand(tenant);
        self.schedule(&mut now);
    }

    /// The id of the function called `name`, whose requests' memory is learned from now on.
    /// Hashes the name: call it when a function is loaded, not per request.
    pub fn function(&mut self, name: &str) -> FunctionId {
        self.weights.intern(name)
    }

    /// Forgets what was learned about a function, for example when a new version replaces it.
    pub fn forget_function(&mut self, function: FunctionId) {
        self.weights.forget(function);
    }

    /// The admission weight a request of `function` declaring `memory_mb` gets now.
    pub fn weight(&self, function: Option<FunctionId>, memory_mb: u64) -> u64 {
        self.weights.weight(function, memory_mb)
    }

    /// A request arrives: started, queued or refused, at once. `payload` is called only when the
    /// request is queued, so a start costs no allocation for it.
    pub fn arrive(&mut self, mut now: impl Clock, request: Request, payload: impl FnOnce() -> W) -> Decision {
        let tenant_id = self.tenants.resolve(request.tenant);
        let units = self.weights.weight(request.function, request.memory_mb);
        let starts_now = match self.check(tenant_id, request.memory_mb, units) {
            Ok(starts_now) => starts_now,
            Err(rejection) => {
                self.tenants.get_mut(tenant_id).refuse(rejection.reason());
                return Decision::Rejected(rejection);
            }
        };
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.pending_units += units;
        if starts_now {
            self.start_accounting(tenant_id, units);
            return Decision::Started(Admitted {
                id,
                tenant: tenant_id,
                function: request.function,
                units,
                memory_mb: request.memory_mb,
                waited: Duration::ZERO,
            });
        }
        let arrived = now.now();
        let deadline = request.queue_timeout.map(|timeout| arrived.saturating_add(timeout));
        let waiter = Waiter {
            id,
            units,
            memory_mb: request.memory_mb,
            function: request.function,
            arrived,
            deadline,
            payload: payload(),
        };
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, id, tenant_id));
        }
        let tenant = self.tenants.get_mut(tenant_id);
        tenant.queued_units += units;
        tenant.queue.push_back(waiter);
        self.queued_requests += 1;
        if tenant.queue.len() == 1 {
            self.restand(tenant_id);
            self.schedule(&mut now);
        }
        Decision::Queued(id)
    }

    /// Whether a request may start now (`Ok(true)`), may wait (`Ok(false)`), or is refused.
    fn check(&self, tenant_id: TenantId, memory_mb: u64, units: u64) -> Result<bool, Rejection> {
        let tenant = self.tenants.get(tenant_id);
        if memory_mb > self.capacity {
            return Err(Rejection::TooLarge { units: memory_mb, capacity: self.capacity });
        }
        if units > tenant.limits.max_in_flight_units {
            return Err(Rejection::TenantTooLarge {
                tenant: tenant.name.clone(),
                units,
                cap: tenant.limits.max_in_flight_units,
            });
        }
        // Nothing that could start is waiting (`round` is empty), and its own tenant has no
        // queue: starting it overtakes no one.
        let starts_now = self.round.is_empty()
            && tenant.queue.is_empty()
            && tenant.fits_cap(units)
            && self.fits_capacity(units)
            && self.gates_open();
        // Checked, not saturating: a sum past u64::MAX must not compare equal to a cap of u64::MAX.
        let over = |held: u64, cap: u64| held.checked_add(units).is_none_or(|total| total > cap);
        if !starts_now && over(tenant.queued_units, tenant.limits.max_queued_units) {
            return Err(Rejection::TenantQueueFull {
                tenant: tenant.name.clone(),
                units,
                queued: tenant.queued_units,
                cap: tenant.limits.max_queued_units,
            });
        }
        if over(self.pending_units, self.depth) {
            return Err(Rejection::QueueFull { units, pending: self.pending_units, depth: self.depth });
        }
        Ok(starts_now)
    }

    /// A started request finished: its units return, and waiting requests that now fit start.
    /// `peak_memory_bytes` is the most memory its instance used, if it completed and its function
    /// should learn from it; leave it `None` for a request that failed or was cut short.
    pub fn release(&mut self, mut now: impl Clock, admitted: Admitted, peak_memory_bytes: Option<u64>) {
        let tenant_id = self.tenants.resolve(admitted.tenant);
        let units = admitted.units;
        debug_assert!(self.in_flight_units >= units && self.pending_units >= units);
        self.in_flight_units = self.in_flight_units.saturating_sub(units);
        self.pending_units = self.pending_units.saturating_sub(units);
        self.in_flight_requests = self.in_flight_requests.saturating_sub(1);
        let tenant = self.tenants.get_mut(tenant_id);
        debug_assert!(tenant.in_flight_units >= units && tenant.in_flight_requests > 0);
        tenant.in_flight_units = tenant.in_flight_units.saturating_sub(units);
        tenant.in_flight_requests = tenant.in_flight_requests.saturating_sub(1);
        if let (Some(function), Some(peak)) = (admitted.function, peak_memory_bytes) {
            self.weights.record(function, admitted.memory_mb, peak);
        }
        if self.tenants.get(tenant_id).standing == Standing::Capped {
            self.restand(tenant_id);
        }
        self.schedule(&mut now);
    }

    /// A waiting request is given up (its client went away): its units return at once. Returns
    /// what was attached to it, or `None` if it is not waiting (already started or expired).
    pub fn cancel(&mut self, mut now: impl Clock, tenant: TenantId, id: RequestId) -> Option<W> {
        let tenant_id = self.tenants.resolve(tenant);
        let index = self.tenants.get(tenant_id).position(id)?;
        let waiter = self.dequeue(tenant_id, index)?;
        if index == 0 {
            self.restand(tenant_id);
            self.schedule(&mut now);
        }
        Some(waiter.payload)
    }

    /// The pod's CPU use now, in cores (the gate compares it with
    /// [`BreakerConfig::cpu_threshold`]).
    pub fn observe_cpu(&mut self, mut now: impl Clock, cores: f64) {
        self.cpu_cores = cores;
        if !self.round.is_empty() {
            self.schedule(&mut now);
        }
    }

    /// The guests' real memory in use now, in bytes (the gate compares it with
    /// [`BreakerConfig::memory_high_water_bytes`]).
    pub fn observe_memory(&mut self, mut now: impl Clock, bytes: u64) {
        self.real_memory = bytes;
        if !self.round.is_empty() {
            self.schedule(&mut now);
        }
    }

    /// Timers: expires waiters whose deadline has come, re-checks the gates, starts what fits.
    /// Call it at [`next_wakeup`](Self::next_wakeup); calling it at other times is harmless.
    pub fn poll(&mut self, mut clock: impl Clock) {
        let now = clock.now();
        while let Some(&(deadline, id, tenant_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let Some(index) = self.tenants.get(tenant_id).position(id) else {
                // Unreachable: a waiter's deadline leaves the set with the waiter.
                self.deadlines.pop_first();
                continue;
            };
            let Some(waiter) = self.dequeue(tenant_id, index) else { continue };
            self.tenants.get_mut(tenant_id).refuse(RefusalReason::QueueTimeout);
            self.events.push_back(Event::Expired {
                id,
                tenant: tenant_id,
                units: waiter.units,
                waited: now.saturating_sub(waiter.arrived),
                payload: waiter.payload,
            });
            if index == 0 {
                self.restand(tenant_id);
            }
        }
        self.schedule(&mut clock);
    }

    /// When the caller must call [`poll`](Self::poll) next, on its clock: the earliest queue
    /// deadline, or the gate re-check while a gate holds back a request. `None`: only other
    /// inputs can change anything.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let deadline = self.deadlines.first().map(|&(at, _, _)| at);
        match (deadline, self.recheck_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next request started or expired by an input, oldest first. Drain it after every input.
    pub fn next_event(&mut self) -> Option<Event<W>> {
        self.events.pop_front()
    }

    /// The pod's counters and gates.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            in_flight_units: self.in_flight_units,
            queued_units: self.pending_units - self.in_flight_units,
            in_flight_requests: self.in_flight_requests,
            queued_requests: self.queued_requests,
            capacity_units: self.capacity,
            queue_depth_units: self.depth,
            cpu_gate_open: self.cpu_open(),
            memory_gate_open: self.memory_open(),
            real_memory_bytes: self.real_memory,
            memory_high_water_bytes: self.high_water,
        }
    }

    /// Every tenant's counters, in id order (the default tenant first).
    pub fn tenant_snapshots(&self) -> impl Iterator<Item = TenantSnapshot> + '_ {
        self.tenants.iter().map(|(id, t)| t.snapshot(id))
    }

    /// What has been learned of every function, in id order.
    pub fn function_snapshots(&self) -> impl Iterator<Item = FunctionSnapshot> + '_ {
        self.weights.snapshots()
    }

    fn cpu_open(&self) -> bool {
        self.cpu_threshold.is_none_or(|threshold| self.cpu_cores <= threshold)
    }

    fn memory_open(&self) -> bool {
        self.high_water.is_none_or(|mark| self.real_memory < mark)
    }

    fn gates_open(&self) -> bool {
        self.cpu_open() && self.memory_open()
    }

    fn fits_capacity(&self, units: u64) -> bool {
        self.in_flight_units.checked_add(units).is_some_and(|total| total <= self.capacity)
    }

    fn start_accounting(&mut self, tenant_id: TenantId, units: u64) {
        self.in_flight_units += units;
        self.in_flight_requests += 1;
        let tenant = self.tenants.get_mut(tenant_id);
        tenant.in_flight_units += units;
        tenant.in_flight_requests += 1;
    }

    /// Takes a waiter out of its tenant's queue and the counters (not out of the round: the
    /// caller re-stands the tenant when the head changed).
    fn dequeue(&mut self, tenant_id: TenantId, index: usize) -> Option<Waiter<W>> {
        let tenant = self.tenants.get_mut(tenant_id);
        let waiter = tenant.queue.remove(index)?;
        tenant.queued_units -= waiter.units;
        self.pending_units -= waiter.units;
        self.queued_requests -= 1;
        if let Some(deadline) = waiter.deadline {
            self.deadlines.remove(&(deadline, waiter.id, tenant_id));
        }
        Some(waiter)
    }

    /// Puts a tenant where its queue and cap say it belongs in the round, after its head or its
    /// in-flight units changed.
    fn restand(&mut self, tenant_id: TenantId) {
        let tenant = self.tenants.get_mut(tenant_id);
        let due = tenant.due_standing();
        let was = tenant.standing;
        if due == was {
            if due == Standing::Eligible {
                self.round.review(tenant_id, &self.tenants);
            }
            return;
        }
        tenant.standing = due;
        if was == Standing::Eligible {
            tenant.deficit = 0;
            self.round.leave(tenant_id);
        }
        if due == Standing::Eligible {
            self.round.join(tenant_id);
        }
    }

    /// Starts selected requests while they fit and the gates are open. Afterwards either the
    /// round is empty, or its selected request is held back by the capacity or by a gate.
    fn schedule(&mut self, now: &mut impl Clock) {
        self.recheck_at = None;
        while let Some(tenant_id) = self.round.select(&mut self.tenants) {
            let Some(units) = self.tenants.get(tenant_id).queue.front().map(|w| w.units) else {
                // Unreachable: a tenant in the round has a queue.
                self.restand(tenant_id);
                continue;
            };
            if !self.fits_capacity(units) {
                // A release is needed first, and it will schedule again.
                return;
            }
            if !self.gates_open() {
                self.recheck_at = Some(now.now().saturating_add(self.recheck));
                return;
            }
            debug_assert!(self.tenants.get(tenant_id).fits_cap(units));
            let Some(waiter) = self.dequeue(tenant_id, 0) else { continue };
            self.start_accounting(tenant_id, units);
            self.pending_units += units;
            let tenant = self.tenants.get_mut(tenant_id);
            tenant.deficit = tenant.deficit.saturating_sub(units);
            self.events.push_back(Event::Started {
                admitted: Admitted {
                    id: waiter.id,
                    tenant: tenant_id,
                    function: waiter.function,
                    units,
                    memory_mb: waiter.memory_mb,
                    waited: now.now().saturating_sub(waiter.arrived),
                },
                payload: waiter.payload,
            });
            self.restand(tenant_id);
        }
    }

    /// Checks that every counter agrees with the queues and the round, and that no request that
    /// could start was left waiting. O(requests queued + tenants): for tests, fuzzing and a
    /// simulator's debug runs, never the request path.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut in_flight = 0u64;
        let mut in_flight_requests = 0u64;
        let mut queued = 0u64;
        let mut queued_requests = 0u64;
        let mut deadlines = 0usize;
        for (id, tenant) in self.tenants.iter() {
            let name = &tenant.name;
            in_flight += tenant.in_flight_units;
            in_flight_requests += tenant.in_flight_requests;
            let units: u64 = tenant.queue.iter().map(|w| w.units).sum();
            if units != tenant.queued_units {
                return Err(format!(
                    "tenant {name}: queued_units {} but queue holds {units}",
                    tenant.queued_units
                ));
            }
            queued += units;
            queued_requests += tenant.queue.len() as u64;
            if !tenant.queue.iter().zip(tenant.queue.iter().skip(1)).all(|(a, b)| a.id < b.id) {
                return Err(format!("tenant {name}: queue out of arrival order"));
            }
            for waiter in &tenant.queue {
                if let Some(at) = waiter.deadline {
                    deadlines += 1;
                    if !self.deadlines.contains(&(at, waiter.id, id)) {
                        return Err(format!("tenant {name}: waiter {:?} missing from deadlines", waiter.id));
                    }
                }
            }
            if tenant.standing != tenant.due_standing() {
                return Err(format!(
                    "tenant {name}: standing {:?}, due {:?}",
                    tenant.standing,
                    tenant.due_standing()
                ));
            }
            let rounds = self.round.tenants().filter(|&t| t == id).count();
            let expected = usize::from(tenant.standing == Standing::Eligible);
            if rounds != expected {
                return Err(format!("tenant {name}: {rounds} places in the round, expected {expected}"));
            }
            if tenant.standing != Standing::Eligible && tenant.deficit != 0 {
                return Err(format!("tenant {name}: out of the round with credit {}", tenant.deficit));
            }
        }
        if deadlines != self.deadlines.len() {
            return Err(format!("{} deadlines for {deadlines} waiters with one", self.deadlines.len()));
        }
        if (in_flight, in_flight_requests) != (self.in_flight_units, self.in_flight_requests) {
            return Err(format!(
                "pod in flight {}/{} but tenants hold {in_flight}/{in_flight_requests}",
                self.in_flight_units, self.in_flight_requests
            ));
        }
        if queued_requests != self.queued_requests || in_flight + queued != self.pending_units {
            return Err(format!(
                "pod pending {} ({} queued) but tenants hold {} ({queued_requests} queued)",
                self.pending_units,
                self.queued_requests,
                in_flight + queued
            ));
        }
        if self.in_flight_units > self.capacity || self.pending_units > self.depth {
            return Err(format!(
                "in flight {} of capacity {}, pending {} of depth {}",
                self.in_flight_units, self.capacity, self.pending_units, self.depth
            ));
        }
        if let Some(tenant_id) = self.round.tenants().next() {
            if self.round.current() != Some(tenant_id) {
                return Err("the round has tenants but no selected request".to_owned());
            }
            let selected = tenant_id;
            let tenant = self.tenants.get(selected);
            let head = tenant.queue.front().map_or(0, |w| w.units);
            if tenant.deficit < head {
                return Err(format!(
                    "tenant {}: selected with credit {} under its head {head}",
                    tenant.name, tenant.deficit
                ));
            }
            let held_by_gate = self.fits_capacity(head) && !self.gates_open();
            if self.fits_capacity(head) && self.gates_open() {
                return Err(format!("tenant {}: selected request of {head} fits but waits", tenant.name));
            }
            if held_by_gate != self.recheck_at.is_some() {
                return Err(format!("held by a gate: {held_by_gate}, recheck at {:?}", self.recheck_at));
            }
        } else if self.recheck_at.is_some() {
            return Err("a gate recheck with nothing to start".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use crate::learned::{Learning, WeightMode};

    const MIB: u64 = 1 << 20;

    /// What `arrive` should answer.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Start,
        Queue,
        Refuse(RefusalReason),
    }

    /// One step of a hand-worked event sequence. Requests are named by labels ("a1": tenant `a`).
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// The clock moves to this many ms.
        At(u64),
        Arrive {
            label: &'static str,
            memory_mb: u64,
            timeout_ms: Option<u64>,
            function: Option<&'static str>,
            expect: Expect,
        },
        Release(&'static str),
        /// Release of a completed request with its peak memory in MB.
        Finish(&'static str, u64),
        Cancel(&'static str),
        Cpu(f64),
        Memory(u64),
        Poll,
        /// The events since the last `Events`, in order: "a1" started, "!a1" expired.
        Events(&'static [&'static str]),
        Wakeup(Option<u64>),
        /// Pod in-flight and queued units.
        Units(u64, u64),
    }

    fn arrive(label: &'static str, memory_mb: u64, expect: Expect) -> Step {
        Step::Arrive { label, memory_mb, timeout_ms: None, function: None, expect }
    }

    fn arrive_by(label: &'static str, memory_mb: u64, timeout_ms: u64, expect: Expect) -> Step {
        Step::Arrive { label, memory_mb, timeout_ms: Some(timeout_ms), function: None, expect }
    }

    fn arrive_fn(label: &'static str, function: &'static str, memory_mb: u64, expect: Expect) -> Step {
        Step::Arrive { label, memory_mb, timeout_ms: None, function: Some(function), expect }
    }

    use Expect::{Queue, Refuse, Start};
    use Step::*;

    struct Case {
        name: &'static str,
        config: BreakerConfig,
        steps: Vec<Step>,
    }

    fn pod(capacity: u64, depth: u64) -> BreakerConfig {
        BreakerConfig {
            capacity_units: capacity,
            queue_depth_units: depth,
            tenant_limits: TenantLimits::UNLIMITED,
            fair_quantum_units: 1,
            ..BreakerConfig::default()
        }
    }

    /// Runs the steps, checking each answer, every event and the invariants after each input.
    fn run(case: Case) {
        let name = case.name;
        let mut admission: Admission<&'static str> = Admission::new(case.config).expect(name);
        let mut now = Duration::ZERO;
        let mut admitted: HashMap<&str, Admitted> = HashMap::new();
        let mut queued: HashMap<&str, (TenantId, RequestId)> = HashMap::new();
        let mut events: Vec<String> = Vec::new();
        for (i, step) in case.steps.iter().copied().enumerate() {
            let at = format!("{name}: step {i} {step:?}");
            let input = !matches!(step, Events(_) | Wakeup(_) | Units(..) | At(_));
            if input {
                assert!(events.is_empty(), "{at}: events not checked: {events:?}");
            }
            match step {
                At(ms) => now = Duration::from_millis(ms),
                Arrive { label, memory_mb, timeout_ms, function, expect } => {
                    let tenant = admission.tenant(&label[..1]);
                    let function = function.map(|f| admission.function(f));
                    let queue_timeout = timeout_ms.map(Duration::from_millis);
                    let request = Request { tenant, function, memory_mb, queue_timeout };
                    match (admission.arrive(now, request, || label), expect) {
                        (Decision::Started(a), Start) => {
                            admitted.insert(label, a);
                        }
                        (Decision::Queued(id), Queue) => {
                            queued.insert(label, (tenant, id));
                        }
                        (Decision::Rejected(r), Refuse(reason)) if r.reason() == reason => {}
                        (decision, expect) => panic!("{at}: got {decision:?}, expected {expect:?}"),
                    }
                }
                Release(label) | Finish(label, _) => {
                    let a = admitted.remove(label).unwrap_or_else(|| panic!("{at}: {label} is not running"));
                    let peak = if let Finish(_, mb) = step { Some(mb * MIB) } else { None };
                    admission.release(now, a, peak);
                }
                Cancel(label) => {
                    let (tenant, id) = queued[label];
                    assert_eq!(admission.cancel(now, tenant, id), Some(label), "{at}");
                    assert_eq!(admission.cancel(now, tenant, id), None, "{at}: cancelled twice");
                }
                Cpu(cores) => admission.observe_cpu(now, cores),
                Memory(bytes) => admission.observe_memory(now, bytes),
                Poll => admission.poll(now),
                Events(expected) => {
                    assert_eq!(events, expected, "{at}");
                    events.clear();
                }
                Wakeup(ms) => assert_eq!(admission.next_wakeup(), ms.map(Duration::from_millis), "{at}"),
                Units(in_flight, queued_units) => {
                    let s = admission.snapshot();
                    assert_eq!((s.in_flight_units, s.queued_units), (in_flight, queued_units), "{at}");
                }
            }
            while let Some(event) = admission.next_event() {
                match event {
                    Event::Started { admitted: a, payload } => {
                        events.push(payload.to_owned());
                        admitted.insert(payload, a);
                    }
                    Event::Expired { payload, .. } => events.push(format!("!{payload}")),
                }
            }
            if let Err(broken) = admission.check_invariants() {
                panic!("{at}: {broken}");
            }
        }
        assert!(events.is_empty(), "{name}: events not checked at the end: {events:?}");
    }

    #[test]
    fn single_tenant_keeps_the_breaker_semantics() {
        let cases = [
            Case {
                name: "a large head is not overtaken by a smaller later arrival",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 8, Start),
                    arrive("a2", 9, Queue),
                    arrive("a3", 2, Queue),
                    Units(8, 11),
                    Release("a1"),
                    Events(&["a2"]),
                    Release("a2"),
                    Events(&["a3"]),
                    Units(2, 0),
                ],
            },
            Case {
                name: "too large at once, whatever else is going on",
                config: pod(10, 100),
                steps: vec![arrive("a1", 11, Refuse(RefusalReason::TooLarge)), Units(0, 0)],
            },
            Case {
                name: "queue full counts running plus queued plus the request",
                config: pod(1, 2),
                steps: vec![
                    arrive("a1", 1, Start),
                    arrive("a2", 1, Queue),
                    arrive("a3", 1, Refuse(RefusalReason::QueueFull)),
                    Release("a1"),
                    Events(&["a2"]),
                    arrive("a4", 1, Queue),
                ],
            },
            Case {
                name: "a release starts every queued head that fits",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 10, Start),
                    arrive("a2", 3, Queue),
                    arrive("a3", 3, Queue),
                    Release("a1"),
                    Events(&["a2", "a3"]),
                    Units(6, 0),
                ],
            },
            Case {
                name: "two small holders block a larger request until both release",
                config: pod(2, 4),
                steps: vec![
                    arrive("a1", 1, Start),
                    arrive("a2", 1, Start),
                    arrive("a3", 2, Queue),
                    Release("a1"),
                    Events(&[]),
                    Release("a2"),
                    Events(&["a3"]),
                ],
            },
            Case {
                name: "cancelling the blocking head lets the next one start",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 5, Start),
                    arrive("a2", 10, Queue),
                    arrive("a3", 5, Queue),
                    Cancel("a2"),
                    Events(&["a3"]),
                    Units(10, 0),
                ],
            },
            Case {
                name: "cancelling behind the head returns the units and starts nothing",
                config: pod(10, 20),
                steps: vec![
                    arrive("a1", 10, Start),
                    arrive("a2", 5, Queue),
                    arrive("a3", 5, Queue),
                    arrive("a4", 1, Refuse(RefusalReason::QueueFull)),
                    Cancel("a3"),
                    Events(&[]),
                    Units(10, 5),
                    arrive("a5", 5, Queue),
                    Release("a1"),
                    Events(&["a2", "a5"]),
                ],
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn gates_hold_starts_and_are_rechecked_on_readings_and_the_timer() {
        let cases = [
            Case {
                name: "cpu gate: queued while busy, rechecked every 50 ms, opened by a reading",
                config: BreakerConfig { cpu_threshold: Some(1.0), ..pod(10, 100) },
                steps: vec![
                    Cpu(2.0),
                    arrive("a1", 1, Queue),
                    Wakeup(Some(50)),
                    At(50),
                    Poll,
                    Events(&[]),
                    Wakeup(Some(100)),
                    At(60),
                    Cpu(0.5),
                    Events(&["a1"]),
                    Wakeup(None),
                ],
            },
            Case {
                name: "cpu gate: a poll with a fresh reading starts the waiter",
                config: BreakerConfig { cpu_threshold: Some(1.0), ..pod(10, 100) },
                steps: vec![Cpu(1.5), arrive("a1", 1, Queue), Cpu(1.0), Events(&["a1"])],
            },
            Case {
                name: "no recheck timer while the capacity, not a gate, holds the head",
                config: BreakerConfig { cpu_threshold: Some(1.0), ..pod(10, 100) },
                steps: vec![
                    arrive("a1", 10, Start),
                    Cpu(2.0),
                    arrive("a2", 1, Queue),
                    Wakeup(None),
                    Release("a1"),
                    Events(&[]),
                    Wakeup(Some(50)),
                    Cpu(0.0),
                    Events(&["a2"]),
                ],
            },
            Case {
                name: "memory gate: closed at the high-water mark, open below it",
                config: BreakerConfig { memory_high_water_bytes: Some(1000), ..pod(10, 100) },
                steps: vec![
                    Memory(999),
                    arrive("a1", 1, Start),
                    Memory(1000),
                    arrive("a2", 1, Queue),
                    Wakeup(Some(50)),
                    Release("a1"),
                    Events(&[]),
                    Memory(10),
                    Events(&["a2"]),
                    Wakeup(None),
                ],
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn queue_deadlines_expire_waiters_and_unblock_the_rest() {
        let cases = [
            Case {
                name: "an expired head lets a waiter behind it start",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 6, Start),
                    arrive_by("a2", 10, 100, Queue),
                    arrive("a3", 4, Queue),
                    Wakeup(Some(100)),
                    At(99),
                    Poll,
                    Events(&[]),
                    At(100),
                    Poll,
                    Events(&["!a2", "a3"]),
                    Wakeup(None),
                    Units(10, 0),
                ],
            },
            Case {
                name: "deadlines are served soonest first, not in arrival order",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 10, Start),
                    arrive_by("a2", 1, 300, Queue),
                    arrive_by("b1", 1, 200, Queue),
                    Wakeup(Some(200)),
                    At(250),
                    Poll,
                    Events(&["!b1"]),
                    Wakeup(Some(300)),
                    Release("a1"),
                    Events(&["a2"]),
                    Wakeup(None),
                ],
            },
            Case {
                name: "a started waiter no longer expires",
                config: pod(10, 100),
                steps: vec![
                    arrive("a1", 10, Start),
                    arrive_by("a2", 5, 100, Queue),
                    Release("a1"),
                    Events(&["a2"]),
                    Wakeup(None),
                    At(200),
                    Poll,
                    Events(&[]),
                ],
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn tenants_are_served_by_deficit_round_robin() {
        let cases = [
            Case {
                name: "two units per turn each: a, a, b, then a, a while b waits for room",
                config: BreakerConfig { fair_quantum_units: 2, ..pod(4, 100) },
                steps: vec![
                    arrive("x1", 4, Start),
                    arrive("a1", 1, Queue),
                    arrive("a2", 1, Queue),
                    arrive("a3", 1, Queue),
                    arrive("a4", 1, Queue),
                    arrive("b1", 2, Queue),
                    arrive("b2", 2, Queue),
                    Release("x1"),
                    // a's turn: 2 units of credit, a1 and a2; b's turn: b1; a's turn again, blocked.
                    Events(&["a1", "a2", "b1"]),
                    Release("b1"),
                    Events(&["a3", "a4"]),
                    // a has nothing left; b2 is selected and waits for 2 units of room.
                    Release("a1"),
                    Events(&[]),
                    Release("a2"),
                    Events(&["b2"]),
                ],
            },
            Case {
                name: "fair by units, not by requests: one large b per four small a",
                config: BreakerConfig { fair_quantum_units: 4, ..pod(8, 100) },
                steps: vec![
                    arrive("x1", 8, Start),
                    arrive("a1", 1, Queue),
                    arrive("a2", 1, Queue),
                    arrive("a3", 1, Queue),
                    arrive("a4", 1, Queue),
                    arrive("a5", 1, Queue),
                    arrive("b1", 4, Queue),
                    arrive("b2", 4, Queue),
                    Release("x1"),
                    Events(&["a1", "a2", "a3", "a4", "b1"]),
                    Units(8, 5),
                    Release("b1"),
                    Events(&["a5"]),
                    // b2 is selected and waits for 4 units of room: a1's release makes it.
                    Units(5, 4),
                    Release("a1"),
                    Events(&["b2"]),
                ],
            },
            Case {
                name: "a large request builds credit over rounds, then blocks the small ones until it fits",
                config: BreakerConfig { fair_quantum_units: 2, ..pod(10, 100) },
                steps: vec![
                    arrive("x1", 10, Start),
                    arrive("c1", 1, Queue),
                    arrive("c2", 1, Queue),
                    arrive("c3", 1, Queue),
                    arrive("c4", 1, Queue),
                    arrive("c5", 1, Queue),
                    arrive("c6", 1, Queue),
                    arrive("a1", 8, Queue),
                    Release("x1"),
                    // c gets 2 per turn while a's credit grows 2, 4, 6, 8: then a is selected.
                    Events(&["c1", "c2", "c3", "c4", "c5", "c6"]),
                    // c7 would fit now (6 + 1 <= 10), but a1 is selected: no overtaking.
                    arrive("c7", 1, Queue),
                    Release("c1"),
                    Release("c2"),
                    Release("c3"),
                    Events(&[]),
                    Release("c4"),
                    Events(&["a1"]),
                    Release("c5"),
                    Events(&["c7"]),
                ],
            },
            Case {
                name: "a request of a tenant with no queue waits behind a selected one",
                config: pod(10, 100),
                steps: vec![
                    arrive("c1", 5, Start),
                    arrive("a1", 8, Queue),
                    arrive("b1", 1, Queue),
                    Release("c1"),
                    Events(&["a1", "b1"]),
                ],
            },
            Case {
                name: "a newcomer joins the round at the back",
                config: BreakerConfig { fair_quantum_units: 1, ..pod(1, 100) },
                steps: vec![
                    arrive("x1", 1, Start),
                    arrive("a1", 1, Queue),
                    arrive("a2", 1, Queue),
                    arrive("b1", 1, Queue),
                    arrive("b2", 1, Queue),
                    Release("x1"),
                    Events(&["a1"]),
                    arrive("c1", 1, Queue),
                    Release("a1"),
                    Events(&["b1"]),
                    Release("b1"),
                    Events(&["a2"]),
                    Release("a2"),
                    Events(&["c1"]),
                    Release("c1"),
                    Events(&["b2"]),
                ],
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn tenant_caps_refuse_fast_and_hold_back_only_their_tenant() {
        let capped = |in_flight, queued| BreakerConfig {
            tenant_limits: TenantLimits { max_in_flight_units: in_flight, max_queued_units: queued },
            ..pod(10, 100)
        };
        let cases = [
            Case {
                name: "larger than the tenant's in-flight cap: refused at once",
                config: capped(5, 100),
                steps: vec![arrive("a1", 6, Refuse(RefusalReason::TenantTooLarge)), Units(0, 0)],
            },
            Case {
                name: "a tenant at its in-flight cap waits, and others start past it",
                config: capped(5, 100),
                steps: vec![
                    arrive("a1", 5, Start),
                    arrive("a2", 1, Queue),
                    arrive("b1", 3, Start),
                    arrive("b2", 2, Start),
                    Units(10, 1),
                    Release("b1"),
                    Events(&[]),
                    Release("a1"),
                    Events(&["a2"]),
                ],
            },
            Case {
                name: "a capped tenant rejoins the round when its own request ends",
                config: capped(5, 100),
                steps: vec![
                    arrive("a1", 5, Start),
                    arrive("b1", 5, Start),
                    arrive("a2", 2, Queue),
                    arrive("b2", 2, Queue),
                    // b2 is selected (a is capped): b1's release starts it.
                    Release("b1"),
                    Events(&["b2"]),
                    Release("a1"),
                    Events(&["a2"]),
                ],
            },
            Case {
                name: "the tenant queue cap refuses what would wait past it",
                config: capped(5, 2),
                steps: vec![
                    arrive("a1", 5, Start),
                    arrive("a2", 2, Queue),
                    arrive("a3", 1, Refuse(RefusalReason::TenantQueueFull)),
                    // Another tenant is not affected by a's queue.
                    arrive("b1", 5, Start),
                    arrive("b2", 2, Queue),
                ],
            },
        ];
        for case in cases {
            run(case);
        }
    }

    #[test]
    fn learned_weights_admit_by_observed_use_and_grant_the_declaration() {
        let learning = Learning { mode: WeightMode::Learned, after: 2, ..Learning::default() };
        run(Case {
            name: "two completions of 8 MB teach a 10 MB weight",
            config: BreakerConfig { learning, ..pod(100, 200) },
            steps: vec![
                arrive_fn("a1", "f", 100, Start),
                Finish("a1", 8),
                arrive_fn("a2", "f", 100, Start),
                // A failure teaches nothing.
                arrive_fn("a3", "f", 100, Queue),
                Release("a2"),
                Events(&["a3"]),
                Finish("a3", 8),
                Units(0, 0),
                arrive_fn("a4", "f", 100, Start),
                arrive_fn("a5", "f", 100, Start),
                arrive_fn("a6", "g", 100, Queue),
                Units(20, 100),
            ],
        });
        let mut admission: Admission<()> =
            Admission::new(BreakerConfig { learning, ..pod(100, 200) }).expect("config");
        let f = admission.function("/f");
        let request =
            Request { tenant: TenantId::DEFAULT, function: Some(f), memory_mb: 100, queue_timeout: None };
        for _ in 0..2 {
            let Decision::Started(a) = admission.arrive(Duration::ZERO, request, || ()) else { panic!() };
            assert_eq!((a.units(), a.memory_mb()), (100, 100));
            admission.release(Duration::ZERO, a, Some(8 * MIB));
        }
        let Decision::Started(a) = admission.arrive(Duration::ZERO, request, || ()) else { panic!() };
        assert_eq!((a.units(), a.memory_mb()), (10, 100), "admitted by 10 MB, granted 100 MB");
        // TooLarge judges the declaration: the grant could never fit.
        let big = Request { memory_mb: 101, ..request };
        assert!(matches!(
            admission.arrive(Duration::ZERO, big, || ()),
            Decision::Rejected(Rejection::TooLarge { .. })
        ));
    }

    #[test]
    fn snapshots_report_tenants_refusals_and_gates() {
        let config = BreakerConfig {
            tenant_limits: TenantLimits { max_in_flight_units: 6, max_queued_units: 3 },
            cpu_threshold: Some(1.0),
            ..pod(10, 100)
        };
        let mut admission: Admission<()> = Admission::new(config).expect("config");
        let acme = admission.tenant("acme");
        assert_eq!(admission.tenant("acme"), acme);
        let request = |memory_mb| Request { tenant: acme, function: None, memory_mb, queue_timeout: None };
        let now = Duration::ZERO;
        assert!(matches!(admission.arrive(now, request(6), || ()), Decision::Started(_)));
        assert!(matches!(admission.arrive(now, request(3), || ()), Decision::Queued(_)));
        assert!(matches!(admission.arrive(now, request(7), || ()), Decision::Rejected(_)));
        let Decision::Rejected(full) = admission.arrive(now, request(1), || ()) else { panic!() };
        assert_eq!(
            full.to_string(),
            "tenant \"acme\" queue full: 1 MB requested, 3 MB of the tenant queued, tenant queue cap 3 MB"
        );
        admission.observe_cpu(now, 2.0);
        let pod = admission.snapshot();
        assert_eq!(
            (pod.in_flight_units, pod.queued_units, pod.in_flight_requests, pod.queued_requests),
            (6, 3, 1, 1)
        );
        assert!(!pod.cpu_gate_open && pod.memory_gate_open);
        let tenants: Vec<_> = admission.tenant_snapshots().collect();
        assert_eq!(tenants.len(), 2, "the default tenant and acme");
        let t = &tenants[1];
        assert_eq!((&*t.name, t.in_flight_units, t.queued_units), ("acme", 6, 3));
        assert_eq!(t.refusals.get(RefusalReason::TenantTooLarge), 1);
        assert_eq!(t.refusals.get(RefusalReason::TenantQueueFull), 1);
        assert_eq!(t.refusals.total(), 2);
        assert_eq!(tenants[0].refusals.total(), 0);
    }

    #[test]
    fn raising_a_tenant_cap_starts_its_waiters() {
        let config = BreakerConfig {
            tenant_limits: TenantLimits { max_in_flight_units: 2, max_queued_units: 10 },
            ..pod(10, 100)
        };
        let mut admission: Admission<u32> = Admission::new(config).expect("config");
        let request =
            Request { tenant: TenantId::DEFAULT, function: None, memory_mb: 2, queue_timeout: None };
        let now = Duration::ZERO;
        assert!(matches!(admission.arrive(now, request, || 1), Decision::Started(_)));
        assert!(matches!(admission.arrive(now, request, || 2), Decision::Queued(_)));
        admission.set_tenant_limits(now, TenantId::DEFAULT, TenantLimits::UNLIMITED);
        assert!(matches!(admission.next_event(), Some(Event::Started { payload: 2, .. })));
        admission.check_invariants().expect("consistent");
    }

    #[test]
    fn an_unknown_tenant_id_counts_as_the_default_tenant() {
        let mut other: Admission<()> = Admission::new(pod(10, 100)).expect("config");
        let foreign = other.tenant("x");
        let mut admission: Admission<()> = Admission::new(pod(10, 100)).expect("config");
        let request = Request { tenant: foreign, function: None, memory_mb: 2, queue_timeout: None };
        let Decision::Started(a) = admission.arrive(Duration::ZERO, request, || ()) else { panic!() };
        assert_eq!(a.tenant(), TenantId::DEFAULT);
        admission.release(Duration::ZERO, a, None);
        admission.check_invariants().expect("consistent");
    }

    /// Found by the fuzz target: with a depth of `u64::MAX`, a saturating sum compared equal to
    /// it and the counter then overflowed.
    #[test]
    fn sums_past_u64_max_are_refused_not_wrapped() {
        let c = u64::MAX / 4;
        run(Case {
            name: "running plus queued past u64::MAX is queue full",
            config: pod(c, u64::MAX),
            steps: vec![
                arrive("a1", c, Start),
                arrive("a2", c, Queue),
                arrive("a3", c, Queue),
                arrive("a4", c, Queue),
                arrive("a5", c, Refuse(RefusalReason::QueueFull)),
                Units(c, 3 * c),
            ],
        });
    }

    #[test]
    fn settings_are_checked_once_at_construction() {
        let ms = Duration::from_millis;
        let base = BreakerConfig::default;
        let learning =
            |after, percentile, margin| Learning { after, percentile, margin, ..Learning::default() };
        let cases = [
            (base(), None),
            (
                BreakerConfig {
                    capacity_units: 1,
                    queue_depth_units: 1,
                    cpu_threshold: Some(0.0),
                    gate_recheck: ms(1),
                    ..base()
                },
                None,
            ),
            (
                BreakerConfig { capacity_units: 2, queue_depth_units: 1, ..base() },
                Some(AdmissionError::DepthBelowCapacity { depth: 1, capacity: 2 }),
            ),
            (
                BreakerConfig { capacity_units: 0, queue_depth_units: 1, ..base() },
                Some(AdmissionError::ZeroCapacity),
            ),
            (
                BreakerConfig { cpu_threshold: Some(-1.0), ..base() },
                Some(AdmissionError::InvalidCpuThreshold(-1.0)),
            ),
            (BreakerConfig { gate_recheck: Duration::ZERO, ..base() }, Some(AdmissionError::ZeroGateRecheck)),
            (BreakerConfig { fair_quantum_units: 0, ..base() }, Some(AdmissionError::ZeroQuantum)),
            (
                BreakerConfig { learning: learning(0, 0.99, 1.25), ..base() },
                Some(AdmissionError::ZeroLearnAfter),
            ),
            (
                BreakerConfig { learning: learning(1, 0.0, 1.25), ..base() },
                Some(AdmissionError::InvalidPercentile(0.0)),
            ),
            (
                BreakerConfig { learning: learning(1, 1.5, 1.25), ..base() },
                Some(AdmissionError::InvalidPercentile(1.5)),
            ),
            (
                BreakerConfig { learning: learning(1, 1.0, 0.9), ..base() },
                Some(AdmissionError::InvalidMargin(0.9)),
            ),
        ];
        for (config, error) in cases {
            let got = Admission::<()>::new(config.clone()).err();
            assert_eq!(got, error, "{config:?}");
        }
    }
}
