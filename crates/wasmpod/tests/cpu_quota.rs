//! The `cpu_quota` header throttles one request like cgroup `cpu.max`, and only that request.
//!
//! Wall-clock ratios flake on a shared 2-core machine, so the quota is checked with the server's
//! own CPU time (`/proc/<pid>/stat`): a request held to 250 millicores may use at most about a
//! quarter of a core over its wall time, whatever else the machine runs. Load elsewhere can only
//! lower that share, never raise it, so the bound cannot flake upwards; an unthrottled request on
//! a quiet machine uses ~1.0 and fails it. Alone in its test binary so no other test adds CPU
//! time to the server it measures.

mod support;

use std::time::{Duration, Instant};

use support::{module, wait_for_metric, write_config, Request, Server};

const WORK: &str = "/cpu?iters=150000000";

/// The tests here take turns: each one's solo runs must not compete with the other's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One request's (CPU time, wall time), with nothing else in flight.
async fn measured(server: &Server, quota: Option<&str>) -> (Duration, Duration) {
    let mut request = Request::get(WORK);
    if let Some(q) = quota {
        request = request.header("cpu_quota", q);
    }
    let (cpu, wall) = (server.cpu_time(), Instant::now());
    let r = server.send(request).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (server.cpu_time() - cpu, wall.elapsed())
}

#[tokio::test]
async fn a_quota_of_250_millicores_holds_the_request_to_a_quarter_core() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/cpu", wasmpod_guests::CPU, ""));
    let server = Server::start_in(dir.path(), &["-c", config.to_str().unwrap()]);
    measured(&server, None).await; // warm up

    let (alone_cpu, alone_wall) = measured(&server, None).await;
    let (held_cpu, held_wall) = measured(&server, Some("250")).await;
    let share = held_cpu.as_secs_f64() / held_wall.as_secs_f64();
    eprintln!(
        "alone: {alone_cpu:?} CPU in {alone_wall:?}; at 250 millicores: {held_cpu:?} CPU in \
         {held_wall:?} ({share:.2} of a core)"
    );
    // The same work was done (CPU time within a factor of two of the solo run's)...
    let work = held_cpu.as_secs_f64() / alone_cpu.as_secs_f64();
    assert!((0.5..2.0).contains(&work), "the throttled run does the same work: x{work:.2}");
    // ...at no more than a quarter of a core, with room for the quota's slice granularity and the
    // server's own threads.
    assert!(share <= 0.35, "250 millicores used {share:.2} of a core");
}

#[tokio::test]
async fn an_unthrottled_neighbour_finishes_first() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/cpu", wasmpod_guests::CPU, ""));
    let server = Server::start_in(dir.path(), &["-c", config.to_str().unwrap()]);
    let (cpu, wall) = measured(&server, None).await; // warm up
    let solo_share = cpu.as_secs_f64() / wall.as_secs_f64();
    if solo_share < 0.6 {
        // Other load gives this server less than a core: an unthrottled request would then run
        // no faster than a quarter core, and the order proves nothing. The quota's own bound is
        // checked by the test above, which load cannot fool.
        eprintln!("skipped: the machine gave a solo request {solo_share:.2} of a core");
        return;
    }

    let addr = server.addr;
    let throttled = tokio::spawn(async move {
        let r = support::send(addr, Request::get(WORK).header("cpu_quota", "250")).await;
        assert_eq!(r.status, 200);
        Instant::now()
    });
    wait_for_metric(&server, "wasmpod_inflight_requests", |n| n == 1.0).await;
    let r = server.send(Request::get(WORK)).await;
    assert_eq!(r.status, 200);
    let neighbour_done = Instant::now();
    let throttled_done = throttled.await.unwrap();
    // The same work, started later: the neighbour has a whole core (the machine has two), the
    // throttled request a quarter of one, so the neighbour overtakes it.
    assert!(neighbour_done < throttled_done, "the quota slowed only its own request");
}
