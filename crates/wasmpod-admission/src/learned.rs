//! Learned admission weights: admit a request by what its function really uses, not by what it
//! declares.
//!
//! Users declare generously (2-10x their real peak is common), and admission by declaration then
//! leaves most of a pod's memory reserved and idle. The learner records the peak memory of each
//! completed request of a function and, once it has seen enough, proposes an admission weight of a
//! high percentile of those peaks times a safety margin, never above the declaration. The memory
//! grant (the hard limit a request runs under) stays the declared value: only the weight that
//! counts against capacity changes. What the estimate misses is caught by the real-memory gate
//! (see [`BreakerConfig::memory_high_water_bytes`](crate::BreakerConfig::memory_high_water_bytes)).

use std::collections::HashMap;
use std::sync::Arc;

/// Completed requests a function needs before its learned weight is used
/// (`--admission-learn-after`).
pub const DEFAULT_LEARN_AFTER: u32 = 20;
/// Factor over the observed percentile, for what the window has not seen yet
/// (`--admission-learn-margin`).
pub const DEFAULT_LEARN_MARGIN: f64 = 1.25;
/// The percentile of observed peaks the weight is based on.
pub const DEFAULT_LEARN_PERCENTILE: f64 = 0.99;
/// Peaks remembered per function: the most recent ones, so the estimate follows a function whose
/// footprint changes. 128 samples of 4 bytes keep each function to half a kilobyte, and p99 of
/// 128 is the second largest, so one outlier cannot lower the estimate.
pub const LEARN_WINDOW: usize = 128;

const KIB: u64 = 1024;

/// What a request is admitted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// By its declared memory (`Memory-Request`), as Wasabi does. Peaks are still learned, so the
    /// learned weights can be watched in the metrics before they are trusted.
    #[default]
    Declared,
    /// By its function's learned weight once the function has enough samples, capped by the
    /// declaration.
    Learned,
}

/// How weights are learned and used; part of [`BreakerConfig`](crate::BreakerConfig).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learning {
    /// [`WeightMode::Declared`] (the default) or [`WeightMode::Learned`].
    pub mode: WeightMode,
    /// Completed requests before a function's learned weight is used (at least 1).
    pub after: u32,
    /// Percentile of the remembered peaks, in (0, 1].
    pub percentile: f64,
    /// Factor applied to that percentile, at least 1.
    pub margin: f64,
}

impl Default for Learning {
    /// Declared mode; [`DEFAULT_LEARN_AFTER`], [`DEFAULT_LEARN_PERCENTILE`],
    /// [`DEFAULT_LEARN_MARGIN`].
    fn default() -> Self {
        Learning {
            mode: WeightMode::Declared,
            after: DEFAULT_LEARN_AFTER,
            percentile: DEFAULT_LEARN_PERCENTILE,
            margin: DEFAULT_LEARN_MARGIN,
        }
    }
}

/// A function whose requests' peaks are learned, interned by
/// [`Admission::function`](crate::Admission::function). Like [`TenantId`](crate::TenantId), a
/// copyable index: look it up once per loaded function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionId(u32);

/// What has been learned of one function, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSnapshot {
    /// The function's id in this admission state.
    pub id: FunctionId,
    /// The function's name, as given to [`Admission::function`](crate::Admission::function).
    pub name: Arc<str>,
    /// Completed requests recorded since the function was named or last forgotten.
    pub completed: u64,
    /// The declared MB of the last recorded request.
    pub declared_mb: u64,
    /// The largest peak in the window, bytes.
    pub max_peak_bytes: u64,
    /// The learned weight in MB (percentile x margin, at least 1), once `after` requests have
    /// completed. A request is admitted by the smaller of this and its declaration in
    /// [`WeightMode::Learned`].
    pub learned_mb: Option<u64>,
}

/// Every function's learner.
#[derive(Debug)]
pub(crate) struct Weights {
    config: Learning,
    learners: Vec<Learner>,
    by_name: HashMap<Arc<str>, FunctionId>,
}

impl Weights {
    pub(crate) fn new(config: Learning) -> Weights {
        Weights { config, learners: Vec::new(), by_name: HashMap::new() }
    }

    pub(crate) fn intern(&mut self, name: &str) -> FunctionId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = FunctionId(u32::try_from(self.learners.len()).unwrap_or(u32::MAX));
        let name: Arc<str> = Arc::from(name);
        self.learners.push(Learner::new(Arc::clone(&name)));
        self.by_name.insert(name, id);
        id
    }

    fn learner(&self, function: FunctionId) -> Option<&Learner> {
        self.learners.get(function.0 as usize)
    }

    /// The admission weight of a request of `function` declaring `memory_mb`.
    pub(crate) fn weight(&self, function: Option<FunctionId>, memory_mb: u64) -> u64 {
        if self.config.mode == WeightMode::Declared {
            return memory_mb;
        }
        match function.and_then(|f| self.learner(f)).and_then(|l| l.learned_mb) {
            Some(learned) => memory_mb.min(learned),
            None => memory_mb,
        }
    }

    /// Records a completed request's observed peak.
    pub(crate) fn record(&mut self, function: FunctionId, memory_mb: u64, peak_bytes: u64) {
        let config = self.config;
        if let Some(learner) = self.learners.get_mut(function.0 as usize) {
            learner.record(&config, memory_mb, peak_bytes);
        }
    }

    /// Drops what was learned (a new version of the function may use memory differently).
    pub(crate) fn forget(&mut self, function: FunctionId) {
        if let Some(learner) = self.learners.get_mut(function.0 as usize) {
            *learner = Learner::new(Arc::clone(&learner.name));
        }
    }

    pub(crate) fn snapshots(&self) -> impl Iterator<Item = FunctionSnapshot> + '_ {
        self.learners.iter().enumerate().map(|(i, l)| l.snapshot(FunctionId(i as u32)))
    }
}

/// One function's recent peaks (a ring of [`LEARN_WINDOW`] values in KiB) and the weight they
/// give.
#[derive(Debug)]
struct Learner {
    name: Arc<str>,
    /// Grows to [`LEARN_WINDOW`], then is overwritten oldest first.
    peaks_kib: Vec<u32>,
    next: usize,
    completed: u64,
    declared_mb: u64,
    learned_mb: Option<u64>,
}

impl Learner {
    fn new(name: Arc<str>) -> Learner {
        Learner { name, peaks_kib: Vec::new(), next: 0, completed: 0, declared_mb: 0, learned_mb: None }
    }

    fn record(&mut self, config: &Learning, memory_mb: u64, peak_bytes: u64) {
        // KiB, rounded up, so an estimate never falls below a peak; 4 TiB saturates.
        let kib = u32::try_from(peak_bytes.div_ceil(KIB)).unwrap_or(u32::MAX);
        if self.peaks_kib.len() < LEARN_WINDOW {
            self.peaks_kib.push(kib);
        } else {
            self.peaks_kib[self.next] = kib;
        }
        self.next = (self.next + 1) % LEARN_WINDOW;
        self.completed = self.completed.saturating_add(1);
        self.declared_mb = memory_mb;
        if self.completed >= u64::from(config.after) {
            self.learned_mb = Some(self.estimate(config));
        }
    }

    /// `ceil(percentile peak x margin)` in MB, at least 1. The percentile is the sample of rank
    /// `ceil(p x n)` (1-based, nearest-rank), so with fewer than 100 samples p99 is the largest.
    fn estimate(&self, config: &Learning) -> u64 {
        let n = self.peaks_kib.len();
        let mut sorted = [0u32; LEARN_WINDOW];
        sorted[..n].copy_from_slice(&self.peaks_kib);
        let rank = ((config.percentile * n as f64).ceil() as usize).clamp(1, n);
        let (_, &mut kib, _) = sorted[..n].select_nth_unstable(rank - 1);
        let mb = (f64::from(kib) * config.margin / KIB as f64).ceil();
        // `as` saturates; the cap by the declaration happens per request.
        (mb as u64).max(1)
    }

    fn snapshot(&self, id: FunctionId) -> FunctionSnapshot {
        FunctionSnapshot {
            id,
            name: Arc::clone(&self.name),
            completed: self.completed,
            declared_mb: self.declared_mb,
            max_peak_bytes: self.peaks_kib.iter().copied().max().map_or(0, |kib| u64::from(kib) * KIB),
            learned_mb: self.learned_mb,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn learned(after: u32) -> Weights {
        Weights::new(Learning { mode: WeightMode::Learned, after, ..Learning::default() })
    }

    #[test]
    fn declared_mode_admits_by_the_declaration_but_still_learns() {
        let mut weights = Weights::new(Learning::default());
        let f = weights.intern("/f");
        for _ in 0..30 {
            weights.record(f, 100, 10 * MIB);
        }
        assert_eq!(weights.weight(Some(f), 100), 100);
        let snapshot = weights.snapshots().next().expect("one function");
        assert_eq!(snapshot.learned_mb, Some(13), "10 MB x 1.25 = 12.5, rounded up");
    }

    #[test]
    fn learned_weight_follows_the_rules() {
        struct Case {
            name: &'static str,
            after: u32,
            peaks_mb: &'static [u64],
            declared: u64,
            weight: u64,
        }
        let cases = [
            Case { name: "too few samples", after: 3, peaks_mb: &[10, 10], declared: 100, weight: 100 },
            Case { name: "enough samples", after: 3, peaks_mb: &[10, 10, 10], declared: 100, weight: 13 },
            Case {
                name: "p99 of 20 is the largest",
                after: 20,
                peaks_mb: &[4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 40],
                declared: 100,
                weight: 50,
            },
            Case { name: "capped by the declaration", after: 1, peaks_mb: &[90], declared: 100, weight: 100 },
            Case { name: "at least 1 MB", after: 1, peaks_mb: &[0], declared: 100, weight: 1 },
            Case { name: "a smaller declaration wins", after: 1, peaks_mb: &[8], declared: 5, weight: 5 },
        ];
        for case in cases {
            let mut weights = learned(case.after);
            let f = weights.intern("/f");
            for &peak in case.peaks_mb {
                weights.record(f, case.declared, peak * MIB);
            }
            assert_eq!(weights.weight(Some(f), case.declared), case.weight, "{}", case.name);
        }
    }

    #[test]
    fn p99_over_a_full_window_ignores_one_outlier_and_forgets_old_peaks() {
        let mut weights = learned(20);
        let f = weights.intern("/f");
        weights.record(f, 1000, 800 * MIB);
        for _ in 0..LEARN_WINDOW - 1 {
            weights.record(f, 1000, 8 * MIB);
        }
        // 128 samples: rank ceil(126.72) = 127 of 128 is the second largest, 8 MB.
        assert_eq!(weights.weight(Some(f), 1000), 10);
        let snapshot = weights.snapshots().next().expect("one function");
        assert_eq!((snapshot.completed, snapshot.max_peak_bytes), (128, 800 * MIB));
        // One more sample pushes the outlier out of the window.
        weights.record(f, 1000, 8 * MIB);
        assert_eq!(weights.snapshots().next().expect("f").max_peak_bytes, 8 * MIB);
    }

    #[test]
    fn forgetting_starts_over_and_unknown_functions_use_the_declaration() {
        let mut weights = learned(1);
        let f = weights.intern("/f");
        let g = weights.intern("/g");
        assert_eq!(weights.intern("/f"), f, "interning is stable");
        weights.record(f, 100, MIB);
        assert_eq!(weights.weight(Some(f), 100), 2);
        weights.forget(f);
        assert_eq!(weights.weight(Some(f), 100), 100);
        assert_eq!(weights.weight(Some(g), 100), 100);
        assert_eq!(weights.weight(None, 100), 100);
        assert_eq!(weights.weight(Some(FunctionId(99)), 100), 100, "an id from elsewhere");
    }

    #[test]
    fn huge_peaks_saturate_instead_of_wrapping() {
        let mut weights = learned(1);
        let f = weights.intern("/f");
        weights.record(f, u64::MAX, u64::MAX);
        let weight = weights.weight(Some(f), u64::MAX);
        assert!(weight >= 4 << 20, "4 TiB or more in MB, got {weight}");
    }
}
