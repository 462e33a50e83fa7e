//! OpenAI embeddings (`/v1/embeddings`) ⇄ Bedrock InvokeModel, so an OpenAI client can embed
//! text with a Bedrock embedding model.
//!
//! Bedrock has no one embeddings API: each model family takes and answers its own body at
//! `/model/{id}/invoke`, so the family is read from the model id.
//! - **Titan** (`amazon.titan-embed-…`): `{"inputText", "dimensions"}` → `{"embedding",
//!   "inputTextTokenCount"}`. One text per call: a list of several is refused rather than
//!   turned into several billed calls behind the client's back.
//! - **Cohere** (`cohere.embed-…`): `{"texts", "input_type", "output_dimension"}` →
//!   `{"embeddings": [[…]]}` (or `{"embeddings": {"float": [[…]]}}` when types were asked
//!   for). Cohere requires `input_type`, which OpenAI's request lacks: the client may send it
//!   as an extra field; otherwise `search_document`, the side that fills an index, is sent.
//!   Its answer counts no tokens; Bedrock reports them in the `x-amzn-bedrock-input-token-count`
//!   header, which the caller passes in.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::translate::embeddings::{openai_list, read_request, Encoding};
use crate::translate::ir::TranslateError;
use crate::translate::json_access::Loc;

/// Cohere's `input_type` when the client names none.
const COHERE_DEFAULT_INPUT_TYPE: &str = "search_document";

/// The request and answer shapes a Bedrock embedding model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingFamily {
    Titan,
    Cohere,
}

impl EmbeddingFamily {
    /// The family of a model id, an inference profile id (`us.cohere.embed-v4:0`) or an ARN
    /// that ends in one. `Err`: not an embedding model this gateway knows how to call.
    pub fn of(model_id: &str) -> Result<EmbeddingFamily, TranslateError> {
        if model_id.contains("amazon.titan-embed-") {
            Ok(EmbeddingFamily::Titan)
        } else if model_id.contains("cohere.embed-") {
            Ok(EmbeddingFamily::Cohere)
        } else {
            Err(Loc::Root.field("model").error(format!(
                "`{model_id}` is not a Bedrock embedding model this gateway can call: \
                 embeddings reach Titan (`amazon.titan-embed-…`) and Cohere \
                 (`cohere.embed-…`) models, whose ids say which request body they take"
            )))
        }
    }
}

/// Renders an OpenAI embeddings request as the InvokeModel body of `model_id`'s family.
/// `user` is dropped: neither family has such a field.
pub fn embeddings_request_to_bedrock(req: &Value, model_id: &str) -> Result<Value, TranslateError> {
    let family = EmbeddingFamily::of(model_id)?;
    let read = read_request(req, "Bedrock")?;
    let mut body = Map::new();
    match family {
        EmbeddingFamily::Titan => {
            let [text] = read.texts[..] else {
                return Err(Loc::Root.field("input").error(format!(
                    "{} texts were sent, but a Titan embedding model embeds one text per \
                     call; send one input per request, or use a Cohere Embed model, which \
                     takes up to 96 in one call",
                    read.texts.len()
                )));
            };
            body.insert("inputText".into(), text.into());
            if let Some(d) = read.dimensions {
                body.insert("dimensions".into(), d.into());
            }
        }
        EmbeddingFamily::Cohere => {
            let input_type = match read.fields.get("input_type") {
                None | Some(Value::Null) => COHERE_DEFAULT_INPUT_TYPE,
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(Loc::Root
                        .field("input_type")
                        .error("expected a string, such as `search_query`"))
                }
            };
            body.insert("texts".into(), json!(read.texts));
            body.insert("input_type".into(), input_type.into());
            if let Some(d) = read.dimensions {
                body.insert("output_dimension".into(), d.into());
            }
        }
    }
    Ok(Value::Object(body))
}

#[derive(Deserialize)]
struct TitanAnswer<'a> {
    #[serde(borrow)]
    embedding: &'a RawValue,
    #[serde(default, rename = "inputTextTokenCount")]
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct CohereAnswer<'a> {
    /// A list of vectors, or vectors by type (`{"float": [...]}`) when types were asked for.
    #[serde(borrow)]
    embeddings: &'a RawValue,
}

#[derive(Deserialize)]
struct CohereByType<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

/// An InvokeModel answer of `model_id`'s family as an OpenAI embeddings list for `model`, in
/// `encoding`. Usage: the tokens the answer counts (Titan), else `header_tokens` (Bedrock's
/// input-token header), else `estimate`. `Err`: the body is not such an answer.
pub fn embeddings_response_to_openai(
    body: &[u8],
    model_id: &str,
    model: &str,
    header_tokens: Option<u64>,
    estimate: u64,
    encoding: Encoding,
) -> Result<String, TranslateError> {
    let parse_error = |e: serde_json::Error| Loc::Root.error(e.to_string());
    match EmbeddingFamily::of(model_id)? {
        EmbeddingFamily::Titan => {
            let answer: TitanAnswer = serde_json::from_slice(body).map_err(parse_error)?;
            let tokens = answer
                .input_text_token_count
                .or(header_tokens)
                .unwrap_or(estimate);
            let not_numbers = |_| {
                Loc::Root
                    .field("embedding")
                    .error("expected a list of numbers")
            };
            openai_list(&[answer.embedding], not_numbers, model, tokens, encoding)
        }
        EmbeddingFamily::Cohere => {
            let answer: CohereAnswer = serde_json::from_slice(body).map_err(parse_error)?;
            let raw = answer.embeddings.get().trim_start();
            let (vectors, at) = if raw.starts_with('{') {
                let by_type: CohereByType = serde_json::from_str(raw).map_err(parse_error)?;
                (by_type.float, "embeddings.float")
            } else {
                let list: Vec<&RawValue> = serde_json::from_str(raw).map_err(parse_error)?;
                (list, "embeddings")
            };
            let not_numbers = |i| {
                Loc::Root
                    .field(at)
                    .index(i)
                    .error("expected a list of numbers")
            };
            let tokens = header_tokens.unwrap_or(estimate);
            openai_list(&vectors, not_numbers, model, tokens, encoding)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITAN: &str = "amazon.titan-embed-text-v2:0";
    const COHERE: &str = "cohere.embed-english-v3";

    #[test]
    fn the_family_is_read_from_ids_profiles_and_arns() {
        for id in [
            TITAN,
            "amazon.titan-embed-text-v1",
            "amazon.titan-embed-image-v1",
        ] {
            assert_eq!(EmbeddingFamily::of(id).unwrap(), EmbeddingFamily::Titan);
        }
        for id in [
            COHERE,
            "us.cohere.embed-v4:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.cohere.embed-v4:0",
        ] {
            assert_eq!(EmbeddingFamily::of(id).unwrap(), EmbeddingFamily::Cohere);
        }
        let e = EmbeddingFamily::of("anthropic.claude-3-5-sonnet-20240620-v1:0").unwrap_err();
        assert_eq!(e.path, "model");
        assert!(e.message.contains("Titan"), "{e}");
    }

    #[test]
    fn titan_takes_one_text_and_its_dimensions() {
        let v = embeddings_request_to_bedrock(
            &json!({"model": "alias", "input": "hello", "dimensions": 256, "user": "u"}),
            TITAN,
        )
        .unwrap();
        assert_eq!(v, json!({"inputText": "hello", "dimensions": 256}));
        let v = embeddings_request_to_bedrock(&json!({"input": ["only"]}), TITAN).unwrap();
        assert_eq!(v, json!({"inputText": "only"}));
        let e = embeddings_request_to_bedrock(&json!({"input": ["a", "b"]}), TITAN).unwrap_err();
        assert_eq!(e.path, "input");
        assert!(e.message.contains("one text per call"), "{e}");
    }

    #[test]
    fn cohere_takes_the_list_with_an_input_type() {
        let v = embeddings_request_to_bedrock(
            &json!({"input": ["a", "b"], "dimensions": 512, "encoding_format": "base64"}),
            COHERE,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"texts": ["a", "b"], "input_type": "search_document", "output_dimension": 512})
        );
        let v = embeddings_request_to_bedrock(
            &json!({"input": "q", "input_type": "search_query"}),
            COHERE,
        )
        .unwrap();
        assert_eq!(v, json!({"texts": ["q"], "input_type": "search_query"}));
        let e = embeddings_request_to_bedrock(&json!({"input": "q", "input_type": 3}), COHERE)
            .unwrap_err();
        assert_eq!(e.path, "input_type");
    }

    #[test]
    fn bad_requests_and_unknown_models_are_refused_before_sending() {
        let e = embeddings_request_to_bedrock(&json!({"input": [[1, 2]]}), COHERE).unwrap_err();
        assert!(e.message.contains("Bedrock model"), "{e}");
        let e =
            embeddings_request_to_bedrock(&json!({"input": "a"}), "meta.llama3-8b-instruct-v1:0")
                .unwrap_err();
        assert_eq!(e.path, "model");
    }

    fn answer(body: &str, model_id: &str, header: Option<u64>) -> Result<Value, TranslateError> {
        embeddings_response_to_openai(
            body.as_bytes(),
            model_id,
            "emb",
            header,
            99,
            Encoding::Float,
        )
        .map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn titan_answers_are_one_vector_with_their_token_count() {
        let v = answer(
            r#"{"embedding":[0.5,-0.25],"inputTextTokenCount":3}"#,
            TITAN,
            Some(7),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"object": "list", "model": "emb",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
                   "usage": {"prompt_tokens": 3, "total_tokens": 3}})
        );
        let v = answer(r#"{"embedding":[1]}"#, TITAN, None).unwrap();
        assert_eq!(
            v["usage"]["prompt_tokens"], 99,
            "the estimate when nothing is reported"
        );
    }

    #[test]
    fn cohere_answers_in_either_shape_use_the_header_count() {
        let plain = answer(
            r#"{"id":"x","embeddings":[[1,0],[0,1]],"response_type":"embeddings_floats"}"#,
            COHERE,
            Some(4),
        )
        .unwrap();
        let typed = answer(
            r#"{"embeddings":{"float":[[1,0],[0,1]]},"response_type":"embeddings_by_type"}"#,
            COHERE,
            Some(4),
        )
        .unwrap();
        assert_eq!(plain, typed);
        assert_eq!(plain["data"][1]["embedding"], json!([0, 1]));
        assert_eq!(plain["data"][1]["index"], 1);
        assert_eq!(plain["usage"]["prompt_tokens"], 4);
        let v = answer(r#"{"embeddings":[[1]]}"#, COHERE, None).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 99);
    }

    #[test]
    fn answers_of_another_shape_are_errors() {
        for (body, model) in [
            ("{", TITAN),
            (r#"{"embeddings":[[1]]}"#, TITAN),
            (r#"{"embedding":"x"}"#, TITAN),
            (r#"{"embedding":[1]}"#, COHERE),
            (r#"{"embeddings":[["x"]]}"#, COHERE),
            (r#"{"embeddings":{"int8":[[1]]}}"#, COHERE),
        ] {
            assert!(answer(body, model, None).is_err(), "{body}");
        }
        let e = answer(r#"{"embeddings":[[1],["x"]]}"#, COHERE, None).unwrap_err();
        assert_eq!(e.path, "embeddings[1]");
    }
}
