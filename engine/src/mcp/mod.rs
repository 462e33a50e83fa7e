//! The MCP gateway (SPEC §8): one governed `/mcp` endpoint in front of many tool servers.
//!
//! ```text
//! config ─ compile ─ McpPlan (servers, limits) + KeyPlan.mcp (tool scope, tiers)
//! McpRuntime ─ one Upstream per server: connect (stdio child / streamable HTTP), restart
//!              with backoff, catalogue refreshed on tools/list_changed and periodically
//! POST /mcp ─ endpoint: auth, session, JSON-RPC dispatch
//!             tools/list: the catalogue filtered by the key's scope
//!             tools/call: scope → guardrails (arguments) → limits → upstream →
//!                         guardrails (result) → settle → audit record
//! ```

pub mod config;
pub mod plan;
pub mod scope;

mod audit;
mod call;
mod catalogue;
pub mod endpoint;
mod events;
mod methods;
pub mod rpc;
mod runtime;
pub mod session;
mod sse;
mod upstream;
pub(crate) mod view;

pub use runtime::McpRuntime;
pub use upstream::ServerStatus;

/// reqwest (the streamable HTTP client) is built without a crypto provider of its own; the
/// process-wide default is ring, which the rest of the gateway uses too.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means one is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
