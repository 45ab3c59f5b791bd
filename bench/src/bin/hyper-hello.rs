//! `hyper-hello`: the ceiling the load benchmarks measure wasmpod against.
//!
//! A plain hyper 1 server that answers every request with the same headers and body as the WAT
//! hello served by wasmpod (`guests/wat/hello.wat`), with no Wasm, routing or CGI in between: what
//! is left is the cost of the TCP and HTTP/1.1 machinery both servers share. Like wasmpod it runs
//! on tokio's multi-thread runtime, sets `TCP_NODELAY` and keeps connections alive, and prints
//! `Ready: serving on http://ADDR` once it listens (so `run.sh` can start it on port 0).

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The allocator the `wasmpod` binary uses, so the comparison is like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The WAT hello's response, byte for byte.
const CONTENT_TYPE_VALUE: &str = "text/html;charset=UTF-8";
const BODY: &str = "Oh hi world\n";

/// Serve a fixed hello response over HTTP/1.1 (the benchmarks' ceiling).
#[derive(Debug, Parser)]
#[command(name = "hyper-hello")]
struct Args {
    /// Address to listen on (port 0 picks a free port; the Ready line says which).
    #[arg(short = 'l', long = "listen", value_name = "IP:PORT", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("Ready: serving on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        // Best effort, as in wasmpod: a socket that refuses it still serves.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // Keep-alive is hyper's default for HTTP/1.1.
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello));
            if let Err(e) = connection.await {
                eprintln!("connection ended: {e}");
            }
        });
    }
}

async fn hello(_request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_VALUE));
    Ok(response)
}
