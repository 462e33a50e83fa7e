//! The `cache:` section of tollgate.yaml (SPEC §10) and the per-request `x-tollgate-cache*`
//! headers that override it.

use crate::config::units::{parse_duration, DurationStr};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// What the cache does for a request.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    #[default]
    Off,
    /// Identical requests (after canonicalisation) share an answer.
    Exact,
    /// Exact first, then the nearest earlier prompt above `threshold`.
    Semantic,
}

impl FromStr for CacheMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        for (name, mode) in [
            ("off", CacheMode::Off),
            ("exact", CacheMode::Exact),
            ("semantic", CacheMode::Semantic),
        ] {
            if s.eq_ignore_ascii_case(name) {
                return Ok(mode);
            }
        }
        Err(format!(
            "`{s}` is not a cache mode: use off, exact or semantic"
        ))
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMode::Off => "off",
            CacheMode::Exact => "exact",
            CacheMode::Semantic => "semantic",
        })
    }
}

/// Which callers may share entries: each scope id is part of the key.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CacheScope {
    /// Only requests made with the same virtual key.
    #[default]
    Key,
    Team,
    Customer,
    /// Every caller of the gateway.
    Global,
}

/// The configured `cache:` section. Cross-section checks (e.g. `semantic` needs an
/// `embedder`) belong to `compile`, like every other reference check.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub mode: CacheMode,
    /// How long an entry lives unless a request sets `x-tollgate-cache-ttl`.
    #[serde(default = "default_ttl", deserialize_with = "positive_duration")]
    pub ttl: DurationStr,
    /// Cosine similarity a semantic hit needs, in (0, 1].
    #[serde(default = "default_threshold", deserialize_with = "threshold")]
    pub threshold: f32,
    /// Only the last `history` conversation turns form the key (system prompts always do).
    #[serde(default = "default_history", deserialize_with = "history")]
    pub history: usize,
    #[serde(default)]
    pub scope: CacheScope,
    #[serde(default)]
    pub store: CacheStoreConfig,
    /// Hits served from the cache are still counted against request/token limits when true,
    /// so a cache cannot be used to exceed a key's rate limit.
    #[serde(default = "yes")]
    pub count_hits_against_limits: bool,
    /// Semantic layer: accepted and typed now, used once that layer exists.
    #[serde(default)]
    pub embedder: Option<EmbedderConfig>,
    #[serde(default)]
    pub index: Option<IndexConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: CacheMode::Off,
            ttl: default_ttl(),
            threshold: default_threshold(),
            history: default_history(),
            scope: CacheScope::Key,
            store: CacheStoreConfig::default(),
            count_hits_against_limits: true,
            embedder: None,
            index: None,
        }
    }
}

/// The cosine similarity a semantic hit needs unless `cache.threshold` or
/// `x-tollgate-cache-threshold` says otherwise.
pub const DEFAULT_THRESHOLD: f32 = 0.91;

/// Where exact entries live.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CacheStoreConfig {
    /// In process, bounded by entry count; lost on restart, not shared between replicas.
    Memory {
        #[serde(default = "default_max_entries", deserialize_with = "max_entries")]
        max_entries: u64,
    },
    /// Shared by every replica using the same URL.
    Redis {
        #[serde(serialize_with = "crate::config::redact_userinfo")]
        url: String,
    },
}

impl Default for CacheStoreConfig {
    fn default() -> Self {
        CacheStoreConfig::Memory {
            max_entries: default_max_entries(),
        }
    }
}

/// Turns a prompt into a vector for the semantic layer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// A local ONNX sentence-embedding model: a directory (relative to the config file)
    /// holding `model.onnx` and its tokenizer files, and ONNX Runtime's shared library.
    Fastembed {
        model_dir: String,
        /// `libonnxruntime.so`; default: `ORT_DYLIB_PATH`, else the one in `model_dir`.
        #[serde(default)]
        onnxruntime: Option<String>,
    },
}

/// Where the semantic layer keeps its vectors.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndexConfig {
    /// In process, bounded by entry count.
    Embedded {
        #[serde(default = "default_index_entries")]
        max_entries: usize,
    },
    /// Redis vector sets; without `url`, the exact store's Redis.
    Redis {
        #[serde(default, serialize_with = "redact_userinfo_opt")]
        url: Option<String>,
        #[serde(default)]
        collection: Option<String>,
    },
    /// A Qdrant collection, over gRPC (`url` is the gRPC port, 6334 by default).
    Qdrant {
        url: String,
        #[serde(default = "default_collection")]
        collection: String,
        /// For a Qdrant that requires one (e.g. `${QDRANT_API_KEY}`).
        #[serde(default, serialize_with = "crate::config::redact_opt")]
        api_key: Option<String>,
    },
}

fn default_index_entries() -> usize {
    super::semantic::DEFAULT_INDEX_ENTRIES
}

impl IndexConfig {
    pub fn kind_name(&self) -> &'static str {
        match self {
            IndexConfig::Embedded { .. } => "embedded",
            IndexConfig::Redis { .. } => "redis",
            IndexConfig::Qdrant { .. } => "qdrant",
        }
    }
}

fn redact_userinfo_opt<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => crate::config::redact_userinfo(url, s),
        None => s.serialize_none(),
    }
}

fn default_ttl() -> DurationStr {
    DurationStr(Duration::from_secs(3600))
}
fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}
fn default_history() -> usize {
    3
}
fn default_max_entries() -> u64 {
    100_000
}
fn default_collection() -> String {
    "tollgate".into()
}
fn yes() -> bool {
    true
}

/// The one rule for thresholds, shared by the config and the header.
fn check_threshold(t: f32) -> Result<f32, String> {
    if t > 0.0 && t <= 1.0 {
        Ok(t)
    } else {
        Err(format!(
            "threshold {t} is out of range: a cosine similarity above 0 and at most 1"
        ))
    }
}

/// A zero TTL would store entries nobody can read (and Redis rejects `PX 0`).
fn check_ttl(d: Duration, text: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("cache ttl `{text}` must be longer than zero"))
    } else {
        Ok(d)
    }
}

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<DurationStr, D::Error> {
    let text = String::deserialize(d)?;
    let parsed = parse_duration(&text).map_err(de::Error::custom)?;
    check_ttl(parsed, &text)
        .map(DurationStr)
        .map_err(de::Error::custom)
}

fn threshold<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    check_threshold(f32::deserialize(d)?).map_err(de::Error::custom)
}

fn history<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(de::Error::custom(
            "history must be at least 1: the last message is what the answer depends on most",
        )),
        n => Ok(n),
    }
}

fn max_entries<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match u64::deserialize(d)? {
        0 => Err(de::Error::custom(
            "max_entries must be at least 1 (use `mode: off` to disable the cache)",
        )),
        n => Ok(n),
    }
}

/// Request header names (lowercase, as `http` stores them).
pub const HEADER_MODE: &str = "x-tollgate-cache";
pub const HEADER_TTL: &str = "x-tollgate-cache-ttl";
pub const HEADER_THRESHOLD: &str = "x-tollgate-cache-threshold";
pub const HEADER_NAMESPACE: &str = "x-tollgate-cache-namespace";

/// Longest namespace accepted: it is hashed, not stored, but a bound keeps a header from
/// costing more than the request it rides on.
pub const MAX_NAMESPACE_BYTES: usize = 256;

/// Per-request overrides of the `cache:` section; `None` means "as configured".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheDirectives {
    pub mode: Option<CacheMode>,
    pub ttl: Option<Duration>,
    pub threshold: Option<f32>,
    /// Entries are shared only between requests with the same namespace (none included).
    pub namespace: Option<String>,
}

/// A bad `x-tollgate-cache*` header: the caller answers 400 `invalid_request` with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid header {header}: {reason}")]
pub struct DirectiveError {
    pub header: &'static str,
    pub reason: String,
}

impl CacheDirectives {
    /// Reads the four headers; absent headers leave the configured value in force.
    pub fn from_headers(headers: &http::HeaderMap) -> Result<CacheDirectives, DirectiveError> {
        let mut d = CacheDirectives::default();
        if let Some(v) = header_text(headers, HEADER_MODE)? {
            d.mode = Some(v.parse().map_err(|reason| bad(HEADER_MODE, reason))?);
        }
        if let Some(v) = header_text(headers, HEADER_TTL)? {
            let ttl = parse_duration(v.trim()).map_err(|reason| bad(HEADER_TTL, reason))?;
            d.ttl = Some(check_ttl(ttl, v.trim()).map_err(|reason| bad(HEADER_TTL, reason))?);
        }
        if let Some(v) = header_text(headers, HEADER_THRESHOLD)? {
            let t: f32 = v.trim().parse().map_err(|_| {
                bad(
                    HEADER_THRESHOLD,
                    format!("`{}` is not a number (e.g. 0.95)", v.trim()),
                )
            })?;
            d.threshold = Some(check_threshold(t).map_err(|r| bad(HEADER_THRESHOLD, r))?);
        }
        if let Some(v) = header_text(headers, HEADER_NAMESPACE)? {
            let ns = v.trim();
            if ns.is_empty() {
                return Err(bad(HEADER_NAMESPACE, "must not be empty".into()));
            }
            if ns.len() > MAX_NAMESPACE_BYTES {
                return Err(bad(
                    HEADER_NAMESPACE,
                    format!("longer than {MAX_NAMESPACE_BYTES} bytes"),
                ));
            }
            d.namespace = Some(ns.to_string());
        }
        Ok(d)
    }
}

fn bad(header: &'static str, reason: String) -> DirectiveError {
    DirectiveError { header, reason }
}

/// The header's value as text; a repeated header is ambiguous, so it is an error too.
fn header_text<'h>(
    headers: &'h http::HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, DirectiveError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(name, "given more than once".into()));
    }
    // UTF-8 rather than `to_str`'s visible ASCII: a namespace may be any text.
    std::str::from_utf8(first.as_bytes())
        .map(Some)
        .map_err(|_| bad(name, "not UTF-8 text".into()))
}

/// What applies to one request: the configuration with its directives laid over it.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveCache {
    pub mode: CacheMode,
    pub ttl: Duration,
    pub threshold: f32,
}

impl CacheConfig {
    /// A request may choose any mode, including turning caching on when the configured mode
    /// is `off`: entries stay within its scope, so it can only share with callers the
    /// operator already allowed.
    pub fn effective(&self, d: &CacheDirectives) -> EffectiveCache {
        EffectiveCache {
            mode: d.mode.unwrap_or(self.mode),
            ttl: d.ttl.unwrap_or(self.ttl.0),
            threshold: d.threshold.unwrap_or(self.threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn parse(yaml: &str) -> Result<CacheConfig, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = parse("{}").unwrap();
        assert_eq!(c.mode, CacheMode::Off);
        assert_eq!(c.ttl.0, Duration::from_secs(3600));
        assert_eq!(c.threshold, DEFAULT_THRESHOLD);
        assert_eq!(c.history, 3);
        assert_eq!(c.scope, CacheScope::Key);
        assert_eq!(
            c.store,
            CacheStoreConfig::Memory {
                max_entries: 100_000
            }
        );
        assert!(c.count_hits_against_limits);
        assert!(c.embedder.is_none() && c.index.is_none());
    }

    #[test]
    fn the_spec_example_parses() {
        let c = parse(
            "mode: semantic\nttl: 1h\nthreshold: 0.92\nhistory: 3\nscope: team\n\
             embedder: {kind: fastembed, model_dir: ./models/all-minilm-l6-v2}\n\
             store: {kind: redis, url: 'redis://u:pw@127.0.0.1:6379/0'}\n\
             index: {kind: qdrant, url: 'http://127.0.0.1:6334'}\n",
        )
        .unwrap();
        assert_eq!(c.mode, CacheMode::Semantic);
        assert_eq!(c.scope, CacheScope::Team);
        assert_eq!(
            c.index,
            Some(IndexConfig::Qdrant {
                url: "http://127.0.0.1:6334".into(),
                collection: "tollgate".into(),
                api_key: None,
            })
        );
        let with_key =
            parse("index: {kind: qdrant, url: 'http://q:6334', api_key: sekrit}").unwrap();
        assert!(!serde_json::to_string(&with_key).unwrap().contains("sekrit"));
        // The password never leaves the process through /admin/config.
        let shown = serde_json::to_string(&c).unwrap();
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(parse("index: {kind: embedded}").is_ok());
        assert!(parse("index: {kind: redis, collection: c}").is_ok());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (yaml, says) in [
            ("threshold: 0", "out of range"),
            ("threshold: 1.5", "out of range"),
            ("history: 0", "at least 1"),
            ("ttl: 0s", "longer than zero"),
            ("ttl: 5", "needs a unit"),
            ("mode: fuzzy", "unknown variant"),
            ("scope: planet", "unknown variant"),
            ("store: {kind: memory, max_entries: 0}", "at least 1"),
            ("store: {kind: redis}", "missing field `url`"),
            ("store: {kind: disk}", "unknown variant"),
            ("colour: red", "unknown field"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(says), "{yaml}: {err}");
        }
        assert_eq!(parse("threshold: 1").unwrap().threshold, 1.0);
    }

    #[test]
    fn headers_override_the_config() {
        let d = CacheDirectives::from_headers(&headers(&[
            (HEADER_MODE, "Exact"),
            (HEADER_TTL, "10m"),
            (HEADER_THRESHOLD, "0.95"),
            (HEADER_NAMESPACE, " tenant-7 "),
        ]))
        .unwrap();
        assert_eq!(
            d,
            CacheDirectives {
                mode: Some(CacheMode::Exact),
                ttl: Some(Duration::from_secs(600)),
                threshold: Some(0.95),
                namespace: Some("tenant-7".into()),
            }
        );
        let eff = CacheConfig::default().effective(&d);
        assert_eq!(eff.mode, CacheMode::Exact);
        assert_eq!(eff.ttl, Duration::from_secs(600));
        let none = CacheDirectives::from_headers(&HeaderMap::new()).unwrap();
        assert_eq!(none, CacheDirectives::default());
        assert_eq!(CacheConfig::default().effective(&none).mode, CacheMode::Off);
    }

    #[test]
    fn bad_headers_name_the_header_and_the_problem() {
        for (pairs, header, says) in [
            (
                vec![(HEADER_MODE, "sometimes")],
                HEADER_MODE,
                "not a cache mode",
            ),
            (vec![(HEADER_TTL, "10")], HEADER_TTL, "needs a unit"),
            (vec![(HEADER_TTL, "0ms")], HEADER_TTL, "longer than zero"),
            (vec![(HEADER_TTL, "soon")], HEADER_TTL, "invalid duration"),
            (
                vec![(HEADER_THRESHOLD, "high")],
                HEADER_THRESHOLD,
                "not a number",
            ),
            (
                vec![(HEADER_THRESHOLD, "1.01")],
                HEADER_THRESHOLD,
                "out of range",
            ),
            (
                vec![(HEADER_THRESHOLD, "NaN")],
                HEADER_THRESHOLD,
                "out of range",
            ),
            (vec![(HEADER_NAMESPACE, "  ")], HEADER_NAMESPACE, "empty"),
            (
                vec![(HEADER_MODE, "off"), (HEADER_MODE, "exact")],
                HEADER_MODE,
                "more than once",
            ),
        ] {
            let err = CacheDirectives::from_headers(&headers(&pairs)).unwrap_err();
            assert_eq!(err.header, header);
            assert!(err.to_string().contains(says), "{pairs:?}: {err}");
        }
        let long = "n".repeat(MAX_NAMESPACE_BYTES + 1);
        let err = CacheDirectives::from_headers(&headers(&[(HEADER_NAMESPACE, &long)]));
        assert!(err.unwrap_err().reason.contains("longer than"));
        let mut h = HeaderMap::new();
        h.insert(
            HEADER_NAMESPACE,
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        let d = CacheDirectives::from_headers(&h).unwrap();
        assert_eq!(d.namespace.as_deref(), Some("caf\u{e9}"));
        h.insert(
            HEADER_NAMESPACE,
            HeaderValue::from_bytes(b"caf\xff").unwrap(),
        );
        let err = CacheDirectives::from_headers(&h).unwrap_err();
        assert!(err.reason.contains("UTF-8"));
    }
}
