//! `tools/call`, in the order of SPEC §6 adapted to tools: key scope → input guardrails on
//! the arguments → limits and budgets → the upstream call → output guardrails on the result
//! → settle. Whatever happens, one audit record is written (see [`super::audit`]).

use super::audit::ToolAudit;
use super::rpc::{RpcError, INVALID_PARAMS};
use super::scope::split_tool_name;
use super::view::{replace_strings, strings, ToolCallView};
use crate::admission::guard;
use crate::admission::limits::{self, Estimate};
use crate::error::{ApiError, ErrorType};
use crate::guardrails::config::Action;
use crate::plan::{KeyGuardrail, KeyPlan, Plan};
use crate::proxy::Gateway;
use http::HeaderMap;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ServiceError;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Longest wait for a restarting server before a call fails.
const RECONNECT_WAIT: Duration = Duration::from_secs(15);

pub async fn call_tool(
    gw: &Gateway,
    plan: &Plan,
    key: &KeyPlan,
    headers: &HeaderMap,
    params: &Value,
    audit: &mut ToolAudit,
) -> Result<Value, RpcError> {
    let name = params["name"]
        .as_str()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "tools/call needs `name` (a string)"))?;
    let mut arguments = match &params["arguments"] {
        Value::Null => Value::Object(Map::new()),
        v @ Value::Object(_) => v.clone(),
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "`arguments` of tools/call must be an object",
            ))
        }
    };
    audit.public_name = name.to_string();
    audit.arguments = arguments.clone();
    let Some((server, tool)) = split_tool_name(name) else {
        return Err(unknown_tool(name));
    };
    audit.server = server.to_string();
    audit.tool = tool.to_string();
    if !key.mcp.scope.permits(name) {
        return Err(ApiError::new(
            ErrorType::ToolNotAllowed,
            format!("tool `{name}` is not allowed for virtual key `{}`", key.id),
        )
        .with("tool", name.into())
        .into());
    }
    let (Some(server_plan), Some(upstream)) = (plan.mcp.server(server), gw.mcp.server(server))
    else {
        return Err(unknown_tool(name));
    };
    if upstream.catalogue.load().tool(tool).is_none() {
        // A server that never listed its tools cannot say whether it has this one.
        let status = upstream.status();
        if status.status != "up" && status.tools == 0 {
            let why = status
                .last_error
                .unwrap_or_else(|| "not connected yet".into());
            return Err(ApiError::new(
                ErrorType::UpstreamError,
                format!("MCP server `{server}` is unavailable: {why}"),
            )
            .into());
        }
        return Err(unknown_tool(name));
    }

    let now = chrono::Utc::now();
    let arguments_text = arguments.to_string();
    let mut texts = Vec::new();
    strings(&arguments, &mut texts);
    {
        let view = ToolCallView {
            headers,
            key,
            server,
            name: tool,
            arguments: &arguments,
            arguments_text,
            now,
            result: None,
        };
        let redacted =
            check_guardrails(gw, &key.input_guardrails, &view, &mut texts, audit).await?;
        if redacted {
            replace_strings(&mut arguments, &mut texts.into_iter());
        }
    }
    audit.arguments = arguments.clone();

    let price = server_plan.price_micros(tool);
    let mut tiers = server_plan.limits.clone();
    tiers.extend(plan.mcp.limits.iter().cloned());
    let estimate = Estimate {
        prompt_tokens: 0,
        output_tokens: 0,
        price: None,
        flat_micros: price,
    };
    let admitted = limits::reserve(
        gw.ledger(plan),
        &Vec::new(),
        &key.mcp.limits,
        &tiers,
        &estimate,
        now.timestamp(),
    )
    .await
    .map_err(|refusal| {
        let e = refusal.into_error(now);
        let field = |f: &str| e.fields.get(f).and_then(Value::as_str).unwrap_or("");
        gw.metrics
            .record_rejection(field("scope"), field("limit_kind"));
        RpcError::from(e)
    })?;

    let started = Instant::now();
    let answer = send(&upstream, tool, arguments.clone(), server_plan.timeout).await;
    audit.upstream = Some(started.elapsed());
    // The call counts against request limits whatever its outcome; its price is charged
    // only when the tool answered.
    let charged = if answer.is_ok() { price } else { 0 };
    admitted
        .with_flat_charge(charged)
        .settle(Some(Default::default()));
    audit.cost_micros = charged;
    let mut result = answer?;

    let mut texts = result_texts(&result);
    if !key.output_guardrails.is_empty() && !texts.is_empty() {
        let joined = texts.join("\n");
        let view = ToolCallView {
            headers,
            key,
            server,
            name: tool,
            arguments: &arguments,
            arguments_text: arguments.to_string(),
            now,
            result: Some(&joined),
        };
        let redacted =
            check_guardrails(gw, &key.output_guardrails, &view, &mut texts, audit).await?;
        if redacted {
            replace_result_texts(&mut result, &mut texts.into_iter());
        }
    }
    audit.is_error = result["isError"].as_bool().unwrap_or(false);
    Ok(result)
}

fn unknown_tool(name: &str) -> RpcError {
    RpcError::new(INVALID_PARAMS, format!("unknown tool `{name}`"))
}

/// Calls the tool, once more on a fresh session if the first one turned out to be dead (a
/// stdio server that exited is restarted by its supervisor).
async fn send(
    upstream: &super::upstream::Upstream,
    tool: &str,
    arguments: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let args = match arguments {
        Value::Object(map) => Some(map),
        _ => None,
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(peer) = upstream.peer(RECONNECT_WAIT.min(timeout)).await else {
            let why = upstream
                .status()
                .last_error
                .unwrap_or_else(|| "not connected".into());
            return Err(ApiError::new(
                ErrorType::UpstreamError,
                format!("MCP server `{}` is unavailable: {why}", upstream.name),
            )
            .into());
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = args.clone();
        let outcome = tokio::time::timeout(timeout, peer.call_tool(params)).await;
        match outcome {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorType::UpstreamTimeout,
                    format!(
                        "MCP server `{}` did not answer within {timeout:?}",
                        upstream.name
                    ),
                )
                .into())
            }
            Ok(Ok(result)) => {
                return serde_json::to_value(result).map_err(|e| {
                    ApiError::new(ErrorType::UpstreamError, format!("unreadable result: {e}"))
                        .into()
                })
            }
            Ok(Err(ServiceError::McpError(e))) => {
                // The server's own JSON-RPC error, passed through as it sent it.
                let mut err = RpcError::new(i64::from(e.code.0), e.message.to_string());
                err.data = e.data;
                return Err(err);
            }
            Ok(Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)))
                if tries == 1 =>
            {
                // Wait for the supervisor to notice and replace the session.
                let mut waited = Duration::ZERO;
                while !peer.is_transport_closed() && waited < Duration::from_secs(2) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                }
                continue;
            }
            Ok(Err(e)) => {
                return Err(ApiError::new(
                    ErrorType::UpstreamError,
                    format!("MCP server `{}` failed: {e}", upstream.name),
                )
                .into())
            }
        }
    }
}

/// Runs `guardrails` over `texts`; `Ok(true)` when a redaction changed them.
async fn check_guardrails(
    gw: &Gateway,
    guardrails: &[KeyGuardrail],
    view: &ToolCallView<'_>,
    texts: &mut [String],
    audit: &mut ToolAudit,
) -> Result<bool, RpcError> {
    if guardrails.is_empty() {
        return Ok(false);
    }
    let original = texts.to_vec();
    let mut webhooks = Vec::new();
    let report = guard::check(
        guardrails,
        view,
        texts,
        &mut || fastrand::f64(),
        &mut webhooks,
    );
    for (g, action) in report.actions() {
        gw.metrics.record_guardrail(g, action);
        audit.guardrails.push((g.into(), action));
    }
    for g in &report.cel_errors {
        gw.metrics.record_cel_error(g);
    }
    if let Some(g) = &report.blocked_by {
        return Err(blocked(g));
    }
    let stage = if view.result.is_some() {
        "output"
    } else {
        "input"
    };
    for g in webhooks {
        if crate::proxy::webhook_flags(gw, g, stage, "", texts).await {
            let action = crate::proxy::action_name(g.action);
            gw.metrics.record_guardrail(&g.name, action);
            audit.guardrails.push((g.name.clone(), action));
            if g.action == Action::Block {
                return Err(blocked(&g.name));
            }
        }
    }
    Ok(texts != original.as_slice())
}

fn blocked(guardrail: &str) -> RpcError {
    ApiError::new(
        ErrorType::GuardrailBlocked,
        format!("tool call blocked by guardrail `{guardrail}`"),
    )
    .with("guardrail", guardrail.into())
    .into()
}

/// The text of a result: its text content blocks, then any strings of `structuredContent`.
fn result_texts(result: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for block in result["content"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"].as_str() {
            out.push(t.to_string());
        }
    }
    strings(&result["structuredContent"], &mut out);
    out
}

fn replace_result_texts(result: &mut Value, texts: &mut impl Iterator<Item = String>) {
    if let Some(blocks) = result["content"].as_array_mut() {
        for block in blocks.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(text @ Value::String(_)) = block.get_mut("text") {
                if let Some(t) = texts.next() {
                    *text = Value::String(t);
                }
            }
        }
    }
    if let Some(structured) = result.get_mut("structuredContent") {
        replace_strings(structured, texts);
    }
}
