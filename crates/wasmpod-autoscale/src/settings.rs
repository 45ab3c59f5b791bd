//! Every rule's knob and its default, defined once.
//!
//! The defaults are Knative's `config-autoscaler` defaults, read in the units of Wasabi's memory
//! metric (MB of declared memory instead of requests). The CLI's defaults refer to these
//! constants; nothing else repeats their values.

use std::time::Duration;

use crate::SettingsError;

/// The width of one bucket of the windows: samples recorded in the same second add up.
///
/// Knative collects one aggregated sample per second and so do callers of this crate.
pub const BUCKET: Duration = Duration::from_secs(1);

/// How often the algorithm decides (Knative's `tickInterval`): callers call
/// [`Autoscaler::decide`](crate::Autoscaler::decide) this often.
///
/// Two seconds lets two one-second samples land between decisions, and it is also the bucket
/// width of the scale-down delay window.
pub const TICK_INTERVAL: Duration = Duration::from_secs(2);

/// Default stable window: the average that normal scaling follows (Knative's `stable-window`).
pub const DEFAULT_STABLE_WINDOW: Duration = Duration::from_secs(60);

/// The shortest stable window Knative accepts: shorter windows make the average jumpy.
pub const MIN_STABLE_WINDOW: Duration = Duration::from_secs(6);

/// The longest stable window Knative accepts: longer ones make decisions stale.
pub const MAX_STABLE_WINDOW: Duration = Duration::from_secs(3600);

/// Default panic window: the short average that detects a surge (Knative's default
/// `panic-window-percentage` of 10% of the 60 s stable window).
pub const DEFAULT_PANIC_WINDOW: Duration = Duration::from_secs(6);

/// Default target utilization: the share of a pod's capacity the autoscaler aims to fill, so a
/// pod has 30% headroom for a burst while new pods start.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.70;

/// Default panic threshold: panic starts when the panic window asks for at least this many times
/// the ready pods (Knative's `panic-threshold-percentage` of 200%).
pub const DEFAULT_PANIC_THRESHOLD: f64 = 2.0;

/// Default maximum scale-up rate: one decision may ask for at most `ceil(rate x ready)` pods.
/// Knative's 1000 means "effectively unbounded, but finite".
pub const DEFAULT_MAX_SCALE_UP_RATE: f64 = 1000.0;

/// Default maximum scale-down rate: one decision may ask for no fewer than
/// `floor(ready / rate)` pods, so a service loses at most half its pods every tick.
pub const DEFAULT_MAX_SCALE_DOWN_RATE: f64 = 2.0;

/// Default target burst capacity, in MB (Knative's code default of 211, in our metric's unit):
/// the spare declared memory the ready pods should have on top of the panic-window demand before
/// a buffer (Knative's activator) can leave the request path.
pub const DEFAULT_TARGET_BURST_CAPACITY_MB: f64 = 211.0;

/// The target burst capacity that keeps the buffer (Knative's activator) in the request path at
/// every scale: excess burst capacity is then always -1.
pub const TARGET_BURST_CAPACITY_ALWAYS: f64 = -1.0;

/// Default: a service with no traffic scales to zero pods (Knative's `enable-scale-to-zero`).
pub const DEFAULT_SCALE_TO_ZERO: bool = true;

/// Default scale-to-zero grace period: how long the last pod stays after the algorithm first
/// asks for zero (Knative's `scale-to-zero-grace-period`), so that whatever routes requests to a
/// service at zero has time to take over.
pub const DEFAULT_SCALE_TO_ZERO_GRACE: Duration = Duration::from_secs(30);

/// Default scale-down delay: none. When set, a decision never goes below the highest decision of
/// that much time before (Knative's `scale-down-delay`), to ride out short dips.
pub const DEFAULT_SCALE_DOWN_DELAY: Duration = Duration::ZERO;

/// Default CPU limit of one pod for the CPU rule: none, so the CPU rule is off and the algorithm
/// is Knative-Wasabi's, on memory alone. The CPU rule is a wasmpod extension over Wasabi.
pub const DEFAULT_CPU_LIMIT_CORES: Option<f64> = None;

/// Default share of a pod's CPU limit the CPU rule aims for (the same 70% headroom as memory).
/// It must stay below 1: a saturated pod reports at most its limit, so only a target below the
/// limit makes a saturated service ask for more pods (`1 / utilization` times its pods).
pub const DEFAULT_CPU_TARGET_UTILIZATION: f64 = 0.70;

/// Default lower bound on the decision: zero pods (Knative's `min-scale`).
pub const DEFAULT_MIN_SCALE: u32 = 0;

/// Default upper bound on the decision: 0, meaning unbounded (Knative's `max-scale`).
pub const DEFAULT_MAX_SCALE: u32 = 0;

/// The autoscaler's settings. Build them with [`Settings::with_capacity`] and change the fields
/// you need; [`Autoscaler::new`](crate::Autoscaler::new) validates them.
///
/// ```
/// use std::time::Duration;
/// use wasmpod_autoscale::Settings;
///
/// let settings = Settings { stable_window: Duration::from_secs(120), ..Settings::with_capacity(8000.0) };
/// assert_eq!(settings.target_mb(), 5600.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// One pod's admission capacity in MB of declared memory (wasmpod's
    /// `--concurrent-resource-request`, Knative-Wasabi's `concurrentResourceRequest`). It is the
    /// "total" of the excess burst capacity and, times the utilization, the default target.
    pub capacity_mb: f64,
    /// The share of capacity to aim for when no explicit target is set, in (0, 1].
    pub target_utilization: f64,
    /// An explicit target in MB per pod (the `autoscaling.knative.dev/target` annotation). When
    /// set it replaces `capacity_mb x target_utilization`, and the capacity used for burst
    /// capacity becomes `max(capacity_mb, target)`.
    pub target_mb: Option<f64>,
    /// Target burst capacity in MB: >= 0, or [`TARGET_BURST_CAPACITY_ALWAYS`] (-1). 0 means the
    /// buffer is only in the path at zero pods.
    pub target_burst_capacity_mb: f64,
    /// The long averaging window, whole seconds in [[`MIN_STABLE_WINDOW`], [`MAX_STABLE_WINDOW`]].
    pub stable_window: Duration,
    /// The short averaging window, whole seconds, at least one second and at most the stable window.
    pub panic_window: Duration,
    /// Panic starts when `panic-desired / ready >= panic_threshold`; must be above 1.
    pub panic_threshold: f64,
    /// At most `ceil(rate x ready)` pods per decision; must be above 1.
    pub max_scale_up_rate: f64,
    /// At least `floor(ready / rate)` pods per decision; must be above 1.
    pub max_scale_down_rate: f64,
    /// Whether the decision may reach zero pods.
    pub scale_to_zero: bool,
    /// How long the last pod stays once the algorithm asks for zero; must be positive.
    pub scale_to_zero_grace: Duration,
    /// Keep the highest decision of this long ago (whole seconds; zero disables it).
    pub scale_down_delay: Duration,
    /// The decision is never below this.
    pub min_scale: u32,
    /// One pod's CPU limit in cores, which turns the CPU rule on (a wasmpod extension over
    /// Wasabi): the decision is then the larger of `ceil(memory / target MB)` and
    /// `ceil(cores in use / (limit x cpu_target_utilization))`, for each window, as Kubernetes'
    /// HPA takes the largest of several metrics. `None`: memory alone, Knative-Wasabi's rules
    /// exactly. Feed the cores with [`Autoscaler::record_cpu`](crate::Autoscaler::record_cpu).
    pub cpu_limit_cores: Option<f64>,
    /// The share of the CPU limit to aim for, in (0, 1): strictly below 1, or a saturated pod
    /// (which reports at most its limit) would never ask for another.
    pub cpu_target_utilization: f64,
    /// The decision is never above this; 0 means unbounded.
    pub max_scale: u32,
}

impl Settings {
    /// The defaults for pods that admit `capacity_mb` MB of declared memory each.
    ///
    /// The capacity has no default here on purpose: it is the pods' admission setting, which the
    /// pods report (`wasmpod_capacity_memory_mb`) and whose default the admission crate owns.
    pub fn with_capacity(capacity_mb: f64) -> Settings {
        Settings {
            capacity_mb,
            target_utilization: DEFAULT_TARGET_UTILIZATION,
            target_mb: None,
            target_burst_capacity_mb: DEFAULT_TARGET_BURST_CAPACITY_MB,
            stable_window: DEFAULT_STABLE_WINDOW,
            panic_window: DEFAULT_PANIC_WINDOW,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            max_scale_up_rate: DEFAULT_MAX_SCALE_UP_RATE,
            max_scale_down_rate: DEFAULT_MAX_SCALE_DOWN_RATE,
            scale_to_zero: DEFAULT_SCALE_TO_ZERO,
            scale_to_zero_grace: DEFAULT_SCALE_TO_ZERO_GRACE,
            scale_down_delay: DEFAULT_SCALE_DOWN_DELAY,
            min_scale: DEFAULT_MIN_SCALE,
            max_scale: DEFAULT_MAX_SCALE,
            cpu_limit_cores: DEFAULT_CPU_LIMIT_CORES,
            cpu_target_utilization: DEFAULT_CPU_TARGET_UTILIZATION,
        }
    }

    /// The target in MB per pod: the explicit target, or capacity x utilization.
    pub fn target_mb(&self) -> f64 {
        self.target_mb.unwrap_or(self.capacity_mb * self.target_utilization)
    }

    /// The CPU rule's target in cores per pod, `limit x cpu_target_utilization`; `None` when the
    /// CPU rule is off.
    pub fn cpu_target_cores(&self) -> Option<f64> {
        self.cpu_limit_cores.map(|limit| limit * self.cpu_target_utilization)
    }

    /// The per-pod capacity that excess burst capacity counts: the capacity, or the explicit target
    /// when that is larger (Knative's `total`).
    pub fn total_mb(&self) -> f64 {
        match self.target_mb {
            Some(target) => self.capacity_mb.max(target),
            None => self.capacity_mb,
        }
    }

    /// Checks every field; the error names the field, its value and the rule it breaks.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = |field: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(SettingsError::NotPositive { field, value })
            }
        };
        let above_one = |field: &'static str, value: f64| {
            if value.is_finite() && value > 1.0 {
                Ok(())
            } else {
                Err(SettingsError::NotAboveOne { field, value })
            }
        };
        positive("capacity_mb", self.capacity_mb)?;
        if !(self.target_utilization > 0.0 && self.target_utilization <= 1.0) {
            return Err(SettingsError::Utilization(self.target_utilization));
        }
        if let Some(target) = self.target_mb {
            positive("target_mb", target)?;
        }
        let tbc = self.target_burst_capacity_mb;
        if !(tbc.is_finite() && (tbc >= 0.0 || tbc == TARGET_BURST_CAPACITY_ALWAYS)) {
            return Err(SettingsError::BurstCapacity(tbc));
        }
        if !whole_seconds(self.stable_window)
            || self.stable_window < MIN_STABLE_WINDOW
            || self.stable_window > MAX_STABLE_WINDOW
        {
            return Err(SettingsError::StableWindow(self.stable_window));
        }
        if !whole_seconds(self.panic_window)
            || self.panic_window < BUCKET
            || self.panic_window > self.stable_window
        {
            return Err(SettingsError::PanicWindow { panic: self.panic_window, stable: self.stable_window });
        }
        above_one("panic_threshold", self.panic_threshold)?;
        above_one("max_scale_up_rate", self.max_scale_up_rate)?;
        above_one("max_scale_down_rate", self.max_scale_down_rate)?;
        if self.scale_to_zero_grace.is_zero() {
            return Err(SettingsError::Grace);
        }
        if !whole_seconds(self.scale_down_delay) {
            return Err(SettingsError::ScaleDownDelay(self.scale_down_delay));
        }
        if let Some(limit) = self.cpu_limit_cores {
            positive("cpu_limit_cores", limit)?;
            if !(self.cpu_target_utilization > 0.0 && self.cpu_target_utilization < 1.0) {
                return Err(SettingsError::CpuUtilization(self.cpu_target_utilization));
            }
        }
        if self.max_scale != 0 && self.min_scale > self.max_scale {
            return Err(SettingsError::Bounds { min: self.min_scale, max: self.max_scale });
        }
        Ok(())
    }
}

fn whole_seconds(duration: Duration) -> bool {
    duration.subsec_nanos() == 0
}
