//! The HTTP+SSE transport of MCP 2024-11-05, client side, for servers that have not moved to
//! streamable HTTP (rmcp dropped it): a GET opens an event stream whose first `endpoint` event
//! names the URL to POST messages to; answers come back as `message` events on the stream.

use crate::proxy::UpstreamClient;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest wait for the `endpoint` event after the stream opens.
const ENDPOINT_WAIT: Duration = Duration::from_secs(15);

pub struct SseTransport {
    client: UpstreamClient,
    headers: Vec<(HeaderName, HeaderValue)>,
    post_url: Uri,
    rx: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseTransport {
    pub async fn connect(
        client: UpstreamClient,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<SseTransport, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad url `{url}`: {e}"))?;
        let mut req = Request::get(uri.clone()).header(http::header::ACCEPT, "text/event-stream");
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url} answered {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut events = EventBuffer::default();
        // The first event names where to POST.
        let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
            loop {
                if let Some((kind, data)) = events.next_event() {
                    if kind == "endpoint" {
                        return Ok(data);
                    }
                    continue;
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            events.push(d);
                        }
                    }
                    _ => {
                        return Err("the event stream ended before an `endpoint` event".to_string())
                    }
                }
            }
        })
        .await
        .map_err(|_| format!("no `endpoint` event from {url} within {ENDPOINT_WAIT:?}"))??;
        let post_url = resolve(&uri, endpoint.trim())?;
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            loop {
                while let Some((kind, data)) = events.next_event() {
                    if kind != "message" {
                        continue;
                    }
                    match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
                        Ok(m) => {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable MCP message on SSE stream")
                        }
                    }
                }
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            events.push(d);
                        }
                    }
                    // The stream ended: dropping `tx` closes the session.
                    _ => return,
                }
            }
        });
        Ok(SseTransport {
            client,
            headers,
            post_url,
            rx,
            reader,
        })
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let client = self.client.clone();
        let url = self.post_url.clone();
        let headers = self.headers.clone();
        async move {
            let body = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            let mut req =
                Request::post(url.clone()).header(http::header::CONTENT_TYPE, "application/json");
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(std::io::Error::other)?;
            let resp = client.request(req).await.map_err(std::io::Error::other)?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "POST {url} answered {}",
                    resp.status()
                )))
            }
        }
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.rx.recv()
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.reader.abort();
        std::future::ready(Ok(()))
    }
}

/// The `endpoint` event's URL: absolute, or a path on the stream's origin.
fn resolve(base: &Uri, endpoint: &str) -> Result<Uri, String> {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return endpoint
            .parse()
            .map_err(|e| format!("bad endpoint `{endpoint}`: {e}"));
    }
    let origin = format!(
        "{}://{}",
        base.scheme_str().unwrap_or("http"),
        base.authority().map_or("", |a| a.as_str())
    );
    let path = if endpoint.starts_with('/') {
        endpoint.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{endpoint}")
    };
    format!("{origin}{path}")
        .parse()
        .map_err(|e| format!("bad endpoint `{endpoint}`: {e}"))
}

/// Server-sent events from a byte stream: `(event type, data)`; the type defaults to
/// `message`, multi-line data is joined with `\n`.
#[derive(Default)]
struct EventBuffer {
    buf: Vec<u8>,
}

impl EventBuffer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            let (end, sep) = find_blank_line(&self.buf)?;
            let block: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut kind = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in text.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => kind = value.to_string(),
                    "data" => data.push(value),
                    _ => {} // comments (`: ping`), ids and retry hints
                }
            }
            if !data.is_empty() {
                return Some((kind, data.join("\n")));
            }
        }
    }
}

/// Where the first event ends: (offset, separator length).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = memchr::memmem::find(buf, b"\n\n").map(|i| (i, 2));
    let crlf = memchr::memmem::find(buf, b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut e = EventBuffer::default();
        e.push(b"event: endpoint\r\ndata: /messages/?session_id=1\r\n\r\n: ping\n\nda");
        assert_eq!(
            e.next_event(),
            Some(("endpoint".into(), "/messages/?session_id=1".into()))
        );
        assert_eq!(e.next_event(), None);
        e.push(b"ta: {\"a\":1}\n\n");
        assert_eq!(e.next_event(), Some(("message".into(), "{\"a\":1}".into())));
    }

    #[test]
    fn endpoints_resolve_against_the_stream_url() {
        let base: Uri = "http://127.0.0.1:9000/mcp/sse".parse().unwrap();
        assert_eq!(
            resolve(&base, "/messages/?s=1").unwrap(),
            "http://127.0.0.1:9000/messages/?s=1"
        );
        assert_eq!(
            resolve(&base, "messages?s=1").unwrap(),
            "http://127.0.0.1:9000/mcp/messages?s=1"
        );
        assert_eq!(
            resolve(&base, "https://x.example/m").unwrap(),
            "https://x.example/m"
        );
    }
}
