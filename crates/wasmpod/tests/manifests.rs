//! Every manifest in `deploy/` parses into the types the cluster will read it as, and says what the
//! binary understands: Kubernetes objects into `k8s-openapi`'s types, Knative, KEDA, Prometheus
//! Operator and Prometheus adapter objects into typed structs below (only the fields we set;
//! unknown fields are refused where the real schema is closed), and the Grafana dashboard as JSON.
//!
//! No cluster runs here, so "what the binary understands" is checked against the binary itself:
//! the environment variables a container sets must be ones `wasmpod serve --help` lists, the
//! superpod's settings must start a real server, and every metric a query names must be one a
//! real server exports (or, for the autoscaler's series, one the controller's `/metrics` renders).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service, ServicePort};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use support::{Request, Server};
use wasmpod_guests as guests;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The YAML documents of a file, each with its position for error messages.
fn documents(relative: &str) -> Vec<(String, serde_yaml_ng::Value)> {
    let path = deploy_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, document)| {
            let value = serde_yaml_ng::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{relative}: document {}: {e}", i + 1));
            (format!("{relative} document {}", i + 1), value)
        })
        .collect()
}

/// The one document of `kind` in a file, as `T`.
fn object<T: DeserializeOwned>(relative: &str, kind: &str) -> T {
    let mut found: Vec<T> = documents(relative)
        .into_iter()
        .filter(|(_, v)| v.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|(at, v)| serde_yaml_ng::from_value(v).unwrap_or_else(|e| panic!("{at} ({kind}): {e}")))
        .collect();
    assert_eq!(found.len(), 1, "{relative}: expected one {kind}");
    found.remove(0)
}

/// Every document of a file is one of `kinds`, and nothing else.
fn assert_kinds(relative: &str, kinds: &[&str]) {
    let found: Vec<String> = documents(relative)
        .iter()
        .map(|(at, v)| {
            v.get("kind").and_then(|k| k.as_str()).unwrap_or_else(|| panic!("{at}: no kind")).to_owned()
        })
        .collect();
    assert_eq!(found, kinds, "{relative}");
}

// --- Typed objects for the custom resources (only what we use; see the module docs) ----------

/// `serving.knative.dev/v1` Service.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KnativeService {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: KnativeServiceSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnativeServiceSpec {
    template: RevisionTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevisionTemplate {
    metadata: ObjectMeta,
    spec: RevisionSpec,
}

/// Knative's RevisionSpec is a PodSpec plus its own fields.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevisionSpec {
    container_concurrency: Option<i64>,
    timeout_seconds: Option<i64>,
    #[serde(flatten)]
    pod: PodSpec,
}

/// `keda.sh/v1alpha1` ScaledObject.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaledObject {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ScaledObjectSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaledObjectSpec {
    scale_target_ref: ScaleTargetRef,
    polling_interval: u32,
    cooldown_period: u32,
    min_replica_count: u32,
    max_replica_count: u32,
    triggers: Vec<Trigger>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScaleTargetRef {
    api_version: String,
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trigger {
    #[serde(rename = "type")]
    kind: String,
    metadata: PrometheusTrigger,
}

/// KEDA's prometheus scaler takes strings only.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrometheusTrigger {
    server_address: String,
    query: String,
    threshold: String,
    ignore_null_values: String,
}

/// `monitoring.coreos.com/v1` ServiceMonitor.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    endpoints: Vec<ScrapeEndpoint>,
}

/// `monitoring.coreos.com/v1` PodMonitor.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: PodMonitorSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PodMonitorSpec {
    selector: LabelSelector,
    pod_metrics_endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelSelector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScrapeEndpoint {
    port: String,
    path: String,
    interval: String,
    #[serde(default)]
    honor_labels: Option<bool>,
}

/// The prometheus-adapter Helm chart's values (the parts we set).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterValues {
    prometheus: AdapterPrometheus,
    rules: AdapterRules,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterPrometheus {
    url: String,
    port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterRules {
    default: bool,
    custom: Vec<AdapterRule>,
}

/// One prometheus-adapter discovery rule.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AdapterRule {
    series_query: String,
    resources: AdapterResources,
    name: AdapterName,
    metrics_query: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterResources {
    overrides: BTreeMap<String, AdapterResource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterResource {
    resource: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdapterName {
    matches: String,
    #[serde(rename = "as")]
    as_: String,
}

/// A Grafana dashboard (the parts we check).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dashboard {
    title: String,
    uid: String,
    templating: Templating,
    panels: Vec<Panel>,
}

#[derive(Debug, Deserialize)]
struct Templating {
    list: Vec<Variable>,
}

#[derive(Debug, Deserialize)]
struct Variable {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    definition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Panel {
    id: u32,
    title: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    datasource: Option<serde_json::Value>,
    #[serde(default)]
    targets: Vec<PanelTarget>,
    grid_pos: GridPos,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PanelTarget {
    expr: String,
    ref_id: String,
}

#[derive(Debug, Deserialize)]
struct GridPos {
    h: u32,
    w: u32,
    x: u32,
    y: u32,
}

// --- What the binary understands ---------------------------------------------------------------

/// The environment variables `wasmpod serve` reads: its flags' twins (from `--help`), plus
/// `PORT` and `RUST_LOG`. (`K_*` are Knative's to set, never a manifest's.)
fn serve_env_names() -> BTreeSet<String> {
    let output = support::run_wasmpod(&deploy_dir(), &["serve", "--help"], b"");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap_or_default().to_owned())
        .collect();
    assert!(
        names.contains("CONCURRENT_RESOURCE_REQUEST") && names.contains("WASMPOD_DRAIN_SECONDS"),
        "{help}"
    );
    names.extend(["PORT".to_owned(), "RUST_LOG".to_owned()]);
    names
}

/// Every sample name a real server exports, from its `/metrics` after requests that bring every
/// family out (a family with no sample yet, e.g. refusals before any refusal, is not listed).
async fn exported_metric_names() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = [
        support::module("/hello", guests::HELLO, ""),
        support::module("/spin", guests::SPIN, "timeout = 0.2"),
        support::module("/out", guests::OUTBOUND, ""),
    ]
    .concat();
    let config = support::write_config(dir.path(), &config);
    let server = Server::start_in(
        dir.path(),
        &["-c", config.to_str().unwrap(), "--concurrent-resource-request", "1000"],
    );
    assert_eq!(server.get("/hello").await.status, 200);
    // A refusal (too large), a guest timeout, an outbound call refused by allowed_hosts.
    assert_eq!(server.send(Request::get("/hello").header("Memory-Request", "2000")).await.status, 413);
    assert_eq!(server.get("/spin").await.status, 504);
    assert_eq!(server.get("/out?url=http://127.0.0.1:9/").await.text(), "error 7\n");
    let text = server.get("/metrics").await.text();
    let names = sample_names(&text);
    assert!(
        names.contains("wasmpod_inflight_memory_mb") && names.contains("wasmpod_rejected_total"),
        "{text}"
    );
    names
}

/// Every sample name a Prometheus text exposition holds: counters with `_total`, histograms with
/// `_bucket`, `_sum` and `_count`.
fn sample_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declaration) = line.strip_prefix("# TYPE ") {
            let mut parts = declaration.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            names.insert(line.split(['{', ' ']).next().unwrap().to_owned());
        }
    }
    names
}

/// What `wasmpod autoscale` exports on its own `/metrics`: the sample names and the label names
/// they carry, from the very exposition its `/metrics` serves (the controller's
/// [`wasmpod_controller::ControllerMetrics::encode`]; every series is there from the start).
fn controller_exports() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = wasmpod_controller::ControllerMetrics::new("default", "wasmpod").encode();
    let names = sample_names(&text);
    assert!(
        names.contains("wasmpod_autoscaler_desired_pods")
            && names.contains("wasmpod_autoscaler_scale_patches_total"),
        "{text}"
    );
    let labels: BTreeSet<String> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('{')?.1.split_once('}').map(|(labels, _)| labels.to_owned()))
        .flat_map(|labels| {
            labels.split(',').filter_map(|pair| Some(pair.split_once('=')?.0.to_owned())).collect::<Vec<_>>()
        })
        .collect();
    assert!(labels.contains("deployment"), "{text}");
    (names, labels)
}

/// The label names an expression's selectors match on, for each `wasmpod_*` metric it names
/// with a selector (`name{label=~"...",...}`).
fn selector_labels(expr: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for name in metrics_named(expr) {
        for (at, _) in expr.match_indices(&format!("{name}{{")) {
            let selector = &expr[at + name.len() + 1..];
            let selector = &selector[..selector.find('}').unwrap_or(selector.len())];
            for matcher in selector.split(',').filter(|m| !m.trim().is_empty()) {
                let label = matcher.split(['=', '!', '~']).next().unwrap_or_default().trim();
                found.push((name.clone(), label.to_owned()));
            }
        }
    }
    found
}

/// The `wasmpod_*` metric names a PromQL expression mentions.
fn metrics_named(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("wasmpod_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn assert_metrics_exported(what: &str, expr: &str, exported: &BTreeSet<String>) {
    let named = metrics_named(expr);
    assert!(!named.is_empty(), "{what}: names no wasmpod metric: {expr}");
    for name in named {
        assert!(exported.contains(&name), "{what}: {name} is not a metric wasmpod exports ({expr})");
    }
}

fn env_of(container: &Container) -> BTreeMap<String, String> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_else(|| panic!("{}: a literal value", e.name))))
        .collect()
}

fn number(env: &BTreeMap<String, String>, name: &str) -> f64 {
    let value = env.get(name).unwrap_or_else(|| panic!("{name} is not set"));
    value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
}

/// A memory quantity in MiB (the manifests use `Mi` and `Gi`).
fn mebibytes(quantity: &str) -> f64 {
    if let Some(n) = quantity.strip_suffix("Mi") {
        n.parse().unwrap()
    } else if let Some(n) = quantity.strip_suffix("Gi") {
        n.parse::<f64>().unwrap() * 1024.0
    } else {
        panic!("{quantity}: expected Mi or Gi")
    }
}

fn memory_limit_mib(container: &Container) -> f64 {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref()).expect("resource limits");
    mebibytes(&limits.get("memory").expect("a memory limit").0)
}

/// Wasabi's shipped overbooking: 13000 MB of admission capacity on a 9100 Mi memory limit.
const WASABI_OVERBOOKING: f64 = 13000.0 / 9100.0;

/// The checks every superpod container passes, whatever runs it: the environment is the binary's,
/// the overbooking rule holds, the probes are the server's, it runs as non-root.
fn check_superpod_container(at: &str, container: &Container, known_env: &BTreeSet<String>) {
    let env = env_of(container);
    for name in env.keys() {
        assert!(known_env.contains(name), "{at}: {name} is not a variable wasmpod reads");
        assert!(!name.starts_with("K_"), "{at}: {name} is Knative's to set");
    }
    let capacity = number(&env, "CONCURRENT_RESOURCE_REQUEST");
    let factor = capacity / memory_limit_mib(container);
    assert!(
        (1.0..=WASABI_OVERBOOKING + 1e-9).contains(&factor),
        "{at}: capacity {capacity} MB is {factor:.2}x the memory limit; the rule allows 1.0 to {WASABI_OVERBOOKING:.2}"
    );
    assert!(number(&env, "QUEUE_DEPTH_RESOURCE_UNITS") >= capacity, "{at}: queue depth below capacity");
    assert!(
        number(&env, "WASMPOD_DRAIN_SECONDS") < number(&env, "WASMPOD_SHUTDOWN_TIMEOUT"),
        "{at}: the drain period must be shorter than the shutdown timeout"
    );
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe.as_ref().and_then(|p| p.http_get.as_ref()).and_then(|g| g.path.clone())
    };
    assert_eq!(probe_path(&container.readiness_probe).as_deref(), Some("/readyz"), "{at}");
    assert_eq!(probe_path(&container.liveness_probe).as_deref(), Some("/healthz"), "{at}");
    let ports: Vec<i32> = container.ports.iter().flatten().map(|p| p.container_port).collect();
    assert_eq!(ports, [8080], "{at}: one port, the image's");
    assert_eq!(container.args.as_deref(), Some(&["serve".to_owned(), "/functions".to_owned()][..]), "{at}");
}

fn pod_runs_as_non_root(at: &str, pod: &PodSpec, container: &Container) {
    let pod_level = pod.security_context.as_ref().and_then(|s| s.run_as_non_root);
    let container_level = container.security_context.as_ref().and_then(|s| s.run_as_non_root);
    assert_eq!(container_level.or(pod_level), Some(true), "{at}: runAsNonRoot");
    let privilege = container.security_context.as_ref().and_then(|s| s.allow_privilege_escalation);
    assert_eq!(privilege, Some(false), "{at}: allowPrivilegeEscalation");
}

/// Starts the real binary with a container's environment (and the image's folder layout), so a
/// value it would refuse at start (a drain period too long, a threshold that does not parse)
/// fails here.
fn starts_with_env_of(at: &str, container: &Container) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    let env = env_of(container);
    // Listen on loopback, port 0 (the flag beats PORT), instead of 0.0.0.0:8080.
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(dir.path(), &[".", "-l", "127.0.0.1:0"], &env);
    let log = server.wait_for_log(" serving ");
    assert!(log.contains("drain_seconds="), "{at}:\n{log}");
}

fn knative_service(relative: &str, class: &str) -> (KnativeService, Container) {
    let service: KnativeService = object(relative, "Service");
    assert_eq!((service.api_version.as_str(), service.kind.as_str()), ("serving.knative.dev/v1", "Service"));
    let annotations = service.spec.template.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("autoscaling.knative.dev/class").map(String::as_str),
        Some(class),
        "{relative}"
    );
    let spec = &service.spec.template.spec;
    // No queue-proxy breaker: wasmpod's admission is the limit.
    assert_eq!(spec.container_concurrency, Some(0), "{relative}");
    let [container] = spec.pod.containers.as_slice() else { panic!("{relative}: one container") };
    let container = container.clone();
    let env = env_of(&container);
    assert!(!env.contains_key("PORT"), "{relative}: Knative sets PORT itself");
    // The revision timeout is also the termination grace period: above the guest timeout and the
    // shutdown timeout, so requests end by their own limits and wasmpod exits before SIGKILL.
    let timeout = spec.timeout_seconds.expect("timeoutSeconds") as f64;
    assert!(timeout > number(&env, "WASMPOD_TIMEOUT"), "{relative}");
    assert!(timeout > number(&env, "WASMPOD_SHUTDOWN_TIMEOUT"), "{relative}");
    // The queue-proxy drains before wasmpod gets SIGTERM.
    assert_eq!(number(&env, "WASMPOD_DRAIN_SECONDS"), 0.0, "{relative}");
    // Wasabi's shipped sizes.
    assert_eq!(number(&env, "CONCURRENT_RESOURCE_REQUEST"), 13000.0, "{relative}");
    assert_eq!(memory_limit_mib(&container), 9100.0, "{relative}");
    pod_runs_as_non_root(relative, &spec.pod, &container);
    (service, container)
}

#[test]
fn knative_kpa_service_scales_on_concurrency_and_leaves_the_limit_to_admission() {
    let relative = "knative/superpod-kpa.yaml";
    assert_kinds(relative, &["Service"]);
    let (service, container) = knative_service(relative, "kpa.autoscaling.knative.dev");
    let annotations = service.spec.template.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["autoscaling.knative.dev/metric"], "concurrency");
    // The target is the capacity over the default declared memory.
    let env = env_of(&container);
    let per_pod =
        number(&env, "CONCURRENT_RESOURCE_REQUEST") / number(&env, "WASMPOD_DEFAULT_MEMORY_REQUEST");
    assert_eq!(annotations["autoscaling.knative.dev/target"], per_pod.to_string());
    check_superpod_container(relative, &container, &serve_env_names());
    starts_with_env_of(relative, &container);
}

#[tokio::test]
async fn knative_hpa_service_scales_on_the_adapters_declared_memory_metric() {
    let relative = "knative/superpod-hpa-memory.yaml";
    assert_kinds(relative, &["Service", "PodMonitor"]);
    let (service, container) = knative_service(relative, "hpa.autoscaling.knative.dev");
    check_superpod_container(relative, &container, &serve_env_names());
    starts_with_env_of(relative, &container);
    let exported = exported_metric_names().await;

    // The adapter serves the metric the Service names, per pod, as running plus queued MB.
    let values: AdapterValues =
        serde_yaml_ng::from_value(documents("knative/prometheus-adapter-values.yaml").remove(0).1).unwrap();
    assert!(!values.rules.default, "only our rule");
    assert_eq!(
        (values.prometheus.url.as_str(), values.prometheus.port),
        ("http://prometheus-operated.monitoring.svc", 9090)
    );
    let [rule] = values.rules.custom.as_slice() else { panic!("one adapter rule") };
    let annotations = service.spec.template.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["autoscaling.knative.dev/metric"], rule.name.as_);
    assert!(!exported.contains(&rule.name.as_), "the custom metric is the adapter's, not a raw series");
    assert_metrics_exported("adapter seriesQuery", &rule.series_query, &exported);
    assert_metrics_exported("adapter metricsQuery", &rule.metrics_query, &exported);
    assert_eq!(
        metrics_named(&rule.metrics_query),
        BTreeSet::from(["wasmpod_inflight_memory_mb".to_owned(), "wasmpod_queued_memory_mb".to_owned()])
    );
    assert!(
        rule.metrics_query.contains("<<.LabelMatchers>>") && rule.metrics_query.contains("by (<<.GroupBy>>)")
    );
    let overrides: Vec<(&str, &str)> =
        rule.resources.overrides.iter().map(|(label, r)| (label.as_str(), r.resource.as_str())).collect();
    assert_eq!(overrides, [("namespace", "namespace"), ("pod", "pod")], "a per-pod metric");
    assert!(rule.series_query.starts_with(rule.name.matches.trim_matches(['^', '$'])));
    // Wasabi's target: one pod per memory limit of declared memory.
    assert_eq!(annotations["autoscaling.knative.dev/target"], memory_limit_mib(&container).to_string());

    // Prometheus scrapes the user container of this Service's pods.
    let monitor: PodMonitor = object(relative, "PodMonitor");
    assert_eq!(
        (monitor.api_version.as_str(), monitor.kind.as_str()),
        ("monitoring.coreos.com/v1", "PodMonitor")
    );
    let name = service.metadata.name.as_deref().unwrap();
    assert_eq!(
        monitor.spec.selector.match_labels.get("serving.knative.dev/service").map(String::as_str),
        Some(name)
    );
    assert_eq!(monitor.metadata.namespace, service.metadata.namespace);
    let [endpoint] = monitor.spec.pod_metrics_endpoints.as_slice() else { panic!("one endpoint") };
    // Knative names the user container's port `user-port` in the pods it creates.
    assert_eq!((endpoint.port.as_str(), endpoint.path.as_str()), ("user-port", "/metrics"));
    assert!(!endpoint.interval.is_empty());
}

/// Whether a selector's `matchLabels` select an object labelled `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A file's one Deployment, the labels of the pods it makes (its own selector must select them),
/// their spec and their one container.
fn deployment_and_pods(relative: &str) -> (Deployment, BTreeMap<String, String>, PodSpec, Container) {
    let deployment: Deployment = object(relative, "Deployment");
    let spec = deployment.spec.as_ref().expect("spec");
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).expect("pod labels");
    assert!(selects(spec.selector.match_labels.as_ref().unwrap(), &labels), "{relative}: selector");
    let pod = spec.template.spec.clone().expect("pod spec");
    let [container] = pod.containers.as_slice() else { panic!("{relative}: one container") };
    let container = container.clone();
    (deployment, labels, pod, container)
}

/// The plain Deployment, its Service, PodDisruptionBudget and ServiceMonitor.
#[test]
fn plain_deployment_service_budget_and_monitor_fit_together() {
    let relative = "k8s/superpod.yaml";
    assert_kinds(relative, &["Deployment", "Service", "PodDisruptionBudget"]);
    let (deployment, template_labels, pod, container) = deployment_and_pods(relative);
    let (pod, container) = (&pod, &container);
    let spec = deployment.spec.as_ref().expect("spec");
    let selects_pods = |selector: &BTreeMap<String, String>| selects(selector, &template_labels);
    check_superpod_container(relative, container, &serve_env_names());
    pod_runs_as_non_root(relative, pod, container);
    let env = env_of(container);
    assert_eq!(env["PORT"], "8080", "no Knative here to set PORT");
    // A drain period, since no queue-proxy holds the pod; and SIGKILL only after wasmpod's own
    // shutdown timeout.
    assert!(number(&env, "WASMPOD_DRAIN_SECONDS") > 0.0);
    let grace = pod.termination_grace_period_seconds.expect("terminationGracePeriodSeconds") as f64;
    assert!(grace > number(&env, "WASMPOD_SHUTDOWN_TIMEOUT"));
    let rolling = spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref()).expect("rolling update");
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)), "never below the replicas in a rollout");
    starts_with_env_of(relative, container);

    let service: Service = object(relative, "Service");
    let service_spec = service.spec.as_ref().unwrap();
    assert!(selects_pods(service_spec.selector.as_ref().unwrap()));
    let [port] = service_spec.ports.as_deref().unwrap() else { panic!("one service port") };
    let named = container.ports.iter().flatten().find(|p| {
        Some(&IntOrString::String(p.name.clone().unwrap_or_default())) == port.target_port.as_ref()
    });
    assert_eq!(named.map(|p| p.container_port), Some(8080), "the Service targets the container port by name");

    let budget: PodDisruptionBudget = object(relative, "PodDisruptionBudget");
    let budget_spec = budget.spec.unwrap();
    assert!(selects_pods(budget_spec.selector.unwrap().match_labels.as_ref().unwrap()));
    assert_eq!(budget_spec.max_unavailable, Some(IntOrString::Int(1)));

    let monitor: ServiceMonitor = object("k8s/servicemonitor.yaml", "ServiceMonitor");
    scraped_endpoint("k8s/servicemonitor.yaml", &monitor, &service, port);
}

/// Whether a ServiceMonitor selects a Service.
fn monitor_selects(monitor: &ServiceMonitor, service: &Service) -> bool {
    selects(&monitor.spec.selector.match_labels, &service.metadata.labels.clone().unwrap_or_default())
}

/// The one endpoint of a ServiceMonitor, checked to scrape `service`'s `port` on `/metrics`: the
/// monitor is a `monitoring.coreos.com/v1` ServiceMonitor in the Service's namespace that
/// selects it.
fn scraped_endpoint<'a>(
    file: &str,
    monitor: &'a ServiceMonitor,
    service: &Service,
    port: &ServicePort,
) -> &'a ScrapeEndpoint {
    assert_eq!(
        (monitor.api_version.as_str(), monitor.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        "{file}"
    );
    assert!(monitor_selects(monitor, service), "{file}: selects no such Service");
    assert_eq!(monitor.metadata.namespace, service.metadata.namespace, "{file}");
    let [endpoint] = monitor.spec.endpoints.as_slice() else { panic!("{file}: one endpoint") };
    assert_eq!(
        (Some(endpoint.port.as_str()), endpoint.path.as_str()),
        (port.name.as_deref(), "/metrics"),
        "{file}"
    );
    assert!(!endpoint.interval.is_empty(), "{file}");
    endpoint
}

/// `wasmpod autoscale`'s Deployment and the Service and ServiceMonitor that scrape its own
/// `/metrics`: the monitor selects a Service that exists, on a port that exists, which reaches the
/// container port the controller listens on; the flags are ones `wasmpod autoscale` takes, and
/// name the Deployment and the metrics port of superpod.yaml.
#[test]
fn autoscaler_deployment_service_and_monitor_fit_together() {
    let relative = "k8s/autoscaler.yaml";
    assert_kinds(relative, &["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"]);
    let (deployment, template_labels, pod, container) = deployment_and_pods(relative);
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(1), "one decision maker");
    pod_runs_as_non_root(relative, &pod, &container);

    // The flags: `autoscale`, then flags `wasmpod autoscale --help` lists, each with its value.
    let args = container.args.clone().expect("args");
    assert_eq!(args.first().map(String::as_str), Some("autoscale"), "{relative}");
    let output = support::run_wasmpod(&deploy_dir(), &["autoscale", "--help"], b"");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    let mut flags = BTreeMap::new();
    for pair in args[1..].chunks(2) {
        let [flag, value] = pair else { panic!("{relative}: {pair:?}: a flag without a value") };
        assert!(flag.starts_with("--") && help.contains(&format!("{flag} <")), "{relative}: {flag}");
        flags.insert(flag.as_str(), value.as_str());
    }
    // It scales superpod.yaml's Deployment and scrapes the port its container names.
    let superpods: Deployment = object("k8s/superpod.yaml", "Deployment");
    assert_eq!(Some(flags["--deployment"]), superpods.metadata.name.as_deref());
    assert_eq!(Some(flags["--namespace"]), superpods.metadata.namespace.as_deref());
    let superpod = superpods.spec.unwrap().template.spec.unwrap();
    let superpod_ports = superpod.containers[0].ports.clone().unwrap_or_default();
    assert!(superpod_ports.iter().any(|p| p.name.as_deref() == Some(flags["--pod-port"])), "--pod-port");

    // It listens for /metrics on a container port it names, and its liveness probe asks that port.
    let listen: std::net::SocketAddr = flags["--metrics-listen"].parse().expect("--metrics-listen");
    let ports = container.ports.clone().unwrap_or_default();
    let [metrics_port] = ports.as_slice() else { panic!("{relative}: one container port") };
    assert_eq!(metrics_port.container_port, i32::from(listen.port()), "{relative}");
    let metrics_port_name = metrics_port.name.clone().expect("a named port");
    let liveness = container.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("liveness");
    assert_eq!(
        (liveness.path.as_deref(), &liveness.port),
        (Some("/healthz"), &IntOrString::String(metrics_port_name.clone()))
    );

    // The Service in front of it targets that port by name.
    let service: Service = object(relative, "Service");
    assert_eq!(service.metadata.namespace, deployment.metadata.namespace);
    let service_spec = service.spec.as_ref().unwrap();
    assert!(selects(service_spec.selector.as_ref().unwrap(), &template_labels));
    let [port] = service_spec.ports.as_deref().unwrap() else { panic!("one service port") };
    assert_eq!(port.target_port, Some(IntOrString::String(metrics_port_name)), "{relative}");

    // The monitor selects that Service (and not the superpods'), on that port, keeping the
    // controller's own `namespace` and `deployment` labels.
    let monitor_file = "k8s/autoscaler-servicemonitor.yaml";
    assert_kinds(monitor_file, &["ServiceMonitor"]);
    let monitor: ServiceMonitor = object(monitor_file, "ServiceMonitor");
    let endpoint = scraped_endpoint(monitor_file, &monitor, &service, port);
    let superpods_service: Service = object("k8s/superpod.yaml", "Service");
    assert!(!monitor_selects(&monitor, &superpods_service), "{monitor_file}: selects the superpods");
    let pods_monitor: ServiceMonitor = object("k8s/servicemonitor.yaml", "ServiceMonitor");
    assert!(!monitor_selects(&pods_monitor, &service), "servicemonitor.yaml: selects the controller");
    assert_eq!(endpoint.honor_labels, Some(true), "{monitor_file}: the controller's namespace label");
}

#[tokio::test]
async fn keda_scales_the_plain_deployment_on_declared_memory() {
    let relative = "keda/scaledobject.yaml";
    assert_kinds(relative, &["ScaledObject"]);
    let scaled: ScaledObject = object(relative, "ScaledObject");
    assert_eq!((scaled.api_version.as_str(), scaled.kind.as_str()), ("keda.sh/v1alpha1", "ScaledObject"));
    let deployment: Deployment = object("k8s/superpod.yaml", "Deployment");
    let service: Service = object("k8s/superpod.yaml", "Service");
    let target = &scaled.spec.scale_target_ref;
    assert_eq!(
        (target.api_version.as_str(), target.kind.as_str(), Some(target.name.as_str())),
        ("apps/v1", "Deployment", deployment.metadata.name.as_deref())
    );
    assert_eq!(scaled.metadata.namespace, deployment.metadata.namespace);
    assert!(
        scaled.spec.min_replica_count >= 1 && scaled.spec.max_replica_count > scaled.spec.min_replica_count
    );
    assert!(scaled.spec.polling_interval > 0 && scaled.spec.cooldown_period > 0);

    let [trigger] = scaled.spec.triggers.as_slice() else { panic!("one trigger") };
    assert_eq!(trigger.kind, "prometheus");
    let query = &trigger.metadata.query;
    assert!(trigger.metadata.server_address.starts_with("http://"));
    assert_eq!(trigger.metadata.ignore_null_values, "false", "no data must not look like no load");
    let exported = exported_metric_names().await;
    assert_metrics_exported(relative, query, &exported);
    assert_eq!(
        metrics_named(query),
        BTreeSet::from(["wasmpod_inflight_memory_mb".to_owned(), "wasmpod_queued_memory_mb".to_owned()])
    );
    // The query selects this Deployment's pods, by the labels the ServiceMonitor's scrape adds.
    let namespace = deployment.metadata.namespace.as_deref().unwrap();
    let service_name = service.metadata.name.as_deref().unwrap();
    assert_eq!(
        query.matches(&format!(r#"{{namespace="{namespace}",service="{service_name}"}}"#)).count(),
        2,
        "{query}"
    );
    // The threshold is the per-pod target: 70 % of the pod's admission capacity.
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let capacity = number(&env_of(&pod.containers[0]), "CONCURRENT_RESOURCE_REQUEST");
    assert_eq!(trigger.metadata.threshold, (capacity * 0.7).to_string());
}

/// The dashboard's row of `wasmpod autoscale`'s own series; every other row is the pods'.
const CONTROLLER_ROW: &str = "Autoscaler (controller)";

#[tokio::test]
async fn grafana_dashboard_queries_only_metrics_the_server_and_the_controller_export() {
    let path = deploy_dir().join("grafana/wasmpod-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: Dashboard =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!dashboard.title.is_empty() && !dashboard.uid.is_empty());
    let server = exported_metric_names().await;
    let (controller, controller_labels) = controller_exports();
    assert!(server.is_disjoint(&controller), "the server and the controller export the same name");
    let either: BTreeSet<String> = server.union(&controller).cloned().collect();

    // Each panel sits under the last row above it.
    let mut rows: Vec<&Panel> = dashboard.panels.iter().filter(|p| p.kind == "row").collect();
    rows.sort_by_key(|row| row.grid_pos.y);
    let row_of = |panel: &Panel| {
        rows.iter().rev().find(|row| row.grid_pos.y < panel.grid_pos.y).map(|row| row.title.as_str())
    };
    assert!(rows.iter().any(|row| row.title == CONTROLLER_ROW), "no row {CONTROLLER_ROW:?}");

    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in &dashboard.panels {
        assert!(ids.insert(panel.id), "panel id {} twice", panel.id);
        assert!(
            panel.grid_pos.x + panel.grid_pos.w <= 24 && panel.grid_pos.h > 0,
            "{}: off the grid",
            panel.title
        );
        if panel.kind == "row" {
            continue;
        }
        assert!(panel.datasource.is_some(), "{}: no data source", panel.title);
        assert!(!panel.targets.is_empty(), "{}: no query", panel.title);
        // The controller's row reads the controller's series only, the other rows the pods'.
        let (exported, source) = if row_of(panel) == Some(CONTROLLER_ROW) {
            (&controller, "the controller")
        } else {
            (&server, "the server")
        };
        for target in &panel.targets {
            let what = format!("panel {:?} {} (from {source})", panel.title, target.ref_id);
            assert_metrics_exported(&what, &target.expr, exported);
            queried.extend(metrics_named(&target.expr));
        }
    }
    // No two panels cover the same cells of the grid.
    for (i, a) in dashboard.panels.iter().enumerate() {
        for b in &dashboard.panels[i + 1..] {
            let (a, b, names) = (&a.grid_pos, &b.grid_pos, (&a.title, &b.title));
            let apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
            assert!(apart, "panels {names:?} overlap");
        }
    }
    let mut expressions: Vec<(String, &str)> = Vec::new();
    for variable in dashboard.templating.list.iter().filter(|v| v.kind == "query") {
        let definition = variable.definition.as_deref().unwrap_or_default();
        assert_metrics_exported(&format!("variable {}", variable.name), definition, &either);
        expressions.push((format!("variable {}", variable.name), definition));
    }
    for panel in &dashboard.panels {
        expressions
            .extend(panel.targets.iter().map(|t| (format!("panel {:?}", panel.title), t.expr.as_str())));
    }
    // The controller's series are selected by labels they carry (`namespace` and `deployment`,
    // kept by the ServiceMonitor's honorLabels), not by labels only the pods' series have.
    for (what, expr) in expressions {
        for (metric, label) in selector_labels(expr) {
            if controller.contains(&metric) {
                assert!(
                    controller_labels.contains(&label),
                    "{what}: {metric} has no label {label:?} (it has {controller_labels:?})"
                );
            }
        }
    }
    // What a platform team opens it for: the pods' admission, and the autoscaler's decisions and
    // their inputs.
    for metric in [
        "wasmpod_inflight_memory_mb",
        "wasmpod_queued_memory_mb",
        "wasmpod_capacity_memory_mb",
        "wasmpod_rejected_total",
        "wasmpod_request_duration_seconds_bucket",
        "wasmpod_cpu_utilization_cores",
        "wasmpod_autoscaler_desired_pods",
        "wasmpod_autoscaler_ready_pods",
        "wasmpod_autoscaler_stable_memory_mb",
        "wasmpod_autoscaler_panic_memory_mb",
        "wasmpod_autoscaler_target_memory_mb",
        "wasmpod_autoscaler_observed_cpu_cores",
        "wasmpod_autoscaler_stable_cpu_cores",
        "wasmpod_autoscaler_panic_mode",
        "wasmpod_autoscaler_excess_burst_capacity_mb",
    ] {
        assert!(queried.contains(metric), "the dashboard has no panel on {metric}");
    }
}
