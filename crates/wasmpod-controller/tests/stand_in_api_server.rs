//! The controller against a **stand-in** for the Kubernetes API server. No Kubernetes API server
//! can run on the machines that build wasmpod, so this test starts a local HTTP server (hyper, on
//! 127.0.0.1) that answers only the three calls the controller makes (get the Deployment, list its
//! pods, patch its scale), plus one small HTTP server per fake pod serving wasmpod's `/metrics`
//! gauges with values the test sets. The stand-in is not Kubernetes: it keeps one Deployment, makes
//! the pods a scale patch asks for ready two seconds later, removes pods at once, and spreads the
//! test's load evenly over the ready pods. What the test checks is the controller's side: the
//! exact requests it sends and the decisions it makes, tick by tick, without any wall-clock wait
//! (each tick is called directly with its virtual time).
//!
//! `cargo test -p wasmpod-controller --test stand_in_api_server -- --nocapture` prints the trace.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use wasmpod_autoscale::Settings;
use wasmpod_controller::{
    serve_metrics, Controller, ControllerConfig, PodPort, Tick, DEFAULT_MIN_SCALE, DEFAULT_SCRAPE_TIMEOUT,
};

const NAMESPACE: &str = "demo";
const DEPLOYMENT: &str = "superpod";
/// Each pod admits 8000 MB: the target is 5600 MB per pod.
const CAPACITY_MB: f64 = 8000.0;
/// Fake pods available to the stand-in (the most the step load needs is 6).
const POD_SLOTS: usize = 8;
/// How long a pod asked for by a scale patch takes to become ready (ticks of one second).
const START_TICKS: u64 = 2;

/// One request the controller sent to the stand-in API server.
#[derive(Debug, Clone)]
struct Sent {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: String,
}

/// The stand-in's whole world.
struct World {
    /// The Deployment's `spec.replicas`.
    replicas: u32,
    /// Pods ready now.
    ready: u32,
    /// When the last scale-up patch arrived (tick number), to make its pods ready later.
    starting_since: Option<u64>,
    tick: u64,
    /// The load over the whole service: declared MB and requests, running plus queued.
    demand_mb: f64,
    demand_requests: f64,
    sent: Vec<Sent>,
    /// Scrapes served per fake pod slot.
    scrapes: [u32; POD_SLOTS],
    /// Scrapes of the terminating pod (must stay 0).
    terminating_scrapes: u32,
    /// A pod slot whose `/metrics` answers 503.
    failing_slot: Option<usize>,
}

type Shared = Arc<Mutex<World>>;

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `answer` on a fresh 127.0.0.1 port.
async fn serve<F>(answer: F) -> SocketAddr
where
    F: Fn(Method, String, String, String, String) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let answer = answer.clone();
                    async move {
                        let method = request.method().clone();
                        let path = request.uri().path().to_owned();
                        let query = request.uri().query().unwrap_or("").to_owned();
                        let content_type = request
                            .headers()
                            .get(hyper::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let body = String::from_utf8(body.to_vec()).unwrap();
                        Ok::<_, Infallible>(answer(method, path, query, content_type, body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn json_response(status: StatusCode, value: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// One fake wasmpod pod: its share of the load, as wasmpod's `/metrics` gauges (running up to the
/// capacity, the rest queued).
async fn fake_pod(world: Shared, slot: Option<usize>) -> u16 {
    let address = serve(move |_, path, _, _, _| {
        assert_eq!(path, "/metrics");
        let mut world = lock(&world);
        let Some(slot) = slot else {
            world.terminating_scrapes += 1;
            return Response::new(Full::new(Bytes::from("wasmpod_inflight_memory_mb 999999\n")));
        };
        world.scrapes[slot] += 1;
        if world.failing_slot == Some(slot) {
            let mut response = Response::new(Full::new(Bytes::from_static(b"overloaded\n")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return response;
        }
        let share_mb = world.demand_mb / f64::from(world.ready.max(1));
        let share_requests = world.demand_requests / f64::from(world.ready.max(1));
        let inflight_mb = share_mb.min(CAPACITY_MB);
        let running = share_requests * inflight_mb / share_mb.max(1.0);
        let text = format!(
            "# TYPE wasmpod_inflight_memory_mb gauge\nwasmpod_inflight_memory_mb {inflight_mb}\n\
             wasmpod_queued_memory_mb {}\nwasmpod_capacity_memory_mb {CAPACITY_MB}\n\
             wasmpod_queue_depth_memory_mb 16000\nwasmpod_inflight_requests {running}\n\
             wasmpod_queued_requests {}\n",
            share_mb - inflight_mb,
            share_requests - running,
        );
        Response::new(Full::new(Bytes::from(text)))
    })
    .await;
    address.port()
}

fn labels() -> Value {
    json!({ "app": "superpod", "tier": "wasm" })
}

fn pod(name: &str, port: u16, ready: bool, terminating: bool) -> Value {
    let mut metadata = json!({ "name": name, "namespace": NAMESPACE, "labels": labels() });
    if terminating {
        metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    let status = if ready {
        json!({ "phase": "Running", "podIP": "127.0.0.1",
                "conditions": [{ "type": "Ready", "status": "True" }] })
    } else {
        json!({ "phase": "Pending", "podIP": "127.0.0.1",
                "conditions": [{ "type": "Ready", "status": "False" }] })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": { "containers": [{ "name": "wasmpod", "image": "wasmpod",
                                    "ports": [{ "name": "http", "containerPort": port }] }] },
        "status": status,
    })
}

/// The stand-in API server: the Deployment, its pods (ready ones, starting ones and one being
/// deleted), and the scale subresource.
async fn stand_in_api_server(world: Shared, ports: Vec<u16>, terminating_port: u16) -> SocketAddr {
    let deployment_path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}");
    let scale_path = format!("{deployment_path}/scale");
    let pods_path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    serve(move |method, path, query, content_type, body| {
        let mut world = lock(&world);
        world.sent.push(Sent {
            method: method.clone(),
            path: path.clone(),
            query,
            content_type,
            body: body.clone(),
        });
        match (method, path.as_str()) {
            (Method::GET, p) if p == deployment_path => json_response(
                StatusCode::OK,
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": { "name": DEPLOYMENT, "namespace": NAMESPACE,
                                  "annotations": { "autoscaling.knative.dev/target-burst-capacity": "211" } },
                    "spec": { "replicas": world.replicas,
                              "selector": { "matchLabels": labels() },
                              "template": { "metadata": { "labels": labels() } } },
                }),
            ),
            (Method::GET, p) if p == pods_path => {
                let mut items: Vec<Value> = (0..world.replicas.max(world.ready) as usize)
                    .map(|slot| {
                        pod(&format!("superpod-{slot}"), ports[slot], slot < world.ready as usize, false)
                    })
                    .collect();
                items.push(pod("superpod-old", terminating_port, true, true));
                json_response(
                    StatusCode::OK,
                    json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "1" },
                            "items": items }),
                )
            }
            (Method::PATCH, p) if p == scale_path => {
                let patch: Value = serde_json::from_str(&body).unwrap();
                let replicas = patch["spec"]["replicas"].as_u64().unwrap() as u32;
                if replicas > world.ready {
                    world.starting_since = Some(world.tick);
                } else {
                    world.ready = replicas;
                }
                world.replicas = replicas;
                json_response(
                    StatusCode::OK,
                    json!({ "apiVersion": "autoscaling/v1", "kind": "Scale",
                            "metadata": { "name": DEPLOYMENT, "namespace": NAMESPACE },
                            "spec": { "replicas": replicas }, "status": { "replicas": world.ready } }),
                )
            }
            _ => json_response(StatusCode::NOT_FOUND, json!({ "kind": "Status", "code": 404 })),
        }
    })
    .await
}

struct Setup {
    world: Shared,
    controller: Controller,
}

async fn setup(dry_run: bool) -> Setup {
    let world = Arc::new(Mutex::new(World {
        replicas: 2,
        ready: 2,
        starting_since: None,
        tick: 0,
        demand_mb: 4000.0,
        demand_requests: 40.0,
        sent: Vec::new(),
        scrapes: [0; POD_SLOTS],
        terminating_scrapes: 0,
        failing_slot: None,
    }));
    let mut ports = Vec::new();
    for slot in 0..POD_SLOTS {
        ports.push(fake_pod(world.clone(), Some(slot)).await);
    }
    let terminating_port = fake_pod(world.clone(), None).await;
    let api = stand_in_api_server(world.clone(), ports, terminating_port).await;
    let client = kube::Client::try_from(kube::Config::new(format!("http://{api}").parse().unwrap())).unwrap();
    let config = ControllerConfig {
        namespace: NAMESPACE.to_owned(),
        deployment: DEPLOYMENT.to_owned(),
        pod_port: PodPort::Name("http".to_owned()),
        // The capacity is read from the pods; the flags' placeholder is never used.
        settings: Settings { min_scale: DEFAULT_MIN_SCALE, ..Settings::with_capacity(1.0) },
        capacity_from_pods: true,
        dry_run,
        scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
    };
    Setup { world, controller: Controller::new(client, config).unwrap() }
}

/// Runs ticks `from..to` (one per virtual second) with `demand_mb` of load (100 MB per request).
async fn run(setup: &mut Setup, seconds: std::ops::Range<u64>, demand_mb: f64, trace: &mut Vec<Tick>) {
    for second in seconds {
        {
            let mut world = lock(&setup.world);
            world.tick = second;
            world.demand_mb = demand_mb;
            world.demand_requests = demand_mb / 100.0;
            if world.starting_since.is_some_and(|since| second >= since + START_TICKS) {
                world.ready = world.replicas;
                world.starting_since = None;
            }
        }
        let tick = setup.controller.tick(Duration::from_secs(second)).await.unwrap();
        if tick.decision.is_some() {
            println!("{tick}");
        }
        trace.push(tick);
    }
}

/// A step load: 4000 MB for 30 s, 30000 MB for 60 s, 4000 MB again. Two pods at the start.
///
/// Worked by hand (target 5600 MB per pod, decisions every even second):
/// - 0..30: `ceil(4000/5600)` = 1, but a controller that takes over 2 pods starts in panic and
///   keeps them: no patch.
/// - 32: panic window (3x4000 + 3x30000)/6 = 17000 MB -> 4 pods = 2 x 2 ready: panic; patch 4.
/// - 34: (4000 + 5x30000)/6 = 25667 -> 5; 36: 30000 -> 6. Patches 5 and 6.
/// - 94: the panic of 32 ends (94 > 32 + 60); stable (55x30000 + 5x4000)/60 = 27833 -> 5: patch 5.
/// - then the stable average falls by 26000/60 MB a second: 4 pods at 108, 3 at 120, 2 at 134,
///   1 at 146.
#[tokio::test]
async fn controller_against_a_stand_in_api_server_scales_up_on_a_step_load() {
    let mut setup = setup(false).await;
    let mut trace = Vec::new();
    run(&mut setup, 0..30, 4000.0, &mut trace).await;
    run(&mut setup, 30..90, 30000.0, &mut trace).await;
    run(&mut setup, 90..151, 4000.0, &mut trace).await;

    // The world's lock is held in this block only, never across an await.
    {
        let world = lock(&setup.world);
        let patches: Vec<(u64, String)> = trace
            .iter()
            .filter_map(|tick| {
                tick.scaled_to.map(|to| (tick.now.as_secs(), format!("{{\"spec\":{{\"replicas\":{to}}}}}")))
            })
            .collect();
        let expected: Vec<(u64, String)> =
            [(32, 4), (34, 5), (36, 6), (94, 5), (108, 4), (120, 3), (134, 2), (146, 1)]
                .into_iter()
                .map(|(second, replicas)| (second, format!("{{\"spec\":{{\"replicas\":{replicas}}}}}")))
                .collect();
        assert_eq!(patches, expected);

        // The exact requests: per tick one pod list, per deciding tick one Deployment read first, and a
        // scale patch after the list when the decision differs from spec.replicas.
        let deployment_path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}");
        let mut expected_requests = Vec::new();
        for tick in &trace {
            let deciding = tick.now.as_secs() % 2 == 0;
            if deciding {
                expected_requests.push((Method::GET, deployment_path.clone()));
            }
            expected_requests.push((Method::GET, format!("/api/v1/namespaces/{NAMESPACE}/pods")));
            if tick.scaled_to.is_some() {
                expected_requests.push((Method::PATCH, format!("{deployment_path}/scale")));
            }
        }
        let sent: Vec<(Method, String)> =
            world.sent.iter().map(|s| (s.method.clone(), s.path.clone())).collect();
        assert_eq!(sent, expected_requests);
        for list in world.sent.iter().filter(|s| s.path.ends_with("/pods")) {
            assert_eq!(
                list.query, "&labelSelector=app%3Dsuperpod%2Ctier%3Dwasm",
                "list pods by the Deployment's selector"
            );
        }
        let patches: Vec<&Sent> = world.sent.iter().filter(|s| s.method == Method::PATCH).collect();
        for (patch, (_, body)) in patches.iter().zip(&expected) {
            assert_eq!(patch.query, "&fieldManager=wasmpod-autoscale");
            assert_eq!(patch.content_type, "application/merge-patch+json");
            assert_eq!(&patch.body, body);
        }

        // Only ready pods were scraped: the terminating pod never, and each slot only while ready.
        assert_eq!(world.terminating_scrapes, 0);
        let scraped: u32 = world.scrapes.iter().sum();
        let ready: u32 = trace.iter().map(|tick| tick.ready_pods).sum();
        assert_eq!(scraped, ready);
        assert!(trace.iter().all(|tick| tick.scraped_pods == tick.ready_pods));
    }

    // The decisions behind the patches: the 2 pods held at the start (a controller that takes
    // over pods starts in panic), the panic of 32, its end at 94.
    let decision = |second: u64| trace[second as usize].decision.unwrap();
    assert_eq!((decision(0).desired, decision(0).rule), (2, wasmpod_autoscale::Rule::PanicHold));
    assert!(decision(32).panicking && decision(92).panicking && !decision(94).panicking);
    assert_eq!(decision(32).rule, wasmpod_autoscale::Rule::PanicWindow);
    assert_eq!(decision(32).panic_mb, 17000.0);

    // The controller's own /metrics, over HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_metrics(listener, setup.controller.metrics()));
    let text = get(address, "/metrics").await;
    let labels = "{namespace=\"demo\",deployment=\"superpod\"}";
    for line in [
        format!("wasmpod_autoscaler_desired_pods{labels} 1"),
        format!("wasmpod_autoscaler_ready_pods{labels} 1"),
        format!("wasmpod_autoscaler_observed_memory_mb{labels} 4000.0"),
        format!("wasmpod_autoscaler_target_memory_mb{labels} 5600.0"),
        format!("wasmpod_autoscaler_panic_mode{labels} 0"),
        format!("wasmpod_autoscaler_excess_burst_capacity_mb{labels} {}", 8000 - 211 - 4000),
        format!("wasmpod_autoscaler_scale_patches_total{labels} 8"),
        format!("wasmpod_autoscaler_scrape_errors_total{labels} 0"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(get(address, "/healthz").await, "ok\n");
}

/// `--dry-run`: the same step load decides the same scale-up, but nothing is patched.
#[tokio::test]
async fn dry_run_against_the_stand_in_decides_but_never_patches() {
    let mut setup = setup(true).await;
    let mut trace = Vec::new();
    run(&mut setup, 0..30, 4000.0, &mut trace).await;
    run(&mut setup, 30..40, 30000.0, &mut trace).await;
    let world = lock(&setup.world);
    assert!(world.sent.iter().all(|s| s.method == Method::GET), "a dry run only reads");
    assert_eq!(world.replicas, 2);
    // With the pods never added, the panic window asks for 6 pods = 3 x 2 ready by 36.
    let desired: BTreeMap<u64, u32> = trace
        .iter()
        .filter_map(|t| t.decision.map(|d| (t.now.as_secs(), d.desired)))
        .filter(|(s, _)| *s >= 30)
        .collect();
    assert_eq!(desired, BTreeMap::from([(30, 2), (32, 4), (34, 5), (36, 6), (38, 6)]));
    assert!(trace.iter().all(|t| t.scaled_to.is_none()));
}

async fn get(address: SocketAddr, path: &str) -> String {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request =
        Request::get(path).header("host", address.to_string()).body(Full::new(Bytes::new())).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// A pod whose `/metrics` fails is logged and counted, and the pods that answered stand for it
/// (their mean times the ready count), so one bad scrape does not look like a drop in load.
#[tokio::test]
async fn a_pod_that_does_not_answer_is_left_out_and_the_others_stand_for_it() {
    let mut setup = setup(false).await;
    let mut trace = Vec::new();
    run(&mut setup, 0..2, 4000.0, &mut trace).await;
    lock(&setup.world).failing_slot = Some(1);
    run(&mut setup, 2..4, 4000.0, &mut trace).await;
    let failing = &trace[2];
    assert_eq!((failing.ready_pods, failing.scraped_pods), (2, 1));
    assert_eq!(
        failing.sample.map(|s| s.memory_mb),
        Some(4000.0),
        "2000 MB of the pod that answered, times 2"
    );
    assert_eq!(failing.decision.map(|d| d.stable_mb), Some(4000.0));
    assert!(setup
        .controller
        .metrics()
        .encode()
        .lines()
        .any(|l| l.starts_with("wasmpod_autoscaler_scrape_errors_total{") && l.ends_with(" 2")));
}
