//! `/mcp` over the streamable HTTP transport: POST carries JSON-RPC messages (one or a batch)
//! and is answered with JSON; GET opens an event stream of server notifications; DELETE is
//! refused (sessions live in their signed ids, there is nothing to delete).
//!
//! Every POST is authenticated by virtual key like any other endpoint (SPEC §3). Errors are
//! JSON-RPC error objects; a gateway refusal keeps its HTTP status (401, 403, 429, ...).

use super::methods;
use super::rpc::{self, Message, RpcError, INVALID_REQUEST};
use super::session::{self, Session, PROTOCOL_VERSIONS};
use crate::admission::auth;
use crate::plan::{KeyPlan, Plan};
use crate::proxy::{respond, Gateway, ProxyResponse};
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

pub const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

pub async fn handle(gw: &Gateway, req: Request<Incoming>) -> ProxyResponse {
    match *req.method() {
        Method::POST => post(gw, req).await,
        Method::GET => super::events::open(gw, &req),
        _ => {
            let mut resp = reply_error(
                &RpcError::new(
                    INVALID_REQUEST,
                    format!("method {} is not allowed on /mcp", req.method()),
                )
                .status(StatusCode::METHOD_NOT_ALLOWED),
                None,
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            resp
        }
    }
}

async fn post(gw: &Gateway, req: Request<Incoming>) -> ProxyResponse {
    let plan = gw.plan.load_full();
    let (parts, body) = req.into_parts();
    let body = match crate::proxy::read_limited(&parts.headers, body, plan.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return reply_error(&e.into(), None),
    };
    let (messages, batch) = match rpc::parse(&body) {
        Ok(m) => m,
        Err(e) => return reply_error(&e, None),
    };
    let first_id = messages.iter().find_map(|m| m.id.clone());
    let now = chrono::Utc::now();
    let key = match auth::authenticate(&plan, &parts.headers, now.timestamp()) {
        Ok(k) => k,
        Err(e) => {
            let mut resp = reply_error(&e.into(), first_id.as_ref());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate\""),
            );
            return resp;
        }
    };
    let initializing = messages
        .iter()
        .any(|m| m.method.as_deref() == Some("initialize"));
    if !initializing {
        if let Err(e) = check_session(gw, &plan, key, &parts.headers) {
            return reply_error(&e, first_id.as_ref());
        }
    }

    let mut answers = Vec::new();
    let mut new_session = None;
    let mut only_error = None;
    for m in messages {
        let Some(answer) = answer(gw, &plan, key, &parts.headers, m, &mut new_session).await else {
            continue;
        };
        if !batch {
            if let (Err(e), _) = &answer {
                only_error = Some(e.clone());
            }
        }
        answers.push(match answer {
            (Ok(result), id) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
            (Err(e), id) => e.to_json(Some(&id)),
        });
    }
    let mut resp = match (answers.len(), batch) {
        // Only notifications and responses: nothing to answer.
        (0, _) => {
            let mut r = respond::json(StatusCode::ACCEPTED, "");
            r.headers_mut().remove(header::CONTENT_TYPE);
            r
        }
        (_, true) => respond::json(StatusCode::OK, Value::Array(answers).to_string()),
        (_, false) => {
            let mut r = respond::json(
                only_error.as_ref().map_or(StatusCode::OK, |e| e.status),
                answers.swap_remove(0).to_string(),
            );
            if let Some(secs) = only_error.and_then(|e| e.retry_after) {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    };
    if let Some(s) = new_session {
        let id = session::sign(&s, gw.mcp.secret(&plan.mcp));
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    resp
}

/// One message's answer; `None` for notifications and client responses.
async fn answer(
    gw: &Gateway,
    plan: &Plan,
    key: &KeyPlan,
    headers: &HeaderMap,
    m: Message,
    new_session: &mut Option<Session>,
) -> Option<(Result<Value, RpcError>, Value)> {
    if !m.is_request() {
        return None;
    }
    let id = m.id.clone().unwrap_or(Value::Null);
    let method = m.method.as_deref().unwrap_or_default();
    let result = if method == "initialize" {
        let requested = m.params["protocolVersion"].as_str();
        let version = session::negotiate(requested);
        *new_session = Some(Session {
            protocol_version: version.to_string(),
            key_id: key.id.to_string(),
            created: chrono::Utc::now().timestamp(),
        });
        Ok(methods::initialize(gw, version))
    } else {
        methods::dispatch(gw, plan, key, headers, method, &m.params).await
    };
    Some((result, id))
}

/// A session id, when sent, must be ours and belong to this key; an unknown one is a 404 so
/// the client starts a new session (as the transport spec says).
fn check_session(
    gw: &Gateway,
    plan: &Plan,
    key: &KeyPlan,
    headers: &HeaderMap,
) -> Result<(), RpcError> {
    if let Some(v) = headers.get(VERSION_HEADER) {
        let v = v.to_str().unwrap_or_default();
        if !PROTOCOL_VERSIONS.contains(&v) {
            return Err(RpcError::new(
                INVALID_REQUEST,
                format!(
                    "unsupported MCP protocol version `{v}` (supported: {})",
                    PROTOCOL_VERSIONS.join(", ")
                ),
            )
            .status(StatusCode::BAD_REQUEST));
        }
    }
    let Some(id) = headers.get(SESSION_HEADER) else {
        // Sessionless calls are served: every request carries its key anyway.
        return Ok(());
    };
    let valid = id
        .to_str()
        .ok()
        .and_then(|id| session::verify(id, gw.mcp.secret(&plan.mcp)))
        .is_some_and(|s| *s.key_id == *key.id);
    if valid {
        Ok(())
    } else {
        Err(
            RpcError::new(-32001, "session not found: initialize a new session")
                .status(StatusCode::NOT_FOUND),
        )
    }
}

pub fn reply_error(e: &RpcError, id: Option<&Value>) -> ProxyResponse {
    let status = if e.status.is_success() {
        StatusCode::OK
    } else {
        e.status
    };
    let mut resp = respond::json(status, e.to_json(id).to_string());
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
