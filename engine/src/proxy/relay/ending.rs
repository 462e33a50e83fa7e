//! How a relayed stream ends when its upstream fails after the client got the response
//! headers: the connection drops, an event is not JSON, the upstream goes silent for longer
//! than `stream_idle_timeout`, or the attempt outlasts `timeout`. The client then gets one
//! last event, `data: {"error": {...}}` (the OpenAI SDKs raise it as an `APIError`), and no
//! `[DONE]`, so the cut-short answer cannot pass for a whole one.

use crate::error::{ApiError, ErrorType};
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a stream was ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The upstream connection failed mid-body (the error chain).
    Dropped(String),
    /// A `data:` event whose payload is not JSON.
    Malformed,
    /// No chunk for `stream_idle_timeout`.
    Idle(Duration),
    /// The attempt reached `timeout`.
    Deadline(Duration),
}

impl Broken {
    fn error(&self, provider: &str) -> ApiError {
        let (kind, message) = match self {
            Broken::Dropped(e) => (
                ErrorType::UpstreamError,
                format!("provider `{provider}` broke off the stream: {e}"),
            ),
            Broken::Malformed => (
                ErrorType::UpstreamError,
                format!("provider `{provider}` sent a stream event that is not valid JSON"),
            ),
            Broken::Idle(d) => (
                ErrorType::UpstreamTimeout,
                format!(
                    "provider `{provider}` sent nothing for {} ms (stream_idle_timeout)",
                    d.as_millis()
                ),
            ),
            Broken::Deadline(d) => (
                ErrorType::UpstreamTimeout,
                format!(
                    "provider `{provider}` did not finish the stream within {} ms (timeout)",
                    d.as_millis()
                ),
            ),
        };
        ApiError::new(kind, format!("{message}; the answer is incomplete"))
    }

    /// `prefix` (events still owed to the client), then the error event.
    pub fn event(&self, provider: &str, prefix: Option<Bytes>) -> Bytes {
        let body = self.error(provider).openai_body();
        let mut out =
            BytesMut::with_capacity(prefix.as_ref().map_or(0, Bytes::len) + body.len() + 8);
        if let Some(p) = prefix {
            out.extend_from_slice(&p);
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
        out.freeze()
    }
}

/// The bounds of one relayed stream, and the provider to name when one is exceeded.
pub struct StreamBounds {
    pub provider: Arc<str>,
    /// When the attempt began plus `timeout`.
    pub deadline: Instant,
    pub total: Duration,
    pub idle: Duration,
}

/// Watches a stream's bounds with one timer. Chunks only note when they came; the timer is
/// moved when it fires early, so a fast stream does not touch the timer wheel per chunk.
pub struct Watchdog {
    bounds: StreamBounds,
    last_chunk: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl Watchdog {
    pub fn new(bounds: StreamBounds) -> Watchdog {
        Watchdog {
            timer: Box::pin(tokio::time::sleep_until(bounds.deadline)),
            bounds,
            last_chunk: None,
        }
    }

    pub fn provider(&self) -> &str {
        &self.bounds.provider
    }

    /// A chunk arrived. The idle bound starts with the first one: before it, a model may
    /// still be thinking, and only `timeout` applies.
    pub fn chunk(&mut self) {
        let now = Instant::now();
        if self.last_chunk.is_none() {
            // The only time the due moment comes earlier: move the timer there.
            let due = self.due_after(now);
            self.timer.as_mut().reset(due);
        }
        self.last_chunk = Some(now);
    }

    fn due_after(&self, last_chunk: Instant) -> Instant {
        (last_chunk + self.bounds.idle).min(self.bounds.deadline)
    }

    /// Polled while the upstream has nothing: `Ready` once a bound is exceeded.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Broken> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if now >= self.bounds.deadline {
                return Poll::Ready(Broken::Deadline(self.bounds.total));
            }
            let due = self
                .last_chunk
                .map_or(self.bounds.deadline, |t| self.due_after(t));
            if now >= due {
                return Poll::Ready(Broken::Idle(self.bounds.idle));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(idle_ms: u64, total_ms: u64) -> StreamBounds {
        StreamBounds {
            provider: "p".into(),
            deadline: Instant::now() + Duration::from_millis(total_ms),
            total: Duration::from_millis(total_ms),
            idle: Duration::from_millis(idle_ms),
        }
    }

    async fn expiry(w: &mut Watchdog) -> Broken {
        std::future::poll_fn(|cx| w.poll_expired(cx)).await
    }

    #[tokio::test]
    async fn silence_after_a_chunk_is_idle_and_before_any_only_the_deadline_counts() {
        let mut w = Watchdog::new(bounds(30, 10_000));
        w.chunk();
        assert_eq!(
            expiry(&mut w).await,
            Broken::Idle(Duration::from_millis(30))
        );

        let mut w = Watchdog::new(bounds(30, 120));
        let started = std::time::Instant::now();
        assert_eq!(
            expiry(&mut w).await,
            Broken::Deadline(Duration::from_millis(120))
        );
        assert!(started.elapsed() >= Duration::from_millis(120));
    }

    #[tokio::test]
    async fn chunks_keep_a_stream_alive_until_its_deadline() {
        let mut w = Watchdog::new(bounds(150, 300));
        let started = std::time::Instant::now();
        w.chunk();
        while started.elapsed() < Duration::from_millis(200) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            w.chunk();
        }
        assert_eq!(
            expiry(&mut w).await,
            Broken::Deadline(Duration::from_millis(300))
        );
    }

    #[test]
    fn the_error_event_is_openai_shaped_and_typed() {
        let ev =
            Broken::Idle(Duration::from_millis(500)).event("p", Some(Bytes::from("data: {}\n\n")));
        let text = std::str::from_utf8(&ev).unwrap();
        let json = text
            .strip_prefix("data: {}\n\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["error"]["type"], "upstream_timeout");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500 ms (stream_idle_timeout)"));
        let dropped = Broken::Dropped("reset".into()).event("p", None);
        assert!(std::str::from_utf8(&dropped)
            .unwrap()
            .contains("\"type\":\"upstream_error\""));
    }
}
