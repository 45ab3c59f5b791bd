//! The guests running now: how many (for the shutdown log), and a log line for each guest stopped
//! before it finished: by the shutdown timeout, or because its client went away (hyper drops the
//! request, which drops the guest and its grant; the `requests_cancelled` counter shows it).
//!
//! A request holds a [`RunningGuest`] from admission until its guest ends. Nothing is kept per
//! request beyond that token: when a request is dropped unfinished, its token logs itself as it
//! is dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

/// The count of running guests, and whether the server is stopping them.
#[derive(Debug, Default)]
pub(crate) struct RunningGuests {
    count: AtomicUsize,
    stopping: AtomicBool,
    /// Guests stopped because their client went away.
    cancelled: Counter,
}

impl RunningGuests {
    /// No guest running yet; `cancelled` counts those whose client goes away.
    pub(crate) fn new(cancelled: Counter) -> RunningGuests {
        RunningGuests { cancelled, ..RunningGuests::default() }
    }

    /// A guest of `function` starts running for request `request_id`.
    pub(crate) fn enter(self: &Arc<Self>, function: Arc<str>, request_id: u64) -> RunningGuest {
        self.count.fetch_add(1, Ordering::Relaxed);
        RunningGuest { set: self.clone(), function, request_id, started: Instant::now(), finished: false }
    }

    /// Guests running now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// From now on, a guest dropped before it finished was stopped by the shutdown, and says so.
    pub(crate) fn stop_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }
}

/// Held while one guest runs; see the module docs.
#[derive(Debug)]
pub(crate) struct RunningGuest {
    set: Arc<RunningGuests>,
    function: Arc<str>,
    request_id: u64,
    started: Instant,
    finished: bool,
}

impl RunningGuest {
    /// The guest ended on its own (answered, failed or timed out).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        self.set.count.fetch_sub(1, Ordering::Relaxed);
        if self.finished {
            return;
        }
        let running_ms = self.started.elapsed().as_millis() as u64;
        if self.set.stopping.load(Ordering::SeqCst) {
            tracing::warn!(
                function = %self.function,
                request_id = self.request_id,
                running_ms,
                "shutdown timeout: guest stopped before it finished"
            );
        } else {
            self.set.cancelled.inc();
            tracing::info!(
                function = %self.function,
                request_id = self.request_id,
                running_ms,
                "client went away: guest stopped, its memory released"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_follows_tokens_finished_or_dropped() {
        let cancelled = Counter::default();
        let set = Arc::new(RunningGuests::new(cancelled.clone()));
        let a = set.enter(Arc::from("/a"), 1);
        let b = set.enter(Arc::from("/b"), 2);
        let c = set.enter(Arc::from("/c"), 3);
        assert_eq!(set.count(), 3);
        a.finish();
        assert_eq!(set.count(), 2);
        drop(b);
        assert_eq!((set.count(), cancelled.get()), (1, 1), "a request dropped unfinished was cancelled");
        set.stop_all();
        drop(c);
        assert_eq!((set.count(), cancelled.get()), (0, 1), "the shutdown's stops are not cancellations");
    }
}
