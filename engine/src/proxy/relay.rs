//! Relaying an upstream SSE stream to the client while reading its usage: the final usage
//! chunk settles the request's reservation; a stream that ends early, breaks, or is dropped
//! by the client is settled from what was sent so far, never zero. A stream the upstream
//! breaks (see [`ending`]) ends with an error event instead of `[DONE]`.
//!
//! With output guardrails, a [`Rewrite`] sees every whole event before the client does (it may
//! hold text back and change events). Without one, the relay forwards the upstream bytes as
//! they came: no event is parsed beyond what usage reading needs. With a [`Shadow`] (a client
//! and provider of the same non-OpenAI format) the provider's bytes pass untouched and a
//! translated copy is scanned instead.

#[cfg(test)]
mod broken_streams;
mod ending;

pub use ending::StreamBounds;

use super::native::Shadow;
use crate::admission::estimate::{usage_of, Usage};
use crate::admission::limits::Admitted;
use bytes::{Buf, Bytes, BytesMut};
use ending::{Broken, Watchdog};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde::Deserialize;
use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Cuts a byte stream into whole SSE events and reads usage and answer length from them.
#[derive(Default)]
pub struct EventScanner {
    /// Bytes after the last complete event; events are forwarded whole.
    pending: BytesMut,
    /// The usage chunk was added by the gateway (the client did not ask): keep it from the
    /// client, whose code may not expect a chunk without choices.
    hide_usage_chunk: bool,
    pub usage: Option<Usage>,
    /// Characters of answer text seen so far.
    pub content_chars: u64,
    /// `[DONE]` was seen: the answer is whole, whatever happens to the connection after.
    pub done: bool,
    /// A `data:` event was not JSON; it and everything after it were not passed on.
    pub malformed: bool,
}

/// What one event is to the relay.
enum Seen {
    Forward,
    /// The gateway's own usage chunk, kept from the client.
    Hide,
    Malformed,
}

impl EventScanner {
    pub fn new(hide_usage_chunk: bool) -> EventScanner {
        EventScanner {
            hide_usage_chunk,
            ..Default::default()
        }
    }

    /// Takes in upstream bytes; returns the complete events to forward, if any.
    pub fn push(&mut self, mut data: impl Buf) -> Option<Bytes> {
        self.pending
            .extend_from_slice(&data.copy_to_bytes(data.remaining()));
        let end = find_last(&self.pending, b"\n\n")? + 2;
        let mut chunk = self.pending.split_to(end).freeze();
        let mut kept: Option<BytesMut> = None;
        let mut at = 0;
        while let Some(len) = find_first(&chunk[at..], b"\n\n") {
            let event = &chunk[at..at + len + 2];
            match (&mut kept, self.read_event(event)) {
                (_, Seen::Malformed) => {
                    self.malformed = true;
                    self.pending.clear();
                    chunk.truncate(at);
                    break;
                }
                (None, Seen::Hide) => kept = Some(BytesMut::from(&chunk[..at])),
                (Some(k), Seen::Forward) => k.extend_from_slice(event),
                _ => {}
            }
            at += len + 2;
        }
        match kept {
            None if chunk.is_empty() => None,
            None => Some(chunk),
            Some(k) if k.is_empty() => None,
            Some(k) => Some(k.freeze()),
        }
    }

    /// What remains after the upstream ended (an incomplete last event), forwarded as is.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }

    /// Records what one event carries, and whether it reaches the client.
    fn read_event(&mut self, event: &[u8]) -> Seen {
        let Some(data) = event
            .strip_prefix(b"data: ")
            .or_else(|| event.strip_prefix(b"data:"))
        else {
            return Seen::Forward;
        };
        if data.starts_with(b"[DONE]") {
            self.done = true;
            return Seen::Forward;
        }
        if let Some(u) = find_first(data, b"\"usage\":{").and_then(|_| usage_of(data)) {
            self.usage = Some(u);
            if self.hide_usage_chunk && find_first(data, b"\"choices\":[]").is_some() {
                return Seen::Hide;
            }
            return Seen::Forward;
        }
        match serde_json::from_slice::<Chunk>(data) {
            Ok(c) => {
                self.content_chars += c
                    .choices
                    .iter()
                    .filter_map(|ch| ch.delta.as_ref()?.content.as_deref())
                    .map(|t| t.chars().count() as u64)
                    .sum::<u64>();
            }
            Err(_) if is_malformed(data) => return Seen::Malformed,
            Err(_) => {}
        }
        Seen::Forward
    }
}

/// A one-line `data:` payload that is not JSON (checked only when it is not a chunk, so the
/// usual event is parsed once). Empty and multi-line payloads are left alone: they are rare
/// and not necessarily broken.
fn is_malformed(data: &[u8]) -> bool {
    let data = data.trim_ascii();
    !data.is_empty()
        && !data.contains(&b'\n')
        && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_err()
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

/// Rewrites whole SSE events on their way to the client (output guardrails).
pub trait Rewrite: Send {
    /// One upstream event, its blank line included (except a last one the upstream cut off);
    /// appends what the client gets in its place. `usage` is what the stream reported so far.
    fn event(&mut self, event: &[u8], usage: Option<Usage>, out: &mut BytesMut);
    /// The upstream ended, with or without `[DONE]`; called once. Appends anything still owed.
    fn end(&mut self, usage: Option<Usage>, out: &mut BytesMut);
}

/// What happens to upstream bytes on their way out: cut into events and scanned, then
/// rewritten when there is a [`Rewrite`].
struct Outflow {
    scanner: EventScanner,
    rewrite: Option<Box<dyn Rewrite>>,
    shadow: Option<Box<Shadow>>,
}

impl Outflow {
    /// Upstream bytes in; the bytes to send now, if any.
    fn push(&mut self, mut data: impl Buf) -> Option<Bytes> {
        if let Some(shadow) = self.shadow.as_deref_mut() {
            let raw = data.copy_to_bytes(data.remaining());
            self.scanner.push(&shadow.read(&raw)[..]);
            return (!raw.is_empty()).then_some(raw);
        }
        let events = self.scanner.push(data)?;
        let Some(rewrite) = self.rewrite.as_deref_mut() else {
            return Some(events);
        };
        let mut out = BytesMut::with_capacity(events.len() + 64);
        for_each_event(&events, |e| rewrite.event(e, self.scanner.usage, &mut out));
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The upstream ended: the rest, if any. Later calls return nothing.
    fn finish(&mut self) -> Option<Bytes> {
        if let Some(mut shadow) = self.shadow.take() {
            // Every upstream byte has been sent; the copy only settles usage.
            self.scanner.push(&shadow.finish()[..]);
            return None;
        }
        let tail = self.scanner.finish();
        let Some(mut rewrite) = self.rewrite.take() else {
            return tail;
        };
        let mut out = BytesMut::new();
        if let Some(tail) = tail {
            for_each_event(&tail, |e| rewrite.event(e, self.scanner.usage, &mut out));
        }
        rewrite.end(self.scanner.usage, &mut out);
        (!out.is_empty()).then(|| out.freeze())
    }
}

/// Calls `f` on each event of `events`; the last may lack its blank line.
fn for_each_event(events: &[u8], mut f: impl FnMut(&[u8])) {
    let mut at = 0;
    while at < events.len() {
        let len = find_first(&events[at..], b"\n\n").map_or(events.len() - at, |i| i + 2);
        f(&events[at..at + len]);
        at += len;
    }
}

/// The response body of a relayed stream; settles the reservation when it ends or is dropped.
/// Generic over the upstream body for tests; the gateway relays hyper's `Incoming`.
pub struct Relay<B = Incoming> {
    /// `None` once the stream has ended: the upstream connection is let go at once.
    inner: Option<B>,
    flow: Outflow,
    /// Prompt tokens estimated before the call, for settling a stream that reported none.
    prompt_estimate: u64,
    admitted: Option<Admitted>,
    watchdog: Watchdog,
}

impl<B> Relay<B> {
    pub fn new(
        inner: B,
        admitted: Option<Admitted>,
        prompt_estimate: u64,
        hide_usage_chunk: bool,
        bounds: StreamBounds,
    ) -> Relay<B> {
        Relay {
            inner: Some(inner),
            flow: Outflow {
                scanner: EventScanner::new(hide_usage_chunk),
                rewrite: None,
                shadow: None,
            },
            prompt_estimate,
            admitted,
            watchdog: Watchdog::new(bounds),
        }
    }

    /// Passes every event through `rewrite` (`None`: forward upstream bytes unchanged).
    pub fn with_rewrite(mut self, rewrite: Option<Box<dyn Rewrite>>) -> Relay<B> {
        self.flow.rewrite = rewrite;
        self
    }

    /// Passes the upstream bytes unchanged and reads usage from `shadow`'s translation.
    pub fn with_shadow(mut self, shadow: Option<Shadow>) -> Relay<B> {
        self.flow.shadow = shadow.map(Box::new);
        self
    }

    fn settle(&mut self) {
        if let Some(admitted) = self.admitted.take() {
            // Without a usage chunk, ~4 characters per token of what reached the client.
            let scanner = &self.flow.scanner;
            let usage = scanner.usage.unwrap_or(Usage {
                prompt: self.prompt_estimate,
                cached: 0,
                completion: scanner.content_chars.div_ceil(4),
            });
            admitted.settle(Some(usage));
        }
    }

    /// Ends the stream because the upstream broke: settles, lets the upstream go, and sends
    /// `owed` (events already taken in) followed by the error event. After `[DONE]` the answer
    /// is whole, and the stream just ends.
    fn end_broken(&mut self, owed: Option<Bytes>, why: Broken) -> Option<Bytes> {
        self.settle();
        self.inner = None;
        // Output guardrails are not run over a broken answer, and text they hold back stays
        // held: the client is told the answer failed.
        self.flow.rewrite = None;
        if self.flow.scanner.done {
            return owed;
        }
        let provider = self.watchdog.provider();
        tracing::warn!(provider, reason = ?why, "upstream stream broke off");
        Some(match self.flow.shadow.as_deref() {
            Some(shadow) => shadow.client_error(owed, &why.event(provider, None)),
            None => why.event(provider, owed),
        })
    }
}

impl<B> Body for Relay<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let data = |b: Option<Bytes>| Poll::Ready(b.map(|b| Ok(Frame::data(b))));
        loop {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(inner).poll_frame(cx) {
                Poll::Pending => {
                    return match this.watchdog.poll_expired(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(why) => data(this.end_broken(None, why)),
                    };
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => {
                        this.watchdog.chunk();
                        let out = this.flow.push(bytes);
                        if this.flow.scanner.malformed {
                            return data(this.end_broken(out, Broken::Malformed));
                        }
                        if let Some(out) = out {
                            return data(Some(out));
                        }
                    }
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(Some(Err(e))) => {
                    let why = Broken::Dropped(super::upstream::describe(&e));
                    return data(this.end_broken(None, why));
                }
                Poll::Ready(None) => {
                    // A shadow reads its last usage (Gemini's, say) only when it finishes.
                    let tail = this.flow.finish();
                    this.settle();
                    this.inner = None;
                    return data(tail);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.admitted.is_none() && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<B> Drop for Relay<B> {
    /// The client went away mid-stream (or the response was dropped): charge what was sent.
    fn drop(&mut self) {
        self.settle();
    }
}

// SIMD substring search: every streamed event is searched several times.
fn find_first(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hello \"}}]}\n\n";
    const USAGE: &str =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn relay(scanner: &mut EventScanner, parts: &[&str]) -> String {
        let mut out = String::new();
        for p in parts {
            if let Some(b) = scanner.push(p.as_bytes()) {
                out.push_str(std::str::from_utf8(&b).unwrap());
            }
        }
        if let Some(b) = scanner.finish() {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[test]
    fn events_split_across_frames_are_forwarded_whole() {
        let mut s = EventScanner::new(false);
        let all = format!("{CONTENT}{CONTENT}{USAGE}{DONE}");
        let (a, b) = all.split_at(30);
        let (b, c) = b.split_at(70);
        assert_eq!(relay(&mut s, &[a, b, c]), all);
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 7,
                cached: 0,
                completion: 3
            })
        );
        assert_eq!(s.content_chars, 12);
    }

    #[test]
    fn usage_chunk_added_by_the_gateway_is_hidden() {
        let mut s = EventScanner::new(true);
        let out = relay(&mut s, &[CONTENT, USAGE, DONE]);
        assert_eq!(out, format!("{CONTENT}{DONE}"));
        assert_eq!(s.usage.map(|u| u.completion), Some(3));
        let mut only = EventScanner::new(true);
        assert_eq!(only.push(USAGE.as_bytes()), None);
    }

    /// Upper-cases `data:` events and ends with a marker, recording the usage it was shown.
    struct Upper {
        seen_usage: std::sync::Arc<std::sync::Mutex<Vec<Option<u64>>>>,
    }

    impl Rewrite for Upper {
        fn event(&mut self, event: &[u8], usage: Option<Usage>, out: &mut BytesMut) {
            if let Ok(mut seen) = self.seen_usage.lock() {
                seen.push(usage.map(|u| u.completion));
            }
            out.extend_from_slice(&event.to_ascii_uppercase());
        }

        fn end(&mut self, _: Option<Usage>, out: &mut BytesMut) {
            out.extend_from_slice(b"data: END\n\n");
        }
    }

    fn flow(rewrite: Option<Box<dyn Rewrite>>) -> Outflow {
        Outflow {
            scanner: EventScanner::new(false),
            rewrite,
            shadow: None,
        }
    }

    fn run(flow: &mut Outflow, parts: &[&str]) -> String {
        let mut out = String::new();
        for p in parts {
            if let Some(b) = flow.push(p.as_bytes()) {
                out.push_str(std::str::from_utf8(&b).unwrap());
            }
        }
        while let Some(b) = flow.finish() {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[test]
    fn without_a_rewrite_bytes_pass_unchanged() {
        let all = format!("{CONTENT}{CONTENT}{USAGE}{DONE}");
        let (a, b) = all.split_at(41);
        assert_eq!(run(&mut flow(None), &[a, b]), all);
    }

    #[test]
    fn a_rewrite_sees_each_whole_event_then_the_end_once() {
        let seen = std::sync::Arc::default();
        let mut f = flow(Some(Box::new(Upper {
            seen_usage: std::sync::Arc::clone(&seen),
        })));
        let all = format!("{CONTENT}{USAGE}{DONE}data: {{\"cut");
        let (a, b) = all.split_at(30);
        let out = run(&mut f, &[a, b]);
        assert_eq!(out, format!("{}data: END\n\n", all.to_ascii_uppercase()));
        // One call per event, the cut-off tail included; usage as scanned so far.
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Some(3), Some(3), Some(3), Some(3)]
        );
        // Nothing after the end, however often the body is polled.
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn a_shadowed_stream_passes_the_providers_bytes_and_reads_their_usage() {
        let anthropic = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",",
            "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],",
            "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,",
            "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
            "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
            "\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let mut f = flow(None);
        f.shadow = Some(Box::new(Shadow::new(
            crate::translate::stream::WireFormat::Anthropic,
            0,
        )));
        let (a, b) = anthropic.split_at(100);
        assert_eq!(run(&mut f, &[a, b]), anthropic);
        let usage = f.scanner.usage.expect("usage read from the copy");
        assert_eq!((usage.prompt, usage.completion), (5, 3));
        assert!(f.scanner.done);
    }

    #[test]
    fn incomplete_tail_is_passed_on_at_the_end() {
        let mut s = EventScanner::new(false);
        assert_eq!(
            relay(&mut s, &[CONTENT, "data: {\"cho"]),
            format!("{CONTENT}data: {{\"cho")
        );
    }
}
