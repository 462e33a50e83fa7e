//! The end of a request, as the usage metrics (and the request log) see it. A whole answer
//! ends when the handler returns; a stream ends when its last byte has gone, or when the
//! client goes away: the report is then completed from the body wrapper ([`Finishing`]),
//! after the relay has settled usage.

use super::body::ProxyBody;
use super::client_format::ClientFormat;
use crate::admission::settled::{Settled, SettledUsage};
use crate::reqlog::{AttemptRecord, CacheResult, GuardrailRecord, LogRecord, RequestLog};
use crate::telemetry::{Endpoint, Metrics, TokenCounts, TraceContext, TraceExporter};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What is known about a request when its answer (or refusal) has been decided.
pub struct RequestReport {
    pub started: Instant,
    pub endpoint: Endpoint,
    pub status: u16,
    /// The provider that answered, or whose attempts failed last; `None` when the request was
    /// refused before any provider was chosen.
    pub provider: Option<Arc<str>>,
    pub model: String,
    pub stream: bool,
    /// Filled by the reservation's settlement (for a stream, when the relay ends).
    pub settled: Arc<SettledUsage>,
    pub request_id: HeaderValue,
    /// The API shape the client spoke.
    pub format: ClientFormat,
    pub caller: Option<Caller>,
    pub requested_model: String,
    /// Failed attempts, as the 502 body lists them.
    pub attempts: Vec<serde_json::Value>,
    /// When each attempt started and how long it took: the failed ones, then the answering one.
    pub attempt_times: Vec<(Instant, Duration)>,
    /// The request's trace, when traces are exported.
    pub trace: Option<TraceContext>,
    /// (guardrail, action) for every action taken.
    pub guardrails: Vec<(Arc<str>, &'static str)>,
    /// The gateway's error type and message, when the answer is the gateway's refusal.
    pub error: Option<(&'static str, String)>,
    pub upstream_wait: Duration,
    /// Time inside the gateway until the answer's headers: total minus the upstream wait.
    pub overhead: Duration,
    /// Wall-clock arrival, for the request log.
    pub arrived: DateTime<Utc>,
    /// With `logs.bodies: true`: the body as sent to the provider (after redaction) and a
    /// whole answer as the client got it (after output guardrails).
    pub bodies: Option<(Bytes, Option<Bytes>)>,
    pub cache: super::cached::CacheResult,
}

/// Who made a request: the virtual key and its team and customer.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<str>,
    pub team: Option<Arc<str>>,
    pub customer: Option<Arc<str>>,
}

/// Sends the report where it goes once the answer has ended.
pub struct Finish {
    pub metrics: Arc<Metrics>,
    pub log: RequestLog,
    pub traces: Option<TraceExporter>,
    pub report: RequestReport,
}

/// How the answer's body ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// When the first bytes of a streamed answer were sent, from the request's arrival.
    pub first_byte: Option<Duration>,
    /// The client went away before the answer ended.
    pub client_disconnected: bool,
}

impl Finish {
    pub fn complete(self, ending: Ending) {
        let Finish {
            metrics,
            log,
            traces,
            report,
        } = self;
        let settled: Option<Settled> = report.settled.get();
        if let Some(provider) = &report.provider {
            if let Some(s) = settled {
                let tokens = TokenCounts {
                    prompt: s.usage.prompt,
                    cached: s.usage.cached,
                    completion: s.usage.completion,
                };
                if tokens.prompt + tokens.completion > 0 || s.cost_micros > 0 {
                    metrics
                        .usage
                        .record_usage(provider, &report.model, tokens, s.cost_micros);
                }
            }
            if let Some(ttft) = ending.first_byte {
                metrics.usage.record_ttft(provider, ttft);
            }
        }
        let total = report.started.elapsed();
        if let (Some(exporter), Some(trace)) = (&traces, report.trace) {
            exporter.export(super::spans::request_spans(&report, trace, settled, total));
        }
        if log.enabled() {
            // The record itself is made on the log's thread, off the response path.
            log.record_with(Box::new(move || {
                log_record(&report, settled, ending, total)
            }));
        }
    }

    /// Completes now for a whole answer; for a stream, wraps the body so the report is
    /// completed when the stream ends.
    pub fn attach(self, body: ProxyBody) -> ProxyBody {
        match body {
            ProxyBody::Full(_) => {
                self.complete(Ending::default());
                body
            }
            stream => ProxyBody::Finishing(Box::new(Finishing {
                inner: Some(stream),
                finish: Some(self),
                first_byte: None,
            })),
        }
    }
}

/// The request log's record of a finished request.
fn log_record(
    r: &RequestReport,
    settled: Option<Settled>,
    ending: Ending,
    total: Duration,
) -> LogRecord {
    let settled = settled.unwrap_or_default();
    let text = |v: &serde_json::Value, field: &str| {
        v.get(field).and_then(|f| f.as_str()).map(str::to_owned)
    };
    let mut attempts: Vec<AttemptRecord> = r
        .attempts
        .iter()
        .map(|a| AttemptRecord {
            provider: text(a, "provider").unwrap_or_default(),
            model: text(a, "model").unwrap_or_default(),
            status: a
                .get("status")
                .and_then(serde_json::Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
            error: text(a, "error").filter(|e| !e.is_empty()),
        })
        .collect();
    // The attempt that answered is not among the failed ones the proxy lists.
    // A cache hit made no attempt at all.
    let answered = !r.cache.is_hit();
    if let (Some(provider), None, true) = (&r.provider, &r.error, answered) {
        attempts.push(AttemptRecord {
            provider: provider.to_string(),
            model: r.model.clone(),
            status: Some(r.status),
            error: None,
        });
    }
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let (request_body, response_body) = match &r.bodies {
        Some((req, resp)) => (
            Some(String::from_utf8_lossy(req).into_owned()),
            resp.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        ),
        None => (None, None),
    };
    LogRecord {
        request_id: r.request_id.to_str().unwrap_or_default().to_owned(),
        time: r.arrived,
        key_id: r.caller.as_ref().map(|c| c.key.to_string()),
        team: r
            .caller
            .as_ref()
            .and_then(|c| c.team.as_deref().map(str::to_owned)),
        customer: r
            .caller
            .as_ref()
            .and_then(|c| c.customer.as_deref().map(str::to_owned)),
        endpoint: endpoint_name(r.endpoint, r.format).to_owned(),
        requested_model: (!r.requested_model.is_empty()).then(|| r.requested_model.clone()),
        provider: r.provider.as_deref().map(str::to_owned),
        model: (!r.model.is_empty()).then(|| r.model.clone()),
        attempts,
        status: r.status,
        error_type: r.error.as_ref().map(|(kind, _)| (*kind).to_owned()),
        prompt_tokens: settled.usage.prompt,
        completion_tokens: settled.usage.completion,
        cached_tokens: settled.usage.cached,
        cost_usd: settled.cost_micros as f64 / 1e6,
        cache: match r.cache {
            super::cached::CacheResult::Off => CacheResult::Off,
            super::cached::CacheResult::Miss => CacheResult::Miss,
            super::cached::CacheResult::HitExact => CacheResult::HitExact,
            super::cached::CacheResult::HitSemantic => CacheResult::HitSemantic,
        },
        guardrails: r
            .guardrails
            .iter()
            .map(|(name, action)| GuardrailRecord {
                name: name.to_string(),
                action: (*action).to_owned(),
            })
            .collect(),
        total_us: micros(total),
        upstream_us: (!r.upstream_wait.is_zero()).then(|| micros(r.upstream_wait)),
        ttft_us: ending.first_byte.map(micros),
        overhead_us: micros(r.overhead),
        stream: r.stream,
        client_disconnected: ending.client_disconnected,
        request_body,
        response_body,
        tool: None,
    }
}

/// The endpoint as the request log names it.
pub(super) fn endpoint_name(endpoint: Endpoint, format: ClientFormat) -> &'static str {
    match (endpoint, format) {
        (Endpoint::Chat, ClientFormat::Anthropic) => "messages",
        (Endpoint::Chat, ClientFormat::Responses) => "responses",
        (Endpoint::Chat, ClientFormat::Gemini) => "generate",
        (endpoint, _) => endpoint.as_str(),
    }
}

/// A streamed answer that completes its request's report when it ends or is dropped.
pub struct Finishing {
    /// Taken before completing on drop, so the relay inside settles first.
    inner: Option<ProxyBody>,
    finish: Option<Finish>,
    first_byte: Option<Duration>,
}

impl Finishing {
    fn end(&mut self, client_disconnected: bool) {
        drop(self.inner.take());
        if let Some(finish) = self.finish.take() {
            finish.complete(Ending {
                first_byte: self.first_byte,
                client_disconnected,
            });
        }
    }
}

impl Body for Finishing {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if this.first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    if let Some(f) = &this.finish {
                        this.first_byte = Some(f.report.started.elapsed());
                    }
                }
            }
            Poll::Ready(None) => this.end(false),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        // Still unfinished: the client went away mid-stream.
        if self.finish.is_some() {
            self.end(true);
        }
    }
}
