//! The average of a per-second metric over a sliding window, with Knative's bucket rules.
//!
//! Values recorded in the same one-second bucket add up (so a caller may record once per pod, or
//! once with the sum). The average divides by the buckets that hold data: a window that started
//! ten seconds ago averages ten buckets, not sixty, and a window whose newest data is ten seconds
//! old averages the buckets it still has. A gap shorter than the window counts as zeros; a gap of a
//! whole window starts the window afresh.

/// A ring of one-second buckets covering one window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    buckets: Box<[f64]>,
    /// Sum of every bucket in the ring (kept as a running total so the average is O(1)).
    total: f64,
    /// The bucket of the first write since the window last started afresh.
    first: u64,
    /// The bucket of the newest write.
    last: u64,
    written: bool,
}

/// Averages keep six decimal digits, as Knative's do: the running total gathers rounding dust
/// (1e-13 MB after the load is gone) that would otherwise ceil to one pod forever.
const DIGITS: f64 = 1e6;

impl Window {
    /// A window of `len` one-second buckets (`len >= 1`).
    pub(crate) fn new(len: u64) -> Self {
        let len = len.max(1) as usize;
        Window { buckets: vec![0.0; len].into_boxed_slice(), total: 0.0, first: 0, last: 0, written: false }
    }

    /// Adds `value` to the bucket `bucket` (a second since the caller's origin).
    ///
    /// A bucket older than the window is ignored; buckets skipped since the newest write are
    /// cleared; a skip of a whole window clears the ring and starts a new partial window.
    pub(crate) fn record(&mut self, bucket: u64, value: f64) {
        let len = self.len();
        if !self.written {
            self.written = true;
            self.first = bucket;
            self.last = bucket;
        } else if bucket > self.last {
            if bucket - self.last >= len {
                self.buckets.fill(0.0);
                self.total = 0.0;
                self.first = bucket;
            } else {
                let mut wrapped = false;
                for second in self.last + 1..=bucket {
                    let slot = self.slot(second);
                    self.total -= self.buckets[slot];
                    self.buckets[slot] = 0.0;
                    wrapped |= slot == 0;
                }
                if wrapped {
                    // Once per trip round the ring: rebuild the total so that float error from
                    // adding and removing buckets never accumulates (O(1) amortised).
                    self.total = self.buckets.iter().sum();
                }
            }
            self.last = bucket;
        } else if bucket < self.last {
            if bucket + len <= self.last {
                return;
            }
            self.first = self.first.min(bucket);
        }
        let slot = self.slot(bucket);
        self.buckets[slot] += value;
        self.total += value;
    }

    /// The average over the window that ends at `bucket`; 0 when the newest data is a whole
    /// window old (or there is none).
    pub(crate) fn average(&self, bucket: u64) -> f64 {
        if !self.written {
            return 0.0;
        }
        let len = self.len();
        let span = self.last - self.first + 1;
        let (sum, buckets) = if bucket <= self.last {
            (self.total, span.min(len))
        } else if bucket - self.last < len {
            // The buckets after the newest write still hold data from a window ago: leave them out.
            let stale: f64 = (self.last + 1..=bucket).map(|second| self.buckets[self.slot(second)]).sum();
            (self.total - stale, span.min(len - (bucket - self.last)))
        } else {
            return 0.0;
        };
        (sum / buckets as f64 * DIGITS).round() / DIGITS
    }

    /// True when nothing was recorded within one window before `bucket`: the caller has no data to
    /// decide on (Knative's "no data" case, which keeps the current scale).
    pub(crate) fn is_empty(&self, bucket: u64) -> bool {
        !self.written || bucket > self.last + self.len()
    }

    fn len(&self) -> u64 {
        self.buckets.len() as u64
    }

    fn slot(&self, second: u64) -> usize {
        (second % self.len()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn a_partial_window_averages_only_the_buckets_written_since_it_started() {
        let mut window = Window::new(60);
        for second in 100..110 {
            window.record(second, 10.0);
        }
        window.record(109, 90.0);
        // Ten buckets: nine of 10 and one of 100.
        assert_eq!(window.average(109), 19.0);
    }

    #[test]
    fn values_recorded_in_one_second_add_up() {
        let mut window = Window::new(6);
        window.record(5, 1.5);
        window.record(5, 2.5);
        assert_eq!(window.average(5), 4.0);
    }

    #[test]
    fn a_full_window_forgets_the_oldest_second() {
        let mut window = Window::new(6);
        window.record(0, 600.0);
        for second in 1..=6 {
            window.record(second, 0.0);
        }
        // Buckets 1..=6 are in the window; the 600 of second 0 has left it.
        assert_eq!(window.average(6), 0.0);
        assert_eq!(window.average(5), 0.0);
        let mut window = Window::new(6);
        window.record(0, 600.0);
        for second in 1..=5 {
            window.record(second, 0.0);
        }
        assert_eq!(window.average(5), 100.0);
    }

    #[test]
    fn a_gap_shorter_than_the_window_counts_as_zeros() {
        let mut window = Window::new(6);
        for second in 0..6 {
            window.record(second, 60.0);
        }
        window.record(8, 60.0);
        // Window 3..=8: 60, 60, 60, 0, 0, 60.
        assert_eq!(window.average(8), 40.0);
    }

    #[test]
    fn missing_recent_seconds_shrink_the_window_instead_of_counting_as_zeros() {
        let mut window = Window::new(6);
        for second in 0..6 {
            window.record(second, 60.0);
        }
        // Asked at second 8 with data up to 5: buckets 3, 4, 5 remain, all 60.
        assert_eq!(window.average(8), 60.0);
        assert!(!window.is_empty(8));
        assert_eq!(window.average(11), 0.0, "a whole window after the last write");
        assert!(!window.is_empty(11), "Knative: empty only when more than a window has passed");
        assert!(window.is_empty(12));
    }

    #[test]
    fn a_gap_of_a_whole_window_starts_a_new_partial_window() {
        let mut window = Window::new(6);
        for second in 0..6 {
            window.record(second, 60.0);
        }
        window.record(20, 30.0);
        assert_eq!(window.average(20), 30.0);
    }

    #[test]
    fn a_late_value_within_the_window_lands_in_its_own_second_and_older_ones_are_ignored() {
        let mut window = Window::new(6);
        window.record(10, 60.0);
        window.record(8, 30.0);
        // Buckets 8..=10: 30, 0, 60.
        assert_eq!(window.average(10), 30.0);
        window.record(4, 1000.0);
        assert_eq!(window.average(10), 30.0);
    }

    #[test]
    fn rounding_dust_never_survives_the_load() {
        let mut window = Window::new(60);
        let mut second = 0;
        for _ in 0..1000 {
            window.record(second, 0.1);
            window.record(second, 0.7);
            second += 1;
        }
        for _ in 0..60 {
            window.record(second, 0.0);
            second += 1;
        }
        assert_eq!(window.average(second - 1), 0.0);
    }

    #[test]
    fn an_empty_window_has_no_data() {
        let window = Window::new(60);
        assert!(window.is_empty(0));
        assert_eq!(window.average(0), 0.0);
    }
}
