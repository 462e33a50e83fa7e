//! A request as plain data, for `tollgate test` and `explain`: the same variables the proxy's
//! lazy `ProxyView` (proxy/view.rs) computes, computed eagerly from a parsed body.

use crate::admission::estimate::chat_prompt_tokens;
use crate::admission::messages::role_and_text;
use crate::plan::KeyPlan;
use crate::policy::RequestData;
use crate::proxy::RequestHead;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;

/// Body fields that are not `params`: they have variables of their own, or are content.
/// Keep in step with `NOT_PARAMS` in proxy/view.rs.
const NOT_PARAMS: [&str; 6] = ["model", "messages", "stream", "input", "tools", "fallbacks"];

/// Builds what CEL sees of one chat request. `headers` must have lower-case names.
pub fn request_data(
    head: &RequestHead<'_>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    key: &KeyPlan,
    now: DateTime<Utc>,
) -> RequestData {
    let messages = head
        .messages
        .and_then(|m| serde_json::from_str::<Value>(m.get()).ok())
        .map(|v| role_and_text(&v))
        .unwrap_or_default();
    let prompt = last_user_text(&messages).to_string();
    RequestData {
        model: head.model.to_string(),
        provider: head
            .model
            .split_once('/')
            .map_or(String::new(), |(p, _)| p.to_string()),
        endpoint: "chat".into(),
        stream: head.stream,
        headers: headers.clone(),
        params: params(body),
        messages,
        prompt,
        prompt_tokens: head.messages.map_or(0, |m| chat_prompt_tokens(m) as i64),
        key: key.attrs.clone(),
        usage: key.usage_pct(now.timestamp()),
        now,
        response: None,
        tool: None,
    }
}

/// The text of the last `user` message, `""` when there is none (CEL's `prompt`).
pub fn last_user_text(messages: &[(String, String)]) -> &str {
    messages
        .iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map_or("", |(_, t)| t.as_str())
}

/// `params`: every body field that is not content or a variable of its own, plus
/// `tools_count`.
fn params(body: &[u8]) -> serde_json::Map<String, Value> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return serde_json::Map::new();
    };
    let tools = map
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut out: serde_json::Map<String, Value> = map
        .into_iter()
        .filter(|(k, _)| !NOT_PARAMS.contains(&k.as_str()))
        .collect();
    out.insert("tools_count".into(), Value::from(tools));
    out
}
