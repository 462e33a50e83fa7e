//! Same-format passthrough. An Anthropic client reaching a provider of `kind: anthropic`, or a
//! Gemini client reaching `kind: gemini`, sends the provider its own request bytes and gets the
//! provider's answer bytes back, whenever the gateway has nothing to change in them. The door
//! still reads the request as OpenAI Chat (auth, policy, routing and limits work on that), but
//! what travels is the original: what OpenAI Chat cannot express (extended thinking and its
//! signatures, `cache_control`, `metadata`, safety settings) survives. What the door itself
//! cannot read is still refused there.
//!
//! Usage is still read: a copy of the answer (whole, or the stream as it passes) is translated
//! to OpenAI for accounting only, and never reaches the client.

use super::respond::ProxyResponse;
use crate::admission::estimate::{usage_of, Usage};
use crate::error::{ApiError, ErrorType};
use crate::plan::ProviderWire;
use crate::translate::stream::{EncoderOptions, StreamTranslator, WireFormat};
use bytes::{Bytes, BytesMut};
use serde_json::Value;

/// The client's request as it arrived, in the client's own format.
#[derive(Clone, Copy)]
pub struct ClientBytes<'a> {
    pub format: WireFormat,
    pub body: &'a Bytes,
}

/// Marks a response whose body is already in the client's format, so the door passes it on.
#[derive(Debug, Clone, Copy)]
pub struct NativeAnswer;

/// Whether a response carries the provider's own bytes for the client.
pub fn is_native(resp: &ProxyResponse) -> bool {
    resp.extensions().get::<NativeAnswer>().is_some()
}

/// The client's bytes when `provider` speaks the client's format and `edited` is false.
/// `edited`: the gateway changes the conversation (an input redaction) or reads the answer as
/// OpenAI (output guardrails, storing it in the cache); those requests take the translated path.
pub fn route<'a>(
    client: Option<ClientBytes<'a>>,
    provider: ProviderWire,
    edited: bool,
) -> Option<ClientBytes<'a>> {
    let client = client.filter(|_| !edited)?;
    let same = matches!(
        (client.format, provider),
        (WireFormat::Anthropic, ProviderWire::Anthropic { .. })
            | (WireFormat::Gemini, ProviderWire::Gemini)
    );
    same.then_some(client)
}

/// The body the provider gets: the client's bytes, untouched unless routing chose another
/// model name, the client used the gateway's own `fallbacks` field (providers refuse unknown
/// fields), or an Anthropic request lacks the `max_tokens` Anthropic requires (filled with
/// the provider's `default_max_tokens`, when it has one).
pub fn request_body(
    client: ClientBytes<'_>,
    provider: ProviderWire,
    model: &str,
) -> Result<Bytes, ApiError> {
    let default_max_tokens = match provider {
        ProviderWire::Anthropic { default_max_tokens } => default_max_tokens,
        _ => 0,
    };
    // A Gemini request names its model in the URL, which is built from the routed model.
    if client.format != WireFormat::Anthropic {
        return Ok(client.body.clone());
    }
    let mut value: Value = serde_json::from_slice(client.body).map_err(|e| {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Some(map) = value.as_object_mut() else {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            "request body must be a JSON object",
        ));
    };
    let same_model = map.get("model").and_then(Value::as_str) == Some(model);
    let fill_max_tokens = !map.contains_key("max_tokens") && default_max_tokens > 0;
    if same_model && !fill_max_tokens && !map.contains_key("fallbacks") {
        return Ok(client.body.clone());
    }
    map.insert("model".into(), model.into());
    map.remove("fallbacks");
    if fill_max_tokens {
        map.insert("max_tokens".into(), default_max_tokens.into());
    }
    Ok(Bytes::from(value.to_string()))
}

/// The usage of a whole successful answer in `format`, read from an OpenAI translation of it.
/// `None`: the answer cannot be read (the caller charges the estimate).
pub fn answer_usage(format: WireFormat, bytes: &Bytes, created: i64) -> Option<Usage> {
    let created = u64::try_from(created).unwrap_or(0);
    let openai = super::translated::openai_answer(format, bytes, created, ("", "")).ok()?;
    usage_of(&openai)
}

/// Reads a stream that passes to the client untouched: its bytes are translated to OpenAI SSE
/// on the side, for the relay's usage reading only.
pub struct Shadow {
    translator: StreamTranslator,
    client: WireFormat,
}

impl Shadow {
    pub fn new(format: WireFormat, created: i64) -> Shadow {
        let options = EncoderOptions {
            created,
            include_usage: true,
            ..EncoderOptions::default()
        };
        Shadow {
            translator: StreamTranslator::new(format, WireFormat::OpenAi, options),
            client: format,
        }
    }

    /// The OpenAI SSE for `raw` upstream bytes (what the relay scans).
    pub fn read(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.translator.feed(raw, &mut out);
        out
    }

    /// The OpenAI SSE still owed once the upstream ended.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.translator.finish(&mut out);
        out
    }

    /// `owed` (upstream bytes not yet sent), then the relay's OpenAI `error_event` in the
    /// client's format: a broken stream ends with an error the client's SDK understands.
    pub fn client_error(&self, owed: Option<Bytes>, error_event: &[u8]) -> Bytes {
        let mut to_client =
            StreamTranslator::new(WireFormat::OpenAi, self.client, EncoderOptions::default());
        let mut event = Vec::new();
        to_client.feed(error_event, &mut event);
        let mut out = BytesMut::with_capacity(owed.as_ref().map_or(0, Bytes::len) + event.len());
        if let Some(owed) = owed {
            out.extend_from_slice(&owed);
        }
        out.extend_from_slice(&event);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic(body: &'static str) -> Bytes {
        Bytes::from_static(body.as_bytes())
    }

    fn anthropic_wire(default_max_tokens: u64) -> ProviderWire {
        ProviderWire::Anthropic { default_max_tokens }
    }

    fn client(body: &Bytes) -> ClientBytes<'_> {
        ClientBytes {
            format: WireFormat::Anthropic,
            body,
        }
    }

    #[test]
    fn only_the_clients_own_format_passes_and_only_when_unedited() {
        let body = Bytes::new();
        let anthropic = ProviderWire::Anthropic {
            default_max_tokens: 0,
        };
        assert!(route(Some(client(&body)), anthropic, false).is_some());
        assert!(route(Some(client(&body)), anthropic, true).is_none());
        assert!(route(Some(client(&body)), ProviderWire::OpenAi, false).is_none());
        assert!(route(Some(client(&body)), ProviderWire::Gemini, false).is_none());
        let gemini = ClientBytes {
            format: WireFormat::Gemini,
            body: &body,
        };
        assert!(route(Some(gemini), ProviderWire::Gemini, false).is_some());
        assert!(route(None, anthropic, false).is_none());
    }

    #[test]
    fn the_same_model_sends_the_clients_bytes_untouched() {
        let body = anthropic(
            r#"{"model":"claude-x",  "max_tokens":9,"thinking":{"type":"enabled","budget_tokens":1024},"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[]}"#,
        );
        let sent = request_body(client(&body), anthropic_wire(0), "claude-x").unwrap();
        assert_eq!(sent, body);
        assert_eq!(sent.as_ptr(), body.as_ptr(), "not even copied");
    }

    #[test]
    fn routing_fallbacks_and_a_missing_bound_are_edited_and_nothing_else() {
        let body = anthropic(
            r#"{"model":"alias","fallbacks":["b"],"metadata":{"user_id":"u1"},"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"hi"}]}"#,
        );
        let sent = request_body(client(&body), anthropic_wire(4096), "claude-x").unwrap();
        let v: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(v["model"], "claude-x");
        assert_eq!(v["max_tokens"], 4096);
        assert!(v.get("fallbacks").is_none());
        assert_eq!(v["metadata"]["user_id"], "u1");
        assert_eq!(v["thinking"]["budget_tokens"], 1024);
        assert_eq!(v["messages"][0]["content"], "hi");
        // Without a configured default the bound stays missing (Anthropic names the error).
        let sent = request_body(client(&body), anthropic_wire(0), "claude-x").unwrap();
        assert!(serde_json::from_slice::<Value>(&sent)
            .unwrap()
            .get("max_tokens")
            .is_none());
    }

    #[test]
    fn a_gemini_body_is_never_edited() {
        let body = Bytes::from_static(br#"{"contents":[],"safetySettings":[]}"#);
        let gemini = ClientBytes {
            format: WireFormat::Gemini,
            body: &body,
        };
        assert_eq!(
            request_body(gemini, ProviderWire::Gemini, "gemini-x").unwrap(),
            body
        );
    }

    #[test]
    fn usage_of_a_whole_answer_is_read_from_a_translation() {
        let body = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"thinking","thinking":"t","signature":"sig"},{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":7}}"#,
        );
        let u = answer_usage(WireFormat::Anthropic, &body, 0).unwrap();
        assert_eq!((u.prompt, u.completion), (11, 7));
        assert_eq!(
            answer_usage(WireFormat::Anthropic, &Bytes::from_static(b"nope"), 0),
            None
        );
    }

    #[test]
    fn a_broken_stream_ends_with_an_error_in_the_clients_format() {
        let shadow = Shadow::new(WireFormat::Anthropic, 0);
        let openai = br#"data: {"error":{"type":"upstream_timeout","message":"idle"}}

"#;
        let out = shadow.client_error(Some(Bytes::from_static(b"owed")), openai);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("owed"), "{text}");
        assert!(text.contains("event: error"), "{text}");
        assert!(text.contains("idle"), "{text}");
    }
}
