//! Gemini `GenerateContentResponse` JSON ⇄ IR, for whole answers.

use serde_json::{json, Value};

use crate::translate::ir::{
    ChatResponse, ContentPart, FinishReason, ToolArguments, ToolCall, TranslateError, Usage,
};
use crate::translate::json_access::{as_array, as_object, optional, required, Loc};

/// Parses a whole Gemini answer (its first candidate).
pub fn response_from_gemini(body: &Value) -> Result<ChatResponse, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let candidates_at = root.field("candidates");
    let candidates = as_array(required(obj, "candidates", &root)?, &candidates_at)?;
    let candidate_at = candidates_at.index(0);
    let candidate = as_object(
        candidates
            .first()
            .ok_or_else(|| candidates_at.error("no candidate in the response"))?,
        &candidate_at,
    )?;
    let mut content = Vec::new();
    if let Some(c) = optional(candidate, "content").and_then(Value::as_object) {
        if let Some(parts) = c.get("parts").and_then(Value::as_array) {
            for (i, part) in parts.iter().enumerate() {
                let Some(p) = part.as_object() else { continue };
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                if let Some(text) = p.get("text").and_then(Value::as_str) {
                    content.push(ContentPart::Text(text.to_string()));
                } else if let Some(call) = p.get("functionCall").and_then(Value::as_object) {
                    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
                    content.push(ContentPart::ToolCall(ToolCall {
                        id: call
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("call_{i}"), str::to_string),
                        name: name.to_string(),
                        arguments: ToolArguments::Json(
                            call.get("args").cloned().unwrap_or_else(|| json!({})),
                        ),
                    }));
                }
            }
        }
    }
    let has_calls = content
        .iter()
        .any(|p| matches!(p, ContentPart::ToolCall(_)));
    let finish_reason = optional(candidate, "finishReason")
        .and_then(Value::as_str)
        .map(|r| finish_reason(r, has_calls));
    Ok(ChatResponse {
        id: obj
            .get("responseId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        model: obj
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        created: None,
        content,
        refusal: None,
        finish_reason,
        stop_sequence: None,
        usage: obj.get("usageMetadata").map(usage_from_gemini),
    })
}

/// Gemini's finish reason in IR terms. Gemini says `STOP` when it calls functions, too.
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        other => FinishReason::Other(other.to_string()),
    }
}

/// `usageMetadata`: the prompt count includes cached content; thinking tokens are billed as
/// output, so they count as output here.
pub(crate) fn usage_from_gemini(usage: &Value) -> Usage {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("promptTokenCount"),
        output_tokens: n("candidatesTokenCount") + n("thoughtsTokenCount"),
        cached_input_tokens: n("cachedContentTokenCount"),
        cache_creation_input_tokens: 0,
    }
}

/// Renders a whole answer as Gemini's `GenerateContentResponse`.
pub fn response_to_gemini(resp: &ChatResponse) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let mut parts = Vec::new();
    for (i, part) in resp.content.iter().enumerate() {
        match part {
            ContentPart::Text(t) => parts.push(json!({"text": t})),
            ContentPart::ToolCall(call) => {
                let args = call
                    .arguments
                    .to_object()
                    .map_err(|e| root.field("content").index(i).error(e))?;
                parts.push(
                    json!({"functionCall": {"id": call.id, "name": call.name, "args": args}}),
                );
            }
            _ => {}
        }
    }
    if let Some(refusal) = &resp.refusal {
        parts.push(json!({"text": refusal}));
    }
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(reason) = &resp.finish_reason {
        candidate["finishReason"] = finish_reason_to_gemini(reason).into();
    }
    let mut out = json!({"candidates": [candidate], "modelVersion": resp.model});
    if !resp.id.is_empty() {
        out["responseId"] = resp.id.clone().into();
    }
    if let Some(u) = &resp.usage {
        out["usageMetadata"] = usage_to_gemini(u);
    }
    Ok(out)
}

pub(crate) fn finish_reason_to_gemini(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        FinishReason::Stop | FinishReason::ToolCalls => "STOP",
        FinishReason::Other(_) => "OTHER",
    }
}

pub(crate) fn usage_to_gemini(u: &Usage) -> Value {
    let mut usage = json!({
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": u.output_tokens,
        "totalTokenCount": u.input_tokens + u.output_tokens,
    });
    if u.cached_input_tokens > 0 {
        usage["cachedContentTokenCount"] = u.cached_input_tokens.into();
    }
    usage
}
