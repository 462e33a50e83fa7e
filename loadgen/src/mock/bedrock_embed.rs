//! Bedrock InvokeModel for embedding models (`/model/{id}/invoke`): Titan Text Embeddings and
//! Cohere Embed, each with its own body, checked as Bedrock checks it (a field the family does
//! not take is a `ValidationException`). Vectors are unit vectors derived from each text's
//! hash, so equal texts embed equally; the input's tokens come back in the
//! `x-amzn-bedrock-input-token-count` header, as Bedrock reports them.

use serde_json::{Map, Value};

use super::json::{num, raw};
use super::openai::unit_vector;
use super::request::{fnv1a, prompt_tokens};

/// One answer: the body and the input's token count.
pub struct Embedded {
    pub body: Vec<u8>,
    pub input_tokens: u64,
}

/// Answers an InvokeModel body for `model_id` (as it appears in the path); `Err` is the
/// message of a `ValidationException`.
pub fn invoke(model_id: &str, body: &[u8]) -> Result<Embedded, String> {
    let req: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("malformed input request: {e}"))?;
    if model_id.contains("titan-embed") {
        titan(model_id, &req)
    } else if model_id.contains("cohere.embed") {
        cohere(model_id, &req)
    } else {
        Err(format!(
            "the mock serves InvokeModel for Titan and Cohere embedding models, not `{model_id}`"
        ))
    }
}

fn only_keys(req: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match req.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("extraneous key [{k}] is not permitted")),
        None => Ok(()),
    }
}

fn titan(model_id: &str, req: &Map<String, Value>) -> Result<Embedded, String> {
    let v2 = model_id.contains("text-v2");
    let allowed: &[&str] = if v2 {
        &["inputText", "dimensions", "normalize", "embeddingTypes"]
    } else {
        &["inputText"]
    };
    only_keys(req, allowed)?;
    let text = req
        .get("inputText")
        .and_then(Value::as_str)
        .ok_or("required key [inputText] not found")?;
    let dims = match req.get("dimensions") {
        None => 1024,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024)) => n as usize,
            _ => return Err(format!("dimensions: {d} is not one of [256, 512, 1024]")),
        },
    };
    let tokens = prompt_tokens(text.chars().count());
    let mut b = Vec::with_capacity(16 + dims * 12);
    raw(&mut b, r#"{"embedding":"#);
    vector(&mut b, fnv1a(text.as_bytes()), dims);
    raw(&mut b, r#","inputTextTokenCount":"#);
    num(&mut b, tokens);
    raw(&mut b, "}");
    Ok(Embedded {
        body: b,
        input_tokens: tokens,
    })
}

fn cohere(model_id: &str, req: &Map<String, Value>) -> Result<Embedded, String> {
    let v4 = model_id.contains("embed-v4");
    let mut allowed = vec!["texts", "input_type", "truncate", "embedding_types"];
    if v4 {
        allowed.push("output_dimension");
    }
    only_keys(req, &allowed)?;
    let texts: Vec<&str> = match req.get("texts").and_then(Value::as_array) {
        Some(items) if (1..=96).contains(&items.len()) => items
            .iter()
            .map(|t| t.as_str().ok_or("texts: every item must be a string"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("texts: 1 to 96 texts per call".into()),
        None => return Err("required key [texts] not found".into()),
    };
    match req.get("input_type").and_then(Value::as_str) {
        Some("search_document" | "search_query" | "classification" | "clustering") => {}
        Some(other) => return Err(format!("input_type: `{other}` is not a valid input type")),
        None => return Err("required key [input_type] not found".into()),
    }
    let dims = match req.get("output_dimension") {
        None if v4 => 1536,
        None => 1024,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024 | 1536)) => n as usize,
            _ => return Err(format!("output_dimension: {d} is not valid")),
        },
    };
    let by_type = req.contains_key("embedding_types");
    let mut b = Vec::with_capacity(64 + texts.len() * dims * 12);
    raw(
        &mut b,
        if by_type {
            r#"{"id":"mock","embeddings":{"float":["#
        } else {
            r#"{"id":"mock","embeddings":["#
        },
    );
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            raw(&mut b, ",");
        }
        vector(&mut b, fnv1a(text.as_bytes()), dims);
    }
    raw(
        &mut b,
        if by_type {
            r#"]},"response_type":"embeddings_by_type"}"#
        } else {
            r#"],"response_type":"embeddings_floats"}"#
        },
    );
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    Ok(Embedded {
        body: b,
        input_tokens: prompt_tokens(chars),
    })
}

fn vector(b: &mut Vec<u8>, seed: u64, dims: usize) {
    raw(b, "[");
    for (j, v) in unit_vector(seed, dims).iter().enumerate() {
        if j > 0 {
            raw(b, ",");
        }
        super::json::float(b, *v);
    }
    raw(b, "]");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(model: &str, body: &str) -> Result<(Value, u64), String> {
        invoke(model, body.as_bytes())
            .map(|e| (serde_json::from_slice(&e.body).unwrap(), e.input_tokens))
    }

    #[test]
    fn titan_embeds_one_text_at_the_asked_size() {
        let (v, tokens) = answer(
            "amazon.titan-embed-text-v2%3A0",
            r#"{"inputText":"hello there","dimensions":256}"#,
        )
        .unwrap();
        assert_eq!(v["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(v["inputTextTokenCount"], tokens);
        let (again, _) = answer(
            "amazon.titan-embed-text-v2%3A0",
            r#"{"inputText":"hello there","dimensions":256}"#,
        )
        .unwrap();
        assert_eq!(v, again);
        assert!(answer(
            "amazon.titan-embed-text-v2%3A0",
            r#"{"inputText":"x","dimensions":5}"#
        )
        .is_err());
        assert!(answer(
            "amazon.titan-embed-text-v1",
            r#"{"inputText":"x","dimensions":256}"#
        )
        .unwrap_err()
        .contains("extraneous key [dimensions]"));
        assert!(answer("amazon.titan-embed-text-v2%3A0", r#"{"texts":["x"]}"#).is_err());
    }

    #[test]
    fn cohere_embeds_a_list_in_order_and_needs_an_input_type() {
        let body = r#"{"texts":["a","b","a"],"input_type":"search_document"}"#;
        let (v, tokens) = answer("cohere.embed-english-v3", body).unwrap();
        let list = v["embeddings"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0], list[2]);
        assert_ne!(list[0], list[1]);
        assert_eq!(list[0].as_array().unwrap().len(), 1024);
        assert_eq!(tokens, 1);
        let typed = r#"{"texts":["a"],"input_type":"search_query","embedding_types":["float"],"output_dimension":256}"#;
        let (v, _) = answer("us.cohere.embed-v4%3A0", typed).unwrap();
        assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 256);
        assert!(answer("cohere.embed-english-v3", r#"{"texts":["a"]}"#)
            .unwrap_err()
            .contains("input_type"));
        assert!(answer("cohere.embed-english-v3", typed)
            .unwrap_err()
            .contains("output_dimension"));
    }
}
