//! Per-request limits enforced inside the store: memory grant, time, CPU quota.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use crate::OutboundLimits;

/// The limits one request runs under. Built by the server from the admission grant and config.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// The instance's total memory (every linear memory and table) may not grow past this.
    pub memory_bytes: Option<u64>,
    /// Wall-clock time the guest may run before it is stopped (504).
    pub timeout: Duration,
    /// CPU the guest may use per 100 ms period, in millicores (cgroup `cpu.max` semantics:
    /// 250 means 25 ms of CPU in every 100 ms). `None`: unthrottled.
    pub cpu_quota_millicores: Option<u32>,
    /// The pod's real memory, which this instance's memory counts towards and may not push past
    /// the pod's budget. `None`: the instance is counted nowhere (tools and tests).
    pub pod_memory: Option<Arc<PodMemory>>,
    /// How long the guest's outbound HTTP calls may take (each also capped at `timeout`).
    pub outbound: OutboundLimits,
    /// The most a WAGI module or raw program may print to stdout for this response
    /// (`--max-response-size`; also capped by `memory_bytes`, since the output is held in memory).
    pub max_output_bytes: usize,
}

/// The real memory of every running instance of the pod, against the pod's hard budget.
///
/// Admission weighs requests by declared or learned memory; what it gets wrong, this catches.
/// Every instance adds its memory as it grows and removes it when its store is dropped, so
/// [`PodMemory::used_bytes`] is what the guests hold now (the admission's memory gate reads it).
/// A growth that would take the pod past its budget fails in that guest alone, with
/// [`RunError::MemoryPressure`](crate::RunError::MemoryPressure) (a 503): an overbooked pod costs
/// one request a retry, never an out-of-memory kill of the whole pod.
#[derive(Debug)]
pub struct PodMemory {
    used: AtomicU64,
    budget_bytes: Option<u64>,
    refused: AtomicU64,
}

impl PodMemory {
    /// A pod whose guests may hold at most `budget_bytes` in total (`None`: counted, unbounded).
    pub fn new(budget_bytes: Option<u64>) -> PodMemory {
        PodMemory { used: AtomicU64::new(0), budget_bytes, refused: AtomicU64::new(0) }
    }

    /// Bytes of linear memory and tables the running instances hold now.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The hard budget, bytes.
    pub fn budget_bytes(&self) -> Option<u64> {
        self.budget_bytes
    }

    /// Growths refused because the pod's budget was in use (`wasmpod_memory_pressure_total`).
    pub fn refused_growths(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Takes `bytes` more, or refuses when that would pass the budget.
    fn take(&self, bytes: u64) -> bool {
        let budget = self.budget_bytes.unwrap_or(u64::MAX);
        let taken = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(bytes).filter(|&total| total <= budget)
        });
        if taken.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        taken.is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// How long a guest may run when neither its route nor the server says otherwise (WAGI has no
/// limit; 30 s matches Knative's default request timeout order of magnitude and `--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            memory_bytes: None,
            timeout: DEFAULT_TIMEOUT,
            cpu_quota_millicores: None,
            pod_memory: None,
            outbound: OutboundLimits::default(),
            max_output_bytes: crate::MAX_STDOUT_BYTES,
        }
    }
}

/// Counts the whole instance's memory against the request's grant.
///
/// wasmtime's `StoreLimits` caps each linear memory on its own; a grant is a promise about the
/// instance as a whole, so this limiter sums memories and tables. It also records the peak for
/// the metrics and whether a growth was refused, so the error can say why the guest trapped.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub(crate) limit: Option<u64>,
    pub(crate) used: u64,
    pub(crate) peak: u64,
    pub(crate) refused: bool,
    /// A growth was refused because the pod's budget was in use, not the request's grant.
    pub(crate) pressure: bool,
    /// The pod's real memory, which `used` is counted in.
    pub(crate) pod: Option<Arc<PodMemory>>,
    /// Core instances the store may hold: 1 for a module, more for a component.
    pub(crate) instances: usize,
}

/// Core instances one component may create (wasmtime's pooling default per component is 20).
const MAX_COMPONENT_CORE_INSTANCES: usize = 20;

/// Bytes a table element is charged (a pointer on the host).
const TABLE_ELEMENT_BYTES: u64 = 8;

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<u64>) -> MemoryLimiter {
        MemoryLimiter { limit, used: 0, peak: 0, refused: false, pressure: false, pod: None, instances: 1 }
    }

    /// A limiter for a component, which instantiates several core modules in one store.
    pub(crate) fn for_component(limit: Option<u64>) -> MemoryLimiter {
        let mut limiter = MemoryLimiter::new(limit);
        limiter.instances = MAX_COMPONENT_CORE_INSTANCES;
        limiter
    }

    /// Counts this instance's memory in the pod's.
    fn counted_in(mut self, pod: Option<Arc<PodMemory>>) -> MemoryLimiter {
        self.pod = pod;
        self
    }

    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let used = self.used - current.min(self.used) + desired;
        if let Some(limit) = self.limit {
            if used > limit {
                self.refused = true;
                // A trap, not a failed grow: a guest told "no" usually aborts anyway, and the
                // trap carries the reason to the log.
                return Err(wasmtime::format_err!("memory limit of {} MB exceeded", limit >> 20));
            }
        }
        if let Some(pod) = &self.pod {
            if !pod.take(used.saturating_sub(self.used)) {
                self.pressure = true;
                return Err(wasmtime::format_err!("memory pressure: the pod's memory budget is in use"));
            }
        }
        self.used = used;
        self.peak = self.peak.max(used);
        Ok(true)
    }
}

impl Drop for MemoryLimiter {
    /// The store is gone, and the instance's memory with it.
    fn drop(&mut self) {
        if let Some(pod) = &self.pod {
            pod.give_back(self.used);
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current as u64 * TABLE_ELEMENT_BYTES, desired as u64 * TABLE_ELEMENT_BYTES)
    }

    fn instances(&self) -> usize {
        self.instances
    }
}

/// What a store enforces for one request, whatever the guest kind: the memory grant (with the
/// peak it reached) and the CPU quota. Built from [`RequestLimits`] by [`crate::store`], the one
/// place stores are made.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) memory: MemoryLimiter,
    pub(crate) cpu: Option<CpuQuota>,
}

impl Limits {
    /// Limits for a core module (one instance per store).
    pub(crate) fn for_module(limits: &RequestLimits) -> Limits {
        Limits {
            memory: MemoryLimiter::new(limits.memory_bytes).counted_in(limits.pod_memory.clone()),
            cpu: limits.cpu_quota_millicores.map(CpuQuota::new),
        }
    }

    /// Limits for a component, which instantiates several core modules in one store.
    pub(crate) fn for_component(limits: &RequestLimits) -> Limits {
        Limits {
            memory: MemoryLimiter::for_component(limits.memory_bytes).counted_in(limits.pod_memory.clone()),
            cpu: limits.cpu_quota_millicores.map(CpuQuota::new),
        }
    }

    /// Marks the guest as (re)starting on the current thread, for the CPU quota's clock.
    pub(crate) fn resume_here(&self) {
        if let Some(quota) = &self.cpu {
            quota.resume_here();
        }
    }

    /// Why a guest that trapped failed: a refused memory growth is reported as such, whatever
    /// trap the guest turned it into.
    pub(crate) fn trap_error(&self, e: &wasmtime::Error) -> crate::RunError {
        if self.memory.pressure {
            let budget = self.memory.pod.as_ref().and_then(|pod| pod.budget_bytes()).unwrap_or(0);
            return crate::RunError::MemoryPressure { budget_mb: budget >> 20 };
        }
        if self.memory.refused {
            return crate::RunError::MemoryLimit { limit_mb: self.memory.limit.unwrap_or(0) >> 20 };
        }
        crate::RunError::Trap(format!("{e:?}"))
    }
}

/// Store data of any guest kind: it carries the request's [`Limits`].
pub(crate) trait LimitedState: Send + 'static {
    fn limits(&mut self) -> &mut Limits;
}

/// Makes a store's guest yield at every epoch tick (so it never holds a worker thread), sleeping
/// out the rest of the period when it has spent its CPU quota.
pub(crate) fn yield_on_epoch<T: LimitedState>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let pause = match ctx.data_mut().limits().cpu.as_mut() {
            Some(quota) => quota.on_tick(),
            None => Box::pin(tokio::task::yield_now()),
        };
        Ok(UpdateDeadline::YieldCustom(1, pause))
    });
}

/// The cgroup `cpu.max` period a quota is measured over.
pub const CPU_PERIOD: Duration = Duration::from_millis(100);

/// Enforces a CPU quota without privileges: at every epoch tick the guest's CPU time since it
/// last resumed is read from the thread's CPU clock; once the period's budget is spent, the guest
/// yields with a sleep until the period ends.
///
/// A guest may resume on another worker thread after any yield, so the baseline is taken by the
/// yield future itself as it completes: wasmtime resumes the guest in the same poll, on the same
/// thread.
#[derive(Debug)]
pub(crate) struct CpuQuota {
    budget: Duration,
    period_start: Instant,
    used: Duration,
    /// Thread CPU time (ns) when the guest last resumed; shared with the yield future.
    resumed_at: Arc<AtomicU64>,
}

impl CpuQuota {
    pub(crate) fn new(millicores: u32) -> CpuQuota {
        CpuQuota {
            budget: CPU_PERIOD * millicores.max(1) / 1000,
            period_start: Instant::now(),
            used: Duration::ZERO,
            resumed_at: Arc::new(AtomicU64::new(thread_cpu_ns())),
        }
    }

    /// Marks the guest as (re)starting on the current thread.
    pub(crate) fn resume_here(&self) {
        self.resumed_at.store(thread_cpu_ns(), Ordering::Relaxed);
    }

    /// Called at each epoch tick: the future to yield on (a plain yield, or a sleep to the end of
    /// the period once the budget is spent).
    pub(crate) fn on_tick(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let now_cpu = thread_cpu_ns();
        let ran = now_cpu.saturating_sub(self.resumed_at.load(Ordering::Relaxed));
        self.used += Duration::from_nanos(ran);
        let now = Instant::now();
        if now.duration_since(self.period_start) >= CPU_PERIOD {
            // A new period; what was used beyond the last budget carries over as debt.
            self.used = self.used.saturating_sub(self.budget);
            self.period_start = now;
        }
        let resumed_at = self.resumed_at.clone();
        if self.used < self.budget {
            return Box::pin(async move {
                tokio::task::yield_now().await;
                resumed_at.store(thread_cpu_ns(), Ordering::Relaxed);
            });
        }
        let wake = self.period_start + CPU_PERIOD;
        self.used -= self.budget;
        self.period_start = wake;
        Box::pin(async move {
            tokio::time::sleep_until(wake.into()).await;
            resumed_at.store(thread_cpu_ns(), Ordering::Relaxed);
        })
    }
}

/// Runs `future`, adding to `spent` the CPU time its polls take, on whichever worker threads they
/// run: what a request's guest (and the host work it asks for) costs in CPU, the figure a platform
/// bills on. Each poll is timed with the thread's CPU clock, so time the future spends waiting
/// (a sleep, a queue, another task on the thread) is not counted. `spent` grows poll by poll, so
/// a future dropped before it completes has still counted what it used.
pub async fn cpu_metered<F: Future>(future: F, spent: &mut Duration) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let start = thread_cpu_ns();
        let poll = future.as_mut().poll(cx);
        *spent += Duration::from_nanos(thread_cpu_ns().saturating_sub(start));
        poll
    })
    .await
}

/// CPU time consumed by the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes to the timespec we pass, which lives on our stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_sums_all_memories_and_remembers_the_peak() {
        let mut limiter = MemoryLimiter::new(Some(10 << 20));
        assert!(limiter.grow(0, 4 << 20).unwrap());
        assert!(limiter.grow(0, 4 << 20).unwrap());
        assert_eq!(limiter.used, 8 << 20);
        let err = limiter.grow(4 << 20, 7 << 20).unwrap_err();
        assert_eq!(err.to_string(), "memory limit of 10 MB exceeded");
        assert!(limiter.refused);
        assert_eq!(limiter.peak, 8 << 20);
        assert!(limiter.grow(4 << 20, 5 << 20).unwrap());
        assert_eq!(limiter.peak, 9 << 20);
    }

    #[test]
    fn instances_share_the_pods_budget_until_their_stores_drop() {
        let pod = Arc::new(PodMemory::new(Some(10 << 20)));
        let mut first = MemoryLimiter::new(Some(8 << 20)).counted_in(Some(pod.clone()));
        let mut second = MemoryLimiter::new(Some(8 << 20)).counted_in(Some(pod.clone()));
        assert!(first.grow(0, 6 << 20).unwrap());
        assert_eq!(pod.used_bytes(), 6 << 20);
        // Within its own grant, past the pod's budget: refused as pressure, not as its limit.
        let err = second.grow(0, 6 << 20).unwrap_err();
        assert!(err.to_string().contains("memory pressure"), "{err}");
        assert!(second.pressure && !second.refused);
        assert_eq!((pod.used_bytes(), pod.refused_growths()), (6 << 20, 1));
        assert!(second.grow(0, 4 << 20).unwrap());
        assert_eq!(pod.used_bytes(), 10 << 20);
        drop(first);
        assert_eq!(pod.used_bytes(), 4 << 20);
        assert!(second.grow(4 << 20, 8 << 20).unwrap());
        drop(second);
        assert_eq!(pod.used_bytes(), 0);
    }

    #[test]
    fn unlimited_limiter_only_counts() {
        let mut limiter = MemoryLimiter::new(None);
        assert!(limiter.grow(0, 1 << 40).unwrap());
        assert!(!limiter.refused);
    }

    #[test]
    fn quota_budget_is_a_share_of_the_period() {
        assert_eq!(CpuQuota::new(250).budget, Duration::from_millis(25));
        assert_eq!(CpuQuota::new(1000).budget, CPU_PERIOD);
        assert_eq!(CpuQuota::new(2000).budget, Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_metered_future_counts_its_cpu_and_not_its_waits() {
        let mut spent = Duration::ZERO;
        let work = async {
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            tokio::task::yield_now().await;
            x
        };
        cpu_metered(work, &mut spent).await;
        assert!(spent > Duration::ZERO);
        let mut waited = Duration::ZERO;
        let started = Instant::now();
        cpu_metered(tokio::time::sleep(Duration::from_millis(50)), &mut waited).await;
        assert!(waited < started.elapsed() / 2, "a sleep costs (almost) no CPU: {waited:?}");
    }

    #[test]
    fn thread_cpu_clock_advances_with_work() {
        let before = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_ns() > before, "{x}");
    }
}
