//! The scaling policies compared, and the cluster they run on.

use serde::Serialize;

use crate::nodes::NodeSize;
use crate::workload::Micros;

/// How functions are packed into pods and how pods are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// (1) One container per function, Knative's KPA on request concurrency, scale to zero.
    ContainerPerFunction,
    /// (2) Superpods (every function in every pod), KPA on concurrency (Knative's defaults), no
    /// admission in the pod.
    SuperpodConcurrency,
    /// (3) Superpods scaled on declared memory (the autoscale core), admission by declared memory
    /// (the admission core) with Wasabi's static overbooking.
    SuperpodMemory,
    /// (4) As (3), with the admission core's learned weights.
    SuperpodLearned,
}

impl Policy {
    /// All four, in the order the report lists them.
    pub const ALL: [Policy; 4] = [
        Policy::ContainerPerFunction,
        Policy::SuperpodConcurrency,
        Policy::SuperpodMemory,
        Policy::SuperpodLearned,
    ];

    /// The policy's number in the report (1-4).
    pub fn number(self) -> u8 {
        match self {
            Policy::ContainerPerFunction => 1,
            Policy::SuperpodConcurrency => 2,
            Policy::SuperpodMemory => 3,
            Policy::SuperpodLearned => 4,
        }
    }

    /// The policy with number `n` (1-4).
    pub fn from_number(n: u8) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.number() == n)
    }

    /// A short name for tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Policy::ContainerPerFunction => "1 container per function, KPA concurrency",
            Policy::SuperpodConcurrency => "2 superpods, KPA concurrency",
            Policy::SuperpodMemory => "3 superpods, KPA memory + admission + 1.43x overbooking",
            Policy::SuperpodLearned => "4 = 3 with learned weights",
        }
    }

    /// Whether pods hold every function (a superpod) rather than one.
    pub fn superpod(self) -> bool {
        self != Policy::ContainerPerFunction
    }
}

/// Container cold start, in ms: a small Go service on Knative, measured at about 2 s from scale
/// from zero to the first answer in Knative's own scale tests (Matt Moore, interviewed by Nobl9,
/// "Kubernetes Knative serverless latency metrics"); slower images take 10-15 s.
pub const DEFAULT_CONTAINER_COLD_START_MS: f64 = 2000.0;
/// Memory a function's container holds beyond the function's own use, in MB: Knative's
/// queue-proxy sidecar settles at about 55 MB (knative/serving issue 5245; its user container,
/// a Go hello world, took 5 MB more). The trace's app memory already includes the language
/// runtime, so nothing else is added: a choice in the containers' favour.
pub const DEFAULT_CONTAINER_OVERHEAD_MB: f64 = 55.0;
/// Cores a function's container may use (its CPU limit).
pub const DEFAULT_CONTAINER_CPU: f64 = 1.0;
/// Cores a function's container requests from the scheduler (placement only).
pub const DEFAULT_CONTAINER_CPU_REQUEST: f64 = 0.25;
/// Requests one container serves at once (Knative `containerConcurrency`): one, as AWS Lambda
/// and OpenWhisk run functions; its queue-proxy queues 10x that more, as Knative's does.
pub const DEFAULT_CONTAINER_CONCURRENCY: u64 = 1;
/// Superpod CPU limit, cores (Wasabi's manifest: `limits.cpu 4200m`).
pub const DEFAULT_SUPERPOD_CPU: f64 = 4.2;
/// Superpod CPU request, cores (Wasabi's manifest: `requests.cpu 3000m`).
pub const DEFAULT_SUPERPOD_CPU_REQUEST: f64 = 3.0;
/// Superpod memory limit, MB: Wasabi's 9100 Mi. It is both what the scheduler must set aside
/// (counted as reserved) and the hard budget the pod's guests may never pass.
pub const DEFAULT_SUPERPOD_MEMORY_MB: f64 = 9100.0 * 1.048_576;
/// MB of declared memory a superpod admits in flight: Wasabi's `concurrentResourceRequest`
/// 13000 on a 9100 Mi pod, a static 1.43x overbooking.
pub const DEFAULT_SUPERPOD_CAPACITY_MB: u64 = 13_000;
/// Declared MB a superpod queues for admission (policies 3 and 4): Wasabi's
/// `queueDepthResourceUnits` 990000000000000000, a queue without a bound of its own (no fast
/// 503s), so a call waits until it is admitted or its deadline (`--queue-timeout-ms`) passes.
pub const DEFAULT_SUPERPOD_QUEUE_DEPTH_MB: u64 = 990_000_000_000_000_000;
/// Declared MB per superpod the memory autoscaler aims for: Wasabi's
/// `autoscaling.knative.dev/target: 9100`.
pub const DEFAULT_SUPERPOD_TARGET_MB: f64 = 9100.0;
/// Wasabi's `target-burst-capacity: 1000`.
pub const DEFAULT_SUPERPOD_BURST_MB: f64 = 1000.0;
/// Whether the autoscaler of policies 3 and 4 also scales on CPU in use (the autoscale core's CPU
/// rule, a wasmpod extension over Wasabi: the larger of the memory and the CPU count, with the
/// superpod's CPU limit aimed at [`wasmpod_autoscale::DEFAULT_CPU_TARGET_UTILIZATION`]). Off, they
/// scale on declared memory alone, as Wasabi does.
pub const DEFAULT_SUPERPOD_CPU_SCALING: bool = true;
/// The admission CPU gate of policies 3 and 4: none. Wasabi's manifest sets
/// `resource-utilization-threshold` to 6 cores on a 4.2-core pod, a gate that never closes, so
/// "none" is Wasabi's behaviour.
pub const DEFAULT_SUPERPOD_CPU_GATE: Option<f64> = None;
/// The concurrency a pod of policy (1) or (2) is sized for when its containerConcurrency is 0:
/// Knative's `container-concurrency-target-default`.
pub const DEFAULT_CONCURRENCY_TARGET: f64 = 100.0;
/// Memory of an idle superpod, MB: Knative's queue-proxy (55 MB) plus wasmpod's own process
/// (about 20 MB idle, README "Performance"). Loaded functions add 28 KB each on top.
pub const DEFAULT_SUPERPOD_BASE_MB: f64 = 75.0;
/// Memory an idle loaded function adds to a superpod, MB (28 KB, README "Performance").
pub const SUPERPOD_MB_PER_FUNCTION: f64 = 0.028;
/// Longest a request waits for a pod or for admission before a 503, ms: wasmpod's default
/// `--timeout` (30 s), applied to every policy alike.
pub const DEFAULT_QUEUE_TIMEOUT_MS: f64 = 30_000.0;
/// Cores per node: a common 16 vCPU / 64 GiB cloud VM.
pub const DEFAULT_NODE_CORES: f64 = 16.0;
/// Memory per node, MB.
pub const DEFAULT_NODE_MEMORY_MB: f64 = 65_536.0;
/// Nodes the cluster may grow to.
pub const DEFAULT_MAX_NODES: usize = 2000;

/// The cluster and every pod-level setting of the policies. [`ClusterConfig::default`] is the
/// documented configuration (README, "Density and the simulator").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// Size of a node.
    pub node_cores: f64,
    /// Memory of a node, MB.
    pub node_memory_mb: f64,
    /// Nodes the cluster may grow to; pods that fit nowhere wait, pending.
    pub max_nodes: usize,
    /// Longest wait for a pod or for admission, ms; then 503.
    pub queue_timeout_ms: f64,
    /// Container cold start (scheduling, image, process start, readiness), ms; a superpod's
    /// start adds loading its functions.
    pub container_cold_start_ms: f64,
    /// Memory a function's container holds beyond the function's use, MB.
    pub container_overhead_mb: f64,
    /// A container's CPU limit, cores.
    pub container_cpu: f64,
    /// A container's CPU request, cores.
    pub container_cpu_request: f64,
    /// A container's concurrency (requests at once).
    pub container_concurrency: u64,
    /// A superpod's CPU limit, cores.
    pub superpod_cpu: f64,
    /// A superpod's CPU request, cores.
    pub superpod_cpu_request: f64,
    /// A superpod's memory limit, MB.
    pub superpod_memory_mb: f64,
    /// Memory of an idle superpod, MB, before its functions.
    pub superpod_base_mb: f64,
    /// Declared MB a superpod admits in flight (policies 3 and 4).
    pub superpod_capacity_mb: u64,
    /// Declared MB a superpod queues for admission (policies 3 and 4).
    pub superpod_queue_depth_mb: u64,
    /// Declared MB per superpod the memory autoscaler aims for (policies 3 and 4).
    pub superpod_target_mb: f64,
    /// Target burst capacity of the memory autoscaler, MB.
    pub superpod_burst_mb: f64,
    /// Concurrency per pod the concurrency autoscaler sizes superpods for (policy 2).
    pub concurrency_target: f64,
    /// Policies 3 and 4 also scale on the cores their pods use (the autoscale core's CPU rule).
    pub superpod_cpu_scaling: bool,
    /// Policies 3 and 4: the admission CPU gate, cores in use above which no call starts
    /// (wasmpod's `--resource-utilization-threshold`); `None`: no gate.
    pub superpod_cpu_gate: Option<f64>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_cores: DEFAULT_NODE_CORES,
            node_memory_mb: DEFAULT_NODE_MEMORY_MB,
            max_nodes: DEFAULT_MAX_NODES,
            queue_timeout_ms: DEFAULT_QUEUE_TIMEOUT_MS,
            container_cold_start_ms: DEFAULT_CONTAINER_COLD_START_MS,
            container_overhead_mb: DEFAULT_CONTAINER_OVERHEAD_MB,
            container_cpu: DEFAULT_CONTAINER_CPU,
            container_cpu_request: DEFAULT_CONTAINER_CPU_REQUEST,
            container_concurrency: DEFAULT_CONTAINER_CONCURRENCY,
            superpod_cpu: DEFAULT_SUPERPOD_CPU,
            superpod_cpu_request: DEFAULT_SUPERPOD_CPU_REQUEST,
            superpod_memory_mb: DEFAULT_SUPERPOD_MEMORY_MB,
            superpod_base_mb: DEFAULT_SUPERPOD_BASE_MB,
            superpod_capacity_mb: DEFAULT_SUPERPOD_CAPACITY_MB,
            superpod_queue_depth_mb: DEFAULT_SUPERPOD_QUEUE_DEPTH_MB,
            superpod_target_mb: DEFAULT_SUPERPOD_TARGET_MB,
            superpod_burst_mb: DEFAULT_SUPERPOD_BURST_MB,
            concurrency_target: DEFAULT_CONCURRENCY_TARGET,
            superpod_cpu_scaling: DEFAULT_SUPERPOD_CPU_SCALING,
            superpod_cpu_gate: DEFAULT_SUPERPOD_CPU_GATE,
        }
    }
}

impl ClusterConfig {
    /// The node size.
    pub(crate) fn node(&self) -> NodeSize {
        NodeSize { cores: self.node_cores, memory_mb: self.node_memory_mb }
    }

    /// The queue timeout in virtual time.
    pub(crate) fn queue_timeout(&self) -> Micros {
        ms(self.queue_timeout_ms)
    }
}

/// Milliseconds (a setting) as virtual microseconds.
pub(crate) fn ms(value: f64) -> Micros {
    (value.max(0.0) * 1000.0).round() as Micros
}
