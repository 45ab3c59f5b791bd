//! `wasmpod simulate pod`: one simulated pod replays an explicit arrival trace, configured with
//! the admission flags of `wasmpod serve` (README, "Density and the simulator", "Checking the
//! simulator against a real pod").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use wasmpod_sim::{PodConfig, Profiles};

use crate::cli::AdmissionArgs;

#[derive(Debug, Args)]
pub struct PodArgs {
    /// The arrival trace: a CSV `at_ms,function`, one row per call.
    #[arg(long, value_name = "CSV")]
    arrivals: PathBuf,

    /// The functions' measured profiles (JSON, as for `simulate --profiles`); every function of
    /// the trace needs one.
    #[arg(long, value_name = "FILE")]
    profiles: PathBuf,

    /// Cores the pod's calls share [default: this machine's, as `wasmpod serve` uses them].
    #[arg(long, value_name = "CORES")]
    cores: Option<f64>,

    /// Seed of each call's run time, drawn from its function's measured distribution.
    #[arg(long, value_name = "N", default_value_t = wasmpod_sim::synthetic::DEFAULT_SEED)]
    seed: u64,

    /// Write the result (summary and every call) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Print the result as JSON instead of the summary table.
    #[arg(long)]
    json: bool,

    /// The pod's admission, exactly as `wasmpod serve` reads it (the same flags, defaults and
    /// environment variables).
    #[command(flatten, next_help_heading = "The pod's admission (as `wasmpod serve`)")]
    admission: AdmissionArgs,
}

pub fn simulate_pod(args: PodArgs) -> anyhow::Result<ExitCode> {
    let profiles = Profiles::load(&args.profiles)?;
    if profiles.functions.is_empty() {
        anyhow::bail!("{}: no function profiles (is the file there?)", args.profiles.display());
    }
    let trace = wasmpod_sim::load_trace(&args.arrivals)?;
    let cores = match args.cores {
        Some(cores) => cores,
        None => std::thread::available_parallelism().map_or(1, usize::from) as f64,
    };
    let admission = args.admission.breaker();
    if admission.as_ref().is_some_and(|a| a.cpu_threshold.is_some()) {
        anyhow::bail!("--resource-utilization-threshold: the CPU gate is not modelled by the simulator");
    }
    let queue_timeout = args.admission.queue_timeout.unwrap_or(wasmpod_runtime::DEFAULT_TIMEOUT);
    let pod = PodConfig {
        cores,
        memory_budget_mb: args.admission.memory_budget_mb().map_or(f64::INFINITY, |mb| mb as f64),
        admission,
        queue_timeout_ms: queue_timeout.as_secs_f64() * 1000.0,
    };
    let result = wasmpod_sim::replay(&trace, &args.arrivals, &profiles, &pod, args.seed)?;
    let json = result.json() + "\n";
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        print!("{json}");
    } else {
        let s = &result.summary;
        let r = s.rejected;
        println!("| calls | 200s | 200s/s | latency p50 / p99 ms | queue p50 / p99 ms | queued | 503s (full / large / timeout / memory) |");
        println!("|---:|---:|---:|---:|---:|---:|---|");
        println!(
            "| {} | {} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} ({} / {} / {} / {}) |",
            s.calls,
            s.completed,
            s.throughput_rps,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.queue_ms.p50,
            s.queue_ms.p99,
            s.queued,
            r.total(),
            r.queue_full,
            r.too_large,
            r.timeout,
            r.memory_pressure
        );
    }
    Ok(ExitCode::SUCCESS)
}
