//! IR → Bedrock Converse request body (`POST /model/{modelId}/converse[-stream]`).

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatRequest, ContentPart, Image, ImageSource, Role, ToolChoice, ToolDefinition, ToolResult,
    TranslateError,
};
use crate::translate::json_access::Loc;

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
    let root = Loc::Root;
    let messages_at = root.field("messages");
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in req.messages.iter().enumerate() {
        let at = messages_at.index(i);
        let content_at = at.field("content");
        let role = match message.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        let mut blocks = Vec::with_capacity(message.content.len());
        for (j, part) in message.content.iter().enumerate() {
            if let Some(block) = render_part(part, message.role, &content_at.index(j))? {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    Ok(out
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
