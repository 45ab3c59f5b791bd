//! One pod, an explicit arrival trace: the cluster simulation's single-pod model on its own, so
//! that it can be checked against a real `wasmpod serve` given the same trace
//! (`bench/sim-check.sh`).
//!
//! Nothing here models a pod: the calls go through the same engine, admission core and CPU
//! sharing as in [`simulate`](crate::simulate), with the pod's admission given as `wasmpod serve`
//! builds it from its flags instead of derived from a policy, no autoscaler, and every call's
//! outcome kept.

use std::collections::HashMap;
use std::path::Path;

use rand::SeedableRng;
use serde::Serialize;
use wasmpod_admission::{BreakerConfig, WeightMode};

use crate::engine::{replay_single, Reason, SinglePod};
use crate::error::SimError;
use crate::policy::{ClusterConfig, Policy};
use crate::profile::Profiles;
use crate::quantiles::Quantiles;
use crate::report::{summarize, Percentiles, Rejected};
use crate::trace::TraceCall;
use crate::workload::{Arrival, FunctionSpec, Micros, Trigger, Workload};

/// The tenant every replayed function belongs to (a pod whose configuration names none).
const TENANT: &str = "default";

/// The one pod a trace is replayed through, as `wasmpod serve` is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PodConfig {
    /// Cores the pod's calls share.
    pub cores: f64,
    /// The guests' real-memory budget, MB (`--memory-budget`): a call whose memory would pass it
    /// fails with a 503 (memory pressure).
    pub memory_budget_mb: f64,
    /// The pod's admission, built from the same flags as `wasmpod serve` builds it; `None`
    /// admits every call at once (`--no-admission`).
    pub admission: Option<BreakerConfig>,
    /// Longest a call waits for admission before a 503, ms (`--queue-timeout`).
    pub queue_timeout_ms: f64,
}

/// What happened to one call of the trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedCall {
    /// Its arrival, ms from the start of the trace.
    pub at_ms: f64,
    /// The function called.
    pub function: String,
    /// 200, or 503.
    pub status: u16,
    /// Why a 503: `queue_full`, `too_large`, `queue_timeout` or `memory_pressure` (the server's
    /// metric labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'static str>,
    /// From arrival to the start of execution (a 503: to the refusal), ms.
    pub queue_ms: f64,
    /// From arrival to the answer, ms.
    pub latency_ms: f64,
}

/// The figures of a replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// Calls in the trace.
    pub calls: u64,
    /// Calls answered 200.
    pub completed: u64,
    /// 503s by cause.
    pub rejected: Rejected,
    /// 200s per second, from the first arrival to the last answer.
    pub throughput_rps: f64,
    /// Arrival to answer of the 200s, ms.
    pub latency_ms: Percentiles,
    /// Arrival to start of the 200s, ms.
    pub queue_ms: Percentiles,
    /// Calls that waited for admission at all (queue time above 1 ms).
    pub queued: u64,
}

/// A replay's result: the summary and every call, in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodReplay {
    /// The figures.
    pub summary: ReplaySummary,
    /// Each call, in arrival order.
    pub calls: Vec<ReplayedCall>,
}

impl PodReplay {
    /// The replay as JSON (summary and calls).
    pub fn json(&self) -> String {
        // Plain structs of numbers and strings: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Replays `trace` (read from `trace_path`, named in errors) through one pod configured as `pod`,
/// each function costing what its profile in `profiles` says: run time drawn from its measured
/// distribution with `seed`, plus its instantiation; its peak memory held while it runs; its
/// `Memory-Request` declared to admission; its CPU share wanted from the pod's cores.
pub fn replay(
    trace: &[TraceCall],
    trace_path: &Path,
    profiles: &Profiles,
    pod: &PodConfig,
    seed: u64,
) -> Result<PodReplay, SimError> {
    if !(pod.cores.is_finite() && pod.cores > 0.0) {
        return Err(SimError::Setting {
            name: "--cores",
            reason: format!("{} is not a positive number", pod.cores),
        });
    }
    // An infinite budget is none (`--no-admission` without `--memory-budget`).
    if pod.memory_budget_mb.is_nan() || pod.memory_budget_mb <= 0.0 {
        return Err(SimError::Setting {
            name: "--memory-budget",
            reason: format!("{} is not a positive number", pod.memory_budget_mb),
        });
    }
    let by_name: HashMap<&str, u32> =
        profiles.functions.iter().enumerate().map(|(i, f)| (f.name.as_str(), i as u32)).collect();
    let workload = Workload {
        functions: profiles
            .functions
            .iter()
            .map(|f| FunctionSpec {
                name: f.name.clone(),
                app: f.name.clone(),
                owner: TENANT.to_owned(),
                trigger: Trigger::Http,
                duration_ms: f.duration_ms(),
                memory_mb: Quantiles::constant(f.peak_memory_mb),
                declared_mb: f.memory_request_mb,
                cpu_share: f.cpu_share,
                instantiate_ms: Some(f.instantiate_ms),
            })
            .collect(),
        minutes: Vec::new(),
    };
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut arrivals = Vec::with_capacity(trace.len());
    for call in trace {
        let Some(&function) = by_name.get(call.function.as_str()) else {
            let known: Vec<&str> = profiles.functions.iter().map(|f| f.name.as_str()).collect();
            return Err(SimError::Input {
                path: trace_path.to_path_buf(),
                line: call.line,
                field: "function".to_owned(),
                reason: format!("no profile for {:?} (profiles: {})", call.function, known.join(", ")),
            });
        };
        let profile = &profiles.functions[function as usize];
        let spec = &workload.functions[function as usize];
        // The engine adds the function's instantiation.
        let work_ms = spec.duration_ms.sample(&mut rng);
        arrivals.push(Arrival {
            at: (call.at_ms * 1000.0).round() as Micros,
            function,
            work: (work_ms * 1000.0).max(1.0) as Micros,
            memory_mb: profile.peak_memory_mb.min(profile.memory_request_mb),
        });
    }
    let cluster = ClusterConfig {
        node_cores: pod.cores,
        node_memory_mb: pod.memory_budget_mb,
        max_nodes: 1,
        queue_timeout_ms: pod.queue_timeout_ms,
        container_cold_start_ms: 0.0,
        superpod_cpu: pod.cores,
        superpod_cpu_request: pod.cores,
        superpod_memory_mb: pod.memory_budget_mb,
        superpod_base_mb: 0.0,
        ..ClusterConfig::default()
    };
    // The policy only says which weights the engine asks admission for and that the pod holds
    // every function; the admission itself is the one given.
    let policy = match &pod.admission {
        None => Policy::SuperpodConcurrency,
        Some(config) if config.learning.mode == WeightMode::Learned => Policy::SuperpodLearned,
        Some(_) => Policy::SuperpodMemory,
    };
    let single = SinglePod { admission: pod.admission.clone() };
    let (_, outcomes) = replay_single(&workload, profiles, &cluster, policy, single, &arrivals)?;

    let ms = |us: Micros| us as f64 / 1000.0;
    let calls: Vec<ReplayedCall> = outcomes
        .iter()
        .map(|o| {
            let call = &trace[o.index as usize];
            ReplayedCall {
                at_ms: call.at_ms,
                function: call.function.clone(),
                status: if o.refused.is_some() { 503 } else { 200 },
                refusal: o.refused.map(|r| match r {
                    Reason::QueueFull => "queue_full",
                    Reason::TooLarge => "too_large",
                    Reason::Timeout => "queue_timeout",
                    Reason::MemoryPressure => "memory_pressure",
                }),
                queue_ms: ms(o.queue),
                latency_ms: ms(o.latency),
            }
        })
        .collect();
    Ok(PodReplay { summary: summary(&calls), calls })
}

fn summary(calls: &[ReplayedCall]) -> ReplaySummary {
    let mut rejected = Rejected::default();
    for call in calls {
        match call.refusal {
            Some("queue_full") => rejected.queue_full += 1,
            Some("too_large") => rejected.too_large += 1,
            Some("queue_timeout") => rejected.timeout += 1,
            Some(_) => rejected.memory_pressure += 1,
            None => {}
        }
    }
    let ok: Vec<&ReplayedCall> = calls.iter().filter(|c| c.status == 200).collect();
    let first = calls.iter().map(|c| c.at_ms).fold(f64::INFINITY, f64::min);
    let last = calls.iter().map(|c| c.at_ms + c.latency_ms).fold(0.0, f64::max);
    let span_s = (last - first) / 1000.0;
    let mut latency: Vec<f32> = ok.iter().map(|c| c.latency_ms as f32).collect();
    let mut queue: Vec<f32> = ok.iter().map(|c| c.queue_ms as f32).collect();
    ReplaySummary {
        calls: calls.len() as u64,
        completed: ok.len() as u64,
        rejected,
        throughput_rps: if span_s > 0.0 { ok.len() as f64 / span_s } else { 0.0 },
        latency_ms: summarize(&mut latency).0,
        queue_ms: summarize(&mut queue).0,
        queued: ok.iter().filter(|c| c.queue_ms > 1.0).count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::FunctionProfile;
    use crate::trace::parse_trace;
    use wasmpod_admission::TenantLimits;

    /// A CPU-bound function: 100 ms on a core, 10 MB used, 50 MB declared.
    fn profiles() -> Profiles {
        let f = |name: &str, ms: f64, used: f64, declared: f64, cpu: f64| FunctionProfile {
            name: name.into(),
            p50_ms: ms,
            p99_ms: ms,
            min_ms: Some(ms),
            max_ms: Some(ms),
            samples_ms: Vec::new(),
            peak_memory_mb: used,
            memory_request_mb: declared,
            instantiate_ms: 0.0,
            cpu_share: cpu,
        };
        Profiles {
            functions: vec![f("cpu", 100.0, 10.0, 50.0, 1.0), f("sleep", 100.0, 1.0, 10.0, 0.01)],
            ..Profiles::default()
        }
    }

    fn pod(capacity: u64, depth: u64) -> PodConfig {
        PodConfig {
            cores: 2.0,
            memory_budget_mb: capacity as f64,
            admission: Some(BreakerConfig {
                capacity_units: capacity,
                queue_depth_units: depth,
                tenant_limits: TenantLimits::UNLIMITED,
                ..BreakerConfig::default()
            }),
            queue_timeout_ms: 1000.0,
        }
    }

    fn trace(rows: impl IntoIterator<Item = (f64, &'static str)>) -> Vec<TraceCall> {
        let mut text = String::from("at_ms,function\n");
        for (at, f) in rows {
            text.push_str(&format!("{at},{f}\n"));
        }
        parse_trace(&text, Path::new("t.csv")).unwrap()
    }

    fn run(trace: &[TraceCall], pod: &PodConfig) -> PodReplay {
        replay(trace, Path::new("t.csv"), &profiles(), pod, 1).unwrap()
    }

    #[test]
    fn under_capacity_nothing_queues_and_every_call_takes_its_run_time() {
        // One 100 ms CPU call every 100 ms on two cores: never more than one at a time.
        let t = trace((0..50).map(|i| (f64::from(i) * 100.0, "cpu")));
        let r = run(&t, &pod(1000, 2000));
        assert_eq!(r.summary.completed, 50);
        assert_eq!(r.summary.rejected.total(), 0);
        assert_eq!(r.summary.queued, 0);
        assert!(
            r.calls.iter().all(|c| c.status == 200 && c.queue_ms == 0.0 && c.latency_ms == 100.0),
            "{r:?}"
        );
    }

    #[test]
    fn calls_beyond_the_cores_share_them() {
        // Four CPU-bound calls at once on two cores: each runs at half speed.
        let t = trace((0..4).map(|_| (0.0, "cpu")));
        let r = run(&t, &pod(1000, 2000));
        assert!(r.calls.iter().all(|c| c.latency_ms == 200.0 && c.queue_ms == 0.0), "{r:?}");
        // Waiting calls want no CPU: four sleeps take 100 ms each, side by side.
        let t = trace((0..4).map(|_| (0.0, "sleep")));
        let r = run(&t, &pod(1000, 2000));
        assert!(r.calls.iter().all(|c| c.latency_ms == 100.0), "{r:?}");
    }

    #[test]
    fn over_capacity_admission_queues_then_refuses_as_the_core_says() {
        // 100 MB admitted at once: two 50 MB calls run, the queue holds 100 MB more (depth 200),
        // the rest are refused at once (queue full).
        let t = trace((0..6).map(|_| (0.0, "cpu")));
        let r = run(&t, &pod(100, 200));
        let statuses: Vec<(u16, Option<&str>)> = r.calls.iter().map(|c| (c.status, c.refusal)).collect();
        assert_eq!(
            statuses,
            [
                (200, None),
                (200, None),
                (200, None),
                (200, None),
                (503, Some("queue_full")),
                (503, Some("queue_full"))
            ]
        );
        // The two queued calls start when the first two finish (100 ms), and finish at 200 ms.
        assert_eq!(r.calls[2].queue_ms, 100.0);
        assert_eq!(r.calls[3].latency_ms, 200.0);
        assert_eq!((r.summary.queued, r.summary.rejected.queue_full), (2, 2));
        // A 50 ms queue timeout: the queued two wait 50 ms, then get a 503.
        let r = run(&t, &PodConfig { queue_timeout_ms: 50.0, ..pod(100, 200) });
        assert_eq!(r.summary.rejected.timeout, 2, "{r:?}");
        assert!(r.calls.iter().filter(|c| c.refusal == Some("queue_timeout")).all(|c| c.latency_ms == 50.0));
    }

    #[test]
    fn a_memory_budget_below_what_admission_lets_run_fails_calls_for_memory_pressure() {
        // Admission lets four 50 MB declarations run, but the guests' real memory budget is 25
        // MB: the third concurrent call (10 MB each) would pass it.
        let t = trace((0..4).map(|_| (0.0, "cpu")));
        let r = run(&t, &PodConfig { memory_budget_mb: 25.0, ..pod(200, 400) });
        assert_eq!(r.summary.rejected.memory_pressure, 2, "{r:?}");
        assert_eq!(r.summary.completed, 2);
        // Without admission every call starts at once; the budget alone limits them.
        let r = run(&t, &PodConfig { memory_budget_mb: 25.0, admission: None, ..pod(200, 400) });
        assert_eq!((r.summary.completed, r.summary.rejected.memory_pressure), (2, 2));
    }

    #[test]
    fn a_function_without_a_profile_is_named_by_file_line_and_field() {
        let t = trace([(0.0, "cpu"), (5.0, "nope")]);
        let e = replay(&t, Path::new("t.csv"), &profiles(), &pod(100, 200), 1).unwrap_err().to_string();
        assert_eq!(e, "t.csv:3: field \"function\": no profile for \"nope\" (profiles: cpu, sleep)");
    }

    #[test]
    fn the_same_seed_gives_the_same_replay() {
        let mut p = profiles();
        p.functions[0].p99_ms = 300.0;
        p.functions[0].max_ms = None;
        let t = trace((0..200).map(|i| (f64::from(i) * 30.0, "cpu")));
        let run = |seed| replay(&t, Path::new("t.csv"), &p, &pod(1000, 2000), seed).unwrap();
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
