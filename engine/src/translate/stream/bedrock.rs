//! Bedrock ConverseStream, decoder only: event-stream messages (see [`super::eventstream`]) →
//! [`StreamEvent`]s. No client speaks this format to the gateway, so there is no encoder.
//!
//! Each message names its kind in headers: `:message-type` is `event`, `exception` or `error`;
//! an event's `:event-type` is one of `messageStart` (`{role}`), `contentBlockStart`
//! (`{contentBlockIndex, start: {toolUse: {toolUseId, name}}}`; text blocks have none),
//! `contentBlockDelta` (`{contentBlockIndex, delta: {text} | {toolUse: {input}} |
//! {reasoningContent}}`), `contentBlockStop`, `messageStop` (`{stopReason}`) and `metadata`
//! (`{usage, metrics}`, the last event). Payloads also carry a random-length `p` padding field,
//! ignored here. An exception's name is in `:exception-type`, its text in the payload's
//! `message`; an `error` message carries `:error-code` and `:error-message` headers.
//!
//! ConverseStream says neither a response id nor the model, so `Start` carries what the caller
//! set with [`ConverseStreamDecoder::set_identity`] (empty by default). Reasoning deltas are
//! dropped.

use serde::Deserialize;
use smallvec::SmallVec;

use super::eventstream::Message;
use super::{FinishReason, StreamError, StreamEvent, Usage};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartIn {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    start: Option<StartIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    tool_use: Option<ToolStartIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolStartIn {
    #[serde(default)]
    tool_use_id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaIn {
    #[serde(default)]
    content_block_index: u32,
    delta: Option<DeltaIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaIn {
    text: Option<String>,
    tool_use: Option<ToolDeltaIn>,
}

#[derive(Deserialize)]
struct ToolDeltaIn {
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopIn {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct MetadataIn {
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageIn {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_write_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ExceptionIn {
    #[serde(default, alias = "Message")]
    message: String,
}

/// ConverseStream messages → [`StreamEvent`]s.
#[derive(Debug, Default)]
pub struct ConverseStreamDecoder {
    /// Tool blocks started so far: (content block index, IR tool index).
    tools: SmallVec<[(u32, u32); 4]>,
    tool_count: u32,
    stop_seen: bool,
    /// Reported in `Start`, as the stream itself names neither.
    id: String,
    model: String,
}

impl ConverseStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The response id and model that `Start` reports (the gateway's own id for the call, and
    /// the model id it put in the URL). Takes effect for a `messageStart` not decoded yet.
    pub fn set_identity(&mut self, id: String, model: String) {
        self.id = id;
        self.model = model;
    }

    /// Decodes one event-stream message, appending what it means to `out`.
    pub fn decode(
        &mut self,
        message: &Message,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        match message.header_str(":message-type").unwrap_or("event") {
            "event" => {}
            "exception" => {
                let text = serde_json::from_slice::<ExceptionIn>(&message.payload)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&message.payload).into_owned());
                out.push(StreamEvent::Error {
                    error_type: message
                        .header_str(":exception-type")
                        .unwrap_or("exception")
                        .to_owned(),
                    message: text,
                });
                return Ok(());
            }
            "error" => {
                out.push(StreamEvent::Error {
                    error_type: message
                        .header_str(":error-code")
                        .unwrap_or("error")
                        .to_owned(),
                    message: message
                        .header_str(":error-message")
                        .unwrap_or_default()
                        .to_owned(),
                });
                return Ok(());
            }
            other => {
                return Err(StreamError::InvalidFrame(format!(
                    "unknown :message-type `{other}`"
                )))
            }
        }
        let payload = message.payload.as_slice();
        match message.header_str(":event-type").unwrap_or_default() {
            "messageStart" => out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
            }),
            "contentBlockStart" => {
                let start: BlockStartIn = serde_json::from_slice(payload)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let index = self.tool_count;
                    self.tool_count = self.tool_count.saturating_add(1);
                    self.tools.push((start.content_block_index, index));
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: tool.tool_use_id,
                        name: tool.name,
                    });
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDeltaIn = serde_json::from_slice(payload)?;
                let Some(inner) = delta.delta else {
                    return Ok(());
                };
                if let Some(text) = inner.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text });
                } else if let Some(tool) = inner.tool_use.filter(|t| !t.input.is_empty()) {
                    // A fragment for a block that never started as a tool has nowhere to go.
                    if let Some(index) = self.tool_index(delta.content_block_index) {
                        out.push(StreamEvent::ToolArgumentsDelta {
                            index,
                            json_fragment: tool.input,
                        });
                    }
                }
            }
            "messageStop" => {
                let stop: StopIn = serde_json::from_slice(payload)?;
                self.stop_seen = true;
                out.push(StreamEvent::Finish {
                    reason: finish_reason_from_bedrock(stop.stop_reason.as_deref().unwrap_or("")),
                });
            }
            "metadata" => {
                let metadata: MetadataIn = serde_json::from_slice(payload)?;
                if let Some(usage) = metadata.usage {
                    out.push(StreamEvent::Usage(usage_from_bedrock(&usage)));
                }
                // `metadata` is the last event of a ConverseStream: the answer is complete.
                if self.stop_seen {
                    out.push(StreamEvent::Done);
                }
            }
            // `contentBlockStop` needs nothing; newer event types are skipped.
            _ => {}
        }
        Ok(())
    }

    fn tool_index(&self, block: u32) -> Option<u32> {
        self.tools
            .iter()
            .rev()
            .find(|(b, _)| *b == block)
            .map(|(_, tool)| *tool)
    }
}

/// Converse's `inputTokens` leaves out cache reads and writes; the IR's `input` counts them.
fn usage_from_bedrock(usage: &UsageIn) -> Usage {
    let any_input = usage.input_tokens.is_some()
        || usage.cache_read_input_tokens.is_some()
        || usage.cache_write_input_tokens.is_some();
    Usage {
        input: any_input.then(|| {
            usage
                .input_tokens
                .unwrap_or(0)
                .saturating_add(usage.cache_read_input_tokens.unwrap_or(0))
                .saturating_add(usage.cache_write_input_tokens.unwrap_or(0))
        }),
        output: usage.output_tokens,
        cached_input: usage.cache_read_input_tokens,
        cache_creation: usage.cache_write_input_tokens,
    }
}

fn finish_reason_from_bedrock(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}
