//! Reading a wasmpod pod's `/metrics` text: the five gauges the autoscaler needs, and the CPU
//! gauge its CPU rule reads when the pod has it.

use wasmpod_autoscale::Sample;

use crate::ControllerError;

/// Declared MB of requests running on the pod.
pub const INFLIGHT_MEMORY: &str = "wasmpod_inflight_memory_mb";
/// Declared MB of requests waiting for admission on the pod.
pub const QUEUED_MEMORY: &str = "wasmpod_queued_memory_mb";
/// Requests running on the pod.
pub const INFLIGHT_REQUESTS: &str = "wasmpod_inflight_requests";
/// Requests waiting for admission on the pod.
pub const QUEUED_REQUESTS: &str = "wasmpod_queued_requests";
/// The pod's admission capacity in MB.
pub const CAPACITY_MEMORY: &str = "wasmpod_capacity_memory_mb";
/// The pod's CPU in use, in cores (sampled by the pod; optional: older pods do not have it).
pub const CPU_CORES: &str = "wasmpod_cpu_utilization_cores";

/// What one pod reported: its load, and the capacity it admits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodLoad {
    /// Declared MB running plus queued, and requests running plus queued.
    pub sample: Sample,
    /// The pod's admission capacity in MB.
    pub capacity_mb: f64,
    /// The pod's CPU in use, in cores; `None` when the pod does not report it (an older
    /// wasmpod), and the autoscaler's CPU rule then has no reading from this pod.
    pub cpu_cores: Option<f64>,
}

impl PodLoad {
    /// Parses the Prometheus text exposition of a pod. Each of the five gauges must be present,
    /// the CPU gauge ([`CPU_CORES`]) may be; series of one name with different labels (constant
    /// labels such as the Knative service) add up. Comments, other metrics and the OpenMetrics
    /// `# EOF` are skipped.
    ///
    /// ```
    /// use wasmpod_controller::PodLoad;
    ///
    /// let text = "# TYPE wasmpod_inflight_memory_mb gauge\nwasmpod_inflight_memory_mb 300\n\
    ///             wasmpod_queued_memory_mb 100\nwasmpod_inflight_requests 2\n\
    ///             wasmpod_queued_requests{service=\"hello\"} 1\nwasmpod_capacity_memory_mb 8000\n";
    /// let load = PodLoad::parse(text).unwrap();
    /// assert_eq!((load.sample.memory_mb, load.sample.concurrency, load.capacity_mb), (400.0, 3.0, 8000.0));
    /// assert_eq!(load.cpu_cores, None);
    /// ```
    pub fn parse(text: &str) -> Result<PodLoad, ControllerError> {
        const NAMES: [&str; 6] =
            [INFLIGHT_MEMORY, QUEUED_MEMORY, INFLIGHT_REQUESTS, QUEUED_REQUESTS, CAPACITY_MEMORY, CPU_CORES];
        let mut values: [Option<f64>; 6] = [None; 6];
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(index) = NAMES.iter().position(|name| series_of(line, name)) else {
                continue;
            };
            let value = sample_value(line, NAMES[index]).ok_or_else(|| ControllerError::MetricsText {
                line: number + 1,
                reason: format!("{}: no value", NAMES[index]),
            })?;
            let value: f64 = value.parse().map_err(|_| ControllerError::MetricsText {
                line: number + 1,
                reason: format!("{}: value {value:?} is not a number", NAMES[index]),
            })?;
            if !(value.is_finite() && value >= 0.0) {
                return Err(ControllerError::MetricsText {
                    line: number + 1,
                    reason: format!("{}: value {value} is not a finite number >= 0", NAMES[index]),
                });
            }
            *values[index].get_or_insert(0.0) += value;
        }
        let get = |index: usize| values[index].ok_or(ControllerError::MissingMetric(NAMES[index]));
        Ok(PodLoad {
            sample: Sample { memory_mb: get(0)? + get(1)?, concurrency: get(2)? + get(3)? },
            capacity_mb: get(4)?,
            cpu_cores: values[5],
        })
    }
}

/// Whether `line` is a sample of exactly the metric `name` (and not of `name_total`, say).
fn series_of(line: &str, name: &str) -> bool {
    line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' ', '\t']))
}

/// The value of a sample line of the metric `name`: the field after the series and its labels
/// (which may hold spaces and braces inside quotes); a timestamp after it is ignored.
fn sample_value<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let mut rest = &line[name.len()..];
    if rest.starts_with('{') {
        let mut in_quotes = false;
        let mut escaped = false;
        let close = rest.char_indices().find_map(|(at, c)| {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '}' if !in_quotes => return Some(at),
                _ => {}
            }
            None
        })?;
        rest = &rest[close + 1..];
    }
    rest.split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "\
# HELP wasmpod_inflight_memory_mb Declared MB of running requests.
# TYPE wasmpod_inflight_memory_mb gauge
wasmpod_inflight_memory_mb 300
wasmpod_inflight_memory_mb_total 999
wasmpod_queued_memory_mb 100.5
wasmpod_capacity_memory_mb 8000
wasmpod_inflight_requests{k_service=\"a b}\",k_revision=\"r\\\"1\"} 2
wasmpod_inflight_requests{k_service=\"other\"} 1
wasmpod_queued_requests 1 1700000000000
wasmpod_cpu_utilization_cores 3.5
# EOF
";

    #[test]
    fn the_five_gauges_are_read_and_label_sets_add_up() {
        let load = PodLoad::parse(POD).unwrap();
        assert_eq!(load.sample, Sample { memory_mb: 400.5, concurrency: 4.0 });
        assert_eq!(load.capacity_mb, 8000.0);
        assert_eq!(load.cpu_cores, Some(3.5));
    }

    #[test]
    fn the_cpu_gauge_is_optional_so_older_pods_still_parse() {
        let text = POD.replace("wasmpod_cpu_utilization_cores 3.5\n", "");
        let load = PodLoad::parse(&text).unwrap();
        assert_eq!((load.sample.memory_mb, load.cpu_cores), (400.5, None));
        // A bad value is still an error, named like the others.
        let text = POD.replace("wasmpod_cpu_utilization_cores 3.5", "wasmpod_cpu_utilization_cores NaN");
        let error = PodLoad::parse(&text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "pod metrics line 10: wasmpod_cpu_utilization_cores: value NaN is not a finite number >= 0"
        );
    }

    #[test]
    fn a_missing_gauge_is_named() {
        let text = POD.replace("wasmpod_capacity_memory_mb 8000\n", "");
        let error = PodLoad::parse(&text).unwrap_err();
        assert_eq!(error.to_string(), "pod metrics: no wasmpod_capacity_memory_mb series");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line() {
        let text = POD.replace("wasmpod_queued_memory_mb 100.5", "wasmpod_queued_memory_mb lots");
        let error = PodLoad::parse(&text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "pod metrics line 5: wasmpod_queued_memory_mb: value \"lots\" is not a number"
        );
        let text = POD.replace("wasmpod_queued_memory_mb 100.5", "wasmpod_queued_memory_mb -1");
        let error = PodLoad::parse(&text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "pod metrics line 5: wasmpod_queued_memory_mb: value -1 is not a finite number >= 0"
        );
    }
}
