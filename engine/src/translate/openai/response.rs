//! OpenAI Chat Completions response JSON (`chat.completion`) ⇄ IR.

use serde_json::{json, Map, Value};

use super::request::parse_tool_call;
use crate::translate::ir::{ChatResponse, ContentPart, FinishReason, TranslateError, Usage};
use crate::translate::json_access::{
    as_array, as_object, count, optional, optional_str, optional_u64, required, Loc,
};

/// Parses an OpenAI `chat.completion` body. Only the first choice is kept: the other formats
/// have one answer per call.
pub fn response_from_openai(body: &Value) -> Result<ChatResponse, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let choices_at = root.field("choices");
    let choices = as_array(required(obj, "choices", &root)?, &choices_at)?;
    let choice_at = choices_at.index(0);
    let choice = as_object(
        choices
            .first()
            .ok_or_else(|| choices_at.error("no choice in the response"))?,
        &choice_at,
    )?;
    let message_at = choice_at.field("message");
    let message = as_object(required(choice, "message", &choice_at)?, &message_at)?;

    let mut content = Vec::new();
    match optional(message, "content") {
        None => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => content.push(ContentPart::Text(text.clone())),
        // Not what OpenAI sends, but some compatible servers answer with text parts.
        Some(parts) => {
            let at = message_at.field("content");
            for (i, part) in as_array(parts, &at)?.iter().enumerate() {
                let part_at = at.index(i);
                let part = as_object(part, &part_at)?;
                if let Some(text) = optional_str(part, "text", &part_at)? {
                    content.push(ContentPart::Text(text.to_string()));
                }
            }
        }
    }
    if let Some(calls) = optional(message, "tool_calls") {
        let at = message_at.field("tool_calls");
        for (i, call) in as_array(calls, &at)?.iter().enumerate() {
            content.push(ContentPart::ToolCall(parse_tool_call(call, &at.index(i))?));
        }
    }

    let usage = match optional(obj, "usage") {
        None => None,
        Some(usage) => Some(parse_usage(usage, &root.field("usage"))?),
    };
    Ok(ChatResponse {
        id: optional_str(obj, "id", &root)?
            .unwrap_or_default()
            .to_string(),
        model: optional_str(obj, "model", &root)?
            .unwrap_or_default()
            .to_string(),
        created: optional_u64(obj, "created", &root)?,
        content,
        refusal: optional_str(message, "refusal", &message_at)?.map(str::to_string),
        finish_reason: optional_str(choice, "finish_reason", &choice_at)?.map(finish_from_openai),
        stop_sequence: None,
        usage,
    })
}

/// OpenAI's `prompt_tokens` already is the whole prompt, cached tokens included, which is the
/// IR's meaning: no arithmetic here.
fn parse_usage(value: &Value, at: &Loc) -> Result<Usage, TranslateError> {
    let obj = as_object(value, at)?;
    let cached_input_tokens = match optional(obj, "prompt_tokens_details") {
        None => 0,
        Some(details) => {
            let details_at = at.field("prompt_tokens_details");
            count(
                as_object(details, &details_at)?,
                "cached_tokens",
                &details_at,
            )?
        }
    };
    Ok(Usage {
        input_tokens: count(obj, "prompt_tokens", at)?,
        output_tokens: count(obj, "completion_tokens", at)?,
        cached_input_tokens,
        cache_creation_input_tokens: 0,
    })
}

pub(crate) fn finish_from_openai(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        // `function_call` is the deprecated spelling of a tool call.
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// The OpenAI spelling of a finish reason; one the format lacks reads as a normal stop.
pub(crate) fn finish_to_openai(reason: Option<&FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "length",
        Some(FinishReason::ToolCalls) => "tool_calls",
        Some(FinishReason::ContentFilter) => "content_filter",
        Some(FinishReason::Stop) | Some(FinishReason::Other(_)) | None => "stop",
    }
}

/// The OpenAI `usage` object of an IR usage (also used by the stream translator).
pub(crate) fn usage_to_openai(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    })
}

/// Renders the IR as an OpenAI `chat.completion` body. `created` (Unix seconds) is used when
/// the IR has no creation time, as Anthropic responses carry none.
pub fn response_to_openai(resp: &ChatResponse, created: u64) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in &resp.content {
        match part {
            // Anthropic text blocks are consecutive pieces of one answer, as in a stream.
            ContentPart::Text(t) => text.push_str(t),
            ContentPart::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_json_string()},
            })),
            // Not produced by any response parser; nothing OpenAI could show.
            ContentPart::Image(_) | ContentPart::ToolResult(_) => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && (!calls.is_empty() || resp.refusal.is_some()) {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    message.insert(
        "refusal".into(),
        resp.refusal.clone().map_or(Value::Null, Value::String),
    );
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }

    let mut body = json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created.unwrap_or(created),
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_to_openai(resp.finish_reason.as_ref()),
        }],
    });
    if let (Some(usage), Some(obj)) = (&resp.usage, body.as_object_mut()) {
        obj.insert("usage".into(), usage_to_openai(usage));
    }
    body
}
