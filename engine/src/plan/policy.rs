//! Compiled routing rules and guardrails, already merged and folded per key.

use crate::guardrails::config::{Action, OnError, Stage};
use crate::guardrails::Detector;
use crate::policy::Expr;
use http::Uri;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct RulePlan {
    pub name: Arc<str>,
    pub scope: Arc<str>,
    /// The condition as written (`None`: always).
    pub when: Option<Expr>,
    /// Weighted targets: `provider/model`, bare model or alias.
    pub targets: Vec<(Arc<str>, u32)>,
    pub fallbacks: Vec<Arc<str>>,
}

/// A rule as one key sees it: its condition with the key's static attributes folded in.
#[derive(Debug, Clone)]
pub struct KeyRule {
    pub rule: Arc<RulePlan>,
    /// `None`: always true for this key.
    pub when: Option<Expr>,
}

#[derive(Debug)]
pub struct GuardrailPlan {
    pub name: Arc<str>,
    pub stage: Stage,
    pub detect: GuardDetect,
    pub action: Action,
    pub sample_rate: f64,
}

#[derive(Debug)]
pub enum GuardDetect {
    /// Regex, keywords or PII: finds spans, so it can redact.
    Text(Arc<Detector>),
    /// A CEL condition over the request (and `response` at the output stage).
    Cel(Expr),
    /// An HTTP check: POST of the text, `{"flagged": bool}` back.
    Webhook {
        url: Uri,
        timeout: Duration,
        on_error: OnError,
    },
}

/// A guardrail as one key sees it: `when` folded against the key.
#[derive(Debug, Clone)]
pub struct KeyGuardrail {
    pub guardrail: Arc<GuardrailPlan>,
    pub when: Option<Expr>,
}
