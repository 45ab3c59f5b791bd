//! The event loop: one workload, one policy, virtual time.
//!
//! Calls arrive at their service (one per function for containers, one for all functions with
//! superpods). A service with a ready pod sends each call to its least-loaded ready pod; one with
//! none holds it in front (Knative's activator) until a pod is ready, starting one at once when
//! it has none (scale from zero). In the pod the admission core decides when the call runs
//! (policy 2 has no admission: every call runs at once); running calls share the pod's cores.
//! Once a second each active service's autoscaler records what its pods hold, and every two
//! seconds it decides the pod count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use rand::SeedableRng;
use wasmpod_admission::{
    Admission, Admitted, BreakerConfig, Decision as AdmissionDecision, Event as AdmissionEvent, FunctionId,
    Learning, RefusalReason, Request, TenantId, TenantLimits, WeightMode,
};
use wasmpod_autoscale::{Autoscaler, Sample, Settings, DEFAULT_CPU_TARGET_UTILIZATION, TICK_INTERVAL};

use crate::cpu_share::CpuShare;
use crate::error::SimError;
use crate::nodes::Nodes;
use crate::policy::{ms, ClusterConfig, Policy, SUPERPOD_MB_PER_FUNCTION};
use crate::profile::Profiles;
use crate::report::{summarize, PolicyReport, Rejected, TimelinePoint};
use crate::workload::{Arrival, Micros, Workload, MINUTE};

/// Virtual time between two timeline samples.
const TIMELINE_STEP: Micros = 10_000_000;
/// Virtual time between autoscaler samples (the autoscale core's bucket).
const SECOND: Micros = 1_000_000;
/// MB in one byte count the admission core reads.
const MB: f64 = 1_048_576.0;

/// What a single-pod replay ([`crate::replay`]) changes in the engine: the pod's admission is
/// given (as `wasmpod serve` builds it from its flags), not derived from a policy; the one pod is
/// ready from the start and never scaled; every call's outcome is recorded.
pub(crate) struct SinglePod {
    /// The pod's admission; `None` admits every call at once (`--no-admission`).
    pub admission: Option<BreakerConfig>,
}

/// What happened to one call of a single-pod replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CallOutcome {
    /// The call's place in arrival order (0-based).
    pub index: u32,
    /// `None`: answered 200; else why it got a 503.
    pub refused: Option<Reason>,
    /// From arrival to the start of execution, or to the refusal.
    pub queue: Micros,
    /// From arrival to the answer.
    pub latency: Micros,
}

/// Runs `arrivals` (in arrival order) through one pod of `cluster`'s superpod size under
/// `single`'s admission, and returns the report and each call's outcome, in arrival order.
pub(crate) fn replay_single(
    workload: &Workload,
    profiles: &Profiles,
    cluster: &ClusterConfig,
    policy: Policy,
    single: SinglePod,
    arrivals: &[Arrival],
) -> Result<(PolicyReport, Vec<CallOutcome>), SimError> {
    let mut sim = Sim::build(workload, profiles, cluster, policy, Some(single))?;
    for arrival in arrivals {
        sim.run_until(arrival.at);
        sim.arrive(arrival);
    }
    sim.drain_calls();
    let mut outcomes = sim.outcomes.take().unwrap_or_default();
    outcomes.sort_by_key(|o| o.index);
    Ok((sim.report(), outcomes))
}

/// Runs `workload` under `policy` on `cluster` and reports what happened.
///
/// Arrivals are drawn from `seed` alone, so every policy run with the same seed sees exactly the
/// same calls. `progress` is told the virtual time reached, once per workload minute.
pub fn simulate(
    workload: &Workload,
    profiles: &Profiles,
    cluster: &ClusterConfig,
    policy: Policy,
    seed: u64,
    progress: &mut dyn FnMut(Micros, Micros),
) -> Result<PolicyReport, SimError> {
    let mut sim = Sim::new(workload, profiles, cluster, policy)?;
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let end = workload.duration();
    let mut arrivals: Vec<Arrival> = Vec::new();
    for minute in 0..workload.minutes.len() {
        workload.arrivals_in_minute(minute, &mut rng, &mut arrivals);
        for arrival in &arrivals {
            sim.run_until(arrival.at);
            sim.arrive(arrival);
        }
        sim.run_until((minute as Micros + 1) * MINUTE);
        progress((minute as Micros + 1) * MINUTE, end);
    }
    // Let the calls still running or queued finish (bounded: every wait has a deadline).
    sim.drain_calls();
    Ok(sim.report())
}

/// The simulation's state.
struct Sim<'w> {
    workload: &'w Workload,
    cluster: &'w ClusterConfig,
    policy: Policy,
    /// Set for a single-pod replay.
    single: Option<SinglePod>,
    /// Each call's outcome (single-pod replays only).
    outcomes: Option<Vec<CallOutcome>>,
    /// Calls arrived so far (the next call's index).
    arrived: u32,
    now: Micros,
    seq: u64,
    events: BinaryHeap<Reverse<(Micros, u64, Ev)>>,
    nodes: Nodes,
    services: Vec<Service>,
    active: Vec<u32>,
    pods: Vec<Pod>,
    free_pods: Vec<u32>,
    pending_pods: VecDeque<u32>,
    calls: Vec<Call>,
    free_calls: Vec<u32>,
    in_flight: u64,
    // Pod-level constants of this policy.
    /// A fresh autoscaler with this policy's settings, cloned for each service that wakes up.
    prototype: Autoscaler,
    /// Each function's owner, as a small number (tenants are interned per pod on first use).
    owners: Vec<u32>,
    pod_start: Micros,
    /// Each function's instantiation cost per call (zero outside superpods).
    instantiate: Vec<Micros>,
    instance_overhead_mb: f64,
    timeout: Micros,
    // Accumulators.
    last: Micros,
    alive_pods: u64,
    reserved_mb: f64,
    used_mb: f64,
    pod_us: f64,
    node_us: f64,
    reserved_mb_us: f64,
    used_mb_us: f64,
    peak_pods: u64,
    peak_nodes: u64,
    pod_starts: u64,
    cold_starts: u64,
    completed: u64,
    rejected: Rejected,
    queue_ms: Vec<f32>,
    latency_ms: Vec<f32>,
    timeline: Vec<TimelinePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Record samples (each second) and decide (every tick interval).
    Tick,
    /// Take a timeline sample.
    Timeline,
    /// A pod finished its cold start.
    PodReady(u32),
    /// A pod's earliest running call finishes (stale unless the generation matches).
    PodFinish(u32, u32),
    /// A pod's admission asked to be polled.
    PodWake(u32, u32),
    /// A call waiting in front of its service reaches its deadline (stale unless the
    /// generation matches).
    FrontExpire(u32, u32),
}

struct Service {
    pods: Vec<u32>,
    front: VecDeque<(u32, u32)>,
    autoscaler: Option<Autoscaler>,
    active: bool,
    last_demand: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState {
    Pending,
    Starting,
    Ready,
    Draining,
    Gone,
}

enum Gate {
    /// No admission: stock Knative with containerConcurrency 0 runs every call at once.
    Open,
    /// The admission core.
    Core(Box<Admission<u32>>),
}

struct Pod {
    service: u32,
    state: PodState,
    node: Option<usize>,
    gate: Gate,
    cpu: CpuShare,
    /// Calls running plus queued in this pod.
    calls: u32,
    /// Real memory of the pod: base plus running calls, MB.
    used_mb: f64,
    base_mb: f64,
    reserved_mb: f64,
    budget_mb: f64,
    cpu_request: f64,
    finish_gen: u32,
    finish_at: Option<Micros>,
    wake_gen: u32,
    wake_at: Option<Micros>,
    tenants: HashMap<u32, TenantId>,
    functions: HashMap<u32, FunctionId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Free,
    Front,
    Queued(u32),
    Running(u32),
}

struct Call {
    gen: u32,
    index: u32,
    state: CallState,
    function: u32,
    arrival: Micros,
    start: Micros,
    work: Micros,
    memory_mb: f64,
    cold: bool,
    admitted: Option<Admitted>,
}

impl<'w> Sim<'w> {
    fn new(
        workload: &'w Workload,
        profiles: &Profiles,
        cluster: &'w ClusterConfig,
        policy: Policy,
    ) -> Result<Sim<'w>, SimError> {
        Sim::build(workload, profiles, cluster, policy, None)
    }

    fn build(
        workload: &'w Workload,
        profiles: &Profiles,
        cluster: &'w ClusterConfig,
        policy: Policy,
        single: Option<SinglePod>,
    ) -> Result<Sim<'w>, SimError> {
        let services = if policy.superpod() { 1 } else { workload.functions.len() };
        let is_single = single.is_some();
        let superpod = policy.superpod();
        let load = profiles.load_ms_per_function * workload.functions.len() as f64;
        let prototype = Autoscaler::new(autoscaler_settings(policy, cluster))
            .map_err(|e| SimError::Setting { name: "autoscaler", reason: e.to_string() })?;
        let mut owner_ids: HashMap<&str, u32> = HashMap::new();
        let owners = workload
            .functions
            .iter()
            .map(|f| {
                let next = owner_ids.len() as u32;
                *owner_ids.entry(f.owner.as_str()).or_insert(next)
            })
            .collect();
        let mut sim = Sim {
            prototype,
            owners,
            workload,
            cluster,
            policy,
            outcomes: single.as_ref().map(|_| Vec::new()),
            single,
            arrived: 0,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            nodes: Nodes::new(cluster.node(), cluster.max_nodes),
            services: (0..services)
                .map(|_| Service {
                    pods: Vec::new(),
                    front: VecDeque::new(),
                    autoscaler: None,
                    active: false,
                    last_demand: 0,
                })
                .collect(),
            active: Vec::new(),
            pods: Vec::new(),
            free_pods: Vec::new(),
            pending_pods: VecDeque::new(),
            calls: Vec::new(),
            free_calls: Vec::new(),
            in_flight: 0,
            // A single pod is ready from the start, and its budget counts the guests' memory
            // alone, as the runtime's `PodMemory` does.
            pod_start: if is_single {
                0
            } else {
                ms(cluster.container_cold_start_ms + if superpod { load } else { 0.0 })
            },
            instantiate: workload
                .functions
                .iter()
                .map(|f| if superpod { ms(f.instantiate_ms.unwrap_or(profiles.instantiate_ms)) } else { 0 })
                .collect(),
            instance_overhead_mb: if superpod && !is_single { profiles.instance_overhead_mb } else { 0.0 },
            timeout: cluster.queue_timeout(),
            last: 0,
            alive_pods: 0,
            reserved_mb: 0.0,
            used_mb: 0.0,
            pod_us: 0.0,
            node_us: 0.0,
            reserved_mb_us: 0.0,
            used_mb_us: 0.0,
            peak_pods: 0,
            peak_nodes: 0,
            pod_starts: 0,
            cold_starts: 0,
            completed: 0,
            rejected: Rejected::default(),
            queue_ms: Vec::with_capacity(workload.total_calls() as usize),
            latency_ms: Vec::with_capacity(workload.total_calls() as usize),
            timeline: Vec::new(),
        };
        // Check the settings once, before any call depends on them.
        if let Some(config) = sim.admission_config() {
            Admission::<u32>::new(config)
                .map_err(|e| SimError::Setting { name: "admission", reason: e.to_string() })?;
        }
        let (cores, memory_mb) = (sim.pod_cpu_request(), sim.pod_reserved_mb(0));
        if !sim.nodes.fits_empty(cores, memory_mb) {
            // Name the setting that is short: the node's cores, else its memory.
            let short_of_cores = !sim.nodes.fits_empty(cores, 0.0);
            return Err(SimError::Setting {
                name: if short_of_cores { "--node-cores" } else { "--node-memory-mb" },
                reason: format!("a pod ({cores} cores, {memory_mb} MB) does not fit on an empty node"),
            });
        }
        if sim.single.is_some() {
            // One pod, ready now, never scaled: no autoscaler ticks, no timeline.
            sim.add_pod(0);
            let pod = sim.services[0].pods[0];
            sim.pod_ready(pod);
            return Ok(sim);
        }
        sim.push(0, Ev::Tick);
        sim.push(0, Ev::Timeline);
        Ok(sim)
    }

    // ---- the clock ----

    fn push(&mut self, at: Micros, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, ev)));
    }

    /// Handles every event due before `until` (arrivals at `until` come after them).
    fn run_until(&mut self, until: Micros) {
        while let Some(&Reverse((at, _, ev))) = self.events.peek() {
            if at >= until {
                break;
            }
            self.events.pop();
            self.advance(at);
            self.handle(ev);
        }
        self.advance(until);
    }

    /// After the workload: keeps running until no call is in flight or waiting.
    fn drain_calls(&mut self) {
        while self.in_flight > 0 {
            let Some(Reverse((at, _, ev))) = self.events.pop() else { break };
            self.advance(at);
            self.handle(ev);
        }
    }

    fn advance(&mut self, to: Micros) {
        if to > self.last {
            let dt = (to - self.last) as f64;
            self.pod_us += self.alive_pods as f64 * dt;
            self.node_us += self.nodes.open() as f64 * dt;
            self.reserved_mb_us += self.reserved_mb * dt;
            self.used_mb_us += self.used_mb * dt;
            self.last = to;
        }
        self.now = to.max(self.now);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick => self.tick(),
            Ev::Timeline => {
                self.timeline.push(TimelinePoint {
                    t_s: self.now as f64 / 1e6,
                    pods: self.alive_pods,
                    nodes: self.nodes.open() as u64,
                    reserved_mb: self.reserved_mb,
                    used_mb: self.used_mb,
                });
                if self.now < self.workload.duration() {
                    self.push(self.now + TIMELINE_STEP, Ev::Timeline);
                }
            }
            Ev::PodReady(pod) => self.pod_ready(pod),
            Ev::PodFinish(pod, gen) => {
                if self.pods[pod as usize].finish_gen == gen {
                    self.pods[pod as usize].finish_at = None;
                    self.pod_finish(pod);
                }
            }
            Ev::PodWake(pod, gen) => {
                let p = &mut self.pods[pod as usize];
                if p.wake_gen == gen && p.state != PodState::Gone {
                    p.wake_at = None;
                    if let Gate::Core(admission) = &mut p.gate {
                        admission.poll(duration(self.now));
                    }
                    self.after_admission_input(pod);
                }
            }
            Ev::FrontExpire(call, gen) => {
                let c = &self.calls[call as usize];
                if c.gen == gen && c.state == CallState::Front {
                    self.reject(call, Reason::Timeout);
                }
            }
        }
    }

    // ---- calls ----

    fn arrive(&mut self, arrival: &Arrival) {
        let call = self.new_call(arrival);
        self.in_flight += 1;
        let service = if self.policy.superpod() { 0 } else { arrival.function };
        self.activate(service);
        self.services[service as usize].last_demand = self.now;
        match self.pick_pod(service) {
            Some(pod) => self.offer(pod, call),
            None => {
                let gen = self.calls[call as usize].gen;
                let c = &mut self.calls[call as usize];
                c.state = CallState::Front;
                c.cold = true;
                self.services[service as usize].front.push_back((call, gen));
                self.push(self.now + self.timeout, Ev::FrontExpire(call, gen));
                // Scale from zero: the activator asks for a pod at once.
                if self.live_pods(service) == 0 {
                    self.add_pod(service);
                }
            }
        }
    }

    fn new_call(&mut self, arrival: &Arrival) -> u32 {
        let index = self.arrived;
        self.arrived = self.arrived.wrapping_add(1);
        let call = Call {
            gen: 0,
            index,
            state: CallState::Front,
            function: arrival.function,
            arrival: arrival.at,
            start: 0,
            work: arrival.work + self.instantiate[arrival.function as usize],
            memory_mb: arrival.memory_mb,
            cold: false,
            admitted: None,
        };
        match self.free_calls.pop() {
            Some(index) => {
                let slot = &mut self.calls[index as usize];
                let gen = slot.gen.wrapping_add(1);
                *slot = Call { gen, ..call };
                index
            }
            None => {
                self.calls.push(call);
                (self.calls.len() - 1) as u32
            }
        }
    }

    /// Hands a call to a ready pod's admission.
    fn offer(&mut self, pod: u32, call: u32) {
        let now = self.now;
        let c = &self.calls[call as usize];
        let spec = &self.workload.functions[c.function as usize];
        let deadline = c.arrival + self.timeout;
        let memory_mb = match self.policy {
            Policy::ContainerPerFunction => 1,
            _ => spec.declared_mb.ceil() as u64,
        };
        let learn = self.policy == Policy::SuperpodLearned;
        let function_index = c.function;
        let p = &mut self.pods[pod as usize];
        p.calls += 1;
        let decision = match &mut p.gate {
            Gate::Open => None,
            Gate::Core(admission) => {
                let tenant = if self.policy.superpod() {
                    let owner = self.owners[function_index as usize];
                    *p.tenants.entry(owner).or_insert_with(|| admission.tenant(&spec.owner))
                } else {
                    TenantId::DEFAULT
                };
                let function = learn.then(|| {
                    *p.functions.entry(function_index).or_insert_with(|| admission.function(&spec.name))
                });
                // The call's deadline counts from its arrival at the cluster, not at this pod.
                let queue_timeout = Some(duration(deadline.saturating_sub(now)));
                let request = Request { tenant, function, memory_mb, queue_timeout };
                Some(admission.arrive(duration(now), request, || call))
            }
        };
        match decision {
            None => self.start(pod, call, None),
            Some(AdmissionDecision::Started(admitted)) => self.start(pod, call, Some(admitted)),
            Some(AdmissionDecision::Queued(_)) => {
                self.calls[call as usize].state = CallState::Queued(pod);
                self.after_admission_input(pod);
            }
            Some(AdmissionDecision::Rejected(rejection)) => {
                self.pods[pod as usize].calls -= 1;
                let reason = match rejection.reason() {
                    RefusalReason::TooLarge | RefusalReason::TenantTooLarge => Reason::TooLarge,
                    RefusalReason::QueueTimeout => Reason::Timeout,
                    _ => Reason::QueueFull,
                };
                self.reject(call, reason);
            }
        }
    }

    /// Starts a call the pod admitted, unless its memory would pass the pod's hard budget: then the
    /// runtime refuses the growth and the call fails (503, memory pressure).
    fn start(&mut self, pod: u32, call: u32, admitted: Option<Admitted>) {
        let now = self.now;
        let overhead = self.instance_overhead_mb;
        let c = &mut self.calls[call as usize];
        let memory = c.memory_mb + overhead;
        let p = &mut self.pods[pod as usize];
        if p.used_mb + memory > p.budget_mb + 1e-9 {
            p.calls -= 1;
            if let (Some(admitted), Gate::Core(admission)) = (admitted, &mut p.gate) {
                admission.release(duration(now), admitted, None);
            }
            self.reject(call, Reason::MemoryPressure);
            self.after_admission_input(pod);
            return;
        }
        c.state = CallState::Running(pod);
        c.start = now;
        c.admitted = admitted;
        let cpu = self.workload.functions[c.function as usize].cpu_share;
        p.used_mb += memory;
        self.used_mb += memory;
        p.cpu.start(now, call, c.work, cpu);
        self.observe_memory(pod);
        self.schedule_finish(pod);
    }

    fn pod_finish(&mut self, pod: u32) {
        let now = self.now;
        while let Some(call) = self.pods[pod as usize].cpu.pop_finished(now) {
            let memory = self.calls[call as usize].memory_mb + self.instance_overhead_mb;
            let c = &mut self.calls[call as usize];
            let admitted = c.admitted.take();
            let peak = (c.memory_mb * MB) as u64;
            self.queue_ms.push(((c.start - c.arrival) as f64 / 1000.0) as f32);
            self.latency_ms.push(((now - c.arrival) as f64 / 1000.0) as f32);
            if let Some(outcomes) = &mut self.outcomes {
                outcomes.push(CallOutcome {
                    index: c.index,
                    refused: None,
                    queue: c.start - c.arrival,
                    latency: now - c.arrival,
                });
            }
            self.completed += 1;
            self.free(call);
            let p = &mut self.pods[pod as usize];
            p.calls -= 1;
            p.used_mb -= memory;
            self.used_mb -= memory;
            if let (Some(admitted), Gate::Core(admission)) = (admitted, &mut p.gate) {
                admission.release(duration(now), admitted, Some(peak));
            }
        }
        self.observe_memory(pod);
        self.after_admission_input(pod);
        self.schedule_finish(pod);
        self.remove_if_drained(pod);
    }

    /// Tells the admission core the guests' real memory (the safety net's gate reads it) and,
    /// when policies 3 and 4 have a CPU gate, the cores in use (at most the pod's: what the real
    /// pod's sampler reads, here without its sampling delay).
    fn observe_memory(&mut self, pod: u32) {
        let p = &mut self.pods[pod as usize];
        if let Gate::Core(admission) = &mut p.gate {
            if self.policy.superpod() {
                let guests = (p.used_mb - p.base_mb).max(0.0);
                admission.observe_memory(duration(self.now), (guests * MB) as u64);
                if self.cluster.superpod_cpu_gate.is_some() {
                    admission.observe_cpu(duration(self.now), p.cpu.in_use());
                }
            }
        }
    }

    /// Drains what the admission core decided after an input: started calls run, expired ones
    /// get their 503; then re-arms the pod's wake-up.
    fn after_admission_input(&mut self, pod: u32) {
        loop {
            let p = &mut self.pods[pod as usize];
            let Gate::Core(admission) = &mut p.gate else { return };
            let Some(event) = admission.next_event() else { break };
            match event {
                AdmissionEvent::Started { admitted, payload } => self.start(pod, payload, Some(admitted)),
                AdmissionEvent::Expired { payload, .. } => {
                    self.pods[pod as usize].calls -= 1;
                    self.reject(payload, Reason::Timeout);
                }
            }
        }
        let p = &mut self.pods[pod as usize];
        let Gate::Core(admission) = &p.gate else { return };
        let wake = admission.next_wakeup().map(micros);
        if wake != p.wake_at {
            p.wake_at = wake;
            p.wake_gen = p.wake_gen.wrapping_add(1);
            if let Some(at) = wake {
                let gen = p.wake_gen;
                self.push(at.max(self.now), Ev::PodWake(pod, gen));
            }
        }
        self.remove_if_drained(pod);
    }

    fn schedule_finish(&mut self, pod: u32) {
        let p = &mut self.pods[pod as usize];
        let next = p.cpu.next_finish();
        if next != p.finish_at {
            p.finish_at = next;
            p.finish_gen = p.finish_gen.wrapping_add(1);
            if let Some(at) = next {
                let gen = p.finish_gen;
                self.push(at.max(self.now), Ev::PodFinish(pod, gen));
            }
        }
    }

    fn reject(&mut self, call: u32, reason: Reason) {
        if let Some(outcomes) = &mut self.outcomes {
            let c = &self.calls[call as usize];
            let waited = self.now - c.arrival;
            outcomes.push(CallOutcome {
                index: c.index,
                refused: Some(reason),
                queue: waited,
                latency: waited,
            });
        }
        match reason {
            Reason::QueueFull => self.rejected.queue_full += 1,
            Reason::TooLarge => self.rejected.too_large += 1,
            Reason::Timeout => self.rejected.timeout += 1,
            Reason::MemoryPressure => self.rejected.memory_pressure += 1,
        }
        self.free(call);
    }

    fn free(&mut self, call: u32) {
        let c = &mut self.calls[call as usize];
        if c.cold {
            self.cold_starts += 1;
        }
        c.state = CallState::Free;
        c.admitted = None;
        self.free_calls.push(call);
        self.in_flight -= 1;
    }

    // ---- routing ----

    /// The ready pod with the least load, relative to what it admits.
    fn pick_pod(&self, service: u32) -> Option<u32> {
        let mut best: Option<(f64, u32)> = None;
        for &pod in &self.services[service as usize].pods {
            let p = &self.pods[pod as usize];
            if p.state != PodState::Ready {
                continue;
            }
            let load = match &p.gate {
                Gate::Open => f64::from(p.calls),
                Gate::Core(admission) => {
                    let s = admission.snapshot();
                    (s.in_flight_units + s.queued_units) as f64 / s.capacity_units as f64
                }
            };
            if best.is_none_or(|(l, _)| load < l) {
                best = Some((load, pod));
            }
        }
        best.map(|(_, pod)| pod)
    }

    // ---- pods ----

    fn pod_cpu_request(&self) -> f64 {
        if self.policy.superpod() {
            self.cluster.superpod_cpu_request
        } else {
            self.cluster.container_cpu_request
        }
    }

    fn pod_reserved_mb(&self, service: u32) -> f64 {
        if self.policy.superpod() {
            self.cluster.superpod_memory_mb
        } else {
            let declared = self.workload.functions[service as usize].declared_mb;
            self.cluster.container_overhead_mb + declared * self.cluster.container_concurrency as f64
        }
    }

    fn pod_base_mb(&self) -> f64 {
        if self.single.is_some() {
            // The budget of a single pod is the guests' (`--memory-budget`), nothing else in it.
            0.0
        } else if self.policy.superpod() {
            self.cluster.superpod_base_mb + SUPERPOD_MB_PER_FUNCTION * self.workload.functions.len() as f64
        } else {
            self.cluster.container_overhead_mb
        }
    }

    fn admission_config(&self) -> Option<BreakerConfig> {
        if let Some(single) = &self.single {
            return single.admission.clone();
        }
        let cluster = self.cluster;
        match self.policy {
            Policy::SuperpodConcurrency => None,
            Policy::ContainerPerFunction => {
                // Knative's queue-proxy breaker: containerConcurrency slots, 10x as many queued.
                let slots = cluster.container_concurrency.max(1);
                Some(BreakerConfig {
                    capacity_units: slots,
                    queue_depth_units: slots * 11,
                    tenant_limits: TenantLimits::UNLIMITED,
                    ..BreakerConfig::default()
                })
            }
            Policy::SuperpodMemory | Policy::SuperpodLearned => {
                let budget = (cluster.superpod_memory_mb - self.pod_base_mb()).max(1.0);
                let mode = if self.policy == Policy::SuperpodLearned {
                    WeightMode::Learned
                } else {
                    WeightMode::Declared
                };
                Some(BreakerConfig {
                    capacity_units: cluster.superpod_capacity_mb,
                    queue_depth_units: cluster.superpod_queue_depth_mb,
                    cpu_threshold: cluster.superpod_cpu_gate,
                    memory_high_water_bytes: Some(wasmpod_admission::high_water_mark(
                        budget as u64,
                        wasmpod_admission::DEFAULT_MEMORY_HIGH_WATER_PERCENT,
                    )),
                    learning: Learning { mode, ..Learning::default() },
                    ..BreakerConfig::default()
                })
            }
        }
    }

    /// Pods of a service that count toward its scale (not draining, not gone).
    fn live_pods(&self, service: u32) -> usize {
        self.services[service as usize]
            .pods
            .iter()
            .filter(|&&p| {
                matches!(
                    self.pods[p as usize].state,
                    PodState::Pending | PodState::Starting | PodState::Ready
                )
            })
            .count()
    }

    fn add_pod(&mut self, service: u32) {
        let gate = match self.admission_config() {
            None => Gate::Open,
            // Validated in `Sim::new`.
            Some(config) => match Admission::new(config) {
                Ok(admission) => Gate::Core(Box::new(admission)),
                Err(_) => Gate::Open,
            },
        };
        let cores =
            if self.policy.superpod() { self.cluster.superpod_cpu } else { self.cluster.container_cpu };
        let reserved_mb = self.pod_reserved_mb(service);
        let pod = Pod {
            service,
            state: PodState::Pending,
            node: None,
            gate,
            cpu: CpuShare::new(cores),
            calls: 0,
            used_mb: 0.0,
            base_mb: self.pod_base_mb(),
            reserved_mb,
            budget_mb: reserved_mb,
            cpu_request: self.pod_cpu_request(),
            finish_gen: 0,
            finish_at: None,
            wake_gen: 0,
            wake_at: None,
            tenants: HashMap::new(),
            functions: HashMap::new(),
        };
        let id = match self.free_pods.pop() {
            Some(id) => {
                self.pods[id as usize] = pod;
                id
            }
            None => {
                self.pods.push(pod);
                (self.pods.len() - 1) as u32
            }
        };
        self.services[service as usize].pods.push(id);
        self.pending_pods.push_back(id);
        self.place_pending();
    }

    /// Places pending pods, oldest first, while nodes have room.
    fn place_pending(&mut self) {
        while let Some(&pod) = self.pending_pods.front() {
            let p = &self.pods[pod as usize];
            if p.state != PodState::Pending {
                self.pending_pods.pop_front();
                continue;
            }
            let Some(node) = self.nodes.place(p.cpu_request, p.reserved_mb) else { break };
            self.pending_pods.pop_front();
            let p = &mut self.pods[pod as usize];
            p.node = Some(node);
            p.state = PodState::Starting;
            p.used_mb = p.base_mb;
            self.used_mb += p.base_mb;
            self.reserved_mb += p.reserved_mb;
            self.alive_pods += 1;
            self.pod_starts += 1;
            self.peak_pods = self.peak_pods.max(self.alive_pods);
            self.peak_nodes = self.peak_nodes.max(self.nodes.open() as u64);
            self.push(self.now + self.pod_start, Ev::PodReady(pod));
        }
    }

    fn pod_ready(&mut self, pod: u32) {
        let p = &mut self.pods[pod as usize];
        if p.state != PodState::Starting {
            return;
        }
        p.state = PodState::Ready;
        let service = p.service;
        // The buffer in front hands its calls over, oldest first.
        while let Some((call, gen)) = self.services[service as usize].front.pop_front() {
            let c = &self.calls[call as usize];
            if c.gen != gen || c.state != CallState::Front {
                continue;
            }
            match self.pick_pod(service) {
                Some(target) => self.offer(target, call),
                None => {
                    self.services[service as usize].front.push_front((call, gen));
                    break;
                }
            }
        }
    }

    fn remove_if_drained(&mut self, pod: u32) {
        let p = &self.pods[pod as usize];
        if p.state == PodState::Draining && p.calls == 0 {
            self.remove_pod(pod);
        }
    }

    fn remove_pod(&mut self, pod: u32) {
        let p = &mut self.pods[pod as usize];
        let was = p.state;
        p.state = PodState::Gone;
        p.gate = Gate::Open;
        p.tenants = HashMap::new();
        p.functions = HashMap::new();
        let service = p.service;
        if let Some(node) = p.node.take() {
            self.nodes.remove(node, p.cpu_request, p.reserved_mb);
        }
        if was != PodState::Pending {
            self.alive_pods -= 1;
            self.reserved_mb -= p.reserved_mb;
            self.used_mb -= p.used_mb;
            p.used_mb = 0.0;
        }
        self.services[service as usize].pods.retain(|&x| x != pod);
        self.free_pods.push(pod);
        self.place_pending();
    }

    /// Scales a service to `desired` pods: adds pods, or removes pending and starting ones first
    /// and then drains the least-loaded ready ones (they finish what they hold, then go).
    fn scale(&mut self, service: u32, desired: usize) {
        let live = self.live_pods(service);
        if desired > live {
            for _ in live..desired {
                self.add_pod(service);
            }
            return;
        }
        let mut excess = live - desired;
        for wanted in [PodState::Pending, PodState::Starting] {
            let victims: Vec<u32> = self.services[service as usize]
                .pods
                .iter()
                .copied()
                .filter(|&p| self.pods[p as usize].state == wanted)
                .take(excess)
                .collect();
            for pod in victims {
                self.remove_pod(pod);
                excess -= 1;
            }
        }
        while excess > 0 {
            let victim = self.services[service as usize]
                .pods
                .iter()
                .copied()
                .filter(|&p| self.pods[p as usize].state == PodState::Ready)
                .min_by_key(|&p| self.pods[p as usize].calls);
            let Some(pod) = victim else { break };
            self.pods[pod as usize].state = PodState::Draining;
            self.remove_if_drained(pod);
            excess -= 1;
        }
    }

    // ---- autoscaling ----

    fn activate(&mut self, service: u32) {
        let s = &mut self.services[service as usize];
        if !s.active {
            s.active = true;
            self.active.push(service);
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        let decide = (now / SECOND).is_multiple_of(TICK_INTERVAL.as_secs());
        let stable = self.prototype.settings().stable_window.as_micros() as Micros;
        let mut still_active = Vec::with_capacity(self.active.len());
        let active = std::mem::take(&mut self.active);
        for service in active {
            let (sample, cores) = self.sample(service);
            let s = &mut self.services[service as usize];
            if sample.concurrency > 0.0 {
                s.last_demand = now;
            }
            // A service idle at zero pods for longer than the stable window has nothing left to
            // decide: drop its autoscaler until its next call.
            if s.pods.is_empty()
                && s.front.is_empty()
                && now > s.last_demand + stable + TICK_INTERVAL.as_micros() as Micros
            {
                s.active = false;
                s.autoscaler = None;
                continue;
            }
            still_active.push(service);
            let autoscaler = s.autoscaler.get_or_insert_with(|| self.prototype.clone());
            autoscaler.record(duration(now), sample);
            autoscaler.record_cpu(duration(now), cores);
            if decide {
                let ready = self.ready_pods(service);
                if let Some(decision) = self.services[service as usize]
                    .autoscaler
                    .as_mut()
                    .and_then(|a| a.decide(duration(now), ready as u32))
                {
                    self.scale(service, decision.desired as usize);
                }
            }
        }
        self.active = still_active;
        if now < self.workload.duration() || self.in_flight > 0 {
            self.push(now + SECOND, Ev::Tick);
        }
    }

    fn ready_pods(&self, service: u32) -> usize {
        self.services[service as usize]
            .pods
            .iter()
            .filter(|&&p| self.pods[p as usize].state == PodState::Ready)
            .count()
    }

    /// What a service's pods hold now: the autoscaler's input, and the cores its pods use (each
    /// pod's at most its limit, as its `wasmpod_cpu_utilization_cores` reads; the CPU rule, when
    /// on, scales on them). Policies 1 and 2 scale on calls; 3 and 4 on the admission weight of
    /// running plus queued calls (the learned weight in policy 4, as the real pod's
    /// `wasmpod_inflight_memory_mb` reports it). Calls held in front of the service count as calls
    /// only (Knative's activator reports no memory).
    fn sample(&self, service: u32) -> (Sample, f64) {
        let s = &self.services[service as usize];
        let mut calls = s.front.len() as f64;
        let mut units = 0.0;
        let mut cores = 0.0;
        for &pod in &s.pods {
            let p = &self.pods[pod as usize];
            calls += f64::from(p.calls);
            cores += p.cpu.in_use();
            if let Gate::Core(admission) = &p.gate {
                let snapshot = admission.snapshot();
                units += (snapshot.in_flight_units + snapshot.queued_units) as f64;
            }
        }
        let sample = match self.policy {
            Policy::ContainerPerFunction | Policy::SuperpodConcurrency => {
                Sample { memory_mb: calls, concurrency: calls }
            }
            Policy::SuperpodMemory | Policy::SuperpodLearned => {
                Sample { memory_mb: units, concurrency: calls }
            }
        };
        (sample, cores)
    }

    // ---- the report ----

    fn report(mut self) -> PolicyReport {
        let (queue_ms, _) = summarize(&mut self.queue_ms);
        let (latency_ms, latency_cdf) = summarize(&mut self.latency_ms);
        let reserved_gb_s = self.reserved_mb_us / 1e6 / 1024.0;
        let used_gb_s = self.used_mb_us / 1e6 / 1024.0;
        PolicyReport {
            policy: self.policy,
            label: label(self.policy, self.cluster),
            calls: self.workload.total_calls(),
            completed: self.completed,
            pod_seconds: self.pod_us / 1e6,
            node_seconds: self.node_us / 1e6,
            reserved_gb_s,
            used_gb_s,
            reserved_over_used: if used_gb_s > 0.0 { reserved_gb_s / used_gb_s } else { 0.0 },
            peak_pods: self.peak_pods,
            peak_nodes: self.peak_nodes,
            pod_starts: self.pod_starts,
            cold_starts: self.cold_starts,
            queue_ms,
            latency_ms,
            rejected: self.rejected,
            timeline: self.timeline,
            latency_cdf,
        }
    }
}

/// Why a call got a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Refused at once: the queue (the pod's or its tenant's) was full.
    QueueFull,
    /// Refused at once: it declares more than the pod (or its tenant) may ever run.
    TooLarge,
    /// Waited past its deadline.
    Timeout,
    /// Its memory would have passed the pod's hard budget.
    MemoryPressure,
}

/// The autoscaler settings of a policy: Knative's KPA on calls for policies 1 and 2 (the core is
/// metric-agnostic: a "MB" there is a call), Wasabi's memory settings for 3 and 4.
fn autoscaler_settings(policy: Policy, cluster: &ClusterConfig) -> Settings {
    match policy {
        Policy::ContainerPerFunction => Settings::with_capacity(cluster.container_concurrency.max(1) as f64),
        Policy::SuperpodConcurrency => Settings::with_capacity(cluster.concurrency_target),
        Policy::SuperpodMemory | Policy::SuperpodLearned => Settings {
            target_mb: Some(cluster.superpod_target_mb),
            target_burst_capacity_mb: cluster.superpod_burst_mb,
            cpu_limit_cores: cluster.superpod_cpu_scaling.then_some(cluster.superpod_cpu),
            cpu_target_utilization: DEFAULT_CPU_TARGET_UTILIZATION,
            ..Settings::with_capacity(cluster.superpod_capacity_mb as f64)
        },
    }
}

/// The policy's label in the report, naming the scaling rule and the CPU gate that ran.
fn label(policy: Policy, cluster: &ClusterConfig) -> String {
    let mut label = policy.label().to_owned();
    if matches!(policy, Policy::SuperpodMemory | Policy::SuperpodLearned) {
        label.push_str(if cluster.superpod_cpu_scaling {
            "; scaled on memory + CPU"
        } else {
            "; scaled on memory"
        });
        if let Some(gate) = cluster.superpod_cpu_gate {
            label.push_str(&format!("; CPU gate {gate} cores"));
        }
    }
    label
}

fn duration(at: Micros) -> Duration {
    Duration::from_micros(at)
}

fn micros(at: Duration) -> Micros {
    at.as_micros() as Micros
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, SyntheticConfig};

    fn small_workload() -> Workload {
        generate(&SyntheticConfig { functions: 300, minutes: 10, ..SyntheticConfig::default() }).unwrap()
    }

    #[test]
    fn every_call_is_answered_once_under_every_policy() {
        let workload = small_workload();
        let calls = workload.total_calls();
        assert!(calls > 1000, "{calls}");
        for policy in Policy::ALL {
            let r = simulate(
                &workload,
                &Profiles::default(),
                &ClusterConfig::default(),
                policy,
                7,
                &mut |_, _| {},
            )
            .unwrap();
            assert_eq!(r.completed + r.rejected.total(), calls, "{policy:?}: {r:?}");
            assert!(
                r.pod_seconds > 0.0 && r.used_gb_s > 0.0 && r.reserved_gb_s >= r.used_gb_s * 0.5,
                "{policy:?}"
            );
            assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.p99 >= r.latency_ms.p50, "{policy:?}");
            assert!(r.cold_starts > 0, "{policy:?}: the first call of each service waits for a pod");
        }
    }

    /// One function, `calls` calls in minute 0, then `idle` quiet minutes.
    fn one_function(calls: u32, memory_mb: f64, declared_mb: f64, work_ms: f64, idle: usize) -> Workload {
        let mut minutes = vec![vec![(0, calls)]];
        minutes.extend(std::iter::repeat_n(Vec::new(), idle));
        Workload {
            functions: vec![crate::workload::FunctionSpec {
                name: "f".into(),
                app: "a".into(),
                owner: "o".into(),
                trigger: crate::workload::Trigger::Timer,
                duration_ms: crate::quantiles::Quantiles::constant(work_ms),
                memory_mb: crate::quantiles::Quantiles::constant(memory_mb),
                declared_mb,
                cpu_share: 0.01,
                instantiate_ms: None,
            }],
            minutes,
        }
    }

    fn run(workload: &Workload, policy: Policy) -> PolicyReport {
        simulate(workload, &Profiles::default(), &ClusterConfig::default(), policy, 1, &mut |_, _| {})
            .unwrap()
    }

    #[test]
    fn without_admission_a_crowd_of_large_calls_hits_the_memory_budget_and_with_it_waits() {
        // Twelve 3000 MB calls at once on 9100 Mi superpods: only three fit in real memory.
        let workload = one_function(12, 3000.0, 3000.0, 1000.0, 3);
        let stock = run(&workload, Policy::SuperpodConcurrency);
        assert_eq!(stock.rejected.memory_pressure, 9, "{:?}", stock.rejected);
        let admitted = run(&workload, Policy::SuperpodMemory);
        // With admission, no call fails while running: the tenant's caps (8000 MB in flight, 4000
        // queued, the defaults) run two and queue one, and refuse the rest at once, before they
        // hold any memory.
        assert_eq!(admitted.rejected.memory_pressure, 0, "{:?}", admitted.rejected);
        assert_eq!(admitted.completed, 3, "{:?}", admitted.rejected);
        assert_eq!(admitted.rejected.queue_full, 9);
    }

    #[test]
    fn a_burst_on_a_cold_superpod_waits_in_wasabis_queue_instead_of_failing_fast() {
        // 60 timer calls declaring 600 MB (using 200) from 30 tenants at once: one pod admits 21
        // (13000 MB), and the first pod gets them all. Wasabi's queue has no bound of its own, so
        // the other 39 wait for admission, in two more rounds of 10 s, within the 30 s deadline.
        // Two calls per tenant keep the per-tenant caps out of the way.
        let mut workload = one_function(2, 200.0, 600.0, 10_000.0, 3);
        let f = workload.functions[0].clone();
        workload.functions = (0..30)
            .map(|i| crate::workload::FunctionSpec {
                name: format!("f{i}"),
                owner: format!("o{i}"),
                ..f.clone()
            })
            .collect();
        workload.minutes[0] = (0..30).map(|i| (i, 2)).collect();
        let r = run(&workload, Policy::SuperpodMemory);
        assert_eq!(r.rejected.total(), 0, "{:?}", r.rejected);
        assert_eq!(r.completed, 60);
        assert!(r.queue_ms.p99 > 15_000.0, "{:?}", r.queue_ms);
        // A queue depth of one pod's capacity (it counts the running calls too: no room to wait)
        // refuses the other 39 at once.
        let short = ClusterConfig { superpod_queue_depth_mb: 13_000, ..ClusterConfig::default() };
        let r = simulate(&workload, &Profiles::default(), &short, Policy::SuperpodMemory, 1, &mut |_, _| {})
            .unwrap();
        assert_eq!(r.rejected.queue_full, 39, "{:?}", r.rejected);
    }

    /// `functions` compute-bound functions (a core each, 500 ms, 10 MB declared and used), each
    /// of its own tenant, each called over HTTP `per_minute` times a minute (spread over the minute)
    /// for `minutes` minutes.
    fn cpu_bound(functions: u32, per_minute: u32, minutes: usize) -> Workload {
        let mut workload = one_function(0, 10.0, 10.0, 500.0, 0);
        let f = workload.functions[0].clone();
        workload.functions = (0..functions)
            .map(|i| crate::workload::FunctionSpec {
                name: format!("f{i}"),
                owner: format!("o{i}"),
                trigger: crate::workload::Trigger::Http,
                cpu_share: 1.0,
                ..f.clone()
            })
            .collect();
        workload.minutes = vec![(0..functions).map(|i| (i, per_minute)).collect(); minutes];
        workload
    }

    #[test]
    fn the_cpu_rule_scales_out_a_cpu_saturated_superpod_service_that_memory_alone_keeps_saturated() {
        // 20 functions x 120 calls a minute x 0.5 s of a core = 20 cores wanted, 400 MB declared in
        // flight when every call runs at full speed: the memory rule (9100 MB a pod) asks for one
        // 4.2-core pod, whose calls then slow down and pile up until their declared memory reaches
        // the target; the CPU rule (2.94 cores a pod) asks for about 7.
        let workload = cpu_bound(20, 120, 8);
        let run = |cpu_scaling: bool| {
            let cluster = ClusterConfig { superpod_cpu_scaling: cpu_scaling, ..ClusterConfig::default() };
            simulate(&workload, &Profiles::default(), &cluster, Policy::SuperpodMemory, 1, &mut |_, _| {})
                .unwrap()
        };
        let memory = run(false);
        let cpu = run(true);
        assert!(memory.label.ends_with("scaled on memory") && cpu.label.ends_with("scaled on memory + CPU"));
        eprintln!("memory alone: {memory:?}\nmemory + CPU: {cpu:?}");
        // The pods the CPU rule added run the calls near their own speed.
        assert!(cpu.peak_pods >= 6, "memory + CPU: {} pods", cpu.peak_pods);
        assert!(cpu.latency_ms.p50 < 1000.0, "memory + CPU: p50 {} ms", cpu.latency_ms.p50);
        // Memory alone keeps fewer pods, each CPU-saturated: calls take many times their 500 ms.
        assert!(memory.peak_pods < cpu.peak_pods, "{} vs {}", memory.peak_pods, cpu.peak_pods);
        assert!(
            memory.latency_ms.p50 > 5.0 * cpu.latency_ms.p50,
            "{:?} vs {:?}",
            memory.latency_ms,
            cpu.latency_ms
        );
    }

    #[test]
    fn an_idle_service_scales_to_zero_after_the_stable_window_and_grace() {
        let workload = one_function(5, 100.0, 100.0, 500.0, 4);
        for policy in [Policy::ContainerPerFunction, Policy::SuperpodMemory] {
            let r = run(&workload, policy);
            assert_eq!(r.completed, 5);
            let pods_at = |s: f64| r.timeline.iter().find(|t| t.t_s >= s).map(|t| t.pods).unwrap();
            assert!(pods_at(30.0) >= 1, "{policy:?}");
            // The last call ends within seconds; 60 s of stable window, then 30 s of grace.
            assert_eq!(pods_at(150.0), 0, "{policy:?}: {:?}", r.timeline);
            assert_eq!(r.cold_starts, 5, "{policy:?}: all five arrive before the first pod is ready");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_report() {
        let workload = small_workload();
        let run = || {
            simulate(
                &workload,
                &Profiles::default(),
                &ClusterConfig::default(),
                Policy::SuperpodMemory,
                3,
                &mut |_, _| {},
            )
            .unwrap()
        };
        assert_eq!(run(), run());
    }
}
