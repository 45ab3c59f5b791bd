//! Per-request limits enforced inside the store.

use std::time::Duration;

/// The limits one request runs under. Built by the server from the admission grant and config.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The instance's total memory (every linear memory and table) may not grow past this.
    pub memory_bytes: Option<u64>,
    /// Wall-clock time the guest may run before it is stopped (504).
    pub timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { memory_bytes: None, timeout: Duration::from_secs(30) }
    }
}

/// Counts the whole instance's memory against the request's grant.
///
/// wasmtime's `StoreLimits` caps each linear memory on its own; a grant is a promise about the
/// instance as a whole, so this limiter sums memories and tables. It also records the peak for
/// the metrics and whether a growth was refused, so the error can say why the guest trapped.
#[derive(Debug, Default)]
pub(crate) struct MemoryLimiter {
    pub(crate) limit: Option<u64>,
    pub(crate) used: u64,
    pub(crate) peak: u64,
    pub(crate) refused: bool,
}

/// Bytes a table element is charged (a pointer on the host).
const TABLE_ELEMENT_BYTES: u64 = 8;

impl MemoryLimiter {
    pub(crate) fn new(limit: Option<u64>) -> MemoryLimiter {
        MemoryLimiter { limit, ..MemoryLimiter::default() }
    }

    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let used = self.used - current.min(self.used) + desired;
        if let Some(limit) = self.limit {
            if used > limit {
                self.refused = true;
                // A trap, not a failed grow: a guest told "no" usually aborts anyway, and the
                // trap carries the reason to the log.
                return Err(wasmtime::format_err!("memory limit of {} MB exceeded", limit / (1 << 20)));
            }
        }
        self.used = used;
        self.peak = self.peak.max(used);
        Ok(true)
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
        1
    }
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
        assert!(limiter.grow(4 << 20, 7 << 20).is_err());
        assert!(limiter.refused);
        assert_eq!(limiter.peak, 8 << 20);
        assert!(limiter.grow(4 << 20, 5 << 20).unwrap());
        assert_eq!(limiter.peak, 9 << 20);
    }

    #[test]
    fn unlimited_limiter_only_counts() {
        let mut limiter = MemoryLimiter::new(None);
        assert!(limiter.grow(0, 1 << 40).unwrap());
        assert!(!limiter.refused);
    }
}
