//! Runs several policies on one workload, side by side.

use crate::engine::simulate;
use crate::error::SimError;
use crate::policy::{ClusterConfig, Policy};
use crate::profile::Profiles;
use crate::report::Comparison;
use crate::workload::{Micros, Workload};

/// Runs each of `policies` on `workload` with the same seed, so each sees exactly the same
/// calls, one thread per policy (they share nothing), and gathers their reports in the order
/// given. `progress(policy, reached, end)` is called from the policies' threads, once per
/// workload minute each.
pub fn compare(
    workload: &Workload,
    name: &str,
    profiles: &Profiles,
    cluster: &ClusterConfig,
    policies: &[Policy],
    seed: u64,
    progress: &(dyn Fn(Policy, Micros, Micros) + Sync),
) -> Result<Comparison, SimError> {
    let reports = std::thread::scope(|scope| {
        let handles: Vec<_> = policies
            .iter()
            .map(|&policy| {
                scope.spawn(move || {
                    simulate(workload, profiles, cluster, policy, seed, &mut |at, end| {
                        progress(policy, at, end)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<Result<Vec<_>, SimError>>()
    })?;
    Ok(Comparison {
        workload: name.to_owned(),
        functions: workload.functions.len(),
        minutes: workload.minutes.len(),
        calls: workload.total_calls(),
        policies: reports,
    })
}
