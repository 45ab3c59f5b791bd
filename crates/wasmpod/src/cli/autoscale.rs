//! `wasmpod autoscale`: the flags of the memory-aware autoscaler controller, and its loop.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use wasmpod_autoscale::{self as autoscale, Settings, BUCKET};
use wasmpod_controller::{serve_metrics, Controller, ControllerConfig, PodPort, DEFAULT_SCRAPE_TIMEOUT};

/// Scale a Deployment of wasmpod pods on the declared memory of their requests (Knative's KPA
/// algorithm on Wasabi's memory metric; with --cpu-limit-cores, on CPU as well). Every memory
/// default below is Knative's.
#[derive(Debug, Args)]
pub(super) struct AutoscaleArgs {
    /// The Deployment to scale.
    #[arg(long, value_name = "NAME", env = "WASMPOD_AUTOSCALE_DEPLOYMENT")]
    deployment: String,

    /// Its namespace [default: the kubeconfig context's, or the service account's in a pod].
    #[arg(long, value_name = "NAMESPACE", env = "WASMPOD_AUTOSCALE_NAMESPACE")]
    namespace: Option<String>,

    /// The pods' port serving wasmpod's /metrics: a container port name or a number.
    #[arg(long, value_name = "NAME|NUMBER", default_value = wasmpod_controller::DEFAULT_POD_PORT, env = "WASMPOD_AUTOSCALE_POD_PORT")]
    pod_port: PodPort,

    /// One pod's admission capacity in MB [default: what the pods report as wasmpod_capacity_memory_mb].
    #[arg(long, value_name = "MB", env = "WASMPOD_AUTOSCALE_CAPACITY_MB")]
    capacity_mb: Option<f64>,

    /// Target MB per pod [default: capacity x --target-utilization]; the
    /// autoscaling.knative.dev/target annotation on the Deployment beats it.
    #[arg(long, value_name = "MB", env = "WASMPOD_AUTOSCALE_TARGET_MB")]
    target_mb: Option<f64>,

    /// Share of capacity to aim for, in (0, 1].
    #[arg(long, value_name = "FRACTION", default_value_t = autoscale::DEFAULT_TARGET_UTILIZATION, env = "WASMPOD_AUTOSCALE_TARGET_UTILIZATION")]
    target_utilization: f64,

    /// Spare MB the ready pods should have above the panic-window load; -1: always buffered.
    #[arg(long, value_name = "MB", default_value_t = autoscale::DEFAULT_TARGET_BURST_CAPACITY_MB, allow_negative_numbers = true, env = "WASMPOD_AUTOSCALE_TARGET_BURST_CAPACITY")]
    target_burst_capacity: f64,

    /// The long averaging window (whole seconds, 6 to 3600).
    #[arg(long, value_name = "SECONDS", default_value = seconds(autoscale::DEFAULT_STABLE_WINDOW), value_parser = whole_seconds, env = "WASMPOD_AUTOSCALE_STABLE_WINDOW")]
    stable_window: Duration,

    /// The short averaging window that detects a surge (whole seconds).
    #[arg(long, value_name = "SECONDS", default_value = seconds(autoscale::DEFAULT_PANIC_WINDOW), value_parser = whole_seconds, env = "WASMPOD_AUTOSCALE_PANIC_WINDOW")]
    panic_window: Duration,

    /// Panic when the panic window asks for this many times the ready pods.
    #[arg(long, value_name = "RATIO", default_value_t = autoscale::DEFAULT_PANIC_THRESHOLD, env = "WASMPOD_AUTOSCALE_PANIC_THRESHOLD")]
    panic_threshold: f64,

    /// At most ceil(rate x ready) pods per decision.
    #[arg(long, value_name = "RATE", default_value_t = autoscale::DEFAULT_MAX_SCALE_UP_RATE, env = "WASMPOD_AUTOSCALE_MAX_SCALE_UP_RATE")]
    max_scale_up_rate: f64,

    /// At least floor(ready / rate) pods per decision.
    #[arg(long, value_name = "RATE", default_value_t = autoscale::DEFAULT_MAX_SCALE_DOWN_RATE, env = "WASMPOD_AUTOSCALE_MAX_SCALE_DOWN_RATE")]
    max_scale_down_rate: f64,

    /// Keep the highest decision of this many seconds ago (0: off).
    #[arg(long, value_name = "SECONDS", default_value = seconds(autoscale::DEFAULT_SCALE_DOWN_DELAY), value_parser = whole_seconds, env = "WASMPOD_AUTOSCALE_SCALE_DOWN_DELAY")]
    scale_down_delay: Duration,

    /// With --min-scale 0: how long the last pod stays once the algorithm asks for zero.
    #[arg(long, value_name = "SECONDS", default_value = seconds(autoscale::DEFAULT_SCALE_TO_ZERO_GRACE), value_parser = whole_seconds, env = "WASMPOD_AUTOSCALE_SCALE_TO_ZERO_GRACE")]
    scale_to_zero_grace: Duration,

    /// Fewest pods; 0 allows scale to zero (only when something else brings the Deployment back).
    #[arg(long, value_name = "N", default_value_t = wasmpod_controller::DEFAULT_MIN_SCALE, env = "WASMPOD_AUTOSCALE_MIN_SCALE")]
    min_scale: u32,

    /// Most pods; 0: unbounded.
    #[arg(long, value_name = "N", default_value_t = autoscale::DEFAULT_MAX_SCALE, env = "WASMPOD_AUTOSCALE_MAX_SCALE")]
    max_scale: u32,

    /// The pods' CPU limit in cores; turns on the CPU rule (scale on CPU in use too) [default: off].
    #[arg(long, value_name = "CORES", env = "WASMPOD_AUTOSCALE_CPU_LIMIT_CORES")]
    cpu_limit_cores: Option<f64>,

    /// Share of --cpu-limit-cores to aim for per pod, in (0, 1).
    #[arg(long, value_name = "SHARE", default_value_t = autoscale::DEFAULT_CPU_TARGET_UTILIZATION, env = "WASMPOD_AUTOSCALE_CPU_TARGET_UTILIZATION")]
    cpu_target_utilization: f64,

    /// Decide and print each decision on stdout, but never patch the Deployment.
    #[arg(long, env = "WASMPOD_AUTOSCALE_DRY_RUN")]
    dry_run: bool,

    /// Where the controller serves its own /metrics and /healthz.
    #[arg(long, value_name = "IP:PORT", default_value = wasmpod_controller::DEFAULT_METRICS_LISTEN, env = "WASMPOD_AUTOSCALE_METRICS_LISTEN")]
    metrics_listen: SocketAddr,
}

impl AutoscaleArgs {
    /// The algorithm's settings from the flags; with no --capacity-mb, a placeholder capacity that
    /// the pods' reports replace before the first decision.
    fn settings(&self) -> Settings {
        Settings {
            target_utilization: self.target_utilization,
            target_mb: self.target_mb,
            target_burst_capacity_mb: self.target_burst_capacity,
            stable_window: self.stable_window,
            panic_window: self.panic_window,
            panic_threshold: self.panic_threshold,
            max_scale_up_rate: self.max_scale_up_rate,
            max_scale_down_rate: self.max_scale_down_rate,
            scale_to_zero: true,
            scale_to_zero_grace: self.scale_to_zero_grace,
            scale_down_delay: self.scale_down_delay,
            min_scale: self.min_scale,
            max_scale: self.max_scale,
            cpu_limit_cores: self.cpu_limit_cores,
            cpu_target_utilization: self.cpu_target_utilization,
            ..Settings::with_capacity(self.capacity_mb.unwrap_or(1.0))
        }
    }
}

/// Runs the controller until SIGTERM or SIGINT: a tick per second (scrape), a decision every
/// second tick. API errors are logged and the next tick starts afresh.
pub(super) async fn autoscale(args: AutoscaleArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings();
    // Bad flags stop here, before any connection to the cluster.
    settings.validate().context("autoscaler flags")?;
    let kube_config = kube::Config::infer()
        .await
        .context("no Kubernetes client configuration (neither KUBECONFIG / ~/.kube/config nor in-cluster)")?;
    let namespace = args.namespace.clone().unwrap_or_else(|| kube_config.default_namespace.clone());
    let client = kube::Client::try_from(kube_config).context("Kubernetes client")?;
    let mut controller = Controller::new(
        client,
        ControllerConfig {
            namespace: namespace.clone(),
            deployment: args.deployment.clone(),
            pod_port: args.pod_port.clone(),
            settings,
            capacity_from_pods: args.capacity_mb.is_none(),
            dry_run: args.dry_run,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
        },
    )?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen {}", args.metrics_listen))?;
    let metrics_address = listener.local_addr()?;
    tokio::spawn(serve_metrics(listener, controller.metrics()));
    tracing::info!(
        namespace = %namespace,
        deployment = %args.deployment,
        dry_run = args.dry_run,
        target_mb = settings.target_mb.map_or_else(|| "capacity x utilization".to_owned(), |t| t.to_string()),
        target_cores = settings.cpu_target_cores().map_or_else(|| "off".to_owned(), |t| t.to_string()),
        "autoscaling; metrics on http://{metrics_address}/metrics"
    );

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let start = Instant::now();
    let mut interval = tokio::time::interval(BUCKET);
    // A late tick moves the next ones: two scrapes never land in the same one-second bucket.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        match controller.tick(start.elapsed()).await {
            Ok(tick) if args.dry_run && tick.decision.is_some() => println!("{tick}"),
            Ok(_) => {}
            Err(error) => tracing::warn!(deployment = %args.deployment, "{error}"),
        }
    }
    tracing::info!("autoscaler stopped");
    Ok(ExitCode::SUCCESS)
}

fn seconds(duration: Duration) -> clap::builder::OsStr {
    clap::builder::OsStr::from(duration.as_secs().to_string())
}

fn whole_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))
}
