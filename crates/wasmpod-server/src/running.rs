//! The guests running now: how many (for the shutdown log), and, once the shutdown timeout has
//! passed, a log line for each guest the server stops before it finished.
//!
//! A request holds a [`RunningGuest`] from admission until its guest ends. Nothing is kept per
//! request beyond that token: when the server stops the unfinished requests (by dropping them),
//! each token logs itself as it is dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The count of running guests, and whether the server is stopping them.
#[derive(Debug, Default)]
pub(crate) struct RunningGuests {
    count: AtomicUsize,
    stopping: AtomicBool,
}

impl RunningGuests {
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
        if !self.finished && self.set.stopping.load(Ordering::SeqCst) {
            tracing::warn!(
                function = %self.function,
                request_id = self.request_id,
                running_ms = self.started.elapsed().as_millis() as u64,
                "shutdown timeout: guest stopped before it finished"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_follows_tokens_finished_or_dropped() {
        let set = Arc::new(RunningGuests::default());
        let a = set.enter(Arc::from("/a"), 1);
        let b = set.enter(Arc::from("/b"), 2);
        assert_eq!(set.count(), 2);
        a.finish();
        assert_eq!(set.count(), 1);
        set.stop_all();
        drop(b);
        assert_eq!(set.count(), 0);
    }
}
