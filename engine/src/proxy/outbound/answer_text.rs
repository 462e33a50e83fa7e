//! What the output guardrails read of a whole chat answer: the string contents of its choices,
//! the first choice's finish reason and the token counts. Read through borrowed, typed fields
//! rather than a JSON tree, since every answer of a key with output guardrails is read this
//! way and almost none is then rewritten; a redaction builds the tree ([`write_back`]).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// The parts of an answer the guardrails and their expressions see.
#[derive(Debug, PartialEq)]
pub struct AnswerText {
    /// `choices[].message.content` where it is a string, in order.
    pub texts: Vec<String>,
    pub finish_reason: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    /// A string, null, or (from some providers) a list of parts, which carries no text here.
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<i64>,
    #[serde(default)]
    completion_tokens: Option<i64>,
}

impl AnswerText {
    /// `None`: the body is not JSON. An answer of an unexpected shape (a finish reason that is
    /// not a string, fractional token counts) is read field by field from its JSON tree, as
    /// leniently as before.
    pub fn read(body: &[u8]) -> Option<AnswerText> {
        match serde_json::from_slice::<Answer>(body) {
            Ok(answer) => Some(AnswerText::from_typed(answer)),
            Err(_) => serde_json::from_slice::<Value>(body)
                .ok()
                .map(|v| AnswerText::from_tree(&v)),
        }
    }

    fn from_typed(answer: Answer<'_>) -> AnswerText {
        let texts = answer
            .choices
            .iter()
            .filter_map(|c| c.message.as_ref()?.content)
            .filter(|raw| raw.get().starts_with('"'))
            .filter_map(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .collect();
        let usage = answer.usage.as_ref();
        AnswerText {
            texts,
            finish_reason: answer
                .choices
                .first()
                .and_then(|c| c.finish_reason.as_deref())
                .unwrap_or("")
                .to_owned(),
            prompt_tokens: usage.and_then(|u| u.prompt_tokens).unwrap_or(0),
            completion_tokens: usage.and_then(|u| u.completion_tokens).unwrap_or(0),
        }
    }

    fn from_tree(answer: &Value) -> AnswerText {
        let number = |pointer: &str| answer.pointer(pointer).and_then(Value::as_i64);
        let texts = answer
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.pointer("/message/content")?.as_str())
            .map(str::to_owned)
            .collect();
        AnswerText {
            texts,
            finish_reason: answer
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            prompt_tokens: number("/usage/prompt_tokens").unwrap_or(0),
            completion_tokens: number("/usage/completion_tokens").unwrap_or(0),
        }
    }
}

/// The answer with its string contents replaced by `texts`, in the order [`AnswerText::read`]
/// found them. `Err`: the body cannot be re-encoded (never the unredacted text instead).
pub fn write_back(body: &[u8], texts: Vec<String>) -> Result<Bytes, String> {
    let mut answer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let slots = answer
        .get_mut("choices")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|c| match c.pointer_mut("/message/content") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        });
    for (slot, text) in slots.zip(texts) {
        *slot = text;
    }
    serde_json::to_vec(&answer)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"id":"x","choices":[
        {"index":0,"message":{"role":"assistant","content":"a \"quoted\" \u00e9"},"finish_reason":"stop"},
        {"index":1,"message":{"content":null,"tool_calls":[]},"finish_reason":"tool_calls"},
        {"index":2,"message":{"content":[{"type":"text","text":"parts"}]}},
        {"index":3,"message":{"content":"b"}}],
        "usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;

    #[test]
    fn typed_and_tree_reads_agree() {
        let typed = AnswerText::read(ANSWER.as_bytes()).unwrap();
        let tree = AnswerText::from_tree(&serde_json::from_str(ANSWER).unwrap());
        assert_eq!(typed, tree);
        assert_eq!(typed.texts, ["a \"quoted\" é", "b"]);
        assert_eq!(typed.finish_reason, "stop");
        assert_eq!((typed.prompt_tokens, typed.completion_tokens), (7, 3));
    }

    #[test]
    fn odd_shapes_fall_back_to_the_tree_and_non_json_is_none() {
        let odd = r#"{"choices":[{"message":{"content":"hi"},"finish_reason":5}],
            "usage":{"prompt_tokens":1.5,"completion_tokens":2}}"#;
        let read = AnswerText::read(odd.as_bytes()).unwrap();
        assert_eq!(read.texts, ["hi"]);
        assert_eq!(read.finish_reason, "");
        assert_eq!((read.prompt_tokens, read.completion_tokens), (0, 2));
        assert_eq!(AnswerText::read(b"{}").unwrap().texts, Vec::<String>::new());
        assert!(AnswerText::read(b"<html>").is_none());
    }

    #[test]
    fn write_back_replaces_the_string_contents_in_order() {
        let out = write_back(ANSWER.as_bytes(), vec!["A".into(), "B".into()]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "A");
        assert_eq!(v["choices"][1]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][3]["message"]["content"], "B");
        assert_eq!(v["usage"]["total_tokens"], 10);
    }
}
