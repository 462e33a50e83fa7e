//! A finished request as trace spans: the gateway's server span with the OpenTelemetry GenAI
//! attributes (operation, provider, requested and served model, token usage) and the cost,
//! and one client span per upstream attempt.

use super::finish::{endpoint_name, RequestReport};
use crate::admission::settled::Settled;
use crate::telemetry::{new_span_id, Attr, Endpoint, SpanData, TraceContext};
use std::time::{Duration, Instant};

pub(super) fn request_spans(
    r: &RequestReport,
    trace: TraceContext,
    settled: Option<Settled>,
    total: Duration,
) -> Vec<SpanData> {
    let start = u64::try_from(r.arrived.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    // Instants become wall-clock nanoseconds relative to the request's arrival.
    let at = |i: Instant| start + nanos(i.saturating_duration_since(r.started));
    let operation = match r.endpoint {
        Endpoint::Embeddings => "embeddings",
        _ => "chat",
    };
    let mut attributes = vec![
        ("gen_ai.operation.name", Attr::Str(operation.into())),
        ("gen_ai.request.model", Attr::Str(r.requested_model.clone())),
        ("http.response.status_code", Attr::Int(i64::from(r.status))),
        (
            "tollgate.request_id",
            Attr::Str(r.request_id.to_str().unwrap_or_default().into()),
        ),
        (
            "tollgate.endpoint",
            Attr::Str(endpoint_name(r.endpoint, r.format).into()),
        ),
    ];
    if let Some(provider) = &r.provider {
        attributes.push(("gen_ai.provider.name", Attr::Str(provider.to_string())));
        attributes.push(("gen_ai.response.model", Attr::Str(r.model.clone())));
    }
    if let Some(caller) = &r.caller {
        attributes.push(("tollgate.virtual_key", Attr::Str(caller.key.to_string())));
    }
    if let Some(s) = settled {
        let int = |n: u64| Attr::Int(i64::try_from(n).unwrap_or(i64::MAX));
        attributes.push(("gen_ai.usage.input_tokens", int(s.usage.prompt)));
        attributes.push(("gen_ai.usage.output_tokens", int(s.usage.completion)));
        attributes.push((
            "tollgate.cost_usd",
            Attr::Double(s.cost_micros as f64 / 1e6),
        ));
    }
    if let Some((kind, _)) = &r.error {
        attributes.push(("error.type", Attr::Str((*kind).into())));
    }
    let mut spans = vec![SpanData {
        trace,
        span_id: trace.span_id,
        parent: trace.parent,
        name: format!("{operation} {}", r.requested_model),
        kind: 2,
        start_unix_nanos: start,
        end_unix_nanos: start + nanos(total),
        attributes,
        error: r.error.as_ref().map(|(_, message)| message.clone()),
    }];
    for (n, (began, took)) in r.attempt_times.iter().enumerate() {
        // The failed attempts are listed first, in order; the answering one comes last.
        let failed = r.attempts.get(n);
        let text = |field: &str| {
            failed
                .and_then(|a| a.get(field))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let provider = text("provider").or_else(|| r.provider.as_deref().map(str::to_owned));
        let model = text("model").unwrap_or_else(|| r.model.clone());
        let status = match failed {
            Some(a) => a.get("status").and_then(serde_json::Value::as_i64),
            None => Some(i64::from(r.status)),
        };
        let mut attributes = vec![("gen_ai.request.model", Attr::Str(model.clone()))];
        if let Some(p) = provider {
            attributes.push(("gen_ai.provider.name", Attr::Str(p)));
        }
        if let Some(code) = status {
            attributes.push(("http.response.status_code", Attr::Int(code)));
        }
        spans.push(SpanData {
            trace,
            span_id: new_span_id(),
            parent: Some(trace.span_id),
            name: format!("{operation} {model}"),
            kind: 3,
            start_unix_nanos: at(*began),
            end_unix_nanos: at(*began) + nanos(*took),
            attributes,
            error: failed.map(|_| text("error").unwrap_or_else(|| "attempt failed".into())),
        });
    }
    spans
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
