//! The JSON-RPC methods `/mcp` serves: the handshake, `ping`, the merged and per-key
//! filtered catalogue (tools, prompts, resources) and calls routed to the owning server.

use super::audit::ToolAudit;
use super::rpc::{RpcError, INVALID_PARAMS, METHOD_NOT_FOUND};
use super::scope::split_tool_name;
use super::upstream::Upstream;
use crate::error::{ApiError, ErrorType};
use crate::plan::{KeyPlan, Plan};
use crate::proxy::Gateway;
use crate::telemetry::{Endpoint, RequestOutcome};
use http::HeaderMap;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub fn initialize(gw: &Gateway, version: &str) -> Value {
    let servers = gw.mcp.servers();
    let any = |f: fn(&super::catalogue::Catalogue) -> bool| {
        servers.iter().any(|s| f(&s.catalogue.load()))
    };
    let mut capabilities = json!({"tools": {"listChanged": true}});
    if any(|c| !c.prompts.is_empty()) {
        capabilities["prompts"] = json!({"listChanged": true});
    }
    if any(|c| !c.resources.is_empty() || !c.resource_templates.is_empty()) {
        capabilities["resources"] = json!({});
    }
    json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": "tollgate", "version": env!("CARGO_PKG_VERSION")},
    })
}

pub async fn dispatch(
    gw: &Gateway,
    plan: &Plan,
    key: &KeyPlan,
    headers: &HeaderMap,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    match method {
        "ping" => Ok(json!({})),
        // Logging is the upstream servers' business; accept the level so clients proceed.
        "logging/setLevel" => Ok(json!({})),
        "tools/list" => Ok(tools_list(gw, key)),
        "tools/call" => Ok(tools_call(gw, plan, key, headers, params).await?),
        "prompts/list" => Ok(prompts_list(gw, key)),
        "prompts/get" => prompts_get(gw, key, params).await,
        "resources/list" => Ok(resources_list(gw, key, |c| &c.resources, "resources")),
        "resources/templates/list" => Ok(resources_list(
            gw,
            key,
            |c| &c.resource_templates,
            "resourceTemplates",
        )),
        "resources/read" => resources_read(gw, key, params).await,
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{other}` is not served by this gateway"),
        )),
    }
}

/// Every tool of every server that this key may use, in server order.
fn tools_list(gw: &Gateway, key: &KeyPlan) -> Value {
    let mut tools = Vec::new();
    for s in gw.mcp.servers().iter() {
        let cat = s.catalogue.load();
        tools.extend(
            cat.tools
                .iter()
                .filter(|t| key.mcp.scope.permits(&t.public))
                .map(|t| t.json.clone()),
        );
    }
    json!({ "tools": tools })
}

async fn tools_call(
    gw: &Gateway,
    plan: &Plan,
    key: &KeyPlan,
    headers: &HeaderMap,
    params: &Value,
) -> Result<Value, RpcError> {
    let request_id = crate::proxy::respond::new_request_id();
    let mut audit = ToolAudit::new(request_id.to_str().unwrap_or_default().to_string());
    let answer = super::call::call_tool(gw, plan, key, headers, params, &mut audit).await;
    let result_bytes = answer
        .as_ref()
        .ok()
        .map(|r| serde_json::to_vec(r).map_or(0, |b| b.len() as u64));
    let upstream = audit.upstream.unwrap_or_default();
    let total = audit.started.elapsed();
    let (server, tool) = (audit.server.clone(), audit.tool.clone());
    let record = audit.record(key, &answer, result_bytes);
    gw.metrics.record(&RequestOutcome {
        endpoint: Endpoint::Mcp,
        provider: &server,
        model: &tool,
        key: plan.metrics_per_key.then_some(&*key.id),
        status: record.status,
        total,
        overhead: total.saturating_sub(upstream),
    });
    gw.request_log.record(record);
    answer
}

fn prompts_list(gw: &Gateway, key: &KeyPlan) -> Value {
    let mut prompts = Vec::new();
    for s in gw.mcp.servers().iter() {
        let cat = s.catalogue.load();
        prompts.extend(
            cat.prompts
                .iter()
                .filter(|p| key.mcp.scope.permits(&p.public))
                .map(|p| p.json.clone()),
        );
    }
    json!({ "prompts": prompts })
}

async fn prompts_get(gw: &Gateway, key: &KeyPlan, params: &Value) -> Result<Value, RpcError> {
    let name = params["name"]
        .as_str()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "prompts/get needs `name`"))?;
    let unknown = || RpcError::new(INVALID_PARAMS, format!("unknown prompt `{name}`"));
    let (server, prompt) = split_tool_name(name).ok_or_else(unknown)?;
    if !key.mcp.scope.permits(name) {
        return Err(not_allowed(name, key));
    }
    let upstream = gw.mcp.server(server).ok_or_else(unknown)?;
    let peer = connected(&upstream).await?;
    let mut p = rmcp::model::GetPromptRequestParams::new(prompt.to_string());
    p.arguments = params["arguments"].as_object().cloned();
    let result = peer
        .get_prompt(p)
        .await
        .map_err(upstream_error(&upstream))?;
    serde_json::to_value(result).map_err(|e| RpcError::new(-32603, e.to_string()))
}

/// Resources of the servers this key may use at least one tool or prompt of.
fn resources_list(
    gw: &Gateway,
    key: &KeyPlan,
    pick: fn(&super::catalogue::Catalogue) -> &Vec<Value>,
    field: &str,
) -> Value {
    let mut out = Vec::new();
    for s in gw.mcp.servers().iter() {
        let cat = s.catalogue.load();
        if may_use_server(key, &cat) {
            out.extend(pick(&cat).iter().cloned());
        }
    }
    json!({ field: out })
}

fn may_use_server(key: &KeyPlan, cat: &super::catalogue::Catalogue) -> bool {
    cat.tools
        .iter()
        .chain(&cat.prompts)
        .any(|e| key.mcp.scope.permits(&e.public))
}

async fn resources_read(gw: &Gateway, key: &KeyPlan, params: &Value) -> Result<Value, RpcError> {
    let uri = params["uri"]
        .as_str()
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "resources/read needs `uri`"))?;
    let upstream = gw
        .mcp
        .servers()
        .iter()
        .find(|s| {
            let cat = s.catalogue.load();
            cat.serves_resource(uri) && may_use_server(key, &cat)
        })
        .cloned()
        .ok_or_else(|| RpcError::new(-32002, format!("resource not found: `{uri}`")))?;
    let peer = connected(&upstream).await?;
    let p = rmcp::model::ReadResourceRequestParams::new(uri.to_string());
    let result = peer
        .read_resource(p)
        .await
        .map_err(upstream_error(&upstream))?;
    serde_json::to_value(result).map_err(|e| RpcError::new(-32603, e.to_string()))
}

fn not_allowed(name: &str, key: &KeyPlan) -> RpcError {
    ApiError::new(
        ErrorType::ToolNotAllowed,
        format!("`{name}` is not allowed for virtual key `{}`", key.id),
    )
    .into()
}

async fn connected(upstream: &Arc<Upstream>) -> Result<rmcp::Peer<rmcp::RoleClient>, RpcError> {
    upstream.peer(Duration::from_secs(10)).await.ok_or_else(|| {
        ApiError::new(
            ErrorType::UpstreamError,
            format!("MCP server `{}` is unavailable", upstream.name),
        )
        .into()
    })
}

fn upstream_error(upstream: &Upstream) -> impl Fn(rmcp::service::ServiceError) -> RpcError + '_ {
    move |e| match e {
        rmcp::service::ServiceError::McpError(e) => {
            let mut err = RpcError::new(i64::from(e.code.0), e.message.to_string());
            err.data = e.data;
            err
        }
        other => ApiError::new(
            ErrorType::UpstreamError,
            format!("MCP server `{}` failed: {other}", upstream.name),
        )
        .into(),
    }
}
