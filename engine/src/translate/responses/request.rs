//! OpenAI Responses API request JSON → IR (the gateway answers Responses clients; it never
//! sends this format upstream).

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatRequest, ContentPart, Image, Message, Role, ToolArguments, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, TranslateError,
};
use crate::translate::json_access::{
    as_array, as_object, optional, optional_bool, optional_f64, optional_str, optional_u64,
    required, required_str, Loc,
};
use crate::translate::openai::parse_image_url;

/// Fields that change nothing a Chat Completions provider could do for the gateway: stored
/// state and server-side extras the gateway does not keep, and output options with no
/// counterpart. They are accepted and not forwarded.
const IGNORED_FIELDS: &[&str] = &[
    "store",
    "include",
    "background",
    "truncation",
    "prompt_cache_retention",
    "safety_identifier",
    "max_tool_calls",
    "stream_options",
    "text",
    "reasoning",
    "metadata",
    "service_tier",
    "prompt_cache_key",
    // Codex CLI's per-turn ids (session, turn, installation): bookkeeping like `metadata`,
    // and a field Chat Completions providers refuse.
    "client_metadata",
];

/// Parses a Responses API request body (`POST /v1/responses`).
///
/// The gateway keeps no conversation state, so `previous_response_id` and `conversation` are
/// refused (Codex CLI sends the whole history with `store: false`). Reasoning items in `input`
/// are dropped: they are opaque to every provider but the one that made them. Built-in tools
/// (`web_search`, `file_search`, `local_shell`, ...) are refused: a Chat Completions provider
/// cannot run them.
pub fn request_from_responses(body: &Value) -> Result<ChatRequest, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    for stateful in ["previous_response_id", "conversation", "prompt"] {
        if optional(obj, stateful).is_some() {
            return Err(root.field(stateful).error(format!(
                "`{stateful}` needs state kept by the provider; the gateway keeps none: send the \
                 whole conversation in `input`"
            )));
        }
    }
    let mut req = ChatRequest {
        model: required_str(obj, "model", &root)?.to_string(),
        ..ChatRequest::default()
    };
    if let Some(instructions) = optional_str(obj, "instructions", &root)? {
        req.system.push(instructions.to_string());
    }
    let input_at = root.field("input");
    match required(obj, "input", &root)? {
        Value::String(text) => req.messages.push(Message {
            role: Role::User,
            content: vec![ContentPart::Text(text.clone())],
        }),
        other => {
            for (i, item) in as_array(other, &input_at)?.iter().enumerate() {
                parse_item(item, &input_at.index(i), &mut req)?;
            }
        }
    }
    if let Some(tools) = optional(obj, "tools") {
        let at = root.field("tools");
        for (i, tool) in as_array(tools, &at)?.iter().enumerate() {
            req.tools.push(parse_tool(tool, &at.index(i))?);
        }
    }
    if let Some(choice) = optional(obj, "tool_choice") {
        req.tool_choice = Some(parse_tool_choice(choice, &root.field("tool_choice"))?);
    }
    req.parallel_tool_calls = optional_bool(obj, "parallel_tool_calls", &root)?;
    if req.tools.is_empty() {
        req.tool_choice = None;
        req.parallel_tool_calls = None;
    }
    req.max_tokens = optional_u64(obj, "max_output_tokens", &root)?;
    req.temperature = optional_f64(obj, "temperature", &root)?;
    req.top_p = optional_f64(obj, "top_p", &root)?;
    req.stream = optional_bool(obj, "stream", &root)?.unwrap_or(false);
    req.user = optional_str(obj, "user", &root)?.map(str::to_string);
    carry_openai_options(obj, &root, &mut req.extras.openai)?;
    Ok(req)
}

/// Options a Chat Completions provider understands under another name.
fn carry_openai_options(
    obj: &Map<String, Value>,
    root: &Loc,
    extras: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    if let Some(effort) = optional(obj, "reasoning")
        .and_then(Value::as_object)
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        extras.insert("reasoning_effort".into(), effort.clone());
    }
    let text_at = root.field("text");
    if let Some(format) = optional(obj, "text")
        .and_then(Value::as_object)
        .and_then(|t| t.get("format"))
    {
        let format_at = text_at.field("format");
        let f = as_object(format, &format_at)?;
        match required_str(f, "type", &format_at)? {
            "text" => {}
            "json_object" => {
                extras.insert("response_format".into(), json!({"type": "json_object"}));
            }
            "json_schema" => {
                // Responses flattens the schema object that Chat Completions nests.
                let mut schema = f.clone();
                schema.remove("type");
                extras.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": schema}),
                );
            }
            other => {
                return Err(format_at
                    .field("type")
                    .error(format!("unknown text format `{other}`")))
            }
        }
    }
    for (key, value) in obj {
        let known = matches!(
            key.as_str(),
            "model"
                | "instructions"
                | "input"
                | "tools"
                | "tool_choice"
                | "parallel_tool_calls"
                | "max_output_tokens"
                | "temperature"
                | "top_p"
                | "stream"
                | "user"
        );
        // Tollgate's own field (`fallbacks`) and anything unknown pass on to the OpenAI
        // pipeline, which reads the first and forwards the rest like any extra.
        if !known && !IGNORED_FIELDS.contains(&key.as_str()) {
            extras.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

/// One `input` item: a message, a function call or its output, or a reasoning item.
fn parse_item(value: &Value, at: &Loc, req: &mut ChatRequest) -> Result<(), TranslateError> {
    let obj = as_object(value, at)?;
    // Items without `type` but with `role` are messages (the SDKs' shorthand).
    let kind = optional_str(obj, "type", at)?.unwrap_or("message");
    match kind {
        "message" => parse_message(obj, at, req),
        "function_call" => {
            let arguments = match optional(obj, "arguments") {
                None => ToolArguments::Text(String::new()),
                Some(Value::String(s)) => ToolArguments::Text(s.clone()),
                Some(_) => return Err(at.field("arguments").error("expected a JSON string")),
            };
            push_call(obj, at, arguments, req)
        }
        // A custom tool is carried as a function with one string parameter, `input`.
        "custom_tool_call" => {
            let input = required_str(obj, "input", at)?;
            let arguments = ToolArguments::Text(json!({ CUSTOM_INPUT: input }).to_string());
            push_call(obj, at, arguments, req)
        }
        "function_call_output" | "custom_tool_call_output" => {
            let output_at = at.field("output");
            let content = match required(obj, "output", at)? {
                Value::String(s) => vec![ContentPart::Text(s.clone())],
                other => parse_content(other, &output_at)?,
            };
            let result = ContentPart::ToolResult(ToolResult {
                tool_call_id: required_str(obj, "call_id", at)?.to_string(),
                content,
                is_error: false,
            });
            match req.messages.last_mut() {
                Some(last) if last.role == Role::Tool => last.content.push(result),
                _ => req.messages.push(Message {
                    role: Role::Tool,
                    content: vec![result],
                }),
            }
            Ok(())
        }
        // Opaque to every provider but the one that made it.
        "reasoning" => Ok(()),
        other => Err(at.field("type").error(format!(
            "input item type `{other}` cannot be translated (message, function_call, \
             function_call_output, custom_tool_call, custom_tool_call_output and reasoning can)"
        ))),
    }
}

/// A tool call item (`function_call`, `custom_tool_call`) as an assistant tool call.
fn push_call(
    obj: &Map<String, Value>,
    at: &Loc,
    arguments: ToolArguments,
    req: &mut ChatRequest,
) -> Result<(), TranslateError> {
    let call = ContentPart::ToolCall(ToolCall {
        id: required_str(obj, "call_id", at)?.to_string(),
        name: required_str(obj, "name", at)?.to_string(),
        arguments,
    });
    // Calls made in one turn belong to one assistant message.
    match req.messages.last_mut() {
        Some(last) if last.role == Role::Assistant => last.content.push(call),
        _ => req.messages.push(Message {
            role: Role::Assistant,
            content: vec![call],
        }),
    }
    Ok(())
}

fn parse_message(
    obj: &Map<String, Value>,
    at: &Loc,
    req: &mut ChatRequest,
) -> Result<(), TranslateError> {
    let content_at = at.field("content");
    let content = match required(obj, "content", at)? {
        Value::String(s) => vec![ContentPart::Text(s.clone())],
        other => parse_content(other, &content_at)?,
    };
    match required_str(obj, "role", at)? {
        "system" | "developer" => {
            for part in content {
                match part {
                    ContentPart::Text(t) => req.system.push(t),
                    _ => return Err(content_at.error("system messages may hold text only")),
                }
            }
        }
        "user" => req.messages.push(Message {
            role: Role::User,
            content,
        }),
        "assistant" => req.messages.push(Message {
            role: Role::Assistant,
            content,
        }),
        other => return Err(at.field("role").error(format!("unknown role `{other}`"))),
    }
    Ok(())
}

/// A content list: `input_text` / `output_text` (and `refusal`) text, `input_image` images.
fn parse_content(value: &Value, at: &Loc) -> Result<Vec<ContentPart>, TranslateError> {
    let mut parts = Vec::new();
    for (i, part) in as_array(value, at)?.iter().enumerate() {
        let part_at = at.index(i);
        let obj = as_object(part, &part_at)?;
        match required_str(obj, "type", &part_at)? {
            "input_text" | "output_text" | "text" => parts.push(ContentPart::Text(
                required_str(obj, "text", &part_at)?.to_string(),
            )),
            "refusal" => parts.push(ContentPart::Text(
                required_str(obj, "refusal", &part_at)?.to_string(),
            )),
            "input_image" => {
                let Some(url) = optional_str(obj, "image_url", &part_at)? else {
                    return Err(part_at.error(
                        "an input_image needs `image_url` (uploaded `file_id`s live at the \
                         provider and cannot be translated)",
                    ));
                };
                parts.push(ContentPart::Image(Image {
                    source: parse_image_url(url, &part_at.field("image_url"))?,
                    detail: optional_str(obj, "detail", &part_at)?.map(str::to_string),
                }));
            }
            other => {
                return Err(part_at.field("type").error(format!(
                    "content part type `{other}` cannot be translated (input_text, output_text \
                     and input_image can)"
                )))
            }
        }
    }
    Ok(parts)
}

fn parse_tool(value: &Value, at: &Loc) -> Result<ToolDefinition, TranslateError> {
    let obj = as_object(value, at)?;
    let kind = required_str(obj, "type", at)?;
    if kind == "custom" {
        return parse_custom_tool(obj, at);
    }
    if kind != "function" {
        return Err(at.field("type").error(format!(
            "tool type `{kind}` is a built-in tool the provider would have to run; only \
             `function` and `custom` tools can be carried"
        )));
    }
    let parameters = match optional(obj, "parameters") {
        Some(Value::Null) | None => json!({"type": "object", "properties": {}}),
        Some(schema) => {
            as_object(schema, &at.field("parameters"))?;
            schema.clone()
        }
    };
    Ok(ToolDefinition {
        name: required_str(obj, "name", at)?.to_string(),
        description: optional_str(obj, "description", at)?.map(str::to_string),
        parameters,
        strict: optional_bool(obj, "strict", at)?,
    })
}

/// The one parameter of the function a custom tool becomes: the tool's freeform input.
pub(crate) const CUSTOM_INPUT: &str = "input";

/// A custom (freeform) tool, such as Codex CLI's `apply_patch`, as a function with one
/// required string parameter, `input`. Chat Completions providers have no freeform tools
/// and no grammar-constrained arguments, so the tool's format (a Lark or regex grammar, or
/// plain text) goes into the function's description, where the model can read what text
/// the tool expects; nothing enforces it. Calls of it are given back to the client as
/// `custom_tool_call` items (see [`custom_tool_names`]).
fn parse_custom_tool(obj: &Map<String, Value>, at: &Loc) -> Result<ToolDefinition, TranslateError> {
    let mut description = optional_str(obj, "description", at)?
        .unwrap_or_default()
        .to_string();
    let format_at = at.field("format");
    let format = match optional(obj, "format") {
        Some(Value::Null) | None => None,
        Some(format) => Some(as_object(format, &format_at)?),
    };
    let note = match format {
        None => None,
        Some(f) => match required_str(f, "type", &format_at)? {
            "text" => None,
            "grammar" => {
                let syntax = optional_str(f, "syntax", &format_at)?.unwrap_or("lark");
                let definition = required_str(f, "definition", &format_at)?;
                Some(format!(
                    "The `{CUSTOM_INPUT}` text must match this {syntax} grammar:\n{definition}"
                ))
            }
            other => {
                return Err(format_at
                    .field("type")
                    .error(format!("unknown custom tool format `{other}`")))
            }
        },
    };
    let note = note.unwrap_or_else(|| {
        format!("The `{CUSTOM_INPUT}` is free-form text, passed to the tool as it is.")
    });
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&note);
    Ok(ToolDefinition {
        name: required_str(obj, "name", at)?.to_string(),
        description: Some(description),
        parameters: json!({
            "type": "object",
            "properties": {
                CUSTOM_INPUT: {
                    "type": "string",
                    "description": "The tool's whole input as raw text (not JSON).",
                },
            },
            "required": [CUSTOM_INPUT],
        }),
        strict: None,
    })
}

/// The names of the request's custom tools, whose calls the answer must give back as
/// `custom_tool_call` items rather than `function_call`s. Empty for most requests.
pub fn custom_tool_names(body: &Value) -> Vec<String> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("custom"))
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

fn parse_tool_choice(value: &Value, at: &Loc) -> Result<ToolChoice, TranslateError> {
    if let Value::String(mode) = value {
        return match mode.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(at.error(format!(
                "unknown tool_choice `{other}` (expected auto, none, required or an object)"
            ))),
        };
    }
    let obj = as_object(value, at)?;
    match required_str(obj, "type", at)? {
        // Responses names the function at the top level, unlike Chat Completions.
        "function" | "custom" => Ok(ToolChoice::Tool(required_str(obj, "name", at)?.to_string())),
        other => Err(at.field("type").error(format!(
            "tool_choice type `{other}` cannot be translated (only `function` and `custom`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::openai::request_to_openai;

    #[test]
    fn custom_tools_and_their_calls_become_functions_with_an_input_string() {
        let body = json!({
            "model": "gpt-5.5",
            "tools": [
                {"type": "custom", "name": "apply_patch", "description": "Edit files.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""}},
                {"type": "custom", "name": "note", "format": {"type": "text"}},
                {"type": "function", "name": "shell", "parameters": {"type": "object"}},
            ],
            "tool_choice": {"type": "custom", "name": "apply_patch"},
            "input": [
                {"role": "user", "content": "fix it"},
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch",
                 "input": "*** Begin Patch\n*** End Patch"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done!"},
            ],
        });
        let out = request_to_openai(&request_from_responses(&body).unwrap()).unwrap();
        let patch = &out["tools"][0]["function"];
        assert_eq!(patch["name"], "apply_patch");
        assert_eq!(
            patch["parameters"],
            json!({"type": "object", "properties": {"input": {"type": "string",
                "description": "The tool's whole input as raw text (not JSON)."}},
                "required": ["input"]})
        );
        let description = patch["description"].as_str().unwrap();
        assert!(description.starts_with("Edit files."), "{description}");
        assert!(description.contains("lark grammar:\nstart: \"*** Begin Patch\""));
        let note = out["tools"][1]["function"]["description"].as_str().unwrap();
        assert!(note.contains("free-form text"), "{note}");
        assert_eq!(out["tools"][2]["function"]["name"], "shell");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "apply_patch"}})
        );
        let call = &out["messages"][1]["tool_calls"][0];
        assert_eq!(out["messages"][1]["role"], "assistant");
        assert_eq!(call["id"], "c1");
        assert_eq!(call["function"]["name"], "apply_patch");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"input": "*** Begin Patch\n*** End Patch"})
        );
        assert_eq!(
            out["messages"][2],
            json!({"role": "tool", "tool_call_id": "c1", "content": "Done!"})
        );
        assert_eq!(custom_tool_names(&body), ["apply_patch", "note"]);
    }

    #[test]
    fn built_in_tools_are_still_refused() {
        let body = json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]});
        let err = request_from_responses(&body).unwrap_err().to_string();
        assert!(err.contains("`web_search`"), "{err}");
        assert!(custom_tool_names(&body).is_empty());
    }
}
