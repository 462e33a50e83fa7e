//! Guardrails on text: each of the key's guardrails in order — `when`, sampling, detection,
//! then block (stop), redact (rewrite the texts) or flag (report). Webhook detectors need
//! I/O and are handed back to the caller.

use crate::guardrails::config::Action;
use crate::guardrails::redact;
use crate::plan::{GuardDetect, GuardrailPlan, KeyGuardrail};
use crate::policy::RequestView;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct GuardReport {
    /// The guardrail that blocked, if one did.
    pub blocked_by: Option<Arc<str>>,
    pub flagged: Vec<Arc<str>>,
    pub redacted_by: Vec<Arc<str>>,
    /// Guardrails whose `when` or `cel` failed at run time (treated as not applying).
    pub cel_errors: Vec<Arc<str>>,
}

impl GuardReport {
    /// Every action taken, as (guardrail, action) for metrics and logs.
    pub fn actions(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.blocked_by
            .iter()
            .map(|g| (&**g, "block"))
            .chain(self.redacted_by.iter().map(|g| (&**g, "redact")))
            .chain(self.flagged.iter().map(|g| (&**g, "flag")))
    }
}

/// Runs `guardrails` over `texts` (rewritten in place by redactions). `sample` draws a
/// uniform number in [0, 1) for `sample_rate`. Webhook guardrails that apply are pushed to
/// `webhooks` for the caller to run.
pub fn check<'p>(
    guardrails: &'p [KeyGuardrail],
    view: &dyn RequestView,
    texts: &mut [String],
    sample: &mut dyn FnMut() -> f64,
    webhooks: &mut Vec<&'p GuardrailPlan>,
) -> GuardReport {
    let mut report = GuardReport::default();
    for kg in guardrails {
        let g = &*kg.guardrail;
        if let Some(when) = &kg.when {
            match when.eval_view(view) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    report.cel_errors.push(g.name.clone());
                    continue;
                }
            }
        }
        if g.sample_rate < 1.0 && sample() >= g.sample_rate {
            continue;
        }
        let hit = match &g.detect {
            GuardDetect::Webhook { .. } => {
                webhooks.push(g);
                false
            }
            GuardDetect::Cel(expr) => match expr.eval_view(view) {
                Ok(b) => b,
                Err(_) => {
                    report.cel_errors.push(g.name.clone());
                    false
                }
            },
            GuardDetect::Text(d) => match g.action {
                Action::Redact => {
                    let mut any = false;
                    for t in texts.iter_mut() {
                        let found = d.find(t);
                        if !found.is_empty() {
                            *t = redact(t, &found);
                            any = true;
                        }
                    }
                    any
                }
                _ => texts.iter().any(|t| d.is_match(t)),
            },
        };
        if !hit {
            continue;
        }
        match g.action {
            Action::Block => {
                report.blocked_by = Some(g.name.clone());
                return report;
            }
            Action::Redact => report.redacted_by.push(g.name.clone()),
            Action::Flag => report.flagged.push(g.name.clone()),
        }
    }
    report
}
