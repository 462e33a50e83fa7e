//! IR → a Responses API `response` object, for whole answers and for the final event of a
//! stream (`response.completed` carries the same object).

use serde_json::{json, Value};

use crate::translate::ir::{ChatResponse, ContentPart, FinishReason, Usage};

/// What a Responses answer says besides its output items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    InProgress,
    Completed,
    /// Stopped by the output bound or a content filter.
    Incomplete,
    Failed,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::InProgress => "in_progress",
            ResponseStatus::Completed => "completed",
            ResponseStatus::Incomplete => "incomplete",
            ResponseStatus::Failed => "failed",
        }
    }

    /// The status a finish reason gives, and why an incomplete answer stopped.
    pub fn of(finish: Option<&FinishReason>) -> (ResponseStatus, Option<&'static str>) {
        match finish {
            Some(FinishReason::Length) => (ResponseStatus::Incomplete, Some("max_output_tokens")),
            Some(FinishReason::ContentFilter) => {
                (ResponseStatus::Incomplete, Some("content_filter"))
            }
            _ => (ResponseStatus::Completed, None),
        }
    }
}

/// The id of a Responses object made from an upstream id: `resp_` plus the upstream's id, so
/// the provider's logs can still be matched.
pub fn response_id(upstream_id: &str) -> String {
    if upstream_id.starts_with("resp_") {
        upstream_id.to_string()
    } else {
        format!("resp_{upstream_id}")
    }
}

/// A whole Responses object for `resp`. Calls of the tools named in `custom_tools` (the
/// request's custom tools, see [`super::custom_tool_names`]) are `custom_tool_call` items.
pub fn response_to_responses(
    resp: &ChatResponse,
    created_at: u64,
    custom_tools: &[String],
) -> Value {
    let id = response_id(&resp.id);
    let (status, reason) = ResponseStatus::of(resp.finish_reason.as_ref());
    let mut output = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    for part in &resp.content {
        if let ContentPart::Text(t) = part {
            texts.push(t);
        }
    }
    if !texts.is_empty() || resp.refusal.is_some() {
        let mut content: Vec<Value> = texts.iter().map(|t| output_text(t)).collect();
        if let Some(refusal) = &resp.refusal {
            content.push(json!({"type": "refusal", "refusal": refusal}));
        }
        output.push(message_item(
            &format!("msg_{}", strip(&id)),
            status,
            content,
        ));
    }
    for (n, part) in resp.content.iter().enumerate() {
        if let ContentPart::ToolCall(call) = part {
            if custom_tools.contains(&call.name) {
                output.push(custom_tool_call_item(
                    &format!("ctc_{}_{n}", strip(&id)),
                    &call.id,
                    &call.name,
                    &custom_input(&call.arguments.to_json_string()),
                ));
                continue;
            }
            output.push(function_call_item(
                &format!("fc_{}_{n}", strip(&id)),
                &call.id,
                &call.name,
                &call.arguments.to_json_string(),
                "completed",
            ));
        }
    }
    envelope(
        &id,
        &resp.model,
        created_at,
        (status, reason),
        output,
        resp.usage.as_ref(),
    )
}

fn strip(id: &str) -> &str {
    id.strip_prefix("resp_").unwrap_or(id)
}

pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(crate) fn message_item(id: &str, status: ResponseStatus, content: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status.as_str(),
        "role": "assistant",
        "content": content,
    })
}

pub(crate) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    })
}

pub(crate) fn custom_tool_call_item(id: &str, call_id: &str, name: &str, input: &str) -> Value {
    json!({
        "type": "custom_tool_call",
        "id": id,
        "call_id": call_id,
        "name": name,
        "input": input,
    })
}

/// A custom tool's input from the arguments of the function it was carried as: the string
/// `input` of the arguments object, or the arguments text as it is when the model wrote
/// something else.
pub(crate) fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut map)) => match map.remove(super::request::CUSTOM_INPUT) {
            Some(Value::String(input)) => input,
            _ => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

/// The `response` object around `output`. The request's echo fields (tools, tool_choice,
/// instructions) are not repeated: the gateway answers from the provider's answer alone, and
/// the SDKs do not read them back.
pub(crate) fn envelope(
    id: &str,
    model: &str,
    created_at: u64,
    (status, reason): (ResponseStatus, Option<&str>),
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status.as_str(),
        "error": null,
        "incomplete_details": reason.map(|r| json!({"reason": r})),
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage.map(usage_json),
    })
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::ir::{ToolArguments, ToolCall};

    fn call(name: &str, arguments: &str) -> ContentPart {
        ContentPart::ToolCall(ToolCall {
            id: format!("call_{name}"),
            name: name.into(),
            arguments: ToolArguments::Text(arguments.into()),
        })
    }

    #[test]
    fn calls_of_custom_tools_are_custom_tool_calls() {
        let resp = ChatResponse {
            id: "c9".into(),
            model: "m".into(),
            content: vec![
                call("apply_patch", r#"{"input":"*** Begin Patch"}"#),
                call("shell", r#"{"cmd":"ls"}"#),
                call("note", r#"{"text":"x"}"#),
            ],
            finish_reason: Some(FinishReason::ToolCalls),
            ..ChatResponse::default()
        };
        let custom = ["apply_patch".to_string(), "note".to_string()];
        let out = response_to_responses(&resp, 7, &custom);
        assert_eq!(
            out["output"][0],
            json!({"type": "custom_tool_call", "id": "ctc_c9_0", "call_id": "call_apply_patch",
                   "name": "apply_patch", "input": "*** Begin Patch"})
        );
        assert_eq!(out["output"][1]["type"], "function_call");
        assert_eq!(out["output"][1]["arguments"], r#"{"cmd":"ls"}"#);
        // Arguments without a string `input` are passed on as they are.
        assert_eq!(out["output"][2]["type"], "custom_tool_call");
        assert_eq!(out["output"][2]["input"], r#"{"text":"x"}"#);
        let plain = response_to_responses(&resp, 7, &[]);
        assert_eq!(plain["output"][0]["type"], "function_call");
    }
}
