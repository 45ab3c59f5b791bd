//! What a simulation replays: functions, and how many times each is called in each minute.

use rand::{Rng, RngExt};
use serde::Serialize;

use crate::quantiles::Quantiles;

/// Microseconds of virtual time, the simulator's clock unit.
pub type Micros = u64;

/// Microseconds in one minute of the trace.
pub const MINUTE: Micros = 60_000_000;

/// How a function is triggered, as the Azure trace's `Trigger` column names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// An HTTP request.
    Http,
    /// A timer: its calls fall on the minute boundary (the trace's round-minute spikes).
    Timer,
    /// An event source (Event Grid, Event Hubs).
    Event,
    /// A queue message.
    Queue,
    /// A storage blob or table change.
    Storage,
    /// A durable-functions orchestration.
    Orchestration,
    /// Anything else.
    Others,
}

impl Trigger {
    /// The trigger named by the trace's `Trigger` column, or `None` for a name it does not use.
    pub fn from_trace(name: &str) -> Option<Trigger> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "http" => Trigger::Http,
            "timer" => Trigger::Timer,
            "event" => Trigger::Event,
            "queue" => Trigger::Queue,
            "storage" => Trigger::Storage,
            "orchestration" => Trigger::Orchestration,
            "others" => Trigger::Others,
            _ => return None,
        })
    }
}

/// One function of the workload: who owns it and how its calls behave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSpec {
    /// The function's id (the trace's `HashFunction`).
    pub name: String,
    /// Its application (`HashApp`): functions of one app share the app's memory profile.
    pub app: String,
    /// Its owner (`HashOwner`), which the superpod treats as the tenant.
    pub owner: String,
    /// What triggers it.
    pub trigger: Trigger,
    /// Run time of one call, in milliseconds, when it has the CPU it wants (no cold start, no
    /// queueing).
    pub duration_ms: Quantiles,
    /// Memory one call really uses, in MB (the peak the runtime's limiter sees).
    pub memory_mb: Quantiles,
    /// Memory one call declares, in MB (`Memory-Request`, and a container's memory request).
    /// Users size this for the worst case they fear, so it is at least the largest real use.
    pub declared_mb: f64,
    /// Share of a call's run time spent on a CPU (1.0: CPU-bound; 0.1: waits on I/O 90% of the
    /// time). When a pod's running calls want more cores than it has, all of them slow down.
    pub cpu_share: f64,
    /// What instantiating it costs in a superpod, in ms, when it was measured (a function that
    /// is an instance of a measured guest); `None`: the pod-wide figure of the profiles.
    pub instantiate_ms: Option<f64>,
}

/// A replayable workload: functions, and per minute the number of calls to each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// The functions, indexed by position.
    pub functions: Vec<FunctionSpec>,
    /// `minutes[m]` lists `(function index, calls in minute m)`, only for counts above zero.
    pub minutes: Vec<Vec<(u32, u32)>>,
}

/// One call: when it arrives and what it costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Virtual time of arrival.
    pub at: Micros,
    /// Index into [`Workload::functions`].
    pub function: u32,
    /// Its run time when it has the CPU it wants, in microseconds.
    pub work: Micros,
    /// The memory it really uses, in MB.
    pub memory_mb: f64,
}

impl Workload {
    /// Total calls in the workload.
    pub fn total_calls(&self) -> u64 {
        self.minutes.iter().flatten().map(|&(_, n)| u64::from(n)).sum()
    }

    /// Length of the workload in virtual time.
    pub fn duration(&self) -> Micros {
        self.minutes.len() as Micros * MINUTE
    }

    /// The calls of minute `minute`, in arrival order, drawn with `rng`.
    ///
    /// The trace gives only a count per minute, so arrivals inside the minute are placed
    /// uniformly at random, which is a Poisson process conditioned on its count. Timer-triggered
    /// calls arrive together on the minute boundary, as timers fire.
    pub fn arrivals_in_minute<R: Rng + ?Sized>(&self, minute: usize, rng: &mut R, out: &mut Vec<Arrival>) {
        out.clear();
        let Some(counts) = self.minutes.get(minute) else {
            return;
        };
        let start = minute as Micros * MINUTE;
        for &(function, count) in counts {
            let spec = &self.functions[function as usize];
            for _ in 0..count {
                let offset = match spec.trigger {
                    Trigger::Timer => 0,
                    _ => rng.random_range(0..MINUTE),
                };
                let work_ms = spec.duration_ms.sample(rng);
                out.push(Arrival {
                    at: start + offset,
                    function,
                    work: (work_ms * 1000.0).max(1.0) as Micros,
                    memory_mb: spec.memory_mb.sample(rng).min(spec.declared_mb),
                });
            }
        }
        out.sort_by_key(|a| (a.at, a.function));
    }

    /// Keeps the first `minutes` minutes (the Wasabi evaluation replays the first two hours).
    pub fn truncate_minutes(&mut self, minutes: usize) {
        self.minutes.truncate(minutes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn function(trigger: Trigger) -> FunctionSpec {
        FunctionSpec {
            name: "f".into(),
            app: "a".into(),
            owner: "o".into(),
            trigger,
            duration_ms: Quantiles::constant(100.0),
            memory_mb: Quantiles::constant(300.0),
            declared_mb: 200.0,
            cpu_share: 1.0,
            instantiate_ms: None,
        }
    }

    #[test]
    fn arrivals_fall_inside_their_minute_in_order() {
        let workload = Workload {
            functions: vec![function(Trigger::Http), function(Trigger::Timer)],
            minutes: vec![vec![], vec![(0, 50), (1, 3)]],
        };
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let mut out = Vec::new();
        workload.arrivals_in_minute(1, &mut rng, &mut out);
        assert_eq!(out.len(), 53);
        assert!(out.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(out.iter().all(|a| (MINUTE..2 * MINUTE).contains(&a.at)));
        // Timers fire on the boundary.
        assert_eq!(out.iter().filter(|a| a.function == 1 && a.at == MINUTE).count(), 3);
        // Real memory never exceeds the declared size (the grant is a hard limit).
        assert!(out.iter().all(|a| a.memory_mb == 200.0 && a.work == 100_000));
        assert_eq!(workload.total_calls(), 53);
    }
}
