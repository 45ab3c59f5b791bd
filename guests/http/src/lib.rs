//! A `wasi:http/proxy` component for wasmpod's tests: one handler, endpoints chosen by the last
//! segment of the path (so it answers the same under `/...` or `/any/prefix/...`).
//!
//! - `hello`: 200 `text/plain`, `hello from a component\n`
//! - `echo`: streams the request body back; `x-method`, `x-path` (path and query) and
//!   `x-echo-header` (the request's `x-test`) in the response headers
//! - `outbound?url=http://host:port/path`: GETs the URL with `wasi:http/outgoing-handler`;
//!   200 with the upstream body, or 502 with the error code's debug text
//! - `hog?mb=N`: allocates and touches N MiB, then answers 200
//! - `spin`: loops forever
//! - `log`: prints a line to stdout and one to stderr, then answers 200 `logged\n`
//! - `fail-after-headers`: answers 200, writes and flushes `partial`, then traps, so the
//!   response ends early
//! - `cpu?iters=N`: N rounds of xorshift64 (default 50,000,000), then 200 `result=...`
//! - `stall`: answers 200, writes and flushes `partial`, then loops forever: the body never ends
//! - `socket?addr=A.B.C.D:PORT`: opens a TCP connection with `wasi:sockets`; 200 `connected`,
//!   or 403 with the error code's debug text

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = match path_with_query.split_once('?') {
            Some((path, query)) => (path, query),
            None => (path_with_query.as_str(), ""),
        };
        match path.rsplit('/').next().unwrap_or("") {
            "hello" => respond(out, 200, &[("content-type", b"text/plain")], b"hello from a component\n"),
            "echo" => echo(request, out, &path_with_query),
            "outbound" => outbound(out, param(query, "url").unwrap_or_default()),
            "hog" => hog(out, param(query, "mb").and_then(|mb| mb.parse().ok()).unwrap_or(1024)),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "log" => {
                println!("component stdout line");
                eprintln!("component stderr line");
                respond(out, 200, &[("content-type", b"text/plain")], b"logged\n");
            }
            "fail-after-headers" => fail_after_headers(out),
            "stall" => stall(out),
            "socket" => socket(out, &param(query, "addr").unwrap_or_default()),
            "cpu" => {
                let iters: u64 = param(query, "iters").and_then(|n| n.parse().ok()).unwrap_or(50_000_000);
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                for _ in 0..iters {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x = std::hint::black_box(x);
                }
                let body = format!("result={x}\n");
                respond(out, 200, &[("content-type", b"text/plain")], body.as_bytes());
            }
            _ => respond(out, 404, &[("content-type", b"text/plain")], b"no such endpoint\n"),
        }
    }
}

fn echo(request: IncomingRequest, out: ResponseOutparam, path_with_query: &str) {
    let method = method_name(&request.method());
    let echoed = request.headers().get("x-test").into_iter().next().unwrap_or_default();
    let headers: [(&str, &[u8]); 4] = [
        ("content-type", b"application/octet-stream"),
        ("x-method", method.as_bytes()),
        ("x-path", path_with_query.as_bytes()),
        ("x-echo-header", &echoed),
    ];
    let response = OutgoingResponse::new(fields(&headers));
    let response_body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));

    let request_body = request.consume().expect("request body");
    {
        let input = request_body.stream().expect("request body stream");
        let output = response_body.write().expect("response body stream");
        // Chunk by chunk: the body is never held whole in guest memory.
        loop {
            match input.blocking_read(64 << 10) {
                Ok(chunk) => write_all(&output, &chunk),
                Err(StreamError::Closed) => break,
                Err(e) => panic!("reading the request body: {e:?}"),
            }
        }
        output.blocking_flush().expect("flush");
    }
    IncomingBody::finish(request_body);
    OutgoingBody::finish(response_body, None).expect("finish response body");
}

/// Sends the headers and the start of the body, then fails: the client gets a truncated body.
fn fail_after_headers(out: ResponseOutparam) {
    let response = OutgoingResponse::new(fields(&[("content-type", b"text/plain")]));
    let response_body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));
    let output = response_body.write().expect("response body stream");
    write_all(&output, b"partial");
    output.blocking_flush().expect("flush");
    panic!("failing after the headers went out");
}

/// Sends the headers and the start of the body, then never finishes it.
fn stall(out: ResponseOutparam) {
    let response = OutgoingResponse::new(fields(&[("content-type", b"text/plain")]));
    let response_body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));
    let output = response_body.write().expect("response body stream");
    write_all(&output, b"partial");
    output.blocking_flush().expect("flush");
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Tries a TCP connection to `addr` (IPv4 `a.b.c.d:port`) through `wasi:sockets`.
fn socket(out: ResponseOutparam, addr: &str) {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let text = |out, status, body: String| respond(out, status, &[("content-type", b"text/plain")], body.as_bytes());
    let Ok(addr) = addr.parse::<std::net::SocketAddrV4>() else {
        return text(out, 400, format!("bad addr {addr:?}\n"));
    };
    let [a, b, c, d] = addr.ip().octets();
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: addr.port(), address: (a, b, c, d) });
    let network = wasi::sockets::instance_network::instance_network();
    let result = wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).and_then(|socket| {
        socket.start_connect(&network, address)?;
        socket.subscribe().block();
        socket.finish_connect().map(|_| ())
    });
    match result {
        Ok(()) => text(out, 200, "connected\n".to_owned()),
        Err(code) => text(out, 403, format!("{code:?}\n")),
    }
}

fn outbound(out: ResponseOutparam, url: String) {
    let text = |out, status, body: String| respond(out, status, &[("content-type", b"text/plain")], body.as_bytes());
    let Some((scheme, rest)) = url.split_once("://") else {
        return text(out, 400, format!("bad url {url:?}\n"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    request.set_scheme(Some(&scheme)).expect("scheme");
    request.set_authority(Some(authority)).expect("authority");
    request.set_path_with_query(Some(path)).expect("path");
    match send(request) {
        Ok(body) => respond(out, 200, &[("content-type", b"application/octet-stream")], &body),
        Err(code) => text(out, 502, format!("{code:?}\n")),
    }
}

fn send(request: OutgoingRequest) -> Result<Vec<u8>, ErrorCode> {
    let future = outgoing_handler::handle(request, None)?;
    let response = loop {
        match future.get() {
            Some(result) => break result.expect("response taken once")?,
            None => future.subscribe().block(),
        }
    };
    let body = response.consume().expect("upstream body");
    let mut bytes = Vec::new();
    {
        let input = body.stream().expect("upstream body stream");
        read_all(&input, &mut bytes);
    }
    IncomingBody::finish(body);
    Ok(bytes)
}

fn hog(out: ResponseOutparam, mb: usize) {
    let mut chunks = Vec::new();
    for i in 0..mb {
        // Filled, so every page is really used.
        chunks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
    }
    let total: usize = std::hint::black_box(&chunks).iter().map(|c| c.len()).sum();
    let body = format!("allocated {} MiB\n", total >> 20);
    respond(out, 200, &[("content-type", b"text/plain")], body.as_bytes());
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let response = OutgoingResponse::new(fields(headers));
    response.set_status_code(status).expect("status");
    let response_body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));
    {
        let output = response_body.write().expect("response body stream");
        write_all(&output, body);
        output.blocking_flush().expect("flush");
    }
    OutgoingBody::finish(response_body, None).expect("finish response body");
}

fn fields(headers: &[(&str, &[u8])]) -> Fields {
    let list: Vec<(String, Vec<u8>)> =
        headers.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect();
    Fields::from_list(&list).expect("valid headers")
}

/// Writes as fast as the host accepts, waiting whenever its buffer is full.
fn write_all(output: &OutputStream, mut data: &[u8]) {
    while !data.is_empty() {
        let permit = output.check_write().expect("check_write") as usize;
        if permit == 0 {
            output.subscribe().block();
            continue;
        }
        let n = permit.min(data.len());
        output.write(&data[..n]).expect("write");
        data = &data[n..];
    }
}

fn read_all(input: &InputStream, bytes: &mut Vec<u8>) {
    loop {
        match input.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return,
            Err(e) => panic!("reading a body: {e:?}"),
        }
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
    .to_owned()
}

/// The percent-decoded value of `name` in a query string.
fn param(query: &str, name: &str) -> Option<String> {
    let value = query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}
