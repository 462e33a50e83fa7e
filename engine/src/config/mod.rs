//! `tollgate.yaml`: serde types as the user writes them, `${VAR}` expansion, located errors.
//! Validation that needs more than one field (references, regexes) happens in `compile`.

mod expand;
mod load;
mod policy;
mod source_map;
pub mod units;

pub use expand::{expand_vars, MissingVar};
pub use load::{load_file, load_str, ConfigError, ConfigFormat, LoadedConfig};
pub use policy::{GuardrailsConfig, RoutingConfig, RuleConfig, TargetConfig};
pub use source_map::{Position, SourceMap};

use crate::cache::CacheConfig;
use crate::pricing::PriceConfig;
use crate::reqlog::LogsConfig;
use crate::state::Window;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use units::{ByteSize, DurationStr};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub state: StateConfig,
    /// The request log (`logs: {kind: sqlite, path: ./tollgate-logs.db}` when omitted).
    #[serde(default)]
    pub logs: LogsConfig,
    #[serde(default)]
    pub accounting: AccountingConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// USD per 1M tokens by `provider/model` or bare model; overrides the built-in table.
    #[serde(default)]
    pub pricing: BTreeMap<String, PriceConfig>,
    #[serde(default)]
    pub customers: Vec<CustomerConfig>,
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    #[serde(default)]
    pub virtual_keys: Vec<VirtualKeyConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub guardrails: GuardrailsConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// OpenTelemetry trace export (read at start).
    #[serde(default)]
    pub traces: crate::telemetry::TracesConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// The MCP gateway (SPEC §8).
    #[serde(default)]
    pub mcp: crate::mcp::config::McpConfig,
}

/// `metrics:` — what the Prometheus endpoint labels.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Label `tollgate_requests_total` by virtual key too. Off by default: a series per key
    /// and model multiplies the metric's size.
    #[serde(default)]
    pub per_key: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// Bearer token for the admin listener; unset means the admin port is open (it binds
    /// to loopback by default).
    #[serde(default, serialize_with = "redact_opt")]
    pub admin_token: Option<String>,
    /// Reload when the config file changes (on by default; SIGHUP and POST /admin/reload
    /// work either way). Read at start.
    #[serde(default = "yes")]
    pub watch_config: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            max_body_bytes: default_max_body(),
            admin_token: None,
            watch_config: true,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:8081".into()
}
fn default_max_body() -> ByteSize {
    ByteSize(8 << 20)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "yes")]
    pub required: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { required: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    Azure,
    Bedrock,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub keys: Vec<ProviderKeyConfig>,
    /// Served models; `"*"` serves any. Omitted means any.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// The whole of one attempt: connecting, response headers, and the body or stream to
    /// its end (default 600s).
    #[serde(default)]
    pub timeout: Option<DurationStr>,
    /// TCP connect of a new upstream connection (default 10s).
    #[serde(default)]
    pub connect_timeout: Option<DurationStr>,
    /// From sending the request until the response headers arrive, connecting included
    /// (default: `timeout`). At most `timeout`.
    #[serde(default)]
    pub first_byte_timeout: Option<DurationStr>,
    /// Longest silence between two chunks of a stream once the first has arrived (default 60s).
    #[serde(default)]
    pub stream_idle_timeout: Option<DurationStr>,
    /// `retries: {max: 2, backoff: 200ms, max_backoff: 5s}`; omitted: those defaults.
    #[serde(default)]
    pub retries: Option<RetriesConfig>,
    /// When to stop sending traffic here for a while (circuit breaker).
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// The global provider tier: shared by every key that routes here.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// Anthropic: `max_tokens` sent when the client set no output bound (Anthropic requires
    /// one; default 4096).
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    /// Azure OpenAI: the `api-version` query parameter (required for kind azure).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Azure OpenAI: deployment name by model name; a model not listed is served by the
    /// deployment of the same name.
    #[serde(default)]
    pub deployments: BTreeMap<String, String>,
    /// Bedrock: the AWS region requests are signed for, and whose endpoint
    /// (`https://bedrock-runtime.{region}.amazonaws.com`) is the default base_url.
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeyConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// The secret sent to the provider. For kind bedrock, either this (a Bedrock API key,
    /// sent as a bearer token) or `access_key_id` with `secret_access_key` (SigV4).
    #[serde(default, serialize_with = "redact")]
    pub key: String,
    /// Bedrock: AWS credentials that sign each request (SigV4).
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default, serialize_with = "redact_opt")]
    pub secret_access_key: Option<String>,
    /// Bedrock: the session token of temporary credentials (STS).
    #[serde(default, serialize_with = "redact_opt")]
    pub session_token: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
    /// Restricts this key to some of the provider's models.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    pub id: String,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub id: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// MCP tools the team's keys may use (each key's own `mcp:` narrows it further).
    #[serde(default)]
    pub mcp: Option<crate::mcp::config::ToolAccessConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualKeyConfig {
    pub id: String,
    #[serde(default, serialize_with = "redact_opt")]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// Allowed models: exact names, `"*"`, or `"regex:..."`. Omitted means any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Weighted split for bare model names; omitted means every provider, equal weights.
    #[serde(default)]
    pub providers: Option<Vec<KeyProviderConfig>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// MCP tools this key may see and call, and limits on its tool calls.
    #[serde(default)]
    pub mcp: Option<crate::mcp::config::ToolAccessConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProviderConfig {
    pub provider: String,
    #[serde(default = "one")]
    pub weight: u32,
    /// The provider-config tier: this key's use of this provider.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

/// `health: {failure_threshold: 0.5, min_requests: 5, cooldown: 10s, probe_share: 0.1}`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default)]
    pub failure_threshold: Option<f64>,
    #[serde(default)]
    pub min_requests: Option<u64>,
    #[serde(default)]
    pub cooldown: Option<DurationStr>,
    #[serde(default)]
    pub probe_share: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesConfig {
    #[serde(default)]
    pub max: Option<u32>,
    #[serde(default)]
    pub backoff: Option<DurationStr>,
    #[serde(default)]
    pub max_backoff: Option<DurationStr>,
}

/// `rate_limit: {requests: {limit, window}, tokens: {limit, window}, concurrent: N}`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default)]
    pub requests: Option<CountLimitConfig>,
    #[serde(default)]
    pub tokens: Option<CountLimitConfig>,
    #[serde(default)]
    pub concurrent: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountLimitConfig {
    pub limit: u64,
    pub window: Window,
}

/// `budget: {limit_usd, window}`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub limit_usd: f64,
    pub window: Window,
}

/// Where usage counters live.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StateConfig {
    /// In-process atomics, saved to `snapshot_file` (relative to the config file) every
    /// `snapshot_interval` and at shutdown, and loaded at start.
    Memory {
        #[serde(default)]
        snapshot_file: Option<String>,
        #[serde(default)]
        snapshot_interval: Option<DurationStr>,
    },
    /// Counters in Redis, shared atomically by every gateway replica using the same URL.
    Redis {
        #[serde(serialize_with = "redact_userinfo")]
        url: String,
        /// What to do when Redis cannot be reached: refuse requests (`deny`) or let them
        /// through unmetered (`allow`).
        #[serde(default)]
        on_error: OnStateError,
    },
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnStateError {
    #[default]
    Deny,
    Allow,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::Memory {
            snapshot_file: None,
            snapshot_interval: None,
        }
    }
}

/// How a request's cost is estimated before the call.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingConfig {
    /// Output tokens reserved when the request sets no `max_tokens`/`max_completion_tokens`.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u64,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig {
            default_output_tokens: default_output_tokens(),
        }
    }
}

fn default_output_tokens() -> u64 {
    1024
}

/// Secrets never leave the process: `/admin/config` shows that one is set, not what it is.
fn redact<S: Serializer>(_: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[REDACTED]")
}

/// Header values may hold credentials: keep the names, hide the values.
pub(crate) fn redact_map<S: Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(map.len()))?;
    for name in map.keys() {
        out.serialize_entry(name, "[REDACTED]")?;
    }
    out.end()
}

pub(crate) fn redact_opt<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("[REDACTED]"),
        None => s.serialize_none(),
    }
}

/// `redis://user:secret@host` → `redis://[REDACTED]@host`: the host stays visible.
pub(crate) fn redact_userinfo<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => s.serialize_str(&format!(
            "{}[REDACTED]{}",
            &url[..scheme_end + 3],
            &url[at..]
        )),
        _ => s.serialize_str(url),
    }
}
