//! Anthropic Messages response JSON (`"type": "message"`) ⇄ IR.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatResponse, ContentPart, FinishReason, ToolArguments, ToolCall, TranslateError, Usage,
};
use crate::translate::json_access::{
    as_array, as_object, count, optional, optional_str, required, required_str, Loc,
};

/// Parses an Anthropic Messages response body.
pub fn response_from_anthropic(body: &Value) -> Result<ChatResponse, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let content_at = root.field("content");
    let mut content = Vec::new();
    for (i, block) in as_array(required(obj, "content", &root)?, &content_at)?
        .iter()
        .enumerate()
    {
        let at = content_at.index(i);
        let block = as_object(block, &at)?;
        match required_str(block, "type", &at)? {
            "text" => content.push(ContentPart::Text(
                required_str(block, "text", &at)?.to_string(),
            )),
            "tool_use" => content.push(ContentPart::ToolCall(ToolCall {
                id: required_str(block, "id", &at)?.to_string(),
                name: required_str(block, "name", &at)?.to_string(),
                arguments: ToolArguments::Json(
                    optional(block, "input")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                ),
            })),
            // Extended-thinking output has no place in the other formats' answers.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(at.field("type").error(format!(
                    "response block type `{other}` cannot be translated (supported: text, tool_use, thinking)"
                )))
            }
        }
    }

    let stop_sequence = optional_str(obj, "stop_sequence", &root)?.map(str::to_string);
    let usage = match optional(obj, "usage") {
        None => None,
        Some(usage) => Some(usage_from_anthropic(usage, &root.field("usage"))?),
    };
    Ok(ChatResponse {
        id: optional_str(obj, "id", &root)?
            .unwrap_or_default()
            .to_string(),
        model: optional_str(obj, "model", &root)?
            .unwrap_or_default()
            .to_string(),
        created: None,
        content,
        refusal: None,
        finish_reason: optional_str(obj, "stop_reason", &root)?.map(finish_from_anthropic),
        stop_sequence,
        usage,
    })
}

/// Anthropic's `input_tokens` counts only the prompt tokens that were neither read from nor
/// written to the cache; the IR (like OpenAI's `prompt_tokens`) counts the whole prompt. So
/// IR input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens, and the
/// reverse subtracts them again: the prompt size and the total are the same in both formats.
pub(crate) fn usage_from_anthropic(value: &Value, at: &Loc) -> Result<Usage, TranslateError> {
    let obj = as_object(value, at)?;
    let uncached = count(obj, "input_tokens", at)?;
    let cache_read = count(obj, "cache_read_input_tokens", at)?;
    let cache_creation = count(obj, "cache_creation_input_tokens", at)?;
    Ok(Usage {
        input_tokens: uncached
            .saturating_add(cache_read)
            .saturating_add(cache_creation),
        output_tokens: count(obj, "output_tokens", at)?,
        cached_input_tokens: cache_read,
        cache_creation_input_tokens: cache_creation,
    })
}

/// The Anthropic `usage` object of an IR usage (the reverse of [`usage_from_anthropic`]).
pub(crate) fn usage_to_anthropic(usage: &Usage) -> Value {
    let uncached = usage
        .input_tokens
        .saturating_sub(usage.cached_input_tokens)
        .saturating_sub(usage.cache_creation_input_tokens);
    json!({
        "input_tokens": uncached,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    })
}

pub(crate) fn finish_from_anthropic(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// The Anthropic spelling of a finish reason. A stop is `stop_sequence` only when the provider
/// said which sequence matched (OpenAI does not), else `end_turn`.
pub(crate) fn finish_to_anthropic(
    reason: Option<&FinishReason>,
    stop_sequence: Option<&str>,
) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        Some(FinishReason::Other(other)) if other == "pause_turn" => "pause_turn",
        Some(FinishReason::Stop) | Some(FinishReason::Other(_)) | None => {
            if stop_sequence.is_some() {
                "stop_sequence"
            } else {
                "end_turn"
            }
        }
    }
}

/// Renders the IR as an Anthropic Messages response body. Fails when a tool call's arguments
/// are not a JSON object, as `tool_use.input` must be one.
pub fn response_to_anthropic(resp: &ChatResponse) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let content_at = root.field("content");
    let mut blocks = Vec::with_capacity(resp.content.len() + 1);
    for (i, part) in resp.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if text.is_empty() => {}
            ContentPart::Text(text) => blocks.push(json!({"type": "text", "text": text})),
            ContentPart::ToolCall(call) => {
                let input = call.arguments.to_object().map_err(|e| {
                    content_at
                        .index(i)
                        .error(format!("tool call `{}`: {e}", call.id))
                })?;
                blocks.push(
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                );
            }
            // Not produced by any response parser; nothing Anthropic could show.
            ContentPart::Image(_) | ContentPart::ToolResult(_) => {}
        }
    }
    // Anthropic has no refusal field: the explanation becomes the text of the answer.
    if let Some(refusal) = resp.refusal.as_ref().filter(|r| !r.is_empty()) {
        blocks.push(json!({"type": "text", "text": refusal}));
    }
    let stop_reason = if resp.refusal.is_some() {
        "refusal"
    } else {
        finish_to_anthropic(resp.finish_reason.as_ref(), resp.stop_sequence.as_deref())
    };
    Ok(json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": resp.stop_sequence,
        "usage": usage_to_anthropic(&resp.usage.unwrap_or_default()),
    }))
}
