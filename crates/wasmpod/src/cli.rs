//! The command line: `wasmpod serve`, `wasmpod run`, `wasmpod compile`, `wasmpod autoscale` and
//! `wasmpod simulate`.

mod autoscale;

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use wasmpod_config::{FunctionSource, FunctionSpec, Interface, LoadedConfig};
use wasmpod_runtime::{
    build_engine, ArtifactCache, CgroupCpu, EngineOptions, LiveRegistry, ModuleLimits, OutboundLimits,
    Runtime, MAX_CGROUP_WORKERS,
};
use wasmpod_server::{
    high_water_mark, AdminConfig, App, AppConfig, BreakerConfig, ConnectionLimits, Learning, ServiceIdentity,
    ShutdownConfig, Stop, TenantLimits, WeightMode,
};

use crate::env_flags::user_env;

/// Serve WebAssembly functions over HTTP, each request in a fresh sandboxed instance.
///
/// WAGI-compatible: existing `modules.toml` files and WAGI modules run unchanged.
#[derive(Debug, Parser)]
#[command(name = "wasmpod", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the functions of a folder or of a WAGI modules.toml.
    Serve(Box<ServeArgs>),
    /// Run one request through a module and print the HTTP response (for guest authors).
    Run(RunArgs),
    /// Compile modules ahead of time into the artifact cache that `serve --cache-dir` reads.
    Compile(CompileArgs),
    /// Scale a Kubernetes Deployment of wasmpod pods on the declared memory of their requests.
    Autoscale(autoscale::AutoscaleArgs),
    /// Simulate a cluster in virtual time and compare scaling policies on one workload.
    Simulate(Box<crate::simulate::SimulateArgs>),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A folder whose `<name>.wasm` / `<name>.wat` files are served at `/<name>` and `/<name>/...`.
    #[arg(value_name = "FOLDER", conflicts_with = "config", required_unless_present = "config")]
    folder: Option<PathBuf>,

    /// A WAGI modules.toml (module paths are relative to the working directory, as in WAGI).
    #[arg(short = 'c', long = "config", value_name = "MODULES_TOML")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:3000, or 0.0.0.0:$PORT when PORT is set].
    #[arg(short = 'l', long = "listen", value_name = "IP:PORT")]
    listen: Option<SocketAddr>,

    #[command(flatten)]
    guest: GuestArgs,

    /// Directory for guest stderr logs, one `<sha256(route)>/module.stderr` per route (WAGI's
    /// layout). Without it, guest stderr goes to the server log.
    #[arg(long = "log-dir", value_name = "DIR", env = "WAGI_LOG_DIR")]
    log_dir: Option<PathBuf>,

    #[command(flatten)]
    cache: CacheArgs,

    /// Host (and port) for SERVER_NAME / SERVER_PORT when a request has no Host header.
    #[arg(long = "default-host", alias = "hostname", value_name = "HOST[:PORT]", default_value = wasmpod_wagi::DEFAULT_HOST)]
    default_host: String,

    /// On SIGTERM/SIGINT, the longest time from the signal to exit (seconds): guests still
    /// running then are stopped.
    #[arg(long = "shutdown-timeout", value_name = "SECONDS", default_value = seconds_text(wasmpod_server::DEFAULT_SHUTDOWN_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: Duration,

    /// On SIGTERM, how long new requests are still served, with /readyz failing, before the pod
    /// stops accepting (seconds; 0 for none). SIGINT has no drain period.
    #[arg(long = "drain-seconds", value_name = "SECONDS", default_value = seconds_text(wasmpod_server::DEFAULT_DRAIN_PERIOD), value_parser = parse_seconds_or_zero, env = "WASMPOD_DRAIN_SECONDS")]
    drain_seconds: Duration,

    #[command(flatten)]
    admission: AdmissionArgs,

    /// Refuse to start on any load problem (a function that fails to load, a missing
    /// entrypoint) instead of serving the others, for CI pipelines that want that.
    #[arg(long, env = "WASMPOD_STRICT")]
    strict: bool,

    /// Threads that compile changed modules during a reload (the first load uses every core),
    /// so that compiling never takes every core from serving.
    #[arg(long = "compile-threads", value_name = "N", default_value_t = wasmpod_runtime::DEFAULT_COMPILE_THREADS, value_parser = clap::value_parser!(u64).range(1..256).map(|n| n as usize), env = "WASMPOD_COMPILE_THREADS")]
    compile_threads: usize,

    /// Answer raw programs (`interface = "raw"`) byte for byte as WasmBox does (`WASM output: `
    /// prefix, its failure message), and route `/<name>.wasm` to `/<name>`.
    #[arg(long = "wasmbox-compat", env = "WASMPOD_WASMBOX_COMPAT")]
    wasmbox_compat: bool,

    #[command(flatten)]
    clients: ClientLimitArgs,

    /// Instances alive at once (the instance pool's size) [default: one per MB of
    /// --concurrent-resource-request, at most 2048].
    #[arg(long = "max-instances", value_name = "N", env = "WASMPOD_MAX_INSTANCES")]
    max_instances: Option<u32>,

    /// Idle instance pool slots kept warm for a module with none of its own (a new version after
    /// a reload), each holding up to 2 MiB resident: bounds the memory idle slots keep (README,
    /// "Admission, limits and metrics"). 0 keeps none beyond the slots the peak load used.
    #[arg(long = "pool-warm-slots", value_name = "N", default_value_t = wasmpod_runtime::DEFAULT_MAX_WARM_SLOTS, env = "WASMPOD_POOL_WARM_SLOTS")]
    pool_warm_slots: u32,

    /// Hold requests that carry `cpu_quota` to it with the kernel: each runs on a worker thread
    /// in a cgroup with that CFS quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), where this process
    /// may create cgroups; elsewhere the runtime's own throttle is used, and the log says which.
    #[arg(long = "cgroup-cpu", env = "WASMPOD_CGROUP_CPU")]
    cgroup_cpu: bool,

    #[command(flatten)]
    modules: ModuleLimitArgs,

    #[command(flatten)]
    admin: AdminArgs,

    #[command(flatten)]
    tuning: TuningArgs,
}

/// What one client may make the pod hold or wait for: every such resource has a limit.
#[derive(Debug, Args)]
struct ClientLimitArgs {
    /// Longest time a client may take to send a request head, from connecting or from its
    /// previous response (seconds): a slower client is disconnected, and so is an idle
    /// keep-alive connection.
    #[arg(long, value_name = "SECONDS", default_value = seconds_text(wasmpod_server::DEFAULT_HEADER_READ_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_HEADER_READ_TIMEOUT")]
    header_read_timeout: Duration,

    /// Largest request head, request line and headers together (bytes, at least 8192): 431
    /// beyond it.
    #[arg(long = "max-header-size", value_name = "BYTES", default_value_t = wasmpod_server::DEFAULT_MAX_HEADER_BYTES, value_parser = parse_header_size, env = "WASMPOD_MAX_HEADER_SIZE")]
    max_header_size: usize,

    /// Client connections open at once; one more is closed as soon as it is accepted. Lowered
    /// at start to what the file descriptor limit leaves room for.
    #[arg(long, value_name = "N", default_value_t = wasmpod_server::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize), env = "WASMPOD_MAX_CONNECTIONS")]
    max_connections: usize,

    /// Largest request body (MB): 413 beyond it, before the guest runs. A WAGI guest's body
    /// must also fit its memory grant (Memory-Request).
    #[arg(long = "max-body-size", value_name = "MB", default_value_t = wasmpod_server::DEFAULT_MAX_BODY_BYTES >> 20, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_MAX_BODY_SIZE")]
    max_body_size: u64,

    /// Largest response a WAGI module or raw program may print (MB): a write past it fails in the
    /// guest (which then usually traps: 500). Its memory grant (Memory-Request) caps it too: the
    /// output is held in memory until the guest ends.
    #[arg(long = "max-response-size", value_name = "MB", default_value_t = (wasmpod_runtime::MAX_STDOUT_BYTES >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_MAX_RESPONSE_SIZE")]
    max_response_size: u64,

    /// Longest time a WAGI request's whole body may take to arrive (seconds): 408 beyond it.
    #[arg(long, value_name = "SECONDS", default_value = seconds_text(wasmpod_server::DEFAULT_BODY_READ_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_BODY_READ_TIMEOUT")]
    body_read_timeout: Duration,
}

impl ClientLimitArgs {
    /// The connection limits, with `--max-connections` lowered to what `fd_limit` (the process's
    /// descriptor limit, once raised) leaves room for.
    fn connection_limits(&self, fd_limit: Option<u64>) -> ConnectionLimits {
        let room = fd_limit.map_or(usize::MAX, crate::fd_limit::connections_within);
        if room < self.max_connections {
            tracing::info!(
                max_connections = room,
                asked = self.max_connections,
                fd_limit,
                "--max-connections lowered to what the file descriptor limit leaves room for"
            );
        }
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_size,
            max_connections: self.max_connections.min(room),
        }
    }
}

/// The admin API (off unless `--admin-listen`): PUT, GET and DELETE `/functions/NAME` on a
/// listener of its own.
#[derive(Debug, Args)]
struct AdminArgs {
    /// Serve the admin API on this address (e.g. 127.0.0.1:9001), a listener of its own [default:
    /// off]. An address other than loopback needs --admin-token-file.
    #[arg(long = "admin-listen", value_name = "IP:PORT", env = "WASMPOD_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,

    /// A file holding the bearer token every admin request must present
    /// (`Authorization: Bearer TOKEN`; surrounding whitespace is ignored).
    #[arg(long = "admin-token-file", value_name = "FILE", env = "WASMPOD_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

/// What a module may cost to load, checked before it is compiled, whatever brings it (folder,
/// config, admin upload): a module over a limit is refused with its figure, like any bad module.
#[derive(Debug, Args)]
struct ModuleLimitArgs {
    /// The largest module file, in bytes: a larger one is not loaded, and the admin API answers
    /// 413 to a larger upload.
    #[arg(long = "max-module-size", value_name = "BYTES", default_value_t = wasmpod_runtime::DEFAULT_MAX_MODULE_BYTES, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_MAX_MODULE_SIZE")]
    max_module_size: u64,

    /// The most functions a module (or a component's core modules together) may define:
    /// compile time grows with them.
    #[arg(long = "max-module-functions", value_name = "N", default_value_t = wasmpod_runtime::DEFAULT_MAX_MODULE_FUNCTIONS, value_parser = clap::value_parser!(u32).range(1..), env = "WASMPOD_MAX_MODULE_FUNCTIONS")]
    max_module_functions: u32,
}

impl ModuleLimitArgs {
    fn limits(&self) -> ModuleLimits {
        ModuleLimits { max_bytes: self.max_module_size, max_functions: self.max_module_functions }
    }
}

impl AdminArgs {
    /// Starts the admin API if asked for; refuses a non-loopback address without a token.
    /// A token file is read even when the admin API is off, so a wrong path is an error at once
    /// rather than on the day someone turns the API on.
    async fn start(&self, app: &Arc<App>, max_module_bytes: u64) -> anyhow::Result<()> {
        let token = match &self.admin_token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("--admin-token-file {}", file.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let Some(address) = self.admin_listen else {
            if token.is_some() {
                tracing::warn!("--admin-token-file is given without --admin-listen: the admin API is off");
            }
            return Ok(());
        };
        let config = AdminConfig { token, max_module_bytes };
        config.check(address)?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("--admin-listen: cannot listen on {address}"))?;
        let local = listener.local_addr()?;
        tracing::info!(token = config.token.is_some(), "admin API on http://{local}");
        tokio::spawn(wasmpod_server::serve_admin(listener, app.clone(), config));
        Ok(())
    }
}

/// Engine knobs for benchmarks only (hidden from `--help`): compare settings without a rebuild.
#[derive(Debug, Args)]
struct TuningArgs {
    /// Bytes of each linear memory kept resident between requests.
    #[arg(long, hide = true, value_name = "BYTES", env = "WASMPOD_TUNE_KEEP_RESIDENT")]
    tune_keep_resident: Option<usize>,

    /// Reset only dirtied pages with PAGEMAP_SCAN (`true`/`false`).
    #[arg(long, hide = true, value_name = "BOOL", env = "WASMPOD_TUNE_PAGEMAP_SCAN")]
    tune_pagemap_scan: Option<bool>,
}

impl TuningArgs {
    fn apply(&self, mut options: EngineOptions) -> EngineOptions {
        if let Some(bytes) = self.tune_keep_resident {
            options.keep_resident_bytes = bytes;
        }
        if let Some(scan) = self.tune_pagemap_scan {
            options.pagemap_scan = scan;
        }
        options
    }
}

/// Resource-aware admission (Wasabi's resource breaker); named after Knative's settings, and read
/// from the same environment variables Knative's queue-proxy gets.
#[derive(Debug, Args)]
pub(crate) struct AdmissionArgs {
    /// Memory (MB) of requests allowed to run at once; a request's `Memory-Request` header is its
    /// weight and its memory grant.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_server::DEFAULT_CAPACITY_MB, env = "CONCURRENT_RESOURCE_REQUEST")]
    concurrent_resource_request: u64,

    /// Memory (MB) of requests running plus queued beyond which requests are refused at once (503).
    #[arg(long, value_name = "MB", default_value_t = wasmpod_server::DEFAULT_QUEUE_DEPTH_MB, env = "QUEUE_DEPTH_RESOURCE_UNITS")]
    queue_depth_resource_units: u64,

    /// Pod CPU use (cores) above which no new request starts [default: off].
    #[arg(long, value_name = "CORES", env = "RESOURCE_UTILIZATION_THRESHOLD")]
    resource_utilization_threshold: Option<f64>,

    /// How long a request may wait for admission before a 503 (seconds) [default: --timeout].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, env = "WASMPOD_QUEUE_TIMEOUT")]
    pub(crate) queue_timeout: Option<Duration>,

    /// MB a request declares when it sends no valid Memory-Request header.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_server::DEFAULT_MEMORY_REQUEST_MB, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_DEFAULT_MEMORY_REQUEST")]
    default_memory_request: u64,

    /// Memory (MB) of one tenant's requests allowed to run at once, unless `[tenants.NAME]` in
    /// modules.toml says otherwise; a tenant at its cap waits without holding back the others.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_server::DEFAULT_TENANT_MAX_INFLIGHT_MB, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_TENANT_MAX_INFLIGHT_MB")]
    tenant_max_inflight_mb: u64,

    /// Memory (MB) of one tenant's requests allowed to wait for admission at once; beyond it the
    /// tenant's requests are refused at once (503), so one tenant's flood cannot fill the queue.
    #[arg(long, value_name = "MB", default_value_t = wasmpod_server::DEFAULT_TENANT_MAX_QUEUED_MB, value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_TENANT_MAX_QUEUED_MB")]
    tenant_max_queued_mb: u64,

    /// Admit every request at once (no queue, no refusals): for benchmarks of the bare path.
    #[arg(long)]
    no_admission: bool,

    /// What a request is admitted by: its `declared` Memory-Request, or, once its function has
    /// completed enough requests, the `learned` p99 of their peak memory x 1.25 (never above the
    /// declaration, which stays the request's hard memory limit).
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Weight::Declared, env = "WASMPOD_ADMISSION_WEIGHT")]
    admission_weight: Weight,

    /// Real memory (MB) all guests may hold at once; a memory growth past it fails in that guest
    /// with 503 (memory pressure), and no request starts while guests hold more than
    /// --memory-high-water-percent of it [default: --concurrent-resource-request; the start gate
    /// only with --admission-weight learned or an explicit budget].
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..), env = "WASMPOD_MEMORY_BUDGET")]
    memory_budget: Option<u64>,

    /// Percent of --memory-budget the guests' real memory may reach before admission holds new
    /// requests back.
    #[arg(long, value_name = "PERCENT", default_value_t = wasmpod_server::DEFAULT_MEMORY_HIGH_WATER_PERCENT, value_parser = clap::value_parser!(u64).range(1..=100), env = "WASMPOD_MEMORY_HIGH_WATER_PERCENT")]
    memory_high_water_percent: u64,
}

/// `--admission-weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Weight {
    Declared,
    Learned,
}

/// The most pool slots wasmpod sizes on its own. Every slot costs at start-up (wasmtime protects
/// each async stack's guard page: one `mprotect` and one more kernel VMA per slot, measured at
/// ~3.5 ms per 1,000 slots here) and address space for a 4 GiB memory; 2,048 slots keep a
/// 1,000-function cold start within its 100 ms budget and still cover the default capacity
/// (8,000 MB) for requests that declare 4 MB or more.
const MAX_AUTO_INSTANCES: u64 = 2048;

impl AdmissionArgs {
    pub(crate) fn breaker(&self) -> Option<BreakerConfig> {
        let mode = match self.admission_weight {
            Weight::Declared => WeightMode::Declared,
            Weight::Learned => WeightMode::Learned,
        };
        // The real-memory gate is the safety net under learned weights. Declared weights never
        // admit more than the capacity, so it stays off unless a budget is asked for.
        let gated = mode == WeightMode::Learned || self.memory_budget.is_some();
        let budget_mb = self.memory_budget_mb();
        (!self.no_admission).then(|| BreakerConfig {
            capacity_units: self.concurrent_resource_request,
            queue_depth_units: self.queue_depth_resource_units,
            cpu_threshold: self.resource_utilization_threshold,
            memory_high_water_bytes: budget_mb
                .filter(|_| gated)
                .map(|mb| high_water_mark(mb, self.memory_high_water_percent)),
            learning: Learning { mode, ..Learning::default() },
            tenant_limits: TenantLimits {
                max_in_flight_units: self.tenant_max_inflight_mb,
                max_queued_units: self.tenant_max_queued_mb,
            },
            ..BreakerConfig::default()
        })
    }

    /// The guests' real-memory budget: the flag, or the admission capacity (none without
    /// admission).
    pub(crate) fn memory_budget_mb(&self) -> Option<u64> {
        self.memory_budget.or((!self.no_admission).then_some(self.concurrent_resource_request))
    }

    /// Sizes the instance pool from admission: a slot per MB of capacity up to
    /// [`MAX_AUTO_INSTANCES`], and slots as large as the largest grant admission can give
    /// (wasm32's 4 GiB at most).
    fn engine_options(&self, max_instances: Option<u32>, tuning: &TuningArgs) -> EngineOptions {
        let capacity = self.concurrent_resource_request.max(1);
        let slots = match max_instances {
            Some(n) => u64::from(n),
            None if self.no_admission => u64::from(EngineOptions::default().max_instances),
            None => capacity.min(MAX_AUTO_INSTANCES),
        };
        if !self.no_admission && slots < capacity {
            let smallest_mb = capacity.div_ceil(slots.max(1));
            tracing::info!(
                slots,
                capacity_mb = capacity,
                "instance pool: admission fills the pool before the capacity only with requests under {smallest_mb} MB (they would get 503); --max-instances raises it"
            );
        }
        let max_memory_bytes = if self.no_admission { 4 << 30 } else { capacity.min(4096) << 20 };
        tuning.apply(EngineOptions {
            max_instances: u32::try_from(slots).unwrap_or(u32::MAX),
            max_memory_bytes,
            ..EngineOptions::default()
        })
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The module (`.wasm` or `.wat`).
    #[arg(value_name = "MODULE")]
    module: PathBuf,

    /// Request path and query.
    #[arg(long, default_value = "/")]
    path: String,

    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,

    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,

    /// The export to call.
    #[arg(long, default_value = "_start")]
    entrypoint: String,

    /// How the request speaks to the guest [default: told by the file: `wasi-http` for a
    /// component, `wagi` for a core module].
    #[arg(long, value_name = "INTERFACE", value_parser = clap::builder::PossibleValuesParser::new(Interface::NAMES))]
    interface: Option<String>,

    #[command(flatten)]
    cache: CacheArgs,

    #[command(flatten)]
    guest: GuestArgs,
}

#[derive(Debug, Args)]
struct CompileArgs {
    /// The modules (`.wasm` or `.wat`) to compile.
    #[arg(value_name = "MODULE", required = true)]
    modules: Vec<PathBuf>,

    /// The artifact cache directory to compile into (created if missing).
    #[arg(long = "cache-dir", value_name = "DIR", env = "WASMPOD_CACHE_DIR")]
    cache_dir: PathBuf,
}

/// The artifact cache flag of `serve` and `run`.
#[derive(Debug, Args)]
struct CacheArgs {
    /// Directory of compiled modules (the artifact cache, filled by `wasmpod compile` or by a
    /// previous start): a module already there is mapped instead of compiled, so a restart or a
    /// new pod with a warm cache serves at once. Off unless given: a server writes no files it
    /// was not asked to.
    #[arg(long = "cache-dir", value_name = "DIR", env = "WASMPOD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

/// Flags shared by `serve` and `run`: what every guest is given and how long it may run.
#[derive(Debug, Args)]
struct GuestArgs {
    /// An environment variable for every guest, `NAME=VALUE` (repeatable; beats --env-file).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,

    /// A file of `NAME=VALUE` lines for every guest (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,

    /// How long a guest may run before it is stopped and the request answered 504 (seconds).
    #[arg(long, value_name = "SECONDS", default_value = seconds_text(wasmpod_runtime::DEFAULT_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_TIMEOUT")]
    timeout: Duration,

    /// How long a guest's outbound HTTP call may take to connect (seconds; never past the
    /// request's --timeout).
    #[arg(long, value_name = "SECONDS", default_value = seconds_text(wasmpod_runtime::DEFAULT_OUTBOUND_CONNECT_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_OUTBOUND_CONNECT_TIMEOUT")]
    outbound_connect_timeout: Duration,

    /// How long a guest's outbound HTTP call may wait for its response (seconds; never past the
    /// request's --timeout).
    #[arg(long, value_name = "SECONDS", default_value = seconds_text(wasmpod_runtime::DEFAULT_OUTBOUND_RESPONSE_TIMEOUT), value_parser = parse_seconds, env = "WASMPOD_OUTBOUND_RESPONSE_TIMEOUT")]
    outbound_response_timeout: Duration,
}

impl GuestArgs {
    /// `--outbound-connect-timeout` and `--outbound-response-timeout`.
    fn outbound(&self) -> OutboundLimits {
        OutboundLimits {
            connect_timeout: self.outbound_connect_timeout,
            response_timeout: self.outbound_response_timeout,
        }
    }
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => serve(*args).await,
            Command::Run(args) => run_once(args).await,
            Command::Compile(args) => compile(args),
            Command::Autoscale(args) => autoscale::autoscale(args).await,
            Command::Simulate(args) => crate::simulate::simulate(*args),
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let source = match (&args.config, &args.folder) {
        (Some(config), _) => FunctionSource::ModulesToml(config.clone()),
        (None, Some(folder)) => FunctionSource::Folder(folder.clone()),
        (None, None) => bail!("give a folder of modules or --config modules.toml"),
    };
    let loaded = source.read()?;
    let config = AppConfig {
        user_env: user_env(&args.guest.env, &args.guest.env_files)?,
        default_host: args.default_host.clone(),
        timeout: args.guest.timeout,
        default_memory_request_mb: args.admission.default_memory_request,
        admission: args.admission.breaker(),
        queue_timeout: args.admission.queue_timeout,
        identity: service_identity(),
        wasmbox_compat: args.wasmbox_compat,
        memory_budget_mb: args.admission.memory_budget_mb(),
        max_body_bytes: args.clients.max_body_size.saturating_mul(1 << 20),
        body_read_timeout: args.clients.body_read_timeout,
        outbound: args.guest.outbound(),
        max_response_bytes: usize::try_from(args.clients.max_response_size.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
    };
    let shutdown = shutdown_config(args.drain_seconds, args.shutdown_timeout)?;
    let connection_limits = args.clients.connection_limits(crate::fd_limit::raise());
    let options = EngineOptions {
        cache_dir: args.cache.cache_dir.clone(),
        cgroup_cpu: cpu_quota_holder(args.cgroup_cpu),
        max_warm_slots: args.pool_warm_slots,
        module_limits: args.modules.limits(),
        ..args.admission.engine_options(args.max_instances, &args.tuning)
    };
    let identity = config.identity.clone();
    let start = Start { strict: args.strict, compile_threads: args.compile_threads };
    let app = load(loaded, Some(source), &options, args.log_dir.as_deref(), config, start).await?;
    let _watch = wasmpod_server::watch_source(app.clone()).context("watching the functions for changes")?;
    tokio::spawn(reload_on_hangup(app.clone()));
    args.admin.start(&app, args.modules.max_module_size).await?;

    let listen = listen_address(args.listen, std::env::var("PORT").ok().as_deref())?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        functions = app.registry().len(),
        address = %local,
        k_service = identity.service.as_deref(),
        k_configuration = identity.configuration.as_deref(),
        k_revision = identity.revision.as_deref(),
        drain_seconds = shutdown.drain_period.as_secs_f64(),
        shutdown_timeout_seconds = shutdown.timeout.as_secs_f64(),
        max_connections = connection_limits.max_connections,
        "serving"
    );
    // WAGI prints this line; scripts (and our tests) wait for it.
    println!("Ready: serving on http://{local}");
    std::io::stdout().flush()?;

    wasmpod_server::serve(listener, app, stop_signal(), shutdown, connection_limits).await;
    Ok(ExitCode::SUCCESS)
}

/// The cgroup workers that hold `cpu_quota` requests, when `--cgroup-cpu` asks for them and this
/// process may create cgroups; logs which mechanism holds quotas either way.
fn cpu_quota_holder(requested: bool) -> Option<Arc<CgroupCpu>> {
    if !requested {
        tracing::info!(
            "cpu quotas: epoch-based throttle in the runtime (thread CPU clock at each epoch tick)"
        );
        return None;
    }
    match CgroupCpu::detect(MAX_CGROUP_WORKERS) {
        Ok(cgroups) => {
            let (parent, accounting) = cgroups.worker_parent();
            tracing::info!(
                cgroup = %parent.display(),
                accounting = %accounting.unwrap_or(parent).display(),
                "cpu quotas: {} (a worker thread per cgroup, reused; quota set per request)",
                cgroups.mechanism()
            );
            Some(Arc::new(cgroups))
        }
        Err(reason) => {
            tracing::warn!(
                "cpu quotas: epoch-based throttle in the runtime; --cgroup-cpu is unavailable here: {reason}"
            );
            None
        }
    }
}

/// How a start treats load problems.
struct Start {
    /// `--strict`: every load problem stops the start.
    strict: bool,
    /// `--compile-threads`: threads that compile during a reload.
    compile_threads: usize,
}

/// Loads the functions and builds the app. What stops the start: with `--strict`, any load
/// problem; from a `modules.toml`, what stops WAGI (a missing or invalid module, a failing
/// `_routes`; a missing entrypoint only warns and answers 500, as in WAGI); from a folder,
/// nothing (a broken function answers 500 and is logged).
async fn load(
    loaded: LoadedConfig,
    source: Option<FunctionSource>,
    options: &EngineOptions,
    log_dir: Option<&Path>,
    config: AppConfig,
    start: Start,
) -> anyhow::Result<Arc<App>> {
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(dir) = log_dir {
        tracing::info!(log_dir = %dir.display(), "guest stderr logs");
    }
    let runtime = Runtime::new(options)?;
    let live = LiveRegistry::new(runtime, log_dir, start.compile_threads, start.strict);
    let report = live.update(loaded.functions).await;
    let tenants = loaded.tenants;
    let fatal = match &source {
        Some(FunctionSource::Folder(_)) if !start.strict => None,
        _ => report.fatal(start.strict),
    };
    if let Some(error) = fatal {
        bail!("{error}");
    }
    let app = App::new(live, &report, source, config).context("admission settings")?;
    app.set_tenant_caps(&tenants);
    Ok(Arc::new(app))
}

/// Reloads the functions on every SIGHUP (the usual "read your configuration again").
async fn reload_on_hangup(app: Arc<App>) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::warn!("cannot watch SIGHUP: {e}");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the functions");
        app.reload().await;
    }
}

/// `--listen` if given; else `0.0.0.0:$PORT` when `PORT` is set (Knative's contract); else WAGI's
/// `127.0.0.1:3000`.
fn listen_address(listen: Option<SocketAddr>, port: Option<&str>) -> anyhow::Result<SocketAddr> {
    if let Some(listen) = listen {
        return Ok(listen);
    }
    match port {
        Some(port) => {
            let port: u16 =
                port.trim().parse().with_context(|| format!("PORT={port:?} is not a port number"))?;
            Ok(SocketAddr::from(([0, 0, 0, 0], port)))
        }
        None => Ok(SocketAddr::from(([127, 0, 0, 1], 3000))),
    }
}

/// Knative's runtime contract names the pod's service, configuration and revision in the
/// environment (`K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`); empty means unset.
fn service_identity() -> ServiceIdentity {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    ServiceIdentity {
        service: var("K_SERVICE"),
        configuration: var("K_CONFIGURATION"),
        revision: var("K_REVISION"),
    }
}

/// The drain period is part of the shutdown timeout and must leave time for the requests in
/// flight to finish after it.
fn shutdown_config(drain_period: Duration, timeout: Duration) -> anyhow::Result<ShutdownConfig> {
    if drain_period >= timeout {
        bail!(
            "--drain-seconds ({}) must be shorter than --shutdown-timeout ({}): the requests in flight \
             need time to finish after the drain period",
            drain_period.as_secs_f64(),
            timeout.as_secs_f64()
        );
    }
    Ok(ShutdownConfig { drain_period, timeout })
}

/// Completes on the first SIGTERM (Kubernetes) or SIGINT (Ctrl-C), and says which.
async fn stop_signal() -> Stop {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {
            tracing::info!("SIGTERM received");
            Stop::Terminate
        }
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => {
                tracing::info!("SIGINT received: no drain period");
                Stop::Interrupt
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGINT: {e}");
                std::future::pending().await
            }
        },
    }
}

async fn run_once(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut spec = FunctionSpec::new("/...", &args.module);
    spec.entrypoint = args.entrypoint.clone();
    spec.interface = args.interface.as_deref().and_then(Interface::parse);
    let loaded = LoadedConfig { functions: vec![spec], ..LoadedConfig::default() };
    let config = AppConfig {
        user_env: user_env(&args.guest.env, &args.guest.env_files)?,
        timeout: args.guest.timeout,
        outbound: args.guest.outbound(),
        // One request: nothing to admit; its memory grant still applies.
        admission: None,
        ..AppConfig::default()
    };
    let options = EngineOptions {
        max_instances: 4,
        cache_dir: args.cache.cache_dir.clone(),
        ..EngineOptions::default()
    };
    let start = Start { strict: true, compile_threads: 1 };
    let app = load(loaded, None, &options, None, config, start).await?;

    let mut body = Vec::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_end(&mut body).context("reading the request body from stdin")?;
    }
    let mut request = http::Request::builder().method(args.method.as_str()).uri(args.path.as_str());
    for header in &args.headers {
        let (name, value) =
            header.split_once(':').with_context(|| format!("--header {header:?}: expected NAME: VALUE"))?;
        request = request.header(name.trim(), value.trim());
    }
    let request = request.body(http_body_util::Full::new(Bytes::from(body))).context("invalid request")?;
    let response = app.handle(request, std::net::Ipv4Addr::LOCALHOST.into()).await;

    let status = response.status();
    let mut out = std::io::stdout().lock();
    writeln!(out, "HTTP/1.1 {status}")?;
    for (name, value) in response.headers() {
        out.write_all(name.as_str().as_bytes())?;
        out.write_all(b": ")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| anyhow::anyhow!("reading the response body: {e}"))?;
    out.write_all(&body.to_bytes())?;
    out.flush()?;
    // A failed request fails the command, so scripts and CI notice.
    Ok(if status.is_server_error() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Compiles each module into the cache with the engine `serve` uses, one line per module:
/// `<path>  <hit|compiled|rebuilt>  <ms> ms`. A module that fails is reported and the rest still
/// compiled; the command then fails.
fn compile(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let engine = build_engine(&EngineOptions::default())?;
    let cache = ArtifactCache::open(&args.cache_dir)?;
    let mut failed = false;
    for path in &args.modules {
        let started = std::time::Instant::now();
        let result = std::fs::read(path)
            .with_context(|| format!("{}: cannot read", path.display()))
            .and_then(|bytes| Ok(cache.fill(&engine, &bytes, path)?));
        match result {
            Ok(outcome) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                println!("{}  {outcome}  {ms:.1} ms", path.display());
            }
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `--max-header-size`: bytes, no fewer than hyper can parse a request head in.
fn parse_header_size(text: &str) -> Result<usize, String> {
    let bytes: usize = text.trim().parse().map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if bytes < wasmpod_server::MIN_MAX_HEADER_BYTES {
        return Err(format!(
            "{bytes} is below the minimum of {} bytes",
            wasmpod_server::MIN_MAX_HEADER_BYTES
        ));
    }
    Ok(bytes)
}

/// A default duration as clap shows it in `--help` (whole seconds).
fn seconds_text(duration: Duration) -> clap::builder::OsStr {
    clap::builder::OsStr::from(duration.as_secs().to_string())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds = parse_seconds_or_zero(text)?;
    if seconds.is_zero() {
        return Err(format!("{text:?} must be a positive number of seconds"));
    }
    Ok(seconds)
}

/// Seconds, where 0 means "none" (`--drain-seconds 0`).
fn parse_seconds_or_zero(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(format!("{text:?} must be a positive number of seconds, or 0"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too many seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_address_follows_flag_then_port_then_wagi_default() {
        let flag: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(listen_address(Some(flag), Some("8080")).unwrap(), flag);
        assert_eq!(listen_address(None, Some("8080")).unwrap(), "0.0.0.0:8080".parse().unwrap());
        assert_eq!(listen_address(None, None).unwrap(), "127.0.0.1:3000".parse().unwrap());
        assert!(listen_address(None, Some("eighty")).is_err());
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
        assert_eq!(parse_seconds_or_zero("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_seconds_or_zero("15").unwrap(), Duration::from_secs(15));
        assert!(parse_seconds_or_zero("-0.5").is_err());
        assert!(parse_seconds_or_zero("1e30").is_err());
    }

    #[test]
    fn the_drain_period_must_leave_time_to_finish() {
        let config = shutdown_config(Duration::from_secs(15), Duration::from_secs(30)).unwrap();
        assert_eq!(config.drain_period, Duration::from_secs(15));
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert!(shutdown_config(Duration::ZERO, Duration::from_millis(500)).is_ok());
        let err = shutdown_config(Duration::from_secs(15), Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("--drain-seconds (15)"), "{err}");
        assert!(shutdown_config(Duration::from_secs(5), Duration::from_secs(5)).is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
