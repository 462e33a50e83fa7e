//! A tool call as policy expressions see it: `endpoint == "mcp"`, `tool` = {server, name,
//! arguments}, `prompt` = the arguments as JSON text (so text conditions written for prompts
//! apply to tool calls too), and at the output stage `response.content` = the result's text.

use crate::plan::KeyPlan;
use crate::policy::{KeyAttrs, RequestView, ResponseAttrs, ToolAttrs, UsagePct};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::Value;

pub struct ToolCallView<'a> {
    pub headers: &'a HeaderMap,
    pub key: &'a KeyPlan,
    pub server: &'a str,
    /// The tool's name on its server (without the `server__` prefix).
    pub name: &'a str,
    pub arguments: &'a Value,
    pub arguments_text: String,
    pub now: DateTime<Utc>,
    /// The result's text, once the server has answered.
    pub result: Option<&'a str>,
}

impl RequestView for ToolCallView<'_> {
    fn model(&self) -> &str {
        ""
    }
    fn provider(&self) -> &str {
        ""
    }
    fn endpoint(&self) -> &str {
        "mcp"
    }
    fn stream(&self) -> bool {
        false
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn visit_headers<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        for (name, value) in self.headers {
            if let Ok(v) = value.to_str() {
                f(name.as_str(), v);
            }
        }
    }
    fn visit_params<'s>(&'s self, _f: &mut dyn FnMut(&'s str, &'s Value)) {}
    fn visit_messages<'s>(&'s self, _f: &mut dyn FnMut(&'s str, &'s str)) {}
    fn prompt(&self) -> &str {
        &self.arguments_text
    }
    fn prompt_tokens(&self) -> i64 {
        0
    }
    fn key(&self) -> &KeyAttrs {
        &self.key.attrs
    }
    fn usage(&self) -> UsagePct {
        self.key.usage_pct(self.now.timestamp())
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn response(&self) -> Option<ResponseAttrs<'_>> {
        self.result.map(|content| ResponseAttrs {
            content,
            finish_reason: "",
            prompt_tokens: 0,
            completion_tokens: 0,
            provider: self.server,
            model: self.name,
        })
    }
    fn tool(&self) -> Option<ToolAttrs<'_>> {
        Some(ToolAttrs {
            server: self.server,
            name: self.name,
            arguments: self.arguments,
        })
    }
}

/// Every string inside a JSON value, depth first (the text guardrails look at).
pub fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

/// Writes `texts` (as produced by [`strings`], possibly redacted) back in the same order.
pub fn replace_strings(v: &mut Value, texts: &mut impl Iterator<Item = String>) {
    match v {
        Value::String(s) => {
            if let Some(t) = texts.next() {
                *s = t;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_strings(i, texts)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_strings(i, texts)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_in_order() {
        let mut v = serde_json::json!({"a": "x", "b": [1, "y", {"c": "z"}], "d": true});
        let mut found = Vec::new();
        strings(&v, &mut found);
        assert_eq!(found.len(), 3);
        let upper: Vec<String> = found.iter().map(|s| s.to_uppercase()).collect();
        replace_strings(&mut v, &mut upper.into_iter());
        assert_eq!(
            v,
            serde_json::json!({"a": "X", "b": [1, "Y", {"c": "Z"}], "d": true})
        );
    }
}
