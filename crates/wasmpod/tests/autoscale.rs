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

/// The controller's scrape against a real `wasmpod serve` started as Knative starts it: the five
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

/// Answers the stand-in's three paths; `requests` records `METHOD path` of each.
fn answer(request: &Request<Incoming>, port: u16, requests: &Mutex<Vec<String>>) -> Response<Full<Bytes>> {
    requests.lock().unwrap().push(format!("{} {}", request.method(), request.uri().path()));
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
                "spec": { "containers": [{ "name": "wasmpod", "ports": [{ "name": "http", "containerPort": port }] }] },
                "status": { "phase": "Running", "podIP": "127.0.0.1", "conditions": [{ "type": "Ready", "status": "True" }] },
            }],
        })
        .to_string(),
        "/metrics" => "wasmpod_inflight_memory_mb 1500\nwasmpod_queued_memory_mb 500\n\
                       wasmpod_inflight_requests 15\nwasmpod_queued_requests 5\nwasmpod_capacity_memory_mb 8000\n"
            .to_owned(),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
            return response;
        }
    };
    Response::new(Full::new(Bytes::from(body)))
}

#[test]
fn autoscale_dry_run_prints_decisions_against_a_stand_in_api_server() {
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
                    let response = answer(&request, port, &recorded);
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
             contexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    namespace: demo\n    user: nobody\n\
             users:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(WASMPOD)
        .args(["autoscale", "--deployment", "superpod", "--dry-run", "--metrics-listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The first decision comes on the first tick; the bound only catches a hung binary.
    let line = received.recv_timeout(Duration::from_secs(60)).expect("a decision line on stdout");
    // One ready pod of 2000 MB: ceil(2000 / (8000 x 0.7)) = 1, while the Deployment asks for 3.
    assert!(
        line.contains("ready 1 scraped 1 observed 2000 MB | desired 1 (observed)")
            && line.ends_with("| replicas 3"),
        "{line}"
    );
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let requests = requests.lock().unwrap();
    assert!(requests.iter().all(|r| r.starts_with("GET ")), "a dry run never patches: {requests:?}");
    assert!(requests.contains(&"GET /metrics".to_owned()), "{requests:?}");
}

/// SIGTERM through `kill`, as an orchestrator sends it.
fn sigterm(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}
