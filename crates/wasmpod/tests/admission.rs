//! Resource-aware admission and per-request limits, end to end.

mod support;

use std::time::{Duration, Instant};

use support::{metric, module, wait_for_metric, write_config, Request, Server};
use wasmpod_guests as guests;

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = [
        module("/sleep", guests::SLEEP, ""),
        module("/hello", guests::HELLO, ""),
        module("/hog", guests::HOG, ""),
        module("/capped", guests::HOG, "max_memory = 32"),
    ]
    .concat();
    let config = write_config(dir.path(), &config);
    let mut args = vec!["-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start_in(dir.path(), &args);
    (dir, server)
}

/// 10 requests of 100 MB run in 1000 MB of capacity, 10 more queue (2000 MB of depth), and once
/// both are full every further request is refused at once: its 503 comes back while the first
/// ones still run.
#[tokio::test]
async fn breaker_runs_capacity_queues_depth_and_refuses_the_rest() {
    let (_dir, server) =
        start(&["--concurrent-resource-request", "1000", "--queue-depth-resource-units", "2000"]);
    let admitted: Vec<_> = (0..20)
        .map(|_| {
            let request = Request::get("/sleep?ms=3000").header("Memory-Request", "100");
            tokio::spawn(support::send(server.addr, request))
        })
        .collect();
    wait_for_metric(&server, "wasmpod_queued_requests", |n| n == 10.0).await;
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_inflight_requests"), Some(10.0), "{text}");
    let refused: Vec<_> = (0..20)
        .map(|_| {
            let request = Request::get("/sleep?ms=3000").header("Memory-Request", "100");
            tokio::spawn(support::send(server.addr, request))
        })
        .collect();
    for r in refused {
        let r = r.await.unwrap();
        assert_eq!(r.status, 503);
        let text = r.text();
        assert!(text.starts_with("pending request queue full: 100 MB requested, 2000 MB"), "{text}");
    }
    // Refused without waiting for any release: the first ten had not finished.
    assert!(admitted.iter().all(|a| !a.is_finished()), "a refusal waited for a running request to end");
    let mut intervals = Vec::new();
    for a in admitted {
        let r = a.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        let field = |name: &str| -> u64 {
            text.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap().trim().parse().unwrap()
        };
        intervals.push((field("start="), field("end=")));
    }
    let most_at_once = intervals
        .iter()
        .map(|&(t, _)| intervals.iter().filter(|&&(s, e)| s <= t && t < e).count())
        .max()
        .unwrap();
    assert!(most_at_once <= 10, "{most_at_once} ran at once with room for 10");
    assert!(most_at_once >= 8, "admission should fill its capacity, saw {most_at_once}");

    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_rejected_total{reason=\"queue_full\"}"), Some(20.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_admitted_total"), Some(20.0));
    assert_eq!(metric(&text, "wasmpod_responses_total{function=\"/sleep\",status=\"2xx\"}"), Some(20.0));
    assert_eq!(metric(&text, "wasmpod_inflight_memory_mb"), Some(0.0));
    assert_eq!(metric(&text, "wasmpod_capacity_memory_mb"), Some(1000.0));
    assert_eq!(metric(&text, "wasmpod_queue_depth_memory_mb"), Some(2000.0));
}

#[tokio::test]
async fn a_request_larger_than_capacity_is_refused_at_once() {
    let (_dir, server) =
        start(&["--concurrent-resource-request", "1000", "--queue-depth-resource-units", "2000"]);
    let r = server.send(Request::get("/hello").header("Memory-Request", "1500")).await;
    assert_eq!(r.status, 413);
    assert!(r.text().contains("exceeds capacity"), "{}", r.text());
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_rejected_total{reason=\"too_large\"}"), Some(1.0), "{text}");
    // An invalid header declares the default (200 MB), which fits; `flags.rs` shows it is the
    // default that is declared, at a capacity below it.
    let r = server.send(Request::get("/hello").header("Memory-Request", "not a number")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn memory_hog_fails_alone_at_its_grant() {
    let (_dir, server) = start(&[]);
    let hog =
        tokio::spawn(support::send(server.addr, Request::get("/hog?mb=100").header("Memory-Request", "64")));
    let mut neighbours = Vec::new();
    for _ in 0..10 {
        neighbours.push(tokio::spawn(support::send(
            server.addr,
            Request::get("/hello").header("Memory-Request", "64"),
        )));
    }
    assert_eq!(hog.await.unwrap().status, 500);
    for n in neighbours {
        assert_eq!(n.await.unwrap().status, 200);
    }
    server.wait_for_log("memory limit of 64 MB exceeded");

    let r = server.send(Request::get("/hog?mb=40").header("Memory-Request", "64")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "allocated 40 MiB\n"), "within the grant it runs");
    let r = server.send(Request::get("/capped?mb=40").header("Memory-Request", "64")).await;
    assert_eq!(r.status, 500, "the function's max_memory caps the grant");
    server.wait_for_log("memory limit of 32 MB exceeded");
    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_guest_errors_total{function=\"/hog\",kind=\"memory_limit\"}"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn queued_requests_time_out_with_503() {
    let (_dir, server) = start(&[
        "--concurrent-resource-request",
        "100",
        "--queue-depth-resource-units",
        "1000",
        "--queue-timeout",
        "0.3",
    ]);
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=3000").header("Memory-Request", "100"),
    ));
    wait_for_metric(&server, "wasmpod_inflight_memory_mb", |v| v == 100.0).await;
    let started = Instant::now();
    let r = server.send(Request::get("/hello").header("Memory-Request", "100")).await;
    assert_eq!(r.status, 503);
    assert!(r.text().starts_with("queue timeout: waited "), "{}", r.text());
    // A lower bound only (a loaded machine makes it later, never earlier).
    assert!(started.elapsed() >= Duration::from_millis(290), "{:?}", started.elapsed());
    assert!(!holder.is_finished(), "it gave up while the holder still ran");
    assert_eq!(holder.await.unwrap().status, 200);
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_timeouts_total{stage=\"queue\"}"), Some(1.0), "{text}");
}

#[tokio::test]
async fn a_client_that_leaves_the_queue_returns_its_units() {
    let (_dir, server) =
        start(&["--concurrent-resource-request", "100", "--queue-depth-resource-units", "1000"]);
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=4000").header("Memory-Request", "100"),
    ));
    wait_for_metric(&server, "wasmpod_inflight_memory_mb", |v| v == 100.0).await;
    let leaver =
        tokio::spawn(support::send(server.addr, Request::get("/hello").header("Memory-Request", "50")));
    wait_for_metric(&server, "wasmpod_queued_memory_mb", |v| v == 50.0).await;
    leaver.abort();
    let _ = leaver.await;
    wait_for_metric(&server, "wasmpod_queued_memory_mb", |v| v == 0.0).await;
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_inflight_memory_mb"), Some(100.0), "the holder still runs");
    assert_eq!(metric(&text, "wasmpod_queued_requests"), Some(0.0), "{text}");
    assert_eq!(holder.await.unwrap().status, 200);
}

#[tokio::test]
async fn probes_and_metrics_bypass_admission() {
    let (_dir, server) =
        start(&["--concurrent-resource-request", "100", "--queue-depth-resource-units", "100"]);
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=3000").header("Memory-Request", "100"),
    ));
    wait_for_metric(&server, "wasmpod_inflight_memory_mb", |v| v == 100.0).await;
    let r = server.send(Request::get("/hello").header("Memory-Request", "1")).await;
    assert_eq!(r.status, 503, "running + queued would pass the depth");
    assert_eq!(
        r.text(),
        "pending request queue full: 1 MB requested, 100 MB running or queued, queue depth 100 MB\n"
    );
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert_eq!(metric(&r.text(), "wasmpod_inflight_requests"), Some(1.0));
    assert_eq!(holder.await.unwrap().status, 200);
}

#[tokio::test]
async fn an_exhausted_instance_pool_answers_503_and_recovers() {
    let (_dir, server) = start(&["--max-instances", "1"]);
    server.wait_for_log("admission fills the pool before the capacity only with requests under");
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=3000").header("Memory-Request", "10"),
    ));
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 1.0).await;
    let r = server.send(Request::get("/hello").header("Memory-Request", "10")).await;
    assert_eq!(r.status, 503);
    server.wait_for_log("pool exhausted");
    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_guest_errors_total{function=\"/hello\",kind=\"pool_exhausted\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(holder.await.unwrap().status, 200);
    assert_eq!(server.get("/hello").await.status, 200, "the slot came back");
}
