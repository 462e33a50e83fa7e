//! Gemini `generateContent` request JSON ⇄ IR.
//!
//! Gemini names no tool-call ids on the wire it accepts (a `functionResponse` answers by
//! function *name*), so going to Gemini the name of each tool result is looked up from the
//! call with its id earlier in the conversation, and coming from Gemini each call gets an id
//! made from its position (`call_<turn>_<part>`) that its response, matched by name and
//! order, reuses.

use serde_json::{json, Map, Value};

use crate::translate::ir::{
    ChatRequest, ContentPart, Image, ImageSource, Message, Role, ToolArguments, ToolCall,
    ToolChoice, ToolDefinition, ToolResult, TranslateError,
};
use crate::translate::json_access::{
    as_array, as_object, as_str, optional, required, required_str, Loc,
};

/// Renders the IR as a Gemini request body (the model goes in the URL, not the body).
pub fn request_to_gemini(req: &ChatRequest) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let mut body = Map::new();
    if !req.system.is_empty() {
        let parts: Vec<Value> = req.system.iter().map(|t| json!({"text": t})).collect();
        body.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    let messages_at = root.field("messages");
    let mut contents: Vec<Value> = Vec::new();
    for (i, message) in req.messages.iter().enumerate() {
        let at = messages_at.index(i);
        let role = match message.role {
            Role::Assistant => "model",
            Role::User | Role::Tool => "user",
        };
        let mut parts = Vec::new();
        for (j, part) in message.content.iter().enumerate() {
            parts.push(render_part(part, req, &at.field("content").index(j))?);
        }
        if parts.is_empty() {
            continue;
        }
        // Gemini wants turns to alternate; consecutive turns of one role become one.
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(list) = last["parts"].as_array_mut() {
                    list.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    body.insert("contents".into(), Value::Array(contents));
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req.tools.iter().map(render_tool).collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
        if let Some(choice) = &req.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body.insert(
                "toolConfig".into(),
                json!({"functionCallingConfig": config}),
            );
        }
    }
    let mut generation = Map::new();
    if let Some(n) = req.max_tokens {
        generation.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = req.temperature {
        generation.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        generation.insert("topP".into(), p.into());
    }
    if !req.stop.is_empty() {
        generation.insert("stopSequences".into(), json!(req.stop));
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Ok(Value::Object(body))
}

fn render_part(part: &ContentPart, req: &ChatRequest, at: &Loc) -> Result<Value, TranslateError> {
    Ok(match part {
        ContentPart::Text(text) => json!({"text": text}),
        ContentPart::Image(image) => render_image(image, at)?,
        ContentPart::ToolCall(call) => {
            let args = call.arguments.to_object().map_err(|e| at.error(e))?;
            json!({"functionCall": {"name": call.name, "args": args}})
        }
        ContentPart::ToolResult(result) => {
            let name = call_name(req, &result.tool_call_id).ok_or_else(|| {
                at.error(format!(
                    "tool result for `{}` answers no earlier tool call; Gemini needs the \
                     function's name",
                    result.tool_call_id
                ))
            })?;
            json!({"functionResponse": {"name": name, "response": result_object(result)}})
        }
    })
}

fn render_image(image: &Image, at: &Loc) -> Result<Value, TranslateError> {
    match &image.source {
        ImageSource::Base64 { media_type, data } => {
            Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        ImageSource::Url(_) => Err(at.error(
            "Gemini takes images inline: send a `data:<media type>;base64,...` URL instead of a \
             link",
        )),
    }
}

/// A tool result as the object Gemini's `functionResponse.response` must be: a JSON object
/// result as it is, anything else under `result` (or `error` for a failed call).
fn result_object(result: &ToolResult) -> Value {
    let text: String = result
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    match serde_json::from_str::<Value>(&text) {
        Ok(obj @ Value::Object(_)) if !result.is_error => obj,
        _ if result.is_error => json!({"error": text}),
        _ => json!({"result": text}),
    }
}

/// The name of the tool call with this id, from the conversation so far.
fn call_name<'r>(req: &'r ChatRequest, id: &str) -> Option<&'r str> {
    req.messages
        .iter()
        .flat_map(|m| m.content.iter())
        .find_map(|p| match p {
            ContentPart::ToolCall(c) if c.id == id => Some(c.name.as_str()),
            _ => None,
        })
}

fn render_tool(tool: &ToolDefinition) -> Value {
    let mut declaration = json!({"name": tool.name, "parameters": gemini_schema(&tool.parameters)});
    if let Some(d) = &tool.description {
        declaration["description"] = d.clone().into();
    }
    declaration
}

/// Gemini's schema is an OpenAPI subset that refuses some JSON Schema keywords; they only
/// constrain, so they are dropped rather than failing the request.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "$schema" | "additionalProperties" | "strict")
                })
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

/// Parses a Gemini request body; `model` comes from the URL.
pub fn request_from_gemini(body: &Value, model: &str) -> Result<ChatRequest, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(body, &root)?;
    let mut req = ChatRequest {
        model: model.to_string(),
        ..ChatRequest::default()
    };
    if let Some(system) = field(obj, "systemInstruction", "system_instruction") {
        let at = root.field("systemInstruction");
        let system = as_object(system, &at)?;
        let parts_at = at.field("parts");
        for (i, part) in as_array(required(system, "parts", &at)?, &parts_at)?
            .iter()
            .enumerate()
        {
            let part_at = parts_at.index(i);
            let text = required_str(as_object(part, &part_at)?, "text", &part_at)?;
            req.system.push(text.to_string());
        }
    }
    let contents_at = root.field("contents");
    // Ids given to calls so far, by function name, oldest first, for the responses to reuse.
    let mut pending: Vec<(String, String)> = Vec::new();
    for (i, content) in as_array(required(obj, "contents", &root)?, &contents_at)?
        .iter()
        .enumerate()
    {
        let at = contents_at.index(i);
        let content = as_object(content, &at)?;
        let role = match optional(content, "role").map(|r| as_str(r, &at.field("role"))) {
            None => "user",
            Some(r) => r?,
        };
        let parts_at = at.field("parts");
        let mut parts = Vec::new();
        let mut results = Vec::new();
        for (j, part) in as_array(required(content, "parts", &at)?, &parts_at)?
            .iter()
            .enumerate()
        {
            let part_at = parts_at.index(j);
            let p = as_object(part, &part_at)?;
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = optional(p, "text") {
                parts.push(ContentPart::Text(
                    as_str(text, &part_at.field("text"))?.to_string(),
                ));
            } else if let Some(data) = field(p, "inlineData", "inline_data") {
                let d_at = part_at.field("inlineData");
                let d = as_object(data, &d_at)?;
                parts.push(ContentPart::Image(Image {
                    source: ImageSource::Base64 {
                        media_type: field_str(d, "mimeType", "mime_type", &d_at)?.to_string(),
                        data: required_str(d, "data", &d_at)?.to_string(),
                    },
                    detail: None,
                }));
            } else if let Some(data) = field(p, "fileData", "file_data") {
                let d_at = part_at.field("fileData");
                let d = as_object(data, &d_at)?;
                parts.push(ContentPart::Image(Image {
                    source: ImageSource::Url(
                        field_str(d, "fileUri", "file_uri", &d_at)?.to_string(),
                    ),
                    detail: None,
                }));
            } else if let Some(call) = field(p, "functionCall", "function_call") {
                let c_at = part_at.field("functionCall");
                let c = as_object(call, &c_at)?;
                let name = required_str(c, "name", &c_at)?.to_string();
                let id = match optional(c, "id").and_then(Value::as_str) {
                    Some(id) => id.to_string(),
                    None => format!("call_{i}_{j}"),
                };
                pending.push((name.clone(), id.clone()));
                let args = optional(c, "args").cloned().unwrap_or_else(|| json!({}));
                parts.push(ContentPart::ToolCall(ToolCall {
                    id,
                    name,
                    arguments: ToolArguments::Json(args),
                }));
            } else if let Some(resp) = field(p, "functionResponse", "function_response") {
                let r_at = part_at.field("functionResponse");
                let r = as_object(resp, &r_at)?;
                let name = required_str(r, "name", &r_at)?;
                let id = match optional(r, "id").and_then(Value::as_str) {
                    Some(id) => id.to_string(),
                    None => {
                        let at = pending.iter().position(|(n, _)| n == name).ok_or_else(|| {
                            r_at.error(format!(
                                "functionResponse `{name}` answers no earlier functionCall"
                            ))
                        })?;
                        pending.remove(at).1
                    }
                };
                let response = optional(r, "response").cloned().unwrap_or(Value::Null);
                let text = match &response {
                    Value::Object(m)
                        if m.len() == 1 && m.get("result").is_some_and(Value::is_string) =>
                    {
                        m["result"].as_str().unwrap_or_default().to_string()
                    }
                    other => other.to_string(),
                };
                results.push(ContentPart::ToolResult(ToolResult {
                    tool_call_id: id,
                    content: vec![ContentPart::Text(text)],
                    is_error: false,
                }));
            } else {
                return Err(part_at.error(
                    "part kind cannot be translated (text, inlineData, fileData, functionCall and \
                     functionResponse can)",
                ));
            }
        }
        if !results.is_empty() {
            req.messages.push(Message {
                role: Role::Tool,
                content: results,
            });
        }
        if parts.is_empty() {
            continue;
        }
        let role = match role {
            "user" => Role::User,
            "model" => Role::Assistant,
            other => {
                return Err(at
                    .field("role")
                    .error(format!("unknown role `{other}` (user or model)")))
            }
        };
        req.messages.push(Message {
            role,
            content: parts,
        });
    }
    if let Some(tools) = optional(obj, "tools") {
        let at = root.field("tools");
        for (i, tool) in as_array(tools, &at)?.iter().enumerate() {
            let tool_at = at.index(i);
            let t = as_object(tool, &tool_at)?;
            let Some(decls) = field(t, "functionDeclarations", "function_declarations") else {
                return Err(tool_at.error(
                    "only functionDeclarations tools can be translated (not built-in tools such as \
                     googleSearch or codeExecution)",
                ));
            };
            let d_at = tool_at.field("functionDeclarations");
            for (k, decl) in as_array(decls, &d_at)?.iter().enumerate() {
                let f_at = d_at.index(k);
                let f = as_object(decl, &f_at)?;
                let parameters = field(f, "parameters", "parametersJsonSchema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                req.tools.push(ToolDefinition {
                    name: required_str(f, "name", &f_at)?.to_string(),
                    description: optional(f, "description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    parameters: lower_types(&parameters),
                    strict: None,
                });
            }
        }
    }
    if let Some(config) = field(obj, "toolConfig", "tool_config")
        .and_then(|c| {
            field(
                c.as_object()?,
                "functionCallingConfig",
                "function_calling_config",
            )
        })
        .and_then(Value::as_object)
    {
        let names: Vec<&str> = field(config, "allowedFunctionNames", "allowed_function_names")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        req.tool_choice = match config.get("mode").and_then(Value::as_str) {
            Some("NONE") => Some(ToolChoice::None),
            Some("ANY") if names.len() == 1 => Some(ToolChoice::Tool(names[0].to_string())),
            Some("ANY") => Some(ToolChoice::Required),
            Some("AUTO") => Some(ToolChoice::Auto),
            _ => None,
        };
    }
    if let Some(generation) = field(obj, "generationConfig", "generation_config") {
        let at = root.field("generationConfig");
        let g = as_object(generation, &at)?;
        let num = |camel: &str, snake: &str| field(g, camel, snake).and_then(Value::as_f64);
        req.max_tokens = field(g, "maxOutputTokens", "max_output_tokens").and_then(Value::as_u64);
        req.temperature = num("temperature", "temperature");
        req.top_p = num("topP", "top_p");
        if let Some(stops) = field(g, "stopSequences", "stop_sequences") {
            let s_at = at.field("stopSequences");
            req.stop = as_array(stops, &s_at)?
                .iter()
                .enumerate()
                .map(|(i, s)| as_str(s, &s_at.index(i)).map(str::to_string))
                .collect::<Result<_, _>>()?;
        }
    }
    Ok(req)
}

/// A field under its camelCase or snake_case name (the REST API accepts both).
fn field<'v>(obj: &'v Map<String, Value>, camel: &str, snake: &str) -> Option<&'v Value> {
    obj.get(camel).or_else(|| obj.get(snake))
}

fn field_str<'v>(
    obj: &'v Map<String, Value>,
    camel: &str,
    snake: &str,
    at: &Loc,
) -> Result<&'v str, TranslateError> {
    match field(obj, camel, snake) {
        Some(v) => as_str(v, &at.field(camel)),
        None => Err(at.field(camel).error("required field is missing")),
    }
}

/// Gemini's schema spells types in capitals (`OBJECT`, `STRING`); JSON Schema in lower case.
fn lower_types(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        _ => lower_types(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lower_types).collect()),
        other => other.clone(),
    }
}
