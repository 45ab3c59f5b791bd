//! Accepting connections, and stopping gracefully (Knative's runtime contract).
//!
//! A stop goes through up to three phases, all bounded by [`ShutdownConfig::timeout`] from the
//! signal on:
//! 1. **drain period** (SIGTERM only): `/readyz` fails at once, but new connections are still
//!    accepted and served for [`ShutdownConfig::drain_period`], because endpoints take time to drop
//!    a terminating pod and requests routed to it meanwhile must not fail;
//! 2. **finishing**: the listener is closed (new connections are refused) and the requests in
//!    flight finish, each connection closing after its response;
//! 3. **stopping**, only if the timeout passes first: the guests still running are stopped, each
//!    one logged, and the server returns so that the process exits 0 in time.
//!
//! Every connection is held to [`ConnectionLimits`]: its request heads must arrive in time and fit
//! a size, and the pod holds at most so many connections at once, so a slow or greedy client costs
//! the pod a bounded share of its sockets and memory.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::linger::{Lingering, LINGER_TIME};
use crate::App;

/// From the stop signal to exit, at most (`--shutdown-timeout`), by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long new requests are still served after SIGTERM (`--drain-seconds`), by default: the time
/// endpoints commonly take to drop a terminating pod (Knative's queue-proxy waits as long).
pub const DEFAULT_DRAIN_PERIOD: Duration = Duration::from_secs(15);

/// How long a client may take to send a request head (`--header-read-timeout`), by default:
/// hyper's own default, and long enough for any client that is not stalling on purpose.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request head, request line and headers together (`--max-header-size`), by
/// default: beyond it the answer is 431. Browsers and proxies stay far below (Node's limit is 16
/// KiB, nginx's 8-32 KiB); the floor hyper accepts is 8 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;

/// The smallest `--max-header-size` hyper can work with.
pub const MIN_MAX_HEADER_BYTES: usize = 8 << 10;

/// Connections held open at once (`--max-connections`), by default; the binary lowers it to what
/// the process's file descriptor limit leaves room for.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// What one client connection may take from the pod (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accept (or the end of the previous response) to the end of a request head; a client
    /// slower than this is disconnected (slowloris). Idle keep-alive connections close after it.
    pub header_read_timeout: Duration,
    /// The largest request head (431 beyond it); also HTTP/2's header list size.
    pub max_header_bytes: usize,
    /// Connections open at once; a connection beyond it is closed as soon as it is accepted (and
    /// counted), so that the pod never runs out of file descriptors.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What asked the server to stop; it decides whether a drain period comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: the platform is taking the pod away while traffic may still be routed to it.
    Terminate,
    /// SIGINT (Ctrl-C): someone at a terminal wants it gone; no drain period.
    Interrupt,
}

/// How a stop proceeds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// After SIGTERM, how long new connections are still accepted while `/readyz` fails.
    pub drain_period: Duration,
    /// From the signal to the return of [`serve`], at most; the drain period is part of it.
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { drain_period: DEFAULT_DRAIN_PERIOD, timeout: DEFAULT_SHUTDOWN_TIMEOUT }
    }
}

/// Serves HTTP/1.1 and h2c on `listener` until `stop` completes, then shuts down as the module
/// docs describe.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    stop: impl Future<Output = Stop>,
    shutdown: ShutdownConfig,
    limits: ConnectionLimits,
) {
    let mut front = Front::new(app.clone(), limits);
    let stop = front.accept_until(&listener, stop).await;
    let deadline = Instant::now() + shutdown.timeout;
    app.start_draining();
    let drain_period = match stop {
        Stop::Terminate => shutdown.drain_period.min(shutdown.timeout),
        Stop::Interrupt => Duration::ZERO,
    };
    if !drain_period.is_zero() {
        tracing::info!(
            drain_seconds = drain_period.as_secs_f64(),
            "draining: /readyz answers 503; new requests are still served for the drain period"
        );
        front.accept_until(&listener, tokio::time::sleep(drain_period)).await;
    }
    drop(listener);
    tracing::info!(
        running = app.guests_running(),
        "no longer accepting connections; finishing the requests in flight"
    );
    let Front { graceful, mut connections, .. } = front;
    match tokio::time::timeout_at(deadline, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all requests finished; exiting"),
        Err(_elapsed) => {
            tracing::warn!(
                running = app.guests_running(),
                timeout = ?shutdown.timeout,
                "shutdown timeout: stopping the guests still running"
            );
            app.stop_guests();
            // Dropping each connection's future drops its request, and with it the guest.
            connections.shutdown().await;
        }
    }
}

/// The accepting side: one task per connection, each watched for the graceful close.
struct Front {
    app: Arc<App>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    graceful: GracefulShutdown,
    connections: JoinSet<()>,
}

impl Front {
    fn new(app: Arc<App>, limits: ConnectionLimits) -> Front {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            // hyper answers 431 when a head does not fit its read buffer.
            .max_buf_size(limits.max_header_bytes.max(MIN_MAX_HEADER_BYTES));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // Dead peers of idle HTTP/2 connections are found and their connections closed.
            .keep_alive_interval(limits.header_read_timeout)
            .keep_alive_timeout(limits.header_read_timeout);
        Front { app, builder, limits, graceful: GracefulShutdown::new(), connections: JoinSet::new() }
    }

    /// Accepts connections until `until` completes, and returns its output.
    async fn accept_until<T>(&mut self, listener: &TcpListener, until: impl Future<Output = T>) -> T {
        tokio::pin!(until);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                output = &mut until => return output,
            };
            // Reap the connections that have ended, so the set holds only live ones.
            while self.connections.try_join_next().is_some() {}
            let Some(open) = self.app.connections().open(self.limits.max_connections) else {
                // Closed at once: a client told "no" now can go elsewhere, one queued in the
                // backlog would only wait.
                tracing::warn!(%remote, max_connections = self.limits.max_connections, "connection refused: too many connections open");
                continue;
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("set_nodelay: {e}");
            }
            let app = self.app.clone();
            // Set by the first request: until then the connection has its header read timeout
            // from accept on (hyper's own starts only once it knows the protocol).
            let started = Arc::new(AtomicBool::new(false));
            let service = service_fn({
                let started = started.clone();
                move |request: Request<Incoming>| {
                    started.store(true, Ordering::Relaxed);
                    let app = app.clone();
                    // The body is handed on as it streams: WAGI functions read it whole,
                    // components as they go.
                    async move { Ok::<_, Infallible>(app.handle(request, remote.ip()).await) }
                }
            });
            let connection = self
                .builder
                .serve_connection(TokioIo::new(Lingering::new(stream, LINGER_TIME)), service)
                .into_owned();
            let connection = self.graceful.watch(connection);
            let app = self.app.clone();
            let first_request_by = self.limits.header_read_timeout;
            self.connections.spawn(async move {
                let _open = open;
                tokio::pin!(connection);
                let result = tokio::select! {
                    result = &mut connection => result,
                    () = tokio::time::sleep(first_request_by) => {
                        if started.load(Ordering::Relaxed) {
                            connection.await
                        } else {
                            app.header_timeout();
                            tracing::debug!(%remote, "connection closed: no request head within the header read timeout");
                            return;
                        }
                    }
                };
                if let Err(e) = result {
                    let timed_out = e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout);
                    if timed_out {
                        app.header_timeout();
                    }
                    tracing::debug!(%remote, "connection ended: {e}");
                }
            });
        }
    }
}
