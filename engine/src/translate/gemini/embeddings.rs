//! OpenAI embeddings (`/v1/embeddings`) ⇄ Gemini `batchEmbedContents`, so an OpenAI client can
//! embed text with a Gemini model.
//!
//! Each input becomes one request of the batch, in order, so the answer's vectors line up
//! with the inputs by index. Gemini embeds text only: token-array inputs (OpenAI's
//! pre-tokenized form) are refused, as no tokenizer here matches Gemini's. Gemini counts no
//! tokens for embeddings, so the answer's `usage` is whatever the caller estimated.
//! `encoding_format: "base64"`, which the OpenAI SDKs send unless told otherwise, is written
//! as OpenAI writes it: the vector's little-endian `f32` bytes, base64-encoded.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

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

/// Renders an OpenAI embeddings request (`model`, `input`, `dimensions`, `encoding_format`)
/// as a Gemini `batchEmbedContents` body for `model` (which also goes in the URL). `user` is
/// dropped: Gemini has no such field.
pub fn embeddings_request_to_gemini(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(req, &root)?;
    if optional(obj, "stream").and_then(Value::as_bool) == Some(true) {
        return Err(root
            .field("stream")
            .error("embeddings are not streamed; leave `stream` out"));
    }
    let format_at = root.field("encoding_format");
    let format = match optional(obj, "encoding_format") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(format_at.error("expected a string")),
    };
    Encoding::named(format).map_err(|msg| format_at.error(msg))?;
    let dimensions = match optional(obj, "dimensions") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|&d| d > 0).ok_or_else(|| {
            root.field("dimensions")
                .error("expected a positive integer")
        })?),
    };
    let texts = input_texts(required(obj, "input", &root)?, &root.field("input"))?;
    let name = format!("models/{model}");
    let requests: Vec<Value> = texts
        .into_iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), name.as_str().into());
            one.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(d) = dimensions {
                one.insert("outputDimensionality".into(), d.into());
            }
            Value::Object(one)
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// The texts of `input`: one string, or a non-empty list of strings.
fn input_texts<'v>(input: &'v Value, at: &Loc) -> Result<Vec<&'v str>, TranslateError> {
    let token_arrays = || {
        at.error(
            "token arrays cannot be sent to a Gemini model, which embeds text only (and \
             tokenizes it itself); send the input as a string or a list of strings",
        )
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

/// Gemini's answer: one vector per request of the batch, in order.
#[derive(Deserialize)]
struct BatchAnswer<'a> {
    #[serde(borrow)]
    embeddings: Vec<GeminiEmbedding<'a>>,
}

#[derive(Deserialize)]
struct GeminiEmbedding<'a> {
    /// Kept as the provider wrote it: float answers copy the numbers without re-printing them.
    #[serde(borrow)]
    values: &'a RawValue,
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

/// A Gemini `batchEmbedContents` answer as an OpenAI embeddings list for `model`, with
/// `prompt_tokens` as its usage (Gemini reports none) and the vectors in `encoding`. `Err`: the
/// body is not such an answer.
pub fn embeddings_response_to_openai(
    body: &[u8],
    model: &str,
    prompt_tokens: u64,
    encoding: Encoding,
) -> Result<String, TranslateError> {
    let root = Loc::Root;
    let answer: BatchAnswer =
        serde_json::from_slice(body).map_err(|e| root.error(e.to_string()))?;
    let at = root.field("embeddings");
    let mut data = Vec::with_capacity(answer.embeddings.len());
    for (index, embedding) in answer.embeddings.into_iter().enumerate() {
        let item_at = at.index(index);
        let values_at = item_at.field("values");
        let floats: Vec<f32> = serde_json::from_str(embedding.values.get())
            .map_err(|_| values_at.error("expected a list of numbers"))?;
        let embedding = match encoding {
            Encoding::Float => Vector::Floats(embedding.values),
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
    serde_json::to_string(&list).map_err(|e| root.error(e.to_string()))
}

/// The vector as OpenAI's base64 encoding has it: each component as 4 little-endian bytes.
fn base64_f32_le(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> Result<Value, TranslateError> {
        embeddings_request_to_gemini(&body, "text-embedding-004")
    }

    #[test]
    fn a_string_input_is_one_request() {
        let v = request(json!({"model": "alias", "input": "hello", "user": "u1"})).unwrap();
        assert_eq!(
            v,
            json!({"requests": [{"model": "models/text-embedding-004",
                                 "content": {"parts": [{"text": "hello"}]}}]})
        );
    }

    #[test]
    fn a_list_input_is_one_request_per_text_in_order() {
        let v = request(json!({"model": "m", "input": ["a", "b", "a"]})).unwrap();
        let texts: Vec<&str> = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["content"]["parts"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["a", "b", "a"]);
        assert!(v["requests"][0].get("outputDimensionality").is_none());
    }

    #[test]
    fn dimensions_become_output_dimensionality_on_every_request() {
        let v = request(json!({"model": "m", "input": ["a", "b"], "dimensions": 256})).unwrap();
        assert_eq!(v["requests"][0]["outputDimensionality"], 256);
        assert_eq!(v["requests"][1]["outputDimensionality"], 256);
        for bad in [json!(0), json!(-3), json!(1.5), json!("256")] {
            let e = request(json!({"model": "m", "input": "a", "dimensions": bad})).unwrap_err();
            assert_eq!(e.path, "dimensions", "{e}");
        }
    }

    #[test]
    fn token_arrays_are_refused_with_the_reason() {
        for input in [json!([1, 2, 3]), json!([[1, 2], [3]]), json!(["a", [1]])] {
            let e = request(json!({"model": "m", "input": input})).unwrap_err();
            assert_eq!(e.path, "input", "{e}");
            assert!(e.message.contains("token arrays"), "{e}");
        }
    }

    #[test]
    fn other_bad_inputs_and_settings_name_the_field() {
        let e = request(json!({"model": "m", "input": []})).unwrap_err();
        assert_eq!(e.to_string(), "input: must not be empty");
        let e = request(json!({"model": "m", "input": ["a", {"x": 1}]})).unwrap_err();
        assert_eq!(e.path, "input[1]");
        let e = request(json!({"model": "m", "input": {"x": 1}})).unwrap_err();
        assert_eq!(e.path, "input");
        let e = request(json!({"model": "m"})).unwrap_err();
        assert!(e.message.contains("`input`"), "{e}");
        let e = request(json!({"model": "m", "input": "a", "encoding_format": "hex"})).unwrap_err();
        assert_eq!(e.path, "encoding_format");
        let e = request(json!({"model": "m", "input": "a", "stream": true})).unwrap_err();
        assert_eq!(e.path, "stream");
        assert!(request(json!({"model": "m", "input": "a", "encoding_format": "base64"})).is_ok());
    }

    const ANSWER: &[u8] = br#"{"embeddings": [{"values": [0.5, -0.25]}, {"values": [1, 0]}]}"#;

    #[test]
    fn float_answers_keep_the_vectors_and_carry_the_estimate_as_usage() {
        let out = embeddings_response_to_openai(ANSWER, "text-embedding-004", 7, Encoding::Float)
            .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"object": "list", "model": "text-embedding-004",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
                            {"object": "embedding", "index": 1, "embedding": [1, 0]}],
                   "usage": {"prompt_tokens": 7, "total_tokens": 7}})
        );
    }

    #[test]
    fn base64_answers_are_little_endian_f32() {
        let out = embeddings_response_to_openai(ANSWER, "m", 1, Encoding::Base64).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        // 0.5f32 = 00 00 00 3f, -0.25f32 = 00 00 80 be; 1.0 = 00 00 80 3f, 0.0 = 00 00 00 00.
        assert_eq!(v["data"][0]["embedding"], "AAAAPwAAgL4=");
        assert_eq!(v["data"][1]["embedding"], "AACAPwAAAAA=");
        assert_eq!(v["data"][1]["index"], 1);
    }

    #[test]
    fn answers_that_are_not_a_batch_are_errors() {
        for body in [
            &b"{"[..],
            br#"{"candidates": []}"#,
            br#"{"embeddings": [{"values": "x"}]}"#,
            br#"{"embeddings": [{"values": ["x"]}]}"#,
        ] {
            assert!(embeddings_response_to_openai(body, "m", 1, Encoding::Float).is_err());
        }
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
