//! What the autoscaler observes each second: declared memory and requests, summed over pods.

/// One observation of a whole service: the declared MB of its running plus queued requests, and
/// the number of those requests, summed over its pods.
///
/// Memory is the scaling signal. Concurrency only decides between zero and one pod: a buffer in
/// front of a service at zero pods (Knative's activator) reports requests but not their memory, so
/// "no memory but requests" must still mean one pod, and "memory but no requests" means none.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Declared MB of requests running plus queued.
    pub memory_mb: f64,
    /// Requests running plus queued.
    pub concurrency: f64,
}

impl Sample {
    /// The service-wide sample from the pods that answered a scrape, scaled up to all ready pods
    /// (Knative's rule for a partial scrape: the scraped pods' mean times the ready count).
    ///
    /// Returns `None` when no pod answered: nothing is known, and recording a zero would be a
    /// guess that could scale the service down. `ready_pods` below the number of samples counts
    /// as the number of samples.
    ///
    /// ```
    /// use wasmpod_autoscale::Sample;
    ///
    /// let scraped = [Sample { memory_mb: 1000.0, concurrency: 4.0 }, Sample { memory_mb: 3000.0, concurrency: 2.0 }];
    /// // Two of four ready pods answered: the other two are assumed to carry the same mean load.
    /// let total = Sample::over_pods(&scraped, 4).unwrap();
    /// assert_eq!(total, Sample { memory_mb: 8000.0, concurrency: 12.0 });
    /// ```
    pub fn over_pods(scraped: &[Sample], ready_pods: u32) -> Option<Sample> {
        if scraped.is_empty() {
            return None;
        }
        let scale = ready_scale(scraped.len(), ready_pods);
        let memory_mb: f64 = scraped.iter().map(|sample| sample.memory_mb).sum();
        let concurrency: f64 = scraped.iter().map(|sample| sample.concurrency).sum();
        Some(Sample { memory_mb: memory_mb * scale, concurrency: concurrency * scale })
    }
}

/// The service-wide CPU in use, in cores, from the pods that reported it, scaled up to all ready
/// pods by the same rule as [`Sample::over_pods`]: the input of
/// [`Autoscaler::record_cpu`](crate::Autoscaler::record_cpu). A pod that does not report its CPU
/// (an older wasmpod) is not a reading. `None` when no pod reported it.
///
/// ```
/// use wasmpod_autoscale::cores_over_pods;
///
/// // Two of four ready pods reported 1 and 3 cores: the other two are assumed at the mean, 2.
/// assert_eq!(cores_over_pods(&[1.0, 3.0], 4), Some(8.0));
/// ```
pub fn cores_over_pods(readings: &[f64], ready_pods: u32) -> Option<f64> {
    if readings.is_empty() {
        return None;
    }
    Some(readings.iter().sum::<f64>() * ready_scale(readings.len(), ready_pods))
}

/// Knative's rule for a partial scrape, as a factor on the answered pods' sum: the ready count
/// over the answered count, never below 1.
fn ready_scale(answered: usize, ready_pods: u32) -> f64 {
    let answered = answered as f64;
    f64::from(ready_pods).max(answered) / answered
}

#[cfg(test)]
mod tests {
    use super::cores_over_pods;

    #[test]
    fn cpu_of_the_pods_that_report_it_is_scaled_up_to_all_ready_pods() {
        assert_eq!(cores_over_pods(&[], 3), None, "no pod reports CPU: nothing to record");
        assert_eq!(cores_over_pods(&[1.0, 3.0], 2), Some(4.0));
        // Two of four ready pods reported 1 and 3 cores: the other two are assumed at the mean, 2.
        assert_eq!(cores_over_pods(&[1.0, 3.0], 4), Some(8.0));
    }
}
