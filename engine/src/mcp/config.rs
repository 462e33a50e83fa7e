//! `mcp:` and `virtual_keys[].mcp` / `teams[].mcp` as written in tollgate.yaml (SPEC §8).

use crate::config::units::DurationStr;
use crate::config::{BudgetConfig, RateLimitConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The MCP gateway: upstream tool servers, reusable tool groups, and the limits of all tool
/// calls together.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    #[serde(default)]
    pub servers: Vec<McpServerConfig>,
    /// Named lists of tool patterns, used as `group:NAME` in `allow`/`deny` of keys and teams.
    #[serde(default)]
    pub tool_groups: BTreeMap<String, Vec<String>>,
    /// HMAC secret that signs `mcp-session-id`s. Replicas behind one load balancer share it
    /// so any of them can serve any session; unset, each process picks a random one.
    #[serde(default, serialize_with = "crate::config::redact_opt")]
    pub session_secret: Option<String>,
    /// How often each server's tool catalogue is listed again, besides on
    /// `notifications/tools/list_changed` (default 5m).
    #[serde(default)]
    pub refresh_interval: Option<DurationStr>,
    /// Limits shared by every tool call through the gateway (scope `mcp:global`).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// A child process speaking JSON-RPC on stdin/stdout, restarted when it exits.
    Stdio,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    Http,
    /// The older HTTP+SSE transport.
    Sse,
}

impl McpTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            McpTransport::Stdio => "stdio",
            McpTransport::Http => "http",
            McpTransport::Sse => "sse",
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The prefix of this server's tools: `fs` serves `fs__read_file`.
    pub name: String,
    pub transport: McpTransport,
    /// stdio: the program to start (looked up in PATH) ...
    #[serde(default)]
    pub command: Option<String>,
    /// ... and its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: environment variables added to the child's (values may hold credentials).
    #[serde(default, serialize_with = "crate::config::redact_map")]
    pub env: BTreeMap<String, String>,
    /// stdio: working directory, relative to the config file.
    #[serde(default)]
    pub cwd: Option<String>,
    /// http / sse: the server's endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// http / sse: headers sent on every request (credentials go here).
    #[serde(default, serialize_with = "crate::config::redact_map")]
    pub headers: BTreeMap<String, String>,
    /// Longest wait for one call's answer (default 60s).
    #[serde(default)]
    pub timeout: Option<DurationStr>,
    /// USD charged per call, by tool name (`"*"`: every other tool), for budgets and spend.
    #[serde(default)]
    pub prices: BTreeMap<String, f64>,
    /// Limits of all calls to this server (scope `mcp_server:NAME`).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}

/// `mcp:` on a virtual key or a team: which tools it may see and call, and limits on its
/// tool calls.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolAccessConfig {
    /// Tool patterns (`fs__read_file`, `db__*`, `group:readonly`); omitted means every tool.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Tool patterns refused even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Limits of this key's (or team's) tool calls (scope `virtual_key:ID/mcp`, `team:ID/mcp`).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
}
