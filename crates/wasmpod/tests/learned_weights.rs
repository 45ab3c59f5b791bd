//! `--admission-weight learned` and the pod's real-memory budget, end to end: admission by what
//! a function really uses, and the safety net that makes overbooking cost one request, never the
//! pod.

mod support;

use support::{metric, module, wait_for_metric, write_config, Request, Server};
use wasmpod_guests as guests;

fn start(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = [module("/sleep", guests::SLEEP, ""), module("/hog", guests::HOG, "")].concat();
    let config = write_config(dir.path(), &config);
    let mut args = vec!["-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let server = Server::start_in(dir.path(), &args);
    (dir, server)
}

/// 20 quick requests that each declare 100 MB, then 6 slow ones at once on a 300 MB pod; returns
/// the pod's metrics once the slow ones have settled into `running` and `queued`.
async fn over_declaring_burst(server: &Server, running: f64, queued: f64) -> String {
    for _ in 0..20 {
        let r = server.send(Request::get("/sleep?ms=0").header("Memory-Request", "100")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                support::send(addr, Request::get("/sleep?ms=1500").header("Memory-Request", "100")).await
            })
        })
        .collect();
    wait_for_metric(server, "wasmpod_inflight_requests", |n| n == running).await;
    wait_for_metric(server, "wasmpod_queued_requests", |n| n == queued).await;
    let text = server.get("/metrics").await.text();
    for task in slow {
        let r = task.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    text
}

#[tokio::test]
async fn learned_weights_admit_by_what_a_function_really_uses() {
    let (_dir, server) = start(&["--concurrent-resource-request", "300", "--admission-weight", "learned"]);
    let text = over_declaring_burst(&server, 6.0, 0.0).await;
    // The sleep guest uses about 1-2 MB of the 100 it declares: all six run at once.
    let weight = metric(&text, "wasmpod_admission_weight_mb{function=\"/sleep\"}").expect(&text);
    assert!((1.0..=10.0).contains(&weight), "learned weight {weight} MB:\n{text}");
    // The memory gate is on (learned mode) and saw the running guests' real memory.
    assert!(metric(&text, "wasmpod_guest_memory_bytes").is_some_and(|b| b > 0.0), "{text}");
}

#[tokio::test]
async fn declared_weights_learn_without_using_it() {
    let (_dir, server) = start(&["--concurrent-resource-request", "300"]);
    // The default: 300 MB admits three of the six 100 MB declarations; three wait.
    let text = over_declaring_burst(&server, 3.0, 3.0).await;
    // What was learned is exported, to be watched before it is trusted.
    assert!(metric(&text, "wasmpod_admission_weight_mb{function=\"/sleep\"}").is_some(), "{text}");
}

#[tokio::test]
async fn a_growth_past_the_pods_memory_budget_fails_that_request_alone_with_503() {
    let (_dir, server) = start(&["--concurrent-resource-request", "1000", "--memory-budget", "40"]);
    // Within its own 100 MB grant, past the pod's 40 MB budget.
    let r = server.send(Request::get("/hog?mb=60").header("Memory-Request", "100")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let log = server.wait_for_log("memory pressure");
    assert!(log.contains("the pod's memory budget of 40 MB is in use"), "{log}");

    // The pod serves on, and the failed guest's memory went back.
    let r = server.send(Request::get("/hog?mb=10").header("Memory-Request", "100")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_memory_pressure_total"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "wasmpod_guest_errors_total{function=\"/hog\",kind=\"memory_pressure\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "wasmpod_memory_budget_bytes"), Some((40u64 << 20) as f64), "{text}");
    assert_eq!(metric(&text, "wasmpod_guest_memory_bytes"), Some(0.0), "{text}");
}
