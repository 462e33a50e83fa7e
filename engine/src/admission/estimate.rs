//! Token counts: the estimate reserved before a call (a real tokenizer over the prompt, plus
//! the answer's bound) and the actual usage a provider reports after it.

use super::tokenizer::TokenCounter;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::OnceLock;

/// OpenAI's accounting adds a few tokens per message for roles and separators.
const TOKENS_PER_MESSAGE: u64 = 4;
const TOKENS_PER_REPLY: u64 = 3;

static TOKENIZER: OnceLock<Option<TokenCounter>> = OnceLock::new();

/// Loads the tokenizer (o200k_base, ~0.3 s) so the first request does not pay for it.
pub fn warm_up() {
    tokenizer();
}

fn tokenizer() -> Option<&'static TokenCounter> {
    TOKENIZER
        .get_or_init(|| match TokenCounter::o200k() {
            Ok(counter) => Some(counter),
            Err(e) => {
                // The vocabulary ships inside the crate; if it cannot load, estimates fall
                // back to ~4 bytes per token rather than failing requests.
                tracing::error!(error = %e, "tokenizer unavailable; estimating 4 bytes per token");
                None
            }
        })
        .as_ref()
}

fn count(text: &str) -> u64 {
    super::token_cache::count_with(text, |text| match tokenizer() {
        Some(counter) => counter.count(text),
        None => (text.len() as u64).div_ceil(4),
    })
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// Prompt tokens of a chat `messages` array (text content; images are not counted).
pub fn chat_prompt_tokens(messages: &RawValue) -> u64 {
    let Ok(list) = serde_json::from_str::<Vec<Message>>(messages.get()) else {
        return (messages.get().len() as u64).div_ceil(4);
    };
    let mut total = TOKENS_PER_REPLY;
    for m in &list {
        total += TOKENS_PER_MESSAGE;
        match &m.content {
            Some(Content::Text(t)) => total += count(t),
            Some(Content::Parts(parts)) => {
                total += parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .map(count)
                    .sum::<u64>()
            }
            Some(Content::Other(_)) | None => {}
        }
    }
    total
}

/// Tokens of an embeddings `input`: a string or a list of strings.
pub fn embedding_input_tokens(input: &RawValue) -> u64 {
    if let Ok(one) = serde_json::from_str::<Cow<str>>(input.get()) {
        return count(&one);
    }
    match serde_json::from_str::<Vec<Cow<str>>>(input.get()) {
        Ok(many) => many.iter().map(|s| count(s)).sum(),
        Err(_) => (input.get().len() as u64).div_ceil(4),
    }
}

/// Token usage a provider reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cached ones included (OpenAI's convention).
    pub prompt: u64,
    pub cached: u64,
    pub completion: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<UsageWire>,
}

/// The `usage` object of an OpenAI response or stream chunk, if it has one.
pub fn usage_of(json: &[u8]) -> Option<Usage> {
    let wire = serde_json::from_slice::<WithUsage>(json).ok()?.usage?;
    Some(Usage {
        prompt: wire.prompt_tokens,
        cached: wire.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        completion: wire.completion_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn counts_text_and_parts_with_message_overhead() {
        let one = chat_prompt_tokens(&raw(r#"[{"role":"user","content":"hello world"}]"#));
        assert_eq!(one, TOKENS_PER_REPLY + TOKENS_PER_MESSAGE + 2);
        let parts = chat_prompt_tokens(&raw(
            r#"[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"x"}}]}]"#,
        ));
        assert_eq!(parts, one);
        let longer = chat_prompt_tokens(&raw(&format!(
            r#"[{{"role":"user","content":"{}"}}]"#,
            "the quick brown fox ".repeat(50)
        )));
        assert!((190..=215).contains(&longer), "{longer}");
    }

    #[test]
    fn embedding_inputs_are_counted() {
        assert_eq!(embedding_input_tokens(&raw(r#""hello world""#)), 2);
        assert_eq!(
            embedding_input_tokens(&raw(r#"["hello world","hello"]"#)),
            3
        );
    }

    #[test]
    fn reads_usage_with_cached_tokens() {
        let u = usage_of(br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#).unwrap();
        assert_eq!(
            u,
            Usage {
                prompt: 10,
                cached: 4,
                completion: 5
            }
        );
        assert_eq!(usage_of(br#"{"usage":null}"#), None);
        assert_eq!(usage_of(b"not json"), None);
    }
}
