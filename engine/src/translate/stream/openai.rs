//! OpenAI Chat Completions streaming (`chat.completion.chunk` events).
//!
//! Wire shape (openai-python `types/chat/chat_completion_chunk.py`): data-only SSE events, each
//! `{"id","object":"chat.completion.chunk","created","model","choices":[{"index","delta":{"role",
//! "content","tool_calls":[{"index","id","type","function":{"name","arguments"}}]},"logprobs",
//! "finish_reason"}]}`; with `stream_options.include_usage` a last chunk with `"choices": []` and
//! `usage`; then `data: [DONE]`. A mid-stream failure is a data event `{"error": {...}}` (the SDKs
//! raise on it only when the event has no `event:` name, so the encoder never writes one).
//! Only choice 0 is translated: `n > 1` has no equivalent in the other formats.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::sse::SseEvent;
use super::{write_sse_json, FinishReason, StreamError, StreamEvent, Usage};
use crate::error::ErrorType;

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChunkIn {
    id: Option<String>,
    model: Option<String>,
    choices: Option<Vec<ChoiceIn>>,
    usage: Option<UsageIn>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    #[serde(default)]
    index: u32,
    delta: Option<DeltaIn>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct DeltaIn {
    content: Option<String>,
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct UsageIn {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

/// OpenAI chunk events → [`StreamEvent`]s.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    /// Tool call indexes already announced with a `ToolCallStart`.
    tools_started: SmallVec<[u32; 4]>,
}

impl ChunkDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one SSE event, appending what it means to `out`.
    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            out.push(StreamEvent::Done);
            return Ok(());
        }
        let chunk: ChunkIn = serde_json::from_str(data)?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            out.push(error_event(&error));
            return Ok(());
        }
        if event.event.as_deref() == Some("error") {
            out.push(StreamEvent::Error {
                error_type: ErrorType::UpstreamError.as_str().to_owned(),
                message: data.to_owned(),
            });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.unwrap_or_default(),
                model: chunk.model.unwrap_or_default(),
            });
        }
        let choice = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index == 0);
        if let Some(choice) = choice {
            if let Some(delta) = choice.delta {
                self.decode_delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                out.push(StreamEvent::Finish {
                    reason: finish_reason_from_openai(&reason),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(Usage {
                input: usage.prompt_tokens,
                output: usage.completion_tokens,
                cached_input: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
                cache_creation: None,
            }));
        }
        Ok(())
    }

    fn decode_delta(&mut self, delta: DeltaIn, out: &mut Vec<StreamEvent>) {
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta { text });
        }
        for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
            // Some OpenAI-compatible servers omit `index`; their calls come one per delta in order.
            let index = call
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let (name, arguments) = match call.function {
                Some(function) => (function.name, function.arguments),
                None => (None, None),
            };
            if !self.tools_started.contains(&index) {
                self.tools_started.push(index);
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call.id.unwrap_or_default(),
                    name: name.unwrap_or_default(),
                });
            }
            if let Some(json_fragment) = arguments.filter(|a| !a.is_empty()) {
                out.push(StreamEvent::ToolArgumentsDelta {
                    index,
                    json_fragment,
                });
            }
        }
    }
}

fn error_event(error: &serde_json::Value) -> StreamEvent {
    let field = |name: &str| error.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    StreamEvent::Error {
        error_type: field("type").unwrap_or_else(|| ErrorType::UpstreamError.as_str().to_owned()),
        message: field("message")
            .or_else(|| error.as_str().map(str::to_owned))
            .unwrap_or_else(|| error.to_string()),
    }
}

pub fn finish_reason_from_openai(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

pub fn finish_reason_to_openai(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: &'a [ChoiceOut<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptTokensDetailsOut>,
}

#[derive(Serialize)]
struct PromptTokensDetailsOut {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: ErrorBodyOut<'a>,
}

#[derive(Serialize)]
struct ErrorBodyOut<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: Option<()>,
}

/// [`StreamEvent`]s → OpenAI chunk SSE bytes.
///
/// Every chunk carries the same `id`, `model` and `created`; the first delta has
/// `role: "assistant"`. Tool calls are numbered 0, 1, … in order of first appearance. Usage is
/// held back and sent in its own `choices: []` chunk just before `[DONE]` (only when the client
/// asked for it), because other formats report counts in pieces.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    role_sent: bool,
    finish_sent: bool,
    /// IR tool indexes, in the order their calls were first seen (position = OpenAI index).
    tools: SmallVec<[u32; 4]>,
    usage: Usage,
    ended: bool,
}

impl ChunkEncoder {
    /// `created` is the Unix time stamped on every chunk (passed in: this module reads no
    /// clock); `include_usage` mirrors the client's `stream_options.include_usage`.
    pub fn new(created: i64, include_usage: bool) -> Self {
        ChunkEncoder {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            role_sent: false,
            finish_sent: false,
            tools: SmallVec::new(),
            usage: Usage::default(),
            ended: false,
        }
    }

    /// True once `[DONE]` or an error has been written; later events are ignored.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                if !self.role_sent {
                    id.clone_into(&mut self.id);
                    model.clone_into(&mut self.model);
                }
                self.ensure_role(out);
            }
            StreamEvent::TextDelta { text } => {
                self.ensure_role(out);
                if !text.is_empty() {
                    let delta = DeltaOut {
                        content: Some(text),
                        ..DeltaOut::default()
                    };
                    self.write_delta(out, delta, None);
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_role(out);
                if self.tools.contains(index) {
                    return;
                }
                let position = self.tool_position(*index);
                let call = ToolCallOut {
                    index: position,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionOut {
                        name: Some(name),
                        arguments: "",
                    },
                };
                self.write_tool_call(out, call);
            }
            StreamEvent::ToolArgumentsDelta {
                index,
                json_fragment,
            } => {
                self.ensure_role(out);
                if json_fragment.is_empty() {
                    return;
                }
                let position = self.tool_position(*index);
                let call = ToolCallOut {
                    index: position,
                    id: None,
                    kind: None,
                    function: FunctionOut {
                        name: None,
                        arguments: json_fragment,
                    },
                };
                self.write_tool_call(out, call);
            }
            StreamEvent::Finish { reason } => {
                self.ensure_role(out);
                self.write_finish(out, *reason);
            }
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Error {
                error_type,
                message,
            } => {
                let error = ErrorOut {
                    error: ErrorBodyOut {
                        message,
                        kind: error_type,
                        param: None,
                        code: None,
                    },
                };
                write_sse_json(out, None, &error);
                self.ended = true;
            }
            StreamEvent::Done => {
                self.ensure_role(out);
                if !self.finish_sent {
                    let reason = if self.tools.is_empty() {
                        FinishReason::Stop
                    } else {
                        FinishReason::ToolCalls
                    };
                    self.write_finish(out, reason);
                }
                if self.include_usage {
                    self.write_usage(out);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
        }
    }

    /// The OpenAI index of IR tool call `index`, assigning the next one on first sight.
    fn tool_position(&mut self, index: u32) -> u32 {
        let position = match self.tools.iter().position(|&seen| seen == index) {
            Some(position) => position,
            None => {
                self.tools.push(index);
                self.tools.len() - 1
            }
        };
        u32::try_from(position).unwrap_or(u32::MAX)
    }

    fn ensure_role(&mut self, out: &mut Vec<u8>) {
        if self.role_sent {
            return;
        }
        self.role_sent = true;
        let delta = DeltaOut {
            role: Some("assistant"),
            content: Some(""),
            ..DeltaOut::default()
        };
        self.write_delta(out, delta, None);
    }

    fn write_tool_call(&self, out: &mut Vec<u8>, call: ToolCallOut<'_>) {
        let delta = DeltaOut {
            tool_calls: Some([call]),
            ..DeltaOut::default()
        };
        self.write_delta(out, delta, None);
    }

    fn write_finish(&mut self, out: &mut Vec<u8>, reason: FinishReason) {
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        self.write_delta(
            out,
            DeltaOut::default(),
            Some(finish_reason_to_openai(reason)),
        );
    }

    fn write_delta(&self, out: &mut Vec<u8>, delta: DeltaOut<'_>, finish: Option<&'static str>) {
        let choices = [ChoiceOut {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }];
        self.write_chunk(out, &choices, None);
    }

    fn write_usage(&self, out: &mut Vec<u8>) {
        let input = self.usage.input.unwrap_or(0);
        let output = self.usage.output.unwrap_or(0);
        let usage = UsageOut {
            prompt_tokens: input,
            completion_tokens: output,
            total_tokens: input.saturating_add(output),
            prompt_tokens_details: self
                .usage
                .cached_input
                .map(|cached_tokens| PromptTokensDetailsOut { cached_tokens }),
        };
        self.write_chunk(out, &[], Some(usage));
    }

    fn write_chunk(&self, out: &mut Vec<u8>, choices: &[ChoiceOut<'_>], usage: Option<UsageOut>) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        write_sse_json(out, None, &chunk);
    }
}
