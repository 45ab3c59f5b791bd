//! `wasi:http` components end to end: the same server, config and limits as WAGI modules, with
//! bodies streamed both ways and outbound HTTP denied unless `allowed_hosts` says otherwise.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{
    metric, module, run_wasmpod, start_with_config, wait_for_metric, write_config, Request, Server,
};
use wasmpod_guests as guests;

/// An upstream HTTP/1.1 server on 127.0.0.1 answering every request with `upstream <path>`.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                let body = format!("upstream {}", request.uri().path());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_component_answers_from_a_wildcard_route_with_the_full_path() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let r = server.get("/http/hello").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "hello from a component\n");
    // The compile line says what the bytes were.
    server.wait_for_log("\"component\"");

    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_responses_total{function=\"/http/...\",status=\"2xx\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "wasmpod_instantiate_seconds_count{function=\"/http/...\"}"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn method_path_query_and_headers_reach_the_component_and_its_headers_come_back() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let r =
        server.send(Request::post("/http/echo?a=1&b=two", "small body").header("x-test", "round trip")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-method"), Some("POST"));
    assert_eq!(r.header("x-path"), Some("/http/echo?a=1&b=two"));
    assert_eq!(r.header("x-echo-header"), Some("round trip"));
    assert_eq!(r.text(), "small body");
}

#[tokio::test]
async fn a_ten_megabyte_body_streams_through_byte_for_byte() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let body: Vec<u8> = (0..10 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let r = server.send(Request::post("/http/echo", body.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the echoed body differs");
}

#[tokio::test]
async fn outbound_http_reaches_allowed_hosts_only() {
    let upstream = upstream().await;
    let config = [
        module("/open/...", guests::HTTP_COMPONENT, &format!("allowed_hosts = [\"http://{upstream}\"]")),
        module("/closed/...", guests::HTTP_COMPONENT, ""),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);

    let r = server.get(&format!("/open/outbound?url=http://{upstream}/data")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "upstream /data"));

    let r = server.get(&format!("/closed/outbound?url=http://{upstream}/data")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    support::assert_outbound_denied_logged(&server, "/closed/...", &upstream.to_string());

    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_outbound_denied_total{function=\"/closed/...\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_outbound_denied_total{function=\"/open/...\"}"), None, "{text}");
}

#[tokio::test]
async fn a_component_is_held_to_its_memory_grant() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let r = server.send(Request::get("/http/hog?mb=8").header("Memory-Request", "32")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "allocated 8 MiB\n"));
    let r = server.send(Request::get("/http/hog?mb=64").header("Memory-Request", "32")).await;
    assert_eq!(r.status, 500);
    server.wait_for_log("memory limit");
}

#[tokio::test]
async fn a_spinning_component_is_stopped_at_its_routes_timeout() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, "timeout = 1.0"));
    let r = server.get("/http/spin").await;
    assert_eq!(r.status, 504);
    // The cause: the route's own 1 s limit (not the 30 s default), named in the log and counted.
    server.wait_for_log("time limit of 1s");
    let text = server.get("/metrics").await.text();
    assert_eq!(
        metric(&text, "wasmpod_guest_errors_total{function=\"/http/...\",kind=\"timeout\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "wasmpod_timeouts_total{stage=\"guest\"}"), Some(1.0), "{text}");
    // The server is fine afterwards.
    assert_eq!(server.get("/http/hello").await.status, 200);
}

#[tokio::test]
async fn a_component_in_a_served_folder_is_detected_from_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HTTP_COMPONENT, dir.path().join("comp.wasm")).unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("wagi.wasm")).unwrap();
    let server = Server::start_in(dir.path(), &["."]);
    assert_eq!(server.get("/comp/hello").await.text(), "hello from a component\n");
    assert_eq!(server.get("/wagi").await.text(), "hello world\n");
}

#[test]
fn wasmpod_run_serves_one_request_with_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_wasmpod(dir.path(), &["run", guests::HTTP_COMPONENT, "--path", "/hello"], b"");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\n"), "{stdout}");
    assert!(stdout.ends_with("\n\nhello from a component\n"), "{stdout}");

    let output = run_wasmpod(
        dir.path(),
        &["run", guests::HTTP_COMPONENT, "--path", "/echo?q=1", "--method", "PUT", "-H", "x-test: yes"],
        b"from stdin",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("x-method: PUT\n") && stdout.contains("x-path: /echo?q=1\n"), "{stdout}");
    assert!(stdout.contains("x-echo-header: yes\n") && stdout.ends_with("\n\nfrom stdin"), "{stdout}");
}

/// A request body the test writes chunk by chunk, ending when the sender is dropped.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|data| Ok(hyper::body::Frame::data(data))))
    }
}

/// The body really streams: the first bytes of the echoed response arrive while the request body
/// is still being sent (a server that buffered either body whole would never answer, and the
/// test would fail at its deadline).
#[tokio::test]
async fn the_response_streams_back_before_the_request_body_has_finished() {
    use http_body_util::BodyExt;
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let (body_tx, body) = tokio::sync::mpsc::channel(1);
    let body = ChannelBody(body);
    let request =
        hyper::Request::post("/http/echo").header("host", server.addr.to_string()).body(body).unwrap();
    let response = tokio::spawn(async move { sender.send_request(request).await });
    body_tx.send(Bytes::from_static(b"first chunk;")).await.unwrap();

    // Only a failing server makes this wait long: the deadline turns a hang into a failure.
    let deadline = std::time::Duration::from_secs(60);
    let first_bytes = async {
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut received = Vec::new();
        while received.len() < b"first chunk;".len() {
            let frame = body.frame().await.expect("the body ended early").expect("body error");
            received.extend_from_slice(&frame.into_data().unwrap_or_default());
        }
        (received, body)
    };
    let (received, body) = tokio::time::timeout(deadline, first_bytes)
        .await
        .expect("no response bytes while the request body was still open: the bodies do not stream");
    assert_eq!(received, b"first chunk;");

    body_tx.send(Bytes::from_static(b"second chunk")).await.unwrap();
    drop(body_tx);
    let rest = tokio::time::timeout(deadline, body.collect()).await.expect("the rest").unwrap().to_bytes();
    assert_eq!(&rest[..], b"second chunk");
}

/// A component that fails after its headers went out: the client gets a truncated response (an
/// error, not a clean end that would look complete), and the failure is logged and counted.
#[tokio::test]
async fn a_component_failing_after_its_headers_truncates_the_body_and_is_counted() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let result = support::try_send(server.addr, Request::get("/http/fail-after-headers")).await;
    let error = result.expect_err("a truncated body is an error for the client, not a clean end");
    // hyper aborts the connection: with the head already sent the body breaks (`body: `); when
    // the failure comes before hyper has written the head, the whole response does (`send: `).
    assert!(error.starts_with("body: ") || error.starts_with("send: "), "{error}");
    let log = server.wait_for_log("guest failed after responding");
    // The message carries the guest's backtrace over several lines; its fields follow it.
    let entry = &log[log.find("guest failed after responding").unwrap()..];
    assert!(entry.contains("function=/http/...") && entry.contains("kind=\"trap\""), "{entry}");
    wait_for_metric(&server, "wasmpod_guest_errors_total{function=\"/http/...\",kind=\"trap\"}", |n| {
        n == 1.0
    })
    .await;
    assert_eq!(server.get("/http/hello").await.status, 200, "the server goes on");
}

/// A component's stdout and stderr reach the server log, under its function's name.
#[tokio::test]
async fn component_stdout_and_stderr_reach_the_log() {
    let (_dir, server) = start_with_config(&module("/http/...", guests::HTTP_COMPONENT, ""));
    let r = server.get("/http/log").await;
    assert_eq!((r.status, r.text().as_str()), (200, "logged\n"));
    for needle in ["component stdout line", "component stderr line"] {
        let log = server.wait_for_log(needle);
        let line = log.lines().find(|l| l.contains(needle)).unwrap();
        assert!(line.contains("/http/..."), "{line}");
    }
}

/// One request's (server CPU time, wall time).
async fn component_cpu(
    server: &Server,
    path: &str,
    quota: Option<&str>,
) -> (std::time::Duration, std::time::Duration) {
    let mut request = Request::get(path);
    if let Some(q) = quota {
        request = request.header("cpu_quota", q);
    }
    let (cpu, wall) = (server.cpu_time(), std::time::Instant::now());
    let r = server.send(request).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (server.cpu_time() - cpu, wall.elapsed())
}

/// `cpu_quota` applies to `wasi:http` components as to WAGI modules (`cpu_quota.rs`): held to
/// 250 millicores, the request uses at most about a quarter of a core of the server's CPU time
/// over its wall time (other load can only lower that share).
#[tokio::test]
async fn a_quota_holds_a_component_to_its_share_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/http/...", wasmpod_guests::HTTP_COMPONENT, ""));
    let server = Server::start_in(dir.path(), &["-c", config.to_str().unwrap()]);
    let work = "/http/cpu?iters=150000000";
    component_cpu(&server, work, None).await; // warm up

    let (alone_cpu, _) = component_cpu(&server, work, None).await;
    let (held_cpu, held_wall) = component_cpu(&server, work, Some("250")).await;
    let share = held_cpu.as_secs_f64() / held_wall.as_secs_f64();
    eprintln!("component: alone {alone_cpu:?} CPU; at 250 millicores {held_cpu:?} CPU in {held_wall:?} ({share:.2} of a core)");
    let work_ratio = held_cpu.as_secs_f64() / alone_cpu.as_secs_f64();
    assert!((0.5..2.0).contains(&work_ratio), "the throttled run does the same work: x{work_ratio:.2}");
    assert!(share <= 0.35, "250 millicores used {share:.2} of a core");
}
