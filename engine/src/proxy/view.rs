//! The request as policy expressions see it, built lazily: each variable is computed the
//! first time a condition reads it (most rules read one header and nothing else).

use super::request::RequestHead;
use crate::admission::estimate::{chat_prompt_tokens, embedding_input_tokens};
use crate::admission::messages::role_and_text;
use crate::plan::KeyPlan;
use crate::policy::{KeyAttrs, RequestView, ResponseAttrs, UsagePct};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::Value;
use std::sync::OnceLock;

pub struct ProxyView<'a> {
    pub head: &'a RequestHead<'a>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub endpoint: &'static str,
    pub key: &'a KeyPlan,
    pub now: DateTime<Utc>,
    messages: OnceLock<Vec<(String, String)>>,
    params: OnceLock<Vec<(String, Value)>>,
    /// Counted once per request: rules, guardrails and admission all read it.
    prompt_tokens: OnceLock<u64>,
    usage: OnceLock<UsagePct>,
}

/// Body fields that are not `params` (they have variables of their own, or are content).
const NOT_PARAMS: [&str; 6] = ["model", "messages", "stream", "input", "tools", "fallbacks"];

impl<'a> ProxyView<'a> {
    pub fn new(
        head: &'a RequestHead<'a>,
        headers: &'a HeaderMap,
        body: &'a [u8],
        endpoint: &'static str,
        key: &'a KeyPlan,
        now: DateTime<Utc>,
    ) -> ProxyView<'a> {
        ProxyView {
            head,
            headers,
            body,
            endpoint,
            key,
            now,
            messages: OnceLock::new(),
            params: OnceLock::new(),
            prompt_tokens: OnceLock::new(),
            usage: OnceLock::new(),
        }
    }

    /// The prompt's tokens by the tokenizer: chat messages, or an embeddings `input`.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        *self.prompt_tokens.get_or_init(|| {
            let head = self.head;
            head.messages
                .map(chat_prompt_tokens)
                .or_else(|| head.input.map(embedding_input_tokens))
                .unwrap_or(0)
        })
    }

    fn messages(&self) -> &[(String, String)] {
        self.messages.get_or_init(|| {
            self.head
                .messages
                .and_then(|m| serde_json::from_str::<Value>(m.get()).ok())
                .map(|v| role_and_text(&v))
                .unwrap_or_default()
        })
    }
}

impl RequestView for ProxyView<'_> {
    fn model(&self) -> &str {
        &self.head.model
    }

    fn provider(&self) -> &str {
        self.head.model.split_once('/').map_or("", |(p, _)| p)
    }

    fn endpoint(&self) -> &str {
        self.endpoint
    }

    fn stream(&self) -> bool {
        self.head.stream
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

    fn visit_params<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s Value)) {
        let params = self.params.get_or_init(|| {
            let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(self.body) else {
                return Vec::new();
            };
            let tools = map
                .get("tools")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let mut out: Vec<(String, Value)> = map
                .into_iter()
                .filter(|(k, _)| !NOT_PARAMS.contains(&k.as_str()))
                .collect();
            out.push(("tools_count".into(), Value::from(tools)));
            out
        });
        for (k, v) in params {
            f(k, v);
        }
    }

    fn visit_messages<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        for (role, text) in self.messages() {
            f(role, text);
        }
    }

    fn prompt(&self) -> &str {
        self.messages()
            .iter()
            .rev()
            .find(|(role, _)| role == "user")
            .map_or("", |(_, t)| t.as_str())
    }

    fn prompt_tokens(&self) -> i64 {
        i64::try_from(self.estimated_prompt_tokens()).unwrap_or(i64::MAX)
    }

    fn key(&self) -> &KeyAttrs {
        &self.key.attrs
    }

    fn usage(&self) -> UsagePct {
        *self
            .usage
            .get_or_init(|| self.key.usage_pct(self.now.timestamp()))
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// A request view plus the provider's answer: what output-stage expressions (`when`, `cel`)
/// see. Every request variable comes from `request` unchanged.
pub struct WithResponse<'a> {
    pub request: &'a dyn RequestView,
    pub response: ResponseAttrs<'a>,
}

impl RequestView for WithResponse<'_> {
    fn model(&self) -> &str {
        self.request.model()
    }

    fn provider(&self) -> &str {
        self.request.provider()
    }

    fn endpoint(&self) -> &str {
        self.request.endpoint()
    }

    fn stream(&self) -> bool {
        self.request.stream()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    fn visit_headers<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.request.visit_headers(f)
    }

    fn visit_params<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s Value)) {
        self.request.visit_params(f)
    }

    fn visit_messages<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.request.visit_messages(f)
    }

    fn prompt(&self) -> &str {
        self.request.prompt()
    }

    fn prompt_tokens(&self) -> i64 {
        self.request.prompt_tokens()
    }

    fn key(&self) -> &KeyAttrs {
        self.request.key()
    }

    fn usage(&self) -> UsagePct {
        self.request.usage()
    }

    fn now(&self) -> DateTime<Utc> {
        self.request.now()
    }

    fn response(&self) -> Option<ResponseAttrs<'_>> {
        Some(self.response)
    }
}
