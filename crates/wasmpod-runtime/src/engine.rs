//! The one `Engine` a process has, and the clock that lets guests be interrupted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::{CgroupCpu, Error, ModuleLimits};

/// How often the epoch advances. A guest yields to the scheduler at every tick, so this bounds
/// how long one guest can hold a worker thread and how precisely timeouts and CPU quotas bite.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The instance pool's idle slots that still hold memory: a slot a request used keeps up to
/// [`EngineOptions::keep_resident_bytes`] of its linear memory resident (reset in place) so the
/// next instance of the same module starts without page faults. [`EngineOptions::max_warm_slots`]
/// bounds how many idle slots stay warm, and so this memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolIdle {
    /// Idle linear-memory slots that were used before (warm).
    pub warm_slots: u64,
    /// Bytes those idle slots (memories and tables) keep resident, as wasmtime counts them.
    pub resident_bytes: u64,
}

/// Idle instance pool slots kept warm by default ([`EngineOptions::max_warm_slots`]).
///
/// A function's own slots are reused first whatever the bound (a warm slot for the same module
/// is always preferred), so the bound matters only for modules without one: a new version after a
/// reload, or one of many rarely called functions. wasmtime's default, 100, let the replaced
/// versions' slots pile up, up to 2 MiB resident each (about 200 MB); 16 holds at most ~32 MiB
/// idle beyond the slots the peak load used (the soak, `bench/README.md`).
pub const DEFAULT_MAX_WARM_SLOTS: u32 = 16;

/// Engine settings a deployment may change. Everything else is fixed for speed.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Instances that may exist at once (pool slots). Admission must keep concurrency below this.
    pub max_instances: u32,
    /// Largest linear memory one instance may have (pool slot size).
    pub max_memory_bytes: u64,
    /// Bytes of each linear memory (and table) reset in place between requests instead of being
    /// returned to the kernel: no page faults next time and no TLB shootdowns, at the price of
    /// keeping those pages resident per warm slot.
    pub keep_resident_bytes: usize,
    /// Idle pool slots kept warm (their pages resident, their module's image mapped) before a
    /// request for a module with no warm slot of its own takes the least recently used one instead
    /// of a fresh slot. Bounds the memory idle slots hold to about `keep_resident_bytes` times
    /// this plus the peak of slots in use (wasmtime shards the pool by thread, each shard with its
    /// share of the bound); see [`DEFAULT_MAX_WARM_SLOTS`].
    pub max_warm_slots: u32,
    /// Reset only the pages a guest actually dirtied (Linux `PAGEMAP_SCAN`, kernel >= 6.7), so a
    /// large `keep_resident_bytes` costs only what each guest touches.
    pub pagemap_scan: bool,
    /// The artifact cache's directory ([`crate::ArtifactCache`]). `None` (the default): every
    /// module is compiled at load and nothing is written to disk.
    pub cache_dir: Option<PathBuf>,
    /// Cgroup-bound workers that hold core-module requests carrying a CPU quota to it with the
    /// kernel (`--cgroup-cpu`, see [`CgroupCpu`]). `None` (the default): quotas are held by the
    /// runtime's own epoch-based throttle.
    pub cgroup_cpu: Option<Arc<CgroupCpu>>,
    /// What a module may cost to load (`--max-module-size`, `--max-module-functions`): checked
    /// before compiling, for every source (folder, config, admin upload).
    pub module_limits: ModuleLimits,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident_bytes: 2 << 20,
            max_warm_slots: DEFAULT_MAX_WARM_SLOTS,
            pagemap_scan: true,
            cache_dir: None,
            cgroup_cpu: None,
            module_limits: ModuleLimits::default(),
        }
    }
}

/// Builds the process's engine: async (guests yield instead of blocking HTTP workers), epoch
/// interruption (timeouts and CPU quotas), and the pooling allocator with copy-on-write memory
/// images, so instantiation is a slot reuse and not an mmap per request.
pub fn build_engine(options: &EngineOptions) -> Result<Engine, Error> {
    let mut pool = PoolingAllocationConfig::new();
    let slots = options.max_instances.max(1);
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .total_component_instances(slots)
        .max_memory_size(usize::try_from(options.max_memory_bytes).unwrap_or(usize::MAX))
        // Keep hot pages resident between requests: a reset in place beats madvise + page faults.
        .table_keep_resident(options.keep_resident_bytes.min(64 << 10))
        .linear_memory_keep_resident(options.keep_resident_bytes)
        .max_unused_warm_slots(options.max_warm_slots)
        .pagemap_scan(if options.pagemap_scan { Enabled::Auto } else { Enabled::No });

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        // One module compiles on one thread: the callers choose how many threads compile, so
        // that a large module compiled during a reload never takes every core from serving.
        .parallel_compilation(false)
        .wasm_component_model(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own, until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the clock for `engine`; keep the ticker for as long as guests may run.
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let thread = std::thread::Builder::new()
            .name("wasmpod-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
