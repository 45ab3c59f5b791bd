//! `GET /metrics`: what a platform team graphs and what the autoscaler scales on.
//!
//! Pod-level values (memory in flight and queued, capacity, CPU) are read from their sources at
//! scrape time; per-function series are created when functions load, so the request path only
//! bumps atomics and never allocates a label set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use wasmpod_admission::{Snapshot, TenantSnapshot};
use wasmpod_runtime::PoolIdle;

use crate::identity::ServiceIdentity;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    function: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    function: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantStatusLabels {
    tenant: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantReasonLabels {
    tenant: String,
    reason: &'static str,
}

/// Why admission said no, as a metric label.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    QueueFull,
    TooLarge,
    QueueTimeout,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::TooLarge => "too_large",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }
}

/// Why a request ran out of time before its guest could answer, as a metric label (guest and
/// queue timeouts are counted where they happen).
#[derive(Debug, Clone, Copy)]
pub enum ClientTimeout {
    /// The request head did not arrive within `--header-read-timeout` (slowloris).
    Header,
    /// A WAGI request's body did not arrive within `--body-read-timeout`.
    Body,
}

/// The connections open now, held to `--max-connections`: a gauge and a refusal counter in
/// `/metrics`.
#[derive(Debug, Default)]
pub struct Connections {
    open: Gauge,
    refused: Counter,
}

impl Connections {
    /// Counts a new connection in, unless `max` are open already (then it counts a refusal).
    pub fn open(&self, max: usize) -> Option<OpenConnection> {
        let before = self.open.inc();
        if usize::try_from(before).unwrap_or(usize::MAX) >= max {
            self.open.dec();
            self.refused.inc();
            return None;
        }
        Some(OpenConnection { open: self.open.clone() })
    }
}

/// One open connection; counted out when dropped.
#[derive(Debug)]
pub struct OpenConnection {
    open: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// One function's series, resolved once at load.
pub struct FunctionMetrics {
    /// Responses by status class: index 0 for 1xx ... 4 for 5xx.
    responses: [Counter; 5],
    duration: Histogram,
    instantiate: Histogram,
    peak_memory: Histogram,
}

impl FunctionMetrics {
    pub fn observe(&self, status: u16, duration: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
        self.duration.observe(duration.as_secs_f64());
    }

    /// Requests answered, whatever the status.
    pub fn requests(&self) -> u64 {
        self.responses.iter().map(Counter::get).sum()
    }

    pub fn observe_instance(&self, instantiate: Duration, peak_memory_bytes: u64) {
        self.instantiate.observe(instantiate.as_secs_f64());
        self.peak_memory.observe(peak_memory_bytes as f64);
    }
}

/// One tenant's series, resolved once when the tenant is first seen. A tenant's series are never
/// removed: they are what the tenant is billed on, and a counter must not vanish or restart.
pub struct TenantMetrics {
    /// Responses by status class: index 0 for 1xx ... 4 for 5xx.
    responses: [Counter; 5],
    cpu_seconds: Counter<f64, AtomicU64>,
    memory_mb_seconds: Counter<f64, AtomicU64>,
    peak_memory: Gauge,
}

impl TenantMetrics {
    /// A response to a request of this tenant, whatever answered it (guest, refusal, error).
    pub fn observe(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
    }

    /// CPU time a request of this tenant used.
    pub fn add_cpu(&self, cpu: Duration) {
        self.cpu_seconds.inc_by(cpu.as_secs_f64());
    }

    /// A request held a memory grant of `memory_mb` for `held`.
    pub fn add_memory(&self, memory_mb: u64, held: Duration) {
        self.memory_mb_seconds.inc_by(memory_mb as f64 * held.as_secs_f64());
    }

    /// An instance of this tenant reached `bytes` of memory at its peak.
    pub fn observe_peak(&self, bytes: u64) {
        self.peak_memory.inner().fetch_max(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// The families with a `tenant` label.
struct TenantFamilies {
    responses: Family<TenantStatusLabels, Counter>,
    cpu_seconds: Family<TenantLabel, Counter<f64, AtomicU64>>,
    memory_mb_seconds: Family<TenantLabel, Counter<f64, AtomicU64>>,
    peak_memory: Family<TenantLabel, Gauge>,
    inflight_memory: Family<TenantLabel, Gauge>,
    queued_memory: Family<TenantLabel, Gauge>,
    rejected: Family<TenantReasonLabels, Counter>,
}

impl TenantFamilies {
    fn register(registry: &mut Registry) -> TenantFamilies {
        let families = TenantFamilies {
            responses: Family::default(),
            cpu_seconds: Family::default(),
            memory_mb_seconds: Family::default(),
            peak_memory: Family::default(),
            inflight_memory: Family::default(),
            queued_memory: Family::default(),
            rejected: Family::default(),
        };
        registry.register(
            "tenant_responses",
            "Responses to a tenant's requests by status class (refusals included)",
            families.responses.clone(),
        );
        registry.register(
            "tenant_cpu_seconds",
            "CPU time a tenant's guests used, in seconds (billing)",
            families.cpu_seconds.clone(),
        );
        registry.register(
            "tenant_memory_mb_seconds",
            "Memory grant (MB) times the seconds a tenant's requests held it (billing)",
            families.memory_mb_seconds.clone(),
        );
        registry.register(
            "tenant_memory_peak_bytes",
            "The most memory any one instance of a tenant has used",
            families.peak_memory.clone(),
        );
        registry.register(
            "tenant_inflight_memory_mb",
            "Declared memory (MB) of a tenant's requests running",
            families.inflight_memory.clone(),
        );
        registry.register(
            "tenant_queued_memory_mb",
            "Declared memory (MB) of a tenant's requests waiting for admission",
            families.queued_memory.clone(),
        );
        registry.register(
            "tenant_rejected",
            "A tenant's requests refused by admission, by reason",
            families.rejected.clone(),
        );
        families
    }

    fn create(&self, name: &str) -> TenantMetrics {
        let tenant = TenantLabel { tenant: name.to_owned() };
        let class = |status| {
            self.responses.get_or_create_owned(&TenantStatusLabels { tenant: name.to_owned(), status })
        };
        TenantMetrics {
            responses: STATUS_CLASSES.map(class),
            cpu_seconds: self.cpu_seconds.get_or_create_owned(&tenant),
            memory_mb_seconds: self.memory_mb_seconds.get_or_create_owned(&tenant),
            peak_memory: self.peak_memory.get_or_create_owned(&tenant),
        }
    }

    /// Brings the admission figures of every tenant up to date (at scrape time).
    fn set_admission(&self, tenants: &[TenantSnapshot]) {
        for snapshot in tenants {
            let tenant = TenantLabel { tenant: snapshot.name.to_string() };
            self.inflight_memory.get_or_create(&tenant).set(snapshot.in_flight_units as i64);
            self.queued_memory.get_or_create(&tenant).set(snapshot.queued_units as i64);
            for (reason, count) in snapshot.refusals.iter() {
                let labels = TenantReasonLabels { tenant: snapshot.name.to_string(), reason: reason.label() };
                // Admission counts; the counter here catches up to it.
                let counter = self.rejected.get_or_create(&labels);
                counter.inc_by(count.saturating_sub(counter.get()));
            }
        }
    }
}

impl FunctionFamilies {
    fn create(&self, name: &str) -> FunctionMetrics {
        let function = FunctionLabel { function: name.to_owned() };
        let class =
            |status| self.responses.get_or_create_owned(&StatusLabels { function: name.to_owned(), status });
        FunctionMetrics {
            responses: STATUS_CLASSES.map(class),
            duration: self.duration.get_or_create_owned(&function),
            instantiate: self.instantiate.get_or_create_owned(&function),
            peak_memory: self.peak_memory.get_or_create_owned(&function),
        }
    }

    fn remove(&self, name: &str) {
        let function = FunctionLabel { function: name.to_owned() };
        for status in STATUS_CLASSES {
            self.responses.remove(&StatusLabels { function: name.to_owned(), status });
        }
        self.duration.remove(&function);
        self.instantiate.remove(&function);
        self.peak_memory.remove(&function);
    }
}

/// Every series wasmpod exports.
pub struct Metrics {
    registry: Registry,
    inflight_memory: Gauge,
    queued_memory: Gauge,
    capacity_memory: Gauge,
    queue_depth_memory: Gauge,
    inflight_requests: Gauge,
    queued_requests: Gauge,
    cpu: Gauge<f64, AtomicU64>,
    instances: Gauge,
    pool_warm_slots: Gauge,
    pool_idle_resident: Gauge,
    admitted: Counter,
    rejected: Family<ReasonLabel, Counter>,
    timeouts: Family<StageLabel, Counter>,
    errors: Family<KindLabels, Counter>,
    outbound_denied: Family<FunctionLabel, Counter>,
    guest_memory: Gauge,
    memory_budget: Gauge,
    memory_pressure: Counter,
    admission_weight: Family<FunctionLabel, Gauge>,
    connections: Connections,
    cancelled: Counter,
    /// Serialises scrapes while they bring counters kept by the runtime up to date.
    scrape: Mutex<()>,
    /// Each loaded function's series, replaced whole when the functions change; a request holds
    /// its function's `Arc` (a function removed meanwhile counts into series no longer exported).
    functions: ArcSwap<HashMap<Arc<str>, Arc<FunctionMetrics>>>,
    series: FunctionFamilies,
    function_states: Family<StateLabel, Gauge>,
    loads: Family<ResultLabel, Counter>,
    tenant_series: TenantFamilies,
    /// Each tenant's series, created the first time the tenant is seen and never removed.
    tenants: Mutex<HashMap<Arc<str>, Arc<TenantMetrics>>>,
}

/// The families with a `function` label, to create and remove a function's series.
struct FunctionFamilies {
    responses: Family<StatusLabels, Counter>,
    duration: Family<FunctionLabel, Histogram>,
    instantiate: Family<FunctionLabel, Histogram>,
    peak_memory: Family<FunctionLabel, Histogram>,
}

/// The `kind`s of `wasmpod_guest_errors_total`, to remove a gone function's series.
const ERROR_KINDS: &[&str] = &[
    "timeout",
    "memory_limit",
    "memory_pressure",
    "exit",
    "trap",
    "instantiate",
    "pool_exhausted",
    "bad_output",
    "unavailable",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

impl Metrics {
    /// Registers every series, and one set per function name; every series carries the pod's
    /// Knative identity as constant labels.
    pub fn new(identity: &ServiceIdentity) -> Metrics {
        let mut registry = Registry::with_prefix_and_labels("wasmpod", identity.metric_labels().into_iter());
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let inflight_memory =
            gauge(&mut registry, "inflight_memory_mb", "Declared memory (MB) of requests running");
        let queued_memory = gauge(
            &mut registry,
            "queued_memory_mb",
            "Declared memory (MB) of requests waiting for admission",
        );
        let capacity_memory = gauge(
            &mut registry,
            "capacity_memory_mb",
            "Memory (MB) the pod admits in flight (concurrent-resource-request)",
        );
        let queue_depth_memory = gauge(
            &mut registry,
            "queue_depth_memory_mb",
            "Memory (MB) of running plus queued requests beyond which requests are refused",
        );
        let inflight_requests = gauge(&mut registry, "inflight_requests", "Requests running");
        let queued_requests = gauge(&mut registry, "queued_requests", "Requests waiting for admission");
        let instances =
            gauge(&mut registry, "instances_in_use", "Wasm instances alive (instance pool slots in use)");
        let pool_warm_slots = gauge(
            &mut registry,
            "pool_warm_slots",
            "Idle instance pool slots kept warm for their module's next request (at most --pool-warm-slots, or the in-use peak)",
        );
        let pool_idle_resident = gauge(
            &mut registry,
            "pool_idle_resident_bytes",
            "Memory the idle pool slots keep resident (reset in place) for their next request",
        );
        let cpu = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "cpu_utilization_cores",
            "CPU the pod uses, in cores, averaged over the last 250 ms",
            cpu.clone(),
        );
        let admitted = Counter::default();
        registry.register("admitted", "Requests admitted to run", admitted.clone());
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register("rejected", "Requests refused by admission, by reason", rejected.clone());
        let timeouts = Family::<StageLabel, Counter>::default();
        registry.register(
            "timeouts",
            "Requests that ran out of time, waiting in the queue or in the guest",
            timeouts.clone(),
        );
        let errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "guest_errors",
            "Requests whose guest failed, by function and kind (trap, timeout, memory_limit, exit, ...)",
            errors.clone(),
        );

        let outbound_denied = Family::<FunctionLabel, Counter>::default();
        registry.register(
            "outbound_denied",
            "Outbound HTTP requests of components refused by allowed_hosts, by function",
            outbound_denied.clone(),
        );

        let guest_memory = gauge(
            &mut registry,
            "guest_memory_bytes",
            "Real memory (linear memories and tables) the running instances hold",
        );
        let memory_budget = gauge(
            &mut registry,
            "memory_budget_bytes",
            "The pod's hard budget for guest memory (--memory-budget); a growth past it fails with 503",
        );
        let memory_pressure = Counter::default();
        registry.register(
            "memory_pressure",
            "Guest memory growths refused because the pod's memory budget was in use",
            memory_pressure.clone(),
        );
        let admission_weight = Family::<FunctionLabel, Gauge>::default();
        registry.register(
            "admission_weight_mb",
            "A function's learned admission weight (MB), once it has enough completed requests",
            admission_weight.clone(),
        );
        let connections = Connections::default();
        registry.register("connections_open", "Client connections open", connections.open.clone());
        registry.register(
            "connections_refused",
            "Connections closed at accept because --max-connections were open",
            connections.refused.clone(),
        );
        let cancelled = Counter::default();
        registry.register(
            "requests_cancelled",
            "Requests whose client went away before the answer: the guest was stopped, its memory released",
            cancelled.clone(),
        );

        let responses = Family::<StatusLabels, Counter>::default();
        registry.register("responses", "Responses by function and status class", responses.clone());
        let duration = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
        });
        registry.register(
            "request_duration_seconds",
            "Time from routing to response, by function",
            duration.clone(),
        );
        let instantiate = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_002, 2.0, 18))
        });
        registry.register(
            "instantiate_seconds",
            "Time to instantiate a function's module, by function",
            instantiate.clone(),
        );
        let peak_memory = Family::<FunctionLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(65_536.0, 2.0, 17))
        });
        registry.register(
            "memory_peak_bytes",
            "Peak instance memory per request, by function",
            peak_memory.clone(),
        );

        let function_states = Family::<StateLabel, Gauge>::default();
        registry.register(
            "functions",
            "Functions (routes) loaded, by state: ready, or failed to load (they answer 500)",
            function_states.clone(),
        );
        let loads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "function_loads",
            "Loads of a function (at start and on every reload that changed it), by result: ok or failed",
            loads.clone(),
        );
        let tenant_series = TenantFamilies::register(&mut registry);
        Metrics {
            tenant_series,
            tenants: Mutex::default(),
            registry,
            inflight_memory,
            queued_memory,
            capacity_memory,
            queue_depth_memory,
            inflight_requests,
            queued_requests,
            cpu,
            instances,
            pool_warm_slots,
            pool_idle_resident,
            admitted,
            rejected,
            timeouts,
            errors,
            outbound_denied,
            guest_memory,
            memory_budget,
            memory_pressure,
            admission_weight,
            connections,
            cancelled,
            scrape: Mutex::new(()),
            functions: ArcSwap::default(),
            series: FunctionFamilies { responses, duration, instantiate, peak_memory },
            function_states,
            loads,
        }
    }

    /// The series of tenant `name`, created the first time it is asked for (when a function of
    /// the tenant loads, not per request).
    pub fn tenant(&self, name: &Arc<str>) -> Arc<TenantMetrics> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.entry(name.clone()).or_insert_with(|| Arc::new(self.tenant_series.create(name))).clone()
    }

    /// The series of `name`, while it is loaded.
    pub fn function(&self, name: &str) -> Option<Arc<FunctionMetrics>> {
        self.functions.load().get(name).cloned()
    }

    /// Makes the per-function series those of `functions` (name, ready): a new function's series
    /// appear, a removed function's disappear, and a function that stays (replaced or not) keeps
    /// its series and their counts. Sets `wasmpod_functions{state}`.
    pub fn set_functions<'f>(&self, functions: impl Iterator<Item = (&'f Arc<str>, bool)>) {
        let old = self.functions.load_full();
        let mut new = HashMap::with_capacity(old.len());
        let (mut ready, mut failed) = (0, 0);
        for (name, is_ready) in functions {
            if is_ready {
                ready += 1;
            } else {
                failed += 1;
            }
            if new.contains_key(name) {
                continue;
            }
            let series = old.get(name).cloned().unwrap_or_else(|| Arc::new(self.series.create(name)));
            new.insert(name.clone(), series);
        }
        for name in old.keys().filter(|name| !new.contains_key(*name)) {
            self.series.remove(name);
            for kind in ERROR_KINDS {
                self.errors.remove(&KindLabels { function: name.to_string(), kind });
            }
            self.outbound_denied.remove(&FunctionLabel { function: name.to_string() });
        }
        self.functions.store(Arc::new(new));
        self.function_states.get_or_create(&StateLabel { state: "ready" }).set(ready);
        self.function_states.get_or_create(&StateLabel { state: "failed" }).set(failed);
    }

    /// One load of a function, `ok` or not.
    pub fn function_loaded(&self, ok: bool) {
        self.loads.get_or_create(&ResultLabel { result: if ok { "ok" } else { "failed" } }).inc();
    }

    pub fn admitted(&self) {
        self.admitted.inc();
    }

    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The counter of requests whose client went away while their guest ran.
    pub fn cancelled(&self) -> Counter {
        self.cancelled.clone()
    }

    pub fn client_timeout(&self, timeout: ClientTimeout) {
        let stage = match timeout {
            ClientTimeout::Header => "header",
            ClientTimeout::Body => "body",
        };
        self.timeouts.get_or_create(&StageLabel { stage }).inc();
    }

    pub fn refused(&self, refusal: Refusal) {
        self.rejected.get_or_create(&ReasonLabel { reason: refusal.label() }).inc();
        if let Refusal::QueueTimeout = refusal {
            self.timeouts.get_or_create(&StageLabel { stage: "queue" }).inc();
        }
    }

    pub fn guest_error(&self, function: &str, kind: &'static str) {
        if kind == "timeout" {
            self.timeouts.get_or_create(&StageLabel { stage: "guest" }).inc();
        }
        // A request that outlived its function's removal counts nowhere: no stale series.
        if self.functions.load().contains_key(function) {
            self.errors.get_or_create(&KindLabels { function: function.to_owned(), kind }).inc();
        }
    }

    /// The exposition text, with the pod-level gauges and the runtime's counters read now.
    /// Brings the pod's real-memory series up to date: what the guests hold, the budget, the
    /// growths refused for pressure (a count the runtime keeps), and each function's learned
    /// admission weight (`weights`: name and MB; a function without one has no series).
    pub fn observe_memory<'f>(
        &self,
        used_bytes: u64,
        budget_bytes: Option<u64>,
        refused_growths: u64,
        weights: impl IntoIterator<Item = (&'f str, u64)>,
    ) {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.guest_memory.set(i64::try_from(used_bytes).unwrap_or(i64::MAX));
        self.memory_budget.set(budget_bytes.map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)));
        self.memory_pressure.inc_by(refused_growths.saturating_sub(self.memory_pressure.get()));
        self.admission_weight.clear();
        for (function, mb) in weights {
            let label = FunctionLabel { function: function.to_owned() };
            self.admission_weight.get_or_create(&label).set(i64::try_from(mb).unwrap_or(i64::MAX));
        }
    }

    pub fn render<'f>(
        &self,
        admission: Option<Snapshot>,
        cpu_cores: f64,
        instances: u64,
        pool: PoolIdle,
        outbound_denied: impl IntoIterator<Item = (&'f Arc<str>, u64)>,
        tenants: &[TenantSnapshot],
    ) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.tenant_series.set_admission(tenants);
        for (function, denied) in outbound_denied {
            if denied == 0 {
                continue;
            }
            // The runtime counts; the counter here catches up to it.
            let counter =
                self.outbound_denied.get_or_create(&FunctionLabel { function: function.to_string() });
            counter.inc_by(denied.saturating_sub(counter.get()));
        }
        if let Some(s) = admission {
            self.inflight_memory.set(s.in_flight_units as i64);
            self.queued_memory.set(s.queued_units as i64);
            self.capacity_memory.set(s.capacity_units as i64);
            self.queue_depth_memory.set(s.queue_depth_units as i64);
            self.inflight_requests.set(s.in_flight_requests as i64);
            self.queued_requests.set(s.queued_requests as i64);
        }
        self.cpu.set(cpu_cores);
        self.instances.set(instances as i64);
        self.pool_warm_slots.set(i64::try_from(pool.warm_slots).unwrap_or(i64::MAX));
        self.pool_idle_resident.set(i64::try_from(pool.resident_bytes).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_exposes_pod_and_function_series() {
        let name: Arc<str> = Arc::from("/hello");
        let metrics = Metrics::new(&ServiceIdentity::default());
        metrics.set_functions([(&name, true)].into_iter());
        let f = metrics.function("/hello").unwrap();
        f.observe(200, Duration::from_millis(2));
        f.observe(503, Duration::from_millis(1));
        f.observe_instance(Duration::from_micros(10), 1 << 20);
        metrics.admitted();
        metrics.refused(Refusal::QueueFull);
        metrics.refused(Refusal::QueueTimeout);
        metrics.guest_error("/hello", "trap");
        metrics.client_timeout(ClientTimeout::Header);
        metrics.cancelled().inc();
        let open = metrics.connections().open(1).expect("the first connection");
        assert!(metrics.connections().open(1).is_none(), "a second one is over the limit");
        let snapshot = Snapshot {
            in_flight_units: 300,
            queued_units: 100,
            in_flight_requests: 2,
            queued_requests: 1,
            capacity_units: 8000,
            queue_depth_units: 16000,
            cpu_gate_open: true,
            memory_gate_open: true,
            real_memory_bytes: 0,
            memory_high_water_bytes: None,
        };
        let acme: Arc<str> = Arc::from("acme");
        let tenant = metrics.tenant(&acme);
        tenant.observe(200);
        tenant.observe(503);
        tenant.add_cpu(Duration::from_millis(250));
        tenant.add_memory(100, Duration::from_millis(500));
        tenant.observe_peak(3 << 20);
        tenant.observe_peak(1 << 20);
        let mut admission = wasmpod_admission::Admission::<()>::new(wasmpod_admission::BreakerConfig {
            tenant_limits: wasmpod_admission::TenantLimits { max_in_flight_units: 100, max_queued_units: 0 },
            ..Default::default()
        })
        .unwrap();
        let id = admission.tenant("acme");
        let request =
            wasmpod_admission::Request { tenant: id, function: None, memory_mb: 60, queue_timeout: None };
        let _running = admission.arrive(Duration::ZERO, request, || ());
        let _refused = admission.arrive(Duration::ZERO, request, || ());
        let tenants: Vec<_> = admission.tenant_snapshots().collect();
        let pool = PoolIdle { warm_slots: 5, resident_bytes: 7 << 20 };
        let text = metrics.render(Some(snapshot), 1.5, 2, pool, [(&name, 3)], &tenants);
        for line in [
            "wasmpod_inflight_memory_mb 300",
            "wasmpod_queued_memory_mb 100",
            "wasmpod_capacity_memory_mb 8000",
            "wasmpod_queue_depth_memory_mb 16000",
            "wasmpod_inflight_requests 2",
            "wasmpod_queued_requests 1",
            "wasmpod_cpu_utilization_cores 1.5",
            "wasmpod_instances_in_use 2",
            "wasmpod_pool_warm_slots 5",
            "wasmpod_pool_idle_resident_bytes 7340032",
            "wasmpod_admitted_total 1",
            "wasmpod_rejected_total{reason=\"queue_full\"} 1",
            "wasmpod_rejected_total{reason=\"queue_timeout\"} 1",
            "wasmpod_timeouts_total{stage=\"queue\"} 1",
            "wasmpod_timeouts_total{stage=\"header\"} 1",
            "wasmpod_connections_open 1",
            "wasmpod_connections_refused_total 1",
            "wasmpod_requests_cancelled_total 1",
            "wasmpod_guest_errors_total{function=\"/hello\",kind=\"trap\"} 1",
            "wasmpod_outbound_denied_total{function=\"/hello\"} 3",
            "wasmpod_responses_total{function=\"/hello\",status=\"2xx\"} 1",
            "wasmpod_responses_total{function=\"/hello\",status=\"5xx\"} 1",
            "wasmpod_request_duration_seconds_count{function=\"/hello\"} 2",
            "wasmpod_instantiate_seconds_count{function=\"/hello\"} 1",
            "wasmpod_memory_peak_bytes_sum{function=\"/hello\"} 1048576.0",
            "wasmpod_tenant_responses_total{tenant=\"acme\",status=\"2xx\"} 1",
            "wasmpod_tenant_responses_total{tenant=\"acme\",status=\"5xx\"} 1",
            "wasmpod_tenant_cpu_seconds_total{tenant=\"acme\"} 0.25",
            "wasmpod_tenant_memory_mb_seconds_total{tenant=\"acme\"} 50.0",
            "wasmpod_tenant_memory_peak_bytes{tenant=\"acme\"} 3145728",
            "wasmpod_tenant_inflight_memory_mb{tenant=\"acme\"} 60",
            "wasmpod_tenant_queued_memory_mb{tenant=\"acme\"} 0",
            "wasmpod_tenant_rejected_total{tenant=\"acme\",reason=\"tenant_queue_full\"} 1",
            "wasmpod_tenant_inflight_memory_mb{tenant=\"default\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        drop(open);
        assert!(metrics
            .render(None, 0.0, 0, PoolIdle::default(), [], &[])
            .contains("wasmpod_connections_open 0"));
    }
}
