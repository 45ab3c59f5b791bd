//! Profiles the five Wasabi functions at full size, as wasmpod runs them and as WasmBox's
//! per-request design would, and writes the figures the cluster simulator reads.
//!
//! Per function: compile time and artifact size; then `--runs` calls alternating the two designs
//! (ours, WasmBox's, ours, ...), so drift in the machine's load hits both alike:
//!
//! - **prepared once** (wasmpod): the module compiled and linked at load; per call, a `Store` with
//!   the request's limits, instantiation from the pooled `InstancePre`, the call. The memory
//!   limiter's peak is what `wasmpod_memory_peak_bytes` reports.
//! - **per request** (WasmBox): per call, a fresh `Engine` (wasmtime's default config), a
//!   `Module::deserialize` of the compiled artifact, a fresh `Linker` with WASI, instantiation and
//!   the call, as WasmBox's handler does for every request.
//!
//! `bench/README.md` documents the output (`--json`, `--markdown`); `bench/wasabi.sh` runs it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde::Serialize;
use wasmpod_runtime::{build_engine, EngineOptions, FunctionSpec, Guest, RequestLimits, Runtime, WagiInput};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// Profile the Wasabi functions: run time, peak memory, instantiate, compile, artifact size.
#[derive(Debug, Parser)]
struct Args {
    /// Calls per function and design (the percentiles are over these).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Only these functions (comma-separated binary names) [default: all five].
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
    /// Run each function's small case (a smoke test of the tool) instead of its full size.
    #[arg(long)]
    small: bool,
    /// The commit the figures belong to (recorded in the JSON).
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// When the run was made, e.g. `date -u +%FT%TZ` (recorded in the JSON).
    #[arg(long, default_value = "unknown")]
    date: String,
    /// Write the machine-readable profiles here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown table here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// The file the simulator reads: `bench/README.md` describes every field.
#[derive(Debug, Serialize)]
struct Profiles {
    schema: u32,
    date: String,
    commit: String,
    machine: Machine,
    runs: usize,
    /// True when the calls ran the small cases, not the full size: not a profile.
    small: bool,
    functions: BTreeMap<String, FunctionProfile>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    memory_mib: u64,
}

#[derive(Debug, Serialize)]
struct FunctionProfile {
    wasm_bytes: u64,
    artifact_bytes: u64,
    compile_ms: f64,
    /// Per call, wasmpod: instantiation from the prepared `InstancePre`, in microseconds.
    instantiate_us: Percentiles,
    /// Per call, wasmpod: instantiation plus the guest's run, in milliseconds.
    run_ms: Percentiles,
    /// The largest peak of linear memory (and tables) over the calls, in bytes.
    peak_memory_bytes: u64,
    /// A `Memory-Request` that covers the peak: whole MB, rounded up, plus 25%.
    memory_request_mb: u64,
    /// Per call, WasmBox's design: engine, deserialize, link, instantiate, run.
    per_request_ms: Percentiles,
    /// Per call, WasmBox's design: engine, deserialize and link only.
    per_request_prepare_ms: Percentiles,
    /// `per_request_ms.p50 / run_ms.p50`: what preparing once gives end to end.
    prepare_once_ratio: f64,
    /// The size parameter every call sent (empty: the full size).
    parameter: String,
    /// The guest's line from the last call.
    output: String,
}

/// The size parameter of each function's small case (`--small`).
const SMALL_CASES: &[(&str, &str)] = &[
    ("genpdf", "50"),
    ("imageblur", "100"),
    ("json-compression", "20000"),
    ("rsa-keygen", "512"),
    ("scrypt", "50"),
];

#[derive(Debug, Clone, Copy, Serialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    mean: f64,
}

impl Percentiles {
    fn of(samples: &[f64]) -> Percentiles {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Nearest rank: with 20 samples p99 is the largest, as it should be.
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1]
        };
        let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
        Percentiles { p50: at(0.5), p99: at(0.99), mean }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let chosen: Vec<(&str, &str)> = wasmpod_guests::wasabi::ALL
        .iter()
        .copied()
        .filter(|(name, _)| args.functions.is_empty() || args.functions.iter().any(|f| f == name))
        .collect();
    if chosen.is_empty() {
        return Err(format!("no function among {:?}", args.functions).into());
    }

    let mut functions = BTreeMap::new();
    for (name, path) in chosen {
        eprintln!("{name}: compiling");
        let profile = profile(name, path, &args).await?;
        eprintln!(
            "{name}: run p50 {:.1} ms p99 {:.1} ms, per-request design p50 {:.1} ms (x{:.3}), peak {} MiB",
            profile.run_ms.p50,
            profile.run_ms.p99,
            profile.per_request_ms.p50,
            profile.prepare_once_ratio,
            profile.peak_memory_bytes >> 20
        );
        functions.insert(name.to_owned(), profile);
    }
    let profiles = Profiles {
        schema: 1,
        date: args.date.clone(),
        commit: args.commit.clone(),
        machine: machine(),
        runs: args.runs,
        small: args.small,
        functions,
    };
    let table = markdown(&profiles);
    print!("{table}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&profiles)? + "\n")?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, table)?;
    }
    Ok(())
}

async fn profile(name: &str, path: &str, args: &Args) -> Result<FunctionProfile, Box<dyn std::error::Error>> {
    let wasm = std::fs::read(path)?;
    let parameter = match args.small {
        true => SMALL_CASES.iter().find(|(n, _)| *n == name).map_or("", |(_, p)| p),
        false => "",
    };
    let options = EngineOptions { max_instances: 4, ..EngineOptions::default() };

    // Compile time and artifact size, with the engine the server uses (best of three: compile is
    // a one-off cost per module, and the machine may be busy; once for the small cases).
    let engine = build_engine(&options)?;
    let mut compile = Duration::MAX;
    let mut module = None;
    for _ in 0..if args.small { 1 } else { 3 } {
        let started = Instant::now();
        let compiled = Module::new(&engine, &wasm)?;
        compile = compile.min(started.elapsed());
        module = Some(compiled);
    }
    let artifact_bytes = module.map(|m| m.serialize()).transpose()?.map_or(0, |a| a.len() as u64);

    // wasmpod: load once.
    let runtime = Runtime::new(&options)?;
    let registry = runtime.load(&[FunctionSpec::new(format!("/{name}"), path)], None).await?;
    let function = registry.lookup(&format!("/{name}")).ok_or("function not loaded")?.clone();
    let Guest::Wagi(module) = function.guest() else {
        return Err(format!("{name} is not a core module").into());
    };
    let limits = RequestLimits { timeout: Duration::from_secs(600), ..RequestLimits::default() };

    // WasmBox: the artifact its deployment ships, compiled once by an engine of the config it
    // deserializes with.
    let per_request_config = Config::new();
    let artifact = Engine::new(&per_request_config)?.precompile_module(&wasm)?;

    let mut run_ms = Vec::with_capacity(args.runs);
    let mut instantiate_us = Vec::with_capacity(args.runs);
    let mut per_request_ms = Vec::with_capacity(args.runs);
    let mut per_request_prepare_ms = Vec::with_capacity(args.runs);
    let mut peak = 0u64;
    let mut output = String::new();
    for _ in 0..args.runs {
        let input = WagiInput {
            // The functions print a header block for WAGI (`guests/README.md`).
            env: vec![("GATEWAY_INTERFACE".into(), "CGI/1.1".to_owned())],
            argv: vec![name.to_owned()],
            body: Bytes::from(parameter.to_owned()),
        };
        let started = Instant::now();
        let outcome = module.run(input, &limits).await?;
        run_ms.push(started.elapsed().as_secs_f64() * 1e3);
        instantiate_us.push(outcome.instantiate.as_secs_f64() * 1e6);
        peak = peak.max(outcome.peak_memory_bytes);
        output = String::from_utf8_lossy(&outcome.response.body).trim_end().to_owned();
        if outcome.response.status != 200 {
            return Err(format!("{name}: status {}: {output}", outcome.response.status).into());
        }

        // On a thread of its own, as WasmBox runs each request (and outside the async runtime,
        // which wasmtime-wasi's synchronous WASI would otherwise block).
        let (total, prepare, text) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    run_per_request(&per_request_config, &artifact, name, parameter)
                        .map_err(|e| e.to_string())
                })
                .join()
                .unwrap_or_else(|_| Err("the per-request run panicked".to_owned()))
        })?;
        per_request_ms.push(total.as_secs_f64() * 1e3);
        per_request_prepare_ms.push(prepare.as_secs_f64() * 1e3);
        if !text.starts_with(output.split(':').next().unwrap_or_default()) {
            return Err(
                format!("{name}: the two designs printed different lines: {text:?} vs {output:?}").into()
            );
        }
    }
    let run = Percentiles::of(&run_ms);
    let per_request = Percentiles::of(&per_request_ms);
    Ok(FunctionProfile {
        wasm_bytes: wasm.len() as u64,
        artifact_bytes,
        compile_ms: compile.as_secs_f64() * 1e3,
        instantiate_us: Percentiles::of(&instantiate_us),
        run_ms: run,
        peak_memory_bytes: peak,
        memory_request_mb: (peak * 5 / 4).div_ceil(1 << 20),
        per_request_ms: per_request,
        per_request_prepare_ms: Percentiles::of(&per_request_prepare_ms),
        prepare_once_ratio: per_request.p50 / run.p50,
        parameter: parameter.to_owned(),
        output,
    })
}

/// One call the way WasmBox serves every request. Returns the total time, the time before
/// instantiation (engine, deserialize, link) and what the guest printed.
fn run_per_request(
    config: &Config,
    artifact: &[u8],
    name: &str,
    parameter: &str,
) -> Result<(Duration, Duration, String), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let engine = Engine::new(config)?;
    // SAFETY: the artifact was produced by `precompile_module` of an engine with this same
    // config, in this process, and is not modified.
    let module = unsafe { Module::deserialize(&engine, artifact)? };
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx| ctx)?;
    let prepare = started.elapsed();

    let stdout = MemoryOutputPipe::new(64 << 20);
    let wasi = WasiCtxBuilder::new()
        .stdin(MemoryInputPipe::new(Bytes::from(parameter.to_owned())))
        .stdout(stdout.clone())
        .inherit_stderr()
        .arg(name)
        .build_p1();
    let mut store = Store::new(&engine, wasi);
    let instance = linker.instantiate(&mut store, &module)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    match start.call(&mut store, ()) {
        Ok(()) => {}
        Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|exit| exit.0 == 0) => {}
        Err(e) => return Err(format!("{name} (per-request design): {e:#}").into()),
    }
    let total = started.elapsed();
    drop(store);
    let text = String::from_utf8_lossy(&stdout.contents()).trim_end().to_owned();
    Ok((total, prepare, text))
}

fn markdown(profiles: &Profiles) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Wasabi functions, {} calls each, commit {}, {} ({} cores, {}), {}.\n",
        profiles.runs,
        profiles.commit,
        profiles.machine.cpu,
        profiles.machine.cores,
        profiles.machine.kernel,
        profiles.date
    );
    let _ = writeln!(
        out,
        "| function | run p50 (ms) | run p99 (ms) | peak memory (MiB) | Memory-Request (MB) | instantiate p50 (us) | compile (ms) | wasm (KiB) | artifact (KiB) | per-request design p50 (ms) | its prepare p50 (ms) | prepare-once ratio |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, f) in &profiles.functions {
        let _ = writeln!(
            out,
            "| `{name}` | {:.1} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {} | {} | {:.1} | {:.2} | {:.3} |",
            f.run_ms.p50,
            f.run_ms.p99,
            f.peak_memory_bytes as f64 / f64::from(1 << 20),
            f.memory_request_mb,
            f.instantiate_us.p50,
            f.compile_ms,
            f.wasm_bytes >> 10,
            f.artifact_bytes >> 10,
            f.per_request_ms.p50,
            f.per_request_prepare_ms.p50,
            f.prepare_once_ratio
        );
    }
    out
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
        .unwrap_or("unknown")
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb >> 10);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: format!("Linux {kernel}"),
        memory_mib,
    }
}
