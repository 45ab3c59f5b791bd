//! WAGI's outbound HTTP (`wasi_experimental_http`) end to end: a WAGI module built in this repo
//! (`guests/wagi/src/bin/outbound.rs`) calls an upstream server the test starts on 127.0.0.1,
//! through the allow-list, with WAGI's error numbers and a per-request handle table.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{metric, module, start_with_config, write_config};
use wasmpod_guests as guests;

/// An upstream answering `<method> <path> host=<header> x-from=<header> body=<body>` as `text/upstream`, with
/// an extra `x-upstream` header.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let header =
                    |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
                let text = format!(
                    "{} {} host={} x-from={} body={}",
                    parts.method,
                    parts.uri.path(),
                    header("host"),
                    header("x-from"),
                    String::from_utf8_lossy(&body)
                );
                let response = hyper::Response::builder()
                    .header("content-type", "text/upstream")
                    .header("x-upstream", "yes")
                    .body(Full::new(Bytes::from(text)))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_wagi_module_calls_an_allowed_host_and_reads_the_response() {
    let upstream = upstream().await;
    let allowed = format!("allowed_hosts = [\"http://{upstream}\"]");
    let (_dir, server) = start_with_config(&module("/out", guests::OUTBOUND, &allowed));

    let r = server.get(&format!("/out?url=http://{upstream}/data")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "status 200", "{text}");
    assert_eq!(lines[1], "content-type text/upstream", "{text}");
    // content-type, x-upstream, content-length, date: at least the first three.
    let headers: usize = lines[2].strip_prefix("headers ").unwrap().parse().unwrap();
    assert!(headers >= 3, "{text}");
    // Method, Host (which HTTP/1.1 servers require), request headers and body reach the
    // upstream; the body is read back in pieces.
    assert_eq!(lines[3], format!("POST /data host={upstream} x-from=outbound body=ping"), "{text}");
    // A closed handle is invalid (WAGI's error 1).
    assert_eq!(lines[4], "after close 1", "{text}");
}

#[tokio::test]
async fn a_host_not_allowed_gets_error_7_a_warning_and_a_metric() {
    let upstream = upstream().await;
    let config = [
        module("/closed", guests::OUTBOUND, ""),
        module("/other", guests::OUTBOUND, "allowed_hosts = [\"https://example.com\"]"),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);

    for route in ["/closed", "/other"] {
        let r = server.get(&format!("{route}?url=http://{upstream}/data")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "error 7\n"), "{route}");
    }
    support::assert_outbound_denied_logged(&server, "/closed", &upstream.to_string());

    let text = server.get("/metrics").await.text();
    assert_eq!(metric(&text, "wasmpod_outbound_denied_total{function=\"/closed\"}"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_outbound_denied_total{function=\"/other\"}"), Some(1.0), "{text}");
}

#[tokio::test]
async fn wagi_entries_match_the_host_whatever_the_scheme_and_port_and_allow_all_allows_all() {
    let upstream = upstream().await;
    let config = [
        // WAGI compared hosts only: an https entry without a port allows http on any port.
        module("/host", guests::OUTBOUND, "allowed_hosts = [\"https://127.0.0.1\"]"),
        module("/all", guests::OUTBOUND, "allowed_hosts = [\"insecure:allow-all\"]"),
    ]
    .concat();
    let (_dir, server) = start_with_config(&config);
    for route in ["/host", "/all"] {
        let r = server.get(&format!("{route}?url=http://{upstream}/x")).await;
        assert!(r.text().starts_with("status 200\n"), "{route}: {}", r.text());
    }
}

#[tokio::test]
async fn http_max_concurrency_bounds_open_responses_within_one_request_only() {
    let upstream = upstream().await;
    let extra = format!("allowed_hosts = [\"http://{upstream}\"]\nhttp_max_concurrency = 2");
    let (_dir, server) = start_with_config(&module("/out", guests::OUTBOUND, &extra));

    let url = format!("http://{upstream}/c");
    assert!(server.get(&format!("/out?url={url}&n=2")).await.text().starts_with("status 200\n"));
    // A third open response is WAGI's error 13.
    assert_eq!(server.get(&format!("/out?url={url}&n=3")).await.text(), "error 13\n");
    // Responses a request never closes die with it: the next request has its full budget
    // (WAGI shared one table per module, so leaked handles starved later requests).
    for _ in 0..3 {
        let r = server.get(&format!("/out?url={url}&n=2&leak=1")).await;
        assert!(r.text().starts_with("status 200\n"), "{}", r.text());
    }
}

#[tokio::test]
async fn bad_urls_and_unreachable_hosts_fail_inside_the_guest() {
    // A port nothing listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_dir, server) =
        start_with_config(&module("/out", guests::OUTBOUND, "allowed_hosts = [\"insecure:allow-all\"]"));

    assert_eq!(server.get("/out?url=not-a-url").await.text(), "error 10\n");
    assert_eq!(server.get(&format!("/out?url=http://{closed}/")).await.text(), "error 11\n");
    server.wait_for_log("outbound request failed");
    // The server is unharmed.
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[test]
fn a_malformed_allow_list_stops_the_load_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/out", guests::OUTBOUND, "allowed_hosts = [\"ftp://x\"]"));
    let output = support::run_wasmpod(
        dir.path(),
        &["serve", "-l", "127.0.0.1:0", "-c", config.to_str().unwrap()],
        b"",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("/out") && stderr.contains("ftp://x") && stderr.contains("scheme"), "{stderr}");
}
