//! The response cache on the request path (exact, then semantic). The lookup comes after the key, the model
//! check, input guardrails and routing rules (a refused request is never answered from cache,
//! and the key holds the model the rules chose), and before limits and providers. What is kept
//! is the pipeline's OpenAI answer after output guardrails, whole or as the SSE bytes the
//! client was sent; a hit goes back through the client's door like a fresh answer, so one
//! entry serves the format it was made for, streamed or not as it was asked.

use super::body::ProxyBody;
use super::respond::{ProxyResponse, REQUEST_ID};
use crate::cache::semantic::semantic_text;
use crate::cache::{
    CacheDirectives, CacheKey, CacheMode, CachedUsage, Entry, Lookup, ResponseCache,
};
use crate::error::{ApiError, ErrorType};
use crate::plan::KeyPlan;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The `x-tollgate-cache` response header.
pub const CACHE_HEADER: &str = "x-tollgate-cache";
/// A streamed answer longer than this is not kept (it would be held in memory while it
/// streams).
const MAX_RECORDED: usize = 4 << 20;

/// What the cache did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Caching is off for this request.
    Off,
    Miss,
    HitExact,
    HitSemantic,
}

impl CacheResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Off => "off",
            CacheResult::Miss => "miss",
            CacheResult::HitExact => "hit-exact",
            CacheResult::HitSemantic => "hit-semantic",
        }
    }

    pub fn is_hit(self) -> bool {
        matches!(self, CacheResult::HitExact | CacheResult::HitSemantic)
    }
}

/// Where a miss's answer is stored.
#[derive(Clone)]
pub struct StoreAs {
    pub cache: ResponseCache,
    pub key: CacheKey,
    pub ttl: Duration,
    /// The request's embedding, when the semantic layer looked it up: the answer is indexed
    /// under it.
    pub vector: Option<Arc<[f32]>>,
}

/// The cache's answer to one request.
pub enum Looked {
    Off,
    /// A stored answer, and for a semantic hit the similarity of the request it answered.
    Hit(Entry, Option<f32>),
    Miss(StoreAs),
}

/// Reads the per-request cache headers and looks the request up. `Err`: a malformed
/// `x-tollgate-cache*` header (400).
pub async fn look_up(
    cache: &ResponseCache,
    headers: &HeaderMap,
    path: &str,
    model: &str,
    body: &Bytes,
    key: &KeyPlan,
) -> Result<Looked, ApiError> {
    let directives = CacheDirectives::from_headers(headers)
        .map_err(|e| ApiError::new(ErrorType::InvalidRequest, e.to_string()))?;
    let effective = cache.effective(&directives);
    if effective.mode == CacheMode::Off {
        return Ok(Looked::Off);
    }
    if effective.mode == CacheMode::Semantic && cache.semantic().is_none() {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            "the semantic cache is not configured on this gateway (cache.embedder); use \
             x-tollgate-cache: exact",
        ));
    }
    // The body was parsed before; only cached requests pay for a second, full parse.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(Looked::Off);
    };
    let scope = cache
        .config()
        .scope
        .id(&key.id, key.team.as_deref(), key.customer.as_deref());
    let cache_key = cache.key(path, model, &value, scope, directives.namespace.as_deref());
    let mut to = StoreAs {
        cache: cache.clone(),
        key: cache_key,
        ttl: effective.ttl,
        vector: None,
    };
    match cache.lookup(&directives, &cache_key).await {
        Lookup::Hit(entry) => return Ok(Looked::Hit(entry, None)),
        Lookup::Bypass => return Ok(Looked::Off),
        Lookup::Miss => {}
    }
    if effective.mode == CacheMode::Semantic {
        let text = semantic_text(&value, cache.config().history);
        if let Some(text) = &text {
            to.key = cache_key.with_digits_of(text);
        }
        if let Some(found) = cache
            .semantic_lookup(&to.key, text, effective.threshold)
            .await
        {
            to.vector = found.vector;
            if let Some((entry, similarity)) = found.hit {
                return Ok(Looked::Hit(entry, Some(similarity)));
            }
        }
    }
    Ok(Looked::Miss(to))
}

/// A hit as the pipeline's answer: the stored body, whole or as a stream to replay.
pub fn hit_response(
    entry: Entry,
    similarity: Option<f32>,
    request_id: &HeaderValue,
) -> ProxyResponse {
    let body = if entry.stream {
        ProxyBody::Replay(Some(entry.body))
    } else {
        ProxyBody::full(entry.body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    let content_type = entry.content_type.as_deref().unwrap_or(if entry.stream {
        "text/event-stream"
    } else {
        "application/json"
    });
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(REQUEST_ID, request_id.clone());
    match similarity {
        None => {
            h.insert(CACHE_HEADER, HeaderValue::from_static("hit-exact"));
        }
        Some(similarity) => {
            h.insert(CACHE_HEADER, HeaderValue::from_static("hit-semantic"));
            if let Ok(v) = HeaderValue::from_str(&format!("{similarity:.4}")) {
                h.insert("x-tollgate-cache-similarity", v);
            }
        }
    }
    for (name, value) in [
        ("x-tollgate-provider", &entry.provider),
        ("x-tollgate-model", &entry.model),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    h.insert("x-tollgate-attempts", HeaderValue::from(0));
    resp
}

/// Stores a whole successful answer, off the response path.
pub fn store_whole(to: &StoreAs, status: u16, body: Bytes, usage: CachedUsage, by: (&str, &str)) {
    let entry = entry(to, status, body, false, usage, by);
    to.cache.store(to.key, entry, to.vector.clone());
}

fn entry(
    to: &StoreAs,
    status: u16,
    body: Bytes,
    stream: bool,
    usage: CachedUsage,
    (provider, model): (&str, &str),
) -> Entry {
    Entry {
        status,
        content_type: Some(
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            }
            .into(),
        ),
        body,
        stream,
        usage,
        created_at_ms: crate::cache::unix_ms_now(),
        ttl: to.ttl,
        provider: provider.into(),
        model: model.into(),
    }
}

/// A streamed answer on its way to the client, copied as it passes; stored once it has ended
/// with `[DONE]` (a broken or cut-off stream is not kept).
pub struct Recording {
    inner: Box<ProxyBody>,
    recorded: Option<BytesMut>,
    to: StoreAs,
    provider: String,
    model: String,
}

impl Recording {
    pub fn new(inner: ProxyBody, to: StoreAs, by: (&str, &str)) -> Recording {
        Recording {
            inner: Box::new(inner),
            recorded: Some(BytesMut::new()),
            to,
            provider: by.0.into(),
            model: by.1.into(),
        }
    }

    fn finish(&mut self) {
        let Some(recorded) = self.recorded.take() else {
            return;
        };
        let complete = recorded.ends_with(b"data: [DONE]\n\n")
            && memchr::memmem::find(&recorded, b"data: {\"error\"").is_none();
        if complete {
            let entry = entry(
                &self.to,
                200,
                recorded.freeze(),
                true,
                CachedUsage::default(),
                (&self.provider, &self.model),
            );
            self.to
                .cache
                .store(self.to.key, entry, self.to.vector.clone());
        }
    }
}

impl Body for Recording {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(this.inner.as_mut()).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(recorded)) = (frame.data_ref(), this.recorded.as_mut()) {
                    if recorded.len() + data.len() > MAX_RECORDED {
                        this.recorded = None;
                    } else {
                        recorded.extend_from_slice(data);
                    }
                }
            }
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => this.recorded = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
