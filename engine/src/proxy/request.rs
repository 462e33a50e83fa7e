//! The few fields the gateway needs from a request body, parsed without copying it, and the
//! upstream body: the original bytes, or a copy with only the changed values spliced in.

use crate::error::{ApiError, ErrorType};
use crate::telemetry::Endpoint;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    /// Tollgate's own field: models to try if the routed one fails.
    #[serde(default)]
    fallbacks: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// What the gateway reads from a request body.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the final usage chunk itself.
    pub client_wants_usage: bool,
    pub messages: Option<&'a RawValue>,
    pub input: Option<&'a RawValue>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// The request's own `fallbacks` (never sent upstream).
    pub fallbacks: Vec<String>,
    has_fallbacks_field: bool,
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
    stream_options_span: Option<Range<usize>>,
    /// Byte offset just after the body's opening `{`.
    object_start: usize,
}

pub fn parse_head(body: &[u8], endpoint: Endpoint) -> Result<RequestHead<'_>, ApiError> {
    let invalid = |msg: String| ApiError::new(ErrorType::InvalidRequest, msg);
    let text = std::str::from_utf8(body).map_err(|e| {
        invalid(format!(
            "request body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(invalid(
            "request body is empty; expected a JSON object".into(),
        ));
    }
    // Checked first: serde would also accept a JSON array for a struct.
    let Some(object_start) = text
        .find(|c: char| !c.is_whitespace())
        .filter(|&i| body[i] == b'{')
    else {
        return Err(invalid("request body must be a JSON object".into()));
    };
    let head: Head = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_data() {
            "invalid value"
        } else {
            "malformed JSON"
        };
        invalid(format!(
            "{what} in request body at line {} column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))
    })?;
    let raw_model = head
        .model
        .ok_or_else(|| invalid("missing required field `model`".into()))?;
    let model: Cow<str> = serde_json::from_str(raw_model.get())
        .map_err(|_| invalid("field `model` must be a string".into()))?;
    if model.is_empty() {
        return Err(invalid("field `model` must not be empty".into()));
    }
    let stream = match head.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("field `stream` must be a boolean".into())),
    };
    let client_wants_usage = match head.stream_options {
        None => false,
        Some(raw) if raw.get() == "null" => false,
        Some(raw) => {
            serde_json::from_str::<StreamOptions>(raw.get())
                .map_err(|e| invalid(format!("field `stream_options` is invalid: {e}")))?
                .include_usage
        }
    };
    match endpoint {
        Endpoint::Chat => match head.messages.map(|m| m.get().trim_start()) {
            None => return Err(invalid("missing required field `messages`".into())),
            Some(m) if !m.starts_with('[') => {
                return Err(invalid("field `messages` must be an array".into()))
            }
            Some(_) => {}
        },
        Endpoint::Embeddings => {
            if head.input.is_none() {
                return Err(invalid("missing required field `input`".into()));
            }
        }
        Endpoint::Models | Endpoint::Mcp => {}
    }
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    Ok(RequestHead {
        model_span: span(raw_model),
        stream_options_span: head.stream_options.map(span),
        object_start: object_start + 1,
        model,
        stream,
        client_wants_usage,
        messages: head.messages,
        input: head.input,
        max_output_tokens: head.max_completion_tokens.or(head.max_tokens),
        has_fallbacks_field: head.fallbacks.is_some(),
        fallbacks: head.fallbacks.unwrap_or_default(),
    })
}

const INCLUDE_USAGE: &str = r#"{"include_usage":true}"#;

impl RequestHead<'_> {
    /// The body to send upstream: `upstream_model` in place of the requested name, and for
    /// streams `stream_options.include_usage: true` so the final chunk carries usage. The
    /// original bytes are reused when nothing changes.
    pub fn upstream_body(
        &self,
        original: &Bytes,
        upstream_model: &str,
        messages: Option<&str>,
    ) -> Bytes {
        if self.has_fallbacks_field {
            return self.rebuilt_body(original, upstream_model, messages);
        }
        let mut edits: [Option<(Range<usize>, Cow<str>)>; 3] = [None, None, None];
        if let (Some(text), Some(raw)) = (messages, self.messages) {
            let start = raw.get().as_ptr() as usize - original.as_ptr() as usize;
            edits[2] = Some((start..start + raw.get().len(), text.into()));
        }
        if upstream_model != self.model {
            let quoted = serde_json::to_string(upstream_model).unwrap_or_default();
            edits[0] = Some((self.model_span.clone(), quoted.into()));
        }
        if self.stream && !self.client_wants_usage {
            edits[1] = Some(match &self.stream_options_span {
                // Other options the client set are kept; include_usage is added.
                Some(span) => (
                    span.clone(),
                    merged_stream_options(&original[span.clone()]).into(),
                ),
                None => (
                    self.object_start..self.object_start,
                    format!("\"stream_options\":{INCLUDE_USAGE},").into(),
                ),
            });
        }
        if edits.iter().all(Option::is_none) {
            return original.clone();
        }
        let mut edits: Vec<(Range<usize>, Cow<str>)> = edits.into_iter().flatten().collect();
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = BytesMut::with_capacity(original.len() + 64);
        let mut at = 0;
        for (range, text) in edits {
            out.extend_from_slice(&original[at..range.start]);
            out.extend_from_slice(text.as_bytes());
            at = range.end;
        }
        out.extend_from_slice(&original[at..]);
        out.freeze()
    }
}

impl RequestHead<'_> {
    /// The slow path, for bodies carrying `fallbacks`: parse, edit, serialize.
    fn rebuilt_body(
        &self,
        original: &Bytes,
        upstream_model: &str,
        messages: Option<&str>,
    ) -> Bytes {
        let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(original) else {
            return original.clone();
        };
        map.remove("fallbacks");
        map.insert("model".into(), upstream_model.into());
        if let Some(m) = messages.and_then(|m| serde_json::from_str(m).ok()) {
            map.insert("messages".into(), m);
        }
        if self.stream && !self.client_wants_usage {
            let options = map
                .entry("stream_options")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(o) = options.as_object_mut() {
                o.insert("include_usage".into(), true.into());
            }
        }
        Bytes::from(serde_json::Value::Object(map).to_string())
    }
}

fn merged_stream_options(raw: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw) {
        Ok(mut map) => {
            map.insert("include_usage".into(), true.into());
            serde_json::Value::Object(map).to_string()
        }
        Err(_) => INCLUDE_USAGE.to_string(),
    }
}

fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests;
