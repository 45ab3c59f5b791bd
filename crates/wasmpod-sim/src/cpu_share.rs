//! A pod's cores, shared by its running calls (processor sharing).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::workload::Micros;

/// The running calls of one pod and how fast each progresses.
///
/// A call needs `work` microseconds of run time when it gets all the CPU it wants, and wants a
/// core for the share `cpu` of that time (its CPU share): it alternates short bursts on a core
/// with waits that need none (a sleep, I/O). While the running calls want no more cores than the
/// pod has (the sum of their shares), each runs at full speed. Beyond that the cores are shared
/// fairly among the calls that are in a burst (the kernel's fair scheduler, which wasmpod's epoch
/// yielding approximates): a burst takes `slowdown` times as long, a wait no longer, so a call of
/// share `s` progresses at `1 / ((1 - s) + s * slowdown)`. The slowdown is the one at which the
/// calls' bursts use exactly the cores (`Σ s / ((1 - s) + s * slowdown) = cores`); for calls that
/// all want a whole core it is `demand / cores`, processor sharing. A call that mostly waits is
/// hardly slowed by a busy pod, as on a real one, and takes its fair part of the cores while in
/// a burst.
///
/// Calls of the same share progress at the same rate, so progress ("attained work") is tracked
/// once per share: each call finishes when its share's progress reaches its start value plus its
/// work, and only the earliest finisher of each share is looked at: O(shares) per start and
/// finish, and for calls that all want a whole core exactly the single clock of processor
/// sharing.
#[derive(Debug, Default)]
pub struct CpuShare {
    cores: f64,
    /// The cores the running calls want: the sum of their shares.
    demand: f64,
    /// How fast a burst runs, against an idle core (1.0 while the cores suffice).
    speed: f64,
    updated: Micros,
    /// The running calls, grouped by CPU share.
    groups: Vec<Group>,
}

/// Groups a pod keeps while they are empty (see [`CpuShare::pop_finished`]).
const MAX_GROUPS_KEPT: usize = 16;

/// The running calls of one CPU share.
#[derive(Debug)]
struct Group {
    cpu: f64,
    /// Attained work of a call of this share since the group began.
    progress: f64,
    /// How fast `progress` grows at the current slowdown, per microsecond.
    rate: f64,
    finishing: BinaryHeap<Reverse<(FinishKey, u32)>>,
}

impl Group {
    /// `1 / ((1 - cpu) + cpu / speed)`, written so that a whole-core call's rate is exactly the
    /// burst speed.
    fn rate_at(cpu: f64, speed: f64) -> f64 {
        speed / ((1.0 - cpu) * speed + cpu)
    }
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
        CpuShare { cores, speed: 1.0, ..CpuShare::default() }
    }

    /// Starts call `id` at `now`: it needs `work` microseconds at full speed and wants a core
    /// for the share `cpu` (0 to 1) of that time.
    pub fn start(&mut self, now: Micros, id: u32, work: Micros, cpu: f64) {
        self.advance(now);
        let cpu = cpu.clamp(0.0, 1.0);
        let group = match self.groups.iter().position(|g| g.cpu == cpu) {
            Some(i) => i,
            None => {
                // Any origin works; the time itself is the one plain processor sharing used (its
                // clock ran at full speed from zero while the pod was idle), so a pod whose calls
                // all want a whole core finishes them at exactly the same microseconds.
                let progress = now as f64;
                self.groups.push(Group { cpu, progress, rate: 1.0, finishing: BinaryHeap::new() });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[group];
        g.finishing.push(Reverse((FinishKey(g.progress + work as f64), id)));
        self.reshare();
    }

    /// Removes an earliest finisher if it has finished by `now`, and returns it. Call in a loop
    /// at the time [`CpuShare::next_finish`] announced.
    pub fn pop_finished(&mut self, now: Micros) -> Option<u32> {
        self.advance(now);
        // Half a microsecond of slack: event times are whole microseconds.
        let group = self
            .groups
            .iter()
            .position(|g| g.finishing.peek().is_some_and(|Reverse((key, _))| key.0 <= g.progress + 0.5))?;
        let Reverse((_, id)) = self.groups[group].finishing.pop()?;
        // An empty group is kept, its clock running on, while a pod has seen few shares (a
        // workload of measured functions has one per function): dropping it would restart its
        // clock at zero and change the rounding of later finish times, nothing else.
        if self.groups.len() > MAX_GROUPS_KEPT {
            self.groups.retain(|g| !g.finishing.is_empty());
        }
        self.reshare();
        Some(id)
    }

    /// When the earliest running call will finish, if nothing else changes.
    pub fn next_finish(&self) -> Option<Micros> {
        self.groups
            .iter()
            .filter_map(|g| {
                let Reverse((key, _)) = g.finishing.peek()?;
                let left = (key.0 - g.progress).max(0.0);
                Some(self.updated + (left / g.rate).ceil() as Micros)
            })
            .min()
    }

    /// The cores the running calls use now: what they want, at most the pod's cores (what the
    /// pod's `wasmpod_cpu_utilization_cores` would read).
    pub fn in_use(&self) -> f64 {
        self.demand.min(self.cores).max(0.0)
    }

    fn advance(&mut self, now: Micros) {
        if now > self.updated {
            let dt = (now - self.updated) as f64;
            for g in &mut self.groups {
                g.progress += dt * g.rate;
            }
            self.updated = now;
        }
    }

    /// Finds the burst speed at which the running calls' bursts use exactly the cores, and each
    /// share's rate at it.
    fn reshare(&mut self) {
        let count = |g: &Group| g.finishing.len() as f64;
        let demand: f64 = self.groups.iter().map(|g| count(g) * g.cpu).sum();
        self.demand = demand;
        self.speed = if demand <= self.cores {
            1.0
        } else {
            // In the slowdown x = 1 / speed, used(x) = Σ n s / ((1 - s) + s x) falls and is
            // convex: Newton's method from demand / cores (where used >= cores, with equality
            // when every call wants a whole core) climbs to the root from below.
            let mut x = demand / self.cores;
            let mut speed = self.cores / demand;
            for _ in 0..50 {
                let (mut used, mut slope) = (0.0, 0.0);
                for g in &self.groups {
                    let d = (1.0 - g.cpu) + g.cpu * x;
                    used += count(g) * g.cpu / d;
                    slope += count(g) * g.cpu * g.cpu / (d * d);
                }
                let step = (used - self.cores) / slope;
                if step <= x * 1e-12 {
                    break;
                }
                x += step;
                speed = 1.0 / x;
            }
            speed
        };
        for g in &mut self.groups {
            g.rate = Group::rate_at(g.cpu, self.speed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(pod: &mut CpuShare) -> Vec<(u32, Micros)> {
        let mut done = Vec::new();
        while let Some(at) = pod.next_finish() {
            while let Some(id) = pod.pop_finished(at) {
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
        assert_eq!(drain(&mut pod), vec![(1, 100), (2, 300)]);
    }

    #[test]
    fn oversubscribed_calls_share_the_cores() {
        // Four CPU-bound calls on two cores: each runs at half speed while all four run.
        let mut pod = CpuShare::new(2.0);
        for id in 0..4 {
            pod.start(0, id, 100, 1.0);
        }
        let done = drain(&mut pod);
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
        assert_eq!(drain(&mut pod), vec![(1, 150), (2, 200)]);
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
        assert!(drain(&mut pod).iter().all(|&(_, at)| at == 1000));
    }

    #[test]
    fn a_call_that_mostly_waits_is_hardly_slowed_by_busy_cores() {
        // One core, two CPU-bound calls (work 1000) and one that wants a core a tenth of its
        // time (work 1000). Bursts share the core: the slowdown x solves 2/x + 0.1/(0.9 + 0.1x)
        // = 1, x = 2.1962; the waiting call progresses at 1/(0.9 + 0.1x) = 0.8932 and is done at
        // 1120 us (not the 2100 us of plain processor sharing).
        let mut pod = CpuShare::new(1.0);
        pod.start(0, 1, 1000, 1.0);
        pod.start(0, 2, 1000, 1.0);
        pod.start(0, 3, 1000, 0.1);
        assert!((1.0 / pod.speed - 2.1962).abs() < 1e-4, "{}", pod.speed);
        let done = drain(&mut pod);
        assert_eq!(done[0], (3, 1120), "{done:?}");
        // The core was used all along: the two CPU-bound calls end when it has done all three
        // calls' CPU work, 1000 + 1000 + 100 us (events fall on whole microseconds: one more).
        assert!(done[1..].iter().all(|&(_, at)| (2100..=2101).contains(&at)), "{done:?}");
    }

    #[test]
    fn the_calls_bursts_never_use_more_than_the_cores() {
        let mut pod = CpuShare::new(2.0);
        let shares = [1.0, 1.0, 0.5, 0.3, 0.04, 0.04, 0.04, 0.9];
        for (id, &cpu) in shares.iter().enumerate() {
            pod.start(0, id as u32, 10_000, cpu);
        }
        let used: f64 = pod.groups.iter().map(|g| g.finishing.len() as f64 * g.cpu * g.rate).sum();
        assert!((used - 2.0).abs() < 1e-9, "{used}");
        // Every call still finishes, the one that waits most first.
        let done = drain(&mut pod);
        assert_eq!(done.len(), shares.len());
        assert!([4, 5, 6].contains(&done[0].0), "{done:?}");
    }
}
