//! One request-log record per tool call (allowed, refused or failed): key, server, tool,
//! arguments as sent upstream (after redaction), result size, status and latency. Written
//! off the response path through the request log's queue, like every other record.

use super::rpc::{error_type, RpcError};
use crate::plan::KeyPlan;
use crate::reqlog::{CacheResult, GuardrailRecord, LogRecord, ToolRecord};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a tool call did, filled in as it goes.
pub struct ToolAudit {
    pub request_id: String,
    pub arrived: DateTime<Utc>,
    pub started: Instant,
    pub public_name: String,
    pub server: String,
    pub tool: String,
    pub arguments: Value,
    pub upstream: Option<Duration>,
    pub cost_micros: u64,
    pub is_error: bool,
    pub guardrails: Vec<(Arc<str>, &'static str)>,
}

impl ToolAudit {
    pub fn new(request_id: String) -> ToolAudit {
        ToolAudit {
            request_id,
            arrived: Utc::now(),
            started: Instant::now(),
            public_name: String::new(),
            server: String::new(),
            tool: String::new(),
            arguments: Value::Null,
            upstream: None,
            cost_micros: 0,
            is_error: false,
            guardrails: Vec::new(),
        }
    }

    /// The record of the finished call; `answer` is what the client received.
    pub fn record(
        self,
        key: &KeyPlan,
        answer: &Result<Value, RpcError>,
        result_bytes: Option<u64>,
    ) -> LogRecord {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let total = self.started.elapsed();
        let (status, error) = match answer {
            Ok(_) => (200, None),
            Err(e) if e.status.is_success() => (200, Some(error_type(e))),
            Err(e) => (e.status.as_u16(), Some(error_type(e))),
        };
        let named = !self.server.is_empty();
        LogRecord {
            request_id: self.request_id,
            time: self.arrived,
            key_id: Some(key.id.to_string()),
            team: key.team.as_deref().map(str::to_owned),
            customer: key.customer.as_deref().map(str::to_owned),
            endpoint: "mcp".into(),
            requested_model: (!self.public_name.is_empty()).then_some(self.public_name),
            provider: named.then(|| self.server.clone()),
            model: named.then(|| self.tool.clone()),
            attempts: Vec::new(),
            status,
            error_type: error,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cost_usd: self.cost_micros as f64 / 1e6,
            cache: CacheResult::Off,
            guardrails: self
                .guardrails
                .iter()
                .map(|(name, action)| GuardrailRecord {
                    name: name.to_string(),
                    action: action.to_string(),
                })
                .collect(),
            total_us: micros(total),
            upstream_us: self.upstream.map(micros),
            ttft_us: None,
            overhead_us: micros(total.saturating_sub(self.upstream.unwrap_or_default())),
            stream: false,
            client_disconnected: false,
            request_body: None,
            response_body: None,
            tool: named.then_some(ToolRecord {
                server: self.server,
                name: self.tool,
                arguments: self.arguments,
                result_bytes,
                is_error: self.is_error,
            }),
        }
    }
}
