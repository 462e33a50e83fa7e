//! The internal representation (IR) of a chat request and of a whole (non-streamed) chat
//! response. Every wire format is parsed into these types and rendered from them, so N formats
//! need 2N functions instead of N² direct translations.
//!
//! The IR keeps what has a meaning in more than one format. What exists in one format only is
//! kept in [`FormatExtras`], tagged with its format, and re-emitted only to that same format:
//! an OpenAI `seed` survives OpenAI → IR → OpenAI but is never sent to Anthropic, which rejects
//! unknown fields.

use serde_json::{Map, Value};

/// A chat request, whatever format it came in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub model: String,
    /// System prompt, as text parts in order. OpenAI `system`/`developer` messages and the
    /// Anthropic top-level `system` all land here.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDefinition>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids several tool calls in one turn (OpenAI `parallel_tool_calls: false`,
    /// Anthropic `disable_parallel_tool_use: true`).
    pub parallel_tool_calls: Option<bool>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// An end-user id for abuse monitoring (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub extras: FormatExtras,
}

/// Fields that exist in one wire format only, re-emitted only to that format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FormatExtras {
    pub openai: Map<String, Value>,
    pub anthropic: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// Results of tool calls. Holds only [`ContentPart::ToolResult`] parts.
    Tool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub source: ImageSource,
    /// OpenAI's `detail` (`auto`, `low`, `high`); Anthropic has no equivalent.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    Url(String),
    Base64 { media_type: String, data: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: ToolArguments,
}

/// Tool-call arguments as they arrived: OpenAI sends a JSON *string* (which a model may have
/// written badly), Anthropic a JSON *object*. Keeping the original avoids re-encoding an OpenAI
/// string on the OpenAI → OpenAI path, and defers the parse (and its error) to the one direction
/// that needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolArguments {
    Text(String),
    Json(Value),
}

impl ToolArguments {
    /// The arguments as a JSON string (OpenAI's `function.arguments`).
    pub fn to_json_string(&self) -> String {
        match self {
            ToolArguments::Text(text) => text.clone(),
            ToolArguments::Json(value) => value.to_string(),
        }
    }

    /// The arguments as a JSON object (Anthropic's `tool_use.input`). An empty string means no
    /// arguments (some OpenAI-compatible servers send `""` for a tool without parameters).
    pub fn to_object(&self) -> Result<Value, String> {
        let value = match self {
            ToolArguments::Json(value) => value.clone(),
            ToolArguments::Text(text) if text.trim().is_empty() => Value::Object(Map::new()),
            ToolArguments::Text(text) => serde_json::from_str(text)
                .map_err(|e| format!("tool-call arguments are not valid JSON ({e})"))?,
        };
        if value.is_object() {
            Ok(value)
        } else {
            Err("tool-call arguments must be a JSON object".to_string())
        }
    }

    /// The arguments as a JSON value, for comparing meaning regardless of encoding.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            ToolArguments::Json(value) => Some(value.clone()),
            ToolArguments::Text(text) => serde_json::from_str(text).ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub tool_call_id: String,
    /// Text and image parts only.
    pub content: Vec<ContentPart>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// OpenAI structured-outputs `strict`; Anthropic has no equivalent.
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    /// This tool must be called.
    Tool(String),
}

/// A whole chat response (one choice).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    /// Unix seconds, when the provider said (OpenAI `created`).
    pub created: Option<u64>,
    /// Text and tool calls, in the order the model produced them.
    pub content: Vec<ContentPart>,
    /// OpenAI `message.refusal`: the model declined, and says why.
    pub refusal: Option<String>,
    pub finish_reason: Option<FinishReason>,
    /// The stop sequence that ended generation, when the provider says which.
    pub stop_sequence: Option<String>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The output bound (or the context window) was reached.
    Length,
    ToolCalls,
    ContentFilter,
    /// Anything else, as the provider spelled it.
    Other(String),
}

/// Token counts. `input_tokens` is the *whole* prompt, cache reads and cache writes included
/// (OpenAI's `prompt_tokens` meaning); the two cache counts are parts of it. So the prompt size
/// and the total stay the same whichever format reports them; see `anthropic::response` for the
/// conversion from Anthropic's uncached-only `input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic only).
    pub cache_creation_input_tokens: u64,
}

/// Why a body could not be translated, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TranslateError {
    /// A JSON path such as `messages[2].content[0].image_url`.
    pub path: String,
    pub message: String,
}

impl From<TranslateError> for crate::error::ApiError {
    fn from(e: TranslateError) -> Self {
        crate::error::ApiError::new(crate::error::ErrorType::InvalidRequest, e.to_string())
    }
}

/// The turns of a conversation for the formats whose messages alternate `user` and
/// `assistant` (Anthropic, Bedrock): tool results become user content, consecutive messages of
/// one role merge into one turn, and a message whose parts all render to nothing is dropped.
/// `render` renders one part (`None`: leave it out), given its role and JSON path.
pub(crate) fn alternating_turns<F>(
    messages: &[Message],
    mut render: F,
) -> Result<Vec<(&'static str, Vec<Value>)>, TranslateError>
where
    F: FnMut(&ContentPart, Role, &super::json_access::Loc) -> Result<Option<Value>, TranslateError>,
{
    let root = super::json_access::Loc::Root;
    let messages_at = root.field("messages");
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let at = messages_at.index(i);
        let content_at = at.field("content");
        let role = match message.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        let mut blocks = Vec::with_capacity(message.content.len());
        for (j, part) in message.content.iter().enumerate() {
            if let Some(block) = render(part, message.role, &content_at.index(j))? {
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
    Ok(out)
}
