//! Where a guest's stderr goes: the route's log file (WAGI's layout) and the server log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::Error;

/// A function's stderr sink. The file is opened once, at load, and shared by every request
/// (WAGI opened it on every request, which cost it 13% of its CPU).
#[derive(Clone)]
pub struct GuestLog {
    function: Arc<str>,
    file: Option<Arc<File>>,
}

impl GuestLog {
    /// Opens (creating) `<log_dir>/<sha256(route)>/module.stderr` for appending, or logs to the
    /// server log only when there is no log dir.
    pub fn open(log_dir: Option<&Path>, route: &str) -> Result<GuestLog, Error> {
        let file = match log_dir {
            None => None,
            Some(dir) => {
                let path = log_file_path(dir, route);
                let log_dir_error = |source| Error::LogDir { path: path.clone(), source };
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(log_dir_error)?;
                }
                let file = OpenOptions::new().create(true).append(true).open(&path).map_err(log_dir_error)?;
                Some(Arc::new(file))
            }
        };
        Ok(GuestLog { function: Arc::from(route), file })
    }

    /// One request's stream: the file gets every write as it comes; the server log gets whole
    /// lines (guests write in fragments: Rust's panic message arrives in a dozen writes).
    fn stream(&self) -> GuestLogStream {
        GuestLogStream { log: self.clone(), pending: Vec::new() }
    }

    fn log_line(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if self.file.is_some() {
            tracing::debug!(function = %self.function, stderr = %text, "guest stderr");
        } else {
            tracing::info!(function = %self.function, stderr = %text, "guest stderr");
        }
    }
}

/// The longest partial line held back from the server log; a longer one is logged as it is.
const MAX_PENDING_LINE: usize = 16 << 10;

/// A [`GuestLog`] as one request's stdout/stderr: complete lines go to the server log, and what
/// is left of a line when the request ends is logged then.
pub struct GuestLogStream {
    log: GuestLog,
    pending: Vec<u8>,
}

impl GuestLogStream {
    fn write_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(file) = &self.log.file {
            (&**file).write_all(bytes)?;
        }
        self.pending.extend_from_slice(bytes);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            for line in self.pending[..end].split(|&b| b == b'\n') {
                self.log.log_line(line);
            }
            self.pending.drain(..=end);
        }
        if self.pending.len() > MAX_PENDING_LINE {
            self.log.log_line(&self.pending);
            self.pending.clear();
        }
        Ok(())
    }
}

impl Drop for GuestLogStream {
    fn drop(&mut self) {
        self.log.log_line(&self.pending);
    }
}

/// WAGI's layout: one directory per route pattern, named by the SHA-256 of the pattern's text.
pub fn log_file_path(log_dir: &Path, route: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(route.as_bytes()));
    log_dir.join(digest).join("module.stderr")
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.stream())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.stream())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestLogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestLogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes).map_err(|e| StreamError::LastOperationFailed(wasmtime::format_err!(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestLogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().write_bytes(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_path_is_wagis_layout() {
        // sha256("/log"), the directory WAGI writes the example `log` module's stderr to.
        let path = log_file_path(Path::new("/logs"), "/log");
        assert!(path.to_string_lossy().starts_with("/logs/22cefb78"), "{}", path.display());
        assert!(path.ends_with("module.stderr"));
    }

    #[test]
    fn writes_append_to_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = GuestLog::open(Some(dir.path()), "/r").unwrap();
        log.stream().write_bytes(b"one\n").unwrap();
        let mut second = log.clone().stream();
        second.write_bytes(b"tw").unwrap();
        second.write_bytes(b"o\n").unwrap();
        let text = std::fs::read_to_string(log_file_path(dir.path(), "/r")).unwrap();
        assert_eq!(text, "one\ntwo\n");
    }

    #[test]
    fn fragments_are_held_until_the_line_ends_and_the_rest_until_the_end() {
        let log = GuestLog::open(None, "/r").unwrap();
        let mut stream = log.stream();
        stream.write_bytes(b"thread '").unwrap();
        stream.write_bytes(b"main' panicked").unwrap();
        assert_eq!(stream.pending, b"thread 'main' panicked");
        stream.write_bytes(b"\nnext line\nand a rest").unwrap();
        assert_eq!(stream.pending, b"and a rest");
        stream.write_bytes(&vec![b'x'; MAX_PENDING_LINE]).unwrap();
        assert!(stream.pending.is_empty(), "an overlong line is logged as it is");
    }
}
