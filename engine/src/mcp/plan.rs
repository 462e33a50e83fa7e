//! The compiled MCP part of a plan: upstream servers as launch specs, limits of tool calls,
//! and each key's tool access. No I/O; the running connections live in [`super::McpRuntime`].

use super::config::McpTransport;
use super::scope::ToolScope;
use crate::plan::Limits;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct McpPlan {
    pub servers: Vec<McpServerPlan>,
    /// Signs session ids; `None` means a random secret per process.
    pub session_secret: Option<[u8; 32]>,
    pub refresh_interval: Duration,
    /// Limits of all tool calls together (`mcp:global`).
    pub limits: Limits,
}

impl McpPlan {
    pub fn server(&self, name: &str) -> Option<&McpServerPlan> {
        self.servers.iter().find(|s| &*s.name == name)
    }
}

#[derive(Debug)]
pub struct McpServerPlan {
    pub name: Arc<str>,
    pub launch: Launch,
    /// Longest wait for one call's answer.
    pub timeout: Duration,
    /// Micro-dollars per call by tool name; `default_price` for tools not listed.
    pub prices: BTreeMap<String, u64>,
    pub default_price: Option<u64>,
    /// The server's own tier (`mcp_server:NAME`).
    pub limits: Limits,
}

impl McpServerPlan {
    /// What one call to `tool` costs, in micro-dollars.
    pub fn price_micros(&self, tool: &str) -> u64 {
        self.prices
            .get(tool)
            .copied()
            .or(self.default_price)
            .unwrap_or(0)
    }
}

/// How to reach a server. Compared on reload: a server whose launch spec is unchanged keeps
/// its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        transport: McpTransport,
        url: String,
        headers: BTreeMap<String, String>,
    },
}

impl Launch {
    pub fn transport(&self) -> McpTransport {
        match self {
            Launch::Stdio { .. } => McpTransport::Stdio,
            Launch::Http { transport, .. } => *transport,
        }
    }
}

/// A key's MCP access: which tools, and the tiers its tool calls are metered on (the key's
/// `mcp:` tier, then its team's).
#[derive(Debug, Clone, Default)]
pub struct KeyMcp {
    pub scope: ToolScope,
    pub limits: Limits,
}
