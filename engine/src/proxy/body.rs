//! The response body type, and reading request bodies within `max_body_bytes`.

use super::cached::Recording;
use super::client_format::ClientStream;
use super::finish::Finishing;
use super::relay::Relay;
use super::translated::UpstreamStream;
use crate::error::{ApiError, ErrorType};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A whole buffered body, or an upstream stream relayed event by event (as OpenAI SSE, or
/// re-encoded for an Anthropic client).
pub enum ProxyBody {
    Full(Option<Bytes>),
    Relay(Box<Relay<UpstreamStream>>),
    /// Re-encoded for a client of another format.
    Translated(Box<ClientStream>),
    /// A stream whose request report completes when it ends.
    Finishing(Box<Finishing>),
    /// A streamed answer replayed from the cache: its recorded bytes, sent once.
    Replay(Option<Bytes>),
    /// A streamed answer copied into the cache as it passes.
    Recording(Box<Recording>),
    /// Events produced by the gateway itself (the `GET /mcp` stream); ends when the sender does.
    Events(tokio::sync::mpsc::Receiver<Bytes>),
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Some(bytes.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(b) | ProxyBody::Replay(b) => {
                Poll::Ready(b.take().map(|b| Ok(Frame::data(b))))
            }
            ProxyBody::Recording(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ProxyBody::Relay(relay) => Pin::new(relay.as_mut()).poll_frame(cx),
            ProxyBody::Translated(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
            ProxyBody::Finishing(body) => Pin::new(body.as_mut()).poll_frame(cx),
            ProxyBody::Events(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) | ProxyBody::Replay(b) => b.is_none(),
            ProxyBody::Recording(body) => body.is_end_stream(),
            ProxyBody::Relay(relay) => relay.is_end_stream(),
            ProxyBody::Translated(stream) => stream.is_end_stream(),
            ProxyBody::Finishing(body) => body.is_end_stream(),
            ProxyBody::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Replay(_) => SizeHint::default(),
            ProxyBody::Recording(body) => body.size_hint(),
            ProxyBody::Relay(relay) => relay.size_hint(),
            ProxyBody::Translated(stream) => stream.size_hint(),
            ProxyBody::Finishing(body) => body.size_hint(),
            ProxyBody::Events(_) => SizeHint::default(),
        }
    }
}

/// Reads the request body, refusing it as soon as it is known to exceed `max` bytes
/// (from `content-length` before reading, or while reading a chunked body).
pub async fn read_limited(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorType::BodyTooLarge,
            format!("request body is larger than server.max_body_bytes ({max} bytes)"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!("could not read the request body: {e}"),
        )),
    }
}
