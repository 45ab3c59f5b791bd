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

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::App;

/// From the stop signal to exit, at most (`--shutdown-timeout`), by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long new requests are still served after SIGTERM (`--drain-seconds`), by default: the time
/// endpoints commonly take to drop a terminating pod (Knative's queue-proxy waits as long).
pub const DEFAULT_DRAIN_PERIOD: Duration = Duration::from_secs(15);

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
) {
    let mut front = Front::new(app.clone());
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
    graceful: GracefulShutdown,
    connections: JoinSet<()>,
}

impl Front {
    fn new(app: Arc<App>) -> Front {
        Front {
            app,
            builder: auto::Builder::new(TokioExecutor::new()),
            graceful: GracefulShutdown::new(),
            connections: JoinSet::new(),
        }
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
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("set_nodelay: {e}");
            }
            let app = self.app.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                // The body is handed on as it streams: WAGI functions read it whole, components as
                // they go.
                async move { Ok::<_, Infallible>(app.handle(request, remote.ip()).await) }
            });
            let connection = self.builder.serve_connection(TokioIo::new(stream), service).into_owned();
            let connection = self.graceful.watch(connection);
            // Reap the connections that have ended, so the set holds only live ones.
            while self.connections.try_join_next().is_some() {}
            self.connections.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%remote, "connection ended: {e}");
                }
            });
        }
    }
}
