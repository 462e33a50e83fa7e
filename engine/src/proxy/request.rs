//! The few fields the gateway needs from a request body, parsed without copying it, and the
//! model rewrite (`openai/gpt-4o` → `gpt-4o`) spliced into the original bytes.

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
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

/// What the gateway reads from a request body.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
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
    if !text.trim_start().starts_with('{') {
        return Err(invalid("request body must be a JSON object".into()));
    }
    let head: Head = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "malformed JSON in request body at line {} column {}: {}",
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
        Endpoint::Models => {}
    }
    let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
    Ok(RequestHead {
        model_span: start..start + raw_model.get().len(),
        model,
        stream,
    })
}

impl RequestHead<'_> {
    /// The body to send upstream: the original bytes when the model name is unchanged,
    /// otherwise a copy with only the `model` value replaced.
    pub fn body_for_model(&self, original: &Bytes, upstream_model: &str) -> Bytes {
        if upstream_model == self.model {
            return original.clone();
        }
        let quoted = serde_json::to_string(upstream_model).unwrap_or_default();
        let mut out = BytesMut::with_capacity(original.len() + quoted.len());
        out.extend_from_slice(&original[..self.model_span.start]);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(&original[self.model_span.end..]);
        out.freeze()
    }
}

fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str, endpoint: Endpoint) -> String {
        parse_head(body.as_bytes(), endpoint).unwrap_err().message
    }

    #[test]
    fn rewrites_only_the_model_value() {
        let body = Bytes::from_static(
            br#"{"messages":[{"role":"user","content":"model \"x\""}], "model" : "openai/gpt-4o","stream":true}"#,
        );
        let head = parse_head(&body, Endpoint::Chat).unwrap();
        assert!(head.stream);
        assert_eq!(head.model, "openai/gpt-4o");
        let out = head.body_for_model(&body, "gpt-4o");
        assert_eq!(
            &out[..],
            &br#"{"messages":[{"role":"user","content":"model \"x\""}], "model" : "gpt-4o","stream":true}"#[..]
        );
        let same = head.body_for_model(&body, "openai/gpt-4o");
        assert_eq!(
            same.as_ptr(),
            body.as_ptr(),
            "unchanged bodies are not copied"
        );
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let body = Bytes::from_static(br#"{"model":"a\/b","messages":[]}"#);
        assert_eq!(parse_head(&body, Endpoint::Chat).unwrap().model, "a/b");
    }

    #[test]
    fn malformed_json_says_where() {
        let m = err("{\"model\": \"x\",\n \"messages\": [}", Endpoint::Chat);
        assert!(m.contains("line 2 column"), "{m}");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        assert!(err(r#"{"messages":[]}"#, Endpoint::Chat).contains("`model`"));
        assert!(err(r#"{"model":"m"}"#, Endpoint::Chat).contains("`messages`"));
        assert!(
            err(r#"{"model":"m","messages":"hi"}"#, Endpoint::Chat).contains("must be an array")
        );
        assert!(err(r#"{"model":3,"messages":[]}"#, Endpoint::Chat).contains("must be a string"));
        assert!(err(
            r#"{"model":"m","messages":[],"stream":"yes"}"#,
            Endpoint::Chat
        )
        .contains("boolean"));
        assert!(err(r#"{"model":"m"}"#, Endpoint::Embeddings).contains("`input`"));
        assert!(err("[1,2]", Endpoint::Chat).contains("JSON object"));
        assert!(err("", Endpoint::Chat).contains("empty"));
    }
}
