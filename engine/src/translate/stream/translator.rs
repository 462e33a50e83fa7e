//! One upstream stream in one format → one client stream in another: framing (SSE, or the AWS
//! event-stream binary framing for Bedrock), the upstream format's decoder and the client
//! format's encoder, with the buffers reused between chunks.

use super::anthropic::{MessageDecoder, MessageEncoder};
use super::bedrock::ConverseStreamDecoder;
use super::eventstream::{EventStreamDecoder, Message as FrameMessage};
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
    /// Bedrock ConverseStream: binary event-stream messages, not SSE. Upstream only: no client
    /// speaks it, so there is no encoder, and [`StreamTranslator::try_new`] refuses it as the
    /// client format.
    Bedrock,
}

/// A format that can be decoded from an upstream but not encoded for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is an upstream-only stream format and cannot be sent to a client")]
pub struct UnsupportedClientFormat(pub WireFormat);

/// What the client-side encoder needs to know that the upstream stream does not say.
#[derive(Debug, Clone, Copy)]
pub struct EncoderOptions {
    /// Unix time for OpenAI's `created` (the caller reads the clock, this module does not).
    pub created: i64,
    /// The OpenAI client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// Largest upstream SSE event (or event-stream message, for Bedrock) accepted.
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
    Bedrock(ConverseStreamDecoder),
    /// A format the gateway never reads from a provider.
    Unsupported(WireFormat),
}

/// How upstream bytes become whole events: the text SSE framing, or AWS's binary event-stream
/// framing (Bedrock), whose bytes must never reach the SSE parser.
#[derive(Debug)]
enum Framing {
    Sse(SseDecoder),
    EventStream(EventStreamDecoder),
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
    framing: Framing,
    decoder: Decoder,
    encoder: Encoder,
    /// Reused between chunks so a steady stream allocates only event payloads.
    sse_events: Vec<SseEvent>,
    frames: Vec<FrameMessage>,
    ir_events: Vec<StreamEvent>,
    finish_seen: bool,
    /// Every count the upstream reported, whatever the client asked to see: for settling
    /// token limits and budgets once the stream ends.
    usage: Usage,
}

impl StreamTranslator {
    /// A translator from `upstream` to `client`. An upstream-only `client` format
    /// ([`WireFormat::Bedrock`]) gets OpenAI chunks instead; callers that pick the client format
    /// at run time use [`StreamTranslator::try_new`] to be told.
    pub fn new(upstream: WireFormat, client: WireFormat, options: EncoderOptions) -> Self {
        Self::build(
            upstream,
            encoder_for(client, &options).unwrap_or_else(|_| {
                Encoder::OpenAi(ChunkEncoder::new(options.created, options.include_usage))
            }),
            &options,
        )
    }

    /// Calls of the tools named in `names` are given to a Responses client as
    /// `custom_tool_call` items; other client formats have no such items.
    pub fn set_custom_tools(&mut self, names: Vec<String>) {
        if let Encoder::Responses(encoder) = &mut self.encoder {
            encoder.set_custom_tools(names);
        }
    }

    /// A translator from `upstream` to `client`, or an error when `client` has no encoder.
    pub fn try_new(
        upstream: WireFormat,
        client: WireFormat,
        options: EncoderOptions,
    ) -> Result<Self, UnsupportedClientFormat> {
        Ok(Self::build(
            upstream,
            encoder_for(client, &options)?,
            &options,
        ))
    }

    fn build(upstream: WireFormat, encoder: Encoder, options: &EncoderOptions) -> Self {
        let sse = || Framing::Sse(SseDecoder::new(options.max_event_bytes));
        let (framing, decoder) = match upstream {
            WireFormat::OpenAi => (sse(), Decoder::OpenAi(ChunkDecoder::new())),
            WireFormat::Anthropic => (sse(), Decoder::Anthropic(MessageDecoder::new())),
            WireFormat::Gemini => (sse(), Decoder::Gemini(ContentDecoder::new())),
            WireFormat::Bedrock => (
                Framing::EventStream(EventStreamDecoder::new(options.max_event_bytes)),
                Decoder::Bedrock(ConverseStreamDecoder::new()),
            ),
            other => (sse(), Decoder::Unsupported(other)),
        };
        StreamTranslator {
            framing,
            decoder,
            encoder,
            sse_events: Vec::new(),
            frames: Vec::new(),
            ir_events: Vec::new(),
            finish_seen: false,
            usage: Usage::default(),
        }
    }

    /// Sets the response id and model that the client stream reports, for upstreams whose
    /// stream names neither (Bedrock); other upstreams name both themselves, and this changes
    /// nothing for them. Call it before the first [`StreamTranslator::feed`].
    pub fn set_response_identity(&mut self, id: String, model: String) {
        if let Decoder::Bedrock(decoder) = &mut self.decoder {
            decoder.set_identity(id, model);
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
        let framed = match &mut self.framing {
            Framing::Sse(sse) => sse.feed(chunk, &mut self.sse_events),
            Framing::EventStream(frames) => frames.feed(chunk, &mut self.frames),
        };
        self.drain(framed, out);
    }

    /// The upstream body ended. A stream cut off before its end marker is reported to the
    /// client as an error, except after a finish reason, when only the marker was missing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.is_ended() {
            return;
        }
        let framed = match &mut self.framing {
            Framing::Sse(sse) => sse.finish(&mut self.sse_events),
            Framing::EventStream(frames) => frames.finish(&mut self.frames),
        };
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
    /// after them (the events before the bad bytes are still good). Only one of the two framed
    /// lists is ever filled, by the framing of the upstream format.
    fn drain(&mut self, framed: Result<(), StreamError>, out: &mut Vec<u8>) {
        let mut failure = framed.err();
        let mut sse_events = std::mem::take(&mut self.sse_events);
        for event in sse_events.drain(..) {
            let decoded = match &mut self.decoder {
                Decoder::OpenAi(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Anthropic(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Gemini(decoder) => decoder.decode(&event, &mut self.ir_events),
                Decoder::Unsupported(format) => Err(StreamError::InvalidJson(format!(
                    "the {format:?} stream format is not read from providers"
                ))),
                Decoder::Bedrock(_) => Ok(()),
            };
            if !self.emit(decoded, &mut failure, out) {
                break;
            }
        }
        sse_events.clear();
        self.sse_events = sse_events;
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            let decoded = match &mut self.decoder {
                Decoder::Bedrock(decoder) => decoder.decode(&frame, &mut self.ir_events),
                _ => Ok(()),
            };
            if !self.emit(decoded, &mut failure, out) {
                break;
            }
        }
        frames.clear();
        self.frames = frames;
        if let Some(err) = failure {
            self.encoder.encode(&upstream_error(err.to_string()), out);
        }
    }

    /// Encodes the IR events one upstream event decoded into; false when decoding must stop
    /// (the upstream event was bad, or the client stream has ended).
    fn emit(
        &mut self,
        decoded: Result<(), StreamError>,
        failure: &mut Option<StreamError>,
        out: &mut Vec<u8>,
    ) -> bool {
        for ir in self.ir_events.drain(..) {
            match &ir {
                StreamEvent::Finish { .. } => self.finish_seen = true,
                StreamEvent::Usage(usage) => self.usage.merge(usage),
                _ => {}
            }
            self.encoder.encode(&ir, out);
        }
        if let Err(err) = decoded {
            *failure = Some(err);
            return false;
        }
        !self.encoder.is_ended()
    }
}

/// The encoder of a client format; upstream-only formats have none.
fn encoder_for(
    client: WireFormat,
    options: &EncoderOptions,
) -> Result<Encoder, UnsupportedClientFormat> {
    Ok(match client {
        WireFormat::OpenAi => {
            Encoder::OpenAi(ChunkEncoder::new(options.created, options.include_usage))
        }
        WireFormat::Anthropic => Encoder::Anthropic(MessageEncoder::new()),
        WireFormat::Gemini => Encoder::Gemini(ContentEncoder::new()),
        WireFormat::Responses => {
            Encoder::Responses(Box::new(ResponsesEncoder::new(options.created)))
        }
        WireFormat::Bedrock => return Err(UnsupportedClientFormat(client)),
    })
}

fn upstream_error(message: String) -> StreamEvent {
    StreamEvent::Error {
        error_type: ErrorType::UpstreamError.as_str().to_owned(),
        message,
    }
}
