//! The async face of admission: the [`Breaker`] the server awaits, wrapping the [`Admission`]
//! state machine with a lock, a clock, per-waiter wake-ups and one timer.
//!
//! Every decision is the state machine's; this file only feeds it the time and the latest CPU and
//! memory readings, wakes the requests it starts, and keeps one timer task for its
//! [`next_wakeup`](Admission::next_wakeup).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::admission::{Admission, Admitted, Clock, Decision, Event, Request, Snapshot};
use crate::config::{AdmissionError, BreakerConfig};
use crate::cpu::CpuGauge;
use crate::learned::{FunctionId, FunctionSnapshot};
use crate::rejection::Rejection;
use crate::tenant::{RequestId, TenantId, TenantLimits, TenantSnapshot};

/// What a request asks admission for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Whose request it is ([`Breaker::tenant`]).
    pub tenant: TenantId,
    /// Its function ([`Breaker::function`]), to learn its memory use and, in learned mode, to
    /// weigh it by what was learned. `None`: weighed by its declaration, nothing learned.
    pub function: Option<FunctionId>,
    /// Declared memory in MB ([`crate::units_from_header`]): its hard memory limit, and its weight unless
    /// a learned weight is smaller.
    pub memory_mb: u64,
    /// Longest wait for admission before [`Rejection::QueueTimeout`]. `None` waits until the
    /// future is dropped.
    pub queue_timeout: Option<Duration>,
}

impl Ticket {
    /// A request of the default tenant, of no particular function, declaring `memory_mb`, with
    /// no queue timeout.
    pub fn new(memory_mb: u64) -> Ticket {
        Ticket { tenant: TenantId::DEFAULT, function: None, memory_mb, queue_timeout: None }
    }
}

/// Admits requests by memory, fairly across tenants (Wasabi's resource breaker, done right).
///
/// A request asks with a [`Ticket`] and gets a [`Grant`] that returns its units when dropped, or a
/// [`Rejection`]: at once when it could never run or there is no room to wait, or after its queue
/// timeout. The rules are [`Admission`]'s. Share one breaker per pod through an `Arc`; it needs a
/// tokio runtime with time enabled.
///
/// ```
/// # use wasmpod_admission::{Breaker, BreakerConfig, Ticket};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let breaker = Breaker::new(BreakerConfig::default(), None).expect("valid config");
/// let acme = breaker.tenant("acme");
/// let grant = breaker.acquire(Ticket { tenant: acme, ..Ticket::new(200) }).await.expect("admitted");
/// assert_eq!(breaker.snapshot().in_flight_units, 200);
/// drop(grant);
/// assert_eq!(breaker.snapshot().in_flight_units, 0);
/// # }
/// ```
pub struct Breaker {
    shared: Arc<Shared>,
}

impl Breaker {
    /// Builds a breaker. `cpu` is the pod's CPU gauge; the CPU gate is on only when both the gauge
    /// and `config.cpu_threshold` are present.
    pub fn new(config: BreakerConfig, cpu: Option<Arc<CpuGauge>>) -> Result<Breaker, AdmissionError> {
        let cpu = cpu.filter(|_| config.cpu_threshold.is_some());
        Ok(Breaker {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    core: Admission::new(config)?,
                    real_memory: None,
                    timer_at: None,
                    driver: false,
                    closed: false,
                }),
                cpu,
                origin: Instant::now(),
                timer: Notify::new(),
            }),
        })
    }

    /// Where the guests' real memory in use (bytes) is read, for the memory gate
    /// ([`BreakerConfig::memory_high_water_bytes`]). Read under the breaker's lock before every
    /// decision and on every gate re-check, so it must be cheap (an atomic load).
    pub fn watch_real_memory(&self, read: impl Fn() -> u64 + Send + 'static) {
        self.shared.lock().real_memory = Some(Box::new(read));
    }

    /// The id of tenant `name` (see [`Admission::tenant`]).
    pub fn tenant(&self, name: &str) -> TenantId {
        self.shared.lock().core.tenant(name)
    }

    /// Gives a tenant its own caps (see [`Admission::set_tenant_limits`]).
    pub fn set_tenant_limits(&self, tenant: TenantId, limits: TenantLimits) {
        self.shared.with(|core, now| core.set_tenant_limits(now, tenant, limits));
    }

    /// The id of function `name` (see [`Admission::function`]).
    pub fn function(&self, name: &str) -> FunctionId {
        self.shared.lock().core.function(name)
    }

    /// Forgets what was learned about a function (see [`Admission::forget_function`]).
    pub fn forget_function(&self, function: FunctionId) {
        self.shared.lock().core.forget_function(function);
    }

    /// The weight a request of `function` declaring `memory_mb` would be admitted by now.
    pub fn weight(&self, function: Option<FunctionId>, memory_mb: u64) -> u64 {
        self.shared.lock().core.weight(function, memory_mb)
    }

    /// Waits for admission, or refuses.
    ///
    /// Cancellation-safe: dropping the future while queued (client gone) removes the waiter and
    /// returns its units at once; if it was admitted in the meantime, its units are released as if
    /// the grant had been dropped. When nothing is queued, admission costs one lock and no
    /// allocation.
    pub async fn acquire(&self, ticket: Ticket) -> Result<Grant, Rejection> {
        let shared = &self.shared;
        let (id, waiter) = {
            let mut state = shared.lock();
            let mut now = shared.clock();
            shared.sense(&mut state, &mut now);
            let request = Request {
                tenant: ticket.tenant,
                function: ticket.function,
                memory_mb: ticket.memory_mb,
                queue_timeout: ticket.queue_timeout,
            };
            let mut attached = None;
            let decision = state
                .core
                .arrive(&mut now, request, || Arc::clone(attached.insert(Arc::new(Waiter::default()))));
            shared.dispatch(&mut state);
            match decision {
                Decision::Started(admitted) => return Ok(Grant::new(shared, admitted)),
                Decision::Rejected(rejection) => return Err(rejection),
                Decision::Queued(id) => {
                    (id, attached.expect("admission attaches a payload to every request it queues"))
                }
            }
        };
        // Armed before the first await, so dropping this future at any later point cleans up.
        let mut queued = Queued { shared, tenant: ticket.tenant, id, waiter, armed: true };
        let outcome = queued.wait().await;
        queued.armed = false;
        outcome.map(|admitted| Grant::new(shared, admitted))
    }

    /// The pod's counters and gates, consistent with each other.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().core.snapshot()
    }

    /// Every tenant's counters.
    pub fn tenant_snapshots(&self) -> Vec<TenantSnapshot> {
        self.shared.lock().core.tenant_snapshots().collect()
    }

    /// What has been learned of every function.
    pub fn function_snapshots(&self) -> Vec<FunctionSnapshot> {
        self.shared.lock().core.function_snapshots().collect()
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker").field("snapshot", &self.snapshot()).finish_non_exhaustive()
    }
}

impl Drop for Breaker {
    /// Stops the timer task. No acquire can be pending (each borrows the breaker); grants still
    /// held release into the state, which needs no timer once nothing can queue.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.timer.notify_one();
    }
}

/// Admission of a request. Dropping it returns the units and starts the waiting requests that now
/// fit, so hold it for exactly as long as the request runs.
#[derive(Debug)]
pub struct Grant {
    shared: Arc<Shared>,
    admitted: Option<Admitted>,
    tenant: TenantId,
    units: u64,
    memory_mb: u64,
}

impl Grant {
    fn new(shared: &Arc<Shared>, admitted: Admitted) -> Grant {
        Grant {
            shared: Arc::clone(shared),
            tenant: admitted.tenant(),
            units: admitted.units(),
            memory_mb: admitted.memory_mb(),
            admitted: Some(admitted),
        }
    }

    /// The admission weight this grant holds, MB.
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The declared memory, MB: the hard memory limit to run the request under (the declaration
    /// even when a smaller learned weight admitted it).
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// The tenant it was granted to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Ends a request that completed, with the most memory its instance used: its function learns
    /// from it (see [`WeightMode`](crate::WeightMode)), then the units return. Dropping the grant
    /// instead releases without learning, which is right for a request that failed.
    pub fn finish(mut self, peak_memory_bytes: u64) {
        self.release(Some(peak_memory_bytes));
    }

    fn release(&mut self, peak_memory_bytes: Option<u64>) {
        let Some(admitted) = self.admitted.take() else { return };
        self.shared.with(|core, now| core.release(now, admitted, peak_memory_bytes));
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.release(None);
    }
}

/// What the breaker, its grants and its timer task share.
struct Shared {
    state: Mutex<State>,
    cpu: Option<Arc<CpuGauge>>,
    /// The breaker's clock starts here; the state machine sees durations since.
    origin: Instant,
    /// Wakes the timer task when the next wake-up moved earlier, or the breaker closed.
    timer: Notify,
}

struct State {
    core: Admission<Arc<Waiter>>,
    real_memory: Option<Box<dyn Fn() -> u64 + Send>>,
    /// When the timer task will next poll; `None` when it sleeps until notified (or is not
    /// running).
    timer_at: Option<Duration>,
    driver: bool,
    closed: bool,
}

/// A queued request's mailbox: what happened to it, and its own wake-up.
#[derive(Default)]
struct Waiter {
    notify: Notify,
    outcome: Mutex<Outcome>,
}

#[derive(Default)]
enum Outcome {
    #[default]
    Waiting,
    Started(Admitted),
    Expired(Rejection),
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// No code panics while holding the lock, so a poisoned lock still holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The clock of one input, read at most once and only if the state machine needs the time.
    /// Made after taking the lock, so that inputs see the time in the order they are applied.
    fn clock(&self) -> BreakerClock {
        BreakerClock { origin: self.origin, now: None }
    }

    /// Runs one input against the state machine with fresh readings, then delivers what it did.
    fn with(self: &Arc<Self>, input: impl FnOnce(&mut Admission<Arc<Waiter>>, &mut BreakerClock)) {
        let mut state = self.lock();
        let mut now = self.clock();
        self.sense(&mut state, &mut now);
        input(&mut state.core, &mut now);
        self.dispatch(&mut state);
    }

    /// Feeds the latest CPU and memory readings to the state machine before a decision: the gates
    /// then judge by what the pod uses now, as the gauges are read live.
    fn sense(&self, state: &mut State, now: &mut BreakerClock) {
        if let Some(cpu) = &self.cpu {
            state.core.observe_cpu(&mut *now, cpu.cores());
        }
        if let Some(read) = &state.real_memory {
            let bytes = read();
            state.core.observe_memory(now, bytes);
        }
    }

    /// Wakes every request the last input started or expired, and moves the timer earlier if the
    /// state machine now wants to be polled sooner.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        deliver(state);
        let Some(wanted) = state.core.next_wakeup() else { return };
        if state.timer_at.is_some_and(|at| at <= wanted) {
            return;
        }
        state.timer_at = Some(wanted);
        if state.driver {
            self.timer.notify_one();
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            state.driver = true;
            runtime.spawn(drive(Arc::clone(self)));
        }
    }
}

/// Time since the breaker's origin on tokio's clock (so paused-time tests run in virtual time),
/// read on first use and then the same for the rest of the input.
struct BreakerClock {
    origin: Instant,
    now: Option<Duration>,
}

impl Clock for BreakerClock {
    fn now(&mut self) -> Duration {
        *self.now.get_or_insert_with(|| Instant::now().saturating_duration_since(self.origin))
    }
}

/// Hands each started or expired request its outcome and wakes it.
fn deliver(state: &mut State) {
    while let Some(event) = state.core.next_event() {
        let (waiter, outcome) = match event {
            Event::Started { admitted, payload } => (payload, Outcome::Started(admitted)),
            Event::Expired { units, waited, payload, .. } => {
                (payload, Outcome::Expired(Rejection::QueueTimeout { units, waited }))
            }
        };
        *waiter.outcome.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
        waiter.notify.notify_one();
    }
}

/// The timer task: polls the state machine at its next wake-up (queue deadlines, gate re-checks)
/// until the breaker is dropped. One task per breaker, however long the queue.
async fn drive(shared: Arc<Shared>) {
    loop {
        let wake_at = {
            let mut state = shared.lock();
            if state.closed {
                state.driver = false;
                return;
            }
            let mut now = shared.clock();
            if state.core.next_wakeup().is_some_and(|at| at <= now.now()) {
                shared.sense(&mut state, &mut now);
                state.core.poll(&mut now);
                deliver(&mut state);
            }
            state.timer_at = state.core.next_wakeup();
            state.timer_at
        };
        let notified = shared.timer.notified();
        match wake_at {
            Some(at) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(shared.origin + at) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// A request in the queue. While armed, dropping it takes the request out of the queue, or, if it
/// was started meanwhile, releases what it was granted.
struct Queued<'a> {
    shared: &'a Arc<Shared>,
    tenant: TenantId,
    id: RequestId,
    waiter: Arc<Waiter>,
    armed: bool,
}

impl Queued<'_> {
    /// Returns once the request was started (its units are then in flight) or expired. Each waiter
    /// sleeps on its own notification, woken once, when something happened to it.
    async fn wait(&self) -> Result<Admitted, Rejection> {
        loop {
            let outcome =
                std::mem::take(&mut *self.waiter.outcome.lock().unwrap_or_else(PoisonError::into_inner));
            match outcome {
                Outcome::Waiting => self.waiter.notify.notified().await,
                Outcome::Started(admitted) => return Ok(admitted),
                Outcome::Expired(rejection) => return Err(rejection),
            }
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (tenant, id, waiter) = (self.tenant, self.id, &self.waiter);
        self.shared.with(|core, now| {
            // Under the breaker's lock, where outcomes are written: this one cannot change now.
            let outcome = std::mem::take(&mut *waiter.outcome.lock().unwrap_or_else(PoisonError::into_inner));
            match outcome {
                Outcome::Waiting => {
                    core.cancel(now, tenant, id);
                }
                Outcome::Started(admitted) => core.release(now, admitted, None),
                Outcome::Expired(_) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll, Waker};

    fn breaker(capacity: u64, depth: u64) -> Breaker {
        let config =
            BreakerConfig { capacity_units: capacity, queue_depth_units: depth, ..BreakerConfig::default() };
        Breaker::new(config, None).expect("valid config")
    }

    fn mb(memory_mb: u64) -> Ticket {
        Ticket::new(memory_mb)
    }

    /// Polls once without a runtime waker: "at once" means ready on the first poll.
    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn ready<T>(poll: Poll<T>) -> T {
        match poll {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }

    #[tokio::test]
    async fn rejects_beyond_depth_then_succeeds_after_release() {
        let breaker = breaker(1, 1);
        let grant = breaker.acquire(mb(1)).await.expect("first fits");
        let second = ready(poll_once(pin!(breaker.acquire(mb(1)))));
        assert_eq!(
            second.expect_err("queue is full"),
            Rejection::QueueFull { units: 1, pending: 1, depth: 1 }
        );
        drop(grant);
        let again = breaker.acquire(mb(1)).await.expect("fits after release");
        assert_eq!(again.units(), 1);
    }

    #[tokio::test]
    async fn two_small_holders_block_a_larger_request_until_both_release() {
        let breaker = breaker(2, 4);
        let a = breaker.acquire(mb(1)).await.expect("a");
        let b = breaker.acquire(mb(1)).await.expect("b");
        let mut big = pin!(breaker.acquire(mb(2)));
        assert!(poll_once(big.as_mut()).is_pending());
        drop(a);
        assert!(poll_once(big.as_mut()).is_pending(), "one unit free is not enough");
        drop(b);
        let grant = ready(poll_once(big.as_mut())).expect("both released");
        assert_eq!(grant.units(), 2);
        assert_eq!(breaker.snapshot().in_flight_units, 2);
    }

    #[tokio::test]
    async fn fails_fast_under_overload() {
        let breaker = breaker(1, 2);
        let _held = breaker.acquire(mb(1)).await.expect("held");
        let mut queued = pin!(breaker.acquire(mb(1)));
        assert!(poll_once(queued.as_mut()).is_pending());
        let third = ready(poll_once(pin!(breaker.acquire(mb(1)))));
        assert!(matches!(third, Err(Rejection::QueueFull { pending: 2, .. })));
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.in_flight_requests, snapshot.queued_requests), (1, 1));
    }

    #[tokio::test]
    async fn large_head_waiter_starts_before_smaller_later_arrivals() {
        let breaker = breaker(10, 100);
        let first = breaker.acquire(mb(8)).await.expect("first");
        let mut large = pin!(breaker.acquire(mb(9)));
        assert!(poll_once(large.as_mut()).is_pending());
        // 8 + 2 fits capacity, but the large waiter is ahead: no overtaking.
        let mut small = pin!(breaker.acquire(mb(2)));
        assert!(poll_once(small.as_mut()).is_pending());
        assert_eq!(breaker.snapshot().queued_requests, 2);

        drop(first);
        let large = ready(poll_once(large.as_mut())).expect("head starts first");
        assert!(poll_once(small.as_mut()).is_pending(), "9 + 2 > 10");
        drop(large);
        ready(poll_once(small.as_mut())).expect("small starts next");
    }

    #[tokio::test]
    async fn releasing_starts_every_queued_head_that_fits() {
        let breaker = breaker(10, 100);
        let first = breaker.acquire(mb(10)).await.expect("first");
        let mut a = pin!(breaker.acquire(mb(3)));
        let mut b = pin!(breaker.acquire(mb(3)));
        assert!(poll_once(a.as_mut()).is_pending());
        assert!(poll_once(b.as_mut()).is_pending());
        drop(first);
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.in_flight_units, snapshot.queued_units), (6, 0));
        ready(poll_once(a.as_mut())).expect("a");
        ready(poll_once(b.as_mut())).expect("b");
    }

    #[tokio::test]
    async fn dropping_a_queued_acquire_returns_its_units() {
        let breaker = breaker(4, 8);
        let held = breaker.acquire(mb(4)).await.expect("held");
        let timed_out = tokio::time::timeout(Duration::from_millis(10), breaker.acquire(mb(4))).await;
        assert!(timed_out.is_err(), "queued request should still be waiting");
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.queued_units, snapshot.queued_requests), (0, 0));
        // The 4 queued units are back: a 4-unit request fits the queue again.
        let mut later = pin!(breaker.acquire(mb(4)));
        assert!(poll_once(later.as_mut()).is_pending());
        drop(held);
        ready(poll_once(later.as_mut())).expect("later starts");
    }

    #[tokio::test]
    async fn dropping_the_queued_head_lets_the_next_one_start() {
        let breaker = breaker(10, 100);
        let _held = breaker.acquire(mb(5)).await.expect("held");
        let mut head = Box::pin(breaker.acquire(mb(10)));
        assert!(poll_once(head.as_mut()).is_pending());
        let mut next = pin!(breaker.acquire(mb(5)));
        assert!(poll_once(next.as_mut()).is_pending());
        drop(head);
        ready(poll_once(next.as_mut())).expect("next fits once the head left");
    }

    #[tokio::test]
    async fn dropping_an_admitted_but_unpolled_acquire_releases_its_units() {
        let breaker = breaker(4, 8);
        let held = breaker.acquire(mb(4)).await.expect("held");
        let mut waiter = Box::pin(breaker.acquire(mb(4)));
        assert!(poll_once(waiter.as_mut()).is_pending());
        drop(held);
        assert_eq!(breaker.snapshot().in_flight_units, 4, "started on release");
        drop(waiter);
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.in_flight_units, snapshot.queued_units), (0, 0));
        assert_eq!(snapshot.in_flight_requests, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counters_return_to_zero_after_concurrent_acquires_and_cancellations() {
        let breaker = Arc::new(breaker(10, 30));
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let breaker = Arc::clone(&breaker);
                tokio::spawn(async move {
                    let wait = Duration::from_micros(50 * (i % 7));
                    if let Ok(Ok(_grant)) = tokio::time::timeout(wait, breaker.acquire(mb(1 + i % 5))).await {
                        tokio::task::yield_now().await;
                        return true;
                    }
                    false
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.expect("task"));
        }
        // The counters came back to zero after real grants, not only after refusals.
        assert!(admitted >= 1, "no acquire succeeded");
        let snapshot = breaker.snapshot();
        assert_eq!(
            (
                snapshot.in_flight_units,
                snapshot.queued_units,
                snapshot.in_flight_requests,
                snapshot.queued_requests
            ),
            (0, 0, 0, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cpu_gate_holds_then_releases_on_the_timer_alone() {
        let recheck = Duration::from_millis(50);
        let gauge = Arc::new(CpuGauge::new());
        gauge.set(3.0);
        let config = BreakerConfig {
            capacity_units: 100,
            queue_depth_units: 200,
            cpu_threshold: Some(1.5),
            gate_recheck: recheck,
            ..BreakerConfig::default()
        };
        let breaker = Arc::new(Breaker::new(config, Some(Arc::clone(&gauge))).expect("config"));
        let waiter = tokio::spawn({
            let breaker = Arc::clone(&breaker);
            async move { breaker.acquire(mb(10)).await.map(|grant| grant.units()) }
        });
        tokio::time::sleep(recheck * 5).await;
        assert!(!waiter.is_finished(), "cpu above threshold must hold the request");
        assert_eq!(breaker.snapshot().queued_requests, 1);

        gauge.set(0.5);
        let admitted = tokio::time::timeout(recheck * 3, waiter)
            .await
            .expect("admitted within a few recheck periods")
            .expect("task");
        assert_eq!(admitted, Ok(10));
    }

    #[tokio::test]
    async fn cpu_gate_blocks_the_fast_path_too() {
        let gauge = Arc::new(CpuGauge::new());
        gauge.set(2.0);
        let config = BreakerConfig { cpu_threshold: Some(1.0), ..BreakerConfig::default() };
        let breaker = Breaker::new(config, Some(gauge)).expect("config");
        assert!(poll_once(pin!(breaker.acquire(mb(1)))).is_pending());
    }

    #[tokio::test]
    async fn oversize_request_is_rejected_at_once() {
        let breaker = breaker(100, 1000);
        let result = ready(poll_once(pin!(breaker.acquire(mb(101)))));
        let rejection = result.expect_err("too large");
        assert_eq!(rejection, Rejection::TooLarge { units: 101, capacity: 100 });
        assert!(rejection.to_string().contains("exceeds capacity"));
        assert_eq!(breaker.snapshot().queued_units, 0);
    }

    #[test]
    fn rejection_messages_carry_the_numbers() {
        let full = Rejection::QueueFull { units: 200, pending: 15900, depth: 16000 };
        let text = full.to_string();
        assert!(text.contains("queue full"), "{text}");
        assert!(text.contains("200") && text.contains("15900") && text.contains("16000"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_timeout_expires_the_waiter_on_the_timer_and_returns_its_units() {
        let breaker = breaker(10, 100);
        let held = breaker.acquire(mb(10)).await.expect("held");
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let result = breaker.acquire(Ticket { queue_timeout: Some(timeout), ..mb(5) }).await;
        let Err(Rejection::QueueTimeout { units, waited }) = result else {
            panic!("expected a queue timeout, got {result:?}");
        };
        assert_eq!(units, 5);
        assert!(waited >= timeout && started.elapsed() >= timeout, "{waited:?}");
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.queued_units, snapshot.queued_requests, snapshot.in_flight_units), (0, 0, 10));
        let default_tenant = &breaker.tenant_snapshots()[0];
        assert_eq!(default_tenant.refusals.get(crate::RefusalReason::QueueTimeout), 1);
        drop(held);
        assert_eq!(breaker.snapshot().in_flight_units, 0);
    }

    #[tokio::test]
    async fn a_flooding_tenant_is_refused_beyond_its_cap_and_another_tenant_is_served_in_turn() {
        let config = BreakerConfig {
            capacity_units: 10,
            queue_depth_units: 40,
            tenant_limits: TenantLimits { max_in_flight_units: 10, max_queued_units: 10 },
            fair_quantum_units: 1,
            ..BreakerConfig::default()
        };
        let breaker = Breaker::new(config, None).expect("config");
        let (a, b) = (breaker.tenant("a"), breaker.tenant("b"));
        let ticket = |tenant| Ticket { tenant, ..mb(1) };
        let mut a_running = Vec::new();
        for _ in 0..10 {
            a_running.push(breaker.acquire(ticket(a)).await.expect("a fills the pod"));
        }
        // Tenant A floods at 10x the capacity: 10 wait (its queued cap), 90 are refused at once.
        let mut a_waiting: Vec<_> = (0..10).map(|_| Box::pin(breaker.acquire(ticket(a)))).collect();
        for waiter in &mut a_waiting {
            assert!(poll_once(waiter.as_mut()).is_pending());
        }
        for _ in 0..90 {
            let refused = ready(poll_once(pin!(breaker.acquire(ticket(a)))));
            assert!(matches!(refused, Err(Rejection::TenantQueueFull { .. })), "{refused:?}");
        }
        // Tenant B is never refused, and its requests start every other release.
        let mut b_waiting: Vec<_> = (0..3).map(|_| Box::pin(breaker.acquire(ticket(b)))).collect();
        for waiter in &mut b_waiting {
            assert!(poll_once(waiter.as_mut()).is_pending(), "b waits for room, it is not refused");
        }
        let mut b_started = Vec::new();
        let mut b_running = Vec::new();
        for release in 1..=6 {
            drop(a_running.pop());
            for (i, waiter) in b_waiting.iter_mut().enumerate() {
                if !b_started.iter().any(|&(j, _)| j == i) {
                    if let Poll::Ready(grant) = poll_once(waiter.as_mut()) {
                        b_started.push((i, release));
                        b_running.push(grant.expect("b admitted"));
                    }
                }
            }
        }
        // A was at its in-flight cap, so B's first request was the only one that could start.
        // From then on the two alternate: deficit round robin with a quantum of one request.
        assert_eq!(b_started, [(0, 1), (1, 3), (2, 5)], "b's requests in order, every other release");
        let tenants = breaker.tenant_snapshots();
        let refusals = |name: &str| tenants.iter().find(|t| &*t.name == name).expect(name).refusals;
        assert_eq!(refusals("a").get(crate::RefusalReason::TenantQueueFull), 90);
        assert_eq!(refusals("b").total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_gate_holds_until_real_memory_falls_on_the_timer_alone() {
        let recheck = Duration::from_millis(50);
        let config = BreakerConfig {
            memory_high_water_bytes: Some(1000),
            gate_recheck: recheck,
            ..BreakerConfig::default()
        };
        let breaker = Arc::new(Breaker::new(config, None).expect("config"));
        let real = Arc::new(std::sync::atomic::AtomicU64::new(1000));
        breaker.watch_real_memory({
            let real = Arc::clone(&real);
            move || real.load(std::sync::atomic::Ordering::Relaxed)
        });
        let waiter = tokio::spawn({
            let breaker = Arc::clone(&breaker);
            async move { breaker.acquire(mb(10)).await.map(|grant| grant.units()) }
        });
        tokio::time::sleep(recheck * 5).await;
        assert!(!waiter.is_finished(), "real memory at the high-water mark must hold the request");
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.queued_requests, snapshot.memory_gate_open), (1, false));
        assert_eq!(snapshot.real_memory_bytes, 1000);

        real.store(999, std::sync::atomic::Ordering::Relaxed);
        let admitted = tokio::time::timeout(recheck * 3, waiter)
            .await
            .expect("admitted within a few recheck periods")
            .expect("task");
        assert_eq!(admitted, Ok(10));
        assert!(breaker.snapshot().memory_gate_open);
    }

    #[tokio::test]
    async fn finished_grants_teach_their_function_a_learned_weight() {
        let config = BreakerConfig {
            learning: crate::Learning {
                mode: crate::WeightMode::Learned,
                after: 3,
                ..crate::Learning::default()
            },
            ..BreakerConfig::default()
        };
        let breaker = Breaker::new(config, None).expect("config");
        let f = breaker.function("/f");
        let ticket = Ticket { function: Some(f), ..mb(100) };
        for _ in 0..3 {
            let grant = breaker.acquire(ticket).await.expect("admitted");
            assert_eq!(grant.units(), 100, "declared until learned");
            grant.finish(8 << 20);
        }
        // A failed request (dropped grant) teaches nothing.
        drop(breaker.acquire(ticket).await.expect("admitted"));
        let grant = breaker.acquire(ticket).await.expect("admitted");
        assert_eq!((grant.units(), grant.memory_mb()), (10, 100), "8 MB x 1.25; the grant stays 100 MB");
        assert_eq!(breaker.snapshot().in_flight_units, 10);
        let learned = &breaker.function_snapshots()[0];
        assert_eq!((learned.completed, learned.learned_mb), (3, Some(10)));
        drop(grant);
        assert_eq!(breaker.snapshot().in_flight_units, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_breaker_ends_its_timer_task_and_grants_still_release() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let breaker = breaker(10, 100);
        let held = breaker.acquire(mb(10)).await.expect("held");
        // A queue timeout is the timer task's job.
        let timed_out =
            breaker.acquire(Ticket { queue_timeout: Some(Duration::from_millis(10)), ..mb(1) }).await;
        assert!(matches!(timed_out, Err(Rejection::QueueTimeout { .. })), "{timed_out:?}");
        assert_eq!(metrics.num_alive_tasks(), 1, "one timer task");
        drop(breaker);
        for _ in 0..100 {
            if metrics.num_alive_tasks() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(metrics.num_alive_tasks(), 0, "the timer task ended with its breaker");
        drop(held);
    }

    /// Issue 10's test of record at the admission level, in virtual time: tenant A floods the pod
    /// at 10x its capacity while tenant B sends a light steady load.
    #[tokio::test(start_paused = true)]
    async fn a_flood_at_ten_times_capacity_costs_another_tenant_nothing() {
        struct Load {
            tenant: &'static str,
            every: Duration,
            count: u32,
            memory_mb: u64,
            runs_for: Duration,
        }
        /// Starts every request of `loads` on schedule; returns per tenant the latencies (wait plus
        /// run) of the completed requests and the number refused, with the longest refusal time.
        async fn run(loads: Vec<Load>, max_in_flight_units: u64) -> Vec<(Vec<Duration>, u32, Duration)> {
            let config = BreakerConfig {
                capacity_units: 1000,
                queue_depth_units: 2000,
                // One tenant may queue half the queue room, as the defaults are sized.
                tenant_limits: TenantLimits { max_in_flight_units, max_queued_units: 500 },
                fair_quantum_units: 100,
                ..BreakerConfig::default()
            };
            let breaker = Arc::new(Breaker::new(config, None).expect("config"));
            let mut tasks = Vec::new();
            for load in &loads {
                let tenant = breaker.tenant(load.tenant);
                let (every, count, memory_mb, runs_for) =
                    (load.every, load.count, load.memory_mb, load.runs_for);
                let breaker = Arc::clone(&breaker);
                tasks.push(tokio::spawn(async move {
                    let mut requests = Vec::new();
                    for _ in 0..count {
                        let breaker = Arc::clone(&breaker);
                        requests.push(tokio::spawn(async move {
                            let arrived = Instant::now();
                            let ticket = Ticket {
                                tenant,
                                queue_timeout: Some(Duration::from_secs(10)),
                                ..mb(memory_mb)
                            };
                            let grant = breaker.acquire(ticket).await;
                            let waited = arrived.elapsed();
                            if grant.is_ok() {
                                tokio::time::sleep(runs_for).await;
                            }
                            (grant.is_ok(), waited, arrived.elapsed())
                        }));
                        tokio::time::sleep(every).await;
                    }
                    let (mut latencies, mut refused, mut slowest_refusal) = (Vec::new(), 0, Duration::ZERO);
                    for request in requests {
                        let (admitted, waited, latency) = request.await.expect("request task");
                        if admitted {
                            latencies.push(latency);
                        } else {
                            refused += 1;
                            slowest_refusal = slowest_refusal.max(waited);
                        }
                    }
                    latencies.sort();
                    (latencies, refused, slowest_refusal)
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("load task"));
            }
            let snapshot = breaker.snapshot();
            assert_eq!((snapshot.in_flight_units, snapshot.queued_units), (0, 0));
            results
        }
        let ms = Duration::from_millis;
        let percentile = |latencies: &[Duration], p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize).max(1) - 1]
        };
        // B: 200 requests of 100 MB, one every 10 ms, each running 5 ms.
        let b = || Load { tenant: "b", every: ms(10), count: 200, memory_mb: 100, runs_for: ms(5) };
        // A: 100 MB requests running 50 ms; the capacity runs 10 at once, 200 per second; A sends
        // 2,000 per second.
        let a = || Load {
            tenant: "a",
            every: Duration::from_micros(500),
            count: 4000,
            memory_mb: 100,
            runs_for: ms(50),
        };

        let alone = run(vec![b()], 1000).await;
        let (b_alone, _, _) = &alone[0];
        let (alone_p50, alone_p99) = (percentile(b_alone, 0.5), percentile(b_alone, 0.99));
        println!("b alone: p50 {alone_p50:?} p99 {alone_p99:?}");
        // A tenant may hold the whole capacity (the default caps), or 80% of it.
        for a_cap in [1000, 800] {
            let flooded = run(vec![a(), b()], a_cap).await;
            let (a_done, a_refused, a_slowest_refusal) = &flooded[0];
            let (b_done, b_refused, _) = &flooded[1];
            assert_eq!((*b_refused, b_done.len()), (0, 200), "b: no refusal, every request completes");
            assert!(*a_refused > 3000, "a is refused beyond its caps: {a_refused} of 4000");
            assert_eq!(*a_slowest_refusal, Duration::ZERO, "a's refusals are immediate");
            assert!(a_done.len() >= 350, "a still gets the capacity b leaves: {} done", a_done.len());
            let (p50, p99) = (percentile(b_done, 0.5), percentile(b_done, 0.99));
            println!(
                "a's in-flight cap {a_cap} MB: b under a's flood p50 {p50:?} p99 {p99:?}; a completed {}, refused {a_refused}",
                a_done.len()
            );
            if a_cap == 1000 {
                // A holds the whole capacity, so b waits for one of a's releases, never behind a's
                // queue: at most one a-request's run time (50 ms).
                assert!(p99 <= alone_p99 + ms(50), "b's p99 {p99:?} against {alone_p99:?} alone");
            } else {
                // With room left by a's cap, b never waits.
                assert_eq!(p99, alone_p99, "b's p99 under the flood against alone");
            }
        }
    }
}
