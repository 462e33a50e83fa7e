//! The Gemini client endpoint, `POST /genai/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (Google's SDKs with their base URL at `http://host:8080/genai`),
//! and its embeddings, `:embedContent` and `:batchEmbedContents`.
//! As at the other doors, the request is read as OpenAI Chat (or OpenAI embeddings; the model
//! and whether to stream come from the path), every policy applies, and the answer goes back
//! in Gemini's shape; errors take Google's `{"error": {"code", "message", "status"}}`.

use super::body::ProxyBody;
use super::client_format::{error_message, ClientStream};
use super::respond::{self, ProxyResponse};
use crate::error::{ApiError, ErrorType};
use crate::telemetry::Endpoint;
use crate::translate::gemini::EmbedMethod;
use crate::translate::stream::WireFormat;
use crate::translate::{gemini, openai};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// What a `/genai` path's `:{action}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// `generateContent`, or `streamGenerateContent` when `stream`.
    Generate { stream: bool },
    /// `embedContent` or `batchEmbedContents`.
    Embed(EmbedMethod),
}

/// The model and action of a `/genai/{version}/models/{model}:{action}` path.
pub(super) fn model_and_action(path: &str) -> Result<(&str, Action), ApiError> {
    let rest = path
        .strip_prefix("/genai/v1beta/models/")
        .or_else(|| path.strip_prefix("/genai/v1/models/"));
    let (model, action) = rest.and_then(|r| r.split_once(':')).ok_or_else(|| {
        ApiError::new(
            ErrorType::NotFound,
            format!("no endpoint at {path} (expected /genai/v1beta/models/MODEL:generateContent)"),
        )
    })?;
    let action = match action {
        "generateContent" => Action::Generate { stream: false },
        "streamGenerateContent" => Action::Generate { stream: true },
        "embedContent" => Action::Embed(EmbedMethod::EmbedContent),
        "batchEmbedContents" => Action::Embed(EmbedMethod::BatchEmbedContents),
        other => {
            return Err(ApiError::new(
                ErrorType::NotFound,
                format!(
                    "`{other}` is not served here (generateContent, streamGenerateContent, \
                     embedContent and batchEmbedContents are)"
                ),
            ))
        }
    };
    Ok((model, action))
}

/// The endpoint a `/genai` POST is served as (for routing, limits, metrics and the log).
/// A path without a known action is served as Chat, whose door then answers 404.
pub(super) fn endpoint(path: &str) -> Endpoint {
    match model_and_action(path) {
        Ok((_, Action::Embed(_))) => Endpoint::Embeddings,
        _ => Endpoint::Chat,
    }
}

/// A Gemini request (model and action from the path) as an OpenAI Chat request, or as an
/// OpenAI embeddings request with the embeddings method its answer must take the shape of.
pub(super) fn openai_request(
    path: &str,
    body: &[u8],
) -> Result<(Value, Option<EmbedMethod>), ApiError> {
    let invalid = |m: String| ApiError::new(ErrorType::InvalidRequest, m);
    let (model, action) = model_and_action(path)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let stream = match action {
        Action::Generate { stream } => stream,
        Action::Embed(method) => {
            let out = gemini::embed_request_to_openai(&value, method, model)
                .map_err(|e| invalid(format!("invalid Gemini embeddings request: {e}")))?;
            return Ok((out, Some(method)));
        }
    };
    let mut ir = gemini::request_from_gemini(&value, model)
        .map_err(|e| invalid(format!("invalid Gemini request: {e}")))?;
    ir.stream = stream;
    let mut out = openai::request_to_openai(&ir)
        .map_err(|e| invalid(format!("Gemini request cannot be carried: {e}")))?;
    if let (true, Value::Object(map)) = (stream, &mut out) {
        map.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((out, None))
}

/// The pipeline's OpenAI answer in Gemini's shape: a `generateContent` answer, or with
/// `embed`, the answer of that embeddings method.
pub(super) fn gemini_response(resp: ProxyResponse, embed: Option<EmbedMethod>) -> ProxyResponse {
    let (mut parts, body) = resp.into_parts();
    let body = match body {
        ProxyBody::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            let (status, out) = whole(parts.status, &bytes, embed);
            parts.status = status;
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            ProxyBody::full(out)
        }
        stream => ProxyBody::Translated(Box::new(ClientStream::new(stream, WireFormat::Gemini, 0))),
    };
    ProxyResponse::from_parts(parts, body)
}

/// A whole OpenAI answer (a success or a provider's passed-through error) as Gemini JSON.
fn whole(status: StatusCode, bytes: &[u8], embed: Option<EmbedMethod>) -> (StatusCode, Bytes) {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    if !status.is_success() {
        let message = error_message(parsed.as_ref(), bytes);
        return (
            status,
            Bytes::from(gemini::error_body(status, &message).to_string()),
        );
    }
    let translated = match embed {
        Some(method) => {
            gemini::embeddings_answer_to_gemini(bytes, method).map_err(|e| e.to_string())
        }
        None => parsed
            .ok_or_else(|| "the answer is not JSON".to_owned())
            .and_then(|v| openai::response_from_openai(&v).map_err(|e| e.to_string()))
            .and_then(|ir| gemini::response_to_gemini(&ir).map_err(|e| e.to_string()))
            .map(|v| v.to_string()),
    };
    match translated {
        Ok(v) => (status, Bytes::from(v)),
        Err(e) => {
            let status = StatusCode::BAD_GATEWAY;
            let message = format!("the provider's answer cannot be translated: {e}");
            (
                status,
                Bytes::from(gemini::error_body(status, &message).to_string()),
            )
        }
    }
}

/// A gateway error in Google's shape; the gateway's own type and fields stay beside it.
pub(super) fn error(err: &ApiError, request_id: Option<&HeaderValue>) -> ProxyResponse {
    let mut resp = respond::error(err, request_id);
    let mut body = gemini::error_body(err.status(), &err.message);
    body["error"]["type"] = err.kind.as_str().into();
    for (k, v) in &err.fields {
        body["error"][k] = v.clone();
    }
    *resp.body_mut() = ProxyBody::full(body.to_string());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_model_and_action() {
        assert_eq!(
            model_and_action("/genai/v1beta/models/gemini-2.5-flash:generateContent").unwrap(),
            ("gemini-2.5-flash", Action::Generate { stream: false })
        );
        assert_eq!(
            model_and_action("/genai/v1beta/models/m:streamGenerateContent").unwrap(),
            ("m", Action::Generate { stream: true })
        );
        assert!(model_and_action("/genai/v1beta/models/m:countTokens").is_err());
        let (v, embed) = openai_request(
            "/genai/v1beta/models/m:streamGenerateContent",
            br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#,
        )
        .unwrap();
        assert_eq!(v["model"], "m");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(embed, None);
        assert_eq!(
            endpoint("/genai/v1beta/models/m:generateContent"),
            Endpoint::Chat
        );
        assert_eq!(endpoint("/genai/v1beta/models/m:nothing"), Endpoint::Chat);
    }

    #[test]
    fn embeddings_paths_are_served_as_openai_embeddings() {
        for (action, method) in [
            ("embedContent", EmbedMethod::EmbedContent),
            ("batchEmbedContents", EmbedMethod::BatchEmbedContents),
        ] {
            let path = format!("/genai/v1beta/models/gemini-embedding-001:{action}");
            assert_eq!(endpoint(&path), Endpoint::Embeddings);
            assert_eq!(
                model_and_action(&path).unwrap(),
                ("gemini-embedding-001", Action::Embed(method))
            );
        }
        let (v, embed) = openai_request(
            "/genai/v1beta/models/e:embedContent",
            br#"{"content":{"parts":[{"text":"hi"}]},"outputDimensionality":4}"#,
        )
        .unwrap();
        assert_eq!(v, json!({"model": "e", "input": ["hi"], "dimensions": 4}));
        assert_eq!(embed, Some(EmbedMethod::EmbedContent));
        let err = openai_request(
            "/genai/v1beta/models/e:batchEmbedContents",
            br#"{"requests":[]}"#,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("requests: must not be empty"),
            "{}",
            err.message
        );
    }

    #[test]
    fn embeddings_answers_take_the_method_shape() {
        let list = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,1]}],"model":"e","usage":{"prompt_tokens":1,"total_tokens":1}}"#;
        let (status, out) = whole(StatusCode::OK, list, Some(EmbedMethod::EmbedContent));
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"embedding": {"values": [0.5, 1]}}));
        let (status, out) = whole(StatusCode::OK, b"{}", Some(EmbedMethod::BatchEmbedContents));
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["status"], "INTERNAL");
        let failed = br#"{"error":{"message":"no such model","type":"invalid_request_error"}}"#;
        let (status, out) = whole(
            StatusCode::NOT_FOUND,
            failed,
            Some(EmbedMethod::EmbedContent),
        );
        assert_eq!(status, StatusCode::NOT_FOUND);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "no such model");
        assert_eq!(v["error"]["status"], "NOT_FOUND");
    }

    #[test]
    fn errors_take_the_google_shape() {
        let err = ApiError::new(ErrorType::RateLimited, "slow down");
        let resp = error(&err, None);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let ProxyBody::Full(Some(bytes)) = resp.body() else {
            panic!("whole body expected");
        };
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["type"], "rate_limited");
    }
}
