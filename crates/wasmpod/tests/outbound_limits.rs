//! The limits of outbound HTTP end to end (README, "Outbound HTTP"): the connect limit
//! (`--outbound-connect-timeout`), the response limit (`--outbound-response-timeout`), their cap
//! at the incoming request's own `--timeout`, and the 64 MiB cap on a WAGI module's response
//! body. Each test starts the real server with short limits and real guests (the WAGI module
//! `guests/wagi/src/bin/outbound.rs` and the `wasi:http` component `guests/http`) that call a real
//! TCP server this test runs on 127.0.0.1. The tests assert the cause (the guest's error, the
//! log line, the metric, what the upstream saw); the hang guard around each request only catches
//! a server that never answers.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{metric, module, Request, Response, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wasmpod_guests as guests;

/// Longer than any limit these tests set (only a server that never answers reaches it).
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The WAGI module at `/wagi` and the component at `/http/...`, both allowed to call anything,
/// served with `args`.
fn serve(args: &[&str]) -> (tempfile::TempDir, Server) {
    let allow = "allowed_hosts = [\"insecure:allow-all\"]";
    let config =
        [module("/wagi", guests::OUTBOUND, allow), module("/http/...", guests::HTTP_COMPONENT, allow)]
            .concat();
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_config(dir.path(), &config);
    let mut full = vec!["--config", path.to_str().unwrap()];
    full.extend_from_slice(args);
    let server = Server::start_in(dir.path(), &full);
    (dir, server)
}

/// The WAGI guest's and the component's answers for a call to `upstream`.
async fn call_both(server: &Server, upstream: SocketAddr) -> (Response, Response) {
    let send = |path: String| async move {
        tokio::time::timeout(HANG_GUARD, server.send(Request::get(&path))).await.expect("the server answers")
    };
    let wagi = send(format!("/wagi?url=http://{upstream}/slow")).await;
    let component = send(format!("/http/outbound?url=http://{upstream}/slow")).await;
    (wagi, component)
}

/// The accept queue length of the socket listening on `port` (`rx_queue` of its `LISTEN` line in
/// `/proc/net/tcp`: for a listening socket Linux shows the connections waiting to be accepted).
fn accept_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
        let listening = fields[3] == "0A";
        (listening && local_port == port)
            .then(|| u64::from_str_radix(fields[4].split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// A listener whose connect hangs: it never accepts, and its accept queue (backlog 0: room for
/// one) is already full with a connection of ours. Linux then drops a new SYN without answering
/// (with `net.ipv4.tcp_abort_on_overflow` at its default 0), so the client's connect waits and
/// retransmits until it gives up. Returned with what must stay open for that.
async fn full_backlog() -> (SocketAddr, tokio::net::TcpListener, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(0).unwrap();
    let filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The handshake completes in the kernel; wait until the queue shows the connection.
    while accept_queue(addr.port()) != Some(1) {
        tokio::task::yield_now().await;
    }
    (addr, listener, filler)
}

/// A server that accepts, reads the request and never answers. Each event on the channel is
/// `accepted` or `closed` (the client went away).
async fn silent_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<&'static str>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (events, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let events = events.clone();
            let _ = events.send("accepted");
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = events.send("closed");
            });
        }
    });
    (addr, received)
}

/// Waits for the next event of a [`silent_upstream`].
async fn next(events: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    tokio::time::timeout(HANG_GUARD, events.recv()).await.expect("an upstream event").expect("upstream")
}

/// Requests that ended at their own timeout (the series appears with the first one).
fn guest_timeouts(metrics: &str) -> f64 {
    metric(metrics, "wasmpod_timeouts_total{stage=\"guest\"}").unwrap_or(0.0)
}

/// The WAGI guest got WAGI's error 11 (the request failed), and the server logged why.
fn assert_wagi_call_failed(server: &Server, r: &Response, upstream: SocketAddr, why: &[&str]) {
    assert_eq!((r.status, r.text().as_str()), (200, "error 11\n"), "{}", server.log());
    let log = server.wait_for_log("outbound request failed");
    let line = log.lines().find(|l| l.contains("outbound request failed")).unwrap();
    assert!(
        line.contains("/wagi")
            && line.contains(&upstream.to_string())
            && why.iter().any(|w| line.contains(w)),
        "expected one of {why:?}: {line}"
    );
}

/// (a) The connect limit. The upstream's connect hangs (see [`full_backlog`]); with
/// `--outbound-connect-timeout 0.5` the call fails in the guest, well inside the request's 4 s
/// (below the 5 s default, so the flag, not the default, is what fired): the WAGI module gets
/// error 11, the component `ErrorCode::ConnectionTimeout` (it answers 502 with the code), and
/// the request is not a timeout.
#[tokio::test]
async fn a_connect_that_hangs_fails_at_the_connect_limit() {
    let (upstream, _listener, _filler) = full_backlog().await;
    let (_dir, server) = serve(&["--timeout", "4", "--outbound-connect-timeout", "0.5"]);
    let (wagi, component) = call_both(&server, upstream).await;
    assert_wagi_call_failed(&server, &wagi, upstream, &["connection timeout"]);
    assert_eq!((component.status, component.text().as_str()), (502, "ErrorCode::ConnectionTimeout\n"));
    let text = server.get("/metrics").await.text();
    assert_eq!(guest_timeouts(&text), 0.0, "{text}");
}

/// (b) The response limit. The upstream accepts and never answers; with
/// `--outbound-response-timeout 1` (and a request timeout of 20 s, under the 30 s default) the
/// call fails in the guest: WAGI's error 11, the component's `ErrorCode::ConnectionReadTimeout`.
/// The upstream sees each connection accepted and then closed: nothing is left open.
#[tokio::test]
async fn an_upstream_that_never_answers_fails_at_the_response_limit() {
    let (upstream, mut events) = silent_upstream().await;
    let (_dir, server) = serve(&["--timeout", "20", "--outbound-response-timeout", "1"]);
    let (wagi, component) = call_both(&server, upstream).await;
    assert_wagi_call_failed(&server, &wagi, upstream, &["timed out after 1s", "connection read timeout"]);
    assert_eq!((component.status, component.text().as_str()), (502, "ErrorCode::ConnectionReadTimeout\n"));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut events).await);
    }
    seen.sort_unstable();
    assert_eq!(seen, ["accepted", "accepted", "closed", "closed"]);
    let text = server.get("/metrics").await.text();
    assert_eq!(guest_timeouts(&text), 0.0, "{text}");
}

/// (c) The cap at the request's own time. The response limit is an hour, the request's
/// `--timeout` 2 s, and the upstream never answers: the request ends at its own timeout, and the
/// outbound connection is closed with it. At that instant two timers are due, the request's and
/// the call's (capped at the same deadline), so the request answers in one of two ways, each
/// checked for its cause: 504 counted as a guest timeout, or the guest's own error for its
/// failed call (error 11 / `ConnectionReadTimeout`).
#[tokio::test]
async fn an_outbound_call_never_outlives_the_request() {
    let (upstream, mut events) = silent_upstream().await;
    let (_dir, server) = serve(&["--timeout", "2", "--outbound-response-timeout", "3600"]);
    let (wagi, component) = call_both(&server, upstream).await;
    let mut timeouts = 0.0;
    for (r, guest_error) in [(&wagi, "error 11\n"), (&component, "ErrorCode::ConnectionReadTimeout\n")] {
        match r.status {
            504 => timeouts += 1.0,
            200 | 502 => assert_eq!(r.text(), guest_error),
            other => panic!("{other}: {}", r.text()),
        }
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut events).await);
    }
    seen.sort_unstable();
    assert_eq!(seen, ["accepted", "accepted", "closed", "closed"], "{}", server.log());
    let text = server.get("/metrics").await.text();
    assert_eq!(guest_timeouts(&text), timeouts, "{text}");
}

/// An upstream answering 200 with a body of `len` bytes, streamed in 1 MiB writes. Returns how
/// many bytes it managed to write before the client closed the connection, once it stops.
async fn flood_upstream(len: u64) -> (SocketAddr, tokio::sync::oneshot::Receiver<u64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done, written) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before its request head");
            head.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 1 << 20];
        let sent = Arc::new(AtomicU64::new(0));
        while sent.load(Ordering::Relaxed) < len {
            let n = (len - sent.load(Ordering::Relaxed)).min(chunk.len() as u64) as usize;
            if stream.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = done.send(sent.load(Ordering::Relaxed));
    });
    (addr, written)
}

/// (d) The 64 MiB cap on a WAGI module's response body: an upstream that sends 80 MiB gets its
/// connection closed once the host has read past 64 MiB, the guest gets error 11 instead of the
/// body, and the log says why.
#[tokio::test]
async fn a_wagi_response_body_past_64_mib_fails_the_call() {
    assert_eq!(wasmpod_runtime::MAX_RESPONSE_BYTES, 64 << 20);
    let len = 80u64 << 20;
    let (upstream, written) = flood_upstream(len).await;
    let (_dir, server) = serve(&[]);
    let r = tokio::time::timeout(HANG_GUARD, server.get(&format!("/wagi?url=http://{upstream}/big")))
        .await
        .expect("the server answers");
    assert_wagi_call_failed(&server, &r, upstream, &["response body: length limit exceeded"]);
    let written = tokio::time::timeout(HANG_GUARD, written).await.unwrap().unwrap();
    assert!(written < len, "the upstream sent its whole body ({written} bytes)");
}
