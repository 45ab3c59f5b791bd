//! Knative's per-service autoscaling annotations, read from the scaled Deployment's metadata, so
//! one controller image serves Deployments with different targets.
//!
//! An annotation beats the controller's flag for the same knob, as a Knative annotation beats
//! the cluster's `config-autoscaler`.

use std::collections::BTreeMap;

use wasmpod_autoscale::Settings;

/// The target in MB per pod.
pub const TARGET: &str = "autoscaling.knative.dev/target";
/// The target utilization, in percent of capacity.
pub const TARGET_UTILIZATION_PERCENTAGE: &str = "autoscaling.knative.dev/target-utilization-percentage";
/// The target burst capacity in MB (-1: buffer always in the path).
pub const TARGET_BURST_CAPACITY: &str = "autoscaling.knative.dev/target-burst-capacity";
/// The lower bound of the decision.
pub const MIN_SCALE: &str = "autoscaling.knative.dev/min-scale";
/// The upper bound of the decision (0: unbounded).
pub const MAX_SCALE: &str = "autoscaling.knative.dev/max-scale";

/// `settings` with the annotations that are present applied over them. An annotation whose value
/// cannot be read is skipped and explained in the returned warnings (one per annotation, naming
/// it and its value); the flag's value stays in force for that knob.
pub fn apply_annotations(
    mut settings: Settings,
    annotations: &BTreeMap<String, String>,
) -> (Settings, Vec<String>) {
    let mut warnings = Vec::new();
    if let Some(target) = number(annotations, TARGET, &mut warnings) {
        settings.target_mb = Some(target);
    }
    if let Some(percent) = number(annotations, TARGET_UTILIZATION_PERCENTAGE, &mut warnings) {
        settings.target_utilization = percent / 100.0;
    }
    if let Some(tbc) = number(annotations, TARGET_BURST_CAPACITY, &mut warnings) {
        settings.target_burst_capacity_mb = tbc;
    }
    if let Some(min) = count(annotations, MIN_SCALE, &mut warnings) {
        settings.min_scale = min;
    }
    if let Some(max) = count(annotations, MAX_SCALE, &mut warnings) {
        settings.max_scale = max;
    }
    (settings, warnings)
}

fn number(annotations: &BTreeMap<String, String>, name: &str, warnings: &mut Vec<String>) -> Option<f64> {
    let text = annotations.get(name)?;
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Some(value),
        _ => {
            warnings.push(format!("annotation {name}={text:?}: not a number; ignored"));
            None
        }
    }
}

fn count(annotations: &BTreeMap<String, String>, name: &str, warnings: &mut Vec<String>) -> Option<u32> {
    let value = number(annotations, name, warnings)?;
    if value >= 0.0 && value <= f64::from(u32::MAX) && value.fract() == 0.0 {
        Some(value as u32)
    } else {
        warnings.push(format!("annotation {name}={value}: not a whole number >= 0; ignored"));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn annotations_override_the_flags() {
        let flags = Settings::with_capacity(13000.0);
        let (settings, warnings) = apply_annotations(
            flags,
            &annotations(&[
                (TARGET, "9100"),
                (TARGET_UTILIZATION_PERCENTAGE, "80"),
                (TARGET_BURST_CAPACITY, "-1"),
                (MIN_SCALE, "1"),
                (MAX_SCALE, "20"),
                ("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev"),
            ]),
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            settings,
            Settings {
                target_mb: Some(9100.0),
                target_utilization: 0.8,
                target_burst_capacity_mb: -1.0,
                min_scale: 1,
                max_scale: 20,
                ..flags
            }
        );
    }

    #[test]
    fn an_unreadable_annotation_is_named_and_the_flag_stays() {
        let flags = Settings::with_capacity(8000.0);
        let (settings, warnings) =
            apply_annotations(flags, &annotations(&[(TARGET, "lots"), (MAX_SCALE, "2.5"), (MIN_SCALE, "3")]));
        assert_eq!(settings, Settings { min_scale: 3, ..flags });
        assert_eq!(
            warnings,
            [
                "annotation autoscaling.knative.dev/target=\"lots\": not a number; ignored",
                "annotation autoscaling.knative.dev/max-scale=2.5: not a whole number >= 0; ignored",
            ]
        );
    }
}
