//! Response bodies of the mock: a whole buffer, or a sequence of frames sent one by one with an
//! optional pause between them (SSE streams), which can also be cut off midway to simulate a
//! provider dropping the connection, or stall midway to simulate one going silent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use super::outcome::Pending;

const FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Returned as the body error to make hyper abort the connection mid-response.
#[derive(Debug)]
pub struct Disconnect;

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock fault: connection dropped mid-response")
    }
}

impl std::error::Error for Disconnect {}

pub enum MockBody {
    Full(Option<Bytes>),
    Frames(FrameStream),
}

pub struct FrameStream {
    frames: Vec<Bytes>,
    next: usize,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Frame index at which the connection is dropped instead of sending the frame.
    cut_at: Option<usize>,
    /// Frame index at which the stream goes silent for good, the connection left open.
    stall_at: Option<usize>,
    /// Finished once the last frame is out; dropped with the body if the client goes first.
    pending: Option<Pending>,
}

impl FrameStream {
    fn finish(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish();
        }
    }
}

impl MockBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        MockBody::Full(None)
    }

    /// Frames are flushed as separate chunks; `delay` is waited before every frame but the first.
    pub fn frames(frames: Vec<Bytes>, delay: Duration, cut_at: Option<usize>) -> Self {
        MockBody::Frames(FrameStream {
            frames,
            next: 0,
            delay,
            sleep: None,
            cut_at,
            stall_at: None,
            pending: None,
        })
    }

    /// Counts the response as completed when its last frame is out (a whole body: now). A
    /// stream that hyper drops before that counts as cancelled.
    pub fn finish_with(mut self, pending: Pending) -> Self {
        match &mut self {
            MockBody::Frames(s) => s.pending = Some(pending),
            MockBody::Full(_) => pending.finish(),
        }
        self
    }
}

impl MockBody {
    /// Sends no frame from index `at` on, and never ends: an upstream that stalls.
    pub fn stall_at(mut self, at: usize) -> Self {
        if let MockBody::Frames(s) = &mut self {
            s.stall_at = Some(at);
        }
        self
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Disconnect;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Disconnect>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Frames(s) => {
                if s.stall_at == Some(s.next) {
                    // No waker is kept, so nothing wakes this body again; hyper has flushed
                    // what was sent, and the connection stays open until the peer leaves.
                    return Poll::Pending;
                }
                if s.cut_at == Some(s.next) {
                    // Pause before dropping so hyper flushes what was sent so far; an error
                    // returned right away would discard the buffered frames and the client
                    // would see an empty reply instead of a truncated one.
                    let pause = s
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_PAUSE)));
                    if pause.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // An injected fault, not a client going away.
                    s.finish();
                    return Poll::Ready(Some(Err(Disconnect)));
                }
                if s.next >= s.frames.len() {
                    s.finish();
                    return Poll::Ready(None);
                }
                if s.next > 0 && !s.delay.is_zero() {
                    let sleep = s
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(s.delay)));
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    s.sleep = None;
                }
                let frame = std::mem::take(&mut s.frames[s.next]);
                s.next += 1;
                // hyper may not poll again once `is_end_stream` says so.
                if s.next >= s.frames.len() && s.cut_at.is_none() {
                    s.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(frame))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Frames(s) => {
                s.next >= s.frames.len() && s.cut_at.is_none() && s.stall_at.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Frames(_) => SizeHint::default(),
        }
    }
}

/// Writes server-sent events into one buffer, then hands them out as one `Bytes` per event (all
/// slices of that single allocation).
#[derive(Default)]
pub struct SseWriter {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl SseWriter {
    pub fn with_capacity(bytes: usize, events: usize) -> Self {
        SseWriter {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// One event: optional `event: NAME` line, one `data:` line written by `data`, blank line.
    pub fn event(&mut self, name: Option<&str>, data: impl FnOnce(&mut Vec<u8>)) {
        if let Some(name) = name {
            self.buf.extend_from_slice(b"event: ");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(b"data: ");
        data(&mut self.buf);
        self.buf.extend_from_slice(b"\n\n");
        self.ends.push(self.buf.len());
    }

    /// A frame that is not an SSE event (Gemini's streamed JSON array uses these).
    pub fn raw(&mut self, data: impl FnOnce(&mut Vec<u8>)) {
        data(&mut self.buf);
        self.ends.push(self.buf.len());
    }

    pub fn into_frames(self) -> Vec<Bytes> {
        let all = Bytes::from(self.buf);
        let mut start = 0;
        self.ends
            .into_iter()
            .map(|end| {
                let frame = all.slice(start..end);
                start = end;
                frame
            })
            .collect()
    }
}

/// Cuts the JSON of one frame in half but keeps its framing, so the client receives a well-framed
/// event (or body) whose payload does not parse.
pub fn truncate_payload(frame: &Bytes) -> Bytes {
    let (body, tail): (&[u8], &[u8]) = if frame.ends_with(b"\n\n") {
        (&frame[..frame.len() - 2], b"\n\n")
    } else {
        (&frame[..], b"")
    };
    let cut = body
        .iter()
        .position(|&b| b == b'{')
        .map_or(body.len() / 2, |open| open + (body.len() - open) / 2);
    let mut out = Vec::with_capacity(cut + tail.len());
    out.extend_from_slice(&body[..cut]);
    out.extend_from_slice(tail);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn sse_events_are_framed_and_split() {
        let mut w = SseWriter::default();
        w.event(None, |b| b.extend_from_slice(br#"{"a":1}"#));
        w.event(Some("message_stop"), |b| {
            b.extend_from_slice(br#"{"type":"message_stop"}"#)
        });
        w.event(None, |b| b.extend_from_slice(b"[DONE]"));
        let frames = w.into_frames();
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0][..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &frames[1][..],
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        assert_eq!(&frames[2][..], b"data: [DONE]\n\n");
    }

    #[test]
    fn truncation_keeps_framing_and_breaks_json() {
        let frame = Bytes::from_static(b"data: {\"id\":\"x\",\"choices\":[]}\n\n");
        let cut = truncate_payload(&frame);
        assert!(cut.starts_with(b"data: {"));
        assert!(cut.ends_with(b"\n\n"));
        let json = &cut[6..cut.len() - 2];
        assert!(serde_json::from_slice::<serde_json::Value>(json).is_err());

        let whole = Bytes::from_static(b"{\"id\":\"x\",\"n\":1}");
        let cut = truncate_payload(&whole);
        assert!(serde_json::from_slice::<serde_json::Value>(&cut).is_err());
    }

    #[tokio::test]
    async fn frames_are_sent_in_order_then_end() {
        let frames = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let body = MockBody::frames(frames, Duration::ZERO, None);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"ab");
    }

    #[tokio::test]
    async fn cut_stream_errors_after_the_first_half() {
        let frames = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let mut body = MockBody::frames(frames, Duration::ZERO, Some(1));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"a");
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn stalled_stream_sends_the_first_half_then_nothing() {
        let frames = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let mut body = MockBody::frames(frames, Duration::ZERO, None).stall_at(1);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"a");
        let rest = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(rest.is_err(), "the stream should stall");
        assert!(!body.is_end_stream());
    }
}
