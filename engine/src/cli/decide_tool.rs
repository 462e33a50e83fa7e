//! One MCP tool call through the decisions of `/mcp`, without network (for `tollgate test`):
//! key → the key's tool scope → input guardrails on the arguments → tool-call limits. The
//! upstream catalogue is not consulted (no server runs), so a tool the server does not have
//! is decided like one it has.

use super::decide::{ready, Call};
use super::trace::{Decision, KeyInfo, Outcome};
use crate::admission::guard;
use crate::admission::limits::{self, Estimate, Ledger};
use crate::error::{ApiError, ErrorType};
use crate::mcp::scope::split_tool_name;
use crate::mcp::view::{replace_strings, strings, ToolCallView};
use crate::plan::{KeyPlan, Plan};
use serde_json::{Map, Value};

pub fn decide_tool(
    plan: &Plan,
    call: &Call<'_>,
    tool: &str,
    arguments: &Value,
) -> Result<Decision, String> {
    let mut d = Decision::default();
    match super::decide::resolve_key(plan, call)? {
        Ok(key) => {
            d.key = Some(KeyInfo::of(key));
            match run(plan, key, call, tool, arguments, &mut d) {
                Ok(()) => d.outcome = Outcome::admitted(),
                Err(e) => d.outcome = Outcome::refused(&e),
            }
        }
        Err(e) => d.outcome = Outcome::refused(&e),
    }
    Ok(d)
}

fn run(
    plan: &Plan,
    key: &KeyPlan,
    call: &Call<'_>,
    tool: &str,
    arguments: &Value,
    d: &mut Decision,
) -> Result<(), ApiError> {
    let mut arguments = match arguments {
        Value::Null => Value::Object(Map::new()),
        v => v.clone(),
    };
    let unknown = || ApiError::new(ErrorType::InvalidRequest, format!("unknown tool `{tool}`"));
    let (server, name) = split_tool_name(tool).ok_or_else(unknown)?;
    if !key.mcp.scope.permits(tool) {
        return Err(ApiError::new(
            ErrorType::ToolNotAllowed,
            format!("tool `{tool}` is not allowed for virtual key `{}`", key.id),
        ));
    }
    let server_plan = plan.mcp.server(server).ok_or_else(unknown)?;
    let headers: http::HeaderMap = call
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.as_bytes()).ok()?,
                http::HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    let mut texts = Vec::new();
    strings(&arguments, &mut texts);
    let original = texts.clone();
    let view = ToolCallView {
        headers: &headers,
        key,
        server,
        name,
        arguments: &arguments,
        arguments_text: arguments.to_string(),
        now: call.now,
        result: None,
    };
    let mut webhooks = Vec::new();
    let report = guard::check(
        &key.input_guardrails,
        &view,
        &mut texts,
        &mut || 0.0,
        &mut webhooks,
    );
    d.webhooks_not_evaluated = webhooks.iter().map(|g| g.name.to_string()).collect();
    if let Some(g) = &report.blocked_by {
        return Err(ApiError::new(
            ErrorType::GuardrailBlocked,
            format!("tool call blocked by guardrail `{g}`"),
        )
        .with("guardrail", (**g).into()));
    }
    d.flagged = report.flagged.iter().map(|g| g.to_string()).collect();
    if texts != original {
        replace_strings(&mut arguments, &mut texts.into_iter());
    }
    d.tool_arguments = Some(arguments);

    let mut tiers = server_plan.limits.clone();
    tiers.extend(plan.mcp.limits.iter().cloned());
    let estimate = Estimate {
        prompt_tokens: 0,
        output_tokens: 0,
        price: None,
        flat_micros: server_plan.price_micros(name),
    };
    let reserved = ready(limits::reserve(
        Ledger::Memory,
        &Vec::new(),
        &key.mcp.limits,
        &tiers,
        &estimate,
        call.now.timestamp(),
    ))
    .ok_or_else(|| {
        ApiError::new(
            ErrorType::StateUnavailable,
            "memory counters did not answer at once",
        )
    })?;
    reserved.map(drop).map_err(|r| r.into_error(call.now))
}
