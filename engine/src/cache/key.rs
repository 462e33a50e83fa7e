//! The exact-cache key: a hash of the canonical form of a request, computed while walking the
//! parsed body (no canonical string is built).
//!
//! Canonical means: object keys in sorted order at every depth, `null` top-level parameters
//! treated as absent, integral numbers equal whatever their spelling (`1`, `1.0`), and in the
//! conversation every string trimmed with inner whitespace runs collapsed to one space. So two
//! requests differing only in field order or incidental whitespace share an entry.
//!
//! The hash is SHA-256 truncated to 128 bits rather than xxh3-128. Entries are shared between
//! callers (scope `team`, `customer`, `global`), so a caller who could craft a second request
//! with the same key as someone else's could plant the answer that other caller receives.
//! xxh3 is not built to resist crafted collisions; SHA-256 is, and 128 bits of it still need
//! ~2^128 work for a second preimage. It costs a few microseconds on a typical body, against
//! an upstream call of hundreds of milliseconds.
//!
//! The walk is built so the encoding is injective: every value starts with a type tag, strings
//! end with 0xFF (never present in UTF-8), and containers are bracketed.

use super::config::CacheScope;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use std::fmt;

/// Top-level fields that do not change the answer, left out of the key so they do not split
/// the cache: caller identity and bookkeeping (`user`, `metadata`, `safety_identifier`),
/// provider-side storage and prompt-cache hints (`store`, `prompt_cache_key`,
/// `prompt_cache_retention`) and latency tiers (`service_tier`). `model` is not listed: it is
/// a key component of its own, passed by the caller (Gemini carries it in the path).
///
/// `stream` and `stream_options` are deliberately *kept*: a streamed entry is a recording of
/// SSE bytes and a non-streamed one is a JSON body, and `stream_options.include_usage` changes
/// the recorded events, so requests differing there cannot share a replay.
pub const EXCLUDED_PARAMS: &[&str] = &[
    "model",
    "user",
    "metadata",
    "safety_identifier",
    "store",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
];

/// Fields holding the conversation rather than parameters, across the OpenAI (chat,
/// completions, responses, embeddings), Anthropic and Gemini formats. Their strings are
/// whitespace-normalised.
const CONVERSATION_FIELDS: &[&str] = &[
    "messages",
    "contents",
    "system",
    "systemInstruction",
    "system_instruction",
    "instructions",
    "input",
    "prompt",
];

/// Conversation fields that are lists of turns, where only the last `history` turns count.
/// `input`/`prompt` are not: as a list they are independent inputs (embeddings, batched
/// completions), and dropping some would make different requests collide.
const TURN_FIELDS: &[&str] = &["messages", "contents"];

/// Roles whose messages are instructions, not turns: always in the key and not counted in
/// `history`, so two long conversations with different system prompts never collide.
const INSTRUCTION_ROLES: &[&str] = &["system", "developer"];

/// Keys ignored anywhere inside the conversation: provider prompt-caching hints that do not
/// change the answer.
const IGNORED_CONVERSATION_KEYS: &[&str] = &["cache_control"];

/// Truncated SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash128(pub [u8; 16]);

impl Hash128 {
    pub fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Reads back what `Display` wrote (32 hex digits); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Hash128> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Hash128(out))
    }

    fn of(hasher: Sha256) -> Hash128 {
        let full = hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Hash128(out)
    }
}

impl fmt::Display for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Who may share an entry, resolved for one request from `CacheScope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeId<'a> {
    Key(&'a str),
    Team(&'a str),
    Customer(&'a str),
    Global,
}

impl CacheScope {
    /// The scope id of a caller. A key without a team (or a team without a customer) falls
    /// back to the narrower scope, never to a wider one.
    pub fn id<'a>(
        self,
        key: &'a str,
        team: Option<&'a str>,
        customer: Option<&'a str>,
    ) -> ScopeId<'a> {
        match (self, team, customer) {
            (CacheScope::Global, _, _) => ScopeId::Global,
            (CacheScope::Customer, _, Some(c)) => ScopeId::Customer(c),
            (CacheScope::Customer | CacheScope::Team, Some(t), _) => ScopeId::Team(t),
            _ => ScopeId::Key(key),
        }
    }
}

/// Everything a key is made of.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// The client-facing endpoint, e.g. the route path `/v1/chat/completions` or
    /// `/anthropic/v1/messages`: it names the format, so formats never share an entry.
    pub endpoint: &'a str,
    /// The model as the client asked for it (alias, bare or `provider/model`).
    pub model: &'a str,
    /// The parsed request body.
    pub body: &'a Value,
    pub scope: ScopeId<'a>,
    pub namespace: Option<&'a str>,
    /// Turns of the conversation that count (`cache.history`, at least 1).
    pub history: usize,
}

/// The hashes of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The exact-cache key: partition + the conversation in scope.
    pub exact: Hash128,
    /// Endpoint + model + parameters, without conversation, scope or namespace: what a
    /// semantic entry is tagged with so a similar prompt never crosses models or parameters.
    pub params: Hash128,
    /// `params` + scope + namespace: the set of entries a request may be answered from. A
    /// semantic index filters its neighbours by this.
    pub partition: Hash128,
}

impl CacheKey {
    pub fn new(input: &KeyInput<'_>) -> CacheKey {
        let empty = Map::new();
        let fields = match input.body {
            Value::Object(map) => map,
            _ => &empty,
        };

        let mut params = Canon::new(b"tollgate.cache.params.v1");
        params.str(input.endpoint);
        params.str(input.model);
        params.open(b'{');
        for_each_sorted(fields, |name, value| {
            if is_param(name) && !value.is_null() && !is_default_stream_flag(name, value) {
                params.str(name);
                params.value(value, Text::Exact);
            }
        });
        params.open(b'}');
        let params = Hash128::of(params.0);

        let mut partition = Canon::new(b"tollgate.cache.partition.v1");
        partition.raw(&params.0);
        match input.scope {
            ScopeId::Key(id) => partition.tagged(b'k', id),
            ScopeId::Team(id) => partition.tagged(b't', id),
            ScopeId::Customer(id) => partition.tagged(b'c', id),
            ScopeId::Global => partition.raw(b"g"),
        }
        match input.namespace {
            Some(ns) => partition.tagged(b'N', ns),
            None => partition.raw(b"-"),
        }
        let partition = Hash128::of(partition.0);

        let mut exact = Canon::new(b"tollgate.cache.exact.v1");
        exact.raw(&partition.0);
        if !matches!(input.body, Value::Object(_)) {
            // Not an object: no parameters to tell apart, so the whole body is the prompt.
            exact.value(input.body, Text::Normalised);
        }
        for_each_sorted(fields, |name, value| {
            if !CONVERSATION_FIELDS.contains(&name) || value.is_null() {
                return;
            }
            exact.str(name);
            match value {
                Value::Array(turns) if TURN_FIELDS.contains(&name) => {
                    exact.turns(turns, input.history.max(1))
                }
                _ => exact.value(value, Text::Normalised),
            }
        });
        CacheKey {
            exact: Hash128::of(exact.0),
            params,
            partition,
        }
    }
}

impl CacheKey {
    /// The key whose semantic partition also holds the numbers `text` writes in digits, so a
    /// semantic hit never crosses them: questions that differ only in a number (an order id,
    /// an amount, a version) embed almost identically, and no threshold tells them apart.
    /// Text without digits keeps the partition, so it is still matched by meaning alone.
    pub fn with_digits_of(self, text: &str) -> CacheKey {
        let mut runs = crate::cache::semantic::digit_runs(text).peekable();
        if runs.peek().is_none() {
            return self;
        }
        let mut partition = Canon::new(b"tollgate.cache.digits.v1");
        partition.raw(&self.partition.0);
        for run in runs {
            partition.str(run);
        }
        CacheKey {
            partition: Hash128::of(partition.0),
            ..self
        }
    }
}

fn is_param(name: &str) -> bool {
    !CONVERSATION_FIELDS.contains(&name) && !EXCLUDED_PARAMS.contains(&name)
}

/// `stream: false` asks for the same thing as no `stream`.
fn is_default_stream_flag(name: &str, value: &Value) -> bool {
    name == "stream" && *value == Value::Bool(false)
}

/// Calls `f` on the entries in key order. serde_json's map is a BTreeMap (already sorted)
/// unless some crate in the build turns on `preserve_order`; only then is a sort needed.
fn for_each_sorted<'v>(map: &'v Map<String, Value>, mut f: impl FnMut(&'v str, &'v Value)) {
    let mut previous: Option<&str> = None;
    let sorted = map.keys().all(|k| {
        let in_order = previous.is_none_or(|p| p < k.as_str());
        previous = Some(k);
        in_order
    });
    if sorted {
        map.iter().for_each(|(k, v)| f(k, v));
    } else {
        let mut entries: SmallVec<[(&str, &Value); 16]> =
            map.iter().map(|(k, v)| (k.as_str(), v)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.into_iter().for_each(|(k, v)| f(k, v));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Parameters: a stop sequence of `"\n"` is not one of `" "`.
    Exact,
    /// Conversation: trimmed, whitespace runs collapsed to one space.
    Normalised,
}

/// An injective encoding of JSON values fed straight into the hasher.
struct Canon(Sha256);

impl Canon {
    fn new(domain: &[u8]) -> Canon {
        let mut c = Canon(Sha256::new());
        c.raw(domain);
        c.raw(&[0xFF]);
        c
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn open(&mut self, bracket: u8) {
        self.0.update([bracket]);
    }

    fn str(&mut self, s: &str) {
        self.0.update(b"s");
        self.0.update(s.as_bytes());
        self.0.update([0xFF]);
    }

    fn tagged(&mut self, tag: u8, s: &str) {
        self.0.update([tag]);
        self.str(s);
    }

    fn text(&mut self, s: &str, text: Text) {
        match text {
            Text::Exact => self.str(s),
            Text::Normalised => {
                self.0.update(b"s");
                for (i, word) in s.split_whitespace().enumerate() {
                    if i > 0 {
                        self.0.update(b" ");
                    }
                    self.0.update(word.as_bytes());
                }
                self.0.update([0xFF]);
            }
        }
    }

    fn number(&mut self, n: &serde_json::Number) {
        // Integral values hash as integers whatever their spelling; others by their bits.
        const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53
        let int = n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from));
        let int = int.or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < EXACT_INT)
                .map(|f| f as i128)
        });
        match (int, n.as_f64()) {
            (Some(i), _) => {
                self.0.update(b"i");
                self.0.update(i.to_le_bytes());
            }
            (None, Some(f)) => {
                self.0.update(b"d");
                self.0.update(f.to_bits().to_le_bytes());
            }
            // Arbitrary-precision numbers (not enabled in this build): their text.
            (None, None) => self.tagged(b'x', &n.to_string()),
        }
    }

    fn value(&mut self, v: &Value, text: Text) {
        match v {
            Value::Null => self.0.update(b"n"),
            Value::Bool(true) => self.0.update(b"t"),
            Value::Bool(false) => self.0.update(b"f"),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.text(s, text),
            Value::Array(items) => {
                self.open(b'[');
                items.iter().for_each(|item| self.value(item, text));
                self.open(b']');
            }
            Value::Object(map) => {
                self.open(b'{');
                for_each_sorted(map, |k, v| {
                    if text == Text::Normalised && IGNORED_CONVERSATION_KEYS.contains(&k) {
                        return;
                    }
                    self.str(k);
                    self.value(v, text);
                });
                self.open(b'}');
            }
        }
    }

    /// Instruction messages wherever they are, then the last `history` other turns.
    fn turns(&mut self, turns: &[Value], history: usize) {
        let is_instruction = |m: &Value| {
            m.get("role")
                .and_then(Value::as_str)
                .is_some_and(|r| INSTRUCTION_ROLES.contains(&r))
        };
        let others = turns.iter().filter(|m| !is_instruction(m)).count();
        let mut skip = others.saturating_sub(history);
        self.open(b'[');
        for m in turns {
            if is_instruction(m) {
                self.value(m, Text::Normalised);
            } else if skip > 0 {
                skip -= 1;
            } else {
                self.value(m, Text::Normalised);
            }
        }
        self.open(b']');
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
