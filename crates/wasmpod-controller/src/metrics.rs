//! The controller's own `/metrics`: what it observed and decided, for a dashboard next to the pods'.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use wasmpod_autoscale::{Decision, Sample};

/// Where the controller serves `/metrics` and `/healthz` by default (Knative's autoscaler also
/// serves its metrics on 9090).
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9090";

/// The controller's gauges and counters, labelled with the Deployment they scale. Cheap to clone
/// (shared).
#[derive(Clone)]
pub struct ControllerMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    desired: Gauge,
    ready: Gauge,
    observed_memory: Gauge<f64, AtomicU64>,
    stable_memory: Gauge<f64, AtomicU64>,
    panic_memory: Gauge<f64, AtomicU64>,
    target_memory: Gauge<f64, AtomicU64>,
    observed_cpu: Gauge<f64, AtomicU64>,
    stable_cpu: Gauge<f64, AtomicU64>,
    panic_mode: Gauge,
    excess_burst_capacity: Gauge,
    scrape_errors: Counter,
    api_errors: Counter,
    scale_patches: Counter,
}

impl ControllerMetrics {
    /// The series for the Deployment `namespace/deployment`, all under `wasmpod_autoscaler_`.
    pub fn new(namespace: &str, deployment: &str) -> ControllerMetrics {
        let labels = [
            (Cow::Borrowed("namespace"), Cow::Owned(namespace.to_owned())),
            (Cow::Borrowed("deployment"), Cow::Owned(deployment.to_owned())),
        ];
        let mut registry = Registry::with_prefix_and_labels("wasmpod_autoscaler", labels.into_iter());
        let inner = Inner {
            desired: Gauge::default(),
            ready: Gauge::default(),
            observed_memory: Gauge::default(),
            stable_memory: Gauge::default(),
            panic_memory: Gauge::default(),
            target_memory: Gauge::default(),
            observed_cpu: Gauge::default(),
            stable_cpu: Gauge::default(),
            panic_mode: Gauge::default(),
            excess_burst_capacity: Gauge::default(),
            scrape_errors: Counter::default(),
            api_errors: Counter::default(),
            scale_patches: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("desired_pods", "Pods the last decision asked for", inner.desired.clone());
        registry.register("ready_pods", "Ready pods at the last scrape", inner.ready.clone());
        registry.register(
            "observed_memory_mb",
            "Declared MB running plus queued over all pods at the last scrape",
            inner.observed_memory.clone(),
        );
        registry.register(
            "observed_cpu_cores",
            "Cores in use over all pods at the last scrape (pods that report wasmpod_cpu_utilization_cores)",
            inner.observed_cpu.clone(),
        );
        registry.register(
            "stable_cpu_cores",
            "Average cores in use over the stable window (the CPU rule's input)",
            inner.stable_cpu.clone(),
        );
        registry.register(
            "stable_memory_mb",
            "Average declared MB over the stable window",
            inner.stable_memory.clone(),
        );
        registry.register(
            "panic_memory_mb",
            "Average declared MB over the panic window",
            inner.panic_memory.clone(),
        );
        registry.register(
            "target_memory_mb",
            "Declared MB per pod the decisions aim for",
            inner.target_memory.clone(),
        );
        registry.register("panic_mode", "1 while the autoscaler is in panic mode", inner.panic_mode.clone());
        registry.register(
            "excess_burst_capacity_mb",
            "Ready capacity minus target burst capacity minus panic-window MB (below 0: burst not covered)",
            inner.excess_burst_capacity.clone(),
        );
        registry.register("scrape_errors", "Pod /metrics scrapes that failed", inner.scrape_errors.clone());
        registry.register("api_errors", "Kubernetes API calls that failed", inner.api_errors.clone());
        registry.register("scale_patches", "Scale subresource patches sent", inner.scale_patches.clone());
        ControllerMetrics { inner: Arc::new(Inner { registry, ..inner }) }
    }

    pub(crate) fn observed(&self, ready: u32, sample: Option<Sample>, cpu_cores: Option<f64>) {
        self.inner.ready.set(i64::from(ready));
        if let Some(sample) = sample {
            self.inner.observed_memory.set(sample.memory_mb);
        }
        if let Some(cores) = cpu_cores {
            self.inner.observed_cpu.set(cores);
        }
    }

    pub(crate) fn decided(&self, decision: &Decision) {
        let inner = &self.inner;
        inner.desired.set(i64::from(decision.desired));
        inner.stable_memory.set(decision.stable_mb);
        inner.panic_memory.set(decision.panic_mb);
        inner.target_memory.set(decision.target_mb);
        inner.stable_cpu.set(decision.stable_cores);
        inner.panic_mode.set(i64::from(decision.panicking));
        inner.excess_burst_capacity.set(decision.excess_burst_capacity);
    }

    pub(crate) fn scrape_error(&self) {
        self.inner.scrape_errors.inc();
    }

    pub(crate) fn api_error(&self) {
        self.inner.api_errors.inc();
    }

    pub(crate) fn patched(&self) {
        self.inner.scale_patches.inc();
    }

    /// The Prometheus text exposition of every series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        text
    }
}

/// Serves `GET /metrics` (the exposition) and `GET /healthz` (`ok`, for a liveness probe) on
/// `listener` until the task is dropped. One task per connection; the answers are small and
/// computed from atomics, so no limit beyond the listener's backlog is needed.
pub async fn serve_metrics(listener: TcpListener, metrics: ControllerMetrics) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics listener: accept: {e}");
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, metrics: &ControllerMetrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => {
            (StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.encode())
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
