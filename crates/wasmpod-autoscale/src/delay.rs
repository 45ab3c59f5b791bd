//! The scale-down delay: the highest decision over a trailing window.

use std::collections::VecDeque;

/// The maximum of the values recorded over the last `len` indexes (an index is one
/// [`TICK_INTERVAL`](crate::TICK_INTERVAL) of time), kept as a descending queue so a record is
/// amortised O(1) and the maximum is O(1).
#[derive(Debug, Clone)]
pub(crate) struct MaxWindow {
    len: u64,
    /// (index, value), indexes ascending and values strictly descending.
    maxima: VecDeque<(u64, u32)>,
}

impl MaxWindow {
    pub(crate) fn new(len: u64) -> Self {
        MaxWindow { len: len.max(1), maxima: VecDeque::new() }
    }

    /// Records `value` at `index` (indexes never decrease) and returns the window's maximum.
    pub(crate) fn record(&mut self, index: u64, value: u32) -> u32 {
        // A smaller value that is older than `value` can never be the maximum again.
        while self.maxima.back().is_some_and(|&(_, older)| older <= value) {
            self.maxima.pop_back();
        }
        while self.maxima.front().is_some_and(|&(oldest, _)| index.saturating_sub(oldest) >= self.len) {
            self.maxima.pop_front();
        }
        self.maxima.push_back((index, value));
        self.maxima.front().map_or(value, |&(_, max)| max)
    }
}

#[cfg(test)]
mod tests {
    use super::MaxWindow;

    #[test]
    fn the_maximum_holds_for_the_window_then_falls_to_the_next_largest() {
        let mut window = MaxWindow::new(3);
        assert_eq!(window.record(0, 5), 5);
        assert_eq!(window.record(1, 2), 5);
        assert_eq!(window.record(2, 3), 5);
        assert_eq!(window.record(3, 1), 3, "index 0 left the window; 3 (index 2) is the largest left");
        assert_eq!(window.record(4, 1), 3);
        assert_eq!(window.record(5, 1), 1);
        assert_eq!(window.record(6, 9), 9);
    }

    #[test]
    fn two_records_at_one_index_keep_the_larger() {
        let mut window = MaxWindow::new(2);
        assert_eq!(window.record(7, 4), 4);
        assert_eq!(window.record(7, 2), 4);
        assert_eq!(window.record(7, 6), 6);
    }
}
