//! The text of chat messages, taken out for guardrails and put back after redaction.

use serde_json::Value;

/// Every text of `messages`, in order: string contents and `text` parts.
pub fn texts(messages: &Value) -> Vec<String> {
    let mut out = Vec::new();
    visit(messages, &mut |s| out.push(s.clone()));
    out
}

/// Writes `texts` back in the order `texts` read them.
pub fn replace_texts(messages: &mut Value, texts: &[String]) {
    let mut i = 0;
    visit_mut(messages, &mut |s| {
        if let Some(t) = texts.get(i) {
            *s = t.clone();
        }
        i += 1;
    });
}

/// (role, text) of each message: what CEL's `messages` holds.
pub fn role_and_text(messages: &Value) -> Vec<(String, String)> {
    let Some(list) = messages.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap_or("").to_string();
            let mut text = String::new();
            visit_content(&m["content"], &mut |s| {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(s);
            });
            (role, text)
        })
        .collect()
}

fn visit(messages: &Value, f: &mut dyn FnMut(&String)) {
    for m in messages.as_array().into_iter().flatten() {
        match &m["content"] {
            Value::String(s) => f(s),
            Value::Array(parts) => {
                for p in parts {
                    if let Some(Value::String(s)) = p.get("text") {
                        f(s);
                    }
                }
            }
            _ => {}
        }
    }
}

fn visit_content(content: &Value, f: &mut dyn FnMut(&str)) {
    match content {
        Value::String(s) => f(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .for_each(f),
        _ => {}
    }
}

fn visit_mut(messages: &mut Value, f: &mut dyn FnMut(&mut String)) {
    for m in messages.as_array_mut().into_iter().flatten() {
        match m.get_mut("content") {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(Value::String(s)) = p.get_mut("text") {
                        f(s);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_round_trip_through_strings_and_parts() {
        let mut m = json!([
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "a@b.co"}, {"type": "image_url", "image_url": {"url": "x"}}]}
        ]);
        assert_eq!(texts(&m), ["be nice", "a@b.co"]);
        replace_texts(&mut m, &["be nice".into(), "[REDACTED:EMAIL]".into()]);
        assert_eq!(m[1]["content"][0]["text"], "[REDACTED:EMAIL]");
        assert_eq!(
            role_and_text(&m)[1],
            ("user".to_string(), "[REDACTED:EMAIL]".to_string())
        );
    }
}
