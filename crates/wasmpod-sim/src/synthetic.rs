//! A seeded workload with the Azure trace's shape, for when no trace is at hand.
//!
//! The shape follows what Shahrad et al. ("Serverless in the Wild", USENIX ATC 2020) report for
//! the Azure Functions 2019 trace; each default below says which observation it encodes. What the
//! trace does not say (CPU use, how much users over-declare memory) is an assumption, and says so.

use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Normal, Poisson};

use crate::error::SimError;
use crate::profile::FunctionProfile;
use crate::quantiles::Quantiles;
use crate::workload::{FunctionSpec, Trigger, Workload};

/// Functions in the default synthetic workload (the scale of the simulator's speed target).
pub const DEFAULT_FUNCTIONS: usize = 10_000;
/// Minutes replayed by default: Wasabi replays the first two hours of the trace.
pub const DEFAULT_MINUTES: usize = 120;
/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 1;

/// The knobs of the synthetic generator. [`SyntheticConfig::default`] is the documented shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Number of functions.
    pub functions: usize,
    /// Minutes to generate.
    pub minutes: usize,
    /// Seed: the same seed gives the same workload, call for call.
    pub seed: u64,
    /// Popularity: log10 of a function's calls per day is normal with this mean and standard
    /// deviation. Mean 1.38 (24 calls a day) puts half the functions at most once an hour, and
    /// 2.0 puts about 80% at most once a minute, as the paper reports for apps.
    pub log10_calls_per_day: (f64, f64),
    /// The most calls a minute one function gets outside bursts: a cap on the normal's far tail,
    /// so the total load stays that of a cluster (about 600 calls/s for 10,000 functions).
    pub max_calls_per_minute: f64,
    /// Relative amplitude of the diurnal cycle (rate x (1 + a sin)), peaking at `peak_hour`.
    pub diurnal_amplitude: f64,
    /// Hour of the day of the diurnal peak.
    pub peak_hour: f64,
    /// Hour of the day at which the workload starts (the trace's day starts at midnight).
    pub start_hour: f64,
    /// Chance per function and minute that a burst starts.
    pub burst_probability: f64,
    /// A burst multiplies the function's rate by this factor ...
    pub burst_factor: f64,
    /// ... for this many minutes on average (geometric).
    pub burst_minutes: f64,
    /// Share of functions that are timers (the rest are split among the other triggers).
    pub timer_share: f64,
    /// Median over functions of the median run time, in ms, and the log-space spread over
    /// functions: about half the functions run under a second on average, the tail reaches
    /// minutes.
    pub duration_ms: (f64, f64),
    /// Log-space spread of one function's run time from call to call.
    pub duration_call_sigma: f64,
    /// Median over functions of the memory one call uses, in MB, and the log-space spread over
    /// functions: most apps use a few hundred MB or less, the median near 150.
    pub memory_mb: (f64, f64),
    /// Log-space spread of one function's memory from call to call.
    pub memory_call_sigma: f64,
    /// Declared memory = the function's largest real use times a factor drawn log-uniformly in
    /// this range. An assumption: users size for the worst case they fear, and then some.
    pub overdeclare: (f64, f64),
    /// Share of a core a running call wants, drawn log-uniformly in this range. An assumption:
    /// the trace has no CPU figures; most functions wait on I/O for most of their run.
    pub cpu_share: (f64, f64),
    /// Functions per app: geometric with this mean.
    pub functions_per_app: f64,
    /// Apps per owner (tenant): geometric with this mean.
    pub apps_per_owner: f64,
    /// What each function is. Empty: its run time, memory and CPU share are drawn from the
    /// distributions above (`duration_ms`, `memory_mb`, `cpu_share`), the trace's shape. Not
    /// empty: each function is an instance of one of these measured guests, picked uniformly,
    /// and runs, uses memory and instantiates as that guest does in wasmpod; only its
    /// popularity, trigger, owner and over-declaration are drawn.
    pub kinds: Vec<FunctionProfile>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            functions: DEFAULT_FUNCTIONS,
            minutes: DEFAULT_MINUTES,
            seed: DEFAULT_SEED,
            log10_calls_per_day: (1.38, 2.0),
            max_calls_per_minute: 60.0,
            diurnal_amplitude: 0.3,
            peak_hour: 14.0,
            start_hour: 0.0,
            burst_probability: 0.001,
            burst_factor: 10.0,
            burst_minutes: 3.0,
            timer_share: 0.15,
            duration_ms: (700.0, 1.6),
            duration_call_sigma: 0.5,
            memory_mb: (150.0, 0.7),
            memory_call_sigma: 0.15,
            overdeclare: (1.0, 2.0),
            cpu_share: (0.02, 0.5),
            functions_per_app: 2.0,
            apps_per_owner: 1.5,
            kinds: Vec::new(),
        }
    }
}

/// Timer periods, in minutes, a timer function draws from (every minute .. every hour).
const TIMER_PERIODS: [u32; 6] = [1, 5, 10, 15, 30, 60];
/// Non-timer triggers and their relative weights (HTTP most common, then queues and events).
const TRIGGERS: [(Trigger, f64); 6] = [
    (Trigger::Http, 0.55),
    (Trigger::Queue, 0.16),
    (Trigger::Event, 0.10),
    (Trigger::Storage, 0.07),
    (Trigger::Orchestration, 0.04),
    (Trigger::Others, 0.08),
];
/// Mixed into the seed for the stream that picks each function's measured kind.
const KIND_STREAM: u64 = 0x6b69_6e64;
/// The longest a call may run (the Azure Functions consumption plan's 10-minute limit).
const MAX_DURATION_MS: f64 = 600_000.0;

/// Generates the workload `config` describes. Deterministic in `config.seed`.
pub fn generate(config: &SyntheticConfig) -> Result<Workload, SimError> {
    validate(config)?;
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(config.seed);
    let mut kind_rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(config.seed ^ KIND_STREAM);
    let popularity = Normal::new(config.log10_calls_per_day.0, config.log10_calls_per_day.1)
        .map_err(|e| setting("--synthetic popularity", e.to_string()))?;
    let function_duration = Normal::new(config.duration_ms.0.ln(), config.duration_ms.1)
        .map_err(|e| setting("--synthetic duration", e.to_string()))?;
    let function_memory = Normal::new(config.memory_mb.0.ln(), config.memory_mb.1)
        .map_err(|e| setting("--synthetic memory", e.to_string()))?;

    let mut functions = Vec::with_capacity(config.functions);
    let mut rates = Vec::with_capacity(config.functions);
    let (mut owner, mut app, mut left_in_app, mut left_in_owner) = (0usize, 0usize, 0u32, 0u32);
    for index in 0..config.functions {
        if left_in_app == 0 {
            if left_in_owner == 0 {
                owner += 1;
                left_in_owner = geometric(&mut rng, config.apps_per_owner);
            }
            left_in_owner -= 1;
            app += 1;
            left_in_app = geometric(&mut rng, config.functions_per_app);
        }
        left_in_app -= 1;

        let trigger =
            if rng.random_bool(config.timer_share) { Trigger::Timer } else { pick_trigger(&mut rng) };
        let rate = match trigger {
            Trigger::Timer => {
                let period = TIMER_PERIODS[rng.random_range(0..TIMER_PERIODS.len())];
                Rate::Timer { period, phase: rng.random_range(0..period) }
            }
            _ => {
                let per_day = 10f64.powf(popularity.sample(&mut rng));
                Rate::Poisson((per_day / 1440.0).min(config.max_calls_per_minute))
            }
        };
        // Drawn in both modes, so that the calls (popularity, bursts) are the same whatever the
        // functions are; the kind comes from a stream of its own.
        let median_ms = function_duration.sample(&mut rng).exp().clamp(1.0, MAX_DURATION_MS);
        let median_mb = function_memory.sample(&mut rng).exp().clamp(8.0, 4096.0);
        let kind =
            (!config.kinds.is_empty()).then(|| &config.kinds[kind_rng.random_range(0..config.kinds.len())]);
        let (duration_ms, memory_mb, instantiate_ms) = match kind {
            Some(kind) => {
                (kind.duration_ms(), Quantiles::constant(kind.peak_memory_mb), Some(kind.instantiate_ms))
            }
            None => (
                Quantiles::log_normal(median_ms, config.duration_call_sigma),
                Quantiles::log_normal(median_mb, config.memory_call_sigma),
                None,
            ),
        };
        let overdeclare = log_uniform(&mut rng, config.overdeclare);
        let cpu_share = log_uniform(&mut rng, config.cpu_share);
        functions.push(FunctionSpec {
            name: match kind {
                Some(kind) => format!("fn{index:05}-{}", kind.name),
                None => format!("fn{index:05}"),
            },
            app: format!("app{app:05}"),
            owner: format!("tenant{owner:04}"),
            trigger,
            duration_ms,
            declared_mb: (memory_mb.max() * overdeclare).ceil(),
            memory_mb,
            cpu_share: kind.map_or(cpu_share, |k| k.cpu_share),
            instantiate_ms,
        });
        rates.push(rate);
    }

    let mut minutes = vec![Vec::new(); config.minutes];
    let mut burst_left = vec![0u32; config.functions];
    for (m, calls) in minutes.iter_mut().enumerate() {
        let hour = config.start_hour + m as f64 / 60.0;
        let diurnal = 1.0
            + config.diurnal_amplitude
                * (std::f64::consts::TAU * (hour - config.peak_hour + 6.0) / 24.0).sin();
        for (f, rate) in rates.iter().enumerate() {
            let count = match *rate {
                Rate::Timer { period, phase } => u32::from((m as u32 + phase).is_multiple_of(period)),
                Rate::Poisson(per_minute) => {
                    if burst_left[f] > 0 {
                        burst_left[f] -= 1;
                    } else if rng.random_bool(config.burst_probability) {
                        burst_left[f] = geometric(&mut rng, config.burst_minutes);
                    }
                    let burst = if burst_left[f] > 0 { config.burst_factor } else { 1.0 };
                    poisson(&mut rng, per_minute * diurnal * burst)
                }
            };
            if count > 0 {
                calls.push((f as u32, count));
            }
        }
    }
    Ok(Workload { functions, minutes })
}

#[derive(Debug, Clone, Copy)]
enum Rate {
    /// Mean calls per minute before the diurnal cycle and bursts.
    Poisson(f64),
    /// One call every `period` minutes, first at minute `period - phase`.
    Timer { period: u32, phase: u32 },
}

fn validate(config: &SyntheticConfig) -> Result<(), SimError> {
    if config.functions == 0 {
        return Err(setting("--functions", "must be at least 1".into()));
    }
    if config.minutes == 0 {
        return Err(setting("--minutes", "must be at least 1".into()));
    }
    let ranges = [("overdeclare", config.overdeclare), ("cpu share", config.cpu_share)];
    for (name, (lo, hi)) in ranges {
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(setting("--synthetic", format!("{name} range {lo}..{hi} is empty or not positive")));
        }
    }
    if config.overdeclare.0 < 1.0 {
        return Err(setting("--synthetic", "declared memory below real use would not run".into()));
    }
    Ok(())
}

fn setting(name: &'static str, reason: String) -> SimError {
    SimError::Setting { name, reason }
}

fn pick_trigger<R: Rng + ?Sized>(rng: &mut R) -> Trigger {
    let total: f64 = TRIGGERS.iter().map(|t| t.1).sum();
    let mut x = rng.random::<f64>() * total;
    for (trigger, weight) in TRIGGERS {
        if x < weight {
            return trigger;
        }
        x -= weight;
    }
    Trigger::Others
}

/// A geometric count >= 1 with this mean.
fn geometric<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u32 {
    let p = 1.0 / mean.max(1.0);
    let mut n = 1;
    while n < 10_000 && !rng.random_bool(p) {
        n += 1;
    }
    n
}

fn log_uniform<R: Rng + ?Sized>(rng: &mut R, (lo, hi): (f64, f64)) -> f64 {
    if hi <= lo {
        return lo;
    }
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

fn poisson<R: Rng + ?Sized>(rng: &mut R, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    // `Poisson::new` refuses only non-positive or non-finite means, excluded above.
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig { functions: 2000, minutes: 60, ..SyntheticConfig::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let a = generate(&small()).unwrap();
        let b = generate(&small()).unwrap();
        assert_eq!(a, b);
        let c = generate(&SyntheticConfig { seed: 2, ..small() }).unwrap();
        assert_ne!(a.minutes, c.minutes);
    }

    #[test]
    fn popularity_is_heavy_tailed() {
        let w = generate(&small()).unwrap();
        let mut per_function = vec![0u64; w.functions.len()];
        for &(f, n) in w.minutes.iter().flatten() {
            per_function[f as usize] += u64::from(n);
        }
        per_function.sort_unstable_by(|a, b| b.cmp(a));
        let total: u64 = per_function.iter().sum();
        let top_tenth: u64 = per_function[..per_function.len() / 10].iter().sum();
        // A few functions get most calls ...
        assert!(top_tenth as f64 > 0.9 * total as f64, "top 10% got {top_tenth} of {total}");
        // ... and most are rare: at most one call an hour (here: one hour of workload).
        let rare = per_function.iter().filter(|&&n| n <= 1).count();
        assert!(rare as f64 > 0.4 * per_function.len() as f64, "{rare} rare functions");
    }

    #[test]
    fn timers_fire_on_their_period_only() {
        let w = generate(&small()).unwrap();
        for (f, spec) in w.functions.iter().enumerate() {
            if spec.trigger != Trigger::Timer {
                continue;
            }
            let minutes: Vec<usize> = w
                .minutes
                .iter()
                .enumerate()
                .filter(|(_, calls)| calls.iter().any(|&(g, _)| g as usize == f))
                .map(|(m, _)| m)
                .collect();
            let gaps: Vec<usize> = minutes.windows(2).map(|p| p[1] - p[0]).collect();
            assert!(gaps.windows(2).all(|g| g[0] == g[1]), "{}: {minutes:?}", spec.name);
        }
    }

    #[test]
    fn declared_memory_covers_real_use() {
        let w = generate(&small()).unwrap();
        for f in &w.functions {
            assert!(f.declared_mb >= f.memory_mb.max(), "{}", f.name);
            assert!(f.declared_mb <= 2.0 * f.memory_mb.max() + 1.0, "{}", f.name);
            assert!((0.02..=0.5).contains(&f.cpu_share));
        }
        let median_memory = {
            let mut m: Vec<f64> = w.functions.iter().map(|f| f.memory_mb.median()).collect();
            m.sort_by(f64::total_cmp);
            m[m.len() / 2]
        };
        assert!((100.0..220.0).contains(&median_memory), "median app memory {median_memory}");
    }

    fn kind(name: &str, p50_ms: f64, peak_memory_mb: f64, instantiate_ms: f64) -> FunctionProfile {
        FunctionProfile {
            name: name.into(),
            p50_ms,
            p99_ms: p50_ms * 1.1,
            min_ms: None,
            max_ms: None,
            samples_ms: Vec::new(),
            peak_memory_mb,
            memory_request_mb: peak_memory_mb * 1.2,
            instantiate_ms,
            cpu_share: 1.0,
        }
    }

    #[test]
    fn measured_kinds_make_the_functions_and_leave_the_calls_alone() {
        let kinds = vec![kind("scrypt", 500.0, 1.2, 0.37), kind("imageblur", 360.0, 46.0, 0.18)];
        let drawn = generate(&small()).unwrap();
        let measured = generate(&SyntheticConfig { kinds: kinds.clone(), ..small() }).unwrap();
        // The same calls, function for function: only what each function is changed.
        assert_eq!(measured.minutes, drawn.minutes);
        let mut per_kind = [0usize; 2];
        for (m, d) in measured.functions.iter().zip(&drawn.functions) {
            assert_eq!((&m.owner, &m.app, m.trigger), (&d.owner, &d.app, d.trigger));
            let k = kinds.iter().position(|k| m.name.ends_with(&format!("-{}", k.name))).unwrap();
            per_kind[k] += 1;
            let kind = &kinds[k];
            assert_eq!(m.memory_mb, Quantiles::constant(kind.peak_memory_mb), "{}", m.name);
            assert_eq!(m.duration_ms.median(), kind.p50_ms);
            assert_eq!(m.duration_ms.at(0.99), kind.p99_ms);
            assert_eq!((m.cpu_share, m.instantiate_ms), (1.0, Some(kind.instantiate_ms)));
            // Over-declared as documented: the peak times a factor in 1..2, rounded up to a MB.
            assert!(
                m.declared_mb >= kind.peak_memory_mb && m.declared_mb <= (2.0 * kind.peak_memory_mb).ceil()
            );
        }
        // Each function is an instance of a kind picked uniformly.
        assert!(per_kind.iter().all(|&n| n > 900), "{per_kind:?}");
        // The old mode has no per-function instantiation figure.
        assert!(drawn.functions.iter().all(|f| f.instantiate_ms.is_none()));
    }

    #[test]
    fn a_zero_sized_workload_is_refused() {
        let err = generate(&SyntheticConfig { functions: 0, ..small() }).unwrap_err();
        assert_eq!(err.to_string(), "invalid setting --functions: must be at least 1");
    }
}
