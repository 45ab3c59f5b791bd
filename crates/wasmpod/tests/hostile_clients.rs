//! Hostile clients against the real server: slow heads and bodies, bodies larger than the limit or
//! than the memory grant they would be held under, oversized header blocks, connection floods,
//! clients that walk away mid-request, pipelining, HTTP/2 prior knowledge and request smuggling.
//! Each test starts the real binary and speaks raw bytes over TCP where a well-behaved client
//! library would refuse to misbehave.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{metric, module, start_with_config, wait_for_metric, write_config, Request, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmpod_guests as guests;

/// The longest any exchange below may take before the test fails: a bound for a hung test, far
/// above every timeout the servers are given (the loaded 2-core CI machine needs the slack).
const HUNG: Duration = Duration::from_secs(60);

/// A server with `/hello`, `/echo` and `/spin` (an infinite loop with a 60 s timeout), started
/// with `flags`.
fn start(flags: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = [
        module("/hello", guests::HELLO, ""),
        module("/echo", guests::ECHO, ""),
        module("/spin", guests::SPIN, "timeout = 60.0"),
    ]
    .concat();
    let config = write_config(dir.path(), &config);
    let mut args = vec!["-c", config.to_str().unwrap()];
    args.extend_from_slice(flags);
    let server = Server::start_in(dir.path(), &args);
    (dir, server)
}

/// Reads from `stream` until the server closes it (a reset counts as closed), and returns what
/// arrived. Fails the test if the server keeps it open past [`HUNG`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 << 10];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(HUNG, read).await.expect("the server closed the connection");
    received
}

/// Writes `bytes` on a fresh connection, then reads until the server closes it.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned()
}

/// The status codes of the responses in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ").filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok()).collect()
}

async fn metrics(server: &Server) -> String {
    server.get("/metrics").await.text()
}

/// The server's peak resident memory so far (`VmHWM`), in MB.
fn peak_rss_mb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[tokio::test]
async fn slowloris_half_a_header_block_is_disconnected_after_the_header_read_timeout() {
    let (_dir, server) = start(&["--header-read-timeout", "1"]);
    // Before a first request, and on a connection that already served one.
    let answered = exchange(server.addr, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    assert!(statuses(&answered).iter().all(|s| *s == 408), "no request was served: {answered:?}");

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert_eq!(statuses(&text).first(), Some(&200), "{text}");
    assert!(text.contains("hello world"), "{text}");

    wait_for_metric(&server, "wasmpod_timeouts_total{stage=\"header\"}", |n| n >= 2.0).await;
    assert_eq!(server.get("/hello").await.status, 200, "the server still answers");
}

#[tokio::test]
async fn a_slow_body_gets_408_after_the_body_read_timeout() {
    let (_dir, server) = start(&["--body-read-timeout", "1"]);
    let text =
        exchange(server.addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
    assert_eq!(statuses(&text), [408], "{text}");
    assert!(text.contains("--body-read-timeout"), "{text}");
    wait_for_metric(&server, "wasmpod_timeouts_total{stage=\"body\"}", |n| n == 1.0).await;
    assert_eq!(metric(&metrics(&server).await, "wasmpod_admitted_total"), Some(0.0), "the guest never ran");
    let r = server.send(Request::post("/echo", "whole")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "whole"));
}

#[tokio::test]
async fn a_body_over_max_body_size_gets_413_before_the_guest_runs() {
    let (_dir, server) = start(&["--max-body-size", "1"]);
    // Declared too large: refused before a byte of it is read.
    let text =
        exchange(server.addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n").await;
    assert_eq!(statuses(&text), [413], "{text}");
    assert!(text.contains("--max-body-size"), "{text}");

    // Chunked, with no length declared: refused once it passes the limit.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = [format!("{:x}\r\n", 64 << 10).into_bytes(), vec![b'a'; 64 << 10], b"\r\n".to_vec()].concat();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // Until the server closes the connection: 2 MB, then the end.
        for _ in 0..32 {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut received = Vec::new();
    let _ = tokio::time::timeout(HUNG, reader.read_to_end(&mut received)).await.expect("closed");
    writing.await.unwrap();
    let text = String::from_utf8_lossy(&received);
    assert_eq!(statuses(&text), [413], "{text}");

    let text = metrics(&server).await;
    assert_eq!(metric(&text, "wasmpod_admitted_total"), Some(0.0), "no guest ran:\n{text}");
    let r = server.send(Request::post("/echo", vec![b'b'; 1 << 20])).await;
    assert_eq!((r.status, r.body.len()), (200, 1 << 20), "a body of exactly the limit is taken");
}

#[tokio::test]
async fn a_buffered_body_counts_against_the_memory_grant_it_declares() {
    let (_dir, server) = start(&[]);
    let body = vec![b'x'; 3 << 20];
    // The server answers 413 as soon as the declared length passes the grant, before any guest,
    // and lingers on close (drains what the client is still sending), so a client still writing
    // its body reads the answer instead of a reset.
    let r = server.send(Request::post("/echo", body.clone()).header("Memory-Request", "1")).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("memory grant of 1 MB"), "{}", r.text());
    server.wait_for_log("request body larger than its memory grant of 1 MB");
    assert_eq!(metric(&metrics(&server).await, "wasmpod_admitted_total"), Some(0.0), "no guest ran");
    let r = server.send(Request::post("/echo", body.clone()).header("Memory-Request", "32")).await;
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the body the grant fits is echoed whole");

    // 300 MB streamed (no length declared) under a 1 MB declaration: cut off at the grant, so the
    // pod never holds the body.
    let before = peak_rss_mb(&server);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nMemory-Request: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let chunk =
            [format!("{:x}\r\n", 1 << 20).into_bytes(), vec![b'y'; 1 << 20], b"\r\n".to_vec()].concat();
        let mut sent = 0;
        for _ in 0..300 {
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut received = Vec::new();
    let _ = tokio::time::timeout(HUNG, reader.read_to_end(&mut received)).await.expect("closed");
    let sent_mb = writing.await.unwrap();
    assert!(sent_mb < 300, "the server stopped reading: {sent_mb} MB were taken");
    server.wait_for_log("request body larger than its memory grant of 1 MB");
    let peak = peak_rss_mb(&server);
    assert!(peak < before + 100, "peak RSS went from {before} MB to {peak} MB");
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_guest_prints_no_more_than_its_memory_grant() {
    let print = guests::wat("print_4mb.wat").display().to_string();
    let (_dir, server) = start_with_config(&module("/print", &print, ""));
    let r = server.send(Request::get("/print").header("Memory-Request", "2")).await;
    assert_eq!((r.status, r.body.len()), (500, 0), "4 MB of output under a 2 MB grant");
    let r = server.send(Request::get("/print").header("Memory-Request", "8")).await;
    assert_eq!((r.status, r.body.len()), (200, 4 << 20), "4 MB of output under an 8 MB grant");
    assert!(r.body.iter().all(|b| *b == b'a'));
}

/// `--max-response-size` caps what a guest may print below its grant: 4 MB of output fails at a
/// 1 MB cap even under a 64 MB grant (the guest's write fails; it traps on that), and passes at
/// the default cap.
#[tokio::test]
async fn max_response_size_caps_a_guests_output_below_its_grant() {
    let print = guests::wat("print_4mb.wat").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/print", &print, ""));
    let config = config.to_str().unwrap();
    let capped = Server::start_in(dir.path(), &["-c", config, "--max-response-size", "1"]);
    let r = capped.send(Request::get("/print").header("Memory-Request", "64")).await;
    assert_eq!((r.status, r.body.len()), (500, 0), "4 MB of output at a 1 MB cap");
    capped.wait_for_log("function=/print tenant=default request_id=1 status=500");
    assert_eq!(capped.get("/hello").await.status, 404, "the pod still answers");
    let default = Server::start_in(dir.path(), &["-c", config]);
    let r = default.send(Request::get("/print").header("Memory-Request", "64")).await;
    assert_eq!((r.status, r.body.len()), (200, 4 << 20), "4 MB of output at the default 64 MB cap");
}

#[tokio::test]
async fn a_header_block_over_the_limit_gets_431() {
    let (_dir, server) = start(&["--max-header-size", "8192"]);
    let request = |size: usize| {
        format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(size))
    };
    let text = exchange(server.addr, request(6000).as_bytes()).await;
    assert_eq!(statuses(&text), [200], "a head under the limit is served: {text}");
    let text = exchange(server.addr, request(10_000).as_bytes()).await;
    assert_eq!(statuses(&text), [431], "{text}");
    // Many small headers add up the same way.
    let many: String = (0..400).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(20))).collect();
    let text =
        exchange(server.addr, format!("GET /hello HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes()).await;
    assert_eq!(statuses(&text), [431], "{text}");
    assert_eq!(server.get("/hello").await.status, 200);
}

/// An HTTP/1.1 connection that has served one request and stays open (keep-alive).
async fn kept_alive(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(get_on(&mut sender, "/healthz").await.0, 200);
    sender
}

async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (u16, String) {
    let request = http::Request::get(path).header("host", "x").body(Empty::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_accept() {
    let (_dir, server) = start(&["--max-connections", "3"]);
    let first = kept_alive(server.addr).await;
    let _second = kept_alive(server.addr).await;
    let mut third = kept_alive(server.addr).await;

    // A fourth is closed as soon as it is accepted, without an answer.
    let text = exchange(server.addr, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(text, "", "the connection over the limit was served");
    let (status, text) = get_on(&mut third, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "wasmpod_connections_open"), Some(3.0), "{text}");
    assert!(metric(&text, "wasmpod_connections_refused_total").is_some_and(|n| n >= 1.0), "{text}");

    // One closes: its place is free again (once the server has seen it close).
    drop(first);
    loop {
        match support::try_send(server.addr, Request::get("/hello")).await {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(e) => assert!(e.starts_with("send") || e.starts_with("handshake"), "{e}"),
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn ten_thousand_idle_connections_neither_exhaust_descriptors_nor_stop_the_server() {
    let (_dir, server) = start(&["--header-read-timeout", "120"]);
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // All held (this scrape is one more), and the server still answers.
    wait_for_metric(&server, "wasmpod_connections_open", |n| n >= 10_001.0).await;
    assert_eq!(server.get("/hello").await.status, 200);
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "wasmpod_connections_refused_total"), Some(0.0), "{text}");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).unwrap().count();
    assert!(fds >= 10_000, "{fds} descriptors open");
    assert!(!server.log().contains("accept failed"), "{}", server.log());
    drop(idle);
    wait_for_metric(&server, "wasmpod_connections_open", |n| n <= 2.0).await;
}

#[tokio::test]
async fn a_client_that_goes_away_mid_request_stops_its_guest_and_releases_its_grant() {
    let (_dir, server) = start(&[]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /spin HTTP/1.1\r\nHost: x\r\nMemory-Request: 50\r\n\r\n").await.unwrap();
    wait_for_metric(&server, "wasmpod_inflight_memory_mb", |mb| mb == 50.0).await;
    assert_eq!(metric(&metrics(&server).await, "wasmpod_requests_cancelled_total"), Some(0.0));
    drop(stream);

    wait_for_metric(&server, "wasmpod_requests_cancelled_total", |n| n == 1.0).await;
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "wasmpod_inflight_memory_mb"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_inflight_requests"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "wasmpod_instances_in_use"), Some(0.0), "the instance was dropped:\n{text}");
    server.wait_for_log("client went away: guest stopped");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_dir, server) = start(&[]);
    let text = exchange(
        server.addr,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond\
          GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&text), [200, 200, 404], "{text}");
    let (hello, echo) = (text.find("hello world").unwrap(), text.find("second").unwrap());
    assert!(hello < echo, "{text}");
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let (_dir, server) = start(&[]);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for path in ["/hello", "/hello", "/nowhere"] {
        let mut sender = sender.clone();
        let uri = format!("http://{}{path}", server.addr);
        streams.push(tokio::spawn(async move {
            let request = http::Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
    }
    let mut answers = Vec::new();
    for stream in streams {
        answers.push(stream.await.unwrap());
    }
    assert_eq!(answers[0], (200, Bytes::from_static(b"hello world\n")));
    assert_eq!(answers[1].0, 200);
    assert_eq!(answers[2].0, 404);
}

#[tokio::test]
async fn request_smuggling_attempts_are_refused() {
    let (_dir, server) = start(&[]);
    let hello = "hello world";

    // Content-Length and Transfer-Encoding: the body is read as chunked and the connection is
    // closed after the answer (RFC 9112 6.3), so the request hidden after it is never served.
    for head in
        ["Content-Length: 4\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 4"]
    {
        let smuggled = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let text = exchange(server.addr, smuggled.as_bytes()).await;
        assert_eq!(statuses(&text).len(), 1, "{head:?}: {text}");
        assert!(!text.contains(hello), "{head:?}: the smuggled request was served: {text}");
    }

    // Framing the server cannot read one way only: 400, and nothing after it is served.
    for head in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: +5",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: chunked, gzip",
    ] {
        let request = format!("POST /echo HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\nhello0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        let text = exchange(server.addr, request.as_bytes()).await;
        assert_eq!(statuses(&text), [400], "{head:?}: {text}");
        assert!(!text.contains(hello), "{head:?}: {text}");
    }
    let text =
        exchange(server.addr, b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await;
    assert_eq!(statuses(&text), [400], "Transfer-Encoding in HTTP/1.0: {text}");

    // Two equal lengths say one thing: accepted (RFC 9110 8.6).
    let text = exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(text.ends_with("hello"), "{text}");
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn client_limits_are_set_by_environment_variables_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &module("/echo", guests::ECHO, ""));
    let server = Server::start_with(
        dir.path(),
        &["-c", config.to_str().unwrap()],
        &[("WASMPOD_MAX_BODY_SIZE", "1"), ("WASMPOD_MAX_HEADER_SIZE", "8192")],
    );
    let r = server.send(Request::post("/echo", vec![b'z'; 2 << 20])).await;
    assert_eq!(r.status, 413);
    let r = server.send(Request::get("/echo").header("x-big", &"a".repeat(10_000))).await;
    assert_eq!(r.status, 431);
}
