//! The resource breaker: admission by declared memory, in arrival order, behind a CPU gate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::cpu::CpuGauge;

/// The pod's admission settings, named after the Knative settings they replace.
///
/// One unit is one MB of declared memory (`Memory-Request`).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// MB allowed in flight at once (`concurrent-resource-request`). A request declaring more can
    /// never run and is rejected at once.
    pub capacity_units: u64,
    /// Cap on MB running plus queued (`queue-depth-resource-units`). A request that would push
    /// past it is rejected at once rather than left to time out; must be `>= capacity_units`.
    pub queue_depth_units: u64,
    /// CPU cores busy above which no new request starts (`resource-utilization-threshold`).
    /// `None` turns the gate off.
    pub cpu_threshold: Option<f64>,
    /// How often the head waiter re-checks the CPU gate. CPU can fall while nothing completes, so
    /// releases alone cannot be the only wake-up.
    pub cpu_recheck: Duration,
}

/// MB a pod admits in flight unless told otherwise (Knative's `concurrent-resource-request`).
pub const DEFAULT_CAPACITY_MB: u64 = 8000;
/// MB running plus queued beyond which requests are refused at once (`queue-depth-resource-units`).
pub const DEFAULT_QUEUE_DEPTH_MB: u64 = 16000;

impl Default for BreakerConfig {
    /// Knative's defaults for a superpod: 8000 MB in flight, 16000 MB running plus queued, no CPU
    /// gate, re-checked every 50 ms (the sampling period) when a gate is set.
    fn default() -> Self {
        BreakerConfig {
            capacity_units: DEFAULT_CAPACITY_MB,
            queue_depth_units: DEFAULT_QUEUE_DEPTH_MB,
            cpu_threshold: None,
            cpu_recheck: Duration::from_millis(50),
        }
    }
}

/// A configuration the breaker cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    /// Nothing could ever run.
    #[error("concurrent resource capacity must be at least 1 MB, got 0")]
    ZeroCapacity,
    /// Requests that fit capacity would be refused for want of queue room.
    #[error("queue depth ({depth} MB) must be at least the concurrent resource capacity ({capacity} MB)")]
    DepthBelowCapacity { depth: u64, capacity: u64 },
    /// A threshold that no reading compares sensibly against.
    #[error("resource utilization threshold must be a finite, non-negative number of cores, got {0}")]
    InvalidCpuThreshold(f64),
    /// A zero period would turn queued waiters into a busy loop.
    #[error("cpu recheck period must be greater than zero")]
    ZeroCpuRecheck,
}

/// Why a request was refused without waiting. The server answers 503 with this text as the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Running plus queued memory would exceed the queue depth.
    #[error("pending request queue full: {units} MB requested, {pending} MB running or queued, queue depth {depth} MB")]
    QueueFull { units: u64, pending: u64, depth: u64 },
    /// The request declares more memory than may ever be in flight, so it could never run.
    #[error("memory request of {units} MB exceeds capacity of {capacity} MB")]
    TooLarge { units: u64, capacity: u64 },
}

/// The breaker's counters, read together under one lock so they are consistent with each other.
/// These are what `/metrics` and the autoscaler read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub in_flight_units: u64,
    pub queued_units: u64,
    pub in_flight_requests: u64,
    pub queued_requests: u64,
    pub capacity_units: u64,
    pub queue_depth_units: u64,
}

/// Admits requests by declared memory (Wasabi's resource breaker, done right).
///
/// A request asks for `units` MB. It is rejected at once if it could never run
/// ([`Rejection::TooLarge`]) or if running plus queued memory would pass the queue depth
/// ([`Rejection::QueueFull`]). Otherwise it waits, in strict arrival order, until its units fit in
/// capacity and the CPU gate is open, and gets a [`Grant`] that returns the units when dropped.
/// Share one breaker per pod through an `Arc`.
///
/// ```
/// # use wasmpod_admission::{Breaker, BreakerConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let breaker = Breaker::new(BreakerConfig::default(), None).expect("valid config");
/// let grant = breaker.acquire(200).await.expect("admitted");
/// assert_eq!(breaker.snapshot().in_flight_units, 200);
/// drop(grant);
/// assert_eq!(breaker.snapshot().in_flight_units, 0);
/// # }
/// ```
#[derive(Debug)]
pub struct Breaker {
    shared: Arc<Shared>,
}

impl Breaker {
    /// Builds a breaker. `cpu` is the pod's CPU gauge; the gate is on only when both the gauge
    /// and `config.cpu_threshold` are present.
    pub fn new(config: BreakerConfig, cpu: Option<Arc<CpuGauge>>) -> Result<Breaker, AdmissionError> {
        if config.capacity_units == 0 {
            return Err(AdmissionError::ZeroCapacity);
        }
        if config.queue_depth_units < config.capacity_units {
            return Err(AdmissionError::DepthBelowCapacity {
                depth: config.queue_depth_units,
                capacity: config.capacity_units,
            });
        }
        if let Some(threshold) = config.cpu_threshold {
            if !threshold.is_finite() || threshold < 0.0 {
                return Err(AdmissionError::InvalidCpuThreshold(threshold));
            }
        }
        if config.cpu_recheck.is_zero() {
            return Err(AdmissionError::ZeroCpuRecheck);
        }
        let cpu_gate = match (cpu, config.cpu_threshold) {
            (Some(gauge), Some(threshold)) => Some(CpuGate { gauge, threshold }),
            _ => None,
        };
        Ok(Breaker {
            shared: Arc::new(Shared {
                capacity: config.capacity_units,
                depth: config.queue_depth_units,
                cpu_gate,
                cpu_recheck: config.cpu_recheck,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// Waits for `units` MB of admission, or refuses at once.
    ///
    /// Cancellation-safe: dropping the future while queued (client gone, caller's
    /// `tokio::time::timeout`) removes the waiter and returns its units at once; if it was
    /// admitted in the meantime, its units are released as if the grant had been dropped.
    pub async fn acquire(&self, units: u64) -> Result<Grant, Rejection> {
        let (id, notify) = {
            let mut state = self.shared.lock();
            if units > self.shared.capacity {
                return Err(Rejection::TooLarge { units, capacity: self.shared.capacity });
            }
            if state.pending_units.saturating_add(units) > self.shared.depth {
                return Err(Rejection::QueueFull {
                    units,
                    pending: state.pending_units,
                    depth: self.shared.depth,
                });
            }
            state.pending_units += units;
            // Fast path: one lock, no allocation beyond the grant's reference count.
            if state.waiters.is_empty() && self.shared.fits(&state, units, self.shared.cpu_open()) {
                state.start(units);
                return Ok(Grant { shared: Arc::clone(&self.shared), units });
            }
            let id = state.next_id;
            state.next_id += 1;
            let notify = Arc::new(Notify::new());
            state.waiters.push_back(Waiter { id, units, notify: Arc::clone(&notify) });
            (id, notify)
        };
        // Armed before the first await, so dropping this future at any later point cleans up.
        let mut queued = Queued { shared: &self.shared, id, units, armed: true };
        queued.wait(&notify).await;
        queued.armed = false;
        Ok(Grant { shared: Arc::clone(&self.shared), units })
    }

    /// The current counters, consistent with each other.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.shared.lock();
        Snapshot {
            in_flight_units: state.in_flight_units,
            queued_units: state.pending_units - state.in_flight_units,
            in_flight_requests: state.in_flight_requests,
            queued_requests: state.waiters.len() as u64,
            capacity_units: self.shared.capacity,
            queue_depth_units: self.shared.depth,
        }
    }
}

/// Admission of `units` MB. Dropping it returns the units and starts as many queued requests as
/// now fit, so hold it for exactly as long as the request runs.
#[derive(Debug)]
pub struct Grant {
    shared: Arc<Shared>,
    units: u64,
}

impl Grant {
    /// The MB this grant holds: the request's admission weight and its memory limit.
    pub fn units(&self) -> u64 {
        self.units
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.finish(self.units);
        self.shared.admit_heads(&mut state, false);
    }
}

/// Turns a `Memory-Request` header value (MB, a float) into admission units.
///
/// A positive finite value is rounded *up* to whole MB, so a request is never granted less memory
/// than it declared (Wasabi truncates). A missing, empty, non-UTF-8, unparsable, NaN, infinite,
/// zero or negative value yields `default_units`: zero MB cannot run a module, so `0` is treated
/// as "not declared" rather than as a free pass. Surrounding whitespace is ignored.
pub fn units_from_header(value: Option<&[u8]>, default_units: u64) -> u64 {
    let Some(text) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
        return default_units;
    };
    match text.trim().parse::<f64>() {
        // `as` saturates, so an absurd value becomes u64::MAX and is rejected as too large.
        Ok(mb) if mb.is_finite() && mb > 0.0 => mb.ceil() as u64,
        _ => default_units,
    }
}

/// What the breaker and its grants share.
#[derive(Debug)]
struct Shared {
    capacity: u64,
    depth: u64,
    cpu_gate: Option<CpuGate>,
    cpu_recheck: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct CpuGate {
    gauge: Arc<CpuGauge>,
    threshold: f64,
}

/// Counters and the FIFO of waiters. `pending_units` counts running plus queued units.
#[derive(Debug, Default)]
struct State {
    in_flight_units: u64,
    pending_units: u64,
    in_flight_requests: u64,
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

/// A queued request. Ids increase in arrival order, so the queue is sorted by id.
#[derive(Debug)]
struct Waiter {
    id: u64,
    units: u64,
    notify: Arc<Notify>,
}

impl Shared {
    /// No code panics while holding the lock, so a poisoned lock still holds consistent counters.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cpu_open(&self) -> bool {
        self.cpu_gate.as_ref().is_none_or(|gate| gate.gauge.cores() <= gate.threshold)
    }

    fn fits(&self, state: &State, units: u64, cpu_open: bool) -> bool {
        cpu_open && state.in_flight_units + units <= self.capacity
    }

    /// Starts queued heads, in order, while they fit; wakes each one started. When the head
    /// changed (or `head_changed` says it did) and a CPU gate exists, the new head is woken so it
    /// arms its recheck timer.
    fn admit_heads(&self, state: &mut State, mut head_changed: bool) {
        let cpu_open = self.cpu_open();
        while let Some(head) = state.waiters.front() {
            if !self.fits(state, head.units, cpu_open) {
                break;
            }
            let units = head.units;
            head.notify.notify_one();
            state.waiters.pop_front();
            state.start(units);
            head_changed = true;
        }
        if head_changed && self.cpu_gate.is_some() {
            if let Some(head) = state.waiters.front() {
                head.notify.notify_one();
            }
        }
    }
}

impl State {
    fn start(&mut self, units: u64) {
        self.in_flight_units += units;
        self.in_flight_requests += 1;
    }

    fn finish(&mut self, units: u64) {
        debug_assert!(self.in_flight_units >= units && self.pending_units >= units);
        self.in_flight_units -= units;
        self.pending_units -= units;
        self.in_flight_requests -= 1;
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.waiters.binary_search_by_key(&id, |w| w.id).ok()
    }
}

/// A request in the queue. While armed, dropping it takes the request out of the queue, or, if it
/// was started meanwhile, releases what it was granted.
struct Queued<'a> {
    shared: &'a Shared,
    id: u64,
    units: u64,
    armed: bool,
}

impl Queued<'_> {
    /// Returns once this request has been started (its units are then in flight).
    ///
    /// Every waiter sleeps on its own notification: it is woken when started, and when it becomes
    /// the head. Only the head, and only when a CPU gate exists, also wakes on a timer to re-check
    /// the gate, so a long queue costs one timer, not one per waiter.
    async fn wait(&self, notify: &Notify) {
        let gated = self.shared.cpu_gate.is_some();
        loop {
            let is_head = match self.shared.lock().position(self.id) {
                None => return,
                Some(index) => index == 0,
            };
            if is_head && gated {
                tokio::select! {
                    () = notify.notified() => {}
                    () = tokio::time::sleep(self.shared.cpu_recheck) => {
                        let mut state = self.shared.lock();
                        self.shared.admit_heads(&mut state, false);
                    }
                }
            } else {
                notify.notified().await;
            }
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.shared.lock();
        match state.position(self.id) {
            Some(index) => {
                state.waiters.remove(index);
                state.pending_units -= self.units;
                // Only the head blocks others; a waiter behind it leaving changes nothing.
                if index == 0 {
                    self.shared.admit_heads(&mut state, true);
                }
            }
            None => {
                state.finish(self.units);
                self.shared.admit_heads(&mut state, false);
            }
        }
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
        let grant = breaker.acquire(1).await.expect("first fits");
        let second = ready(poll_once(pin!(breaker.acquire(1))));
        assert_eq!(
            second.expect_err("queue is full"),
            Rejection::QueueFull { units: 1, pending: 1, depth: 1 }
        );
        drop(grant);
        let again = breaker.acquire(1).await.expect("fits after release");
        assert_eq!(again.units(), 1);
    }

    #[tokio::test]
    async fn two_small_holders_block_a_larger_request_until_both_release() {
        let breaker = breaker(2, 4);
        let a = breaker.acquire(1).await.expect("a");
        let b = breaker.acquire(1).await.expect("b");
        let mut big = pin!(breaker.acquire(2));
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
        let _held = breaker.acquire(1).await.expect("held");
        let mut queued = pin!(breaker.acquire(1));
        assert!(poll_once(queued.as_mut()).is_pending());
        let third = ready(poll_once(pin!(breaker.acquire(1))));
        assert!(matches!(third, Err(Rejection::QueueFull { pending: 2, .. })));
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.in_flight_requests, snapshot.queued_requests), (1, 1));
    }

    #[tokio::test]
    async fn large_head_waiter_starts_before_smaller_later_arrivals() {
        let breaker = breaker(10, 100);
        let first = breaker.acquire(8).await.expect("first");
        let mut large = pin!(breaker.acquire(9));
        assert!(poll_once(large.as_mut()).is_pending());
        // 8 + 2 fits capacity, but the large waiter is ahead: no overtaking.
        let mut small = pin!(breaker.acquire(2));
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
        let first = breaker.acquire(10).await.expect("first");
        let mut a = pin!(breaker.acquire(3));
        let mut b = pin!(breaker.acquire(3));
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
        let held = breaker.acquire(4).await.expect("held");
        let timed_out = tokio::time::timeout(Duration::from_millis(10), breaker.acquire(4)).await;
        assert!(timed_out.is_err(), "queued request should still be waiting");
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.queued_units, snapshot.queued_requests), (0, 0));
        // The 4 queued units are back: a 4-unit request fits the queue again.
        let mut later = pin!(breaker.acquire(4));
        assert!(poll_once(later.as_mut()).is_pending());
        drop(held);
        ready(poll_once(later.as_mut())).expect("later starts");
    }

    #[tokio::test]
    async fn dropping_the_queued_head_lets_the_next_one_start() {
        let breaker = breaker(10, 100);
        let _held = breaker.acquire(5).await.expect("held");
        let mut head = Box::pin(breaker.acquire(10));
        assert!(poll_once(head.as_mut()).is_pending());
        let mut next = pin!(breaker.acquire(5));
        assert!(poll_once(next.as_mut()).is_pending());
        drop(head);
        ready(poll_once(next.as_mut())).expect("next fits once the head left");
    }

    #[tokio::test]
    async fn dropping_an_admitted_but_unpolled_acquire_releases_its_units() {
        let breaker = breaker(4, 8);
        let held = breaker.acquire(4).await.expect("held");
        let mut waiter = Box::pin(breaker.acquire(4));
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
                    if let Ok(Ok(_grant)) = tokio::time::timeout(wait, breaker.acquire(1 + i % 5)).await {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
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
            cpu_recheck: recheck,
        };
        let breaker = Arc::new(Breaker::new(config, Some(Arc::clone(&gauge))).expect("config"));
        let waiter = tokio::spawn({
            let breaker = Arc::clone(&breaker);
            async move { breaker.acquire(10).await.map(|grant| grant.units()) }
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
        assert!(poll_once(pin!(breaker.acquire(1))).is_pending());
    }

    #[tokio::test]
    async fn oversize_request_is_rejected_at_once() {
        let breaker = breaker(100, 1000);
        let result = ready(poll_once(pin!(breaker.acquire(101))));
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

    #[test]
    fn constructor_rejects_bad_settings() {
        struct Case {
            capacity: u64,
            depth: u64,
            threshold: Option<f64>,
            recheck: Duration,
            error: Option<AdmissionError>,
        }
        let ms = Duration::from_millis;
        let cases = [
            Case { capacity: 8000, depth: 16000, threshold: None, recheck: ms(50), error: None },
            Case { capacity: 1, depth: 1, threshold: Some(0.0), recheck: ms(1), error: None },
            Case {
                capacity: 2,
                depth: 1,
                threshold: None,
                recheck: ms(50),
                error: Some(AdmissionError::DepthBelowCapacity { depth: 1, capacity: 2 }),
            },
            Case {
                capacity: 0,
                depth: 1,
                threshold: None,
                recheck: ms(50),
                error: Some(AdmissionError::ZeroCapacity),
            },
            Case {
                capacity: 1,
                depth: 1,
                threshold: Some(-1.0),
                recheck: ms(50),
                error: Some(AdmissionError::InvalidCpuThreshold(-1.0)),
            },
            Case {
                capacity: 1,
                depth: 1,
                threshold: None,
                recheck: Duration::ZERO,
                error: Some(AdmissionError::ZeroCpuRecheck),
            },
        ];
        for case in cases {
            let config = BreakerConfig {
                capacity_units: case.capacity,
                queue_depth_units: case.depth,
                cpu_threshold: case.threshold,
                cpu_recheck: case.recheck,
            };
            let got = Breaker::new(config.clone(), None).err();
            assert_eq!(got, case.error, "{config:?}");
        }
    }

    #[test]
    fn units_from_header_rounds_up_and_falls_back_to_the_default() {
        struct Case {
            value: Option<&'static [u8]>,
            units: u64,
        }
        let cases = [
            Case { value: None, units: 200 },
            Case { value: Some(b""), units: 200 },
            Case { value: Some(b"abc"), units: 200 },
            Case { value: Some(b"-5"), units: 200 },
            Case { value: Some(b"0"), units: 200 },
            Case { value: Some(b"1"), units: 1 },
            Case { value: Some(b"1.2"), units: 2 },
            Case { value: Some(b"0.001"), units: 1 },
            Case { value: Some(b"200"), units: 200 },
            Case { value: Some(b" 64 "), units: 64 },
            Case { value: Some(b"nan"), units: 200 },
            Case { value: Some(b"inf"), units: 200 },
            Case { value: Some(b"\xff\xfe"), units: 200 },
            Case { value: Some(b"1e300"), units: u64::MAX },
        ];
        for case in cases {
            assert_eq!(
                units_from_header(case.value, 200),
                case.units,
                "{:?}",
                case.value.map(String::from_utf8_lossy)
            );
        }
    }
}
