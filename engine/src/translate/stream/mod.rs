//! Streaming translation between OpenAI Chat Completions SSE and Anthropic Messages SSE.
//!
//! Every wire format has a decoder (parsed SSE events → [`StreamEvent`]s) and an encoder
//! ([`StreamEvent`]s → SSE bytes in that format), so any pair of formats composes through one
//! small event IR. All of it is pure and incremental: no I/O, no clock, no task; the caller feeds
//! byte chunks as they arrive and writes out whatever bytes come back.
//!
//! - [`sse`]: SSE framing (byte chunks split anywhere → whole events), bounded per event.
//! - [`openai`], [`anthropic`]: the decoder and encoder of each format.
//! - [`eventstream`], [`bedrock`]: AWS's binary event-stream framing and the Bedrock
//!   ConverseStream decoder (an upstream-only format: no encoder).
//! - [`StreamTranslator`]: framing + decoder + encoder, what the proxy will drive.
//!
//! What has no counterpart in the other format is dropped, not approximated: OpenAI choices
//! other than 0, logprobs and `delta.refusal`; Anthropic thinking / redacted thinking blocks,
//! server tool use, citations and the matched `stop_sequence` (it becomes a plain stop); the
//! cache-write count on the OpenAI side (its usage has no such field).

pub mod anthropic;
pub mod bedrock;
pub mod eventstream;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod sse;
mod translator;

#[cfg(test)]
mod bedrock_tests;
#[cfg(test)]
mod tests;

pub use translator::{EncoderOptions, StreamTranslator, UnsupportedClientFormat, WireFormat};

/// One thing that happened in a streamed chat completion, independent of the wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The response began: the upstream's message id and the model that answers.
    Start { id: String, model: String },
    /// A piece of assistant text.
    TextDelta { text: String },
    /// A tool call began. `index` identifies the call within this response (it is not a
    /// position in any particular wire format: encoders number calls and blocks themselves).
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of a tool call's JSON arguments; fragments concatenate to the whole JSON.
    ToolArgumentsDelta { index: u32, json_fragment: String },
    /// Generation stopped, and why.
    Finish { reason: FinishReason },
    /// Token counts known so far; later counts replace earlier ones field by field.
    Usage(Usage),
    /// The upstream (or the translation) failed mid-stream; nothing follows.
    Error { error_type: String, message: String },
    /// The upstream finished the stream normally; nothing follows.
    Done,
}

/// Why generation stopped, normalized across formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The output token limit.
    Length,
    /// The model wants the client to run tool calls.
    ToolCalls,
    /// Refused or filtered for content.
    ContentFilter,
    /// Anything else (e.g. Anthropic's `pause_turn`); encoders write their format's plain stop.
    Other,
}

/// Token counts. `input` counts every prompt token, including those read from or written to a
/// prompt cache (OpenAI's `prompt_tokens` meaning); `cached_input` and `cache_creation` say how
/// many of them were cache reads and cache writes. Anthropic's `input_tokens` counts neither, so
/// its codec adds and subtracts them. `None` means "not known (yet)".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cached_input: Option<u64>,
    pub cache_creation: Option<u64>,
}

impl Usage {
    /// Takes every count `newer` knows; keeps the rest. Upstreams report cumulative counts,
    /// so the newest value of a field is the right one.
    pub fn merge(&mut self, newer: &Usage) {
        fn take(old: &mut Option<u64>, new: Option<u64>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.input, newer.input);
        take(&mut self.output, newer.output);
        take(&mut self.cached_input, newer.cached_input);
        take(&mut self.cache_creation, newer.cache_creation);
    }

    /// Prompt tokens that were neither read from nor written to the cache (Anthropic's
    /// `input_tokens`).
    pub fn uncached_input(&self) -> u64 {
        self.input
            .unwrap_or(0)
            .saturating_sub(self.cached_input.unwrap_or(0))
            .saturating_sub(self.cache_creation.unwrap_or(0))
    }
}

/// Why an upstream stream could not be decoded. The translator turns these into an
/// [`StreamEvent::Error`] for the client rather than dropping the connection silently.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    #[error("upstream SSE event exceeds {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("upstream SSE stream is not valid UTF-8")]
    InvalidUtf8,
    #[error("upstream stream event is not valid JSON for this format: {0}")]
    InvalidJson(String),
    #[error("upstream event-stream message exceeds {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("upstream event-stream framing is invalid: {0}")]
    InvalidFrame(String),
}

impl From<serde_json::Error> for StreamError {
    fn from(err: serde_json::Error) -> Self {
        StreamError::InvalidJson(err.to_string())
    }
}

/// Appends one SSE event (`event:` line only when named) to `out`. JSON payloads never contain
/// a raw newline, so one `data:` line is always enough.
fn write_sse_json<T: serde::Serialize>(out: &mut Vec<u8>, event: Option<&str>, payload: &T) {
    let rollback = out.len();
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serializing plain structs of strings and integers into a Vec cannot fail; should it ever,
    // drop the half-written event rather than send the client a torn one.
    if serde_json::to_writer(&mut *out, payload).is_err() {
        out.truncate(rollback);
        return;
    }
    out.extend_from_slice(b"\n\n");
}
