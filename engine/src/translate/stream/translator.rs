//! One upstream stream in one format → one client stream in another: SSE framing, the
//! upstream format's decoder and the client format's encoder, with the buffers reused between
//! chunks.

use super::anthropic::{MessageDecoder, MessageEncoder};
use super::gemini::{ContentDecoder, ContentEncoder};
use super::openai::{ChunkDecoder, ChunkEncoder};
use super::responses::ResponsesEncoder;
use super::sse::{SseDecoder, SseEvent, DEFAULT_MAX_EVENT_BYTES};
use super::{StreamError, StreamEvent, Usage};
use crate::error::ErrorType;

/// A streaming wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// OpenAI Chat Completions chunks.
    OpenAi,
    /// Anthropic Messages events.
    Anthropic,
    /// Gemini `streamGenerateContent?alt=sse` chunks.
    Gemini,
    /// OpenAI Responses API events: a client format only. As an upstream format every
    /// stream is refused with an error event, since no provider is sent this format.
    Responses,
}

/// What the client-side encoder needs to know that the upstream stream does not say.
#[derive(Debug, Clone, Copy)]
pub struct EncoderOptions {
    /// Unix time for OpenAI's `created` (the caller reads the clock, this module does not).
    pub created: i64,
    /// The OpenAI client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// Largest upstream SSE event accepted.
    pub max_event_bytes: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            created: 0,
            include_usage: false,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

#[derive(Debug)]
enum Decoder {
    OpenAi(ChunkDecoder),
    Anthropic(MessageDecoder),
    Gemini(ContentDecoder),
    /// A format the gateway never reads from a provider.
    Unsupported(WireFormat),
}

#[derive(Debug)]
enum Encoder {
    OpenAi(ChunkEncoder),
    Anthropic(MessageEncoder),
    Gemini(ContentEncoder),
    Responses(Box<ResponsesEncoder>),
}

impl Encoder {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(encoder) => encoder.encode(event, out),
            Encoder::Anthropic(encoder) => encoder.encode(event, out),
            Encoder::Gemini(encoder) => encoder.encode(event, out),
            Encoder::Responses(encoder) => encoder.encode(event, out),
        }
    }

    fn is_ended(&self) -> bool {
        match self {
            Encoder::OpenAi(encoder) => encoder.is_ended(),
            Encoder::Anthropic(encoder) => encoder.is_ended(),
            Encoder::Gemini(encoder) => encoder.is_ended(),
            Encoder::Responses(encoder) => encoder.is_ended(),
        }
    }
}

/// Translates one streamed response. Feed upstream bytes with [`StreamTranslator::feed`] and
/// call [`StreamTranslator::finish`] when the upstream body ends; both append client bytes to
/// `out`. Nothing here fails: an upstream that breaks the protocol (bad JSON, invalid UTF-8, an
/// oversized event, a cut-off body) becomes an error event in the client's format, so the client
/// stream always ends with its format's terminator (`[DONE]` / `message_stop`) or an error.
/// Upstream bytes after that end are ignored.
#[derive(Debug)]
pub struct StreamTranslator {
    sse: SseDecoder,
    decoder: Decoder,
    encoder: Encoder,
    /// Reused between chunks so a steady stream allocates only event payloads.
    sse_events: Vec<SseEvent>,
    ir_events: Vec<StreamEvent>,
    finish_seen: bool,
    /// Every count the upstream reported, whatever the client asked to see: for settling
    /// token limits and budgets once the stream ends.
    usage: Usage,
}

impl StreamTranslator {
    pub fn new(upstream: WireFormat, client: WireFormat, options: EncoderOptions) -> Self {
        StreamTranslator {
            sse: SseDecoder::new(options.max_event_bytes),
            decoder: match upstream {
                WireFormat::OpenAi => Decoder::OpenAi(ChunkDecoder::new()),
                WireFormat::Anthropic => Decoder::Anthropic(MessageDecoder::new()),
                WireFormat::Gemini => Decoder::Gemini(ContentDecoder::new()),
                other => Decoder::Unsupported(other),
            },
            encoder: match client {
                WireFormat::OpenAi => {
                    Encoder::OpenAi(ChunkEncoder::new(options.created, options.include_usage))
                }
                WireFormat::Anthropic => Encoder::Anthropic(MessageEncoder::new()),
                WireFormat::Gemini => Encoder::Gemini(ContentEncoder::new()),
                WireFormat::Responses => {
                    Encoder::Responses(Box::new(ResponsesEncoder::new(options.created)))
                }
            },
            sse_events: Vec::new(),
            ir_events: Vec::new(),
            finish_seen: false,
            usage: Usage::default(),
        }
    }

    /// True once the client stream is complete; further upstream bytes are ignored.
    pub fn is_ended(&self) -> bool {
        self.encoder.is_ended()
    }

    /// The token counts the upstream has reported so far (complete once the stream ended).
    pub fn usage(&self) -> Usage {
        self.usage
    }

    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.is_ended() {
            return;
        }
        let framed = self.sse.feed(chunk, &mut self.sse_events);
        self.drain(framed, out);
    }

    /// The upstream body ended. A stream cut off before its end marker is reported to the
    /// client as an error, except after a finish reason, when only the marker was missing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.is_ended() {
            return;
        }
        let framed = self.sse.finish(&mut self.sse_events);
        self.drain(framed, out);
        if self.is_ended() {
            return;
        }
        let last = if self.finish_seen {
            StreamEvent::Done
        } else {
            upstream_error("upstream stream ended before the response was complete".to_owned())
        };
        self.encoder.encode(&last, out);
    }

    /// Decodes and encodes the events framed so far; then reports a framing error, if any,
    /// after them (the events before the bad bytes are still good).
    fn drain(&mut self, framed: Result<(), StreamError>, out: &mut Vec<u8>) {
        let mut failure = framed.err();
        for event in self.sse_events.drain(..) {
            let decoded = match &mut self.decoder {
                Decoder::OpenAi(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Anthropic(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Gemini(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Unsupported(format) => Err(StreamError::InvalidJson(format!(
                    "the {format:?} stream format is not read from providers"
                ))),
            };
            for ir in self.ir_events.drain(..) {
                match &ir {
                    StreamEvent::Finish { .. } => self.finish_seen = true,
                    StreamEvent::Usage(usage) => self.usage.merge(usage),
                    _ => {}
                }
                self.encoder.encode(&ir, out);
            }
            if let Err(err) = decoded {
                failure = Some(err);
                break;
            }
            if self.encoder.is_ended() {
                break;
            }
        }
        self.sse_events.clear();
        if let Some(err) = failure {
            self.encoder.encode(&upstream_error(err.to_string()), out);
        }
    }
}

fn upstream_error(message: String) -> StreamEvent {
    StreamEvent::Error {
        error_type: ErrorType::UpstreamError.as_str().to_owned(),
        message,
    }
}
