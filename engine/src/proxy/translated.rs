//! OpenAI clients on providers of another wire format (Anthropic, Gemini, Bedrock). The proxy
//! keeps working in OpenAI terms: the request body is translated just before it is sent, and
//! the answer right after it arrives, so usage settlement, output guardrails and the relay see
//! OpenAI JSON and OpenAI SSE whatever the provider speaks. The conversions themselves are the
//! pure functions of `crate::translate`; this module only applies them to proxy bodies.

use crate::error::{ApiError, ErrorType};
use crate::translate::embeddings::Encoding;
use crate::translate::stream::{EncoderOptions, StreamTranslator, WireFormat};
use crate::translate::{anthropic, bedrock, gemini, openai};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request in `format` (Anthropic, Gemini or Bedrock) for an OpenAI request body, after
/// the proxy's own edits: the routed `model`, the redacted `messages` when input guardrails
/// changed them, and without Tollgate's `fallbacks`. `default_max_tokens` is Anthropic's
/// required output bound when the client set none. Gemini and Bedrock take the model in the
/// URL. A body the IR cannot express is the client's error (400), found before anything is
/// sent.
pub fn provider_request(
    format: WireFormat,
    original: &[u8],
    upstream_model: &str,
    redacted_messages: Option<&str>,
    default_max_tokens: u64,
) -> Result<Bytes, ApiError> {
    let ir = edited_ir(original, upstream_model, redacted_messages)?;
    let body = match format {
        WireFormat::Anthropic => anthropic::request_to_anthropic(&ir, default_max_tokens),
        WireFormat::Gemini => gemini::request_to_gemini(&ir),
        WireFormat::Bedrock => bedrock::request_to_bedrock(&ir),
        // The proxy sends OpenAI bodies as they are and never sends the Responses format.
        WireFormat::OpenAi | WireFormat::Responses => openai::request_to_openai(&ir),
    }
    .map_err(translation_error)?;
    Ok(Bytes::from(body.to_string()))
}

/// The request as the IR, with the routed model and redacted messages in, `fallbacks` out.
fn edited_ir(
    original: &[u8],
    upstream_model: &str,
    redacted_messages: Option<&str>,
) -> Result<crate::translate::ir::ChatRequest, ApiError> {
    let invalid = |msg: String| ApiError::new(ErrorType::InvalidRequest, msg);
    let Ok(Value::Object(mut map)) = serde_json::from_slice(original) else {
        // `parse_head` already accepted the body as a JSON object; this is unreachable in
        // practice, and a 400 is still the right answer if it happens.
        return Err(invalid("request body must be a JSON object".into()));
    };
    map.remove("fallbacks");
    map.insert("model".into(), upstream_model.into());
    if let Some(text) = redacted_messages {
        let messages = serde_json::from_str(text)
            .map_err(|e| invalid(format!("redacted messages are not JSON: {e}")))?;
        map.insert("messages".into(), messages);
    }
    openai::request_from_openai(&Value::Object(map)).map_err(translation_error)
}

/// The Gemini `batchEmbedContents` body for an OpenAI embeddings request, for the routed
/// model. Built from the client's body directly: embeddings carry no messages (so nothing was
/// redacted), and Tollgate's `fallbacks` is simply not copied. A request Gemini cannot take
/// (token arrays) is the client's error (400), found before anything is sent.
pub fn gemini_embeddings_request(original: &[u8], upstream_model: &str) -> Result<Bytes, ApiError> {
    let value = embeddings_request_json(original)?;
    let body =
        gemini::embeddings_request_to_gemini(&value, upstream_model).map_err(translation_error)?;
    Ok(Bytes::from(body.to_string()))
}

/// The InvokeModel body of a Bedrock embedding model for an OpenAI embeddings request, built
/// like [`gemini_embeddings_request`]. A model of no known embedding family, or several texts
/// for a Titan model (one per call), is the client's error (400), found before sending.
pub fn bedrock_embeddings_request(original: &[u8], model_id: &str) -> Result<Bytes, ApiError> {
    let value = embeddings_request_json(original)?;
    let body =
        bedrock::embeddings_request_to_bedrock(&value, model_id).map_err(translation_error)?;
    Ok(Bytes::from(body.to_string()))
}

fn embeddings_request_json(original: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(original).map_err(|e| {
        // `parse_head` already accepted the body as JSON; a 400 is still right if this fails.
        ApiError::new(
            ErrorType::InvalidRequest,
            format!("request body is not JSON: {e}"),
        )
    })
}

/// The header in which Bedrock's InvokeModel reports the input's tokens.
const BEDROCK_INPUT_TOKENS: &str = "x-amzn-bedrock-input-token-count";

/// A Gemini or Bedrock embeddings answer as an OpenAI embeddings list, in the encoding the
/// client's `request` asked for. Usage is the tokens the provider reports (Bedrock: in its
/// answer or a header); Gemini counts none, so `estimate`, the gateway's own estimate of the
/// input, is reported (and so settled) in its place. `Err`: the provider's answer is not one
/// (the caller treats it as a provider failure).
pub fn openai_embeddings_answer(
    provider: WireFormat,
    answer: (&[u8], &HeaderMap),
    request: &[u8],
    model: &str,
    estimate: u64,
) -> Result<Bytes, String> {
    let (body, headers) = answer;
    let encoding = Encoding::requested_by(request);
    let translated = match provider {
        WireFormat::Bedrock => {
            let reported = headers
                .get(BEDROCK_INPUT_TOKENS)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            bedrock::embeddings_response_to_openai(body, model, model, reported, estimate, encoding)
        }
        _ => gemini::embeddings_response_to_openai(body, model, estimate, encoding),
    };
    translated
        .map(Bytes::from)
        .map_err(|e| format!("the answer cannot be translated: {e}"))
}

fn translation_error(e: crate::translate::ir::TranslateError) -> ApiError {
    ApiError::new(
        ErrorType::InvalidRequest,
        format!("request cannot be translated for this provider's format: {e}"),
    )
}

/// A successful Anthropic, Gemini or Bedrock answer as an OpenAI `chat.completion`. Bedrock
/// answers name neither an id nor a model: `id` and `model` stand in for them. `Err`: the
/// provider's answer is not one (the caller treats it as a provider failure).
pub fn openai_answer(
    from: WireFormat,
    body: &[u8],
    created: u64,
    (id, model): (&str, &str),
) -> Result<Bytes, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let mut ir = match from {
        WireFormat::Gemini => gemini::response_from_gemini(&value),
        WireFormat::Bedrock => bedrock::response_from_bedrock(&value),
        _ => anthropic::response_from_anthropic(&value),
    }
    .map_err(|e| format!("the answer cannot be translated: {e}"))?;
    if ir.id.is_empty() {
        ir.id = id.to_owned();
    }
    if ir.model.is_empty() {
        ir.model = model.to_owned();
    }
    Ok(Bytes::from(
        openai::response_to_openai(&ir, created).to_string(),
    ))
}

/// An Anthropic error answer (`{"type": "error", "error": {"type", "message"}}`) or a Google
/// one (`{"error": {"code", "message", "status"}}`) in the OpenAI shape, so an OpenAI client reads the provider's explanation where its SDK looks for it.
/// The provider's error type is kept; a body that is not Anthropic's shape is quoted.
/// Bedrock's errors (`{"message"}` with the exception named in `x-amzn-ErrorType`, given as
/// `aws_error_type`) keep the exception name as the `code`.
pub fn openai_error(status: StatusCode, body: &[u8], aws_error_type: Option<&str>) -> Bytes {
    if let Some(header) = aws_error_type {
        let kind = anthropic::error_type_for_status(status);
        let message = bedrock::error_message(status.as_u16(), Some(header), body);
        let code = bedrock::exception_name(header);
        return Bytes::from(
            json!({"error": {"type": kind, "code": code, "message": message, "param": null}})
                .to_string(),
        );
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let inner = parsed.as_ref().and_then(|v| v.get("error"));
    let message = inner
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned(),
            str::to_owned,
        );
    let kind = inner
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| anthropic::error_type_for_status(status));
    Bytes::from(
        json!({"error": {"type": kind, "code": kind, "message": message, "param": null}})
            .to_string(),
    )
}

/// The upstream body of a stream as the relay reads it: the provider's bytes, or, for a
/// provider of another format, those bytes translated to OpenAI SSE as they arrive.
pub struct UpstreamStream {
    inner: Incoming,
    /// `None`: an OpenAI provider, bytes pass unchanged.
    translator: Option<Box<StreamTranslator>>,
    finished: bool,
}

impl UpstreamStream {
    pub fn plain(inner: Incoming) -> UpstreamStream {
        UpstreamStream {
            inner,
            translator: None,
            finished: false,
        }
    }

    /// Anthropic events or Gemini chunks in, OpenAI chunks out. The usage chunk is always
    /// produced: the relay settles from it, and hides it from a client that did not ask for
    /// it, as it does for OpenAI upstreams whose `include_usage` the proxy forced.
    /// `id` and `model` name the answer when the stream itself does not (Bedrock).
    pub fn translated(
        inner: Incoming,
        from: WireFormat,
        created: i64,
        (id, model): (&str, &str),
    ) -> UpstreamStream {
        let options = EncoderOptions {
            created,
            include_usage: true,
            ..EncoderOptions::default()
        };
        let mut translator = StreamTranslator::new(from, WireFormat::OpenAi, options);
        translator.set_response_identity(id.to_owned(), model.to_owned());
        UpstreamStream {
            inner,
            translator: Some(Box::new(translator)),
            finished: false,
        }
    }
}

impl Body for UpstreamStream {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(translator) = this.translator.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        if this.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => {
                    let mut out = Vec::new();
                    translator.feed(&bytes, &mut out);
                    // After `[DONE]` or an error event the answer is over: stop reading, so
                    // the relay settles and lets the connection go now.
                    this.finished = translator.is_ended();
                    // Passed on even when empty (a `ping`, half an event): the relay's idle
                    // timer measures the provider's silence, not the translator's output.
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                }
                // Trailers carry nothing for the client; skip them.
                Err(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::new())))),
            },
            // The relay reports a dropped connection itself (error event, settlement).
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                this.finished = true;
                let mut out = Vec::new();
                // A stream cut off before `message_stop` becomes an error event here.
                translator.finish(&mut out);
                if out.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.translator {
            None => self.inner.is_end_stream(),
            Some(_) => self.finished,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.translator {
            None => self.inner.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_takes_the_proxy_edits_then_translates() {
        let body = br#"{"model":"alias","fallbacks":["x"],"stream":true,
            "stream_options":{"include_usage":true},
            "messages":[{"role":"system","content":"S"},{"role":"user","content":"secret"}]}"#;
        let redacted =
            r#"[{"role":"system","content":"S"},{"role":"user","content":"[REDACTED]"}]"#;
        let out =
            provider_request(WireFormat::Anthropic, body, "claude-x", Some(redacted), 77).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "claude-x");
        assert_eq!(v["max_tokens"], 77);
        assert_eq!(v["system"], "S");
        assert_eq!(v["stream"], true);
        assert_eq!(v["messages"][0]["content"][0]["text"], "[REDACTED]");
        assert!(v.get("fallbacks").is_none() && v.get("stream_options").is_none());
    }

    #[test]
    fn untranslatable_request_is_an_invalid_request() {
        let body = br#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#;
        let err = provider_request(WireFormat::Anthropic, body, "m", None, 10).unwrap_err();
        assert_eq!(err.kind, ErrorType::InvalidRequest);
        assert!(err.message.contains("`n`"), "{}", err.message);
    }

    #[test]
    fn errors_take_the_openai_shape() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#;
        let v: Value = serde_json::from_slice(&openai_error(
            StatusCode::from_u16(529).unwrap(),
            body,
            None,
        ))
        .unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert_eq!(v["error"]["message"], "busy");
        let v: Value =
            serde_json::from_slice(&openai_error(StatusCode::BAD_GATEWAY, b"<html>", None))
                .unwrap();
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(v["error"]["message"], "<html>");
    }

    #[test]
    fn answers_take_the_openai_shape() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
            "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
            "usage":{"input_tokens":5,"output_tokens":2}}"#;
        let v: Value = serde_json::from_slice(
            &openai_answer(WireFormat::Anthropic, body, 9, ("x", "y")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(v["usage"]["completion_tokens"], 2);
        assert_eq!(v["created"], 9);
        assert!(openai_answer(WireFormat::Anthropic, b"{", 0, ("x", "y")).is_err());
        let gemini = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},
            "finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,
            "candidatesTokenCount":1},"modelVersion":"gemini-2.5-flash","responseId":"r"}"#;
        let v: Value = serde_json::from_slice(
            &openai_answer(WireFormat::Gemini, gemini, 9, ("x", "y")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["usage"]["total_tokens"], 5);
    }

    fn gemini_answer(body: &[u8], request: &[u8], model: &str, n: u64) -> Result<Bytes, String> {
        let headers = http::HeaderMap::new();
        openai_embeddings_answer(WireFormat::Gemini, (body, &headers), request, model, n)
    }

    #[test]
    fn embeddings_go_to_bedrock_by_model_family_and_count_the_reported_tokens() {
        let request = br#"{"model":"alias","input":["a","b"],"fallbacks":["x"]}"#;
        let cohere = "cohere.embed-english-v3";
        let out = bedrock_embeddings_request(request, cohere).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"texts": ["a", "b"], "input_type": "search_document"})
        );
        let err = bedrock_embeddings_request(request, "amazon.titan-embed-text-v2:0").unwrap_err();
        assert_eq!(err.kind, ErrorType::InvalidRequest);
        assert!(err.message.contains("one text per call"), "{}", err.message);

        let mut headers = http::HeaderMap::new();
        let answer = br#"{"embeddings":[[1.0],[0.5]]}"#;
        let read = |headers: &http::HeaderMap| -> Value {
            let out = openai_embeddings_answer(
                WireFormat::Bedrock,
                (answer, headers),
                request,
                cohere,
                9,
            )
            .unwrap();
            serde_json::from_slice(&out).unwrap()
        };
        assert_eq!(
            read(&headers)["usage"]["prompt_tokens"],
            9,
            "no header: the estimate"
        );
        headers.insert(BEDROCK_INPUT_TOKENS, http::HeaderValue::from_static("4"));
        let v = read(&headers);
        assert_eq!(v["usage"]["prompt_tokens"], 4);
        assert_eq!(v["data"][1]["embedding"], json!([0.5]));
    }

    #[test]
    fn embeddings_go_to_gemini_as_a_batch_and_come_back_in_the_asked_encoding() {
        let request = br#"{"model":"alias","input":["a","b"],"dimensions":3,
            "encoding_format":"base64","fallbacks":["x"]}"#;
        let out = gemini_embeddings_request(request, "text-embedding-004").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["requests"][1]["model"], "models/text-embedding-004");
        assert_eq!(v["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(v["requests"][0]["outputDimensionality"], 3);
        assert!(v.get("fallbacks").is_none());
        let err = gemini_embeddings_request(br#"{"model":"m","input":[[1,2]]}"#, "m").unwrap_err();
        assert_eq!(err.kind, ErrorType::InvalidRequest);
        assert!(err.message.contains("token arrays"), "{}", err.message);

        let answer = br#"{"embeddings":[{"values":[1.0]},{"values":[0.5]}]}"#;
        let v: Value = serde_json::from_slice(
            &gemini_answer(answer, request, "text-embedding-004", 2).unwrap(),
        )
        .unwrap();
        assert_eq!(v["data"][0]["embedding"], "AACAPw==");
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        let plain = br#"{"model":"m","input":"a"}"#;
        let v: Value =
            serde_json::from_slice(&gemini_answer(answer, plain, "m", 2).unwrap()).unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([0.5]));
        assert!(gemini_answer(b"{}", plain, "m", 2).is_err());
        // The settled usage is the reported estimate.
        let bytes = gemini_answer(answer, plain, "m", 9).unwrap();
        assert_eq!(
            crate::admission::estimate::usage_of(&bytes).unwrap().prompt,
            9
        );
    }

    #[test]
    fn google_errors_take_the_openai_shape() {
        let body = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#;
        let v: Value =
            serde_json::from_slice(&openai_error(StatusCode::TOO_MANY_REQUESTS, body, None))
                .unwrap();
        assert_eq!(v["error"]["message"], "quota");
    }
}
