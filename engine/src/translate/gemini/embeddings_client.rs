//! Gemini embeddings clients (`:embedContent`, `:batchEmbedContents`) ⇄ OpenAI embeddings, so a
//! Google SDK can embed through the same pipeline as `/v1/embeddings`, with any provider.
//! (`embeddings` is the opposite direction: OpenAI clients on a Gemini provider.)
//!
//! Each content becomes one OpenAI input, in order, so the answer's vectors line up with the
//! contents by index. A content's text parts are joined with newlines into one input; other
//! parts (images, files) cannot be carried by an OpenAI embeddings request and are refused.
//! `outputDimensionality` becomes `dimensions`, which OpenAI sets once per request: a batch
//! whose contents ask for different sizes is refused. `taskType` and `title` have no OpenAI
//! counterpart and are dropped. Vectors travel as floats: no `encoding_format` is sent, and
//! OpenAI's default is floats.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::translate::ir::TranslateError;
use crate::translate::json_access::{as_array, as_object, optional, required, Loc};

/// Which Gemini embeddings method the client called; its answer has that method's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedMethod {
    /// `:embedContent`: one `content`, answered with one `embedding`.
    EmbedContent,
    /// `:batchEmbedContents`: a list of `requests`, answered with `embeddings` in order.
    BatchEmbedContents,
}

/// The OpenAI embeddings request (`model`, `input`, `dimensions`) for a Gemini embeddings
/// request to `model` (the model named in the URL) by `method`.
pub fn embed_request_to_openai(
    req: &Value,
    method: EmbedMethod,
    model: &str,
) -> Result<Value, TranslateError> {
    let root = Loc::Root;
    let obj = as_object(req, &root)?;
    let (texts, dimensions) = match method {
        EmbedMethod::EmbedContent => {
            let text = content_text(required(obj, "content", &root)?, &root.field("content"))?;
            (vec![text], dimensions(obj, &root)?)
        }
        EmbedMethod::BatchEmbedContents => batch(obj, &root, model)?,
    };
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("input".into(), texts.into());
    if let Some(d) = dimensions {
        out.insert("dimensions".into(), d.into());
    }
    Ok(Value::Object(out))
}

/// The texts of a batch's requests, in order, and the one size they all ask for.
fn batch(
    obj: &Map<String, Value>,
    root: &Loc,
    model: &str,
) -> Result<(Vec<String>, Option<u64>), TranslateError> {
    let at = root.field("requests");
    let requests = as_array(required(obj, "requests", root)?, &at)?;
    if requests.is_empty() {
        return Err(at.error("must not be empty"));
    }
    let mut texts = Vec::with_capacity(requests.len());
    let mut size = None;
    for (i, request) in requests.iter().enumerate() {
        let item_at = at.index(i);
        let item = as_object(request, &item_at)?;
        check_model(item, &item_at, model)?;
        texts.push(content_text(
            required(item, "content", &item_at)?,
            &item_at.field("content"),
        )?);
        let asked = dimensions(item, &item_at)?;
        if i == 0 {
            size = asked;
        } else if asked != size {
            // OpenAI takes one `dimensions` per request: mixed sizes cannot be carried.
            let shown = |d: Option<u64>| d.map_or_else(|| "none".to_owned(), |d| d.to_string());
            return Err(item_at.field("outputDimensionality").error(format!(
                "every request of a batch must ask for the same size (the first asks for {}, \
                 this one for {}); send different sizes as separate calls",
                shown(size),
                shown(asked)
            )));
        }
    }
    Ok((texts, size))
}

/// A batch request's own `model` (`models/NAME` or `NAME`), when given, must be the URL's, as
/// Google requires: the URL's model is the one routed.
fn check_model(item: &Map<String, Value>, at: &Loc, model: &str) -> Result<(), TranslateError> {
    let Some(named) = optional(item, "model") else {
        return Ok(());
    };
    let at = at.field("model");
    let named = named
        .as_str()
        .ok_or_else(|| at.error("expected a string"))?;
    if named.strip_prefix("models/").unwrap_or(named) == model {
        return Ok(());
    }
    Err(at.error(format!(
        "`{named}` differs from the model in the URL (`models/{model}`)"
    )))
}

/// `outputDimensionality` (or its snake_case spelling, which the REST API also accepts).
fn dimensions(obj: &Map<String, Value>, at: &Loc) -> Result<Option<u64>, TranslateError> {
    let value =
        optional(obj, "outputDimensionality").or_else(|| optional(obj, "output_dimensionality"));
    value
        .map(|v| {
            v.as_u64().filter(|&d| d > 0).ok_or_else(|| {
                at.field("outputDimensionality")
                    .error("expected a positive integer")
            })
        })
        .transpose()
}

/// The text to embed for a `content`: its text parts, joined with newlines.
fn content_text(content: &Value, at: &Loc) -> Result<String, TranslateError> {
    let obj = as_object(content, at)?;
    let parts_at = at.field("parts");
    let parts = as_array(required(obj, "parts", at)?, &parts_at)?;
    if parts.is_empty() {
        return Err(parts_at.error("must not be empty"));
    }
    let mut texts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let part_at = parts_at.index(i);
        let part = as_object(part, &part_at)?;
        match part.get("text") {
            Some(Value::String(text)) => texts.push(text.as_str()),
            Some(_) => return Err(part_at.field("text").error("expected a string")),
            None => {
                let message = match part.keys().next() {
                    Some(kind) => format!(
                        "only text parts can be embedded through this gateway (this part has \
                         `{kind}`)"
                    ),
                    None => "missing required field `text`".to_owned(),
                };
                return Err(part_at.error(message));
            }
        }
    }
    Ok(texts.join("\n"))
}

/// The OpenAI embeddings list, as far as the Gemini answer needs it.
#[derive(Deserialize)]
struct OpenAiList<'a> {
    #[serde(borrow)]
    data: Vec<OpenAiEmbedding<'a>>,
}

#[derive(Deserialize)]
struct OpenAiEmbedding<'a> {
    #[serde(default)]
    index: Option<usize>,
    /// Kept as the provider wrote it: the numbers are copied without being re-printed.
    #[serde(borrow)]
    embedding: &'a RawValue,
}

#[derive(Serialize)]
struct GeminiEmbedding<'a> {
    values: &'a RawValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum GeminiAnswer<'a> {
    One {
        embedding: GeminiEmbedding<'a>,
    },
    Batch {
        embeddings: Vec<GeminiEmbedding<'a>>,
    },
}

/// An OpenAI embeddings list as the answer to `method`: `{"embedding": {"values"}}` for
/// `embedContent`, `{"embeddings": [{"values"}, ...]}` in input order for
/// `batchEmbedContents`. `Err`: the body is not such a list of float vectors.
pub fn embeddings_answer_to_gemini(
    body: &[u8],
    method: EmbedMethod,
) -> Result<String, TranslateError> {
    let root = Loc::Root;
    let list: OpenAiList = serde_json::from_slice(body).map_err(|e| root.error(e.to_string()))?;
    let at = root.field("data");
    let mut vectors = Vec::with_capacity(list.data.len());
    for (i, item) in list.data.into_iter().enumerate() {
        let item_at = at.index(i);
        // Checked, so that what reaches the client is a vector (the gateway asks for floats).
        serde_json::from_str::<Vec<f64>>(item.embedding.get()).map_err(|_| {
            item_at
                .field("embedding")
                .error("expected a list of numbers")
        })?;
        let values = item.embedding;
        vectors.push((item.index.unwrap_or(i), GeminiEmbedding { values }));
    }
    // OpenAI lists data in input order with its index; sorted in case a provider does not.
    vectors.sort_by_key(|(index, _)| *index);
    let mut vectors = vectors.into_iter().map(|(_, v)| v);
    let answer = match method {
        EmbedMethod::BatchEmbedContents => GeminiAnswer::Batch {
            embeddings: vectors.collect(),
        },
        EmbedMethod::EmbedContent => match (vectors.next(), vectors.next()) {
            (Some(embedding), None) => GeminiAnswer::One { embedding },
            _ => return Err(at.error("expected exactly one embedding for one content")),
        },
    };
    serde_json::to_string(&answer).map_err(|e| root.error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn single(body: Value) -> Result<Value, TranslateError> {
        embed_request_to_openai(&body, EmbedMethod::EmbedContent, "gemini-embedding-001")
    }

    fn batch(body: Value) -> Result<Value, TranslateError> {
        embed_request_to_openai(
            &body,
            EmbedMethod::BatchEmbedContents,
            "gemini-embedding-001",
        )
    }

    fn text(t: &str) -> Value {
        json!({"parts": [{"text": t}]})
    }

    #[test]
    fn one_content_is_one_input_for_the_url_model() {
        let v = single(
            json!({"content": text("hello"), "taskType": "RETRIEVAL_QUERY",
                              "outputDimensionality": 256}),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"model": "gemini-embedding-001", "input": ["hello"], "dimensions": 256})
        );
        let v = single(
            json!({"content": {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                              "output_dimensionality": 8}),
        )
        .unwrap();
        assert_eq!(v["input"], json!(["a\nb"]), "parts are joined");
        assert_eq!(v["dimensions"], 8);
        assert!(
            v.get("encoding_format").is_none(),
            "floats are OpenAI's default"
        );
    }

    #[test]
    fn a_batch_is_one_input_per_request_in_order() {
        let v = batch(json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": text("a"), "outputDimensionality": 5},
            {"model": "gemini-embedding-001", "content": text("b"), "outputDimensionality": 5},
            {"content": text("a"), "outputDimensionality": 5}]}))
        .unwrap();
        assert_eq!(
            v,
            json!({"model": "gemini-embedding-001", "input": ["a", "b", "a"], "dimensions": 5})
        );
        let v = batch(json!({"requests": [{"content": text("a")}]})).unwrap();
        assert!(v.get("dimensions").is_none(), "{v}");
    }

    #[test]
    fn non_text_parts_are_refused_naming_the_part() {
        let image = json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}});
        let e = single(json!({"content": {"parts": [{"text": "a"}, image]}})).unwrap_err();
        assert_eq!(e.path, "content.parts[1]", "{e}");
        assert!(e.message.contains("inlineData"), "{e}");
        let e = batch(json!({"requests": [{"content": text("a")},
                                          {"content": {"parts": [{"fileData": {}}]}}]}))
        .unwrap_err();
        assert_eq!(e.path, "requests[1].content.parts[0]", "{e}");
        let e = single(json!({"content": {"parts": [{"text": "a"}, {}]}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "content.parts[1]: missing required field `text`"
        );
        let e = single(json!({"content": {"parts": [{"text": 3}]}})).unwrap_err();
        assert_eq!(e.path, "content.parts[0].text", "{e}");
    }

    #[test]
    fn missing_or_empty_contents_are_refused_naming_the_field() {
        let e = single(json!({"outputDimensionality": 3})).unwrap_err();
        assert_eq!(e.path, "body", "{e}");
        assert!(e.message.contains("`content`"), "{e}");
        let e = single(json!({"content": {"parts": []}})).unwrap_err();
        assert_eq!(e.to_string(), "content.parts: must not be empty");
        let e = single(json!({"content": {"role": "user"}})).unwrap_err();
        assert!(e.message.contains("`parts`"), "{e}");
        let e = single(json!({"content": "hello"})).unwrap_err();
        assert_eq!(e.path, "content", "{e}");
        let e = batch(json!({"requests": []})).unwrap_err();
        assert_eq!(e.to_string(), "requests: must not be empty");
        let e = batch(json!({"content": text("a")})).unwrap_err();
        assert!(e.message.contains("`requests`"), "{e}");
        let e = batch(json!({"requests": [{"content": text("a")}, {"model": "models/x"}]}))
            .unwrap_err();
        assert_eq!(e.path, "requests[1].model", "{e}");
        let e = batch(json!({"requests": [{"content": text("a")}, {"title": "t"}]})).unwrap_err();
        assert_eq!(e.path, "requests[1]", "{e}");
        assert!(e.message.contains("`content`"), "{e}");
        assert!(single(json!([1])).is_err());
    }

    #[test]
    fn differing_sizes_in_a_batch_are_refused() {
        let e = batch(json!({"requests": [
            {"content": text("a"), "outputDimensionality": 5},
            {"content": text("b"), "outputDimensionality": 6}]}))
        .unwrap_err();
        assert_eq!(e.path, "requests[1].outputDimensionality", "{e}");
        assert!(e.message.contains("same size"), "{e}");
        let e = batch(json!({"requests": [
            {"content": text("a")}, {"content": text("b"), "outputDimensionality": 6}]}))
        .unwrap_err();
        assert_eq!(e.path, "requests[1].outputDimensionality", "{e}");
        for bad in [json!(0), json!(-1), json!(2.5), json!("8")] {
            let e = single(json!({"content": text("a"), "outputDimensionality": bad})).unwrap_err();
            assert_eq!(e.path, "outputDimensionality", "{e}");
        }
    }

    const LIST: &[u8] = br#"{"object": "list", "model": "m",
        "data": [{"object": "embedding", "index": 1, "embedding": [1, 0]},
                 {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2}}"#;

    #[test]
    fn answers_take_the_called_methods_shape_in_input_order() {
        let answer = |body, method| -> Value {
            serde_json::from_str(&embeddings_answer_to_gemini(body, method).unwrap()).unwrap()
        };
        let v = answer(LIST, EmbedMethod::BatchEmbedContents);
        assert_eq!(
            v,
            json!({"embeddings": [{"values": [0.5, -0.25]}, {"values": [1, 0]}]})
        );
        let one = br#"{"data": [{"index": 0, "embedding": [0.125, 2e-3]}]}"#;
        let v = answer(one, EmbedMethod::EmbedContent);
        assert_eq!(v, json!({"embedding": {"values": [0.125, 0.002]}}));
    }

    #[test]
    fn answers_that_are_not_float_lists_are_errors() {
        assert!(embeddings_answer_to_gemini(LIST, EmbedMethod::EmbedContent).is_err());
        for body in [
            &b"{"[..],
            br#"{"choices": []}"#,
            br#"{"data": [{"index": 0, "embedding": "AAAAPw=="}]}"#,
            br#"{"data": [{"index": 0, "embedding": ["x"]}]}"#,
            br#"{"data": []}"#,
        ] {
            let e = embeddings_answer_to_gemini(body, EmbedMethod::EmbedContent).unwrap_err();
            assert!(!e.message.is_empty());
        }
    }
}
