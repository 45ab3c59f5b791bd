//! `wasmpod autoscale` end to end: the real binary, its flags, its kubeconfig handling and its
//! `--dry-run` output. No Kubernetes API server can run here, so the cluster is a **stand-in**: a
//! local HTTP server that answers the Deployment read and the pod list and serves one pod's
//! `/metrics` (it is not Kubernetes). The controller's requests and decisions are checked in
//! detail in `crates/wasmpod-controller/tests/stand_in_api_server.rs`; this file checks the wiring,
//! and that the controller reads a real pod's `/metrics`.

mod support;

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use support::{Server, WASMPOD};

/// The controller's scrape against a real `wasmpod serve` started as Knative starts it: the six
/// gauges it reads are the ones the server exports, with the `K_*` constant labels on them.
#[test]
fn the_controller_reads_a_real_pods_metrics() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[examples, "--concurrent-resource-request", "3000"],
        &[("K_SERVICE", "hello"), ("K_REVISION", "hello-00001")],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let load = runtime
        .block_on(wasmpod_controller::scrape(
            "hello-pod",
            server.addr,
            wasmpod_controller::DEFAULT_SCRAPE_TIMEOUT,
        ))
        .unwrap();
    assert_eq!(load.capacity_mb, 3000.0);
    let text = runtime.block_on(server.get("/metrics")).text();
    assert!(
        text.lines().any(|l| l.starts_with("wasmpod_capacity_memory_mb{") && l.ends_with("} 3000")),
        "{text}"
    );
    assert_eq!(load.sample, wasmpod_autoscale::Sample { memory_mb: 0.0, concurrency: 0.0 });
    // The CPU rule's gauge is there too.
    assert!(load.cpu_cores.is_some_and(|cores| cores >= 0.0), "{text}");
}

#[test]
fn autoscale_refuses_bad_flags_before_contacting_kubernetes() {
    let output = Command::new(WASMPOD)
        .args(["autoscale", "--deployment", "superpod", "--stable-window", "5"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("autoscaler flags: stable_window = 5s: must be whole seconds from 6 s to 1 h"),
        "{stderr}"
    );
}

/// The container port name the stand-in's pod gives its `/metrics` port (not `http`, the
/// default, so a test that sets `--pod-port`/`WASMPOD_AUTOSCALE_POD_PORT` shows it was read).
const STAND_IN_PORT_NAME: &str = "admin";

/// Answers the stand-in's three paths; `requests` records `METHOD path` of each. The pod names
/// its metrics port `port_name`, and a bogus `http` port when that is another name.
fn answer(
    request: &Request<Incoming>,
    port: u16,
    port_name: &str,
    requests: &Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    requests.lock().unwrap().push(format!("{} {}", request.method(), request.uri().path()));
    let mut ports = vec![serde_json::json!({ "name": port_name, "containerPort": port })];
    if port_name != "http" {
        ports.insert(0, serde_json::json!({ "name": "http", "containerPort": 1 }));
    }
    let body = match request.uri().path() {
        "/apis/apps/v1/namespaces/demo/deployments/superpod" => serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "superpod", "namespace": "demo" },
            "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "superpod" } }, "template": {} },
        })
        .to_string(),
        "/api/v1/namespaces/demo/pods" => serde_json::json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": [{
                "metadata": { "name": "superpod-0", "labels": { "app": "superpod" } },
                "spec": { "containers": [{ "name": "wasmpod", "ports": ports }] },
                "status": { "phase": "Running", "podIP": "127.0.0.1", "conditions": [{ "type": "Ready", "status": "True" }] },
            }],
        })
        .to_string(),
        "/metrics" => "wasmpod_inflight_memory_mb 1500\nwasmpod_queued_memory_mb 500\n\
                       wasmpod_inflight_requests 15\nwasmpod_queued_requests 5\nwasmpod_capacity_memory_mb 8000\n\
                       wasmpod_cpu_utilization_cores 3.5\n"
            .to_owned(),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
            )));
            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
            return response;
        }
    };
    Response::new(Full::new(Bytes::from(body)))
}

/// A stand-in API server (not Kubernetes; see this file's docs) on 127.0.0.1: its one Deployment
/// `demo/superpod` has 3 replicas and one ready pod, whose `/metrics` (served by the stand-in
/// too) reports 2000 MB running and queued out of 8000.
struct StandIn {
    runtime: tokio::runtime::Runtime,
    requests: Arc<Mutex<Vec<String>>>,
    /// A kubeconfig whose context points at the stand-in, in namespace `context_namespace`.
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl StandIn {
    fn start(port_name: &'static str, context_namespace: &str) -> StandIn {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let recorded = requests.clone();
        runtime.spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let response = answer(&request, port, port_name, &recorded);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\n\
                 clusters:\n- name: stand-in\n  cluster:\n    server: http://127.0.0.1:{port}\n\
                 contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    namespace: {context_namespace}\n    user: nobody\n\
                 users:\n- name: nobody\n  user: {{}}\n"
            ),
        )
        .unwrap();
        StandIn { runtime, requests, kubeconfig, _dir: dir }
    }

    /// `wasmpod autoscale <args>` against the stand-in, with only `env` and `KUBECONFIG` in its
    /// environment.
    fn controller(&self, args: &[&str], env: &[(&str, &str)]) -> Controller {
        let mut child = Command::new(WASMPOD)
            .arg("autoscale")
            .args(args)
            .env_clear()
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let to_stdout = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if to_stdout.send(Line::Out(line)).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(Line::Err(line)).is_err() {
                    break;
                }
            }
        });
        Controller { child, lines: received, log: Vec::new() }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

enum Line {
    Out(String),
    Err(String),
}

/// A running `wasmpod autoscale`, stopped with SIGTERM (and checked to exit 0) by [`Controller::stop`].
struct Controller {
    child: std::process::Child,
    lines: mpsc::Receiver<Line>,
    /// The stderr lines seen so far.
    log: Vec<String>,
}

/// Catches a hung binary only: the first decision comes on the second tick (about 1 s).
const HANG_GUARD: Duration = Duration::from_secs(60);

impl Controller {
    /// The next decision line on stdout (a dry run prints one per decision).
    fn next_decision(&mut self) -> String {
        loop {
            match self.lines.recv_timeout(HANG_GUARD) {
                Ok(Line::Out(line)) => return line,
                Ok(Line::Err(line)) => self.log.push(line),
                Err(e) => panic!("no decision line on stdout ({e}); stderr:\n{}", self.log.join("\n")),
            }
        }
    }

    /// The address of the controller's own `/metrics`, from its start-up log line.
    fn metrics_address(&mut self) -> std::net::SocketAddr {
        loop {
            if let Some(address) = self.log.iter().find_map(|l| {
                let rest = l.split("metrics on http://").nth(1)?;
                rest.split("/metrics").next()?.parse().ok()
            }) {
                return address;
            }
            match self.lines.recv_timeout(HANG_GUARD) {
                Ok(Line::Err(line)) => self.log.push(line),
                Ok(Line::Out(_)) => {}
                Err(e) => panic!("no start-up line ({e}); stderr:\n{}", self.log.join("\n")),
            }
        }
    }

    fn stop(mut self) {
        sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The controller's own `/metrics` text.
fn controller_metrics(runtime: &tokio::runtime::Runtime, address: std::net::SocketAddr) -> String {
    runtime.block_on(support::send(address, support::Request::get("/metrics"))).text()
}

/// The value of the controller series `name{...}` (labelled with its Deployment).
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn autoscale_dry_run_prints_decisions_against_a_stand_in_api_server() {
    let stand_in = StandIn::start("http", "demo");
    let mut controller = stand_in
        .controller(&["--deployment", "superpod", "--dry-run", "--metrics-listen", "127.0.0.1:0"], &[]);
    let line = controller.next_decision();
    // One ready pod of 2000 MB: ceil(2000 / (8000 x 0.7)) = 1, while the Deployment asks for 3.
    assert!(
        line.contains("ready 1 scraped 1 observed 2000 MB | desired 1 (observed)")
            && line.ends_with("| replicas 3"),
        "{line}"
    );
    let address = controller.metrics_address();
    let text = controller_metrics(&stand_in.runtime, address);
    assert_eq!(series(&text, "wasmpod_autoscaler_desired_pods"), Some(1.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_ready_pods"), Some(1.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_observed_memory_mb"), Some(2000.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_stable_memory_mb"), Some(2000.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_panic_memory_mb"), Some(2000.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_target_memory_mb"), Some(5600.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_scale_patches_total"), Some(0.0), "{text}");
    controller.stop();
    let requests = stand_in.requests();
    assert!(requests.iter().all(|r| r.starts_with("GET ")), "a dry run never patches: {requests:?}");
    assert!(requests.contains(&"GET /metrics".to_owned()), "{requests:?}");
}

/// The identity and mode flags through their environment twins only: the Deployment, its
/// namespace (the kubeconfig's context names another), the pods' metrics port (a name the pod
/// gives it, not the default `http`), the dry run and the metrics address; and the algorithm's
/// flags through theirs: a 500 MB target asks for 4 pods, the maximum scale holds it at 2, the
/// burst capacity of 1000 MB leaves 8000 - 1000 - 2000 = 5000 MB of excess, and a panic
/// threshold of 10 keeps a 4x surge out of panic.
#[test]
fn autoscale_reads_its_environment_twins() {
    let stand_in = StandIn::start(STAND_IN_PORT_NAME, "elsewhere");
    let mut controller = stand_in.controller(
        &[],
        &[
            ("WASMPOD_AUTOSCALE_DEPLOYMENT", "superpod"),
            ("WASMPOD_AUTOSCALE_NAMESPACE", "demo"),
            ("WASMPOD_AUTOSCALE_POD_PORT", STAND_IN_PORT_NAME),
            ("WASMPOD_AUTOSCALE_DRY_RUN", "true"),
            ("WASMPOD_AUTOSCALE_METRICS_LISTEN", "127.0.0.1:0"),
            ("WASMPOD_AUTOSCALE_TARGET_MB", "500"),
            ("WASMPOD_AUTOSCALE_MAX_SCALE", "2"),
            ("WASMPOD_AUTOSCALE_TARGET_BURST_CAPACITY", "1000"),
            ("WASMPOD_AUTOSCALE_PANIC_THRESHOLD", "10"),
        ],
    );
    let line = controller.next_decision();
    assert!(
        line.contains("ready 1 scraped 1 observed 2000 MB | desired 2 (max scale)")
            && line.contains("target 500 MB panic no ebc 5000"),
        "{line}"
    );
    let text = controller_metrics(&stand_in.runtime, controller.metrics_address());
    assert_eq!(series(&text, "wasmpod_autoscaler_desired_pods"), Some(2.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_panic_mode"), Some(0.0), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_excess_burst_capacity_mb"), Some(5000.0), "{text}");
    // The pod's CPU gauge (3.5 cores) is read and averaged even with the CPU rule off.
    assert_eq!(series(&text, "wasmpod_autoscaler_observed_cpu_cores"), Some(3.5), "{text}");
    assert_eq!(series(&text, "wasmpod_autoscaler_stable_cpu_cores"), Some(3.5), "{text}");
    controller.stop();
    let requests = stand_in.requests();
    assert!(requests.iter().all(|r| r.starts_with("GET ")), "a dry run never patches: {requests:?}");
}

/// The capacity and utilization flags make the target (100000 x 0.5), the minimum scale raises
/// the decision to 5, and `--namespace` beats the kubeconfig's context. Then the scale-up rate:
/// a 500 MB target asks for 4 pods, and `--max-scale-up-rate 1.5` lets one ready pod grow to 2.
#[test]
fn autoscale_flags_shape_the_decision() {
    let stand_in = StandIn::start(STAND_IN_PORT_NAME, "elsewhere");
    let common =
        ["--deployment", "superpod", "--namespace", "demo", "--dry-run", "--metrics-listen", "127.0.0.1:0"];
    let port = ["--pod-port", STAND_IN_PORT_NAME];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = common.iter().chain(&port).chain(extra).copied().collect();
        let mut controller = stand_in.controller(&args, &[]);
        let line = controller.next_decision();
        controller.stop();
        line
    };
    let line = run(&["--capacity-mb", "100000", "--target-utilization", "0.5", "--min-scale", "5"]);
    assert!(line.contains("| desired 5 (min scale)") && line.contains("target 50000 MB"), "{line}");
    let line = run(&["--target-mb", "500", "--max-scale-up-rate", "1.5", "--panic-threshold", "10"]);
    assert!(line.contains("| desired 2 (scale-up rate)"), "{line}");
    // The CPU rule: the pod uses 3.5 cores; a 2-core limit aimed at 50% asks for ceil(3.5 / 1) = 4
    // pods where 2000 MB of 8000 x 0.7 asks for 1.
    let line = run(&["--cpu-limit-cores", "2", "--cpu-target-utilization", "0.5", "--panic-threshold", "10"]);
    assert!(
        line.contains("| desired 4 (cpu)") && line.contains("cpu stable 3.50 panic 3.50 target 1.00 cores"),
        "{line}"
    );
}

/// A Deployment the API server does not know: every tick's API call fails, each is counted in
/// `wasmpod_autoscaler_api_errors_total`, the controller keeps running and decides nothing.
#[test]
fn api_errors_are_counted_and_the_controller_keeps_going() {
    let stand_in = StandIn::start("http", "demo");
    let mut controller =
        stand_in.controller(&["--deployment", "missing", "--metrics-listen", "127.0.0.1:0"], &[]);
    let address = controller.metrics_address();
    let deadline = std::time::Instant::now() + HANG_GUARD;
    let text = loop {
        let text = controller_metrics(&stand_in.runtime, address);
        if series(&text, "wasmpod_autoscaler_api_errors_total").is_some_and(|n| n >= 2.0) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no API error counted:\n{text}");
        std::thread::yield_now();
    };
    assert_eq!(series(&text, "wasmpod_autoscaler_scale_patches_total"), Some(0.0), "{text}");
    controller.stop();
    let requests = stand_in.requests();
    assert!(
        requests.iter().any(|r| r == "GET /apis/apps/v1/namespaces/demo/deployments/missing"),
        "{requests:?}"
    );
}

/// Every flag of `wasmpod autoscale` and its environment twin: `--help` shows the twin on the
/// flag, and a value the flag cannot parse, given only through the twin, stops the start with an
/// error naming the flag (before any connection to a cluster: no kubeconfig is given). The
/// string flags (`--deployment`, `--namespace`, `--pod-port`) are read by use in
/// `autoscale_reads_its_environment_twins`.
#[test]
fn every_autoscale_env_twin_is_read_by_its_flag() {
    const TWINS: &[(&str, &str)] = &[
        ("--capacity-mb", "WASMPOD_AUTOSCALE_CAPACITY_MB"),
        ("--target-mb", "WASMPOD_AUTOSCALE_TARGET_MB"),
        ("--target-utilization", "WASMPOD_AUTOSCALE_TARGET_UTILIZATION"),
        ("--target-burst-capacity", "WASMPOD_AUTOSCALE_TARGET_BURST_CAPACITY"),
        ("--stable-window", "WASMPOD_AUTOSCALE_STABLE_WINDOW"),
        ("--panic-window", "WASMPOD_AUTOSCALE_PANIC_WINDOW"),
        ("--panic-threshold", "WASMPOD_AUTOSCALE_PANIC_THRESHOLD"),
        ("--max-scale-up-rate", "WASMPOD_AUTOSCALE_MAX_SCALE_UP_RATE"),
        ("--max-scale-down-rate", "WASMPOD_AUTOSCALE_MAX_SCALE_DOWN_RATE"),
        ("--scale-down-delay", "WASMPOD_AUTOSCALE_SCALE_DOWN_DELAY"),
        ("--scale-to-zero-grace", "WASMPOD_AUTOSCALE_SCALE_TO_ZERO_GRACE"),
        ("--min-scale", "WASMPOD_AUTOSCALE_MIN_SCALE"),
        ("--max-scale", "WASMPOD_AUTOSCALE_MAX_SCALE"),
        ("--cpu-limit-cores", "WASMPOD_AUTOSCALE_CPU_LIMIT_CORES"),
        ("--cpu-target-utilization", "WASMPOD_AUTOSCALE_CPU_TARGET_UTILIZATION"),
        ("--dry-run", "WASMPOD_AUTOSCALE_DRY_RUN"),
        ("--metrics-listen", "WASMPOD_AUTOSCALE_METRICS_LISTEN"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let help =
        String::from_utf8(support::run_wasmpod(dir.path(), &["autoscale", "--help"], b"").stdout).unwrap();
    for &(flag, env) in TWINS.iter().chain(&[
        ("--deployment", "WASMPOD_AUTOSCALE_DEPLOYMENT"),
        ("--namespace", "WASMPOD_AUTOSCALE_NAMESPACE"),
        ("--pod-port", "WASMPOD_AUTOSCALE_POD_PORT"),
    ]) {
        let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{flag} "))).unwrap_or("");
        assert!(line.contains(&format!("[env: {env}=")), "`{flag}` does not show [env: {env}]:\n{help}");
    }
    for &(flag, env) in TWINS {
        let output = support::run_wasmpod_with(
            dir.path(),
            &["autoscale", "--deployment", "superpod"],
            b"",
            &[(env, "nonsense"), ("KUBECONFIG", "/nonexistent/kubeconfig")],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env}=nonsense was accepted: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains("nonsense"), "{env}=nonsense: {stderr}");
    }
}

/// Values each flag parses but the algorithm cannot use are refused before any connection to a
/// cluster, naming the setting and why.
#[test]
fn autoscale_refuses_values_the_algorithm_cannot_use() {
    let cases: &[(&[&str], &str)] = &[
        (&["--capacity-mb", "0"], "capacity_mb = 0: must be a number above 0"),
        (&["--target-mb", "0"], "target_mb = 0: must be a number above 0"),
        (&["--target-utilization", "1.5"], "target_utilization = 1.5: must be in (0, 1]"),
        (&["--target-burst-capacity", "-2"], "target_burst_capacity_mb = -2: must be 0 or more, or -1"),
        (&["--stable-window", "5"], "stable_window = 5s: must be whole seconds from 6 s to 1 h"),
        (
            &["--panic-window", "61"],
            "panic_window = 61s: must be whole seconds from 1 s to the stable window (60s)",
        ),
        (&["--panic-threshold", "1"], "panic_threshold = 1: must be a number above 1"),
        (&["--max-scale-up-rate", "0.5"], "max_scale_up_rate = 0.5: must be a number above 1"),
        (&["--max-scale-down-rate", "1"], "max_scale_down_rate = 1: must be a number above 1"),
        (&["--scale-to-zero-grace", "0"], "scale_to_zero_grace must be above 0"),
        (&["--scale-down-delay", "1.5"], "\"1.5\" is not a whole number of seconds"),
        (&["--min-scale", "3", "--max-scale", "2"], "min_scale = 3 is above max_scale = 2"),
        (&["--cpu-limit-cores", "0"], "cpu_limit_cores = 0: must be a number above 0"),
        (
            &["--cpu-limit-cores", "4", "--cpu-target-utilization", "1"],
            "cpu_target_utilization = 1: must be in (0, 1) (below 1, or saturated pods never scale out)",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in cases {
        let mut full = vec!["autoscale", "--deployment", "superpod"];
        full.extend_from_slice(args);
        let output =
            support::run_wasmpod_with(dir.path(), &full, b"", &[("KUBECONFIG", "/nonexistent/kubeconfig")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in:\n{stderr}");
    }
}

/// SIGTERM through `kill`, as an orchestrator sends it.
fn sigterm(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}
