//! The lingering close: when the server ends a connection, it first stops writing (the client
//! sees the end of the answer), then reads and discards what the client is still sending, bounded
//! by [`LINGER_TIME`] and [`LINGER_BYTES`], and only then closes the socket.
//!
//! Why: the pod may answer before it has read a request's body (413 when the body is larger than
//! the limit or the memory grant, 431, an early error). Closing a socket that still has unread
//! bytes makes the kernel send a reset, and a client still writing its body then loses the answer
//! already on its way. Draining a little first lets the answer arrive, as nginx's lingering close
//! does. The bytes drained are discarded through a small buffer: the pod holds none of them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The longest a closing connection waits for the client to stop sending. Long enough for a
/// client on a slow link to finish a body of [`LINGER_BYTES`], short enough that a client that
/// never stops holds its connection slot only briefly.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// The most a closing connection reads and discards. A client sending more is reset: draining
/// an unbounded body would let a client keep the pod reading forever.
pub const LINGER_BYTES: usize = 4 << 20;

/// A TCP stream whose shutdown lingers (see the module docs).
pub(crate) struct Lingering {
    stream: TcpStream,
    linger_time: Duration,
    drain: Option<Drain>,
}

/// A shutdown under way: the write side is closed, the read side is being drained.
struct Drain {
    deadline: Pin<Box<Sleep>>,
    left: usize,
}

impl Lingering {
    /// Wraps an accepted stream; the server passes [`LINGER_TIME`].
    pub(crate) fn new(stream: TcpStream, linger_time: Duration) -> Lingering {
        Lingering { stream, linger_time, drain: None }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// Closes the write side, then drains the read side until the client closes its own, the
    /// byte budget is spent or the time is up. Errors while draining end the drain, not the
    /// shutdown: the answer has been sent by then.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let drain = match &mut this.drain {
            Some(drain) => drain,
            None => {
                ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                let deadline = Box::pin(tokio::time::sleep(this.linger_time));
                this.drain.insert(Drain { deadline, left: LINGER_BYTES })
            }
        };
        let mut scratch = [0u8; 8 << 10];
        loop {
            if drain.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => {
                    drain.left = drain.left.saturating_sub(buf.filled().len());
                    if drain.left == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Longer than any test may run: only the client or the byte budget can end a drain.
    const FOREVER: Duration = Duration::from_secs(3600);

    async fn pair(linger_time: Duration) -> (Lingering, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Lingering::new(server, linger_time), client)
    }

    /// The case it exists for: the server answers and closes while the client is still writing
    /// a body the server never read; the client still reads the whole answer, not a reset.
    #[tokio::test]
    async fn an_answer_sent_before_the_body_is_read_reaches_a_client_still_writing() {
        let (mut server, client) = pair(LINGER_TIME).await;
        let (mut reader, mut writer) = client.into_split();
        let writing = tokio::spawn(async move {
            let body = vec![b'x'; 3 << 20];
            writer.write_all(&body).await.map(|()| body.len())
        });
        server.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(writing.await.unwrap().unwrap(), 3 << 20, "the whole body was taken");
        let mut answer = Vec::new();
        reader.read_to_end(&mut answer).await.expect("the answer, not a reset");
        assert!(answer.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&answer));
    }

    /// The drain is bounded in bytes: a client that keeps sending is cut off after
    /// [`LINGER_BYTES`], however long the drain may last. (Without the bound the client would send
    /// its whole gigabyte, close, and the drain would end at that close.)
    #[tokio::test]
    async fn a_client_that_never_stops_sending_is_cut_off() {
        let (mut server, client) = pair(FOREVER).await;
        let (_reader, mut writer) = client.into_split();
        let writing = tokio::spawn(async move {
            let chunk = vec![b'y'; 1 << 20];
            let mut sent = 0usize;
            while sent < 1 << 30 && writer.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            drop(writer);
            sent
        });
        server.shutdown().await.unwrap();
        drop(server);
        let sent = writing.await.unwrap();
        assert!(sent < 1 << 30, "the server stopped reading after {sent} bytes");
    }

    /// A client that closes its side ends the drain: the shutdown returns although the drain
    /// could last an hour.
    #[tokio::test]
    async fn a_client_that_closed_ends_the_drain() {
        let (mut server, mut client) = pair(FOREVER).await;
        client.write_all(b"the rest of a body").await.unwrap();
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
    }
}
