//! Output-stage guardrails (SPEC §7) on chat completions: the key's `stage: output|both`
//! guardrails run on the provider's answer before the client sees it.
//!
//! - A whole answer is checked at once over `choices[].message.content`: `block` turns it into
//!   a 403 `guardrail_blocked` (its usage is still charged: the tokens were spent), `redact`
//!   rewrites the contents (the body is re-serialized only then), `flag` adds the guardrail to
//!   `x-tollgate-guardrail-flags`.
//! - A stream is rewritten event by event ([`stream::StreamGuard`]): redaction applies to the
//!   text as it passes, matches spanning chunks included. `block` and `flag` need the whole
//!   text, which the client has by then, so they run when the stream ends: `block` replaces
//!   `[DONE]` with an error event, `flag` is counted and logged (the headers are long gone).
//!
//! Expressions (`when`, `cel`) see `response` (content, finish_reason, tokens, provider,
//! model). In a stream, whether a redacting guardrail applies is decided before the first
//! byte, when `response.content` and `finish_reason` are still empty.

mod answer_text;
mod stream;

use super::inbound::{action_name, webhook_flags};
use super::relay::Rewrite;
use super::view::WithResponse;
use super::Gateway;
use crate::admission::guard::{self, GuardReport};
use crate::error::{ApiError, ErrorType};
use crate::guardrails::Action;
use crate::plan::{GuardDetect, KeyGuardrail, KeyPlan};
use crate::policy::{RequestData, RequestView, ResponseAttrs, Var, Vars};
use crate::telemetry::{Endpoint, Metrics};
use answer_text::AnswerText;
use bytes::Bytes;
use http::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use stream::{EndCheck, Redacting, StreamGuard};

/// Who answered, for `response.provider` and `response.model`.
#[derive(Debug, Clone, Copy)]
pub struct Answerer<'a> {
    pub provider: &'a str,
    pub model: &'a str,
}

/// The key's output guardrails, when there are any for this endpoint (chat only: embeddings
/// have no text to check).
fn output_guardrails(key: &KeyPlan, endpoint: Endpoint) -> Option<&[KeyGuardrail]> {
    (endpoint == Endpoint::Chat && !key.output_guardrails.is_empty())
        .then_some(&key.output_guardrails[..])
}

/// Whether the key's output guardrails read answers on `endpoint`.
pub fn has_output_guardrails(key: &KeyPlan, endpoint: Endpoint) -> bool {
    output_guardrails(key, endpoint).is_some()
}

/// Checks a whole (non-stream) answer. Returns the body the client gets (the same bytes unless
/// a redaction changed them) and the guardrails that flagged it; a block is an error.
pub async fn check_answer(
    gw: &Gateway,
    key: &KeyPlan,
    endpoint: Endpoint,
    status: StatusCode,
    view: &dyn RequestView,
    by: Answerer<'_>,
    body: Bytes,
) -> Result<(Bytes, Vec<Arc<str>>), ApiError> {
    let Some(guardrails) = output_guardrails(key, endpoint).filter(|_| status.is_success()) else {
        return Ok((body, Vec::new()));
    };
    let Some(answer) = AnswerText::read(&body) else {
        // The client could not read it as a completion either; there is no text to check.
        tracing::warn!(
            provider = by.provider,
            "answer is not JSON; output guardrails skipped"
        );
        return Ok((body, Vec::new()));
    };
    let mut texts = answer.texts;
    let content = texts.join("\n");
    let response = ResponseAttrs {
        content: &content,
        finish_reason: &answer.finish_reason,
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        provider: by.provider,
        model: by.model,
    };
    let mut webhooks = Vec::new();
    let report = guard::check(
        guardrails,
        &WithResponse {
            request: view,
            response,
        },
        &mut texts,
        &mut || fastrand::f64(),
        &mut webhooks,
    );
    record(&gw.metrics, &report);
    if let Some(g) = &report.blocked_by {
        return Err(blocked(g));
    }
    let mut flags = report.flagged;
    for g in webhooks {
        if webhook_flags(gw, g, "output", by.model, &texts).await {
            gw.metrics.record_guardrail(&g.name, action_name(g.action));
            match g.action {
                Action::Block => return Err(blocked(&g.name)),
                _ => flags.push(g.name.clone()),
            }
        }
    }
    if report.redacted_by.is_empty() {
        return Ok((body, flags));
    }
    match answer_text::write_back(&body, texts) {
        Ok(redacted) => Ok((redacted, flags)),
        // Not reachable for a body just read; never send the unredacted text instead.
        Err(e) => Err(ApiError::new(
            ErrorType::UpstreamError,
            format!("cannot re-encode the redacted answer: {e}"),
        )),
    }
}

/// The rewrite for a stream, or `None` when no output guardrail applies: the relay then
/// forwards the upstream bytes untouched.
pub fn stream_guard(
    gw: &Gateway,
    key: &KeyPlan,
    endpoint: Endpoint,
    view: &dyn RequestView,
    by: Answerer<'_>,
    prompt_estimate: u64,
) -> Option<Box<dyn Rewrite>> {
    let guardrails = output_guardrails(key, endpoint)?;
    let before_first_byte = WithResponse {
        request: view,
        response: ResponseAttrs {
            content: "",
            finish_reason: "",
            prompt_tokens: prompt_estimate as i64,
            completion_tokens: 0,
            provider: by.provider,
            model: by.model,
        },
    };
    let mut redacting = Vec::new();
    let mut at_end = Vec::new();
    let mut vars = Vars::NONE;
    for kg in guardrails {
        let g = &kg.guardrail;
        match (&g.detect, g.action) {
            (GuardDetect::Text(d), Action::Redact) => {
                if applies(kg, &before_first_byte, &gw.metrics) {
                    redacting.push(Redacting::new(g.name.clone(), d.clone()));
                }
            }
            // Config validation rejects these: they would find no text to replace.
            (_, Action::Redact) => {}
            (GuardDetect::Webhook { .. }, _) => warn_webhook_once(&g.name),
            (detect, _) => {
                for expr in kg.when.iter().chain(match detect {
                    GuardDetect::Cel(e) => Some(e),
                    _ => None,
                }) {
                    vars = vars | expr.vars();
                }
                at_end.push(kg.clone());
            }
        }
    }
    if redacting.is_empty() && at_end.is_empty() {
        return None;
    }
    let end = (!at_end.is_empty()).then(|| EndCheck {
        guardrails: at_end,
        request: snapshot(view, vars),
        provider: by.provider.to_string(),
        model: by.model.to_string(),
        prompt_estimate,
    });
    Some(Box::new(StreamGuard::new(
        gw.metrics.clone(),
        redacting,
        end,
    )))
}

/// `when` and `sample_rate` of one guardrail; a runtime CEL error means "does not apply".
fn applies(kg: &KeyGuardrail, view: &dyn RequestView, metrics: &Metrics) -> bool {
    if let Some(when) = &kg.when {
        match when.eval_view(view) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(_) => {
                metrics.record_cel_error(&kg.guardrail.name);
                return false;
            }
        }
    }
    let rate = kg.guardrail.sample_rate;
    rate >= 1.0 || fastrand::f64() < rate
}

/// A webhook needs a round trip, which the relay cannot make between two events; said once
/// per process rather than once per stream.
fn warn_webhook_once(guardrail: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Relaxed) {
        tracing::warn!(
            guardrail,
            "webhook output guardrails are not run on streamed answers"
        );
    }
}

/// The request variables `vars` as owned data, so checks at the end of a stream (after the
/// handler, and the request it borrowed, are gone) can still read them.
fn snapshot(view: &dyn RequestView, vars: Vars) -> RequestData {
    let mut data = RequestData {
        model: view.model().to_string(),
        provider: view.provider().to_string(),
        endpoint: view.endpoint().to_string(),
        stream: view.stream(),
        ..RequestData::default()
    };
    for var in vars.iter() {
        match var {
            Var::Headers => view.visit_headers(&mut |k, v| {
                data.headers.insert(k.to_string(), v.to_string());
            }),
            Var::Params => view.visit_params(&mut |k, v| {
                data.params.insert(k.to_string(), v.clone());
            }),
            Var::Messages => view.visit_messages(&mut |role, text| {
                data.messages.push((role.to_string(), text.to_string()));
            }),
            Var::Prompt => data.prompt = view.prompt().to_string(),
            Var::PromptTokens => data.prompt_tokens = view.prompt_tokens(),
            Var::Key => data.key = view.key().clone(),
            Var::Usage => data.usage = view.usage(),
            Var::Now => data.now = view.now(),
            // Cheap, and set above; `response` is filled in at the end; `tool` is MCP only.
            Var::Model | Var::Provider | Var::Endpoint | Var::Stream => {}
            Var::Response | Var::Tool => {}
        }
    }
    data
}

/// Counts every action and CEL error of a check.
fn record(metrics: &Metrics, report: &GuardReport) {
    for (g, action) in report.actions() {
        metrics.record_guardrail(g, action);
    }
    for g in &report.cel_errors {
        metrics.record_cel_error(g);
    }
}

fn blocked(guardrail: &str) -> ApiError {
    ApiError::new(
        ErrorType::GuardrailBlocked,
        format!("response blocked by guardrail `{guardrail}`"),
    )
    .with("guardrail", guardrail.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{KeyAttrs, RequestData};

    #[test]
    fn snapshot_copies_only_what_is_read() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("x-team".to_string(), "ml".to_string());
        let view = RequestData {
            model: "gpt-x".into(),
            headers,
            prompt: "hello".into(),
            key: KeyAttrs {
                id: "vk".into(),
                ..KeyAttrs::default()
            },
            ..RequestData::default()
        };
        let s = snapshot(&view, Vars::of(Var::Headers));
        assert_eq!(s.model, "gpt-x");
        assert_eq!(s.header("x-team"), Some("ml"));
        assert_eq!((s.prompt.as_str(), &*s.key.id), ("", ""));
        let s = snapshot(&view, Vars::of(Var::Prompt).with(Var::Key));
        assert_eq!((s.prompt.as_str(), &*s.key.id), ("hello", "vk"));
        assert!(s.headers.is_empty());
    }
}
