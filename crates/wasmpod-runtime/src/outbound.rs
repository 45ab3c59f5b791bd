//! Outbound HTTP, whichever way a guest calls out (components through `wasi:http`, WAGI modules
//! through `wasi_experimental_http`): the function's allow-list with its refusal count, and the
//! bounded send.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use wasmtime_wasi_http::RequestOptions;

use crate::AllowedHosts;

/// How long an outbound request may take to connect unless the server says otherwise
/// (`--outbound-connect-timeout`; less if the request has less time left).
pub const DEFAULT_OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an outbound request may take until its response arrives unless the server says
/// otherwise (`--outbound-response-timeout`; less if the request has less time left). A
/// component's response headers must arrive within it and its body within the request's own
/// time; a WAGI module's whole response must arrive within it.
pub const DEFAULT_OUTBOUND_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a guest's outbound HTTP call may take, whichever way it calls out. Part of
/// [`RequestLimits`](crate::RequestLimits): the server sets it once from its flags, and the
/// request's own deadline caps both (an outbound call never outlives the incoming request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    /// Longest time to open the connection.
    pub connect_timeout: Duration,
    /// Longest time from sending the request to its response (see
    /// [`DEFAULT_OUTBOUND_RESPONSE_TIMEOUT`] for what "response" covers per guest kind).
    pub response_timeout: Duration,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            connect_timeout: DEFAULT_OUTBOUND_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_OUTBOUND_RESPONSE_TIMEOUT,
        }
    }
}

impl OutboundLimits {
    /// The response limit of a call made now, capped at what is left until `deadline`.
    pub(crate) fn response_within(&self, deadline: Instant) -> Duration {
        self.response_timeout.min(deadline.saturating_duration_since(Instant::now()))
    }
}

/// A function's outbound rules and what they refused: one per function, built at load and shared
/// by its requests.
#[derive(Debug)]
pub(crate) struct OutboundPolicy {
    allowed_hosts: AllowedHosts,
    /// The function's refusal count, shared by its versions (a reload does not restart it).
    denied: Arc<AtomicU64>,
}

impl OutboundPolicy {
    /// Parses `allowed_hosts`, or says which entry is malformed and why.
    pub(crate) fn parse(allowed_hosts: &[String], denied: Arc<AtomicU64>) -> Result<OutboundPolicy, String> {
        Ok(OutboundPolicy { allowed_hosts: AllowedHosts::parse(allowed_hosts)?, denied })
    }

    /// Whether `function` may call `target`; a refusal is counted and logged.
    pub(crate) fn permits(&self, function: &str, target: &Uri) -> bool {
        if self.allowed_hosts.allows(target) {
            return true;
        }
        self.denied.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%function, %target, "outbound request denied: not in allowed_hosts");
        false
    }
}

/// Sends `request` with wasmtime's client: connecting within `limits.connect_timeout`, the
/// response headers within `limits.response_timeout`, both never past `deadline` (the incoming
/// request's); the guest's own `asked` options may only tighten them. Returns the response and
/// the connection's future, which must be driven while the body is read.
pub(crate) async fn send<B>(
    request: http::Request<B>,
    asked: Option<RequestOptions>,
    limits: OutboundLimits,
    deadline: Instant,
) -> wasmtime_wasi_http::Result<(
    http::Response<impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + use<B>>,
    impl Future<Output = wasmtime_wasi_http::Result<()>> + Send + use<B>,
)>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
{
    let left = deadline.saturating_duration_since(Instant::now());
    let total = limits.response_within(deadline);
    let cap = |asked: Option<Duration>, most: Duration| Some(asked.map_or(most, |a| a.min(most)));
    let asked = asked.unwrap_or_default();
    let options = RequestOptions {
        connect_timeout: cap(asked.connect_timeout, limits.connect_timeout.min(total)),
        first_byte_timeout: cap(asked.first_byte_timeout, total),
        between_bytes_timeout: cap(asked.between_bytes_timeout, left),
    };
    // The client's own timers bound each step (connect, handshake, first byte); this one bounds
    // their sum by the response limit. A connect slower than a connect limit shorter than the
    // response limit fails as `ConnectionTimeout`; a response too slow, as
    // `ConnectionReadTimeout`, whichever of this timer and the client's first-byte timer fires
    // first.
    tokio::time::timeout(total, wasmtime_wasi_http::default_send_request(request, Some(options)))
        .await
        .map_err(|_| wasmtime_wasi_http::Error::ConnectionReadTimeout)?
}
