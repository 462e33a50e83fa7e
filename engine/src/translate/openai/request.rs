//! OpenAI Chat Completions request JSON ⇄ IR.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatRequest, ContentPart, Image, ImageSource, Message, Role, ToolArguments, ToolCall,
    ToolChoice, ToolDefinition, ToolResult, TranslateError,
};
use crate::translate::json_access::{
    as_array, as_object, as_str, optional, optional_bool, optional_f64, optional_str, optional_u64,
    required, required_str, Loc,
};

/// Request fields the IR models; every other field is kept as an OpenAI-only extra.
const MODELED_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stream",
    "user",
];

/// Parses an OpenAI Chat Completions request body.
pub fn request_from_openai(body: &Value) -> Result<ChatRequest, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    for legacy in ["functions", "function_call"] {
        if optional(obj, legacy).is_some() {
            return Err(root.field(legacy).error(
                "the deprecated `functions`/`function_call` fields cannot be translated; use `tools`/`tool_choice`",
            ));
        }
    }

    let mut req = ChatRequest {
        model: required_str(obj, "model", &root)?.to_string(),
        ..ChatRequest::default()
    };

    let messages_at = root.field("messages");
    for (i, message) in as_array(required(obj, "messages", &root)?, &messages_at)?
        .iter()
        .enumerate()
    {
        parse_message(message, &messages_at.index(i), &mut req)?;
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
        // Without tools these mean nothing, and both APIs refuse them on their own.
        req.tool_choice = None;
        req.parallel_tool_calls = None;
    }
    // `max_completion_tokens` replaced `max_tokens`; when both are sent the newer one rules.
    req.max_tokens = match optional_u64(obj, "max_completion_tokens", &root)? {
        Some(n) => Some(n),
        None => optional_u64(obj, "max_tokens", &root)?,
    };
    req.temperature = optional_f64(obj, "temperature", &root)?;
    req.top_p = optional_f64(obj, "top_p", &root)?;
    if let Some(stop) = optional(obj, "stop") {
        let at = root.field("stop");
        req.stop = match stop {
            Value::String(s) => vec![s.clone()],
            other => as_array(other, &at)?
                .iter()
                .enumerate()
                .map(|(i, s)| as_str(s, &at.index(i)).map(str::to_string))
                .collect::<Result<_, _>>()?,
        };
    }
    req.stream = optional_bool(obj, "stream", &root)?.unwrap_or(false);
    req.user = optional_str(obj, "user", &root)?.map(str::to_string);

    for (key, value) in obj {
        if !MODELED_FIELDS.contains(&key.as_str()) {
            req.extras.openai.insert(key.clone(), value.clone());
        }
    }
    Ok(req)
}

fn parse_message(value: &Value, at: &Loc, req: &mut ChatRequest) -> Result<(), TranslateError> {
    let obj = as_object(value, at)?;
    let role = required_str(obj, "role", at)?;
    let content_at = at.field("content");
    match role {
        "system" | "developer" => {
            let content = required(obj, "content", at)?;
            req.system.extend(parse_text_content(content, &content_at)?);
        }
        "user" => {
            let content = required(obj, "content", at)?;
            let parts = parse_user_content(content, &content_at)?;
            req.messages.push(Message {
                role: Role::User,
                content: parts,
            });
        }
        "assistant" => {
            if optional(obj, "function_call").is_some() {
                return Err(at.field("function_call").error(
                    "the deprecated `function_call` cannot be translated; use `tool_calls`",
                ));
            }
            let mut parts = Vec::new();
            if let Some(content) = optional(obj, "content") {
                parts.extend(
                    parse_text_content(content, &content_at)?
                        .into_iter()
                        .map(ContentPart::Text),
                );
            }
            if let Some(calls) = optional(obj, "tool_calls") {
                let calls_at = at.field("tool_calls");
                for (i, call) in as_array(calls, &calls_at)?.iter().enumerate() {
                    parts.push(ContentPart::ToolCall(parse_tool_call(
                        call,
                        &calls_at.index(i),
                    )?));
                }
            }
            req.messages.push(Message {
                role: Role::Assistant,
                content: parts,
            });
        }
        "tool" => {
            let result = ToolResult {
                tool_call_id: required_str(obj, "tool_call_id", at)?.to_string(),
                content: parse_text_content(required(obj, "content", at)?, &content_at)?
                    .into_iter()
                    .map(ContentPart::Text)
                    .collect(),
                is_error: false,
            };
            // Consecutive tool messages answer one assistant turn: keep them in one IR message,
            // as Anthropic needs them in one user message.
            match req.messages.last_mut() {
                Some(last) if last.role == Role::Tool => {
                    last.content.push(ContentPart::ToolResult(result))
                }
                _ => req.messages.push(Message {
                    role: Role::Tool,
                    content: vec![ContentPart::ToolResult(result)],
                }),
            }
        }
        "function" => {
            return Err(at
                .field("role")
                .error("the deprecated `function` role cannot be translated; use `tool`"))
        }
        other => return Err(at.field("role").error(format!("unknown role `{other}`"))),
    }
    Ok(())
}

/// Content that may only hold text: a string, or an array of `text` (and, for assistant
/// history, `refusal`) parts.
fn parse_text_content(value: &Value, at: &Loc) -> Result<Vec<String>, TranslateError> {
    if let Value::String(text) = value {
        return Ok(vec![text.clone()]);
    }
    let mut texts = Vec::new();
    for (i, part) in as_array(value, at)?.iter().enumerate() {
        let part_at = at.index(i);
        let obj = as_object(part, &part_at)?;
        match required_str(obj, "type", &part_at)? {
            "text" => texts.push(required_str(obj, "text", &part_at)?.to_string()),
            "refusal" => texts.push(required_str(obj, "refusal", &part_at)?.to_string()),
            other => {
                return Err(part_at.field("type").error(format!(
                    "content part type `{other}` is not allowed here (text only)"
                )))
            }
        }
    }
    Ok(texts)
}

fn parse_user_content(value: &Value, at: &Loc) -> Result<Vec<ContentPart>, TranslateError> {
    if let Value::String(text) = value {
        return Ok(vec![ContentPart::Text(text.clone())]);
    }
    let mut parts = Vec::new();
    for (i, part) in as_array(value, at)?.iter().enumerate() {
        let part_at = at.index(i);
        let obj = as_object(part, &part_at)?;
        match required_str(obj, "type", &part_at)? {
            "text" => parts.push(ContentPart::Text(
                required_str(obj, "text", &part_at)?.to_string(),
            )),
            "image_url" => {
                let image_at = part_at.field("image_url");
                let image = as_object(required(obj, "image_url", &part_at)?, &image_at)?;
                let url = required_str(image, "url", &image_at)?;
                parts.push(ContentPart::Image(Image {
                    source: parse_image_url(url, &image_at.field("url"))?,
                    detail: optional_str(image, "detail", &image_at)?.map(str::to_string),
                }));
            }
            other => {
                return Err(part_at.field("type").error(format!(
                    "content part type `{other}` cannot be translated (supported: text, image_url)"
                )))
            }
        }
    }
    Ok(parts)
}

/// An image URL, or a `data:<media type>;base64,<data>` URL split into its parts.
pub(crate) fn parse_image_url(url: &str, at: &Loc) -> Result<ImageSource, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(ImageSource::Url(url.to_string()));
    };
    match rest.split_once(";base64,") {
        Some((media_type, data)) if !media_type.is_empty() => Ok(ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        }),
        _ => Err(at.error("a data: image URL must look like `data:<media type>;base64,<data>`")),
    }
}

/// One entry of `tool_calls`, in a request's assistant history or in a response.
pub(super) fn parse_tool_call(value: &Value, at: &Loc) -> Result<ToolCall, TranslateError> {
    let obj = as_object(value, at)?;
    if let Some(kind) = optional_str(obj, "type", at)? {
        if kind != "function" {
            return Err(at.field("type").error(format!(
                "tool call type `{kind}` cannot be translated (only `function`)"
            )));
        }
    }
    let function_at = at.field("function");
    let function = as_object(required(obj, "function", at)?, &function_at)?;
    let arguments = match optional(function, "arguments") {
        None => ToolArguments::Text(String::new()),
        Some(Value::String(text)) => ToolArguments::Text(text.clone()),
        // Not what OpenAI sends, but some compatible servers send the object itself.
        Some(other @ Value::Object(_)) => ToolArguments::Json(other.clone()),
        Some(_) => {
            return Err(function_at
                .field("arguments")
                .error("expected a JSON string"))
        }
    };
    Ok(ToolCall {
        id: required_str(obj, "id", at)?.to_string(),
        name: required_str(function, "name", &function_at)?.to_string(),
        arguments,
    })
}

fn parse_tool(value: &Value, at: &Loc) -> Result<ToolDefinition, TranslateError> {
    let obj = as_object(value, at)?;
    let kind = required_str(obj, "type", at)?;
    if kind != "function" {
        return Err(at.field("type").error(format!(
            "tool type `{kind}` cannot be translated (only `function`)"
        )));
    }
    let function_at = at.field("function");
    let function = as_object(required(obj, "function", at)?, &function_at)?;
    let parameters = match optional(function, "parameters") {
        Some(schema) => {
            as_object(schema, &function_at.field("parameters"))?;
            schema.clone()
        }
        // OpenAI allows a function without parameters; it takes no arguments.
        None => json!({"type": "object", "properties": {}}),
    };
    Ok(ToolDefinition {
        name: required_str(function, "name", &function_at)?.to_string(),
        description: optional_str(function, "description", &function_at)?.map(str::to_string),
        parameters,
        strict: optional_bool(function, "strict", &function_at)?,
    })
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
        "function" => {
            let function_at = at.field("function");
            let function = as_object(required(obj, "function", at)?, &function_at)?;
            Ok(ToolChoice::Tool(
                required_str(function, "name", &function_at)?.to_string(),
            ))
        }
        other => Err(at.field("type").error(format!(
            "tool_choice type `{other}` cannot be translated (only `function`)"
        ))),
    }
}

/// Renders the IR as an OpenAI Chat Completions request body.
pub fn request_to_openai(req: &ChatRequest) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let mut body = req.extras.openai.clone();
    body.insert("model".into(), req.model.clone().into());

    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": text_content(&req.system)}));
    }
    let messages_at = root.field("messages");
    for (i, message) in req.messages.iter().enumerate() {
        render_message(message, &messages_at.index(i), &mut messages)?;
    }
    body.insert("messages".into(), Value::Array(messages));

    // OpenAI refuses `tool_choice` and `parallel_tool_calls` without `tools`.
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(render_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), render_tool_choice(choice));
        }
        if let Some(parallel) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), parallel.into());
        }
    }
    if let Some(max) = req.max_tokens {
        body.insert("max_completion_tokens".into(), max.into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), req.stop.clone().into());
    }
    if req.stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), user.clone().into());
    }
    Ok(Value::Object(body))
}

/// A string for one text, else an array of text parts.
fn text_content(texts: &[String]) -> Value {
    match texts {
        [one] => one.clone().into(),
        many => many
            .iter()
            .map(|t| json!({"type": "text", "text": t}))
            .collect(),
    }
}

fn render_message(message: &Message, at: &Loc, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let content_at = at.field("content");
    match message.role {
        Role::User => {
            let mut parts = Vec::with_capacity(message.content.len());
            for (i, part) in message.content.iter().enumerate() {
                parts.push(match part {
                    ContentPart::Text(text) => json!({"type": "text", "text": text}),
                    ContentPart::Image(image) => render_image(image),
                    _ => {
                        return Err(content_at
                            .index(i)
                            .error("a user message holds only text and images"))
                    }
                });
            }
            let content = match (parts.len(), message.content.first()) {
                (1, Some(ContentPart::Text(text))) => Value::String(text.clone()),
                _ => Value::Array(parts),
            };
            out.push(json!({"role": "user", "content": content}));
        }
        Role::Assistant => {
            let mut texts = Vec::new();
            let mut calls = Vec::new();
            for (i, part) in message.content.iter().enumerate() {
                match part {
                    ContentPart::Text(text) => texts.push(text.clone()),
                    ContentPart::ToolCall(call) => calls.push(json!({
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments.to_json_string()},
                    })),
                    _ => {
                        return Err(content_at.index(i).error(
                            "an assistant message sent to OpenAI holds only text and tool calls",
                        ))
                    }
                }
            }
            let mut rendered = Map::new();
            rendered.insert("role".into(), "assistant".into());
            let content = match (texts.is_empty(), calls.is_empty()) {
                (true, false) => Value::Null,
                (true, true) => Value::String(String::new()),
                _ => text_content(&texts),
            };
            rendered.insert("content".into(), content);
            if !calls.is_empty() {
                rendered.insert("tool_calls".into(), Value::Array(calls));
            }
            out.push(Value::Object(rendered));
        }
        Role::Tool => {
            for (i, part) in message.content.iter().enumerate() {
                let part_at = content_at.index(i);
                let ContentPart::ToolResult(result) = part else {
                    return Err(part_at.error("a tool message holds only tool results"));
                };
                out.push(render_tool_result(result, &part_at)?);
            }
        }
    }
    Ok(())
}

/// One `tool` message. OpenAI has no error flag for a tool result, so `is_error` is dropped:
/// the content itself usually says what failed.
fn render_tool_result(result: &ToolResult, at: &Loc) -> Result<Value, TranslateError> {
    let mut texts = Vec::with_capacity(result.content.len());
    for (i, part) in result.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) => texts.push(text.clone()),
            _ => {
                return Err(at.field("content").index(i).error(
                    "OpenAI tool results hold only text; an image in a tool result cannot be sent",
                ))
            }
        }
    }
    let content = if texts.is_empty() {
        Value::String(String::new())
    } else {
        text_content(&texts)
    };
    Ok(json!({"role": "tool", "tool_call_id": result.tool_call_id, "content": content}))
}

fn render_image(image: &Image) -> Value {
    let url = match &image.source {
        ImageSource::Url(url) => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    };
    let mut image_url = Map::new();
    image_url.insert("url".into(), url.into());
    if let Some(detail) = &image.detail {
        image_url.insert("detail".into(), detail.clone().into());
    }
    json!({"type": "image_url", "image_url": image_url})
}

fn render_tool(tool: &ToolDefinition) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), tool.name.clone().into());
    if let Some(description) = &tool.description {
        function.insert("description".into(), description.clone().into());
    }
    function.insert("parameters".into(), tool.parameters.clone());
    if let Some(strict) = tool.strict {
        function.insert("strict".into(), strict.into());
    }
    json!({"type": "function", "function": function})
}

fn render_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}
