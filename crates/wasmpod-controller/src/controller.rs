//! One tick of the controller: observe the pods, feed the autoscaler, and scale when it decides.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::future::join_all;
use kube::core::Selector;
use kube::Client;
use wasmpod_autoscale::{cores_over_pods, Autoscaler, Decision, Sample, Settings, BUCKET, TICK_INTERVAL};

use crate::annotations::apply_annotations;
use crate::cluster::{Cluster, PodPort};
use crate::scrape::scrape;
use crate::{ControllerError, ControllerMetrics};

/// Ticks per decision: the controller is ticked once per [`BUCKET`] (a scrape) and decides every
/// [`TICK_INTERVAL`].
pub const TICKS_PER_DECISION: u64 = TICK_INTERVAL.as_secs() / BUCKET.as_secs();

/// The controller's default lower bound on pods: 1, not the algorithm's 0. A plain Deployment at
/// zero pods has nothing that reports demand (no activator, as Knative has, holds and counts the
/// requests), so the controller could never scale it up again. Set `--min-scale 0` only when
/// something else brings the Deployment back from zero.
pub const DEFAULT_MIN_SCALE: u32 = 1;

/// What the controller scales and how.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The pod port that serves wasmpod's `/metrics`.
    pub pod_port: PodPort,
    /// The autoscaler's settings from the flags. The Deployment's Knative annotations override
    /// them (see [`apply_annotations`]).
    pub settings: Settings,
    /// Take each pod's capacity from its `wasmpod_capacity_memory_mb` (the smallest reported)
    /// instead of `settings.capacity_mb`.
    pub capacity_from_pods: bool,
    /// Decide and log, but never patch the Deployment.
    pub dry_run: bool,
    /// How long one pod's scrape may take.
    pub scrape_timeout: Duration,
}

/// The controller for one Deployment. It holds no timer: call [`Controller::tick`] once per
/// [`BUCKET`] (the binary does so on an interval, a test calls it directly).
pub struct Controller {
    config: ControllerConfig,
    cluster: Cluster,
    metrics: ControllerMetrics,
    autoscaler: Option<Autoscaler>,
    selector: Option<Selector>,
    annotations: BTreeMap<String, String>,
    pod_capacity_mb: Option<f64>,
    ticks: u64,
    /// The last annotation warnings logged, so a bad annotation is logged when it changes and not
    /// every two seconds.
    warned: Vec<String>,
}

/// What one tick saw and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// The `now` the tick was given.
    pub now: Duration,
    /// Ready pods of the Deployment.
    pub ready_pods: u32,
    /// Ready pods whose `/metrics` answered.
    pub scraped_pods: u32,
    /// The service-wide sample recorded (none when no pod answered).
    pub sample: Option<Sample>,
    /// The service-wide CPU in use recorded, in cores (none when no answering pod reports
    /// `wasmpod_cpu_utilization_cores`).
    pub cpu_cores: Option<f64>,
    /// The decision, on ticks that decide and have data.
    pub decision: Option<Decision>,
    /// The Deployment's `spec.replicas` as read on a deciding tick.
    pub replicas: Option<u32>,
    /// The replicas patched into the scale subresource (none when unchanged or in a dry run).
    pub scaled_to: Option<u32>,
}

impl Controller {
    /// A controller that talks to the API server through `client`. Checks the flags' settings
    /// at once, so that a bad flag stops the binary before its first tick.
    pub fn new(client: Client, config: ControllerConfig) -> Result<Controller, ControllerError> {
        config.settings.validate()?;
        Ok(Controller {
            cluster: Cluster::new(client, &config.namespace, &config.deployment),
            metrics: ControllerMetrics::new(&config.namespace, &config.deployment),
            config,
            autoscaler: None,
            selector: None,
            annotations: BTreeMap::new(),
            pod_capacity_mb: None,
            ticks: 0,
            warned: Vec::new(),
        })
    }

    /// The controller's metrics, to serve with [`serve_metrics`](crate::serve_metrics).
    pub fn metrics(&self) -> ControllerMetrics {
        self.metrics.clone()
    }

    /// One round at `now` (time since any origin the caller picks; it must not go back). Every
    /// tick lists the ready pods, scrapes them and records the sum; every
    /// [`TICKS_PER_DECISION`]th tick (the first included) also reads the Deployment, decides,
    /// and patches the scale when the decision differs from `spec.replicas`.
    ///
    /// An API error ends the tick with the error (the next tick starts afresh); a pod that does not
    /// answer is logged and left out of the sample, which is scaled up to all ready pods.
    pub async fn tick(&mut self, now: Duration) -> Result<Tick, ControllerError> {
        let deciding = self.ticks.is_multiple_of(TICKS_PER_DECISION);
        self.ticks += 1;
        let result = self.round(now, deciding).await;
        if let Err(ControllerError::Api { .. } | ControllerError::Selector { .. }) = &result {
            self.metrics.api_error();
        }
        result
    }

    async fn round(&mut self, now: Duration, deciding: bool) -> Result<Tick, ControllerError> {
        // The selector of an apps/v1 Deployment cannot change: read once, then only on deciding ticks.
        let deployment = match (deciding, &self.selector) {
            (false, Some(_)) => None,
            _ => Some(self.cluster.deployment().await?),
        };
        if let Some(state) = &deployment {
            self.selector = Some(state.selector.clone());
            self.annotations = state.annotations.clone();
        }
        let pods = match &self.selector {
            Some(selector) => self.cluster.ready_pods(selector, &self.config.pod_port).await?,
            None => Vec::new(),
        };
        let ready_pods = u32::try_from(pods.len()).unwrap_or(u32::MAX);

        let timeout = self.config.scrape_timeout;
        let scrapes = join_all(pods.iter().map(|pod| async move {
            let address = pod.address.clone().map_err(|reason| ControllerError::Scrape {
                pod: pod.name.clone(),
                url: "-".to_owned(),
                reason,
            })?;
            scrape(&pod.name, address, timeout).await
        }))
        .await;
        let mut samples = Vec::with_capacity(scrapes.len());
        let mut cpu_readings = Vec::with_capacity(scrapes.len());
        let mut capacity_mb: Option<f64> = None;
        for (pod, scraped) in pods.iter().zip(scrapes) {
            match scraped {
                Ok(load) => {
                    samples.push(load.sample);
                    cpu_readings.extend(load.cpu_cores);
                    capacity_mb = Some(capacity_mb.map_or(load.capacity_mb, |c| c.min(load.capacity_mb)));
                }
                Err(error) => {
                    self.metrics.scrape_error();
                    tracing::warn!(deployment = %self.cluster.target(), pod = %pod.name, "{error}");
                }
            }
        }
        if capacity_mb.is_some() {
            self.pod_capacity_mb = capacity_mb;
        }
        let sample = Sample::over_pods(&samples, ready_pods);
        let cpu_cores = cores_over_pods(&cpu_readings, ready_pods);
        self.metrics.observed(ready_pods, sample, cpu_cores);

        let mut tick = Tick {
            now,
            ready_pods,
            scraped_pods: u32::try_from(samples.len()).unwrap_or(u32::MAX),
            sample,
            cpu_cores,
            decision: None,
            replicas: deployment.as_ref().map(|d| d.replicas),
            scaled_to: None,
        };
        let Some(autoscaler) = self.autoscaler_for(now, ready_pods) else {
            return Ok(tick);
        };
        if let Some(sample) = sample {
            autoscaler.record(now, sample);
        }
        if let Some(cores) = cpu_cores {
            autoscaler.record_cpu(now, cores);
        }
        let Some(deployment) = deployment else {
            return Ok(tick);
        };
        let Some(decision) = autoscaler.decide(now, ready_pods) else {
            tracing::info!(deployment = %self.cluster.target(), ready_pods, "no data for a stable window: scale left as it is");
            return Ok(tick);
        };
        tick.decision = Some(decision);
        self.metrics.decided(&decision);
        tracing::info!(
            deployment = %self.cluster.target(),
            desired = decision.desired,
            replicas = deployment.replicas,
            ready = decision.ready,
            stable_mb = decision.stable_mb,
            panic_mb = decision.panic_mb,
            stable_concurrency = decision.stable_concurrency,
            target_mb = decision.target_mb,
            stable_cores = decision.stable_cores,
            panic_cores = decision.panic_cores,
            target_cores = decision.target_cores,
            desired_stable = decision.desired_stable,
            desired_panic = decision.desired_panic,
            panicking = decision.panicking,
            excess_burst_capacity = decision.excess_burst_capacity,
            rule = %decision.rule,
            dry_run = self.config.dry_run,
            "decision"
        );
        if decision.desired != deployment.replicas && !self.config.dry_run {
            self.cluster.scale(decision.desired).await?;
            self.metrics.patched();
            tick.scaled_to = Some(decision.desired);
            tracing::info!(deployment = %self.cluster.target(), from = deployment.replicas, to = decision.desired, "scaled");
        }
        Ok(tick)
    }

    /// The autoscaler with the settings in force now (flags, the pods' capacity, the annotations),
    /// created on first use; `None` while no capacity is known (no pod has answered yet and no
    /// `--capacity-mb` was given).
    fn autoscaler_for(&mut self, now: Duration, ready_pods: u32) -> Option<&mut Autoscaler> {
        let mut settings = self.config.settings;
        if self.config.capacity_from_pods {
            settings.capacity_mb = self.pod_capacity_mb?;
        }
        let (settings, warnings) = apply_annotations(settings, &self.annotations);
        if warnings != self.warned {
            for warning in &warnings {
                tracing::warn!(deployment = %self.cluster.target(), "{warning}");
            }
            self.warned = warnings;
        }
        let target = self.cluster.target().to_owned();
        match &mut self.autoscaler {
            Some(autoscaler) => {
                if autoscaler.settings() != &settings {
                    if let Err(error) = autoscaler.update(settings) {
                        tracing::warn!(deployment = %target, "settings not applied, the previous ones stay: {error}");
                    }
                }
            }
            None => match Autoscaler::resume(settings, now, ready_pods) {
                Ok(autoscaler) => self.autoscaler = Some(autoscaler),
                Err(error) => {
                    tracing::warn!(deployment = %target, "no autoscaling until the settings are fixed: {error}");
                    return None;
                }
            },
        }
        self.autoscaler.as_mut()
    }
}

impl fmt::Display for Tick {
    /// One line for a trace: `t=64s ready 4 scraped 4 observed 32000 MB | desired 6 (...) | scaled 4 -> 6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={:>3}s ready {} scraped {}", self.now.as_secs(), self.ready_pods, self.scraped_pods)?;
        match self.sample {
            Some(sample) => write!(f, " observed {:.0} MB", sample.memory_mb)?,
            None => write!(f, " observed -")?,
        }
        if let Some(decision) = &self.decision {
            write!(f, " | {decision}")?;
        }
        match (self.replicas, self.scaled_to) {
            (Some(from), Some(to)) => write!(f, " | scaled {from} -> {to}")?,
            (Some(replicas), None) if self.decision.is_some() => write!(f, " | replicas {replicas}")?,
            _ => {}
        }
        Ok(())
    }
}
