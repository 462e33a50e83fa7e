//! OpenAI embeddings (`/v1/embeddings`) ⇄ Gemini `batchEmbedContents`, so an OpenAI client can
//! embed text with a Gemini model.
//!
//! Each input becomes one request of the batch, in order, so the answer's vectors line up
//! with the inputs by index. Gemini counts no tokens for embeddings, so the answer's `usage` is
//! whatever the caller estimated. The OpenAI side (inputs, encodings) is
//! `translate::embeddings`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::translate::embeddings::{openai_list, read_request, Encoding};
use crate::translate::ir::TranslateError;
use crate::translate::json_access::Loc;

/// Renders an OpenAI embeddings request (`model`, `input`, `dimensions`, `encoding_format`)
/// as a Gemini `batchEmbedContents` body for `model` (which also goes in the URL). `user` is
/// dropped: Gemini has no such field.
pub fn embeddings_request_to_gemini(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let read = read_request(req, "Gemini")?;
    let name = format!("models/{model}");
    let requests: Vec<Value> = read
        .texts
        .into_iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), name.as_str().into());
            one.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(d) = read.dimensions {
                one.insert("outputDimensionality".into(), d.into());
            }
            Value::Object(one)
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// Gemini's answer: one vector per request of the batch, in order.
#[derive(Deserialize)]
struct BatchAnswer<'a> {
    #[serde(borrow)]
    embeddings: Vec<GeminiEmbedding<'a>>,
}

#[derive(Deserialize)]
struct GeminiEmbedding<'a> {
    #[serde(borrow)]
    values: &'a RawValue,
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
    let answer: BatchAnswer =
        serde_json::from_slice(body).map_err(|e| Loc::Root.error(e.to_string()))?;
    let vectors: Vec<&RawValue> = answer.embeddings.iter().map(|e| e.values).collect();
    let not_numbers = |i| {
        Loc::Root
            .field("embeddings")
            .index(i)
            .field("values")
            .error("expected a list of numbers")
    };
    openai_list(&vectors, not_numbers, model, prompt_tokens, encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::embeddings::Encoding;

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
}
