//! A pod's cores, shared by its running calls (processor sharing).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::workload::Micros;

/// The running calls of one pod and how fast each progresses.
///
/// A call needs `work` microseconds of run time when it gets all the CPU it wants, and wants
/// `cpu` cores while it runs (its CPU share). While the running calls want no more cores than the
/// pod has, each runs at full speed; beyond that every call slows by the same factor
/// `cores / demand` (the kernel's fair scheduler, which wasmpod's epoch yielding approximates).
///
/// Because the factor is the same for all calls, progress is tracked once per pod ("attained
/// work" `progress`), each call finishes when `progress` reaches its start value plus its work,
/// and only the earliest finisher needs an event: O(log n) per start and finish.
#[derive(Debug, Default)]
pub struct CpuShare {
    cores: f64,
    demand: f64,
    progress: f64,
    updated: Micros,
    finishing: BinaryHeap<Reverse<(FinishKey, u32)>>,
}

/// A finish point in attained work, ordered as a number (never NaN: built from finite sums).
#[derive(Debug, Clone, Copy)]
struct FinishKey(f64);

impl PartialEq for FinishKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for FinishKey {}
impl PartialOrd for FinishKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FinishKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl CpuShare {
    /// A pod with `cores` cores and nothing running.
    pub fn new(cores: f64) -> CpuShare {
        CpuShare { cores, ..CpuShare::default() }
    }

    /// Starts call `id` at `now`.
    pub fn start(&mut self, now: Micros, id: u32, work: Micros, cpu: f64) {
        self.advance(now);
        self.demand += cpu;
        self.finishing.push(Reverse((FinishKey(self.progress + work as f64), id)));
    }

    /// Removes the earliest finisher if it has finished by `now`, and returns it. Call in a loop
    /// at the time [`CpuShare::next_finish`] announced. `cpu_of` gives each call's CPU share back.
    pub fn pop_finished(&mut self, now: Micros, cpu_of: impl Fn(u32) -> f64) -> Option<u32> {
        self.advance(now);
        let Reverse((key, id)) = *self.finishing.peek()?;
        // Half a microsecond of slack: event times are whole microseconds.
        if key.0 > self.progress + 0.5 {
            return None;
        }
        self.finishing.pop();
        self.demand -= cpu_of(id);
        if self.finishing.is_empty() {
            // Keep the sum free of rounding drift once the pod is idle.
            self.demand = 0.0;
        }
        Some(id)
    }

    /// When the earliest running call will finish, if nothing else changes.
    pub fn next_finish(&self) -> Option<Micros> {
        let Reverse((key, _)) = self.finishing.peek()?;
        let left = (key.0 - self.progress).max(0.0);
        Some(self.updated + (left / self.speed()).ceil() as Micros)
    }

    /// The cores the running calls use now: what they want, at most the pod's cores (what the
    /// pod's `wasmpod_cpu_utilization_cores` would read).
    pub fn in_use(&self) -> f64 {
        self.demand.min(self.cores).max(0.0)
    }

    fn speed(&self) -> f64 {
        if self.demand <= self.cores {
            1.0
        } else {
            self.cores / self.demand
        }
    }

    fn advance(&mut self, now: Micros) {
        if now > self.updated {
            self.progress += (now - self.updated) as f64 * self.speed();
            self.updated = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(pod: &mut CpuShare, cpu: f64) -> Vec<(u32, Micros)> {
        let mut done = Vec::new();
        while let Some(at) = pod.next_finish() {
            while let Some(id) = pod.pop_finished(at, |_| cpu) {
                done.push((id, at));
            }
        }
        done
    }

    #[test]
    fn calls_within_the_cores_run_at_full_speed() {
        let mut pod = CpuShare::new(2.0);
        pod.start(0, 1, 100, 1.0);
        pod.start(0, 2, 300, 1.0);
        assert_eq!(drain(&mut pod, 1.0), vec![(1, 100), (2, 300)]);
    }

    #[test]
    fn oversubscribed_calls_share_the_cores() {
        // Four CPU-bound calls on two cores: each runs at half speed while all four run.
        let mut pod = CpuShare::new(2.0);
        for id in 0..4 {
            pod.start(0, id, 100, 1.0);
        }
        let done = drain(&mut pod, 1.0);
        assert_eq!(done.len(), 4);
        assert!(done.iter().all(|&(_, at)| at == 200), "{done:?}");
    }

    #[test]
    fn a_late_call_speeds_up_when_the_others_leave() {
        // One core. Call 1 (work 100) alone for 50 us, then call 2 (work 100) joins: both at half
        // speed; call 1 has 50 left -> done at 150; call 2 has done 50 by then, 50 more alone.
        let mut pod = CpuShare::new(1.0);
        pod.start(0, 1, 100, 1.0);
        pod.start(50, 2, 100, 1.0);
        assert_eq!(drain(&mut pod, 1.0), vec![(1, 150), (2, 200)]);
    }

    #[test]
    fn cores_in_use_are_capped_at_the_pods_cores() {
        let mut pod = CpuShare::new(2.0);
        pod.start(0, 1, 100, 0.5);
        assert_eq!(pod.in_use(), 0.5);
        for id in 2..5 {
            pod.start(0, id, 100, 1.0);
        }
        assert_eq!(pod.in_use(), 2.0, "3.5 cores wanted, 2 available");
    }

    #[test]
    fn io_bound_calls_do_not_slow_each_other() {
        let mut pod = CpuShare::new(1.0);
        for id in 0..10 {
            pod.start(0, id, 1000, 0.1);
        }
        assert!(drain(&mut pod, 0.1).iter().all(|&(_, at)| at == 1000));
    }
}
