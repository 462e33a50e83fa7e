//! Errors a client sees: a status, a stable `type` (SPEC §4), a message a user can act on,
//! and optional structured fields (e.g. the list of upstream attempts).

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    MissingKey,
    InvalidKey,
    ModelNotAllowed,
    GuardrailBlocked,
    ToolNotAllowed,
    BudgetExceeded,
    RateLimited,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    UpstreamError,
    UpstreamTimeout,
    StateUnavailable,
    Unauthorized,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::MissingKey => "missing_key",
            ErrorType::InvalidKey => "invalid_key",
            ErrorType::ModelNotAllowed => "model_not_allowed",
            ErrorType::GuardrailBlocked => "guardrail_blocked",
            ErrorType::ToolNotAllowed => "tool_not_allowed",
            ErrorType::BudgetExceeded => "budget_exceeded",
            ErrorType::RateLimited => "rate_limited",
            ErrorType::NotFound => "not_found",
            ErrorType::MethodNotAllowed => "method_not_allowed",
            ErrorType::BodyTooLarge => "body_too_large",
            ErrorType::UpstreamError => "upstream_error",
            ErrorType::UpstreamTimeout => "upstream_timeout",
            ErrorType::StateUnavailable => "state_unavailable",
            ErrorType::Unauthorized => "unauthorized",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorType::MissingKey | ErrorType::InvalidKey | ErrorType::Unauthorized => {
                StatusCode::UNAUTHORIZED
            }
            ErrorType::ModelNotAllowed
            | ErrorType::GuardrailBlocked
            | ErrorType::ToolNotAllowed => StatusCode::FORBIDDEN,
            ErrorType::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::UpstreamError => StatusCode::BAD_GATEWAY,
            ErrorType::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorType::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
    /// Extra fields merged into the error object (`attempts`, `scope`, ...).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Seconds for a `retry-after` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            fields: serde_json::Map::new(),
            retry_after: None,
        }
    }

    pub fn with(mut self, field: &str, value: serde_json::Value) -> ApiError {
        self.fields.insert(field.to_string(), value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The OpenAI-shaped body: `{"error": {"type", "message", "code", ...fields}}`.
    pub fn openai_body(&self) -> Vec<u8> {
        let mut obj = self.fields.clone();
        obj.insert("type".into(), self.kind.as_str().into());
        obj.insert("code".into(), self.kind.as_str().into());
        obj.insert("message".into(), self.message.clone().into());
        serde_json::to_vec(&serde_json::json!({ "error": obj })).unwrap_or_default()
    }
}
