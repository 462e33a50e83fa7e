//! The Responses client endpoint, `POST /v1/responses` (Codex CLI, `client.responses` in the
//! OpenAI SDKs). Like the Anthropic endpoint, the request is read as OpenAI Chat at the door,
//! so every policy runs unchanged, and the answer is put into the Responses shape on the way
//! out. Errors keep the Chat Completions shape, which is the Responses API's too.

use super::body::ProxyBody;
use super::client_format::ClientStream;
use super::respond::ProxyResponse;
use crate::error::{ApiError, ErrorType};
use crate::translate::stream::WireFormat;
use crate::translate::{openai, responses};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

/// A Responses request as an OpenAI Chat request, with the names of its custom tools (see
/// [`responses_response`]); streams always ask for the usage chunk, which the final
/// `response.completed` event reports.
pub(super) fn openai_request(body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let invalid = |m: String| ApiError::new(ErrorType::InvalidRequest, m);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let ir = responses::request_from_responses(&value)
        .map_err(|e| invalid(format!("invalid Responses request: {e}")))?;
    let mut out = openai::request_to_openai(&ir)
        .map_err(|e| invalid(format!("Responses request cannot be carried: {e}")))?;
    if let (true, Value::Object(map)) = (ir.stream, &mut out) {
        map.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((out, responses::custom_tool_names(&value)))
}

/// The pipeline's OpenAI answer as a Responses answer: a whole `response` object, the
/// Responses event stream, or the error as it is. Calls of the request's `custom_tools` are
/// `custom_tool_call` items.
pub(super) fn responses_response(resp: ProxyResponse, custom_tools: Vec<String>) -> ProxyResponse {
    let (mut parts, body) = resp.into_parts();
    let created = chrono::Utc::now().timestamp();
    let body = match body {
        ProxyBody::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            if !parts.status.is_success() {
                ProxyBody::full(bytes)
            } else {
                let created = u64::try_from(created).unwrap_or(0);
                let (status, out) = whole(&bytes, created, &custom_tools);
                parts.status = status;
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                ProxyBody::full(out)
            }
        }
        stream => ProxyBody::Translated(Box::new(
            ClientStream::new(stream, WireFormat::Responses, created)
                .with_custom_tools(custom_tools),
        )),
    };
    ProxyResponse::from_parts(parts, body)
}

/// A successful `chat.completion` as a `response`; an answer that cannot be read is the
/// provider's failure (502).
fn whole(bytes: &[u8], created: u64, custom_tools: &[String]) -> (StatusCode, Bytes) {
    let translated = serde_json::from_slice::<Value>(bytes)
        .map_err(|e| format!("the answer is not JSON: {e}"))
        .and_then(|v| openai::response_from_openai(&v).map_err(|e| e.to_string()))
        .map(|ir| responses::response_to_responses(&ir, created, custom_tools));
    match translated {
        Ok(v) => (StatusCode::OK, Bytes::from(v.to_string())),
        Err(e) => {
            let err = ApiError::new(
                ErrorType::UpstreamError,
                format!("the provider's answer cannot be translated: {e}"),
            );
            (StatusCode::BAD_GATEWAY, Bytes::from(err.openai_body()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_becomes_chat_with_usage_on_streams() {
        let body = br#"{"model":"m","instructions":"Be terse.","stream":true,
            "input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}],
            "max_output_tokens":50,"store":false,"fallbacks":["f"]}"#;
        let (v, custom) = openai_request(body).unwrap();
        assert!(custom.is_empty());
        assert_eq!(
            v["messages"][0],
            json!({"role":"system","content":"Be terse."})
        );
        assert_eq!(v["messages"][1], json!({"role":"user","content":"hi"}));
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["fallbacks"], json!(["f"]));
        assert!(v.get("store").is_none(), "{v}");
        let err =
            openai_request(br#"{"model":"m","input":"x","previous_response_id":"r"}"#).unwrap_err();
        assert!(
            err.message.contains("previous_response_id"),
            "{}",
            err.message
        );
    }

    #[test]
    fn whole_answer_becomes_a_response() {
        let ok = br#"{"id":"c1","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hey"},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,
            "total_tokens":4}}"#;
        let (status, out) = whole(ok, 7, &[]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["content"][0]["text"], "hey");
        assert_eq!(v["usage"]["total_tokens"], 4);
        assert_eq!(whole(b"nope", 7, &[]).0, StatusCode::BAD_GATEWAY);
    }
}
