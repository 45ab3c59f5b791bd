//! `/metrics` end to end: real requests to real guests move each series the README lists, and the
//! values are the ones those requests cause (counts exactly; durations and memory bounded below by
//! what the guest did). The refusal and timeout counters are also checked where their flags are
//! (`flags.rs`, `admission.rs`).

mod support;

use support::{metric, module, start_with_config, wait_for_metric, write_config, Request, Server};
use wasmpod_guests as guests;

/// WAT guests that fail while being instantiated: an active data segment past the end of its
/// memory, and a start function that traps.
const BAD_SEGMENT: &str =
    r#"(module (memory (export "memory") 1) (data (i32.const 65535) "xy") (func (export "_start")))"#;
const TRAPPING_START: &str =
    r#"(module (memory (export "memory") 1) (func $s unreachable) (start $s) (func (export "_start")))"#;

/// The value of `series`, or a failure that shows the whole text.
fn value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test]
async fn gauges_follow_requests_running_and_queued() {
    let config = module("/sleep", guests::SLEEP, "") + &module("/hello", guests::HELLO, "");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config);
    let server = Server::start_in(
        dir.path(),
        &[
            "-c",
            path.to_str().unwrap(),
            "--concurrent-resource-request",
            "100",
            "--queue-depth-resource-units",
            "400",
        ],
    );
    let text = server.get("/metrics").await.text();
    for series in ["wasmpod_instances_in_use", "wasmpod_inflight_requests", "wasmpod_queued_requests"] {
        assert_eq!(value(&text, series), 0.0, "{series} when idle");
    }
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=4000").header("Memory-Request", "100"),
    ));
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 1.0).await;
    let queued: Vec<_> = [30, 50]
        .into_iter()
        .map(|mb| {
            let request = Request::get("/hello").header("Memory-Request", &mb.to_string());
            tokio::spawn(support::send(server.addr, request))
        })
        .collect();
    wait_for_metric(&server, "wasmpod_queued_requests", |v| v == 2.0).await;
    let text = server.get("/metrics").await.text();
    assert_eq!(value(&text, "wasmpod_queued_memory_mb"), 80.0, "{text}");
    assert_eq!(value(&text, "wasmpod_inflight_requests"), 1.0, "{text}");
    assert_eq!(value(&text, "wasmpod_inflight_memory_mb"), 100.0, "{text}");
    assert_eq!(value(&text, "wasmpod_instances_in_use"), 1.0, "the queued requests hold no instance: {text}");

    assert_eq!(holder.await.unwrap().status, 200);
    for request in queued {
        assert_eq!(request.await.unwrap().status, 200);
    }
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 0.0).await;
    let text = server.get("/metrics").await.text();
    assert_eq!(value(&text, "wasmpod_queued_requests"), 0.0, "{text}");
    assert_eq!(value(&text, "wasmpod_admitted_total"), 3.0, "{text}");
}

/// The histograms observe each request: the duration covers the guest's own sleep, the peak
/// memory covers what the guest allocated, and every request is counted once.
#[tokio::test]
async fn histograms_observe_real_durations_and_memory() {
    let config = module("/sleep", guests::SLEEP, "") + &module("/hog", guests::HOG, "");
    let (_dir, server) = start_with_config(&config);
    for _ in 0..2 {
        let r = server.get("/sleep?ms=300").await;
        assert_eq!(r.status, 200);
    }
    let r = server.send(Request::get("/hog?mb=40").header("Memory-Request", "64")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "allocated 40 MiB\n"));

    let text = server.get("/metrics").await.text();
    let sleep = "{function=\"/sleep\"}";
    assert_eq!(value(&text, &format!("wasmpod_request_duration_seconds_count{sleep}")), 2.0, "{text}");
    let total = value(&text, &format!("wasmpod_request_duration_seconds_sum{sleep}"));
    assert!(total >= 0.6, "two 300 ms sleeps took {total} s in all:\n{text}");
    // Every bucket below 300 ms is empty: each observation is at least the guest's own sleep.
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("wasmpod_request_duration_seconds_bucket{") && l.contains("function=\"/sleep\"")
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit(' ').next()?;
            Some((le.parse().ok()?, count.trim().parse().ok()?))
        })
        .collect();
    assert!(buckets.len() >= 10, "{text}");
    for (le, count) in buckets {
        let expected = if le < 0.3 {
            0.0
        } else if le.is_infinite() {
            2.0
        } else {
            count
        };
        assert_eq!(count, expected, "bucket le={le}:\n{text}");
    }
    assert_eq!(value(&text, &format!("wasmpod_instantiate_seconds_count{sleep}")), 2.0, "{text}");
    assert!(value(&text, &format!("wasmpod_instantiate_seconds_sum{sleep}")) > 0.0, "{text}");

    let hog = "{function=\"/hog\"}";
    assert_eq!(value(&text, &format!("wasmpod_memory_peak_bytes_count{hog}")), 1.0, "{text}");
    let peak = value(&text, &format!("wasmpod_memory_peak_bytes_sum{hog}"));
    assert!(
        (40.0 * 1048576.0..=64.0 * 1048576.0).contains(&peak),
        "peak {peak} for 40 MiB within a 64 MB grant:\n{text}"
    );
    assert_eq!(value(&text, "wasmpod_responses_total{function=\"/hog\",status=\"2xx\"}"), 1.0, "{text}");
}

/// Each `wasmpod_guest_errors_total` kind, caused by a real guest, counted once against its
/// function; the response status each kind answers with.
#[tokio::test]
async fn every_guest_error_kind_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad_segment.wat"), BAD_SEGMENT).unwrap();
    std::fs::write(dir.path().join("trapping_start.wat"), TRAPPING_START).unwrap();
    let wat = |name: &str| guests::wat(name).display().to_string();
    let config = [
        module("/trap", guests::TRAP, ""),
        module("/spin", guests::SPIN, "timeout = 1.0"),
        module("/hog", guests::HOG, ""),
        module("/exit", guests::EXIT, ""),
        module("/noheaders", &wat("no_headers.wat"), ""),
        module("/bad-segment", "bad_segment.wat", ""),
        module("/trapping-start", "trapping_start.wat", ""),
        module("/sleep", guests::SLEEP, ""),
    ]
    .concat();
    let path = write_config(dir.path(), &config);
    let server = Server::start_in(dir.path(), &["-c", path.to_str().unwrap(), "--max-instances", "1"]);
    let cases = [
        ("/trap", "/trap", "trap", 500),
        ("/spin", "/spin", "timeout", 504),
        ("/hog?mb=100", "/hog", "memory_limit", 500),
        ("/exit?code=3", "/exit", "exit", 500),
        ("/noheaders", "/noheaders", "bad_output", 500),
        ("/bad-segment", "/bad-segment", "instantiate", 500),
        ("/trapping-start", "/trapping-start", "instantiate", 500),
    ];
    for (path, _, kind, status) in cases {
        let r = server.send(Request::get(path).header("Memory-Request", "64")).await;
        assert_eq!(r.status, status, "{path} ({kind}): {}", r.text());
    }
    // The pool has one slot: a second request while a guest holds it.
    let holder = tokio::spawn(support::send(
        server.addr,
        Request::get("/sleep?ms=3000").header("Memory-Request", "10"),
    ));
    wait_for_metric(&server, "wasmpod_instances_in_use", |v| v == 1.0).await;
    assert_eq!(server.send(Request::get("/trap").header("Memory-Request", "10")).await.status, 503);
    assert_eq!(holder.await.unwrap().status, 200);

    let text = server.get("/metrics").await.text();
    let count = |function: &str, kind: &str| {
        metric(&text, &format!("wasmpod_guest_errors_total{{function=\"{function}\",kind=\"{kind}\"}}"))
    };
    for (path, function, kind, _) in cases {
        assert_eq!(count(function, kind), Some(1.0), "{path} counts as {kind}:\n{text}");
    }
    assert_eq!(count("/trap", "pool_exhausted"), Some(1.0), "{text}");
    assert_eq!(count("/trap", "trap"), Some(1.0), "the refused request did not run:\n{text}");
    assert_eq!(value(&text, "wasmpod_timeouts_total{stage=\"guest\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "wasmpod_responses_total{function=\"/trap\",status=\"5xx\"}"), 2.0, "{text}");
}

/// A function that failed to load answers 500 and counts as `unavailable`; the pod serves the
/// others and `/metrics` shows one failed function.
#[tokio::test]
async fn a_function_that_failed_to_load_counts_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    let server = Server::start_in(dir.path(), &["."]);
    assert_eq!(server.get("/broken").await.status, 500);
    assert_eq!(server.get("/hello").await.status, 200);
    let text = server.get("/metrics").await.text();
    assert_eq!(
        value(&text, "wasmpod_guest_errors_total{function=\"/broken/...\",kind=\"unavailable\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, "wasmpod_functions{state=\"failed\"}"), 1.0, "{text}");
    assert_eq!(value(&text, "wasmpod_functions{state=\"ready\"}"), 1.0, "{text}");
}

/// The pod's CPU gauge comes from the real sampler: while a guest spins, it shows a share of a
/// core (a spinning thread gets at least a quarter of one even on a loaded 2-core machine).
#[tokio::test]
async fn the_cpu_gauge_shows_a_spinning_guest() {
    let (_dir, server) = start_with_config(&module("/spin", guests::SPIN, "timeout = 20.0"));
    server.wait_for_log("sampling pod CPU use");
    let spin = tokio::spawn(support::send(server.addr, Request::get("/spin")));
    wait_for_metric(&server, "wasmpod_inflight_requests", |v| v == 1.0).await;
    wait_for_metric(&server, "wasmpod_cpu_utilization_cores", |v| v >= 0.25).await;
    assert_eq!(spin.await.unwrap().status, 504);
}
