//! The API shape a client speaks, and the door between it and the OpenAI pipeline: requests
//! are read as OpenAI Chat at the door, and the answer (whole, streamed or an error) is put
//! back into the client's shape on the way out.

use super::body::ProxyBody;
use super::respond::{self, ProxyResponse};
use super::{genai, messages, responses};
use crate::error::ApiError;
use crate::telemetry::Endpoint;
use crate::translate::anthropic;
use crate::translate::gemini::EmbedMethod;
use crate::translate::stream::{EncoderOptions, StreamTranslator, WireFormat};
use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The API shape the client speaks: what the door translates from, and answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    OpenAi,
    Anthropic,
    /// The OpenAI Responses API (`/v1/responses`).
    Responses,
    /// Gemini `generateContent` (`/genai/...`); model and streaming come from the path.
    Gemini,
}

impl ClientFormat {
    /// The request body as the OpenAI pipeline reads it (Chat, or embeddings for Gemini's
    /// embeddings methods); `path` is the request's. With it, what the answer's translation
    /// must know of the request ([`AnswerNeeds`]).
    pub fn request_body(self, path: &str, body: Bytes) -> Result<(Bytes, AnswerNeeds), ApiError> {
        let json = |v: serde_json::Value| Bytes::from(v.to_string());
        match self {
            ClientFormat::OpenAi => Ok((body, AnswerNeeds::default())),
            ClientFormat::Gemini => genai::openai_request(path, &body).map(|(v, embed)| {
                let needs = AnswerNeeds {
                    embed,
                    ..AnswerNeeds::default()
                };
                (json(v), needs)
            }),
            ClientFormat::Anthropic => {
                messages::openai_request(&body).map(|v| (json(v), AnswerNeeds::default()))
            }
            ClientFormat::Responses => responses::openai_request(&body).map(|(v, custom)| {
                let needs = AnswerNeeds {
                    custom,
                    ..AnswerNeeds::default()
                };
                (json(v), needs)
            }),
        }
    }

    /// The wire format a provider must speak for this client's bytes to pass untouched.
    /// Embeddings are always translated: a Gemini provider is asked by `batchEmbedContents`
    /// whichever method the client called.
    pub fn native_wire(self, endpoint: Endpoint) -> Option<WireFormat> {
        match (self, endpoint) {
            (_, Endpoint::Embeddings) => None,
            (ClientFormat::Anthropic, _) => Some(WireFormat::Anthropic),
            (ClientFormat::Gemini, _) => Some(WireFormat::Gemini),
            (ClientFormat::OpenAi | ClientFormat::Responses, _) => None,
        }
    }

    /// The pipeline's answer (OpenAI JSON or OpenAI SSE) in the client's shape; a provider's
    /// answer already in that shape (see [`super::native`]) is passed on as it is.
    pub fn response(self, resp: ProxyResponse, needs: AnswerNeeds) -> ProxyResponse {
        if super::native::is_native(&resp) {
            return resp;
        }
        match self {
            ClientFormat::OpenAi => resp,
            ClientFormat::Anthropic => messages::anthropic_response(resp),
            ClientFormat::Responses => responses::responses_response(resp, needs.custom),
            ClientFormat::Gemini => genai::gemini_response(resp, needs.embed),
        }
    }

    /// A gateway error in the client's shape (SPEC §4: each API answers in its own).
    pub fn error(self, err: &ApiError, request_id: Option<&HeaderValue>) -> ProxyResponse {
        match self {
            // The Responses API reports errors in the Chat Completions shape.
            ClientFormat::OpenAi | ClientFormat::Responses => respond::error(err, request_id),
            ClientFormat::Gemini => genai::error(err, request_id),
            ClientFormat::Anthropic => {
                let mut resp = respond::error(err, request_id);
                *resp.body_mut() = ProxyBody::full(anthropic::api_error_body(err).to_string());
                resp
            }
        }
    }
}

/// What the translation of the answer must know of the client's request. Empty (no
/// allocation) for requests whose answer needs nothing of it.
#[derive(Debug, Default)]
pub struct AnswerNeeds {
    /// The names of a Responses request's custom tools, whose calls go back as
    /// `custom_tool_call` items rather than function calls.
    pub custom: Vec<String>,
    /// The Gemini embeddings method called, whose answer shape the OpenAI list must take.
    pub embed: Option<EmbedMethod>,
}

/// The message of an OpenAI error answer, or the start of a body that is not one.
pub(super) fn error_message(parsed: Option<&serde_json::Value>, bytes: &[u8]) -> String {
    parsed
        .and_then(|v| v.pointer("/error/message"))
        .and_then(serde_json::Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            str::to_owned,
        )
}

/// The client-facing OpenAI SSE (after the relay's settlement, timeouts and guardrails)
/// re-encoded in the client's format (Anthropic events, Responses events), as they pass.
pub struct ClientStream {
    inner: ProxyBody,
    translator: StreamTranslator,
    finished: bool,
}

impl ClientStream {
    /// `created`: unix seconds for the formats that stamp it.
    pub fn new(inner: ProxyBody, client: WireFormat, created: i64) -> ClientStream {
        ClientStream {
            inner,
            translator: StreamTranslator::new(
                WireFormat::OpenAi,
                client,
                EncoderOptions {
                    created,
                    ..EncoderOptions::default()
                },
            ),
            finished: false,
        }
    }

    /// Calls of the tools named in `names` go to a Responses client as `custom_tool_call`s.
    pub fn with_custom_tools(mut self, names: Vec<String>) -> ClientStream {
        if !names.is_empty() {
            self.translator.set_custom_tools(names);
        }
        self
    }
}

impl Body for ClientStream {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                let mut out = Vec::new();
                if let Ok(bytes) = frame.into_data() {
                    this.translator.feed(&bytes, &mut out);
                }
                // Keep polling the relay to its end even after the client format's last event: it settles
                // usage when its own stream ends. Empty frames are harmless to hyper.
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                this.finished = true;
                let mut out = Vec::new();
                this.translator.finish(&mut out);
                if out.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
