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

/// How long an outbound request may take to connect (less if the request has less time left).
pub const OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an outbound request may take until its response headers arrive (less if the
/// request has less time left; its body is bounded by the request's own time limit).
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Sends `request` with wasmtime's client: connecting within [`OUTBOUND_CONNECT_TIMEOUT`], the
/// response headers within [`OUTBOUND_TIMEOUT`], both never past `deadline` (the incoming
/// request's); the guest's own `asked` options may only tighten them. Returns the response and
/// the connection's future, which must be driven while the body is read.
pub(crate) async fn send<B>(
    request: http::Request<B>,
    asked: Option<RequestOptions>,
    deadline: Instant,
) -> wasmtime_wasi_http::Result<(
    http::Response<impl http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + use<B>>,
    impl Future<Output = wasmtime_wasi_http::Result<()>> + Send + use<B>,
)>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
{
    let left = deadline.saturating_duration_since(Instant::now());
    let total = OUTBOUND_TIMEOUT.min(left);
    let cap = |asked: Option<Duration>, most: Duration| Some(asked.map_or(most, |a| a.min(most)));
    let asked = asked.unwrap_or_default();
    let options = RequestOptions {
        connect_timeout: cap(asked.connect_timeout, OUTBOUND_CONNECT_TIMEOUT.min(total)),
        first_byte_timeout: cap(asked.first_byte_timeout, total),
        between_bytes_timeout: cap(asked.between_bytes_timeout, left),
    };
    tokio::time::timeout(total, wasmtime_wasi_http::default_send_request(request, Some(options)))
        .await
        .map_err(|_| wasmtime_wasi_http::Error::ConnectionTimeout)?
}
