//! What an expression sees of a request: the [`RequestView`] trait the proxy implements over its
//! own parsed request, and [`Bindings`], which turns a view into CEL values lazily — a variable
//! is built the first time an interpreted expression reads it, once per request, and never for
//! natively evaluated shapes.

use super::vars::Var;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// Static attributes of a virtual key: the part of `key` that partial evaluation folds.
/// In CEL, a missing team or customer reads as `""` (like `provider`), so `key.team == "ml"` is
/// simply false for a key without a team rather than an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyAttrs {
    pub id: Arc<str>,
    pub team: Option<Arc<str>>,
    pub customer: Option<Arc<str>>,
    pub metadata: BTreeMap<String, String>,
}

impl KeyAttrs {
    pub fn team_str(&self) -> &str {
        self.team.as_deref().unwrap_or("")
    }

    pub fn customer_str(&self) -> &str {
        self.customer.as_deref().unwrap_or("")
    }
}

/// `usage`: the highest use across the key's tiers, each 0–100 (doubles in CEL).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsagePct {
    pub budget_pct: f64,
    pub requests_pct: f64,
    pub tokens_pct: f64,
}

/// `response`, for output-stage expressions.
#[derive(Debug, Clone, Copy)]
pub struct ResponseAttrs<'a> {
    pub content: &'a str,
    pub finish_reason: &'a str,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub provider: &'a str,
    pub model: &'a str,
}

/// `tool`, for MCP tool calls.
#[derive(Debug, Clone, Copy)]
pub struct ToolAttrs<'a> {
    pub server: &'a str,
    pub name: &'a str,
    pub arguments: &'a serde_json::Value,
}

/// Lazy access to one request's variables (SPEC §6). Each method is called only when an
/// expression reads that variable, so an implementation may compute on demand (count prompt
/// tokens, read usage counters). `Sync` because CEL's resolver must be.
pub trait RequestView: Sync {
    fn model(&self) -> &str;
    /// `""` when the model had no `provider/` prefix.
    fn provider(&self) -> &str;
    /// `chat`, `responses`, `embeddings`, `messages`, `generate` or `mcp`.
    fn endpoint(&self) -> &str;
    fn stream(&self) -> bool;
    /// One header by lower-case name; `None` when absent (or not valid UTF-8). Must agree with
    /// `visit_headers`: native predicates read this, interpreted expressions the whole map.
    fn header(&self, name: &str) -> Option<&str>;
    /// Every header, lower-case names, for interpreted expressions that read the whole map.
    fn visit_headers<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str));
    /// `params`: temperature, max_tokens, top_p, tools_count, ...
    fn visit_params<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s serde_json::Value));
    /// `messages`: (role, text content) in order.
    fn visit_messages<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str));
    /// The last user message's text.
    fn prompt(&self) -> &str;
    fn prompt_tokens(&self) -> i64;
    fn key(&self) -> &KeyAttrs;
    fn usage(&self) -> UsagePct;
    fn now(&self) -> DateTime<Utc>;
    /// Output stage only; `None` makes an expression that reads `response` a runtime error.
    fn response(&self) -> Option<ResponseAttrs<'_>> {
        None
    }
    /// MCP only; `None` makes an expression that reads `tool` a runtime error.
    fn tool(&self) -> Option<ToolAttrs<'_>> {
        None
    }
}

/// A request held as plain data: for `tollgate test`, `explain`, and tests.
#[derive(Debug, Clone)]
pub struct RequestData {
    pub model: String,
    pub provider: String,
    pub endpoint: String,
    pub stream: bool,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// (role, content).
    pub messages: Vec<(String, String)>,
    pub prompt: String,
    pub prompt_tokens: i64,
    pub key: KeyAttrs,
    pub usage: UsagePct,
    pub now: DateTime<Utc>,
    pub response: Option<ResponseData>,
    pub tool: Option<ToolData>,
}

impl Default for RequestData {
    fn default() -> Self {
        RequestData {
            model: String::new(),
            provider: String::new(),
            endpoint: "chat".into(),
            stream: false,
            headers: BTreeMap::new(),
            params: serde_json::Map::new(),
            messages: Vec::new(),
            prompt: String::new(),
            prompt_tokens: 0,
            key: KeyAttrs::default(),
            usage: UsagePct::default(),
            now: DateTime::UNIX_EPOCH,
            response: None,
            tool: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ResponseData {
    pub content: String,
    pub finish_reason: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, Default)]
pub struct ToolData {
    pub server: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

impl RequestView for RequestData {
    fn model(&self) -> &str {
        &self.model
    }
    fn provider(&self) -> &str {
        &self.provider
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn stream(&self) -> bool {
        self.stream
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn visit_headers<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.headers.iter().for_each(|(k, v)| f(k, v));
    }
    fn visit_params<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s serde_json::Value)) {
        self.params.iter().for_each(|(k, v)| f(k, v));
    }
    fn visit_messages<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.messages.iter().for_each(|(r, c)| f(r, c));
    }
    fn prompt(&self) -> &str {
        &self.prompt
    }
    fn prompt_tokens(&self) -> i64 {
        self.prompt_tokens
    }
    fn key(&self) -> &KeyAttrs {
        &self.key
    }
    fn usage(&self) -> UsagePct {
        self.usage
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
    fn response(&self) -> Option<ResponseAttrs<'_>> {
        self.response.as_ref().map(|r| ResponseAttrs {
            content: &r.content,
            finish_reason: &r.finish_reason,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            provider: &r.provider,
            model: &r.model,
        })
    }
    fn tool(&self) -> Option<ToolAttrs<'_>> {
        self.tool.as_ref().map(|t| ToolAttrs {
            server: &t.server,
            name: &t.name,
            arguments: &t.arguments,
        })
    }
}

/// One request's variables as CEL sees them. Create one per request and evaluate every
/// expression against it: each variable is converted at most once, on first read, and strings
/// borrow the view's memory rather than copying it.
pub struct Bindings<'a> {
    pub(crate) view: &'a dyn RequestView,
    cells: [OnceLock<Option<Box<dyn Val + 'a>>>; Var::COUNT],
}

impl<'a> Bindings<'a> {
    pub fn new(view: &'a dyn RequestView) -> Self {
        Bindings {
            view,
            cells: Default::default(),
        }
    }

    pub fn view(&self) -> &'a dyn RequestView {
        self.view
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let var = Var::from_name(variable)?;
        let cell = self.cells[var as usize].get_or_init(|| build(self.view, var));
        cell.as_deref().map(CowVal::Borrowed)
    }
}

type BoxVal<'a> = Box<dyn Val + 'a>;

fn string(s: &str) -> BoxVal<'_> {
    Box::new(CelString::from(s))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, BoxVal<'a>)>) -> BoxVal<'a> {
    let entries: HashMap<CelMapKey<'a>, BoxVal<'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(entries))
}

fn build<'a>(view: &'a dyn RequestView, var: Var) -> Option<BoxVal<'a>> {
    Some(match var {
        Var::Model => string(view.model()),
        Var::Provider => string(view.provider()),
        Var::Endpoint => string(view.endpoint()),
        Var::Stream => Box::new(CelBool::from(view.stream())),
        Var::Prompt => string(view.prompt()),
        Var::PromptTokens => Box::new(CelInt::from(view.prompt_tokens())),
        Var::Headers => {
            let mut entries = Vec::new();
            view.visit_headers(&mut |k, v| entries.push((k, string(v))));
            map(entries)
        }
        Var::Params => {
            let mut entries = Vec::new();
            view.visit_params(&mut |k, v| entries.push((k, json(v))));
            map(entries)
        }
        Var::Messages => {
            let mut items: Vec<BoxVal<'a>> = Vec::new();
            view.visit_messages(&mut |role, content| {
                items.push(map([("role", string(role)), ("content", string(content))]));
            });
            Box::new(CelList::from(items))
        }
        Var::Key => {
            let key = view.key();
            let metadata = map(key.metadata.iter().map(|(k, v)| (k.as_str(), string(v))));
            map([
                ("id", string(&key.id)),
                ("team", string(key.team_str())),
                ("customer", string(key.customer_str())),
                ("metadata", metadata),
            ])
        }
        Var::Usage => {
            let u = view.usage();
            map([
                ("budget_pct", double(u.budget_pct)),
                ("requests_pct", double(u.requests_pct)),
                ("tokens_pct", double(u.tokens_pct)),
            ])
        }
        Var::Now => Box::new(CelTimestamp::from(view.now().fixed_offset())),
        Var::Response => {
            let r = view.response()?;
            map([
                ("content", string(r.content)),
                ("finish_reason", string(r.finish_reason)),
                (
                    "prompt_tokens",
                    Box::new(CelInt::from(r.prompt_tokens)) as BoxVal,
                ),
                (
                    "completion_tokens",
                    Box::new(CelInt::from(r.completion_tokens)),
                ),
                ("provider", string(r.provider)),
                ("model", string(r.model)),
            ])
        }
        Var::Tool => {
            let t = view.tool()?;
            map([
                ("server", string(t.server)),
                ("name", string(t.name)),
                ("arguments", json(t.arguments)),
            ])
        }
    })
}

fn double(x: f64) -> BoxVal<'static> {
    Box::new(CelDouble::from(x))
}

/// JSON as CEL: integers stay `int` (or `uint` beyond i64), other numbers are `double`.
fn json(v: &serde_json::Value) -> BoxVal<'_> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => double(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => string(s),
        J::Array(items) => Box::new(CelList::from(items.iter().map(json).collect::<Vec<_>>())),
        J::Object(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), json(v)))),
    }
}
