//! The Anthropic client endpoint, `POST /anthropic/v1/messages` (Claude Code, the `anthropic`
//! SDKs). The request is translated to OpenAI Chat at the door, so auth, the model check,
//! guardrails, rules, limits, retries and fallbacks run unchanged; the final answer (whole,
//! streamed or an error) is translated back to Anthropic's shape on the way out. A provider of
//! `kind: anthropic` gets the client's own bytes instead, unless the gateway must change them
//! (see [`super::native`]).

use super::body::{read_limited, ProxyBody};
use super::client_format::{error_message, ClientFormat, ClientStream};
use super::respond::{self, ProxyResponse, REQUEST_ID};
use super::Gateway;
use crate::admission::auth;
use crate::admission::estimate::chat_prompt_tokens;
use crate::error::{ApiError, ErrorType};
use crate::translate::stream::WireFormat;
use crate::translate::{anthropic, openai};
use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorType::InvalidRequest, message)
}

/// An Anthropic Messages request as an OpenAI Chat request. The usage chunk is always asked
/// for on a stream: Anthropic's `message_delta` carries the totals, and the relay hides that
/// chunk only from OpenAI clients that did not ask for it.
pub(super) fn openai_request(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let ir = anthropic::request_from_anthropic(&value)
        .map_err(|e| invalid(format!("invalid Anthropic request: {e}")))?;
    let mut out = openai::request_to_openai(&ir).map_err(|e| {
        invalid(format!(
            "Anthropic request cannot be carried by the gateway: {e}"
        ))
    })?;
    if let Value::Object(map) = &mut out {
        if ir.stream {
            map.insert("stream_options".into(), json!({"include_usage": true}));
        }
        // Tollgate's own field means the same on every endpoint.
        if let Some(fallbacks) = value.get("fallbacks") {
            map.insert("fallbacks".into(), fallbacks.clone());
        }
    }
    Ok(out)
}

pub(super) fn anthropic_response(resp: ProxyResponse) -> ProxyResponse {
    let (mut parts, body) = resp.into_parts();
    let body = match body {
        ProxyBody::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            let (status, out) = anthropic_whole(parts.status, &bytes);
            parts.status = status;
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            ProxyBody::full(out)
        }
        stream => ProxyBody::Translated(Box::new(ClientStream::new(
            stream,
            WireFormat::Anthropic,
            0,
        ))),
    };
    ProxyResponse::from_parts(parts, body)
}

/// A whole OpenAI answer (a success or a provider's passed-through error) as Anthropic JSON.
fn anthropic_whole(status: StatusCode, bytes: &[u8]) -> (StatusCode, String) {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    if !status.is_success() {
        let message = error_message(parsed.as_ref(), bytes);
        return (
            status,
            anthropic::error_body(status, None, &message).to_string(),
        );
    }
    let translated = parsed
        .ok_or_else(|| "the answer is not JSON".to_owned())
        .and_then(|v| openai::response_from_openai(&v).map_err(|e| e.to_string()))
        .and_then(|ir| anthropic::response_to_anthropic(&ir).map_err(|e| e.to_string()));
    match translated {
        Ok(v) => (status, v.to_string()),
        // The provider answered, but not in a form an Anthropic client can be given.
        Err(e) => {
            let message = format!("the provider's answer cannot be translated: {e}");
            let status = StatusCode::BAD_GATEWAY;
            (
                status,
                anthropic::error_body(status, None, &message).to_string(),
            )
        }
    }
}

/// `POST /anthropic/v1/messages/count_tokens`: the gateway's own o200k estimate of the prompt
/// (the one limits reserve with), not Claude's tokenizer, after the caller's key is checked.
pub async fn count_tokens(gw: &Gateway, req: Request<Incoming>) -> ProxyResponse {
    let request_id = respond::new_request_id();
    match count(gw, req).await {
        Ok(n) => {
            let mut resp = respond::json(StatusCode::OK, json!({"input_tokens": n}).to_string());
            resp.headers_mut().insert(REQUEST_ID, request_id);
            resp
        }
        Err(e) => ClientFormat::Anthropic.error(&e, Some(&request_id)),
    }
}

async fn count(gw: &Gateway, req: Request<Incoming>) -> Result<u64, ApiError> {
    let plan = gw.plan.load_full();
    let (parts, body) = req.into_parts();
    auth::authenticate(&plan, &parts.headers, chrono::Utc::now().timestamp())?;
    let body = read_limited(&parts.headers, body, plan.max_body_bytes).await?;
    let request = openai_request(&body)?;
    let messages = request
        .get("messages")
        .and_then(|m| serde_json::value::to_raw_value(m).ok())
        .ok_or_else(|| invalid("`messages` is required".into()))?;
    Ok(chat_prompt_tokens(&messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_becomes_openai_with_usage_on_streams() {
        let body = br#"{"model":"m","max_tokens":10,"stream":true,"system":"S",
            "fallbacks":["f"],"messages":[{"role":"user","content":"hi"}]}"#;
        let v = openai_request(body).unwrap();
        assert_eq!(v["messages"][0], json!({"role":"system","content":"S"}));
        assert_eq!(v["messages"][1], json!({"role":"user","content":"hi"}));
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["fallbacks"], json!(["f"]));
        let err = openai_request(br#"{"model":"m","messages":7}"#).unwrap_err();
        assert_eq!(err.kind, ErrorType::InvalidRequest);
    }

    #[test]
    fn whole_answers_and_errors_take_the_anthropic_shape() {
        let ok = br#"{"id":"c1","object":"chat.completion","created":1,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hey"},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,
            "total_tokens":4}}"#;
        let (status, out) = anthropic_whole(StatusCode::OK, ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "hey");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], 3);

        let bad = br#"{"error":{"type":"invalid_request_error","message":"nope"}}"#;
        let (status, out) = anthropic_whole(StatusCode::BAD_REQUEST, bad);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["message"], "nope");
        let (status, _) = anthropic_whole(StatusCode::OK, b"not json");
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn gateway_errors_take_the_anthropic_shape() {
        let err = ApiError::new(ErrorType::RateLimited, "slow down");
        let resp = ClientFormat::Anthropic.error(&err, None);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let ProxyBody::Full(Some(bytes)) = resp.body() else {
            panic!("whole body expected");
        };
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
