//! The crate's one error: settings that no rule can work with.

use std::time::Duration;

/// Settings rejected by [`Settings::validate`](crate::Settings::validate), naming the field, its
/// value and the rule it breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A quantity that must be a finite number above zero.
    #[error("{field} = {value}: must be a number above 0")]
    NotPositive {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// A rate or threshold that must be above 1 (at 1 or below it would never change the scale).
    #[error("{field} = {value}: must be a number above 1")]
    NotAboveOne {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The target utilization is a share of capacity.
    #[error("target_utilization = {0}: must be in (0, 1]")]
    Utilization(f64),
    /// The CPU rule's utilization must leave headroom: at 1 a saturated pod, which reports at most
    /// its limit, would never ask for another pod.
    #[error("cpu_target_utilization = {0}: must be in (0, 1) (below 1, or saturated pods never scale out)")]
    CpuUtilization(f64),
    /// The target burst capacity is a number of MB, or -1 for "always buffered".
    #[error("target_burst_capacity_mb = {0}: must be 0 or more, or -1 (buffer always in the path)")]
    BurstCapacity(f64),
    /// The stable window is out of Knative's range or not in whole seconds.
    #[error("stable_window = {0:?}: must be whole seconds from 6 s to 1 h")]
    StableWindow(Duration),
    /// The panic window is not in whole seconds or not within the stable window.
    #[error("panic_window = {panic:?}: must be whole seconds from 1 s to the stable window ({stable:?})")]
    PanicWindow {
        /// The panic window given.
        panic: Duration,
        /// The stable window it must fit in.
        stable: Duration,
    },
    /// A zero grace period would drop the last pod the moment the algorithm asks for zero.
    #[error("scale_to_zero_grace must be above 0")]
    Grace,
    /// The scale-down delay is bucketed in seconds.
    #[error("scale_down_delay = {0:?}: must be whole seconds")]
    ScaleDownDelay(Duration),
    /// The bounds leave no pod count to choose.
    #[error("min_scale = {min} is above max_scale = {max}")]
    Bounds {
        /// The lower bound.
        min: u32,
        /// The upper bound.
        max: u32,
    },
}
