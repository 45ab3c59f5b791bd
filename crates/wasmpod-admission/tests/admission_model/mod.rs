//! The admission state machine's test harness, shared by its two fuzz targets: the property test
//! `tests/admission_fuzz.rs` (proptest, stable Rust, in `cargo test`) and the libFuzzer target
//! `fuzz/fuzz_targets/admission.rs` (coverage-guided, nightly). Both draw a [`Setup`] and a
//! sequence of [`Op`]s, apply them through a [`Harness`], and call [`Harness::drain`] at the end;
//! the invariants are checked here, once, for both. See `admission_fuzz.rs` for what they are.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use wasmpod_admission::{
    Admission, Admitted, BreakerConfig, Decision, Event, Learning, RefusalReason, Request, RequestId,
    TenantId, TenantLimits, WeightMode,
};

pub const TENANTS: usize = 4;
pub const FUNCTIONS: u8 = 3;
const MIB: u64 = 1 << 20;
const RECHECK: Duration = Duration::from_millis(50);

/// The pod's settings for one sequence.
#[derive(Debug, Clone)]
pub struct Setup {
    capacity: u64,
    depth: u64,
    quantum: u64,
    tenant_in_flight: u64,
    tenant_queued: u64,
    cpu_threshold: Option<f64>,
    high_water: Option<u64>,
    learn_after: Option<u32>,
    /// Capacity and depth near `u64::MAX`, to find overflows.
    huge: bool,
}

/// One input to the state machine.
#[derive(Debug, Clone)]
pub enum Op {
    /// `size` is mapped onto the setup's range of request sizes.
    Arrive {
        tenant: usize,
        function: Option<u8>,
        size: u64,
        timeout_ms: Option<u64>,
    },
    /// Releases the `pick`-th running request; `peak` (per mille of its declaration) if it completed.
    Release {
        pick: usize,
        peak: Option<u64>,
    },
    Cancel {
        pick: usize,
    },
    Cpu(f64),
    Memory(u64),
    /// Moves the clock, then polls if a wake-up is due.
    Advance(u64),
    Poll,
}

impl Setup {
    /// A setup from drawn parts: capacity 1..=20, `extra` depth 0..=40, quantum 1..=8, optional
    /// tenant caps (in flight 1..=25, queued 0..=30), optional CPU and memory gates, optional
    /// learning after 1..=4 requests; `huge` puts capacity and depth near `u64::MAX`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        capacity: u64,
        extra: u64,
        quantum: u64,
        in_flight: Option<u64>,
        queued: Option<u64>,
        cpu: Option<f64>,
        memory: Option<u64>,
        learn: Option<u32>,
        huge: bool,
    ) -> Setup {
        if huge {
            let capacity = u64::MAX / 4;
            return Setup {
                capacity,
                depth: u64::MAX,
                quantum: capacity / 4,
                tenant_in_flight: in_flight.map_or(u64::MAX, |_| capacity / 2),
                tenant_queued: queued.map_or(u64::MAX, |_| u64::MAX / 2),
                cpu_threshold: cpu,
                high_water: memory,
                learn_after: learn,
                huge,
            };
        }
        Setup {
            capacity,
            depth: capacity + extra,
            quantum,
            tenant_in_flight: in_flight.unwrap_or(u64::MAX),
            tenant_queued: queued.unwrap_or(u64::MAX),
            cpu_threshold: cpu,
            high_water: memory,
            learn_after: learn,
            huge,
        }
    }

    fn config(&self) -> BreakerConfig {
        let learning = match self.learn_after {
            Some(after) => Learning { mode: WeightMode::Learned, after, ..Learning::default() },
            None => Learning::default(),
        };
        BreakerConfig {
            capacity_units: self.capacity,
            queue_depth_units: self.depth,
            cpu_threshold: self.cpu_threshold,
            memory_high_water_bytes: self.high_water,
            gate_recheck: RECHECK,
            tenant_limits: TenantLimits {
                max_in_flight_units: self.tenant_in_flight,
                max_queued_units: self.tenant_queued,
            },
            fair_quantum_units: self.quantum,
            learning,
        }
    }

    /// Mostly requests that fit, some at and just past the limits.
    fn size(&self, raw: u64) -> u64 {
        if self.huge {
            let c = self.capacity;
            return [0, 1, c / 3, c / 2, c, c + 1, u64::MAX][(raw % 7) as usize];
        }
        match raw % 4 {
            0 => raw / 4 % (self.capacity + 3),
            _ => 1 + raw / 4 % self.capacity.div_ceil(3),
        }
    }
}

/// What the model expects `arrive` to answer.
#[derive(Debug, PartialEq)]
enum Expected {
    Start,
    Queue,
    Refuse(RefusalReason),
}

/// A start (`label`) or an expiry (`!label`), comparable between the state machine and the model.
#[derive(Debug, Clone, PartialEq)]
enum Happened {
    Started(u64),
    Expired(u64),
}

#[derive(Debug)]
struct ModelWaiter {
    label: u64,
    units: u128,
    deadline: Option<Duration>,
}

#[derive(Debug, Default)]
struct ModelTenant {
    queue: Vec<ModelWaiter>,
    in_flight: u128,
    deficit: u128,
    in_round: bool,
}

/// Admission as its documentation states it, in the plainest code: `u128` counters, a `Vec` for
/// the round, one turn at a time.
#[derive(Debug)]
struct Model {
    capacity: u128,
    depth: u128,
    quantum: u128,
    cap_in_flight: u128,
    cap_queued: u128,
    cpu_threshold: Option<f64>,
    high_water: Option<u64>,
    cpu: f64,
    memory: u64,
    tenants: Vec<ModelTenant>,
    round: Vec<usize>,
    in_turn: bool,
    in_flight: u128,
    running: HashMap<u64, (usize, u128)>,
    recheck_at: Option<Duration>,
    happened: Vec<Happened>,
}

impl Model {
    fn new(setup: &Setup) -> Model {
        Model {
            capacity: setup.capacity.into(),
            depth: setup.depth.into(),
            quantum: setup.quantum.into(),
            cap_in_flight: setup.tenant_in_flight.into(),
            cap_queued: setup.tenant_queued.into(),
            cpu_threshold: setup.cpu_threshold,
            high_water: setup.high_water,
            cpu: 0.0,
            memory: 0,
            tenants: (0..TENANTS).map(|_| ModelTenant::default()).collect(),
            round: Vec::new(),
            in_turn: false,
            in_flight: 0,
            running: HashMap::new(),
            recheck_at: None,
            happened: Vec::new(),
        }
    }

    fn gates_open(&self) -> bool {
        self.cpu_threshold.is_none_or(|t| self.cpu <= t) && self.high_water.is_none_or(|m| self.memory < m)
    }

    fn queued(&self, t: usize) -> u128 {
        self.tenants[t].queue.iter().map(|w| w.units).sum()
    }

    fn pending(&self) -> u128 {
        self.in_flight + (0..TENANTS).map(|t| self.queued(t)).sum::<u128>()
    }

    fn arrive(
        &mut self,
        now: Duration,
        label: u64,
        t: usize,
        memory_mb: u64,
        weight: u64,
        deadline: Option<Duration>,
    ) -> Expected {
        let units = u128::from(weight);
        if u128::from(memory_mb) > self.capacity {
            return Expected::Refuse(RefusalReason::TooLarge);
        }
        if units > self.cap_in_flight {
            return Expected::Refuse(RefusalReason::TenantTooLarge);
        }
        let tenant = &self.tenants[t];
        let starts_now = self.round.is_empty()
            && tenant.queue.is_empty()
            && tenant.in_flight + units <= self.cap_in_flight
            && self.in_flight + units <= self.capacity
            && self.gates_open();
        if !starts_now && self.queued(t) + units > self.cap_queued {
            return Expected::Refuse(RefusalReason::TenantQueueFull);
        }
        if self.pending() + units > self.depth {
            return Expected::Refuse(RefusalReason::QueueFull);
        }
        if starts_now {
            self.in_flight += units;
            self.tenants[t].in_flight += units;
            self.running.insert(label, (t, units));
            return Expected::Start;
        }
        self.tenants[t].queue.push(ModelWaiter { label, units, deadline });
        if self.tenants[t].queue.len() == 1 {
            self.update(t);
            self.schedule(now);
        }
        Expected::Queue
    }

    fn release(&mut self, now: Duration, label: u64) {
        let (t, units) = self.running.remove(&label).expect("running");
        self.in_flight -= units;
        self.tenants[t].in_flight -= units;
        self.update(t);
        self.schedule(now);
    }

    fn cancel(&mut self, now: Duration, label: u64) {
        for t in 0..TENANTS {
            if let Some(index) = self.tenants[t].queue.iter().position(|w| w.label == label) {
                self.tenants[t].queue.remove(index);
                if index == 0 {
                    self.update(t);
                    self.schedule(now);
                }
                return;
            }
        }
        panic!("cancel of {label}, which is not queued");
    }

    fn observe(&mut self, now: Duration, cpu: Option<f64>, memory: Option<u64>) {
        self.cpu = cpu.unwrap_or(self.cpu);
        self.memory = memory.unwrap_or(self.memory);
        if !self.round.is_empty() {
            self.schedule(now);
        }
    }

    fn poll(&mut self, now: Duration) {
        let mut due: Vec<(Duration, u64, usize)> = Vec::new();
        for (t, tenant) in self.tenants.iter().enumerate() {
            for w in &tenant.queue {
                if let Some(at) = w.deadline.filter(|&at| at <= now) {
                    due.push((at, w.label, t));
                }
            }
        }
        due.sort();
        for (_, label, t) in due {
            let index = self.tenants[t].queue.iter().position(|w| w.label == label).expect("queued");
            self.tenants[t].queue.remove(index);
            self.happened.push(Happened::Expired(label));
            if index == 0 {
                self.update(t);
            }
        }
        self.schedule(now);
    }

    fn next_wakeup(&self) -> Option<Duration> {
        let deadline = self.tenants.iter().flat_map(|t| &t.queue).filter_map(|w| w.deadline).min();
        [deadline, self.recheck_at].into_iter().flatten().min()
    }

    /// In the round exactly while something is queued whose head fits the tenant's cap; credit
    /// is lost on leaving; the turn ends when the credit no longer covers the head.
    fn update(&mut self, t: usize) {
        let tenant = &self.tenants[t];
        let head = tenant.queue.first().map(|w| w.units);
        let eligible = head.is_some_and(|units| tenant.in_flight + units <= self.cap_in_flight);
        if eligible && !tenant.in_round {
            self.round.push(t);
            self.tenants[t].in_round = true;
        } else if !eligible && tenant.in_round {
            let index = self.round.iter().position(|&r| r == t).expect("in the round");
            self.round.remove(index);
            if index == 0 {
                self.in_turn = false;
            }
            self.tenants[t].in_round = false;
            self.tenants[t].deficit = 0;
        } else if eligible && self.in_turn && self.round[0] == t && tenant.deficit < head.unwrap_or(0) {
            self.round.rotate_left(1);
            self.in_turn = false;
        }
    }

    fn schedule(&mut self, now: Duration) {
        self.recheck_at = None;
        while let Some(&t) = self.round.first() {
            let head = self.tenants[t].queue[0].units;
            if !self.in_turn {
                self.tenants[t].deficit += self.quantum;
                if self.tenants[t].deficit < head {
                    self.round.rotate_left(1);
                    continue;
                }
                self.in_turn = true;
            }
            if self.in_flight + head > self.capacity {
                return;
            }
            if !self.gates_open() {
                self.recheck_at = Some(now + RECHECK);
                return;
            }
            let waiter = self.tenants[t].queue.remove(0);
            self.in_flight += head;
            self.tenants[t].in_flight += head;
            self.tenants[t].deficit -= head;
            self.running.insert(waiter.label, (t, head));
            self.happened.push(Happened::Started(waiter.label));
            self.update(t);
        }
    }
}

/// The state machine, the model, and what the test knows about each request.
pub struct Harness {
    setup: Setup,
    real: Admission<u64>,
    model: Model,
    now: Duration,
    tenant_ids: Vec<TenantId>,
    running: Vec<(u64, Admitted)>,
    /// Queued labels per tenant, in arrival order, with their ids.
    queued: Vec<Vec<(u64, RequestId)>>,
    next_label: u64,
}

impl Harness {
    pub fn new(setup: Setup) -> Harness {
        let mut real = Admission::new(setup.config()).expect("valid config");
        let tenant_ids = (0..TENANTS).map(|t| real.tenant(&format!("t{t}"))).collect();
        for f in 0..FUNCTIONS {
            real.function(&format!("f{f}"));
        }
        let model = Model::new(&setup);
        Harness {
            setup,
            real,
            model,
            now: Duration::ZERO,
            tenant_ids,
            running: Vec::new(),
            queued: vec![Vec::new(); TENANTS],
            next_label: 0,
        }
    }

    pub fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        match *op {
            Op::Arrive { tenant, function, size, timeout_ms } => {
                let label = self.next_label;
                self.next_label += 1;
                let memory_mb = self.setup.size(size);
                let function = function.map(|f| self.real.function(&format!("f{f}")));
                let weight = self.real.weight(function, memory_mb);
                prop_assert!(weight <= memory_mb, "weight {weight} above the declaration {memory_mb}");
                prop_assert!(memory_mb == 0 || weight >= 1, "weight 0 for {memory_mb} MB");
                let queue_timeout = timeout_ms.map(Duration::from_millis);
                let deadline = queue_timeout.map(|timeout| now + timeout);
                let request = Request { tenant: self.tenant_ids[tenant], function, memory_mb, queue_timeout };
                let gates_open = self.model.gates_open();
                let decision = self.real.arrive(now, request, || label);
                let expected = self.model.arrive(now, label, tenant, memory_mb, weight, deadline);
                match (decision, expected) {
                    (Decision::Started(admitted), Expected::Start) => {
                        prop_assert!(gates_open, "started {label} with a gate closed");
                        prop_assert_eq!((admitted.units(), admitted.memory_mb()), (weight, memory_mb));
                        self.running.push((label, admitted));
                    }
                    (Decision::Queued(id), Expected::Queue) => self.queued[tenant].push((label, id)),
                    (Decision::Rejected(rejection), Expected::Refuse(reason)) => {
                        prop_assert_eq!(rejection.reason(), reason)
                    }
                    (decision, expected) => {
                        prop_assert!(false, "request {label}: state machine {decision:?}, model {expected:?}")
                    }
                }
            }
            Op::Release { pick, peak } => {
                if !self.running.is_empty() {
                    let (label, admitted) = self.running.swap_remove(pick % self.running.len());
                    let peak =
                        peak.map(|per_mille| admitted.memory_mb().saturating_mul(MIB) / 1000 * per_mille);
                    self.real.release(now, admitted, peak);
                    self.model.release(now, label);
                }
            }
            Op::Cancel { pick } => {
                let all: Vec<(usize, u64, RequestId)> = (0..TENANTS)
                    .flat_map(|t| self.queued[t].iter().map(move |&(label, id)| (t, label, id)))
                    .collect();
                if !all.is_empty() {
                    let (t, label, id) = all[pick % all.len()];
                    prop_assert_eq!(self.real.cancel(now, self.tenant_ids[t], id), Some(label));
                    prop_assert_eq!(self.real.cancel(now, self.tenant_ids[t], id), None);
                    self.queued[t].retain(|&(l, _)| l != label);
                    self.model.cancel(now, label);
                }
            }
            Op::Cpu(cores) => {
                self.real.observe_cpu(now, cores);
                self.model.observe(now, Some(cores), None);
            }
            Op::Memory(bytes) => {
                self.real.observe_memory(now, bytes);
                self.model.observe(now, None, Some(bytes));
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms);
                if self.real.next_wakeup().is_some_and(|at| at <= self.now) {
                    self.real.poll(self.now);
                    self.model.poll(self.now);
                }
            }
            Op::Poll => {
                self.real.poll(now);
                self.model.poll(now);
            }
        }
        self.check()
    }

    /// Drains the state machine's events and checks them, the counters and the invariants.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let mut happened = Vec::new();
        while let Some(event) = self.real.next_event() {
            match event {
                Event::Started { admitted, payload } => {
                    prop_assert!(self.model.gates_open(), "started {payload} with a gate closed");
                    let t = self.tenant_index(admitted.tenant());
                    let oldest = self.queued[t].first().map(|&(label, _)| label);
                    prop_assert_eq!(oldest, Some(payload), "tenant t{} started out of arrival order", t);
                    self.queued[t].remove(0);
                    happened.push(Happened::Started(payload));
                    self.running.push((payload, admitted));
                }
                Event::Expired { payload, tenant, .. } => {
                    let t = self.tenant_index(tenant);
                    self.queued[t].retain(|&(label, _)| label != payload);
                    happened.push(Happened::Expired(payload));
                }
            }
        }
        let expected = std::mem::take(&mut self.model.happened);
        prop_assert_eq!(&happened, &expected, "starts and expiries differ from the model");
        prop_assert_eq!(self.real.next_wakeup(), self.model.next_wakeup(), "wake-up differs from the model");
        if let Err(broken) = self.real.check_invariants() {
            prop_assert!(false, "{}", broken);
        }

        let pod = self.real.snapshot();
        prop_assert!(pod.in_flight_units <= self.setup.capacity);
        prop_assert!(
            u128::from(pod.in_flight_units) + u128::from(pod.queued_units) <= u128::from(self.setup.depth)
        );
        prop_assert_eq!(u128::from(pod.in_flight_units), self.model.in_flight);
        prop_assert_eq!(u128::from(pod.in_flight_units) + u128::from(pod.queued_units), self.model.pending());
        prop_assert_eq!(pod.in_flight_requests as usize, self.running.len());
        for snapshot in self.real.tenant_snapshots() {
            prop_assert!(snapshot.in_flight_units <= self.setup.tenant_in_flight, "{snapshot:?}");
            prop_assert!(snapshot.queued_units <= self.setup.tenant_queued, "{snapshot:?}");
            if let Some(t) = self.tenant_ids.iter().position(|&id| id == snapshot.id) {
                prop_assert_eq!(u128::from(snapshot.in_flight_units), self.model.tenants[t].in_flight);
                prop_assert_eq!(snapshot.queued_requests as usize, self.queued[t].len());
            }
        }
        Ok(())
    }

    fn tenant_index(&self, id: TenantId) -> usize {
        self.tenant_ids.iter().position(|&t| t == id).expect("one of the test's tenants")
    }

    /// Opens the gates and ends every running request until nothing waits: every waiter must
    /// start (no starvation), then every counter must be back at zero.
    pub fn drain(&mut self) -> Result<(), TestCaseError> {
        self.apply(&Op::Cpu(0.0))?;
        self.apply(&Op::Memory(0))?;
        let waiting: usize = self.queued.iter().map(Vec::len).sum();
        for _ in 0..=waiting {
            while !self.running.is_empty() {
                self.apply(&Op::Release { pick: 0, peak: None })?;
            }
        }
        let left: usize = self.queued.iter().map(Vec::len).sum();
        prop_assert_eq!(left, 0, "requests still waiting with the pod empty and the gates open");
        let pod = self.real.snapshot();
        prop_assert_eq!(
            (pod.in_flight_units, pod.queued_units, pod.in_flight_requests, pod.queued_requests),
            (0, 0, 0, 0)
        );
        for t in self.real.tenant_snapshots() {
            prop_assert_eq!(
                (t.in_flight_units, t.queued_units, t.in_flight_requests, t.queued_requests),
                (0, 0, 0, 0)
            );
        }
        prop_assert_eq!(self.real.next_wakeup(), None);
        Ok(())
    }
}
