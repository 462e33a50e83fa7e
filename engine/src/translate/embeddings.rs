//! The OpenAI side of embeddings (`/v1/embeddings`) sent to providers of another API (Gemini,
//! Bedrock): reading the request's settings and texts, and writing the provider's vectors back
//! as an OpenAI embeddings list. Each provider's own shapes are in its module.
//!
//! `encoding_format: "base64"`, which the OpenAI SDKs send unless told otherwise, is written as
//! OpenAI writes it: the vector's little-endian `f32` bytes, base64-encoded. Other providers
//! answer floats, so the gateway encodes them.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::translate::ir::TranslateError;
use crate::translate::json_access::{as_object, optional, required, Loc};

/// How the client wants the vectors written (`encoding_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON arrays of numbers (the default).
    Float,
    /// A base64 string of little-endian `f32`s per vector.
    Base64,
}

impl Encoding {
    /// The encoding an `encoding_format` value names; absent (or null) is `float`.
    fn named(value: Option<&str>) -> Result<Encoding, String> {
        match value {
            None | Some("float") => Ok(Encoding::Float),
            Some("base64") => Ok(Encoding::Base64),
            Some(other) => Err(format!(
                "`{other}` is not an encoding (expected `float` or `base64`)"
            )),
        }
    }

    /// The encoding an OpenAI embeddings request asks for. The request was translated (and
    /// so checked) before it was sent; one that cannot be read here gets floats.
    pub fn requested_by(request: &[u8]) -> Encoding {
        #[derive(Deserialize)]
        struct Field<'a> {
            #[serde(borrow, default)]
            encoding_format: Option<std::borrow::Cow<'a, str>>,
        }
        serde_json::from_slice::<Field>(request)
            .ok()
            .and_then(|f| Encoding::named(f.encoding_format.as_deref()).ok())
            .unwrap_or(Encoding::Float)
    }
}

/// What every provider translation needs from an OpenAI embeddings request, checked.
pub struct EmbeddingsRequest<'v> {
    /// The request's fields, for provider-specific extras.
    pub fields: &'v Map<String, Value>,
    /// `input`: one text, or several in order.
    pub texts: Vec<&'v str>,
    /// `dimensions`, when asked for.
    pub dimensions: Option<u64>,
}

/// Reads an OpenAI embeddings request for a provider that embeds text only; `provider` names
/// that provider's API in the refusal of token arrays (OpenAI's pre-tokenized form), as no
/// tokenizer here matches the provider's.
pub fn read_request<'v>(
    req: &'v Value,
    provider: &str,
) -> Result<EmbeddingsRequest<'v>, TranslateError> {
    let root = Loc::Root;
    let fields = as_object(req, &root)?;
    if optional(fields, "stream").and_then(Value::as_bool) == Some(true) {
        return Err(root
            .field("stream")
            .error("embeddings are not streamed; leave `stream` out"));
    }
    let format_at = root.field("encoding_format");
    let format = match optional(fields, "encoding_format") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(format_at.error("expected a string")),
    };
    Encoding::named(format).map_err(|msg| format_at.error(msg))?;
    let dimensions = match optional(fields, "dimensions") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|&d| d > 0).ok_or_else(|| {
            root.field("dimensions")
                .error("expected a positive integer")
        })?),
    };
    let input = required(fields, "input", &root)?;
    let texts = input_texts(input, &root.field("input"), provider)?;
    Ok(EmbeddingsRequest {
        fields,
        texts,
        dimensions,
    })
}

/// The texts of `input`: one string, or a non-empty list of strings.
fn input_texts<'v>(
    input: &'v Value,
    at: &Loc,
    provider: &str,
) -> Result<Vec<&'v str>, TranslateError> {
    let token_arrays = || {
        at.error(format!(
            "token arrays cannot be sent to a {provider} model, which embeds text only (and \
             tokenizes it itself); send the input as a string or a list of strings"
        ))
    };
    match input {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if items.is_empty() => Err(at.error("must not be empty")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.as_str()),
                Value::Number(_) | Value::Array(_) => Err(token_arrays()),
                _ => Err(at.index(i).error("expected a string")),
            })
            .collect(),
        _ => Err(at.error("expected a string or a list of strings")),
    }
}

#[derive(Serialize)]
struct OpenAiList<'a> {
    object: &'static str,
    data: Vec<OpenAiEmbedding<'a>>,
    model: &'a str,
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct OpenAiEmbedding<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a RawValue),
    Base64(String),
}

#[derive(Serialize)]
struct OpenAiUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The provider's vectors, in input order, as an OpenAI embeddings list for `model` with
/// `prompt_tokens` as its usage, in `encoding`. Each vector is kept as the provider wrote it
/// (float answers copy the numbers without re-printing them); `not_numbers(i)` is the error
/// when vector `i` is not a list of numbers, naming where it is in the provider's answer.
pub fn openai_list(
    vectors: &[&RawValue],
    not_numbers: impl Fn(usize) -> TranslateError,
    model: &str,
    prompt_tokens: u64,
    encoding: Encoding,
) -> Result<String, TranslateError> {
    let mut data = Vec::with_capacity(vectors.len());
    for (index, values) in vectors.iter().enumerate() {
        let floats: Vec<f32> =
            serde_json::from_str(values.get()).map_err(|_| not_numbers(index))?;
        let embedding = match encoding {
            Encoding::Float => Vector::Floats(values),
            Encoding::Base64 => Vector::Base64(base64_f32_le(&floats)),
        };
        data.push(OpenAiEmbedding {
            object: "embedding",
            index,
            embedding,
        });
    }
    let list = OpenAiList {
        object: "list",
        data,
        model,
        usage: OpenAiUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    serde_json::to_string(&list).map_err(|e| Loc::Root.error(e.to_string()))
}

/// The vector as OpenAI's base64 encoding has it: each component as 4 little-endian bytes.
fn base64_f32_le(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Result<(Vec<String>, Option<u64>), TranslateError> {
        read_request(&body, "Acme").map(|r| {
            (
                r.texts.iter().map(|t| t.to_string()).collect(),
                r.dimensions,
            )
        })
    }

    #[test]
    fn inputs_are_one_text_or_a_list_in_order() {
        assert_eq!(read(json!({"input": "hello"})).unwrap().0, ["hello"]);
        let (texts, dims) = read(json!({"input": ["a", "b", "a"], "dimensions": 4})).unwrap();
        assert_eq!(texts, ["a", "b", "a"]);
        assert_eq!(dims, Some(4));
    }

    #[test]
    fn token_arrays_are_refused_naming_the_provider() {
        for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["a", [1]])] {
            let e = read(json!({"input": input})).unwrap_err();
            assert_eq!(e.path, "input", "{e}");
            assert!(e.message.contains("token arrays"), "{e}");
            assert!(e.message.contains("Acme model"), "{e}");
        }
    }

    #[test]
    fn other_bad_inputs_and_settings_name_the_field() {
        let e = read(json!({"input": []})).unwrap_err();
        assert_eq!(e.to_string(), "input: must not be empty");
        let e = read(json!({"input": ["a", {"x": 1}]})).unwrap_err();
        assert_eq!(e.path, "input[1]");
        let e = read(json!({"input": {"x": 1}})).unwrap_err();
        assert_eq!(e.path, "input");
        let e = read(json!({"model": "m"})).unwrap_err();
        assert!(e.message.contains("`input`"), "{e}");
        let e = read(json!({"input": "a", "encoding_format": "hex"})).unwrap_err();
        assert_eq!(e.path, "encoding_format");
        let e = read(json!({"input": "a", "stream": true})).unwrap_err();
        assert_eq!(e.path, "stream");
        for bad in [json!(0), json!(-3), json!(1.5), json!("256")] {
            let e = read(json!({"input": "a", "dimensions": bad})).unwrap_err();
            assert_eq!(e.path, "dimensions", "{e}");
        }
        assert!(read(json!({"input": "a", "encoding_format": "base64"})).is_ok());
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn lists_keep_float_vectors_verbatim_and_encode_base64_little_endian() {
        let (a, b) = (raw("[0.5, -0.25]"), raw("[1,0]"));
        let vectors = [&*a, &*b];
        let at = |i| {
            Loc::Root
                .field("v")
                .index(i)
                .error("expected a list of numbers")
        };
        let out: Value =
            serde_json::from_str(&openai_list(&vectors, at, "m", 7, Encoding::Float).unwrap())
                .unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "model": "m",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                            {"object": "embedding", "index": 1, "embedding": [1, 0]}],
                   "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        );
        let out: Value =
            serde_json::from_str(&openai_list(&vectors, at, "m", 7, Encoding::Base64).unwrap())
                .unwrap();
        // 0.5f32 = 00 00 00 3f, -0.25f32 = 00 00 80 be; 1.0 = 00 00 80 3f, 0.0 = 00 00 00 00.
        assert_eq!(out["data"][0]["embedding"], "AAAAPwAAgL4=");
        assert_eq!(out["data"][1]["embedding"], "AACAPwAAAAA=");
        let bad = raw(r#"["x"]"#);
        let e = openai_list(&[&*a, &*bad], at, "m", 1, Encoding::Float).unwrap_err();
        assert_eq!(e.path, "v[1]", "{e}");
    }

    #[test]
    fn the_requested_encoding_is_read_from_the_request() {
        assert_eq!(Encoding::requested_by(br#"{"input":"a"}"#), Encoding::Float);
        assert_eq!(
            Encoding::requested_by(br#"{"input":"a","encoding_format":"base64"}"#),
            Encoding::Base64
        );
        assert_eq!(
            Encoding::requested_by(br#"{"encoding_format":"float"}"#),
            Encoding::Float
        );
    }
}
