//! Bedrock Converse request body (`POST /model/{modelId}/converse[-stream]`) ⇄ IR.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    alternating_turns, ChatRequest, ContentPart, Image, ImageSource, Message, Role, ToolArguments,
    ToolCall, ToolChoice, ToolDefinition, ToolResult, TranslateError,
};
use crate::translate::json_access::{
    as_array, as_object, as_str, optional, optional_f64, optional_str, optional_u64, required,
    required_str, Loc,
};

/// Request fields the IR can carry. The others (`guardrailConfig`,
/// `additionalModelRequestFields`, `promptVariables`, ...) change what the model does or sees,
/// and no other format has them: they are refused rather than dropped.
const MODELED_FIELDS: &[&str] = &["messages", "system", "inferenceConfig", "toolConfig"];

/// Parses a Converse request body. The model id and whether the answer is streamed are not in
/// the body but in the URL, so the caller passes the model and sets `stream` itself.
pub fn request_from_bedrock(body: &Value, model: &str) -> Result<ChatRequest, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    if let Some(key) = obj.keys().find(|k| !MODELED_FIELDS.contains(&k.as_str())) {
        return Err(root
            .field(key)
            .error("this Converse field cannot be translated"));
    }
    let mut req = ChatRequest {
        model: model.to_string(),
        ..ChatRequest::default()
    };
    if let Some(system) = optional(obj, "system") {
        let at = root.field("system");
        for (i, block) in as_array(system, &at)?.iter().enumerate() {
            let block_at = at.index(i);
            let block = as_object(block, &block_at)?;
            if let Some(text) = optional(block, "text") {
                req.system
                    .push(as_str(text, &block_at.field("text"))?.to_string());
            } else if !block.contains_key("cachePoint") {
                return Err(block_at.error("system blocks must be text (or cachePoint)"));
            }
        }
    }
    let messages_at = root.field("messages");
    for (i, message) in as_array(required(obj, "messages", &root)?, &messages_at)?
        .iter()
        .enumerate()
    {
        parse_message(message, &messages_at.index(i), &mut req.messages)?;
    }
    if let Some(config) = optional(obj, "inferenceConfig") {
        let at = root.field("inferenceConfig");
        let config = as_object(config, &at)?;
        req.max_tokens = optional_u64(config, "maxTokens", &at)?;
        req.temperature = optional_f64(config, "temperature", &at)?;
        req.top_p = optional_f64(config, "topP", &at)?;
        if let Some(stops) = optional(config, "stopSequences") {
            let stops_at = at.field("stopSequences");
            req.stop = as_array(stops, &stops_at)?
                .iter()
                .enumerate()
                .map(|(i, s)| as_str(s, &stops_at.index(i)).map(str::to_string))
                .collect::<Result<_, _>>()?;
        }
    }
    if let Some(config) = optional(obj, "toolConfig") {
        let at = root.field("toolConfig");
        let config = as_object(config, &at)?;
        let tools_at = at.field("tools");
        for (i, tool) in as_array(required(config, "tools", &at)?, &tools_at)?
            .iter()
            .enumerate()
        {
            req.tools.push(parse_tool(tool, &tools_at.index(i))?);
        }
        if let Some(choice) = optional(config, "toolChoice") {
            let choice_at = at.field("toolChoice");
            let choice = as_object(choice, &choice_at)?;
            req.tool_choice = Some(if choice.contains_key("auto") {
                ToolChoice::Auto
            } else if choice.contains_key("any") {
                ToolChoice::Required
            } else if let Some(tool) = optional(choice, "tool") {
                let tool_at = choice_at.field("tool");
                ToolChoice::Tool(
                    required_str(as_object(tool, &tool_at)?, "name", &tool_at)?.to_string(),
                )
            } else {
                return Err(choice_at.error("expected one of auto, any, tool"));
            });
        }
    }
    Ok(req)
}

fn parse_tool(value: &Value, at: &Loc) -> Result<ToolDefinition, TranslateError> {
    let obj = as_object(value, at)?;
    let spec_at = at.field("toolSpec");
    let Some(spec) = optional(obj, "toolSpec") else {
        return Err(at.error("only toolSpec tools can be translated"));
    };
    let spec = as_object(spec, &spec_at)?;
    let schema_at = spec_at.field("inputSchema");
    let schema = as_object(required(spec, "inputSchema", &spec_at)?, &schema_at)?;
    let json_schema = required(schema, "json", &schema_at)?;
    as_object(json_schema, &schema_at.field("json"))?;
    Ok(ToolDefinition {
        name: required_str(spec, "name", &spec_at)?.to_string(),
        description: optional_str(spec, "description", &spec_at)?.map(str::to_string),
        parameters: json_schema.clone(),
        strict: None,
    })
}

/// One Converse message. A user message may mix tool results with text and images; the IR
/// keeps tool results in `Role::Tool` messages, so a user message is split into runs.
fn parse_message(value: &Value, at: &Loc, out: &mut Vec<Message>) -> Result<(), TranslateError> {
    let obj = as_object(value, at)?;
    let role = match required_str(obj, "role", at)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(at.field("role").error(format!(
                "unknown role `{other}` (expected user or assistant)"
            )))
        }
    };
    let content_at = at.field("content");
    for (i, block) in as_array(required(obj, "content", at)?, &content_at)?
        .iter()
        .enumerate()
    {
        let Some(part) = parse_block(block, role, &content_at.index(i))? else {
            continue;
        };
        let part_role = match part {
            ContentPart::ToolResult(_) => Role::Tool,
            _ => role,
        };
        match out.last_mut() {
            Some(last) if last.role == part_role => last.content.push(part),
            _ => out.push(Message {
                role: part_role,
                content: vec![part],
            }),
        }
    }
    Ok(())
}

/// One content block, or `None` for a block that is dropped on purpose: cache points, and
/// reasoning in assistant history (it only matters to the model that wrote it).
fn parse_block(value: &Value, role: Role, at: &Loc) -> Result<Option<ContentPart>, TranslateError> {
    let obj = as_object(value, at)?;
    let part = if let Some(text) = optional(obj, "text") {
        ContentPart::Text(as_str(text, &at.field("text"))?.to_string())
    } else if let (Some(image), Role::User) = (optional(obj, "image"), role) {
        ContentPart::Image(parse_image(image, &at.field("image"))?)
    } else if let (Some(call), Role::Assistant) = (optional(obj, "toolUse"), role) {
        let call_at = at.field("toolUse");
        let call = as_object(call, &call_at)?;
        ContentPart::ToolCall(ToolCall {
            id: required_str(call, "toolUseId", &call_at)?.to_string(),
            name: required_str(call, "name", &call_at)?.to_string(),
            arguments: ToolArguments::Json(
                optional(call, "input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            ),
        })
    } else if let (Some(result), Role::User) = (optional(obj, "toolResult"), role) {
        ContentPart::ToolResult(parse_tool_result(result, &at.field("toolResult"))?)
    } else if obj.contains_key("cachePoint")
        || (role == Role::Assistant && obj.contains_key("reasoningContent"))
    {
        return Ok(None);
    } else {
        let kind = obj.keys().next().map_or("(empty)", String::as_str);
        return Err(at.error(format!(
            "content block `{kind}` cannot be translated here (supported: text, image and toolResult from the user, toolUse from the assistant)"
        )));
    };
    Ok(Some(part))
}

fn parse_image(value: &Value, at: &Loc) -> Result<Image, TranslateError> {
    let obj = as_object(value, at)?;
    let format = required_str(obj, "format", at)?;
    let source_at = at.field("source");
    let source = as_object(required(obj, "source", at)?, &source_at)?;
    let Some(bytes) = optional(source, "bytes") else {
        return Err(source_at.error("only inline image bytes can be translated (not s3Location)"));
    };
    Ok(Image {
        source: ImageSource::Base64 {
            media_type: format!("image/{format}"),
            data: as_str(bytes, &source_at.field("bytes"))?.to_string(),
        },
        detail: None,
    })
}

fn parse_tool_result(value: &Value, at: &Loc) -> Result<ToolResult, TranslateError> {
    let obj = as_object(value, at)?;
    let content_at = at.field("content");
    let mut content = Vec::new();
    for (i, block) in as_array(required(obj, "content", at)?, &content_at)?
        .iter()
        .enumerate()
    {
        let block_at = content_at.index(i);
        let block = as_object(block, &block_at)?;
        if let Some(text) = optional(block, "text") {
            content.push(ContentPart::Text(
                as_str(text, &block_at.field("text"))?.to_string(),
            ));
        } else if let Some(json) = optional(block, "json") {
            // The other formats carry tool output as text; JSON is written out as such. An
            // empty object is how `request_to_bedrock` says "no output".
            if json.as_object().is_some_and(Map::is_empty) {
                continue;
            }
            content.push(ContentPart::Text(json.to_string()));
        } else if let Some(image) = optional(block, "image") {
            content.push(ContentPart::Image(parse_image(
                image,
                &block_at.field("image"),
            )?));
        } else {
            return Err(block_at.error("tool result blocks must be text, json or image"));
        }
    }
    Ok(ToolResult {
        tool_call_id: required_str(obj, "toolUseId", at)?.to_string(),
        content,
        is_error: optional_str(obj, "status", at)? == Some("error"),
    })
}

/// Renders the IR as a Converse request body. The model id is not in it: it goes in the URL
/// (see [`super::converse_path`]), and so does the choice between a streamed answer or not.
pub fn request_to_bedrock(req: &ChatRequest) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    if let Some(n) = req.extras.openai.get("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(root
                .field("n")
                .error("Bedrock returns one choice per call; `n` above 1 cannot be served"));
        }
    }
    let mut body = Map::new();

    // Converse refuses blank text blocks, in `system` as in messages.
    let system: Vec<Value> = req
        .system
        .iter()
        .filter(|t| !is_blank(t))
        .map(|t| json!({"text": t}))
        .collect();
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }

    body.insert("messages".into(), render_messages(req)?);

    let mut inference = Map::new();
    if let Some(max) = req.max_tokens {
        inference.insert("maxTokens".into(), max.into());
    }
    // Passed as given: valid ranges differ between the models behind Converse, and Bedrock
    // answers an out-of-range value with a clear validation error.
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), p.into());
    }
    let stop: Vec<&str> = req
        .stop
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !stop.is_empty() {
        inference.insert("stopSequences".into(), stop.into());
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }

    if !req.tools.is_empty() {
        let mut config = Map::new();
        config.insert(
            "tools".into(),
            Value::Array(req.tools.iter().map(render_tool).collect()),
        );
        if let Some(choice) = req.tool_choice.as_ref().and_then(render_tool_choice) {
            config.insert("toolChoice".into(), choice);
        }
        body.insert("toolConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// Converse's `toolChoice`. It has no "call no tool" value: for [`ToolChoice::None`] the choice
/// is left out, so the model picks freely. The tools themselves must still be sent, because
/// Converse refuses a history holding `toolUse`/`toolResult` blocks without a `toolConfig`.
fn render_tool_choice(choice: &ToolChoice) -> Option<Value> {
    Some(match choice {
        ToolChoice::None => return None,
        ToolChoice::Auto => json!({"auto": {}}),
        ToolChoice::Required => json!({"any": {}}),
        ToolChoice::Tool(name) => json!({"tool": {"name": name}}),
    })
}

fn render_tool(tool: &ToolDefinition) -> Value {
    let mut spec = Map::new();
    spec.insert("name".into(), tool.name.clone().into());
    if let Some(description) = tool.description.as_ref().filter(|d| !d.is_empty()) {
        spec.insert("description".into(), description.clone().into());
    }
    spec.insert("inputSchema".into(), json!({"json": tool.parameters}));
    json!({"toolSpec": spec})
}

/// Converse roles alternate strictly, and tool results travel in user messages: consecutive
/// messages that land on the same role are merged into one, and messages left empty (blank
/// text only) are dropped.
fn render_messages(req: &ChatRequest) -> Result<Value, TranslateError> {
    Ok(alternating_turns(&req.messages, render_part)?
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect())
}

fn render_part(part: &ContentPart, role: Role, at: &Loc) -> Result<Option<Value>, TranslateError> {
    let block = match (part, role) {
        (ContentPart::Text(text), Role::User | Role::Assistant) => {
            if is_blank(text) {
                return Ok(None);
            }
            json!({"text": text})
        }
        (ContentPart::Image(image), Role::User) => render_image(image, at)?,
        (ContentPart::ToolCall(call), Role::Assistant) => {
            let input = call
                .arguments
                .to_object()
                .map_err(|e| at.error(format!("tool call `{}`: {e}", call.id)))?;
            json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": input}})
        }
        (ContentPart::ToolResult(result), Role::Tool) => render_tool_result(result, at)?,
        _ => return Err(at.error("this content part is not allowed in this message role")),
    };
    Ok(Some(block))
}

fn render_tool_result(result: &ToolResult, at: &Loc) -> Result<Value, TranslateError> {
    let content_at = at.field("content");
    let mut content = Vec::with_capacity(result.content.len());
    for (i, part) in result.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if is_blank(text) => {}
            ContentPart::Text(text) => content.push(json!({"text": text})),
            ContentPart::Image(image) => content.push(render_image(image, &content_at.index(i))?),
            _ => {
                return Err(content_at
                    .index(i)
                    .error("a tool result holds only text and images"))
            }
        }
    }
    // Converse requires at least one content block, and refuses blank text; an empty JSON
    // object says "no output" without inventing words for the model to read.
    if content.is_empty() {
        content.push(json!({"json": {}}));
    }
    let mut block = Map::new();
    block.insert("toolUseId".into(), result.tool_call_id.clone().into());
    block.insert("content".into(), Value::Array(content));
    // `status` is accepted by some model families only (Claude, Nova), and success is what the
    // others assume: it is sent only to flag a failure.
    if result.is_error {
        block.insert("status".into(), "error".into());
    }
    Ok(json!({"toolResult": block}))
}

/// A Converse image block. Converse takes the image bytes themselves (base64 in JSON), in four
/// formats; it cannot fetch a URL, and the gateway does not fetch one on its behalf.
fn render_image(image: &Image, at: &Loc) -> Result<Value, TranslateError> {
    match &image.source {
        ImageSource::Url(_) => Err(at.error(
            "Bedrock accepts images as inline data only; send a `data:<media type>;base64,...` URL instead of a link",
        )),
        ImageSource::Base64 { media_type, data } => {
            let format = match media_type.to_ascii_lowercase().as_str() {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(at.error(format!(
                        "image type `{other}` cannot be sent to Bedrock (supported: png, jpeg, gif, webp)"
                    )))
                }
            };
            Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
        }
    }
}

/// Converse refuses text blocks that hold only whitespace.
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}
