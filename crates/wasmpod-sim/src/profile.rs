//! What running a function in wasmpod costs, from wasmpod's own measurements.
//!
//! The per-function figures come from the machine-readable results the Wasabi benchmark writes
//! (`bench/results/wasabi-profiles.json`); the pod-wide ones default to the figures in the
//! README's "Performance" section. Container figures are not measured here: they are parameters
//! (see the README, "Density and the simulator").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::quantiles::Quantiles;

/// Per-call cost of instantiating a prepared module, in ms: `request/rust_hello` (12.9 µs, the
/// README's criterion figure), which includes the store, the WASI context and the call.
pub const DEFAULT_INSTANTIATE_MS: f64 = 0.0129;
/// Cost of loading one function into a starting pod, in ms: 1,000 functions reach their first
/// 200 in 126 ms from a warm artifact cache (README, "Performance").
pub const DEFAULT_LOAD_MS_PER_FUNCTION: f64 = 0.126;
/// Pod memory held per call in flight beyond the guest's own linear memory, in MB: 5,000
/// sleeping requests take 450 MB of RSS, 77 KB each (README, "Performance").
pub const DEFAULT_INSTANCE_OVERHEAD_MB: f64 = 0.077;

/// One measured function: what one call of it takes when it has a core to itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionProfile {
    /// The guest's name (`scrypt`, `imageblur`, ...).
    pub name: String,
    /// Median run time of one call, in ms.
    pub p50_ms: f64,
    /// 99th percentile run time of one call, in ms.
    pub p99_ms: f64,
    /// Shortest run time seen, in ms, when measured; otherwise half the median is assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    /// Longest run time seen, in ms, when measured; otherwise twice the p99 is assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// Every run time measured, in ms, when the benchmark kept them (at least two): the run
    /// time is then drawn from them (their empirical distribution) rather than from the
    /// percentiles above, whose geometric join cannot know how the calls between the median and
    /// the p99 spread (a few slow calls among many alike make its mean too high).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples_ms: Vec<f64>,
    /// Peak linear memory of one call, in MB (what the runtime's limiter saw).
    pub peak_memory_mb: f64,
    /// The `Memory-Request` the benchmark's mix declares for it, in MB.
    pub memory_request_mb: f64,
    /// Time to instantiate it from its prepared module, in ms.
    pub instantiate_ms: f64,
    /// Share of a core it uses while running (1.0 for the compute-bound Wasabi functions).
    #[serde(default = "one")]
    pub cpu_share: f64,
}

fn one() -> f64 {
    1.0
}

impl FunctionProfile {
    /// Its run time as a distribution: the measured samples when there are any, each at its
    /// rank; otherwise the median and the 99th percentile, joined geometrically, with the ends
    /// at the measured minimum and maximum, or (not measured) at half the median and twice the
    /// p99.
    pub fn duration_ms(&self) -> Quantiles {
        if self.samples_ms.len() >= 2 {
            let mut sorted = self.samples_ms.clone();
            sorted.sort_by(f64::total_cmp);
            let last = (sorted.len() - 1) as f64;
            if let Some(q) =
                Quantiles::from_points(sorted.iter().enumerate().map(|(i, &v)| (i as f64 / last, v)))
            {
                return q;
            }
        }
        let p99 = self.p99_ms.max(self.p50_ms);
        Quantiles::from_points([
            (0.0, self.min_ms.unwrap_or(self.p50_ms * 0.5).min(self.p50_ms)),
            (0.5, self.p50_ms),
            (0.99, p99),
            (1.0, self.max_ms.unwrap_or(p99 * 2.0).max(p99)),
        ])
        .unwrap_or_else(|| Quantiles::constant(self.p50_ms))
    }
}

/// The measured figures the simulator uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profiles {
    /// Measured functions; empty when no results file exists.
    #[serde(default)]
    pub functions: Vec<FunctionProfile>,
    /// Per-call instantiation cost, in ms.
    #[serde(default = "default_instantiate")]
    pub instantiate_ms: f64,
    /// Per-function load cost when a pod starts, in ms.
    #[serde(default = "default_load")]
    pub load_ms_per_function: f64,
    /// Pod memory per call in flight beyond the guest's memory, in MB.
    #[serde(default = "default_overhead")]
    pub instance_overhead_mb: f64,
}

fn default_instantiate() -> f64 {
    DEFAULT_INSTANTIATE_MS
}
fn default_load() -> f64 {
    DEFAULT_LOAD_MS_PER_FUNCTION
}
fn default_overhead() -> f64 {
    DEFAULT_INSTANCE_OVERHEAD_MB
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            functions: Vec::new(),
            instantiate_ms: DEFAULT_INSTANTIATE_MS,
            load_ms_per_function: DEFAULT_LOAD_MS_PER_FUNCTION,
            instance_overhead_mb: DEFAULT_INSTANCE_OVERHEAD_MB,
        }
    }
}

impl Profiles {
    /// Reads a profiles file; a missing file gives the defaults (and no measured functions),
    /// a malformed one is an error naming the file, line and field.
    pub fn load(path: &Path) -> Result<Profiles, SimError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
            Err(source) => return Err(SimError::Io { path: path.to_path_buf(), source }),
        };
        Profiles::parse(&text, path)
    }

    /// Parses the JSON text of a profiles file (`path` is for error messages): either the file
    /// `bench/wasabi.sh` writes (functions keyed by name, figures nested), or this type's own
    /// form (a list of [`FunctionProfile`]s and the pod-wide figures).
    pub fn parse(text: &str, path: &Path) -> Result<Profiles, SimError> {
        let input = |e: serde_json::Error| SimError::Input {
            path: path.to_path_buf(),
            line: e.line() as u64,
            field: String::new(),
            reason: e.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(input)?;
        let profiles: Profiles = if value.get("functions").is_some_and(serde_json::Value::is_object) {
            let bench: BenchResults = serde_json::from_str(text).map_err(input)?;
            Profiles { functions: bench.profiles(), ..Profiles::default() }
        } else {
            serde_json::from_str(text).map_err(input)?
        };
        for (i, f) in profiles.functions.iter().enumerate() {
            let checks = [
                ("p50_ms", f.p50_ms),
                ("p99_ms", f.p99_ms),
                ("peak_memory_mb", f.peak_memory_mb),
                ("memory_request_mb", f.memory_request_mb),
                ("cpu_share", f.cpu_share),
            ];
            if let Some((j, &v)) =
                f.samples_ms.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0))
            {
                return Err(SimError::Input {
                    path: path.to_path_buf(),
                    line: 0,
                    field: format!("functions[{i}].samples_ms[{j}]"),
                    reason: format!("{} must be a positive number, got {v}", f.name),
                });
            }
            for (field, value) in checks {
                if !(value.is_finite() && value > 0.0) {
                    return Err(SimError::Input {
                        path: path.to_path_buf(),
                        line: 0,
                        field: format!("functions[{i}].{field}"),
                        reason: format!("{} must be a positive number, got {value}", f.name),
                    });
                }
            }
        }
        Ok(profiles)
    }
}

/// `bench/results/wasabi-profiles.json` as `bench/wasabi.sh` writes it (its schema 1): only the
/// figures the simulator uses.
#[derive(Deserialize)]
struct BenchResults {
    functions: std::collections::BTreeMap<String, BenchFunction>,
}

#[derive(Deserialize)]
struct BenchFunction {
    run_ms: BenchStat,
    instantiate_us: BenchStat,
    peak_memory_bytes: f64,
    memory_request_mb: f64,
}

#[derive(Deserialize)]
struct BenchStat {
    p50: f64,
    p99: f64,
}

impl BenchResults {
    fn profiles(self) -> Vec<FunctionProfile> {
        self.functions
            .into_iter()
            .map(|(name, f)| FunctionProfile {
                name,
                p50_ms: f.run_ms.p50,
                p99_ms: f.run_ms.p99,
                min_ms: None,
                max_ms: None,
                samples_ms: Vec::new(),
                peak_memory_mb: f.peak_memory_bytes / f64::from(1 << 20),
                memory_request_mb: f.memory_request_mb,
                instantiate_ms: f.instantiate_us.p50 / 1000.0,
                cpu_share: 1.0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file `bench/wasabi.sh` writes is read as it is: the committed run of record parses,
    /// and each function's figures land where the simulator reads them.
    #[test]
    fn reads_the_wasabi_benchmarks_own_results() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/wasabi-profiles.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let p = Profiles::parse(&text, &path).unwrap();
        let names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["genpdf", "imageblur", "json-compression", "rsa-keygen", "scrypt"]);
        let text = r#"{"schema": 1, "functions": {"scrypt": {"run_ms": {"p50": 500.0, "p99": 520.0},
            "instantiate_us": {"p50": 300.0, "p99": 900.0}, "peak_memory_bytes": 2097152,
            "memory_request_mb": 2}}}"#;
        let p = Profiles::parse(text, Path::new("w.json")).unwrap();
        let scrypt = &p.functions[0];
        assert_eq!((scrypt.p50_ms, scrypt.p99_ms, scrypt.peak_memory_mb), (500.0, 520.0, 2.0));
        assert_eq!((scrypt.memory_request_mb, scrypt.instantiate_ms), (2.0, 0.3));
        assert_eq!(p.instantiate_ms, DEFAULT_INSTANTIATE_MS);
    }

    #[test]
    fn a_missing_file_gives_the_documented_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profiles::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(p, Profiles::default());
        assert_eq!(p.load_ms_per_function, DEFAULT_LOAD_MS_PER_FUNCTION);
    }

    #[test]
    fn reads_measured_functions() {
        let text = r#"{"functions": [{"name": "scrypt", "p50_ms": 80, "p99_ms": 95,
            "peak_memory_mb": 3.2, "memory_request_mb": 8, "instantiate_ms": 0.05}],
            "instantiate_ms": 0.02}"#;
        let p = Profiles::parse(text, Path::new("p.json")).unwrap();
        assert_eq!(p.functions[0].cpu_share, 1.0);
        assert_eq!(p.instantiate_ms, 0.02);
        assert_eq!(p.load_ms_per_function, DEFAULT_LOAD_MS_PER_FUNCTION);
        let d = p.functions[0].duration_ms();
        assert_eq!(d.median(), 80.0);
        assert_eq!(d.at(0.99), 95.0);
    }

    #[test]
    fn measured_samples_replace_the_percentiles() {
        // Nine calls alike and one slow (mean 11 ms): the percentiles' geometric join between
        // the median and the p99 puts half the draws between 10 and 20 ms (mean 12.3); drawn
        // from the samples, 10.5.
        let text = r#"{"functions": [{"name": "f", "p50_ms": 10, "p99_ms": 20, "min_ms": 10, "max_ms": 20,
            "samples_ms": [10, 10, 10, 10, 20, 10, 10, 10, 10, 10],
            "peak_memory_mb": 1, "memory_request_mb": 1, "instantiate_ms": 0}]}"#;
        let p = Profiles::parse(text, Path::new("p.json")).unwrap();
        let mean =
            |q: &Quantiles| (0..10_000).map(|i| q.at((f64::from(i) + 0.5) / 10_000.0)).sum::<f64>() / 1e4;
        let samples = p.functions[0].duration_ms();
        assert!((mean(&samples) - 10.5).abs() < 0.05, "{}", mean(&samples));
        assert_eq!((samples.at(0.0), samples.at(0.5), samples.max()), (10.0, 10.0, 20.0));
        let mut without = p.functions[0].clone();
        without.samples_ms.clear();
        assert!(mean(&without.duration_ms()) > 12.0, "{}", mean(&without.duration_ms()));
        let bad = text.replace("[10, 10, 10,", "[10, -1, 10,");
        let err = Profiles::parse(&bad, Path::new("p.json")).unwrap_err().to_string();
        assert_eq!(
            err,
            "p.json:0: field \"functions[0].samples_ms[1]\": f must be a positive number, got -1"
        );
    }

    #[test]
    fn a_bad_figure_names_its_field() {
        let text = r#"{"functions": [{"name": "x", "p50_ms": 0, "p99_ms": 1,
            "peak_memory_mb": 1, "memory_request_mb": 1, "instantiate_ms": 0}]}"#;
        let err = Profiles::parse(text, Path::new("p.json")).unwrap_err().to_string();
        assert_eq!(err, "p.json:0: field \"functions[0].p50_ms\": x must be a positive number, got 0");
    }
}
