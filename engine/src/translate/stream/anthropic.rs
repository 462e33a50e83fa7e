//! Anthropic Messages streaming.
//!
//! Wire shape (anthropic-sdk-python `types/raw_*_event.py`, `lib/streaming/_messages.py`): named
//! SSE events whose data carries the same `type`: `message_start` (a message with empty
//! `content` and `usage`), then per content block `content_block_start` / `content_block_delta`…
//! / `content_block_stop` with indexes 0, 1, … (the SDK appends blocks in arrival order, so the
//! indexes must be dense and increasing), `message_delta` (`delta.stop_reason`, cumulative
//! `usage`), `message_stop`; `ping` may come anywhere; a failure is `event: error` with
//! `{"type":"error","error":{"type","message"}}`.
//!
//! Anthropic's `input_tokens` excludes cache reads and writes, while the IR's `input` includes
//! them (see [`Usage`]); both directions convert.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::sse::SseEvent;
use super::{write_sse_json, FinishReason, StreamError, StreamEvent, Usage};

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventIn {
    MessageStart {
        message: MessageIn,
    },
    ContentBlockStart {
        index: u32,
        content_block: BlockIn,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDeltaIn,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDeltaIn,
        usage: Option<UsageIn>,
    },
    MessageStop {},
    Error {
        error: ErrorIn,
    },
    /// `ping` and event types newer than this code.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockIn {
    Text {},
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
    },
    /// Thinking, server tool use and other blocks with no OpenAI equivalent.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDeltaIn {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct MessageDeltaIn {
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct UsageIn {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    /// A tool_use block; the number is its IR tool index (0 for the first tool block, …).
    Tool(u32),
    Ignored,
}

/// Anthropic SSE events → [`StreamEvent`]s.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    /// Kind of every block started so far, by block index.
    blocks: SmallVec<[(u32, BlockKind); 4]>,
    tool_count: u32,
    /// Anthropic-style counts (input excludes cache), cumulative, as last reported.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl MessageDecoder {
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
        match serde_json::from_str::<EventIn>(data)? {
            EventIn::MessageStart { message } => {
                out.push(StreamEvent::Start {
                    id: message.id,
                    model: message.model,
                });
                if let Some(usage) = message.usage {
                    out.push(self.usage_event(usage));
                }
            }
            EventIn::ContentBlockStart {
                index,
                content_block,
            } => {
                let kind = match content_block {
                    BlockIn::Text {} => BlockKind::Text,
                    BlockIn::ToolUse { id, name } => {
                        let tool = self.tool_count;
                        self.tool_count = self.tool_count.saturating_add(1);
                        out.push(StreamEvent::ToolCallStart {
                            index: tool,
                            id,
                            name,
                        });
                        BlockKind::Tool(tool)
                    }
                    BlockIn::Ignored => BlockKind::Ignored,
                };
                self.blocks.push((index, kind));
            }
            EventIn::ContentBlockDelta { index, delta } => match (self.block_kind(index), delta) {
                (Some(BlockKind::Text), BlockDeltaIn::TextDelta { text }) if !text.is_empty() => {
                    out.push(StreamEvent::TextDelta { text });
                }
                (Some(BlockKind::Tool(tool)), BlockDeltaIn::InputJsonDelta { partial_json })
                    if !partial_json.is_empty() =>
                {
                    out.push(StreamEvent::ToolArgumentsDelta {
                        index: tool,
                        json_fragment: partial_json,
                    });
                }
                _ => {}
            },
            EventIn::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    out.push(StreamEvent::Finish {
                        reason: finish_reason_from_anthropic(&reason),
                    });
                }
                if let Some(usage) = usage {
                    out.push(self.usage_event(usage));
                }
            }
            EventIn::MessageStop {} => out.push(StreamEvent::Done),
            EventIn::Error { error } => out.push(StreamEvent::Error {
                error_type: error.kind,
                message: error.message,
            }),
            EventIn::ContentBlockStop {} | EventIn::Ignored => {}
        }
        Ok(())
    }

    fn block_kind(&self, index: u32) -> Option<BlockKind> {
        // The newest block with this index wins, should an upstream ever reuse one.
        self.blocks
            .iter()
            .rev()
            .find(|(block, _)| *block == index)
            .map(|(_, kind)| *kind)
    }

    /// Folds Anthropic's counts (which come in pieces: input at the start, output at the end,
    /// newer API versions repeat the input in `message_delta`) into one IR usage.
    fn usage_event(&mut self, usage: UsageIn) -> StreamEvent {
        fn take(old: &mut Option<u64>, new: Option<u64>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.input_tokens, usage.input_tokens);
        take(&mut self.output_tokens, usage.output_tokens);
        take(&mut self.cache_read, usage.cache_read_input_tokens);
        take(&mut self.cache_creation, usage.cache_creation_input_tokens);
        let input = self.input_tokens.map(|uncached| {
            uncached
                .saturating_add(self.cache_read.unwrap_or(0))
                .saturating_add(self.cache_creation.unwrap_or(0))
        });
        StreamEvent::Usage(Usage {
            input,
            output: self.output_tokens,
            cached_input: self.cache_read,
            cache_creation: self.cache_creation,
        })
    }
}

pub fn finish_reason_from_anthropic(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

pub fn finish_reason_to_anthropic(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventOut<'a> {
    MessageStart {
        message: MessageOut<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: BlockOut<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDeltaOut<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaOut,
        usage: UsageOut,
    },
    MessageStop,
    Error {
        error: ErrorOut<'a>,
    },
}

impl EventOut<'_> {
    fn name(&self) -> &'static str {
        match self {
            EventOut::MessageStart { .. } => "message_start",
            EventOut::ContentBlockStart { .. } => "content_block_start",
            EventOut::ContentBlockDelta { .. } => "content_block_delta",
            EventOut::ContentBlockStop { .. } => "content_block_stop",
            EventOut::MessageDelta { .. } => "message_delta",
            EventOut::MessageStop => "message_stop",
            EventOut::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDeltaOut<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaOut {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct UsageOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    output_tokens: u64,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// [`StreamEvent`]s → Anthropic SSE bytes.
///
/// One block is open at a time: text opens a text block, each tool call its own tool_use block,
/// and whatever was open is stopped first, so block indexes are dense and increasing even when
/// an OpenAI upstream interleaves text and tool deltas.
///
/// Usage: `message_start` is held back until the first content (or the end), so an upstream that
/// reports input tokens at its start (Anthropic) gets them there. An upstream that reports usage
/// only at the end (OpenAI's last chunk) cannot: `message_start.usage` then says
/// `input_tokens: 0, output_tokens: 0`, and `message_delta.usage` carries the real totals —
/// `input_tokens`, cache fields and `output_tokens` — which the SDKs copy over the start's.
#[derive(Debug, Default)]
pub struct MessageEncoder {
    id: String,
    model: String,
    message_started: bool,
    /// The block index the next block gets.
    next_block: u32,
    /// The open block: its index and kind.
    open: Option<(u32, BlockKind)>,
    /// IR tool index → block index of every tool block opened so far.
    tool_blocks: SmallVec<[(u32, u32); 4]>,
    stop_reason: Option<FinishReason>,
    usage: Usage,
    ended: bool,
}

impl MessageEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// True once `message_stop` or an error has been written; later events are ignored.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start { id, model } => {
                if !self.message_started {
                    id.clone_into(&mut self.id);
                    model.clone_into(&mut self.model);
                }
            }
            StreamEvent::TextDelta { text } => {
                if text.is_empty() {
                    return;
                }
                self.ensure_message_start(out);
                let index = match self.open {
                    Some((index, BlockKind::Text)) => index,
                    _ => {
                        let index = self.open_block(out, BlockKind::Text);
                        let block = BlockOut::Text { text: "" };
                        write_event(
                            out,
                            &EventOut::ContentBlockStart {
                                index,
                                content_block: block,
                            },
                        );
                        index
                    }
                };
                let delta = BlockDeltaOut::TextDelta { text };
                write_event(out, &EventOut::ContentBlockDelta { index, delta });
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_message_start(out);
                if self.tool_block(*index).is_none() {
                    self.start_tool_block(out, *index, id, name);
                }
            }
            StreamEvent::ToolArgumentsDelta {
                index,
                json_fragment,
            } => {
                if json_fragment.is_empty() {
                    return;
                }
                self.ensure_message_start(out);
                // A fragment for a call whose block was already stopped (an upstream that
                // interleaves parallel calls) still goes to that call's index: blocks cannot be
                // reopened, and the SDKs accumulate deltas by index, so the call stays whole.
                let block = match self.tool_block(*index) {
                    Some(block) => block,
                    None => self.start_tool_block(out, *index, "", ""),
                };
                let delta = BlockDeltaOut::InputJsonDelta {
                    partial_json: json_fragment,
                };
                write_event(
                    out,
                    &EventOut::ContentBlockDelta {
                        index: block,
                        delta,
                    },
                );
            }
            StreamEvent::Finish { reason } => {
                self.ensure_message_start(out);
                self.close_block(out);
                self.stop_reason = Some(*reason);
            }
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Error {
                error_type,
                message,
            } => {
                let error = ErrorOut {
                    kind: error_type,
                    message,
                };
                write_event(out, &EventOut::Error { error });
                self.ended = true;
            }
            StreamEvent::Done => {
                self.ensure_message_start(out);
                self.close_block(out);
                let reason = self.stop_reason.unwrap_or(if self.tool_blocks.is_empty() {
                    FinishReason::Stop
                } else {
                    FinishReason::ToolCalls
                });
                let delta = MessageDeltaOut {
                    stop_reason: finish_reason_to_anthropic(reason),
                    stop_sequence: None,
                };
                let usage = self.usage_out(false);
                write_event(out, &EventOut::MessageDelta { delta, usage });
                write_event(out, &EventOut::MessageStop);
                self.ended = true;
            }
        }
    }

    fn ensure_message_start(&mut self, out: &mut Vec<u8>) {
        if self.message_started {
            return;
        }
        self.message_started = true;
        let message = MessageOut {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: self.usage_out(true),
        };
        write_event(out, &EventOut::MessageStart { message });
    }

    /// `message_start`'s usage requires `input_tokens` (0 when not known yet);
    /// `message_delta`'s carries it only when known, so a 0 never overwrites a real count.
    fn usage_out(&self, at_message_start: bool) -> UsageOut {
        let input_tokens = match self.usage.input {
            Some(_) => Some(self.usage.uncached_input()),
            None if at_message_start => Some(0),
            None => None,
        };
        UsageOut {
            input_tokens,
            cache_creation_input_tokens: self.usage.cache_creation,
            cache_read_input_tokens: self.usage.cached_input,
            output_tokens: self.usage.output.unwrap_or(0),
        }
    }

    fn tool_block(&self, tool: u32) -> Option<u32> {
        self.tool_blocks
            .iter()
            .find(|(seen, _)| *seen == tool)
            .map(|(_, block)| *block)
    }

    fn start_tool_block(&mut self, out: &mut Vec<u8>, tool: u32, id: &str, name: &str) -> u32 {
        let index = self.open_block(out, BlockKind::Tool(tool));
        self.tool_blocks.push((tool, index));
        let block = BlockOut::ToolUse {
            id,
            name,
            input: EmptyObject {},
        };
        write_event(
            out,
            &EventOut::ContentBlockStart {
                index,
                content_block: block,
            },
        );
        index
    }

    /// Stops the open block, if any, and reserves the next index for a block of `kind`.
    fn open_block(&mut self, out: &mut Vec<u8>, kind: BlockKind) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        self.open = Some((index, kind));
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            write_event(out, &EventOut::ContentBlockStop { index });
        }
    }
}

fn write_event(out: &mut Vec<u8>, event: &EventOut<'_>) {
    write_sse_json(out, Some(event.name()), event);
}
