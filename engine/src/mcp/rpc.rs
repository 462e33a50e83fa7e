//! JSON-RPC 2.0 as `/mcp` speaks it: parsing one message or a batch, and errors. Gateway
//! refusals keep the status and `type` of SPEC §4 (a 429 stays a 429) and carry the same
//! fields in `error.data`, so HTTP-aware clients and MCP SDKs both see why.

use crate::error::{ApiError, ErrorType};
use http::StatusCode;
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// One incoming message: a request (has an id), a notification (no id) or a response the
/// client sends back (has an id and `result`/`error`).
#[derive(Debug)]
pub struct Message {
    pub id: Option<Value>,
    pub method: Option<String>,
    pub params: Value,
}

impl Message {
    pub fn is_request(&self) -> bool {
        self.id.is_some() && self.method.is_some()
    }
}

/// The body of a POST: one message or a batch.
pub fn parse(body: &[u8]) -> Result<(Vec<Message>, bool), RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        RpcError::new(
            PARSE_ERROR,
            format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
        .status(StatusCode::BAD_REQUEST)
    })?;
    let (items, batch) = match value {
        Value::Array(items) if !items.is_empty() => (items, true),
        Value::Array(_) => {
            return Err(
                RpcError::new(INVALID_REQUEST, "empty batch").status(StatusCode::BAD_REQUEST)
            )
        }
        one => (vec![one], false),
    };
    let messages = items
        .into_iter()
        .map(|item| {
            let Value::Object(mut obj) = item else {
                return Err(
                    RpcError::new(INVALID_REQUEST, "a JSON-RPC message must be an object")
                        .status(StatusCode::BAD_REQUEST),
                );
            };
            if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
                return Err(RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\"")
                    .status(StatusCode::BAD_REQUEST));
            }
            let method = match obj.remove("method") {
                Some(Value::String(m)) => Some(m),
                None => None,
                Some(_) => {
                    return Err(RpcError::new(INVALID_REQUEST, "`method` must be a string")
                        .status(StatusCode::BAD_REQUEST))
                }
            };
            Ok(Message {
                id: obj.remove("id").filter(|id| !id.is_null()),
                method,
                params: obj.remove("params").unwrap_or(Value::Null),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((messages, batch))
}

#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
    /// The HTTP status when this error is the whole answer (not part of a batch).
    pub status: StatusCode,
    pub retry_after: Option<u64>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
            status: StatusCode::OK,
            retry_after: None,
        }
    }

    pub fn status(mut self, status: StatusCode) -> RpcError {
        self.status = status;
        self
    }

    pub fn to_json(&self, id: Option<&Value>) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            error.insert("data".into(), data.clone());
        }
        json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
    }
}

impl From<ApiError> for RpcError {
    fn from(e: ApiError) -> RpcError {
        let code = match e.kind {
            ErrorType::InvalidRequest => INVALID_PARAMS,
            ErrorType::BodyTooLarge => INVALID_REQUEST,
            ErrorType::MissingKey | ErrorType::InvalidKey | ErrorType::Unauthorized => -32001,
            ErrorType::BudgetExceeded => -32002,
            ErrorType::ModelNotAllowed
            | ErrorType::ToolNotAllowed
            | ErrorType::GuardrailBlocked => -32003,
            ErrorType::RateLimited => -32029,
            ErrorType::NotFound => METHOD_NOT_FOUND,
            _ => INTERNAL_ERROR,
        };
        let mut data = e.fields.clone();
        data.insert("type".into(), e.kind.as_str().into());
        data.insert("status".into(), e.status().as_u16().into());
        RpcError {
            code,
            message: e.message.clone(),
            data: Some(Value::Object(data)),
            status: e.status(),
            retry_after: e.retry_after,
        }
    }
}

/// The gateway's error `type` of an answer, for the request log.
pub fn error_type(e: &RpcError) -> String {
    e.data
        .as_ref()
        .and_then(|d| d["type"].as_str())
        .map_or_else(|| format!("jsonrpc_{}", -e.code), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_messages_and_batches_parse() {
        let (m, batch) = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(!batch && m[0].is_request());
        let (m, batch) = parse(
            br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"a","result":{}}]"#,
        )
        .unwrap();
        assert!(batch);
        assert!(!m[0].is_request() && !m[1].is_request());
    }

    #[test]
    fn malformed_bodies_are_400_with_a_reason() {
        let e = parse(b"{nope").unwrap_err();
        assert_eq!((e.code, e.status), (PARSE_ERROR, StatusCode::BAD_REQUEST));
        assert!(e.message.contains("line 1"));
        assert_eq!(parse(b"[]").unwrap_err().code, INVALID_REQUEST);
        assert_eq!(
            parse(br#"{"id":1,"method":"ping"}"#).unwrap_err().code,
            INVALID_REQUEST
        );
    }

    #[test]
    fn gateway_refusals_keep_status_and_type() {
        let e: RpcError = ApiError::new(ErrorType::ToolNotAllowed, "no").into();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let body = e.to_json(Some(&json!(7)));
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["data"]["type"], "tool_not_allowed");
        assert_eq!(error_type(&e), "tool_not_allowed");
    }
}
