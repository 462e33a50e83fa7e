//! OpenTelemetry trace export over OTLP/HTTP with JSON encoding: one server span per request
//! (GenAI semantic-convention attributes: operation, provider, models, tokens; plus cost) and
//! one client span per upstream attempt. Spans are queued without waiting and posted in
//! batches by one task; a full queue or a collector that is down loses spans and counts them,
//! never slowing a request. Off unless `traces:` names an endpoint.

use super::trace_context::TraceContext;
use crate::proxy::UpstreamClient;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// `traces:` in the config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. Unset:
    /// no traces.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Headers sent with every export (a collector's auth token, ...).
    #[serde(default, serialize_with = "crate::config::redact_map")]
    pub headers: BTreeMap<String, String>,
    /// `service.name` of the exported resource (default `tollgate`).
    #[serde(default)]
    pub service_name: Option<String>,
}

/// A span attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanData {
    pub trace: TraceContext,
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    /// 2 = server, 3 = client (OTLP's `SpanKind`).
    pub kind: u8,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// `Some(message)` marks the span as failed.
    pub error: Option<String>,
}

const QUEUE: usize = 4096;
const BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's handle: cheap to clone.
#[derive(Clone)]
pub struct TraceExporter {
    tx: mpsc::Sender<Vec<SpanData>>,
    pub counters: Arc<TraceCounters>,
}

#[derive(Debug, Default)]
pub struct TraceCounters {
    pub exported: AtomicU64,
    /// Spans lost to a full queue or a failed export.
    pub dropped: AtomicU64,
}

impl TraceExporter {
    /// Checks the config and starts the export task. `Ok(None)`: traces are off.
    pub fn start(
        config: &TracesConfig,
        client: UpstreamClient,
    ) -> Result<Option<TraceExporter>, String> {
        let Some(endpoint) = &config.endpoint else {
            return Ok(None);
        };
        let uri: Uri = endpoint
            .parse()
            .ok()
            .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")))
            .ok_or_else(|| {
                format!("traces.endpoint `{endpoint}` is not an http:// or https:// URL")
            })?;
        let mut headers = Vec::new();
        for (name, value) in &config.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| format!("traces.headers: `{name}` is not a header name"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("traces.headers.{name}: not a valid header value"))?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        let service = config
            .service_name
            .clone()
            .unwrap_or_else(|| "tollgate".into());
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(TraceCounters::default());
        let target = Target {
            uri,
            headers,
            service,
            client,
        };
        tokio::spawn(export_loop(rx, target, counters.clone()));
        Ok(Some(TraceExporter { tx, counters }))
    }

    /// Queues the spans of one request; never waits.
    pub fn export(&self, spans: Vec<SpanData>) {
        let n = spans.len() as u64;
        if self.tx.try_send(spans).is_err() {
            self.counters.dropped.fetch_add(n, Relaxed);
        }
    }
}

struct Target {
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    service: String,
    client: UpstreamClient,
}

async fn export_loop(
    mut rx: mpsc::Receiver<Vec<SpanData>>,
    target: Target,
    counters: Arc<TraceCounters>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else { return };
        batch.extend(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(more)) => batch.extend(more),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        match post(&target, &batch).await {
            Ok(()) => counters.exported.fetch_add(n, Relaxed),
            Err(e) => {
                tracing::warn!(error = %e, spans = n, "trace export failed");
                counters.dropped.fetch_add(n, Relaxed)
            }
        };
        batch.clear();
    }
}

async fn post(target: &Target, spans: &[SpanData]) -> Result<(), String> {
    let body = encode(&target.service, spans).to_string();
    let mut req = Request::post(target.uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in &target.headers {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    let resp = tokio::time::timeout(EXPORT_TIMEOUT, target.client.request(req))
        .await
        .map_err(|_| "the collector did not answer within 10 s".to_string())?
        .map_err(|e| format!("cannot reach the collector: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the collector answered {}", resp.status()))
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `spans` (ids in hex, 64-bit integers as
/// strings, as the OTLP JSON mapping requires).
pub fn encode(service: &str, spans: &[SpanData]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": hex::encode(s.trace.trace_id),
                "spanId": hex::encode(s.span_id),
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": s.start_unix_nanos.to_string(),
                "endTimeUnixNano": s.end_unix_nanos.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                "status": match &s.error {
                    Some(message) => json!({"code": 2, "message": message}),
                    None => json!({"code": 1}),
                },
            });
            if let Some(parent) = s.parent {
                span["parentSpanId"] = hex::encode(parent).into();
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", &Attr::Str(service.into()))]},
        "scopeSpans": [{"scope": {"name": "tollgate"}, "spans": spans}],
    }]})
}

fn attribute(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(s) => json!({"stringValue": s}),
        Attr::Int(i) => json!({"intValue": i.to_string()}),
        Attr::Double(d) => json!({"doubleValue": d}),
    };
    json!({"key": key, "value": value})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_encode_as_otlp_json() {
        let trace = TraceContext::from_header(Some(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        let span = SpanData {
            trace,
            span_id: trace.span_id,
            parent: trace.parent,
            name: "chat gpt-4o".into(),
            kind: 2,
            start_unix_nanos: 1_000,
            end_unix_nanos: 2_000,
            attributes: vec![
                ("gen_ai.request.model", Attr::Str("gpt-4o".into())),
                ("gen_ai.usage.input_tokens", Attr::Int(12)),
            ],
            error: None,
        };
        let v = encode("svc", &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(s["startTimeUnixNano"], "1000");
        assert_eq!(
            s["attributes"][1],
            json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}})
        );
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "svc"
        );
    }
}
