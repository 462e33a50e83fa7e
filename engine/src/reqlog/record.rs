//! One request as the request log keeps it: who called, what was asked, what was served,
//! what it cost and how long it took.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// One proxied (or refused) request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The `x-tollgate-request-id` the client saw.
    pub request_id: String,
    /// When the request arrived. Kept to the microsecond.
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Virtual key id (never the key itself); `None` when the request had no valid key.
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub customer: Option<String>,
    /// `chat`, `responses`, `embeddings`, `messages`, `generate`, `mcp`, ...
    pub endpoint: String,
    /// The `model` of the request body, as the client wrote it (alias or `provider/model`).
    pub requested_model: Option<String>,
    /// Provider that served the answer; `None` when no upstream answered.
    pub provider: Option<String>,
    /// Model that served the answer, without the provider prefix.
    pub model: Option<String>,
    /// Every upstream attempt in order, retries and fallbacks included.
    pub attempts: Vec<AttemptRecord>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// The stable error `type` (SPEC §4) when the request failed.
    pub error_type: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the provider served from its prompt cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
    pub cost_usd: f64,
    pub cache: CacheResult,
    /// Guardrails that acted on this request (flag, redact or block).
    pub guardrails: Vec<GuardrailRecord>,
    /// Arrival to last byte sent to the client.
    pub total_us: u64,
    /// Time spent waiting on providers, summed over attempts; `None` when no upstream call was made.
    pub upstream_us: Option<u64>,
    /// Arrival to the first byte sent to the client; `None` when nothing was sent.
    pub ttft_us: Option<u64>,
    /// Time spent inside the gateway: total minus upstream wait.
    pub overhead_us: u64,
    pub stream: bool,
    /// The client went away before the response was complete.
    pub client_disconnected: bool,
    /// Only kept with `logs.bodies: true`.
    pub request_body: Option<String>,
    /// Only kept with `logs.bodies: true`.
    pub response_body: Option<String>,
    /// MCP tool calls: what was called, with which arguments, and what came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRecord>,
}

/// The audit part of an MCP tool call's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRecord {
    pub server: String,
    /// The tool's name on its server.
    pub name: String,
    /// As sent to the server: after input redaction by guardrails.
    pub arguments: serde_json::Value,
    /// Bytes of the result as returned to the client; `None` when no result was returned.
    pub result_bytes: Option<u64>,
    /// The tool itself reported failure (`isError: true`).
    pub is_error: bool,
}

/// One call to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub provider: String,
    pub model: String,
    /// Upstream HTTP status; `None` when no response arrived (connect error, timeout).
    pub status: Option<u16>,
    /// What went wrong, in words safe to show an operator (no provider keys).
    pub error: Option<String>,
}

/// One guardrail action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailRecord {
    pub name: String,
    /// `block`, `redact` or `flag`.
    pub action: String,
}

/// What the response cache did for this request (the `x-tollgate-cache` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheResult {
    #[default]
    Miss,
    HitExact,
    HitSemantic,
    Off,
}

impl CacheResult {
    pub const ALL: [CacheResult; 4] = [
        CacheResult::Miss,
        CacheResult::HitExact,
        CacheResult::HitSemantic,
        CacheResult::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Miss => "miss",
            CacheResult::HitExact => "hit-exact",
            CacheResult::HitSemantic => "hit-semantic",
            CacheResult::Off => "off",
        }
    }
}

impl fmt::Display for CacheResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CacheResult {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        CacheResult::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// Microseconds since the Unix epoch: how the store keeps times, so they sort and compare as
/// integers.
pub fn to_unix_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_unix_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// RFC 3339 with microseconds and `Z`, the precision the store keeps.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Serde adapter: RFC 3339 strings in JSON, any offset accepted on input.
pub(crate) mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    /// The same for optional times (`since`/`until` in answers).
    pub fn serialize_opt<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(*t)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_snake_case_names_rfc3339_times_and_kebab_cache_results() {
        let rec = LogRecord {
            request_id: "req-1".into(),
            time: from_unix_micros(1_763_807_400_123_456),
            key_id: Some("vk-ml".into()),
            team: None,
            customer: None,
            endpoint: "chat".into(),
            requested_model: Some("fast".into()),
            provider: Some("openai".into()),
            model: Some("gpt-4o-mini".into()),
            attempts: vec![],
            status: 200,
            error_type: None,
            prompt_tokens: 1,
            completion_tokens: 2,
            cached_tokens: 0,
            cost_usd: 0.5,
            cache: CacheResult::HitSemantic,
            guardrails: vec![],
            total_us: 10,
            upstream_us: None,
            ttft_us: None,
            overhead_us: 10,
            stream: false,
            client_disconnected: false,
            request_body: None,
            response_body: None,
            tool: None,
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["time"], "2025-11-22T10:30:00.123456Z");
        assert_eq!(json["cache"], "hit-semantic");
        assert_eq!(json["requested_model"], "fast");
        assert_eq!(json["client_disconnected"], false);
        let back: LogRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn cache_results_parse_from_their_header_names() {
        for c in CacheResult::ALL {
            assert_eq!(c.as_str().parse::<CacheResult>(), Ok(c));
        }
        assert!("hit".parse::<CacheResult>().is_err());
    }
}
