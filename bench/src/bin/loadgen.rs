//! An open-loop load generator for 127.0.0.1: requests arrive at a fixed rate (Poisson or
//! evenly spaced), whether or not earlier ones have been answered, so a slow server meets a
//! growing backlog instead of a politely waiting client (wrk's closed loop hides that).
//!
//! With `--schedule`, the arrivals are not drawn but read from an arrival trace (the
//! `at_ms,function` CSV that `wasmpod simulate pod` replays, each function a target by name), so a
//! real pod and the simulator see exactly the same calls.
//!
//! Bounded by count (`--max-requests`) and time (`--duration`, then at most `--timeout` for the
//! last answers). Each request's latency runs from its *scheduled* arrival, so a client that falls
//! behind cannot hide queueing (no coordinated omission). `bench/README.md` documents the CLI,
//! the targets file and both outputs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Send requests to a server on this machine at a fixed arrival rate, and record each one.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// The server, `http://127.0.0.1:PORT` (loopback addresses only).
    #[arg(long)]
    base: String,
    /// A JSON array of targets (see bench/README.md); without it, GET `--path`.
    #[arg(long, conflicts_with = "path")]
    targets: Option<PathBuf>,
    /// The one target's path when there is no targets file.
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second, over all targets.
    #[arg(long, required_unless_present = "schedule")]
    rate: Option<f64>,
    /// Send exactly these arrivals instead: an arrival trace (`at_ms,function`, README "Density
    /// and the simulator"); each function is the target of that name.
    #[arg(long, conflicts_with_all = ["rate", "max_requests"])]
    schedule: Option<PathBuf>,
    /// How long requests keep arriving (seconds).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop sending after this many requests, even before --duration.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Gaps between arrivals: exponential (a Poisson process) or all equal.
    #[arg(long, value_enum, default_value_t = Arrival::Poisson)]
    arrival: Arrival,
    /// Seed of the arrival gaps and of the target picks: the same seed, the same schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up on one request after this long (seconds); recorded with status 0.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Requests outstanding at once; an arrival beyond it is recorded as dropped (status 0).
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// One line per request: `scheduled_ms,target,status,latency_ms,error`.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// The summary (JSON); printed to stdout as well.
    #[arg(long)]
    summary: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Arrival {
    Poisson,
    Uniform,
}

/// One kind of request in the mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    name: String,
    #[serde(default = "one")]
    weight: f64,
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn one() -> f64 {
    1.0
}

fn get() -> String {
    "GET".to_owned()
}

/// What happened to one request.
#[derive(Debug, Clone)]
struct Record {
    scheduled_ms: f64,
    target: usize,
    /// The HTTP status; 0 when there was none (connection error, timeout, dropped).
    status: u16,
    latency_ms: f64,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    rate: f64,
    arrival: String,
    duration_s: f64,
    sent: u64,
    /// Requests answered (any status) per second of the whole run.
    throughput_rps: f64,
    /// Requests answered 2xx per second of the whole run.
    goodput_rps: f64,
    targets: BTreeMap<String, TargetSummary>,
}

#[derive(Debug, Serialize)]
struct TargetSummary {
    sent: u64,
    /// Count per status code; `"0"` counts requests with no answer.
    status: BTreeMap<String, u64>,
    /// Latency of the 2xx answers, in milliseconds (null when there were none).
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.rate.is_some_and(|rate| !(rate.is_finite() && rate > 0.0)) {
        return Err("--rate must be a positive number of requests per second".into());
    }
    let base: http::Uri = args.base.parse().map_err(|e| format!("--base {:?}: {e}", args.base))?;
    check_loopback(&base)?;
    let targets = match &args.targets {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let targets: Vec<Target> =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            if targets.is_empty() || targets.iter().any(|t| !(t.weight.is_finite() && t.weight > 0.0)) {
                return Err(format!(
                    "{}: give at least one target, each with a positive weight",
                    file.display()
                )
                .into());
            }
            targets
        }
        None => vec![Target {
            name: args.path.clone(),
            weight: 1.0,
            method: get(),
            path: args.path.clone(),
            body: String::new(),
            headers: BTreeMap::new(),
        }],
    };
    let requests = targets.iter().map(|t| build_request(&base, t)).collect::<Result<Vec<_>, _>>()?;
    let schedule = match &args.schedule {
        Some(path) => Some(schedule(path, &targets)?),
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (records, elapsed) = runtime.block_on(drive(&args, &targets, Arc::new(requests), schedule));

    if let Some(path) = &args.csv {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(out, "scheduled_ms,target,status,latency_ms,error")?;
        for r in &records {
            let error = r.error.as_deref().unwrap_or("").replace([',', '\n'], " ");
            writeln!(
                out,
                "{:.3},{},{},{:.3},{error}",
                r.scheduled_ms, targets[r.target].name, r.status, r.latency_ms
            )?;
        }
        out.flush()?;
    }
    let summary = summarize(&args, &targets, &records, elapsed);
    let text = serde_json::to_string_pretty(&summary)? + "\n";
    print!("{text}");
    if let Some(path) = &args.summary {
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// Only the loopback range: this tool never sends load anywhere else.
fn check_loopback(base: &http::Uri) -> Result<(), String> {
    if base.scheme_str() != Some("http") {
        return Err(format!("--base {base}: only http:// is supported"));
    }
    let host = base.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "--base {base}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed"
        ));
    }
    Ok(())
}

/// The request a target sends, built once (cloned per arrival: the body is shared bytes).
fn build_request(base: &http::Uri, target: &Target) -> Result<http::Request<Full<Bytes>>, String> {
    let uri = format!("{}{}", base.to_string().trim_end_matches('/'), target.path);
    let mut builder = http::Request::builder().method(target.method.as_str()).uri(&uri);
    for (name, value) in &target.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(target.body.clone())))
        .map_err(|e| format!("target {:?}: {e}", target.name))
}

/// The arrivals of an arrival trace: `(offset from the start, target index)`, in order. A
/// function no target is named after is an error naming the file, line and field.
fn schedule(path: &std::path::Path, targets: &[Target]) -> Result<Vec<(Duration, usize)>, String> {
    let calls = wasmpod_sim::load_trace(path).map_err(|e| e.to_string())?;
    calls
        .iter()
        .map(|call| {
            let target = targets.iter().position(|t| t.name == call.function).ok_or_else(|| {
                format!(
                    "{}:{}: field \"function\": no target named {:?} in --targets",
                    path.display(),
                    call.line,
                    call.function
                )
            })?;
            Ok((Duration::from_secs_f64(call.at_ms / 1000.0), target))
        })
        .collect()
}

/// Sends on schedule until the duration or the count runs out (or, with an explicit schedule,
/// every arrival of it), then waits for the answers.
async fn drive(
    args: &Args,
    targets: &[Target],
    requests: Arc<Vec<http::Request<Full<Bytes>>>>,
    schedule: Option<Vec<(Duration, usize)>>,
) -> (Vec<Record>, Duration) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.max_in_flight).build(connector);
    let records = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    let total_weight: f64 = targets.iter().map(|t| t.weight).sum();
    let mut rng = SplitMix64(args.seed);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.duration.max(0.0));
    let mut next = started;
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    let mut planned = schedule.map(Vec::into_iter);
    let rate = args.rate.unwrap_or(1.0);
    loop {
        let target = match &mut planned {
            Some(planned) => {
                let Some((offset, target)) = planned.next() else { break };
                next = started + offset;
                target
            }
            None => {
                if next >= end || args.max_requests.is_some_and(|max| sent >= max) {
                    break;
                }
                pick(targets, total_weight, rng.unit())
            }
        };
        tokio::time::sleep_until(next).await;
        let scheduled = next;
        let scheduled_ms = (scheduled - started).as_secs_f64() * 1e3;
        sent += 1;
        if planned.is_none() {
            next += gap(args.arrival, rate, rng.unit());
        }

        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            let record = Record {
                scheduled_ms,
                target,
                status: 0,
                latency_ms: 0.0,
                error: Some("dropped: client in-flight limit".into()),
            };
            records.lock().unwrap_or_else(|e| e.into_inner()).push(record);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, requests, records, in_flight) =
            (client.clone(), requests.clone(), records.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let request = requests[target].clone();
            let result = tokio::time::timeout(timeout, async {
                let response = client.request(request).await.map_err(|e| format!("{e}"))?;
                let status = response.status().as_u16();
                response.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
                Ok::<u16, String>(status)
            })
            .await;
            let latency_ms = scheduled.elapsed().as_secs_f64() * 1e3;
            let (status, error) = match result {
                Ok(Ok(status)) => (status, None),
                Ok(Err(e)) => (0, Some(e)),
                Err(_) => (0, Some(format!("timeout after {timeout:?}"))),
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            records.lock().unwrap_or_else(|e| e.into_inner()).push(Record {
                scheduled_ms,
                target,
                status,
                latency_ms,
                error,
            });
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let mut records = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    records.sort_by(|a, b| a.scheduled_ms.total_cmp(&b.scheduled_ms));
    (records, elapsed)
}

/// The gap to the next arrival: exponential with mean 1/rate (Poisson), or exactly 1/rate.
fn gap(arrival: Arrival, rate: f64, unit: f64) -> Duration {
    let seconds = match arrival {
        Arrival::Uniform => 1.0 / rate,
        Arrival::Poisson => -(1.0 - unit).ln() / rate,
    };
    Duration::from_secs_f64(seconds)
}

/// The target whose share of the total weight covers `unit` (in [0, 1)).
fn pick(targets: &[Target], total_weight: f64, unit: f64) -> usize {
    let mut point = unit * total_weight;
    for (i, target) in targets.iter().enumerate() {
        if point < target.weight {
            return i;
        }
        point -= target.weight;
    }
    targets.len() - 1
}

fn summarize(args: &Args, targets: &[Target], records: &[Record], elapsed: Duration) -> Summary {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let answered = records.iter().filter(|r| r.status != 0).count() as f64;
    let good = records.iter().filter(|r| (200..300).contains(&r.status)).count() as f64;
    let mut per_target = BTreeMap::new();
    for (i, target) in targets.iter().enumerate() {
        let mine: Vec<&Record> = records.iter().filter(|r| r.target == i).collect();
        let mut status = BTreeMap::new();
        for r in &mine {
            *status.entry(r.status.to_string()).or_insert(0) += 1;
        }
        let mut ok: Vec<f64> =
            mine.iter().filter(|r| (200..300).contains(&r.status)).map(|r| r.latency_ms).collect();
        ok.sort_by(f64::total_cmp);
        per_target.insert(
            target.name.clone(),
            TargetSummary {
                sent: mine.len() as u64,
                status,
                p50_ms: percentile(&ok, 0.50),
                p99_ms: percentile(&ok, 0.99),
                max_ms: ok.last().copied(),
            },
        );
    }
    Summary {
        rate: args.rate.unwrap_or(records.len() as f64 / seconds),
        arrival: if args.schedule.is_some() {
            "schedule".to_owned()
        } else {
            format!("{:?}", args.arrival).to_lowercase()
        },
        duration_s: seconds,
        sent: records.len() as u64,
        throughput_rps: answered / seconds,
        goodput_rps: good / seconds,
        targets: per_target,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// SplitMix64: a tiny seeded generator, enough for arrival gaps and picks.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_bases_are_accepted() {
        for ok in ["http://127.0.0.1:3000", "http://127.1.2.3:1", "http://localhost:80", "http://[::1]:8080"]
        {
            assert!(check_loopback(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in
            ["http://10.0.0.1:3000", "http://example.com", "https://127.0.0.1:3000", "http://192.168.1.1"]
        {
            assert!(check_loopback(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn poisson_gaps_average_to_the_rate_and_uniform_gaps_are_exact() {
        let mut rng = SplitMix64(7);
        let n = 100_000;
        let total: f64 = (0..n).map(|_| gap(Arrival::Poisson, 50.0, rng.unit()).as_secs_f64()).sum();
        let mean = total / n as f64;
        assert!((mean - 0.02).abs() < 0.0005, "mean gap {mean}");
        assert_eq!(gap(Arrival::Uniform, 50.0, 0.3), Duration::from_millis(20));
    }

    #[test]
    fn picks_follow_the_weights() {
        let target = |name: &str, weight| Target {
            name: name.into(),
            weight,
            method: get(),
            path: "/".into(),
            body: String::new(),
            headers: BTreeMap::new(),
        };
        let targets = [target("a", 1.0), target("b", 3.0)];
        let mut rng = SplitMix64(1);
        let b = (0..40_000).filter(|_| pick(&targets, 4.0, rng.unit()) == 1).count();
        assert!((29_000..31_000).contains(&b), "{b} of 40000 picked b");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), Some(50.0));
        assert_eq!(percentile(&samples, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
