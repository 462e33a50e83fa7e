//! Bedrock Converse response body → IR.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatResponse, ContentPart, FinishReason, ToolArguments, ToolCall, TranslateError, Usage,
};
use crate::translate::json_access::{
    as_array, as_object, as_str, count, optional, optional_str, required, required_str, Loc,
};

/// Parses a Converse response body. Converse bodies carry neither a response id nor the model
/// name (the request id is the `x-amzn-RequestId` header, the model is in the URL), so both are
/// left empty for the caller to fill in.
pub fn response_from_bedrock(body: &Value) -> Result<ChatResponse, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let output_at = root.field("output");
    let output = as_object(required(obj, "output", &root)?, &output_at)?;
    let message_at = output_at.field("message");
    let message = as_object(required(output, "message", &output_at)?, &message_at)?;
    let content_at = message_at.field("content");
    let blocks = match optional(message, "content") {
        Some(blocks) => as_array(blocks, &content_at)?.as_slice(),
        None => &[],
    };

    let mut content = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let at = content_at.index(i);
        let block = as_object(block, &at)?;
        if let Some(text) = optional(block, "text") {
            let text = as_str(text, &at.field("text"))?;
            content.push(ContentPart::Text(text.to_string()));
        } else if let Some(tool_use) = optional(block, "toolUse") {
            let tool_at = at.field("toolUse");
            let tool_use = as_object(tool_use, &tool_at)?;
            content.push(ContentPart::ToolCall(ToolCall {
                id: required_str(tool_use, "toolUseId", &tool_at)?.to_string(),
                name: required_str(tool_use, "name", &tool_at)?.to_string(),
                arguments: ToolArguments::Json(
                    optional(tool_use, "input")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                ),
            }));
        } else if block.contains_key("reasoningContent") {
            // Reasoning output has no place in an OpenAI answer.
        } else {
            let kind = block.keys().next().map_or("(empty)", String::as_str);
            return Err(at.error(format!(
                "response block `{kind}` cannot be translated (supported: text, toolUse, reasoningContent)"
            )));
        }
    }

    let usage = match optional(obj, "usage") {
        None => None,
        Some(usage) => Some(usage_from_bedrock(usage, &root.field("usage"))?),
    };
    Ok(ChatResponse {
        id: String::new(),
        model: String::new(),
        created: None,
        content,
        refusal: None,
        finish_reason: optional_str(obj, "stopReason", &root)?.map(finish_from_bedrock),
        // Converse does not say which stop sequence matched.
        stop_sequence: None,
        usage,
    })
}

/// Converse's `inputTokens` counts only the prompt tokens neither read from nor written to the
/// prompt cache (AWS's prompt-caching guide: total input = inputTokens + cacheReadInputTokens +
/// cacheWriteInputTokens), like Anthropic's `input_tokens`; the IR counts the whole prompt, so
/// the cache counts are added back. `totalTokens` is then IR input + output and is not read.
pub(crate) fn usage_from_bedrock(value: &Value, at: &Loc) -> Result<Usage, TranslateError> {
    let obj = as_object(value, at)?;
    let uncached = count(obj, "inputTokens", at)?;
    let cache_read = count(obj, "cacheReadInputTokens", at)?;
    let cache_write = count(obj, "cacheWriteInputTokens", at)?;
    Ok(Usage {
        input_tokens: uncached
            .saturating_add(cache_read)
            .saturating_add(cache_write),
        output_tokens: count(obj, "outputTokens", at)?,
        cached_input_tokens: cache_read,
        cache_creation_input_tokens: cache_write,
    })
}

/// The Converse `usage` object of an IR usage (the reverse of [`usage_from_bedrock`]).
fn usage_to_bedrock(usage: &Usage) -> Value {
    let uncached = usage
        .input_tokens
        .saturating_sub(usage.cached_input_tokens)
        .saturating_sub(usage.cache_creation_input_tokens);
    let mut obj = Map::new();
    obj.insert("inputTokens".into(), uncached.into());
    obj.insert("outputTokens".into(), usage.output_tokens.into());
    obj.insert(
        "totalTokens".into(),
        usage
            .input_tokens
            .saturating_add(usage.output_tokens)
            .into(),
    );
    // Bedrock sends the cache counts only when prompt caching was in play.
    if usage.cached_input_tokens > 0 {
        obj.insert(
            "cacheReadInputTokens".into(),
            usage.cached_input_tokens.into(),
        );
    }
    if usage.cache_creation_input_tokens > 0 {
        obj.insert(
            "cacheWriteInputTokens".into(),
            usage.cache_creation_input_tokens.into(),
        );
    }
    Value::Object(obj)
}

fn finish_to_bedrock<'a>(reason: Option<&'a FinishReason>, stop_sequence: Option<&str>) -> &'a str {
    match reason {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls) => "tool_use",
        Some(FinishReason::ContentFilter) => "content_filtered",
        Some(FinishReason::Other(other)) => other,
        Some(FinishReason::Stop) | None if stop_sequence.is_some() => "stop_sequence",
        Some(FinishReason::Stop) | None => "end_turn",
    }
}

/// Renders the IR as a Converse response body (for tests and for a Bedrock-shaped answer).
/// A refusal becomes text with `content_filtered`, as Converse has no refusal field; the id and
/// model have no place in the body and are dropped.
pub fn response_to_bedrock(resp: &ChatResponse) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let content_at = root.field("content");
    let mut blocks = Vec::with_capacity(resp.content.len() + 1);
    for (i, part) in resp.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if text.is_empty() => {}
            ContentPart::Text(text) => blocks.push(json!({"text": text})),
            ContentPart::ToolCall(call) => {
                let input = call.arguments.to_object().map_err(|e| {
                    content_at
                        .index(i)
                        .error(format!("tool call `{}`: {e}", call.id))
                })?;
                blocks.push(
                    json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": input}}),
                );
            }
            // Not produced by any response parser; nothing a Converse answer could show.
            ContentPart::Image(_) | ContentPart::ToolResult(_) => {}
        }
    }
    if let Some(refusal) = resp.refusal.as_ref().filter(|r| !r.is_empty()) {
        blocks.push(json!({"text": refusal}));
    }
    let stop_reason = if resp.refusal.is_some() {
        "content_filtered"
    } else {
        finish_to_bedrock(resp.finish_reason.as_ref(), resp.stop_sequence.as_deref())
    };
    Ok(json!({
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": stop_reason,
        "usage": usage_to_bedrock(&resp.usage.unwrap_or_default()),
    }))
}

pub(crate) fn finish_from_bedrock(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}
