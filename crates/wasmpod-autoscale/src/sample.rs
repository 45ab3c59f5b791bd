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
        let answered = scraped.len() as f64;
        let scale = f64::from(ready_pods).max(answered) / answered;
        let memory_mb: f64 = scraped.iter().map(|sample| sample.memory_mb).sum();
        let concurrency: f64 = scraped.iter().map(|sample| sample.concurrency).sum();
        Some(Sample { memory_mb: memory_mb * scale, concurrency: concurrency * scale })
    }
}
