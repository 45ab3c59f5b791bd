//! What a simulation reports per policy, as a Markdown table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::policy::Policy;

/// The figures of one policy on one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Which policy.
    pub policy: Policy,
    /// Its label.
    pub label: String,
    /// Calls in the workload.
    pub calls: u64,
    /// Calls answered 200.
    pub completed: u64,
    /// Sum over pods of their lifetime (from creation, including cold start, to removal), s.
    pub pod_seconds: f64,
    /// Sum over nodes of the time they held at least one pod, s.
    pub node_seconds: f64,
    /// Memory set aside for pods (each pod's memory limit, over its lifetime), GB-s.
    pub reserved_gb_s: f64,
    /// Memory really used (each pod's base plus its running calls' real memory), GB-s.
    pub used_gb_s: f64,
    /// `reserved_gb_s / used_gb_s`.
    pub reserved_over_used: f64,
    /// Most pods at once.
    pub peak_pods: u64,
    /// Most nodes at once.
    pub peak_nodes: u64,
    /// Pods started.
    pub pod_starts: u64,
    /// Calls that arrived when their service had no ready pod and waited for one to start.
    pub cold_starts: u64,
    /// Time from arrival to the start of execution (waiting for a pod, then for admission), ms.
    pub queue_ms: Percentiles,
    /// Time from arrival to the answer, ms (200s only).
    pub latency_ms: Percentiles,
    /// Calls answered 503, by reason.
    pub rejected: Rejected,
    /// Pods, nodes and memory over time.
    pub timeline: Vec<TimelinePoint>,
    /// The latency distribution: `(latency ms, share of 200s at or below it)`.
    pub latency_cdf: Vec<(f64, f64)>,
}

/// The 50th and 99th percentiles of a distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// 503s by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rejected {
    /// Refused at once: the pod's queue was full (or its tenant's).
    pub queue_full: u64,
    /// Refused at once: it declares more than a pod could ever admit.
    pub too_large: u64,
    /// Waited past the queue timeout, for a pod or for admission.
    pub timeout: u64,
    /// Failed while running: its memory growth would have passed the pod's hard budget, so the
    /// runtime refused it (wasmpod's safety net; the pod itself is never killed).
    pub memory_pressure: u64,
}

impl Rejected {
    /// All 503s.
    pub fn total(&self) -> u64 {
        self.queue_full + self.too_large + self.timeout + self.memory_pressure
    }
}

/// One sample of the cluster's state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Virtual time, s.
    pub t_s: f64,
    /// Pods alive (starting or ready or draining).
    pub pods: u64,
    /// Nodes in use.
    pub nodes: u64,
    /// Memory reserved, MB.
    pub reserved_mb: f64,
    /// Memory used, MB.
    pub used_mb: f64,
}

/// The comparison of every policy run on one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// What was replayed: "synthetic (seed 1)" or the trace's file.
    pub workload: String,
    /// Functions in it.
    pub functions: usize,
    /// Minutes replayed.
    pub minutes: usize,
    /// Calls in it.
    pub calls: u64,
    /// One report per policy, in the order run.
    pub policies: Vec<PolicyReport>,
}

impl Comparison {
    /// The Markdown table: one row per policy, ratios to policy 1 where it was run.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Workload: {}, {} functions, {} minutes, {} calls.\n",
            self.workload, self.functions, self.minutes, self.calls
        );
        let _ = writeln!(
            out,
            "| policy | pod-s | ÷ (1) | peak pods | node-s | reserved GB-s | used GB-s | reserved ÷ used | cold starts | queue p50 / p99 ms | latency p50 / p99 ms | 503s (full / large / timeout / memory) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        let base =
            self.policies.iter().find(|p| p.policy == Policy::ContainerPerFunction).map(|p| p.pod_seconds);
        for p in &self.policies {
            let ratio =
                base.filter(|b| *b > 0.0).map_or("-".to_owned(), |b| format!("{:.3}", p.pod_seconds / b));
            let r = p.rejected;
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} / {} | {} / {} | {} ({} / {} / {} / {}) |",
                p.label,
                p.pod_seconds,
                ratio,
                p.peak_pods,
                p.node_seconds,
                p.reserved_gb_s,
                p.used_gb_s,
                p.reserved_over_used,
                p.cold_starts,
                fmt_ms(p.queue_ms.p50),
                fmt_ms(p.queue_ms.p99),
                fmt_ms(p.latency_ms.p50),
                fmt_ms(p.latency_ms.p99),
                r.total(),
                r.queue_full,
                r.too_large,
                r.timeout,
                r.memory_pressure,
            );
        }
        out
    }

    /// The whole comparison as JSON, timelines and CDFs included.
    pub fn json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

/// Percentiles and a CDF of `values` (sorted in place).
pub(crate) fn summarize(values: &mut [f32]) -> (Percentiles, Vec<(f64, f64)>) {
    if values.is_empty() {
        return (Percentiles::default(), Vec::new());
    }
    values.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| f64::from(values[((values.len() - 1) as f64 * q).round() as usize]);
    let percentiles = Percentiles { p50: at(0.5), p99: at(0.99) };
    // 200 points evenly spaced in probability, plus the tail's last ones.
    let mut cdf: Vec<(f64, f64)> = (0..=200).map(|i| f64::from(i) / 200.0).map(|q| (at(q), q)).collect();
    for q in [0.995, 0.999, 0.9999] {
        cdf.push((at(q), q));
    }
    cdf.sort_by(|a, b| a.1.total_cmp(&b.1));
    (percentiles, cdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut values: Vec<f32> = (1..=1000).map(|v| v as f32).collect();
        values.reverse();
        let (p, cdf) = summarize(&mut values);
        assert_eq!(p.p50, 501.0);
        assert_eq!(p.p99, 990.0);
        assert_eq!(cdf.first(), Some(&(1.0, 0.0)));
        assert_eq!(cdf.last(), Some(&(1000.0, 1.0)));
        assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
