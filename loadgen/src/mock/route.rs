//! Request handling: control endpoints, recording, failure decisions, then the answer in the
//! endpoint's own format.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;

use super::body::{truncate_payload, MockBody};
use super::faults::{self, Fault};
use super::reply::{Answer, Content};
use super::request::{self, prompt_tokens};
use super::{anthropic, bedrock, bedrock_embed, gemini, openai, Format, State};

/// Request bodies above this are refused; mocks only ever see test prompts.
const MAX_BODY: usize = 32 << 20;

// Functions rather than consts: `HeaderValue` has interior mutability, and `from_static` is free.
fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}
fn event_stream_type() -> HeaderValue {
    HeaderValue::from_static("text/event-stream")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Chat,
    Embeddings,
    Models,
    Messages,
    CountTokens,
    Gemini {
        model: &'a str,
        stream: bool,
    },
    /// `/models/{model}:batchEmbedContents`.
    GeminiEmbed {
        model: &'a str,
    },
    /// `/model/{id}/converse` and `/model/{id}/converse-stream` (the id stays percent-encoded).
    Bedrock {
        stream: bool,
    },
    /// `/model/{id}/invoke`, for embedding models (the id stays percent-encoded).
    BedrockInvoke {
        model: &'a str,
    },
    Unknown,
}

impl<'a> Endpoint<'a> {
    /// Matched on the path suffix so any base URL prefix (`/v1`, `/openai/v1`, `/v1beta`) works.
    fn of(method: &Method, path: &'a str) -> Self {
        if path.ends_with("/chat/completions") {
            Endpoint::Chat
        } else if path.ends_with("/embeddings") {
            Endpoint::Embeddings
        } else if path.ends_with("/messages") {
            Endpoint::Messages
        } else if path.ends_with("/messages/count_tokens") {
            Endpoint::CountTokens
        } else if path.starts_with("/model/") && path.ends_with("/converse") {
            Endpoint::Bedrock { stream: false }
        } else if path.starts_with("/model/") && path.ends_with("/converse-stream") {
            Endpoint::Bedrock { stream: true }
        } else if let Some(model) = path
            .strip_prefix("/model/")
            .and_then(|p| p.strip_suffix("/invoke"))
        {
            Endpoint::BedrockInvoke { model }
        } else if let Some((model, action)) = path
            .rfind("/models/")
            .and_then(|i| path[i + "/models/".len()..].split_once(':'))
        {
            match action {
                "generateContent" => Endpoint::Gemini {
                    model,
                    stream: false,
                },
                "streamGenerateContent" => Endpoint::Gemini {
                    model,
                    stream: true,
                },
                "batchEmbedContents" => Endpoint::GeminiEmbed { model },
                _ => Endpoint::Unknown,
            }
        } else if path.ends_with("/models") && method == Method::GET {
            Endpoint::Models
        } else {
            Endpoint::Unknown
        }
    }

    fn format(self, default: Format) -> Format {
        match self {
            Endpoint::Chat | Endpoint::Embeddings => Format::Openai,
            Endpoint::Messages | Endpoint::CountTokens => Format::Anthropic,
            Endpoint::Gemini { .. } | Endpoint::GeminiEmbed { .. } => Format::Gemini,
            Endpoint::Bedrock { .. } | Endpoint::BedrockInvoke { .. } => Format::Bedrock,
            Endpoint::Models | Endpoint::Unknown => default,
        }
    }
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    // Counted as cancelled if hyper drops this future (the client went away) or, for a stream,
    // the body before its last frame.
    let pending = (!req.uri().path().starts_with("/_mock/")).then(|| state.outcomes.begin());
    let response = respond(state, req).await?;
    Ok(match pending {
        Some(p) => response.map(|body| body.finish_with(p)),
        None => response,
    })
}

async fn respond(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.uri.path().starts_with("/_mock/") {
        return Ok(control(&state, &parts));
    }
    let config = &state.config;
    let path = parts.uri.path();
    let endpoint = Endpoint::of(&parts.method, path);
    let format = endpoint.format(config.format);

    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(error(
                format,
                400,
                &format!("cannot read request body: {e}"),
            ))
        }
    };
    state
        .recorder
        .record(&parts.method, &parts.uri, &parts.headers, &body);

    if faults::uses_failing_key(&config.fail_keys, &parts.headers, parts.uri.query()) {
        return Ok(error(
            format,
            config.fail_keys_status,
            "key refused (mock --fail-keys)",
        ));
    }
    let fault = match faults::for_request(&parts.headers, config.fault) {
        Ok(fault) => fault,
        Err(msg) => return Ok(error(format, 400, &msg)),
    };
    let delay = match fault {
        Fault::Hang => return std::future::pending().await,
        Fault::SlowFirstByte(d) => d.unwrap_or(config.first_byte_delay),
        _ => first_byte_latency(config.latency, config.jitter),
    };
    let response = if let Fault::Status(code) = fault {
        error(format, code, "mock fault")
    } else if config
        .fail_first
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        error(format, config.fail_status, "mock failure (--fail-first)")
    } else if config.fail_rate > 0.0
        // A request that names its fault gets exactly that fault, so tests can send clean
        // requests (`x-mock-fault: none`) to a mock that fails randomly.
        && !parts.headers.contains_key("x-mock-fault")
        && fastrand::f64() < config.fail_rate
    {
        error(format, config.fail_status, "mock failure")
    } else {
        answer(&state, endpoint, &parts, &body, fault)
    };
    if !delay.is_zero() {
        state.timer.sleep(delay).await;
    }
    Ok(response)
}

fn first_byte_latency(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = jitter.as_micros().min(i64::MAX as u128) as i64;
    let base = latency.as_micros().min(i64::MAX as u128) as i64;
    Duration::from_micros((base + fastrand::i64(-j..=j)).max(0) as u64)
}

/// `/_mock/requests` (GET lists, DELETE clears) and `/_mock/stats` (GET, DELETE resets).
fn control(state: &State, parts: &Parts) -> Response<MockBody> {
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/_mock/requests") => json(StatusCode::OK, state.recorder.to_json()),
        (&Method::DELETE, "/_mock/requests") => {
            state.recorder.clear();
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/_mock/stats") => {
            let (completed, cancelled) = state.outcomes.counts();
            let body = format!(
                r#"{{"requests":{},"completed":{completed},"cancelled":{cancelled}}}"#,
                state.recorder.total()
            );
            json(StatusCode::OK, body.into_bytes())
        }
        (&Method::DELETE, "/_mock/stats") => {
            state.recorder.reset_total();
            state.outcomes.reset();
            empty(StatusCode::NO_CONTENT)
        }
        _ => json(
            StatusCode::NOT_FOUND,
            br#"{"error":"unknown /_mock endpoint"}"#.to_vec(),
        ),
    }
}

fn answer(
    state: &State,
    endpoint: Endpoint,
    parts: &Parts,
    body: &Bytes,
    fault: Fault,
) -> Response<MockBody> {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let replies = &state.replies;
    let bad_body =
        |format, e: serde_json::Error| error(format, 400, &format!("invalid JSON body: {e}"));

    match endpoint {
        Endpoint::Chat => {
            let req: request::OpenAiChat = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_body(Format::Openai, e),
            };
            let content = match req.first_tool() {
                Some(name) if req.messages.last_user_mentions_weather => Content::Tool { name },
                _ => Content::Text(replies.for_cap(req.max_completion_tokens.or(req.max_tokens))),
            };
            let a = Answer {
                id,
                created,
                model: req.model.as_deref().unwrap_or("gpt-4o-mini"),
                prompt_tokens: prompt_tokens(req.messages.chars),
                content,
                replies,
            };
            if req.stream == Some(true) {
                stream(
                    openai::stream(&a, req.include_usage()),
                    event_stream_type(),
                    state,
                    fault,
                )
            } else {
                whole(openai::completion(&a), fault)
            }
        }
        Endpoint::Embeddings => match serde_json::from_slice::<request::OpenAiEmbeddings>(body) {
            Ok(req) => {
                let model = req.model.as_deref().unwrap_or("text-embedding-3-small");
                let tokens = prompt_tokens(req.input.chars);
                whole(openai::embeddings(model, &req.input.hashes, tokens), fault)
            }
            Err(e) => bad_body(Format::Openai, e),
        },
        Endpoint::Messages => {
            let req: request::AnthropicMessages = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_body(Format::Anthropic, e),
            };
            let content = match req.first_tool() {
                Some(name) if req.messages.last_user_mentions_weather => Content::Tool { name },
                _ => Content::Text(replies.for_cap(req.max_tokens)),
            };
            let a = Answer {
                id,
                created,
                model: req.model.as_deref().unwrap_or("claude-sonnet-4-5"),
                prompt_tokens: prompt_tokens(req.messages.chars + req.system.chars),
                content,
                replies,
            };
            if req.stream == Some(true) {
                let frames = anthropic::stream(&a, req.thinking());
                stream(frames, event_stream_type(), state, fault)
            } else {
                whole(anthropic::message(&a, req.thinking()), fault)
            }
        }
        Endpoint::CountTokens => match serde_json::from_slice::<request::AnthropicMessages>(body) {
            Ok(req) => whole(
                anthropic::count_tokens(prompt_tokens(req.messages.chars + req.system.chars)),
                fault,
            ),
            Err(e) => bad_body(Format::Anthropic, e),
        },
        Endpoint::Gemini {
            model,
            stream: streaming,
        } => {
            let req: request::GeminiGenerate = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_body(Format::Gemini, e),
            };
            let cap = req
                .generation_config
                .as_ref()
                .and_then(|g| g.max_output_tokens);
            let content = match req.first_tool() {
                Some(name) if req.contents.last_user_mentions_weather => Content::Tool { name },
                _ => Content::Text(replies.for_cap(cap)),
            };
            let a = Answer {
                id,
                created,
                model,
                prompt_tokens: prompt_tokens(req.contents.chars + req.system_instruction.chars),
                content,
                replies,
            };
            if streaming {
                let sse = parts
                    .uri
                    .query()
                    .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
                let kind = if sse {
                    event_stream_type()
                } else {
                    json_type()
                };
                stream(gemini::stream(&a, sse), kind, state, fault)
            } else {
                whole(gemini::generate(&a), fault)
            }
        }
        Endpoint::GeminiEmbed { model } => {
            let req: request::GeminiBatchEmbed = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_body(Format::Gemini, e),
            };
            match gemini_vectors(&req, model) {
                Ok(vectors) => whole(gemini::batch_embeddings(&vectors), fault),
                Err(msg) => error(Format::Gemini, 400, &msg),
            }
        }
        Endpoint::Bedrock { stream: streaming } => {
            let req: request::BedrockConverse = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return bad_body(Format::Bedrock, e),
            };
            let content = match req.first_tool() {
                Some(name) if req.messages.last_user_mentions_weather => Content::Tool { name },
                _ => Content::Text(replies.for_cap(req.max_tokens())),
            };
            let a = Answer {
                id,
                created,
                model: "bedrock-model",
                prompt_tokens: prompt_tokens(req.messages.chars + req.system.chars),
                content,
                replies,
            };
            if streaming {
                let kind = HeaderValue::from_static("application/vnd.amazon.eventstream");
                stream(bedrock::converse_stream(&a), kind, state, fault)
            } else {
                whole(bedrock::converse(&a), fault)
            }
        }
        Endpoint::BedrockInvoke { model } => match bedrock_embed::invoke(model, body) {
            Ok(embedded) => {
                let mut resp = whole(embedded.body, fault);
                resp.headers_mut().insert(
                    "x-amzn-bedrock-input-token-count",
                    HeaderValue::from(embedded.input_tokens),
                );
                resp
            }
            Err(msg) => error(Format::Bedrock, 400, &msg),
        },
        Endpoint::Models => {
            let list = match state.config.format {
                Format::Openai => openai::MODELS,
                Format::Anthropic => anthropic::MODELS,
                Format::Gemini => gemini::MODELS,
                Format::Bedrock => bedrock::MODELS,
            };
            whole(list.as_bytes().to_vec(), fault)
        }
        Endpoint::Unknown => {
            let msg = format!("no mock endpoint for {} {}", parts.method, parts.uri.path());
            error(state.config.format, 404, &msg)
        }
    }
}

/// Each request's text hash and vector size, refusing what Gemini refuses: a request for
/// another model than the URL's, or a vector size out of range.
fn gemini_vectors(
    req: &request::GeminiBatchEmbed,
    model: &str,
) -> Result<Vec<(u64, usize)>, String> {
    let expected = format!("models/{model}");
    req.requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.model.as_deref() != Some(expected.as_str()) {
                return Err(format!(
                    "requests[{i}].model must be `{expected}`, the model of the URL"
                ));
            }
            let dims = r
                .output_dimensionality
                .unwrap_or(gemini::DEFAULT_DIMENSIONS);
            if dims == 0 || dims > gemini::MAX_DIMENSIONS {
                return Err(format!(
                    "requests[{i}].outputDimensionality must be 1 to {}",
                    gemini::MAX_DIMENSIONS
                ));
            }
            Ok((r.text_hash(), dims))
        })
        .collect()
}

/// A whole JSON body, possibly damaged by a fault.
fn whole(body: Vec<u8>, fault: Fault) -> Response<MockBody> {
    let body = Bytes::from(body);
    match fault {
        Fault::MalformedJson => json(StatusCode::OK, truncate_payload(&body)),
        Fault::DisconnectMidStream | Fault::StallMidStream => {
            // Announce the full length, send half, then drop or go silent: the client sees a
            // short body.
            let full = body.len();
            let half = body.slice(..full / 2);
            let frames = if fault == Fault::StallMidStream {
                MockBody::frames(vec![half], Duration::ZERO, None).stall_at(1)
            } else {
                MockBody::frames(vec![half], Duration::ZERO, Some(1))
            };
            let mut resp = Response::new(frames);
            resp.headers_mut().insert(CONTENT_TYPE, json_type());
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(full));
            resp
        }
        _ => json(StatusCode::OK, body),
    }
}

/// A streamed body, one frame per event, possibly damaged by a fault.
fn stream(
    mut frames: Vec<Bytes>,
    content_type: HeaderValue,
    state: &State,
    fault: Fault,
) -> Response<MockBody> {
    let mut cut_at = None;
    let mut stall_at = None;
    match fault {
        Fault::MalformedJson if !frames.is_empty() => {
            let mid = frames.len() / 2;
            frames[mid] = truncate_payload(&frames[mid]);
        }
        Fault::DisconnectMidStream => cut_at = Some(frames.len() / 2),
        Fault::StallMidStream => stall_at = Some(frames.len() / 2),
        _ => {}
    }
    let mut body = MockBody::frames(frames, state.config.chunk_delay, cut_at);
    if let Some(at) = stall_at {
        body = body.stall_at(at);
    }
    let mut resp = Response::new(body);
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, json_type());
    resp
}

fn empty(status: StatusCode) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::empty());
    *resp.status_mut() = status;
    resp
}

/// An error in the provider's own shape; 429 carries `retry-after: 1` like real providers.
fn error(format: Format, status: u16, message: &str) -> Response<MockBody> {
    let body = match format {
        Format::Openai => openai::error(status, message),
        Format::Anthropic => anthropic::error(status, message),
        Format::Gemini => gemini::error(status, message),
        Format::Bedrock => bedrock::error(message),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json(code, body);
    if format == Format::Bedrock {
        // AWS names the exception in a header, with a namespace after the `:`.
        let kind = format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            bedrock::exception(status)
        );
        if let Ok(v) = HeaderValue::from_str(&kind) {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
    }
    if status == 429 {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_on_suffix() {
        let post = Method::POST;
        assert_eq!(Endpoint::of(&post, "/v1/chat/completions"), Endpoint::Chat);
        assert_eq!(
            Endpoint::of(&post, "/openai/v1/chat/completions"),
            Endpoint::Chat
        );
        assert_eq!(Endpoint::of(&post, "/v1/embeddings"), Endpoint::Embeddings);
        assert_eq!(Endpoint::of(&post, "/v1/messages"), Endpoint::Messages);
        assert_eq!(
            Endpoint::of(&post, "/model/amazon.nova-lite-v1%3A0/converse"),
            Endpoint::Bedrock { stream: false }
        );
        assert_eq!(
            Endpoint::of(&post, "/model/amazon.nova-lite-v1%3A0/converse-stream"),
            Endpoint::Bedrock { stream: true }
        );
        assert_eq!(
            Endpoint::of(&post, "/anthropic/v1/messages/count_tokens"),
            Endpoint::CountTokens
        );
        assert_eq!(
            Endpoint::of(
                &post,
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            ),
            Endpoint::Gemini {
                model: "gemini-2.0-flash",
                stream: true
            }
        );
        assert_eq!(
            Endpoint::of(&post, "/v1beta/models/gemini-2.0-flash:generateContent"),
            Endpoint::Gemini {
                model: "gemini-2.0-flash",
                stream: false
            }
        );
        assert_eq!(
            Endpoint::of(&post, "/v1beta/models/x:embedContent"),
            Endpoint::Unknown
        );
        assert_eq!(
            Endpoint::of(
                &post,
                "/v1beta/models/text-embedding-004:batchEmbedContents"
            ),
            Endpoint::GeminiEmbed {
                model: "text-embedding-004"
            }
        );
        assert_eq!(Endpoint::of(&Method::GET, "/v1/models"), Endpoint::Models);
        assert_eq!(Endpoint::of(&post, "/v1/models"), Endpoint::Unknown);
        assert_eq!(Endpoint::of(&post, "/"), Endpoint::Unknown);
    }

    #[test]
    fn gemini_batches_must_name_the_url_model_and_a_sane_size() {
        let parse = |body: &'static str| -> request::GeminiBatchEmbed<'static> {
            serde_json::from_str(body).unwrap()
        };
        let ok = parse(
            r#"{"requests":[{"model":"models/e","content":{"parts":[{"text":"a"}]}},
            {"model":"models/e","content":{"parts":[{"text":"a"}]},"outputDimensionality":3}]}"#,
        );
        let vectors = gemini_vectors(&ok, "e").unwrap();
        assert_eq!(vectors[0], (vectors[1].0, gemini::DEFAULT_DIMENSIONS));
        assert_eq!(vectors[1].1, 3);
        let err = gemini_vectors(&ok, "other").unwrap_err();
        assert!(err.contains("requests[0].model"), "{err}");
        let zero = parse(
            r#"{"requests":[{"model":"models/e","content":{"parts":[]},"outputDimensionality":0}]}"#,
        );
        assert!(gemini_vectors(&zero, "e").is_err());
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_millis(10);
        let jitter = Duration::from_millis(3);
        for _ in 0..1000 {
            let d = first_byte_latency(base, jitter);
            assert!(d >= Duration::from_millis(7) && d <= Duration::from_millis(13));
        }
        assert!(first_byte_latency(Duration::ZERO, jitter) <= jitter);
    }
}
