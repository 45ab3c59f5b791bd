//! The decider: Knative's KPA rules, applied to declared memory (and, as a wasmpod extension, to
//! CPU in use), one decision per call.

use std::fmt;
use std::time::Duration;

use crate::delay::MaxWindow;
use crate::window::Window;
use crate::{Sample, Settings, SettingsError, BUCKET, TICK_INTERVAL};

/// One service's autoscaler: it keeps the windows of recent samples and the panic and
/// scale-to-zero state, and turns them into a pod count when asked.
///
/// It reads no clock: every call takes `now`, the time since an origin the caller picks (a
/// controller's start, a simulation's zero). Times must not go backwards between calls. Record
/// once per [`BUCKET`] and decide once per [`TICK_INTERVAL`], as Knative does; the state is about
/// 1 KB and a call costs a few dozen float operations, so a simulator can hold thousands.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    settings: Settings,
    stable_memory: Window,
    panic_memory: Window,
    stable_concurrency: Window,
    /// Cores in use, for the CPU rule (recorded by [`Autoscaler::record_cpu`]).
    stable_cpu: Window,
    panic_cpu: Window,
    /// Since when the service is panicking: the last decision that was over the threshold.
    panic_since: Option<Duration>,
    /// The highest decision made during the current panic; a panic never decides fewer pods.
    max_panic_pods: u32,
    delay: Option<MaxWindow>,
    /// When the rules first asked for zero pods, for the grace period.
    zero_since: Option<Duration>,
    last_desired: Option<u32>,
}

/// The outcome of one [`Autoscaler::decide`]: the pod count and every input that produced it, so
/// a log line or a metric can show why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The pods the service should have.
    pub desired: u32,
    /// The ready pods the decision was made for.
    pub ready: u32,
    /// Average declared MB over the stable window.
    pub stable_mb: f64,
    /// Average declared MB over the panic window.
    pub panic_mb: f64,
    /// Average requests over the stable window (used only between zero and one pod).
    pub stable_concurrency: f64,
    /// MB per pod the decision aims for.
    pub target_mb: f64,
    /// Average cores in use over the stable window (0 when nothing was recorded with
    /// [`Autoscaler::record_cpu`]).
    pub stable_cores: f64,
    /// Average cores in use over the panic window.
    pub panic_cores: f64,
    /// Cores per pod the CPU rule aims for; `None` when the CPU rule is off.
    pub target_cores: Option<f64>,
    /// Pods the stable window asks for, after the concurrency override and the rate limits.
    pub desired_stable: u32,
    /// Pods the panic window asks for, after the rate limits.
    pub desired_panic: u32,
    /// Whether the service is in panic mode after this decision.
    pub panicking: bool,
    /// `floor(ready x total - target burst capacity - panic MB)`, 0 when the target burst
    /// capacity is 0 and -1 when it is -1. Below zero, the ready pods cannot absorb the burst the
    /// settings ask for, and a buffer (Knative's activator) belongs in the request path.
    pub excess_burst_capacity: i64,
    /// The last rule that changed the pod count on its way to `desired`.
    pub rule: Rule,
}

/// Which rule had the last word on a [`Decision`]'s pod count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `ceil(stable MB / target)`, unchanged.
    Observed,
    /// The CPU rule: `ceil(stable cores / CPU target)` asked for more pods than the memory rule
    /// (a wasmpod extension over Wasabi; only with [`Settings::cpu_limit_cores`]).
    Cpu,
    /// Requests but no memory: one pod rather than zero (or memory but no requests: zero rather
    /// than one).
    ConcurrencyOverride,
    /// Capped at `ceil(max scale-up rate x ready)`.
    ScaleUpRate,
    /// Held at `floor(ready / max scale-down rate)`.
    ScaleDownRate,
    /// In panic, the panic window asked for more than the stable window.
    PanicWindow,
    /// In panic, the count did not go down.
    PanicHold,
    /// Held at the highest decision of the scale-down delay.
    ScaleDownDelay,
    /// Raised to the minimum scale.
    MinScale,
    /// Lowered to the maximum scale.
    MaxScale,
    /// Scale to zero is off: one pod rather than zero.
    ScaleToZeroDisabled,
    /// The last pod stays until the grace period has passed.
    ScaleToZeroGrace,
}

impl Autoscaler {
    /// A fresh autoscaler with no history, not panicking.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wasmpod_autoscale::{Autoscaler, Sample, Settings};
    ///
    /// // Pods admit 8000 MB each; the target is 70% of that, 5600 MB per pod.
    /// let mut autoscaler = Autoscaler::new(Settings::with_capacity(8000.0)).unwrap();
    /// for second in 0..10 {
    ///     let now = Duration::from_secs(second);
    ///     autoscaler.record(now, Sample { memory_mb: 12_000.0, concurrency: 40.0 });
    /// }
    /// let decision = autoscaler.decide(Duration::from_secs(9), 2).unwrap();
    /// assert_eq!(decision.desired, 3); // ceil(12000 / 5600)
    /// assert!(!decision.panicking); // the panic window asks for 3 = 1.5 x the 2 ready pods
    /// assert_eq!(decision.excess_burst_capacity, 2 * 8000 - 211 - 12_000);
    /// ```
    pub fn new(settings: Settings) -> Result<Autoscaler, SettingsError> {
        settings.validate()?;
        Ok(Autoscaler {
            settings,
            stable_memory: Window::new(buckets(settings.stable_window)),
            panic_memory: Window::new(buckets(settings.panic_window)),
            stable_concurrency: Window::new(buckets(settings.stable_window)),
            stable_cpu: Window::new(buckets(settings.stable_window)),
            panic_cpu: Window::new(buckets(settings.panic_window)),
            panic_since: None,
            max_panic_pods: 0,
            delay: delay_window(&settings),
            zero_since: None,
            last_desired: None,
        })
    }

    /// An autoscaler that takes over a service which already runs `ready_pods` pods, with no
    /// history: with more than one pod it starts in panic mode at `now`, as Knative's does, so it
    /// keeps at least the current scale until it has a stable window of data instead of scaling
    /// down on the first seconds it sees. Use it when a controller restarts.
    pub fn resume(settings: Settings, now: Duration, ready_pods: u32) -> Result<Autoscaler, SettingsError> {
        let mut autoscaler = Autoscaler::new(settings)?;
        if ready_pods > 1 {
            autoscaler.panic_since = Some(now);
            autoscaler.max_panic_pods = ready_pods;
        }
        Ok(autoscaler)
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the service is in panic mode (as of the last decision).
    pub fn is_panicking(&self) -> bool {
        self.panic_since.is_some()
    }

    /// Replaces the settings, keeping the history. A changed window length starts that window
    /// afresh (its history is dropped); a changed scale-down delay starts the delay afresh.
    pub fn update(&mut self, settings: Settings) -> Result<(), SettingsError> {
        settings.validate()?;
        let old = std::mem::replace(&mut self.settings, settings);
        if old.stable_window != settings.stable_window {
            self.stable_memory = Window::new(buckets(settings.stable_window));
            self.stable_concurrency = Window::new(buckets(settings.stable_window));
            self.stable_cpu = Window::new(buckets(settings.stable_window));
        }
        if old.panic_window != settings.panic_window {
            self.panic_memory = Window::new(buckets(settings.panic_window));
            self.panic_cpu = Window::new(buckets(settings.panic_window));
        }
        if old.scale_down_delay != settings.scale_down_delay {
            self.delay = delay_window(&settings);
        }
        Ok(())
    }

    /// Records the service-wide sample observed at `now`. Samples recorded in the same second add
    /// up: record the sum over pods once per second (see [`Sample::over_pods`]), or each pod's own
    /// sample in the same second. A negative or non-finite value counts as 0.
    pub fn record(&mut self, now: Duration, sample: Sample) {
        let bucket = bucket(now);
        let memory_mb = sanitize(sample.memory_mb);
        let concurrency = sanitize(sample.concurrency);
        self.stable_memory.record(bucket, memory_mb);
        self.panic_memory.record(bucket, memory_mb);
        self.stable_concurrency.record(bucket, concurrency);
    }

    /// Records the CPU in use at `now`, in cores, summed over the service's pods (each pod's
    /// `wasmpod_cpu_utilization_cores`), for the CPU rule ([`Settings::cpu_limit_cores`]). Call it
    /// next to [`record`](Self::record), in the same second; readings in the same second add up,
    /// and a negative or non-finite value counts as 0. Without a CPU limit in the settings the
    /// readings are kept (the decision reports their averages) but decide nothing.
    ///
    /// A saturated pod reports at most its limit, and calls it holds back (queued) use no CPU:
    /// the CPU rule sees such demand only as pods at their limit, and asks for `1 / utilization`
    /// times those pods at each decision until they are no longer saturated. Queued calls show
    /// in the memory rule, which counts declared MB running plus queued.
    pub fn record_cpu(&mut self, now: Duration, cores: f64) {
        let bucket = bucket(now);
        let cores = sanitize(cores);
        self.stable_cpu.record(bucket, cores);
        self.panic_cpu.record(bucket, cores);
    }

    /// Decides how many pods the service should have at `now`, given its `ready_pods`.
    ///
    /// Returns `None` when nothing was recorded for more than a stable window: there is no data to
    /// decide on, and the caller keeps the current scale (Knative does the same).
    ///
    /// The rules, in order: `ceil(average / target)` for both windows (with a CPU limit set, the
    /// larger of the memory and the CPU count, for each window); the concurrency override
    /// between zero and one pod; the rate limits relative to `max(1, ready)`; panic mode; the
    /// scale-down delay; the min/max bounds; scale to zero after the grace period.
    pub fn decide(&mut self, now: Duration, ready_pods: u32) -> Option<Decision> {
        let bucket = bucket(now);
        if self.stable_memory.is_empty(bucket) {
            return None;
        }
        let settings = self.settings;
        let stable_mb = self.stable_memory.average(bucket);
        let panic_mb = self.panic_memory.average(bucket);
        let stable_concurrency = self.stable_concurrency.average(bucket);
        let target_mb = settings.target_mb();
        let stable_cores = self.stable_cpu.average(bucket);
        let panic_cores = self.panic_cpu.average(bucket);
        let target_cores = settings.cpu_target_cores();
        // Zero ready pods count as one, so that the rates still allow a scale from zero.
        let ready = f64::from(ready_pods.max(1));

        let mut rule = Rule::Observed;
        let mut stable_pods = (stable_mb / target_mb).ceil();
        let mut panic_pods = (panic_mb / target_mb).ceil();
        if let Some(target_cores) = target_cores {
            // The larger of the two metrics' counts, for each window (Kubernetes' HPA rule for
            // several metrics); the rules below apply to the result as they do to memory alone.
            let cpu_stable = (stable_cores / target_cores).ceil();
            if cpu_stable > stable_pods {
                stable_pods = cpu_stable;
                rule = Rule::Cpu;
            }
            panic_pods = panic_pods.max((panic_cores / target_cores).ceil());
        }
        if stable_pods == 0.0 && stable_concurrency > 0.0 {
            stable_pods = 1.0;
            rule = Rule::ConcurrencyOverride;
        } else if stable_pods == 1.0 && stable_concurrency <= 0.0 {
            stable_pods = 0.0;
            rule = Rule::ConcurrencyOverride;
        }

        let max_up = (settings.max_scale_up_rate * ready).ceil();
        let max_down = (ready / settings.max_scale_down_rate).floor();
        let desired_stable = stable_pods.max(max_down).min(max_up) as u32;
        let desired_panic = panic_pods.max(max_down).min(max_up) as u32;
        if stable_pods > max_up {
            rule = Rule::ScaleUpRate;
        } else if stable_pods < max_down {
            rule = Rule::ScaleDownRate;
        }

        // Panic: enter (or extend) while the panic window asks for `threshold` times the ready pods;
        // leave only after a whole stable window without that, once the surge is in the stable average.
        let over_threshold = panic_pods / ready >= settings.panic_threshold;
        match self.panic_since {
            _ if over_threshold => self.panic_since = Some(now),
            Some(since) if now > since + settings.stable_window => {
                self.panic_since = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }
        let mut desired = desired_stable;
        if self.panic_since.is_some() {
            if desired_panic > desired {
                desired = desired_panic;
                rule = if panic_pods > max_up { Rule::ScaleUpRate } else { Rule::PanicWindow };
            }
            if desired > self.max_panic_pods {
                self.max_panic_pods = desired;
            } else if desired < self.max_panic_pods {
                desired = self.max_panic_pods;
                rule = Rule::PanicHold;
            }
        }

        if let Some(delay) = &mut self.delay {
            let held = delay.record(now.as_secs() / TICK_INTERVAL.as_secs(), desired);
            if held != desired {
                desired = held;
                rule = Rule::ScaleDownDelay;
            }
        }

        if desired < settings.min_scale {
            desired = settings.min_scale;
            rule = Rule::MinScale;
        }
        if settings.max_scale != 0 && desired > settings.max_scale {
            desired = settings.max_scale;
            rule = Rule::MaxScale;
        }

        if desired == 0 {
            let already_zero = self.last_desired.map_or(ready_pods == 0, |last| last == 0);
            if !settings.scale_to_zero {
                desired = 1;
                rule = Rule::ScaleToZeroDisabled;
            } else if !already_zero {
                let since = *self.zero_since.get_or_insert(now);
                if now.saturating_sub(since) < settings.scale_to_zero_grace {
                    desired = 1;
                    rule = Rule::ScaleToZeroGrace;
                }
            }
        } else {
            self.zero_since = None;
        }
        self.last_desired = Some(desired);

        Some(Decision {
            desired,
            ready: ready_pods,
            stable_mb,
            panic_mb,
            stable_concurrency,
            target_mb,
            stable_cores,
            panic_cores,
            target_cores,
            desired_stable,
            desired_panic,
            panicking: self.panic_since.is_some(),
            excess_burst_capacity: excess_burst_capacity(&settings, ready_pods, panic_mb),
            rule,
        })
    }
}

/// `floor(ready x total - TBC - panic MB)`, with Knative's two special burst capacities.
fn excess_burst_capacity(settings: &Settings, ready_pods: u32, panic_mb: f64) -> i64 {
    let tbc = settings.target_burst_capacity_mb;
    if tbc == 0.0 {
        0
    } else if tbc < 0.0 {
        -1
    } else {
        (f64::from(ready_pods) * settings.total_mb() - tbc - panic_mb).floor() as i64
    }
}

fn bucket(now: Duration) -> u64 {
    now.as_secs() / BUCKET.as_secs()
}

fn buckets(window: Duration) -> u64 {
    window.as_secs().div_ceil(BUCKET.as_secs())
}

fn delay_window(settings: &Settings) -> Option<MaxWindow> {
    (!settings.scale_down_delay.is_zero())
        .then(|| MaxWindow::new(settings.scale_down_delay.as_secs().div_ceil(TICK_INTERVAL.as_secs())))
}

fn sanitize(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

impl fmt::Display for Decision {
    /// One line for logs and traces:
    /// `desired 4 (panic window) ready 2 stable 5500 MB panic 17000 MB target 5600 MB panic yes ebc -1211`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "desired {} ({}) ready {} stable {:.0} MB panic {:.0} MB target {:.0} MB panic {} ebc {}",
            self.desired,
            self.rule,
            self.ready,
            self.stable_mb,
            self.panic_mb,
            self.target_mb,
            if self.panicking { "yes" } else { "no" },
            self.excess_burst_capacity
        )?;
        if let Some(target) = self.target_cores {
            write!(
                f,
                " cpu stable {:.2} panic {:.2} target {:.2} cores",
                self.stable_cores, self.panic_cores, target
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Observed => "observed",
            Rule::Cpu => "cpu",
            Rule::ConcurrencyOverride => "concurrency override",
            Rule::ScaleUpRate => "scale-up rate",
            Rule::ScaleDownRate => "scale-down rate",
            Rule::PanicWindow => "panic window",
            Rule::PanicHold => "no scale-down in panic",
            Rule::ScaleDownDelay => "scale-down delay",
            Rule::MinScale => "min scale",
            Rule::MaxScale => "max scale",
            Rule::ScaleToZeroDisabled => "scale to zero off",
            Rule::ScaleToZeroGrace => "scale-to-zero grace",
        })
    }
}
