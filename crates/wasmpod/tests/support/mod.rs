//! Test support: start the real `wasmpod` binary on 127.0.0.1:0 and speak real HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

pub const WASMPOD: &str = env!("CARGO_BIN_EXE_wasmpod");

/// A running `wasmpod serve`, killed when dropped. Its stderr (the server log) is captured.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `wasmpod serve <args> -l 127.0.0.1:0`, run in `dir`; waits for the Ready line.
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        Server::start_with(dir, args, &[])
    }

    pub fn start(args: &[&str]) -> Server {
        Server::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
    }

    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(WASMPOD);
        command.arg("serve").args(args);
        let port_from_env = env.iter().any(|(k, _)| *k == "PORT");
        if !port_from_env && !args.iter().any(|a| *a == "-l" || *a == "--listen") {
            command.args(["-l", "127.0.0.1:0"]);
        }
        // Nothing from the developer's shell: every variable the binary reads (`PORT`, `K_*`,
        // `WASMPOD_*`, Knative's admission settings, `RUST_LOG`) is what the test passes, or unset.
        command.current_dir(dir).env_clear().env("RUST_LOG", "info,wasmpod=debug");
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn wasmpod");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("Ready: serving on http://") {
                        break addr.parse().expect("address");
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("wasmpod exited ({status}) before it was ready:\n{}", log.lock().unwrap());
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server log contains `needle` (logs arrive asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "log never contained {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server process's user + system CPU time so far (`/proc/<pid>/stat`).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
        let per_second: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("CLK_TCK");
        Duration::from_secs_f64(ticks as f64 / per_second)
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(status.expect("kill").success());
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "wasmpod did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        send(self.addr, Request::get(path)).await
    }

    pub async fn send(&self, request: Request) -> Response {
        send(self.addr, request).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wasmpod` with `args` to completion (for commands that should fail or print).
pub fn run_wasmpod(dir: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    run_wasmpod_with(dir, args, stdin, &[])
}

/// [`run_wasmpod`] with environment variables; none comes from the developer's shell.
pub fn run_wasmpod_with(
    dir: &Path,
    args: &[&str],
    stdin: &[u8],
    env: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(WASMPOD)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmpod");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("wait")
}

pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn get(path: &str) -> Request {
        Request { method: "GET", path: path.to_owned(), headers: Vec::new(), body: Bytes::new() }
    }

    pub fn post(path: &str, body: impl Into<Bytes>) -> Request {
        Request { method: "POST", path: path.to_owned(), headers: Vec::new(), body: body.into() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `KEY=VALUE` lines of the `env` guest's body.
    pub fn var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.text().lines().find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// One request on a fresh HTTP/1.1 connection. The path is sent exactly as given (no normalisation).
pub async fn send(addr: SocketAddr, request: Request) -> Response {
    try_send(addr, request).await.expect("request")
}

/// [`send`] for a test where the request may fail: why it failed (`connect: ...` when the
/// connection was refused, `send: ...` or `body: ...` when it broke later).
pub async fn try_send(addr: SocketAddr, request: Request) -> Result<Response, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let mut builder = http::Request::builder().method(request.method).uri(request.path.as_str());
    if !request.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(builder.body(Full::new(request.body)).expect("request"))
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok(Response { status, headers, body })
}

/// Sends `request` (raw HTTP bytes, which should ask the server to close the connection) on a
/// fresh connection and returns everything the server sent back, for requests a client library
/// would not send as they are (no `Host` header, HTTP/1.0).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

/// Writes `modules.toml` into `dir` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("modules.toml");
    std::fs::write(&path, text).expect("write modules.toml");
    path
}

/// A `[[module]]` entry for a guest.
pub fn module(route: &str, module: &str, extra: &str) -> String {
    format!("[[module]]\nroute = {route:?}\nmodule = {module:?}\n{extra}\n")
}

/// `wasmpod serve -c modules.toml` with `config` written to a fresh directory (kept alive by the
/// returned `TempDir`).
pub fn start_with_config(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), config);
    let server = Server::start_in(dir.path(), &["-c", config.to_str().expect("UTF-8 path")]);
    (dir, server)
}

/// The value of one series (`name{labels}`) in `/metrics` text, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

/// Polls `/metrics` until `series` satisfies `ok` (an event the server shows, not a sleep).
pub async fn wait_for_metric(server: &Server, series: &str, ok: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = server.get("/metrics").await.text();
        if metric(&text, series).is_some_and(&ok) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} never reached the expected value:\n{text}");
        tokio::task::yield_now().await;
    }
}

/// Waits for the warning a refused outbound call logs, and checks it names the function and the
/// target.
pub fn assert_outbound_denied_logged(server: &Server, function: &str, target: &str) {
    let log = server.wait_for_log("outbound request denied");
    let line = log.lines().find(|l| l.contains("outbound request denied")).expect("the denial line");
    assert!(line.contains("WARN") && line.contains(function) && line.contains(target), "{line}");
}

/// A WAT module that answers `body` as text.
pub fn wat(body: &str) -> String {
    let text = format!("content-type: text/plain\\0a\\0a{body}");
    let len = 26 + body.len();
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    )
}
