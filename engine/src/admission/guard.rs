//! Guardrails on text: each of the key's guardrails in order — `when`, sampling, detection,
//! then block (stop), redact (rewrite the texts) or flag (report). Webhook detectors need
//! I/O and are handed back to the caller.

use crate::guardrails::config::Action;
use crate::guardrails::redact;
use crate::plan::{GuardDetect, GuardrailPlan, KeyGuardrail};
use crate::policy::{EvalError, RequestView};
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

/// How one guardrail fared, for `tollgate explain` and `tollgate test`.
#[derive(Debug)]
pub enum GuardStep<'e> {
    /// Its `when` was false for this request.
    WhenFalse,
    /// Its `when` or its `cel` detector failed at run time: treated as not applying.
    CelError(&'e EvalError),
    /// Not drawn by `sample_rate`.
    NotSampled,
    /// A webhook detector: handed back to the caller, who does the I/O.
    Webhook,
    /// Its detector ran; `detected` says whether it found something (then its action applied).
    Checked { detected: bool },
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
    check_traced(guardrails, view, texts, sample, webhooks, |_, _| {})
}

/// [`check`], reporting each guardrail's step to `trace`. Generic so that the no-op tracer
/// of the request path compiles away.
pub fn check_traced<'p, T>(
    guardrails: &'p [KeyGuardrail],
    view: &dyn RequestView,
    texts: &mut [String],
    sample: &mut dyn FnMut() -> f64,
    webhooks: &mut Vec<&'p GuardrailPlan>,
    mut trace: T,
) -> GuardReport
where
    T: FnMut(&'p GuardrailPlan, GuardStep<'_>),
{
    let mut report = GuardReport::default();
    for kg in guardrails {
        let g = &*kg.guardrail;
        if let Some(when) = &kg.when {
            match when.eval_view(view) {
                Ok(true) => {}
                Ok(false) => {
                    trace(g, GuardStep::WhenFalse);
                    continue;
                }
                Err(e) => {
                    trace(g, GuardStep::CelError(&e));
                    report.cel_errors.push(g.name.clone());
                    continue;
                }
            }
        }
        if g.sample_rate < 1.0 && sample() >= g.sample_rate {
            trace(g, GuardStep::NotSampled);
            continue;
        }
        let hit = match &g.detect {
            GuardDetect::Webhook { .. } => {
                trace(g, GuardStep::Webhook);
                webhooks.push(g);
                continue;
            }
            GuardDetect::Cel(expr) => match expr.eval_view(view) {
                Ok(b) => b,
                Err(e) => {
                    trace(g, GuardStep::CelError(&e));
                    report.cel_errors.push(g.name.clone());
                    continue;
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
        trace(g, GuardStep::Checked { detected: hit });
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
