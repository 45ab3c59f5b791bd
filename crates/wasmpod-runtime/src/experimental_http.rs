//! WAGI's outbound HTTP for core modules: the `wasi_experimental_http` host module (`req`,
//! `close`, `body_read`, `header_get`, `headers_get_all`), with the ABI and error numbers of
//! `wasi-experimental-http-wasmtime` 0.10, which WAGI linked, so modules built against it run
//! unchanged.
//!
//! Two things differ from WAGI, both on purpose:
//! - State lives in the request's store: each request has its own response table and its own
//!   `http_max_concurrency` budget. WAGI cached one table per module, shared by every concurrent
//!   request and leaking handles a guest forgot to close for the life of the process.
//! - The call is async and bounded: it never blocks a worker thread (WAGI blocked one per call),
//!   it must connect within [`OutboundLimits::connect_timeout`], receive its whole response
//!   within [`OutboundLimits::response_timeout`], both within what is left of the request's own
//!   time, and a response body is capped at [`MAX_RESPONSE_BYTES`].
//!
//! Allowed targets are the function's `allowed_hosts`, read as [`crate::AllowedHosts`] reads them
//! (WAGI's `https://host` entries match the host whatever the scheme and port, as in WAGI).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::{Caller, Extern, Linker, Memory};

use crate::outbound::{self, OutboundPolicy};
use crate::OutboundLimits;

/// The import module name.
pub(crate) const MODULE: &str = "wasi_experimental_http";

/// The largest response body a guest may receive (it is held by the host until read).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The error numbers guests see, as WAGI returned them (`http_error` in the witx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HttpError {
    InvalidHandle = 1,
    MemoryNotFound = 2,
    MemoryAccess = 3,
    BufferTooSmall = 4,
    HeaderNotFound = 5,
    Utf8 = 6,
    DestinationNotAllowed = 7,
    InvalidMethod = 8,
    InvalidEncoding = 9,
    InvalidUrl = 10,
    Request = 11,
    Runtime = 12,
    TooManySessions = 13,
}

/// One request's outbound state.
pub(crate) struct RequestHttp {
    function: Arc<str>,
    policy: Arc<OutboundPolicy>,
    /// At most this many responses open at once (`http_max_concurrency`).
    max_concurrency: Option<u32>,
    /// How long each call may take.
    limits: OutboundLimits,
    /// The incoming request's deadline: no outbound call outlives it.
    deadline: Instant,
    responses: HashMap<u32, Response>,
    next_handle: u32,
}

struct Response {
    headers: HeaderMap,
    body: Bytes,
}

impl RequestHttp {
    pub(crate) fn new(
        function: Arc<str>,
        policy: Arc<OutboundPolicy>,
        max_concurrency: Option<u32>,
        limits: OutboundLimits,
        deadline: Instant,
    ) -> RequestHttp {
        RequestHttp {
            function,
            policy,
            max_concurrency,
            limits,
            deadline,
            responses: HashMap::new(),
            next_handle: 0,
        }
    }
}

/// Store data that carries one request's outbound state: the core-module executor's, which
/// holds it only when the module imports `wasi_experimental_http`.
pub(crate) trait OutboundHost: Send + 'static {
    /// The request's outbound state, if the module can call out.
    fn outbound(&self) -> Option<&RequestHttp>;
    /// The same, to change.
    fn outbound_mut(&mut self) -> Option<&mut RequestHttp>;
}

/// Defines the five functions in the WAGI linker. Modules that do not import them pay nothing:
/// an `InstancePre` resolves only what a module imports.
pub(crate) fn add_to_linker<T: OutboundHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(MODULE, "close", |mut caller: Caller<'_, T>, handle: u32| -> u32 {
        let Some(http) = caller.data_mut().outbound_mut() else { return HttpError::Runtime as u32 };
        match http.responses.remove(&handle) {
            Some(_) => 0,
            None => HttpError::InvalidHandle as u32,
        }
    })?;
    linker.func_wrap(
        MODULE,
        "body_read",
        |mut caller: Caller<'_, T>, handle: u32, buf: u32, buf_len: u32, written: u32| -> u32 {
            code(body_read(&mut caller, handle, buf, buf_len, written))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "header_get",
        |mut caller: Caller<'_, T>,
         handle: u32,
         name: u32,
         name_len: u32,
         value: u32,
         value_len: u32,
         written: u32|
         -> u32 {
            code(header_get(&mut caller, handle, (name, name_len), (value, value_len), written))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "headers_get_all",
        |mut caller: Caller<'_, T>, handle: u32, buf: u32, buf_len: u32, written: u32| -> u32 {
            code(headers_get_all(&mut caller, handle, buf, buf_len, written))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "req",
        |mut caller: Caller<'_, T>,
         (url, url_len, method, method_len, headers, headers_len, body, body_len, status, handle): (
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
            u32,
        )| {
            Box::new(async move {
                let args = ReqArgs {
                    url: (url, url_len),
                    method: (method, method_len),
                    headers: (headers, headers_len),
                    body: (body, body_len),
                    status,
                    handle,
                };
                code(req(&mut caller, args).await)
            })
        },
    )?;
    Ok(())
}

fn code(result: Result<(), HttpError>) -> u32 {
    match result {
        Ok(()) => 0,
        Err(e) => e as u32,
    }
}

/// A guest buffer: offset and length in its memory.
type Buf = (u32, u32);

struct ReqArgs {
    url: Buf,
    method: Buf,
    headers: Buf,
    body: Buf,
    status: u32,
    handle: u32,
}

async fn req<T: OutboundHost>(caller: &mut Caller<'_, T>, args: ReqArgs) -> Result<(), HttpError> {
    let memory = memory(caller)?;
    let http = caller.data().outbound().ok_or(HttpError::Runtime)?;
    if let Some(max) = http.max_concurrency {
        if http.responses.len() >= max as usize {
            return Err(HttpError::TooManySessions);
        }
    }
    let (function, policy, limits, deadline) =
        (http.function.clone(), http.policy.clone(), http.limits, http.deadline);

    let url = read_str(caller, memory, args.url)?;
    let uri: Uri = url.parse().map_err(|_| HttpError::InvalidUrl)?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(HttpError::InvalidUrl);
    }
    if !policy.permits(&function, &uri) {
        return Err(HttpError::DestinationNotAllowed);
    }
    let method = Method::from_bytes(read_str(caller, memory, args.method)?.as_bytes())
        .map_err(|_| HttpError::InvalidMethod)?;
    let headers = parse_headers(&read_str(caller, memory, args.headers)?)?;
    let body = Bytes::from(read(caller, memory, args.body)?);

    tracing::debug!(%function, target = %url, %method, "outbound request");
    let (status, headers, body) =
        send(uri, method, headers, body, limits, deadline).await.inspect_err(|e| {
            tracing::warn!(%function, target = %url, "outbound request failed: {e}");
        })?;

    let http = caller.data_mut().outbound_mut().ok_or(HttpError::Runtime)?;
    let handle = free_handle(http)?;
    http.responses.insert(handle, Response { headers, body });
    let result = write(caller, memory, args.status, &status.to_le_bytes())
        .and_then(|()| write(caller, memory, args.handle, &handle.to_le_bytes()));
    if result.is_err() {
        // The guest never learns the handle: do not hold the response for it.
        if let Some(http) = caller.data_mut().outbound_mut() {
            http.responses.remove(&handle);
        }
    }
    result
}

/// The next handle not in use (WAGI's scheme: counting up from 0, skipping open ones).
fn free_handle(http: &mut RequestHttp) -> Result<u32, HttpError> {
    let start = http.next_handle;
    while http.responses.contains_key(&http.next_handle) {
        http.next_handle = http.next_handle.wrapping_add(1);
        if http.next_handle == start {
            return Err(HttpError::TooManySessions);
        }
    }
    let handle = http.next_handle;
    http.next_handle = http.next_handle.wrapping_add(1);
    Ok(handle)
}

/// Why an outbound call failed, for the log line (the guest only sees the number).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Http(wasmtime_wasi_http::Error),
    #[error("response body: {0}")]
    Body(String),
}

impl From<SendError> for HttpError {
    fn from(_: SendError) -> HttpError {
        HttpError::Request
    }
}

async fn send(
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    limits: OutboundLimits,
    deadline: Instant,
) -> Result<(u16, HeaderMap, Bytes), SendError> {
    let total = limits.response_within(deadline);
    let mut headers = headers;
    // HTTP/1.1 requires Host; the client sends the path only, so name the authority here (as
    // wasmtime does for components) unless the guest set one.
    if !headers.contains_key(http::header::HOST) {
        if let Some(host) = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(http::header::HOST, host);
        }
    }
    let body = Full::new(body)
        .map_err(|never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} });
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let exchange = async {
        let (response, connection) =
            outbound::send(request, None, limits, deadline).await.map_err(SendError::Http)?;
        // The connection must be driven while the body is read; it ends with the response.
        let connection = tokio::spawn(connection);
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await;
        connection.abort();
        let body = body.map_err(|e| SendError::Body(e.to_string()))?.to_bytes();
        Ok((parts.status.as_u16(), parts.headers, body))
    };
    tokio::time::timeout(total, exchange).await.map_err(|_| SendError::Timeout(total))?
}

/// WAGI's header encoding: one `name:value` per line.
fn parse_headers(text: &str) -> Result<HeaderMap, HttpError> {
    let mut headers = HeaderMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HttpError::InvalidEncoding)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HttpError::InvalidEncoding)?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| HttpError::InvalidEncoding)?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn format_headers(headers: &HeaderMap) -> Result<String, HttpError> {
    let mut text = String::new();
    for (name, value) in headers {
        let value = value.to_str().map_err(|_| HttpError::Runtime)?;
        text.push_str(name.as_str());
        text.push(':');
        text.push_str(value);
        text.push('\n');
    }
    Ok(text)
}

fn body_read<T: OutboundHost>(
    caller: &mut Caller<'_, T>,
    handle: u32,
    buf: u32,
    buf_len: u32,
    written: u32,
) -> Result<(), HttpError> {
    let memory = memory(caller)?;
    let http = caller.data_mut().outbound_mut().ok_or(HttpError::Runtime)?;
    let response = http.responses.get_mut(&handle).ok_or(HttpError::InvalidHandle)?;
    let n = response.body.len().min(buf_len as usize);
    let chunk = response.body.split_to(n);
    write_counted(caller, memory, buf, written, &chunk)
}

fn header_get<T: OutboundHost>(
    caller: &mut Caller<'_, T>,
    handle: u32,
    name: Buf,
    value: Buf,
    written: u32,
) -> Result<(), HttpError> {
    let memory = memory(caller)?;
    let name = read_str(caller, memory, name)?.to_ascii_lowercase();
    let http = caller.data().outbound().ok_or(HttpError::Runtime)?;
    let response = http.responses.get(&handle).ok_or(HttpError::InvalidHandle)?;
    let found = response.headers.get(name.as_str()).ok_or(HttpError::HeaderNotFound)?.as_bytes().to_vec();
    if found.len() > value.1 as usize {
        return Err(HttpError::BufferTooSmall);
    }
    write_counted(caller, memory, value.0, written, &found)
}

fn headers_get_all<T: OutboundHost>(
    caller: &mut Caller<'_, T>,
    handle: u32,
    buf: u32,
    buf_len: u32,
    written: u32,
) -> Result<(), HttpError> {
    let memory = memory(caller)?;
    let http = caller.data().outbound().ok_or(HttpError::Runtime)?;
    let response = http.responses.get(&handle).ok_or(HttpError::InvalidHandle)?;
    let text = format_headers(&response.headers)?;
    if text.len() > buf_len as usize {
        return Err(HttpError::BufferTooSmall);
    }
    write_counted(caller, memory, buf, written, text.as_bytes())
}

fn memory<T: OutboundHost>(caller: &mut Caller<'_, T>) -> Result<Memory, HttpError> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(HttpError::MemoryNotFound),
    }
}

fn read<T: OutboundHost>(
    caller: &Caller<'_, T>,
    memory: Memory,
    (offset, len): Buf,
) -> Result<Vec<u8>, HttpError> {
    let data = memory.data(caller);
    let end = (offset as usize).checked_add(len as usize).ok_or(HttpError::MemoryAccess)?;
    data.get(offset as usize..end).map(<[u8]>::to_vec).ok_or(HttpError::MemoryAccess)
}

fn read_str<T: OutboundHost>(caller: &Caller<'_, T>, memory: Memory, buf: Buf) -> Result<String, HttpError> {
    String::from_utf8(read(caller, memory, buf)?).map_err(|_| HttpError::Utf8)
}

/// Writes `bytes` at `offset` and their length at `written`: how every call hands data back.
fn write_counted<T: OutboundHost>(
    caller: &mut Caller<'_, T>,
    memory: Memory,
    offset: u32,
    written: u32,
    bytes: &[u8],
) -> Result<(), HttpError> {
    write(caller, memory, offset, bytes)?;
    write(caller, memory, written, &(bytes.len() as u32).to_le_bytes())
}

fn write<T: OutboundHost>(
    caller: &mut Caller<'_, T>,
    memory: Memory,
    offset: u32,
    bytes: &[u8],
) -> Result<(), HttpError> {
    memory.write(caller, offset as usize, bytes).map_err(|_| HttpError::MemoryAccess)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_wagis_encoding() {
        let headers = parse_headers("x-a:1\nX-B: two words \n\nx-a:3\n").unwrap();
        assert_eq!(headers.get_all("x-a").iter().count(), 2);
        assert_eq!(headers["x-b"], "two words");
        assert_eq!(format_headers(&headers).unwrap(), "x-a:1\nx-a:3\nx-b:two words\n");
    }

    #[test]
    fn malformed_header_lines_are_an_encoding_error() {
        assert_eq!(parse_headers("no colon here").unwrap_err(), HttpError::InvalidEncoding);
        assert_eq!(parse_headers("bad name:1").unwrap_err(), HttpError::InvalidEncoding);
        assert_eq!(parse_headers("x:\u{7f}").unwrap_err(), HttpError::InvalidEncoding);
    }

    #[test]
    fn handles_count_up_and_skip_open_ones() {
        let policy = Arc::new(OutboundPolicy::parse(&[], Arc::default()).unwrap());
        let mut http = RequestHttp::new("/f".into(), policy, None, OutboundLimits::default(), Instant::now());
        let response = || Response { headers: HeaderMap::new(), body: Bytes::new() };
        http.responses.insert(0, response());
        http.responses.insert(1, response());
        assert_eq!(free_handle(&mut http).unwrap(), 2);
        assert_eq!(free_handle(&mut http).unwrap(), 3);
    }

    #[test]
    fn error_numbers_are_wagis() {
        assert_eq!(HttpError::DestinationNotAllowed as u32, 7);
        assert_eq!(HttpError::InvalidUrl as u32, 10);
        assert_eq!(HttpError::TooManySessions as u32, 13);
    }
}
