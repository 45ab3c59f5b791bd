//! Fetching one pod's `/metrics`: one HTTP/1.1 request on a fresh connection, bounded in time
//! and size.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{ControllerError, PodLoad};

/// How long a scrape may take before the pod counts as not answering. Below the one-second
/// scrape interval, so a stuck pod never delays the next round; a pod's `/metrics` is served
/// outside admission and answers in milliseconds even when the pod is full.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// The largest `/metrics` body read from a pod. A pod with thousands of functions exposes a few
/// MB of per-function series; anything larger is not a wasmpod pod.
pub const MAX_METRICS_BYTES: usize = 16 << 20;

/// Scrapes `http://<addr>/metrics` of the pod `pod`. A fresh connection per scrape, as Knative's
/// scraper does: a pod that restarted or moved never gets a stale connection.
pub async fn scrape(pod: &str, addr: SocketAddr, timeout: Duration) -> Result<PodLoad, ControllerError> {
    let url = format!("http://{addr}/metrics");
    let failed = |reason: String| ControllerError::Scrape { pod: pod.to_owned(), url: url.clone(), reason };
    let text = match tokio::time::timeout(timeout, fetch(addr)).await {
        Ok(Ok(text)) => text,
        Ok(Err(reason)) => return Err(failed(reason)),
        Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
    };
    let text = std::str::from_utf8(&text).map_err(|e| failed(format!("body is not UTF-8: {e}")))?;
    PodLoad::parse(text)
}

/// One GET on its own connection. The connection is driven here rather than spawned, so that a
/// timeout drops the socket with the request.
async fn fetch(addr: SocketAddr) -> Result<Bytes, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_METRICS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        Ok(body)
    };
    tokio::pin!(connection);
    tokio::select! {
        result = exchange => result,
        Err(e) = &mut connection => Err(format!("connection: {e}")),
    }
}
