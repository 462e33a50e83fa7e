//! The Anthropic error body, `{"type": "error", "error": {"type", "message"}}`, for clients
//! on `/anthropic`. The Anthropic SDKs pick their exception class from the HTTP status; the
//! `type` names the kind of failure in Anthropic's own vocabulary.

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ErrorType};

/// The Anthropic error type for a gateway error type.
pub fn error_type_for(kind: ErrorType) -> &'static str {
    match kind {
        ErrorType::InvalidRequest | ErrorType::MethodNotAllowed => "invalid_request_error",
        ErrorType::MissingKey | ErrorType::InvalidKey | ErrorType::Unauthorized => {
            "authentication_error"
        }
        ErrorType::ModelNotAllowed | ErrorType::GuardrailBlocked | ErrorType::ToolNotAllowed => {
            "permission_error"
        }
        ErrorType::BudgetExceeded => "billing_error",
        ErrorType::RateLimited => "rate_limit_error",
        ErrorType::NotFound => "not_found_error",
        ErrorType::BodyTooLarge => "request_too_large",
        ErrorType::UpstreamError | ErrorType::StateUnavailable => "api_error",
        ErrorType::UpstreamTimeout => "timeout_error",
    }
}

/// The Anthropic error type for an HTTP status, for errors that carry no gateway type (a
/// provider's answer in another format, say). Follows Anthropic's table: other 4xx are
/// `invalid_request_error`, other 5xx `api_error`.
pub fn error_type_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The Anthropic error body for a status, an optional gateway error type (without one, the
/// type follows the status) and a message.
pub fn error_body(status: StatusCode, kind: Option<ErrorType>, message: &str) -> Value {
    let error_type = kind.map_or_else(|| error_type_for_status(status), error_type_for);
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

/// The Anthropic body of a gateway error. The structured fields (`attempts`, `scope`, ...) are
/// kept beside `type` and `message`, as in the OpenAI shape; Anthropic clients ignore fields
/// they do not know.
pub fn api_error_body(error: &ApiError) -> Value {
    let mut inner: Map<String, Value> = error.fields.clone();
    inner.insert("type".into(), error_type_for(error.kind).into());
    inner.insert("message".into(), error.message.clone().into());
    json!({"type": "error", "error": inner})
}
