//! `wasmpod simulate`: the cluster simulator's command line (README, "Density and the simulator").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wasmpod_sim::azure::{AzureFiles, AzureOptions, MINUTES_PER_DAY};
use wasmpod_sim::synthetic::{SyntheticConfig, DEFAULT_FUNCTIONS, DEFAULT_MINUTES, DEFAULT_SEED};
use wasmpod_sim::{ClusterConfig, Policy, Profiles, Quantiles, Workload};

/// Where the Wasabi benchmark writes the measured function profiles.
const DEFAULT_PROFILES: &str = "bench/results/wasabi-profiles.json";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimulateArgs {
    #[command(subcommand)]
    command: Option<SimulateCommand>,

    /// Replay the Azure Functions 2019 trace from this folder (the dataset's CSV files as
    /// published) instead of a synthetic workload.
    #[arg(long, value_name = "DIR")]
    trace: Option<PathBuf>,

    /// Day of the trace to replay (1-14; app memory exists for days 1-12 only).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=14))]
    day: u32,

    /// Keep only these apps: a CSV whose first column is `HashApp` (Wasabi's `hashapp_list.csv`).
    #[arg(long, value_name = "CSV", requires = "trace")]
    apps: Option<PathBuf>,

    /// First minute of the day to replay (trace only).
    #[arg(long, value_name = "MINUTE", default_value_t = 0, requires = "trace")]
    start_minute: usize,

    /// Minutes to replay.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MINUTES)]
    minutes: usize,

    /// Functions in the synthetic workload.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FUNCTIONS, conflicts_with = "trace")]
    functions: usize,

    /// Seed of the synthetic workload and of the arrival times inside each minute.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Synthetic workload: what each function is. `measured`: an instance of one of the guests
    /// in the profiles file (their run time, memory and instantiation as wasmpod measured them);
    /// `drawn`: run time, memory and CPU share drawn from the trace's published shape.
    /// Default: `measured` when the profiles file holds measured functions, else `drawn`.
    #[arg(long, value_name = "KIND", value_parser = ["measured", "drawn"], conflicts_with = "trace")]
    synthetic_functions: Option<String>,

    /// Synthetic workload: declared memory = largest real use x a factor drawn in MIN..MAX.
    #[arg(long, value_name = "MIN..MAX", default_value = "1..2", value_parser = parse_range, conflicts_with = "trace")]
    overdeclare: (f64, f64),

    /// Share of a core a running call wants: a range MIN..MAX drawn per function (synthetic),
    /// or one value for every function of a trace (the trace has no CPU figures).
    #[arg(long, value_name = "MIN..MAX", default_value = "0.02..0.5", value_parser = parse_range)]
    cpu_share: (f64, f64),

    /// Policies to compare, by number: 1 container per function, 2 superpods on concurrency,
    /// 3 superpods on memory with admission and overbooking, 4 = 3 with learned weights.
    #[arg(long, value_name = "LIST", default_value = "1,2,3,4", value_delimiter = ',', value_parser = parse_policy)]
    policies: Vec<Policy>,

    /// Measured function profiles (JSON); when the file is missing, the documented defaults.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PROFILES)]
    profiles: PathBuf,

    /// Write `report.md`, `result.json`, `pods.svg` and `latency-cdf.svg` into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Print the result as JSON (for scripts) instead of the Markdown table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, clap::Subcommand)]
enum SimulateCommand {
    /// Replay an arrival trace through one simulated pod, configured as `wasmpod serve`'s
    /// admission flags configure a real one (to check the simulator against a real pod).
    Pod(crate::simulate_pod::PodArgs),
}

/// The cluster and pod parameters (README, "Density and the simulator", has their sources).
#[derive(Debug, Args)]
struct ClusterArgs {
    /// Nodes the cluster may grow to.
    #[arg(long, value_name = "N", default_value_t = wasmpod_sim::DEFAULT_MAX_NODES)]
    nodes: usize,
    /// Cores per node.
    #[arg(long, value_name = "CORES", default_value_t = wasmpod_sim::DEFAULT_NODE_CORES)]
    node_cores: f64,
    /// Memory per node, MB.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_NODE_MEMORY_MB)]
    node_memory_mb: f64,
    /// Longest a call waits for a pod or for admission before a 503, ms.
    #[arg(long, value_name = "MS", default_value_t = wasmpod_sim::DEFAULT_QUEUE_TIMEOUT_MS)]
    queue_timeout_ms: f64,
    /// Container cold start, ms (superpods add loading their functions).
    #[arg(long, value_name = "MS", default_value_t = wasmpod_sim::DEFAULT_CONTAINER_COLD_START_MS)]
    container_cold_start_ms: f64,
    /// Memory a function's container holds beyond the function's own use, MB.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_CONTAINER_OVERHEAD_MB)]
    container_overhead_mb: f64,
    /// Requests one function container serves at once (Knative containerConcurrency).
    #[arg(long, value_name = "N", default_value_t = wasmpod_sim::DEFAULT_CONTAINER_CONCURRENCY, value_parser = clap::value_parser!(u64).range(1..))]
    container_concurrency: u64,
    /// A superpod's memory limit (its hard budget, and what is reserved for it), MB.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_MEMORY_MB)]
    superpod_memory_mb: f64,
    /// A superpod's CPU limit, cores.
    #[arg(long, value_name = "CORES", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_CPU)]
    superpod_cpu: f64,
    /// Declared MB a superpod admits in flight (policies 3 and 4): the overbooking.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_CAPACITY_MB)]
    superpod_capacity_mb: u64,
    /// Declared MB a superpod queues for admission, running calls included (policies 3 and 4).
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_QUEUE_DEPTH_MB)]
    superpod_queue_depth_mb: u64,
    /// Declared MB per superpod the memory autoscaler aims for (policies 3 and 4).
    #[arg(long, value_name = "MB", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_TARGET_MB)]
    superpod_target_mb: f64,
    /// Policies 3 and 4 also scale on the cores their pods use (the autoscaler's CPU rule, aiming
    /// at 70% of --superpod-cpu; the larger of the memory and the CPU count); `false`: declared
    /// memory alone, as Wasabi does.
    #[arg(long, value_name = "BOOL", default_value_t = wasmpod_sim::DEFAULT_SUPERPOD_CPU_SCALING, action = clap::ArgAction::Set)]
    superpod_cpu_scaling: bool,
    /// Policies 3 and 4: the admission CPU gate, no call starts while the pod uses more cores
    /// than this (wasmpod's --resource-utilization-threshold) [default: none, as Wasabi's 6 cores
    /// on a 4.2-core pod].
    #[arg(long, value_name = "CORES")]
    superpod_cpu_gate: Option<f64>,
}

impl ClusterArgs {
    fn config(&self) -> ClusterConfig {
        ClusterConfig {
            max_nodes: self.nodes,
            node_cores: self.node_cores,
            node_memory_mb: self.node_memory_mb,
            queue_timeout_ms: self.queue_timeout_ms,
            container_cold_start_ms: self.container_cold_start_ms,
            container_overhead_mb: self.container_overhead_mb,
            container_concurrency: self.container_concurrency,
            superpod_memory_mb: self.superpod_memory_mb,
            superpod_cpu: self.superpod_cpu,
            superpod_capacity_mb: self.superpod_capacity_mb,
            superpod_queue_depth_mb: self.superpod_queue_depth_mb,
            superpod_target_mb: self.superpod_target_mb,
            superpod_cpu_scaling: self.superpod_cpu_scaling,
            superpod_cpu_gate: self.superpod_cpu_gate,
            ..ClusterConfig::default()
        }
    }
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if let Some(SimulateCommand::Pod(pod)) = args.command {
        return crate::simulate_pod::simulate_pod(pod);
    }
    let profiles = Profiles::load(&args.profiles)?;
    let (workload, name) = workload(&args, &profiles)?;
    if workload.functions.is_empty() {
        let why = if args.apps.is_some() { " (--apps keeps none of the trace's apps)" } else { "" };
        bail!("{name}: no function to simulate{why}");
    }
    let cluster = args.cluster.config();
    let total = workload.total_calls();
    eprintln!(
        "simulating {name}: {} functions, {} minutes, {total} calls; policies {:?}",
        workload.functions.len(),
        workload.minutes.len(),
        args.policies.iter().map(|p| p.number()).collect::<Vec<_>>()
    );

    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} min {elapsed}")
        .context("progress bar template")?
        .progress_chars("=> ");
    let policy_bars: Vec<(Policy, ProgressBar)> = args
        .policies
        .iter()
        .map(|&p| {
            let bar = bars.add(ProgressBar::new(workload.minutes.len() as u64));
            bar.set_style(style.clone());
            bar.set_prefix(format!("policy {}", p.number()));
            (p, bar)
        })
        .collect();
    let progress = |policy: Policy, at: u64, _end: u64| {
        if let Some((_, bar)) = policy_bars.iter().find(|(p, _)| *p == policy) {
            bar.set_position(at / wasmpod_sim::MINUTE);
        }
    };
    let started = Instant::now();
    let comparison =
        wasmpod_sim::compare(&workload, &name, &profiles, &cluster, &args.policies, args.seed, &progress)?;
    let elapsed = started.elapsed();
    for (_, bar) in &policy_bars {
        bar.finish_and_clear();
    }
    eprintln!("simulated in {:.1} s", elapsed.as_secs_f64());

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("report.md"), comparison.markdown())
            .with_context(|| format!("writing {}", dir.join("report.md").display()))?;
        // The same bytes as `--json` prints, newline included.
        std::fs::write(dir.join("result.json"), comparison.json() + "\n")
            .with_context(|| format!("writing {}", dir.join("result.json").display()))?;
        wasmpod_sim::write_charts(&comparison, dir)?;
        eprintln!("wrote report.md, result.json, pods.svg, latency-cdf.svg to {}", dir.display());
    }
    if args.json {
        println!("{}", comparison.json());
    } else {
        print!("{}", comparison.markdown());
    }
    Ok(ExitCode::SUCCESS)
}

fn workload(args: &SimulateArgs, profiles: &Profiles) -> anyhow::Result<(Workload, String)> {
    let Some(folder) = &args.trace else {
        let measured = match args.synthetic_functions.as_deref() {
            Some(kind) => kind == "measured",
            None => !profiles.functions.is_empty(),
        };
        if measured && profiles.functions.is_empty() {
            bail!(
                "--synthetic-functions measured: {} holds no measured function (run bench/wasabi.sh, \
                 point --profiles at its results, or pass --synthetic-functions drawn)",
                args.profiles.display()
            );
        }
        let config = SyntheticConfig {
            kinds: if measured { profiles.functions.clone() } else { Vec::new() },
            functions: args.functions,
            minutes: args.minutes,
            seed: args.seed,
            overdeclare: args.overdeclare,
            cpu_share: args.cpu_share,
            ..SyntheticConfig::default()
        };
        let workload = wasmpod_sim::synthetic::generate(&config)?;
        let kinds = if measured {
            let names: Vec<&str> = profiles.functions.iter().map(|f| f.name.as_str()).collect();
            format!("measured functions: {}", names.join(", "))
        } else {
            "drawn functions".to_owned()
        };
        return Ok((workload, format!("synthetic (seed {}, {kinds})", args.seed)));
    };
    if args.start_minute + args.minutes > MINUTES_PER_DAY {
        bail!(
            "--start-minute {} + --minutes {} pass the end of the day ({MINUTES_PER_DAY})",
            args.start_minute,
            args.minutes
        );
    }
    let files = AzureFiles { apps: args.apps.clone(), ..AzureFiles::in_folder(folder, args.day) };
    let options = AzureOptions {
        start_minute: args.start_minute,
        minutes: args.minutes,
        fallback_duration_ms: Quantiles::constant(wasmpod_sim::azure::FALLBACK_DURATION_MS),
        fallback_memory_mb: Quantiles::constant(wasmpod_sim::azure::FALLBACK_MEMORY_MB),
        // One share for every function: the geometric middle of the range.
        cpu_share: (args.cpu_share.0 * args.cpu_share.1).sqrt(),
    };
    let workload = wasmpod_sim::azure::load(&files, &options)?;
    Ok((workload, format!("Azure 2019 trace, day {}, {}", args.day, folder.display())))
}

fn parse_range(text: &str) -> Result<(f64, f64), String> {
    let (lo, hi) = text.split_once("..").unwrap_or((text, text));
    let parse = |s: &str| s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a number"));
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return Err(format!("{text:?}: need 0 < MIN <= MAX"));
    }
    Ok((lo, hi))
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .and_then(Policy::from_number)
        .ok_or_else(|| format!("{text:?} is not a policy number (1-4)"))
}
