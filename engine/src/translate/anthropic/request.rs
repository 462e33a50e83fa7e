//! Anthropic Messages request JSON ⇄ IR.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    alternating_turns, ChatRequest, ContentPart, Image, ImageSource, Message, Role, ToolArguments,
    ToolCall, ToolChoice, ToolDefinition, ToolResult, TranslateError,
};
use crate::translate::json_access::{
    as_array, as_object, as_str, optional, optional_bool, optional_f64, optional_str, optional_u64,
    required, required_str, Loc,
};

/// Request fields the IR models; every other field is kept as an Anthropic-only extra.
const MODELED_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "stream",
    "metadata",
];

/// Parses an Anthropic Messages request body.
pub fn request_from_anthropic(body: &Value) -> Result<ChatRequest, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let mut req = ChatRequest {
        model: required_str(obj, "model", &root)?.to_string(),
        max_tokens: optional_u64(obj, "max_tokens", &root)?,
        temperature: optional_f64(obj, "temperature", &root)?,
        top_p: optional_f64(obj, "top_p", &root)?,
        stream: optional_bool(obj, "stream", &root)?.unwrap_or(false),
        ..ChatRequest::default()
    };

    if let Some(system) = optional(obj, "system") {
        req.system = system_texts(system, &root.field("system"))?;
    }

    let messages_at = root.field("messages");
    for (i, message) in as_array(required(obj, "messages", &root)?, &messages_at)?
        .iter()
        .enumerate()
    {
        let at = messages_at.index(i);
        // A `system` message between turns (Claude Code sends them under the
        // `mid-conversation-system` beta) joins the system prompt, as `system` and
        // `developer` messages do in the OpenAI formats.
        let fields = as_object(message, &at)?;
        if fields.get("role").and_then(Value::as_str) == Some("system") {
            let content = required(fields, "content", &at)?;
            req.system
                .extend(system_texts(content, &at.field("content"))?);
        } else {
            parse_message(message, &at, &mut req.messages)?;
        }
    }

    if let Some(tools) = optional(obj, "tools") {
        let at = root.field("tools");
        for (i, tool) in as_array(tools, &at)?.iter().enumerate() {
            req.tools.push(parse_tool(tool, &at.index(i))?);
        }
    }
    if let Some(choice) = optional(obj, "tool_choice") {
        let at = root.field("tool_choice");
        let choice = as_object(choice, &at)?;
        req.tool_choice = Some(match required_str(choice, "type", &at)? {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(required_str(choice, "name", &at)?.to_string()),
            other => {
                return Err(at
                    .field("type")
                    .error(format!("unknown tool_choice type `{other}`")))
            }
        });
        if optional_bool(choice, "disable_parallel_tool_use", &at)? == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    if req.tools.is_empty() {
        // Without tools a tool choice means nothing, and both APIs refuse it on its own.
        req.tool_choice = None;
        req.parallel_tool_calls = None;
    }
    if let Some(stops) = optional(obj, "stop_sequences") {
        let at = root.field("stop_sequences");
        req.stop = as_array(stops, &at)?
            .iter()
            .enumerate()
            .map(|(i, s)| as_str(s, &at.index(i)).map(str::to_string))
            .collect::<Result<_, _>>()?;
    }
    if let Some(metadata) = optional(obj, "metadata") {
        let at = root.field("metadata");
        req.user = optional_str(as_object(metadata, &at)?, "user_id", &at)?.map(str::to_string);
    }

    for (key, value) in obj {
        if !MODELED_FIELDS.contains(&key.as_str()) {
            req.extras.anthropic.insert(key.clone(), value.clone());
        }
    }
    Ok(req)
}

/// The texts of a system prompt: a string, or text blocks (their `cache_control` marks only
/// matter to Anthropic, which gets the client's own bytes).
fn system_texts(system: &Value, at: &Loc) -> Result<Vec<String>, TranslateError> {
    match system {
        Value::String(text) => Ok(vec![text.clone()]),
        blocks => {
            let mut texts = Vec::new();
            for (i, block) in as_array(blocks, at)?.iter().enumerate() {
                let block_at = at.index(i);
                let block = as_object(block, &block_at)?;
                match required_str(block, "type", &block_at)? {
                    "text" => texts.push(required_str(block, "text", &block_at)?.to_string()),
                    other => {
                        return Err(block_at.field("type").error(format!(
                            "system block type `{other}` is not allowed (text only)"
                        )))
                    }
                }
            }
            Ok(texts)
        }
    }
}

/// One Anthropic message. A user message may mix tool results with text and images; the IR
/// keeps tool results in `Role::Tool` messages, so a user message is split into runs.
fn parse_message(value: &Value, at: &Loc, out: &mut Vec<Message>) -> Result<(), TranslateError> {
    let obj = as_object(value, at)?;
    let role = match required_str(obj, "role", at)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(at.field("role").error(format!(
                "unknown role `{other}` (expected user, assistant or system)"
            )))
        }
    };
    let content_at = at.field("content");
    let blocks = match required(obj, "content", at)? {
        Value::String(text) => {
            push_part(out, role, ContentPart::Text(text.clone()));
            return Ok(());
        }
        other => as_array(other, &content_at)?,
    };
    // An empty content array still is a turn; keep it so the turn order stays visible.
    if blocks.is_empty() {
        out.push(Message {
            role,
            content: Vec::new(),
        });
    }
    for (i, block) in blocks.iter().enumerate() {
        let block_at = content_at.index(i);
        if let Some(part) = parse_block(block, role, &block_at)? {
            let part_role = match part {
                ContentPart::ToolResult(_) => Role::Tool,
                _ => role,
            };
            push_part(out, part_role, part);
        }
    }
    Ok(())
}

/// Appends a part to the last message when it has the same role, else starts a message.
fn push_part(out: &mut Vec<Message>, role: Role, part: ContentPart) {
    match out.last_mut() {
        Some(last) if last.role == role => last.content.push(part),
        _ => out.push(Message {
            role,
            content: vec![part],
        }),
    }
}

/// One content block, or `None` for a block that is dropped on purpose: `thinking` and
/// `redacted_thinking` in assistant history only matter to the Anthropic model that wrote them.
fn parse_block(value: &Value, role: Role, at: &Loc) -> Result<Option<ContentPart>, TranslateError> {
    let obj = as_object(value, at)?;
    let kind = required_str(obj, "type", at)?;
    let part = match (kind, role) {
        ("text", _) => ContentPart::Text(required_str(obj, "text", at)?.to_string()),
        ("image", Role::User) => ContentPart::Image(parse_image(obj, at)?),
        ("tool_use", Role::Assistant) => ContentPart::ToolCall(ToolCall {
            id: required_str(obj, "id", at)?.to_string(),
            name: required_str(obj, "name", at)?.to_string(),
            arguments: ToolArguments::Json(match optional(obj, "input") {
                Some(input) => {
                    as_object(input, &at.field("input"))?;
                    input.clone()
                }
                None => Value::Object(Map::new()),
            }),
        }),
        ("tool_result", Role::User) => ContentPart::ToolResult(parse_tool_result(obj, at)?),
        ("thinking" | "redacted_thinking", Role::Assistant) => return Ok(None),
        ("image" | "tool_use" | "tool_result" | "thinking" | "redacted_thinking", _) => {
            return Err(at.field("type").error(format!(
                "a `{kind}` block is not allowed in a {} message",
                if role == Role::User { "user" } else { "assistant" }
            )))
        }
        (other, _) => {
            return Err(at.field("type").error(format!(
                "content block type `{other}` cannot be translated (supported: text, image, tool_use, tool_result, thinking)"
            )))
        }
    };
    Ok(Some(part))
}

fn parse_image(block: &Map<String, Value>, at: &Loc) -> Result<Image, TranslateError> {
    let source_at = at.field("source");
    let source = as_object(required(block, "source", at)?, &source_at)?;
    let source = match required_str(source, "type", &source_at)? {
        "base64" => ImageSource::Base64 {
            media_type: required_str(source, "media_type", &source_at)?.to_string(),
            data: required_str(source, "data", &source_at)?.to_string(),
        },
        "url" => ImageSource::Url(required_str(source, "url", &source_at)?.to_string()),
        other => {
            return Err(source_at.field("type").error(format!(
                "image source type `{other}` cannot be translated (supported: base64, url)"
            )))
        }
    };
    Ok(Image {
        source,
        detail: None,
    })
}

fn parse_tool_result(block: &Map<String, Value>, at: &Loc) -> Result<ToolResult, TranslateError> {
    let content_at = at.field("content");
    let content = match optional(block, "content") {
        None => Vec::new(),
        Some(Value::String(text)) => vec![ContentPart::Text(text.clone())],
        Some(blocks) => {
            let mut parts = Vec::new();
            for (i, inner) in as_array(blocks, &content_at)?.iter().enumerate() {
                let inner_at = content_at.index(i);
                let inner = as_object(inner, &inner_at)?;
                match required_str(inner, "type", &inner_at)? {
                    "text" => parts.push(ContentPart::Text(
                        required_str(inner, "text", &inner_at)?.to_string(),
                    )),
                    "image" => parts.push(ContentPart::Image(parse_image(inner, &inner_at)?)),
                    other => {
                        return Err(inner_at.field("type").error(format!(
                            "tool result block type `{other}` cannot be translated (supported: text, image)"
                        )))
                    }
                }
            }
            parts
        }
    };
    Ok(ToolResult {
        tool_call_id: required_str(block, "tool_use_id", at)?.to_string(),
        content,
        is_error: optional_bool(block, "is_error", at)?.unwrap_or(false),
    })
}

fn parse_tool(value: &Value, at: &Loc) -> Result<ToolDefinition, TranslateError> {
    let obj = as_object(value, at)?;
    // Client tools carry no type (or `custom`); typed ones are Anthropic's server tools, which
    // run inside Anthropic and mean nothing to another provider.
    if let Some(kind) = optional_str(obj, "type", at)? {
        if kind != "custom" {
            return Err(at.field("type").error(format!(
                "Anthropic server tool `{kind}` cannot be translated (only client tools)"
            )));
        }
    }
    let schema_at = at.field("input_schema");
    let schema = required(obj, "input_schema", at)?;
    as_object(schema, &schema_at)?;
    Ok(ToolDefinition {
        name: required_str(obj, "name", at)?.to_string(),
        description: optional_str(obj, "description", at)?.map(str::to_string),
        parameters: schema.clone(),
        strict: None,
    })
}

/// Renders the IR as an Anthropic Messages request body. Anthropic requires `max_tokens`;
/// `default_max_tokens` is used when the IR has no bound.
pub fn request_to_anthropic(
    req: &ChatRequest,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    if let Some(n) = req.extras.openai.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(root
                .field("n")
                .error("Anthropic returns one choice per call; `n` above 1 cannot be served"));
        }
    }
    let mut body = req.extras.anthropic.clone();
    body.insert("model".into(), req.model.clone().into());
    body.insert(
        "max_tokens".into(),
        req.max_tokens.unwrap_or(default_max_tokens).into(),
    );

    // Anthropic refuses whitespace-only text blocks, so such system parts are left out.
    let system: Vec<&String> = req.system.iter().filter(|t| !is_blank(t)).collect();
    match system.as_slice() {
        [] => {}
        [one] => {
            body.insert("system".into(), (*one).clone().into());
        }
        many => {
            let blocks = many
                .iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }

    body.insert("messages".into(), render_messages(&req.messages)?);

    // Anthropic refuses `tool_choice` without `tools`.
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(render_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = render_tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)
        {
            body.insert("tool_choice".into(), choice);
        }
    }
    // Anthropic refuses whitespace-only stop sequences (OpenAI clients often send "\n"); they
    // are left out rather than failing the request.
    let stop: Vec<&str> = req
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !is_blank(s))
        .collect();
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), stop.into());
    }
    // Anthropic's temperature range is 0..=1 (OpenAI's 0..=2): clamp to the nearest it takes.
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.clamp(0.0, 1.0).into());
    }
    // Current Claude models refuse `temperature` and `top_p` together; temperature is the one
    // Anthropic recommends, so `top_p` goes only when it is alone.
    if let (Some(p), None) = (req.top_p, req.temperature) {
        body.insert("top_p".into(), p.into());
    }
    if req.stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    Ok(Value::Object(body))
}

/// Renders the conversation. Tool results go in user messages, and consecutive messages of one
/// role are merged: all results answering one assistant turn must sit in the single user message
/// that follows it. Whitespace-only text is left out, and a message left empty is dropped, since
/// Anthropic refuses both.
fn render_messages(messages: &[Message]) -> Result<Value, TranslateError> {
    Ok(alternating_turns(messages, render_part)?
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect())
}

fn render_part(part: &ContentPart, role: Role, at: &Loc) -> Result<Option<Value>, TranslateError> {
    let block = match (part, role) {
        (ContentPart::Text(text), Role::User | Role::Assistant) => {
            if is_blank(text) {
                return Ok(None);
            }
            json!({"type": "text", "text": text})
        }
        (ContentPart::Image(image), Role::User) => render_image(image),
        (ContentPart::ToolCall(call), Role::Assistant) => {
            let input = call
                .arguments
                .to_object()
                .map_err(|e| at.error(format!("tool call `{}`: {e}", call.id)))?;
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
        }
        (ContentPart::ToolResult(result), Role::Tool) => render_tool_result(result, at)?,
        _ => return Err(at.error("this content part is not allowed in this message role")),
    };
    Ok(Some(block))
}

fn render_tool_result(result: &ToolResult, at: &Loc) -> Result<Value, TranslateError> {
    let mut block = Map::new();
    block.insert("type".into(), "tool_result".into());
    block.insert("tool_use_id".into(), result.tool_call_id.clone().into());
    let mut parts = Vec::with_capacity(result.content.len());
    for (i, part) in result.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if is_blank(text) => {}
            ContentPart::Text(text) => parts.push(json!({"type": "text", "text": text})),
            ContentPart::Image(image) => parts.push(render_image(image)),
            _ => {
                return Err(at
                    .field("content")
                    .index(i)
                    .error("a tool result holds only text and images"))
            }
        }
    }
    match (parts.len(), result.content.as_slice()) {
        (0, _) => {}
        (1, [ContentPart::Text(text)]) => {
            block.insert("content".into(), text.clone().into());
        }
        _ => {
            block.insert("content".into(), Value::Array(parts));
        }
    }
    if result.is_error {
        block.insert("is_error".into(), true.into());
    }
    Ok(Value::Object(block))
}

fn render_image(image: &Image) -> Value {
    let source = match &image.source {
        ImageSource::Url(url) => json!({"type": "url", "url": url}),
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
    };
    json!({"type": "image", "source": source})
}

fn render_tool(tool: &ToolDefinition) -> Value {
    let mut rendered = Map::new();
    rendered.insert("name".into(), tool.name.clone().into());
    if let Some(description) = &tool.description {
        rendered.insert("description".into(), description.clone().into());
    }
    rendered.insert("input_schema".into(), tool.parameters.clone());
    Value::Object(rendered)
}

/// Anthropic puts "no parallel calls" inside `tool_choice`, so `parallel_tool_calls: false`
/// alone still yields a choice (`auto`). `none` takes no such flag.
fn render_tool_choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let mut rendered = match choice {
        None if parallel == Some(false) => json!({"type": "auto"}),
        None => return None,
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Tool(name)) => json!({"type": "tool", "name": name}),
    };
    if parallel == Some(false) {
        if let Some(obj) = rendered.as_object_mut() {
            obj.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    Some(rendered)
}

/// Anthropic refuses text blocks and stop sequences that hold only whitespace.
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}
