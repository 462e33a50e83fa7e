//! What one simulated request went through: the record `tollgate test` compares and
//! `tollgate explain` prints (as text, or as JSON with `--json`).

use crate::error::ApiError;
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Decision {
    /// The key the request ran as; `None` when it was refused before one was resolved.
    pub key: Option<KeyInfo>,
    /// The model the body asked for.
    pub model: Option<String>,
    /// Whether the key may use `model`; `None` when the request stopped earlier.
    pub model_allowed: Option<bool>,
    /// Each input guardrail of the key, in order, as far as evaluation went.
    pub guardrails: Vec<GuardTrace>,
    /// Guardrails that flagged the request.
    pub flagged: Vec<String>,
    /// Webhook guardrails that applied but were not called (no network in test/explain).
    pub webhooks_not_evaluated: Vec<String>,
    /// The last user message after input redaction (the original text when nothing changed).
    pub last_user_text: Option<String>,
    /// Each rule in the key's order, then the rules that do not apply to this key.
    pub rules: Vec<RuleTrace>,
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// The matched rule's weighted targets. Live traffic splits by weight; test and
    /// explain take the first.
    pub targets: Vec<(String, u32)>,
    pub route: Option<RouteInfo>,
    pub fallbacks: Vec<String>,
    /// Providers that dropped out because their own tier was exhausted.
    pub dropped: Vec<Dropped>,
    /// The limits of every tier of the chosen route, with their use before this request.
    pub limits: Vec<LimitInfo>,
    pub outcome: Outcome,
    /// MCP: the tool call's arguments as they would reach the server (after redaction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_arguments: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub team: Option<String>,
    pub customer: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GuardTrace {
    pub name: String,
    pub action: &'static str,
    /// The guardrail's `when`, as written.
    pub when: Option<String>,
    pub sample_rate: f64,
    /// `when_false`, `cel_error`, `not_sampled`, `webhook_not_evaluated`, `detected` or
    /// `not_detected`.
    pub result: &'static str,
    /// The runtime CEL error, for `cel_error`.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleTrace {
    pub name: String,
    pub scope: String,
    pub priority: Option<i64>,
    /// 1-based line of the rule in the config.
    pub line: usize,
    /// The condition as written (`None`: always).
    pub when: Option<String>,
    /// `matched`, `not_matched`, `cel_error`, `not_reached` (an earlier rule matched) or
    /// `not_applicable` (scope, or a condition on `key` that is false for this key).
    pub result: &'static str,
    /// Why: the CEL error, or what made the rule not applicable.
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteInfo {
    /// `provider/model`.
    pub route: String,
    pub provider: String,
    /// The model name the provider is asked for.
    pub upstream_model: String,
    /// The name of the provider credential (never the secret); `None` for keyless providers.
    pub provider_key: Option<String>,
    /// The request named the provider, so no other may serve it.
    pub pinned: bool,
    /// A rule or alias chose the model.
    pub from_policy: bool,
}

#[derive(Debug, Serialize)]
pub struct Dropped {
    pub provider: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct LimitInfo {
    /// `provider-config`, `key` (the key, its team or its customer) or `provider`.
    pub tier: &'static str,
    pub scope: String,
    /// `requests`, `tokens`, `budget_usd` or `concurrent`.
    pub kind: &'static str,
    pub window: Option<String>,
    /// Dollars for budgets, counts otherwise.
    pub limit: serde_json::Value,
    pub used: serde_json::Value,
    /// In flight (reserved by requests not yet settled).
    pub reserved: serde_json::Value,
}

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// 200 when admitted, else the status the gateway would answer.
    pub status: u16,
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    pub guardrail: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    pub fn admitted() -> Outcome {
        Outcome {
            status: 200,
            ..Default::default()
        }
    }

    pub fn refused(e: &ApiError) -> Outcome {
        Outcome {
            status: e.status().as_u16(),
            error_type: Some(e.kind.as_str().to_string()),
            guardrail: e
                .fields
                .get("guardrail")
                .and_then(|g| g.as_str())
                .map(str::to_string),
            message: Some(e.message.clone()),
        }
    }

    /// `200`, or `403 guardrail_blocked: request blocked by ...`.
    pub fn summary(&self) -> String {
        match (&self.error_type, &self.message) {
            (Some(t), Some(m)) => format!("{} {t}: {m}", self.status),
            _ => self.status.to_string(),
        }
    }
}
