//! `mcp:` → [`McpPlan`], and `virtual_keys[].mcp` / `teams[].mcp` → each key's [`KeyMcp`]:
//! server launch specs checked, tool patterns compiled, tool-call tiers bound to counters.

use super::check_unique;
use super::limits::LimitRegistry;
use crate::config::{ConfigError, LoadedConfig};
use crate::mcp::config::{McpTransport, ToolAccessConfig};
use crate::mcp::plan::{KeyMcp, Launch, McpPlan, McpServerPlan};
use crate::mcp::scope::{compile_filter, ToolFilter, SEPARATOR};
use crate::plan::Limits;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

pub(super) fn compile_mcp(
    loaded: &LoadedConfig,
    limits: &mut LimitRegistry,
    errors: &mut Vec<ConfigError>,
) -> McpPlan {
    let mcp = &loaded.config.mcp;
    check_unique(
        loaded,
        "MCP server name",
        mcp.servers
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("mcp.servers[{i}].name"), s.name.as_str())),
        errors,
    );
    let mut servers = Vec::with_capacity(mcp.servers.len());
    for (i, s) in mcp.servers.iter().enumerate() {
        let at = |field: &str| format!("mcp.servers[{i}].{field}");
        let name_ok = !s.name.is_empty()
            && !s.name.contains(SEPARATOR)
            && s.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !name_ok {
            errors.push(loaded.error_at(
                &at("name"),
                format!(
                    "MCP server name `{}` must be letters, digits, `-` or `_`, without `{SEPARATOR}` \
                     (it prefixes the server's tools: `name{SEPARATOR}tool`)",
                    s.name
                ),
            ));
        }
        let launch = match s.transport {
            McpTransport::Stdio => {
                if s.url.is_some() || !s.headers.is_empty() {
                    errors.push(loaded.error_at(
                        &at("transport"),
                        format!(
                            "MCP server `{}` uses transport stdio, which takes `command` (and \
                             `args`, `env`, `cwd`), not `url`/`headers`",
                            s.name
                        ),
                    ));
                }
                match s.command.as_deref().map(str::trim) {
                    Some(command) if !command.is_empty() => Some(Launch::Stdio {
                        command: command.to_string(),
                        args: s.args.clone(),
                        env: s.env.clone(),
                        cwd: s.cwd.as_ref().map(|c| loaded.base_dir.join(c)),
                    }),
                    _ => {
                        errors.push(loaded.error_at(
                            &format!("mcp.servers[{i}]"),
                            format!(
                                "MCP server `{}` uses transport stdio and needs `command`",
                                s.name
                            ),
                        ));
                        None
                    }
                }
            }
            transport @ (McpTransport::Http | McpTransport::Sse) => {
                if s.command.is_some() || !s.args.is_empty() || !s.env.is_empty() {
                    errors.push(loaded.error_at(
                        &at("transport"),
                        format!(
                            "MCP server `{}` uses transport {}, which takes `url` (and \
                             `headers`), not `command`/`args`/`env`",
                            s.name,
                            transport.as_str()
                        ),
                    ));
                }
                check_headers(loaded, &at("headers"), &s.headers, errors);
                match s.url.as_deref() {
                    Some(url) if valid_http_url(url) => Some(Launch::Http {
                        transport,
                        url: url.to_string(),
                        headers: s.headers.clone(),
                    }),
                    Some(url) => {
                        errors.push(loaded.error_at(
                            &at("url"),
                            format!(
                                "MCP server `{}`: url `{url}` is not an http:// or https:// URL",
                                s.name
                            ),
                        ));
                        None
                    }
                    None => {
                        errors.push(loaded.error_at(
                            &format!("mcp.servers[{i}]"),
                            format!(
                                "MCP server `{}` uses transport {} and needs `url`",
                                s.name,
                                transport.as_str()
                            ),
                        ));
                        None
                    }
                }
            }
        };
        let mut prices = BTreeMap::new();
        let mut default_price = None;
        for (tool, usd) in &s.prices {
            if !usd.is_finite() || *usd < 0.0 || *usd > 1e6 {
                errors.push(loaded.error_at(
                    &format!("mcp.servers[{i}].prices.{tool}"),
                    format!("price of `{tool}` must be a non-negative number of dollars per call, got {usd}"),
                ));
                continue;
            }
            let micros = (usd * 1e6).ceil() as u64;
            if tool == "*" {
                default_price = Some(micros);
            } else {
                prices.insert(tool.clone(), micros);
            }
        }
        let timeout = s.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
        if timeout.is_zero() {
            errors.push(loaded.error_at(&at("timeout"), "timeout must be above 0"));
        }
        let server_limits = limits.tier(
            loaded,
            &format!("mcp.servers[{i}]"),
            &format!("mcp_server:{}", s.name),
            s.rate_limit.as_ref(),
            s.budget.as_ref(),
            errors,
        );
        if let Some(launch) = launch {
            servers.push(McpServerPlan {
                name: s.name.as_str().into(),
                launch,
                timeout,
                prices,
                default_price,
                limits: server_limits,
            });
        }
    }
    for (name, patterns) in &mcp.tool_groups {
        if let Some(p) = patterns.iter().find(|p| p.starts_with("group:")) {
            errors.push(loaded.error_at(
                &format!("mcp.tool_groups.{name}"),
                format!("tool group `{name}` names `{p}`: groups cannot contain groups"),
            ));
        }
    }
    let refresh_interval = mcp.refresh_interval.map_or(DEFAULT_REFRESH, |d| d.0);
    if refresh_interval.is_zero() {
        errors.push(loaded.error_at("mcp.refresh_interval", "refresh_interval must be above 0"));
    }
    let session_secret = mcp.session_secret.as_deref().map(|s| {
        if s.len() < 16 {
            errors.push(loaded.error_at(
                "mcp.session_secret",
                "session_secret must be at least 16 characters (it signs session ids)",
            ));
        }
        Sha256::digest(s.as_bytes()).into()
    });
    let global = limits.tier(
        loaded,
        "mcp",
        "mcp:global",
        mcp.rate_limit.as_ref(),
        mcp.budget.as_ref(),
        errors,
    );
    McpPlan {
        servers,
        session_secret,
        refresh_interval,
        limits: global,
    }
}

fn valid_http_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

fn check_headers(
    loaded: &LoadedConfig,
    path: &str,
    headers: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if [
            "accept",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
        ]
        .contains(&lower.as_str())
        {
            errors.push(loaded.error_at(
                &format!("{path}.{name}"),
                format!(
                    "header `{name}` is set by the MCP transport itself and cannot be configured"
                ),
            ));
        } else if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            errors.push(loaded.error_at(
                &format!("{path}.{name}"),
                format!("header `{name}` is not a valid HTTP header name and value"),
            ));
        }
    }
}

/// One `mcp:` access block (of a key or a team) compiled: its filter and its tier.
pub(super) struct Access {
    filter: ToolFilter,
    limits: Limits,
}

/// Compiles the `mcp:` of the key or team at `path` (e.g. `virtual_keys[3]`) with tier `scope`.
pub(super) fn compile_access(
    loaded: &LoadedConfig,
    path: &str,
    scope: &str,
    access: &ToolAccessConfig,
    limits: &mut LimitRegistry,
    errors: &mut Vec<ConfigError>,
) -> Option<Access> {
    let cfg = &loaded.config.mcp;
    let servers: HashSet<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    let tier = limits.tier(
        loaded,
        &format!("{path}.mcp"),
        scope,
        access.rate_limit.as_ref(),
        access.budget.as_ref(),
        errors,
    );
    match compile_filter(
        access.allow.as_deref(),
        &access.deny,
        &cfg.tool_groups,
        &servers,
    ) {
        Ok(filter) => Some(Access {
            filter,
            limits: tier,
        }),
        Err(list) => {
            for (field, j, message) in list {
                errors.push(loaded.error_at(&format!("{path}.mcp.{field}[{j}]"), message));
            }
            None
        }
    }
}

/// A key's access: its own block, then its team's; a tool must pass both.
pub(super) fn key_mcp(own: Option<Access>, team: Option<&Access>) -> KeyMcp {
    let mut out = KeyMcp::default();
    for a in own.iter().chain(team) {
        out.scope.filters.push(a.filter.clone());
        out.limits.extend(a.limits.iter().cloned());
    }
    out
}

/// `Arc` so teams' blocks are shared by their keys without recompiling.
pub(super) type TeamAccess = std::collections::HashMap<String, Arc<Access>>;
