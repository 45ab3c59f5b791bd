//! `wasi:http` components end to end: the same server, config and limits as WAGI modules, with
//! bodies streamed both ways and outbound HTTP denied unless `allowed_hosts` says otherwise.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{metric, module, run_wasmpod, start_with_config, Request, Server};
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
    let started = std::time::Instant::now();
    let r = server.get("/http/spin").await;
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
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
