//! The text a semantic lookup embeds: the system prompt and the last `history` turns of the
//! conversation, each as `role: text`, in order. Only text is taken (images and tool
//! schemas are not embedded; they still split entries through the exact key and partition).
//! A request with no conversation text (embeddings, an empty chat) has no semantic lookup.

use serde_json::Value;

/// The text to embed for a request body in the OpenAI Chat shape (every client door
/// translates to it before the cache), or `None` when it holds no conversation text.
pub fn semantic_text(body: &Value, history: usize) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let is_system = |m: &Value| matches!(role(m), "system" | "developer");
    let turns: Vec<&Value> = messages.iter().filter(|m| !is_system(m)).collect();
    let from = turns.len().saturating_sub(history.max(1));
    let mut out = String::new();
    for m in messages
        .iter()
        .filter(|m| is_system(m))
        .chain(turns[from..].iter().copied())
    {
        let start = out.len();
        out.push_str(role(m));
        out.push_str(": ");
        let before = out.len();
        push_text(m.get("content").unwrap_or(&Value::Null), &mut out);
        if out.len() == before {
            out.truncate(start);
        } else {
            out.push('\n');
        }
    }
    let text = out.trim_end();
    (!text.is_empty()).then(|| text.to_owned())
}

fn role(m: &Value) -> &str {
    m.get("role").and_then(Value::as_str).unwrap_or("user")
}

/// A string content, or the `text` of each text part, joined with spaces.
fn push_text(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => push_words(s, out),
        Value::Array(parts) => {
            for part in parts {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    push_words(t, out);
                }
            }
        }
        _ => {}
    }
}

/// Whitespace runs collapse to one space, as in the exact key.
fn push_words(s: &str, out: &mut String) {
    for word in s.split_whitespace() {
        if !out.ends_with(": ") && !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// The numbers written in digits in `text`, in order (`"order #10432, 2 items"` → `10432`,
/// `2`). A semantic hit needs the same ones on both sides (see [`CacheKey::with_digits_of`]).
///
/// [`CacheKey::with_digits_of`]: crate::cache::CacheKey::with_digits_of
pub fn digit_runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_prompt_and_the_last_turns_in_order() {
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "Be  terse."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "How do I"},
                {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "reset it?"}]}
        ]});
        assert_eq!(
            semantic_text(&body, 2).unwrap(),
            "system: Be terse.\nassistant: one\nuser: How do I reset it?"
        );
        assert_eq!(
            semantic_text(&body, 1).unwrap(),
            "system: Be terse.\nuser: How do I reset it?"
        );
    }

    #[test]
    fn no_conversation_text_means_no_lookup() {
        assert_eq!(semantic_text(&json!({"input": "hi"}), 3), None);
        assert_eq!(semantic_text(&json!({"messages": []}), 3), None);
        let only_tool_calls = json!({"messages": [{"role": "assistant", "content": null,
            "tool_calls": [{"id": "c"}]}]});
        assert_eq!(semantic_text(&only_tool_calls, 3), None);
    }
}
