//! The Gemini client endpoint, `POST /genai/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (Google's SDKs with their base URL at `http://host:8080/genai`).
//! As at the other doors, the request is read as OpenAI Chat (the model and whether to stream
//! come from the path), every policy applies, and the answer goes back in Gemini's shape;
//! errors take Google's `{"error": {"code", "message", "status"}}`.

use super::body::ProxyBody;
use super::client_format::{error_message, ClientStream};
use super::respond::{self, ProxyResponse};
use crate::error::{ApiError, ErrorType};
use crate::translate::stream::WireFormat;
use crate::translate::{gemini, openai};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// The model and action of a `/genai/{version}/models/{model}:{action}` path.
pub(super) fn model_and_stream(path: &str) -> Result<(&str, bool), ApiError> {
    let rest = path
        .strip_prefix("/genai/v1beta/models/")
        .or_else(|| path.strip_prefix("/genai/v1/models/"));
    let (model, action) = rest.and_then(|r| r.split_once(':')).ok_or_else(|| {
        ApiError::new(
            ErrorType::NotFound,
            format!("no endpoint at {path} (expected /genai/v1beta/models/MODEL:generateContent)"),
        )
    })?;
    match action {
        "generateContent" => Ok((model, false)),
        "streamGenerateContent" => Ok((model, true)),
        other => Err(ApiError::new(
            ErrorType::NotFound,
            format!("`{other}` is not served here (generateContent and streamGenerateContent are)"),
        )),
    }
}

/// A Gemini request (model and streaming from the path) as an OpenAI Chat request.
pub(super) fn openai_request(path: &str, body: &[u8]) -> Result<Value, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorType::InvalidRequest, m);
    let (model, stream) = model_and_stream(path)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let mut ir = gemini::request_from_gemini(&value, model)
        .map_err(|e| invalid(format!("invalid Gemini request: {e}")))?;
    ir.stream = stream;
    let mut out = openai::request_to_openai(&ir)
        .map_err(|e| invalid(format!("Gemini request cannot be carried: {e}")))?;
    if let (true, Value::Object(map)) = (stream, &mut out) {
        map.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(out)
}

/// The pipeline's OpenAI answer in Gemini's shape.
pub(super) fn gemini_response(resp: ProxyResponse) -> ProxyResponse {
    let (mut parts, body) = resp.into_parts();
    let body = match body {
        ProxyBody::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            let (status, out) = whole(parts.status, &bytes);
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
fn whole(status: StatusCode, bytes: &[u8]) -> (StatusCode, Bytes) {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    if !status.is_success() {
        let message = error_message(parsed.as_ref(), bytes);
        return (
            status,
            Bytes::from(gemini::error_body(status, &message).to_string()),
        );
    }
    let translated = parsed
        .ok_or_else(|| "the answer is not JSON".to_owned())
        .and_then(|v| openai::response_from_openai(&v).map_err(|e| e.to_string()))
        .and_then(|ir| gemini::response_to_gemini(&ir).map_err(|e| e.to_string()));
    match translated {
        Ok(v) => (status, Bytes::from(v.to_string())),
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
    fn the_path_names_model_and_streaming() {
        assert_eq!(
            model_and_stream("/genai/v1beta/models/gemini-2.5-flash:generateContent").unwrap(),
            ("gemini-2.5-flash", false)
        );
        assert_eq!(
            model_and_stream("/genai/v1beta/models/m:streamGenerateContent").unwrap(),
            ("m", true)
        );
        assert!(model_and_stream("/genai/v1beta/models/m:embedContent").is_err());
        let v = openai_request(
            "/genai/v1beta/models/m:streamGenerateContent",
            br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#,
        )
        .unwrap();
        assert_eq!(v["model"], "m");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
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
