//! [`ResponseBody`]: the one body type every response has.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use wasmpod_runtime::HttpBody;

/// The body of every response the server sends: bytes in hand (WAGI output, built-in
/// endpoints) or a component's stream. An enum rather than a boxed body, so that a WAGI response
/// costs no allocation beyond its bytes.
#[derive(Debug, Default)]
pub struct ResponseBody(BodyKind);

#[derive(Debug)]
enum BodyKind {
    Full(Full<Bytes>),
    Stream(HttpBody),
}

impl Default for BodyKind {
    fn default() -> Self {
        BodyKind::Full(Full::default())
    }
}

impl ResponseBody {
    /// A body whose bytes are all here.
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody(BodyKind::Full(Full::new(bytes.into())))
    }

    /// A body a component is still writing.
    pub fn stream(body: HttpBody) -> ResponseBody {
        ResponseBody(BodyKind::Stream(body))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(body) => Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            BodyKind::Stream(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Full(body) => body.is_end_stream(),
            BodyKind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(body) => body.size_hint(),
            BodyKind::Stream(body) => body.size_hint(),
        }
    }
}
