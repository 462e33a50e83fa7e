//! The policy stage before admission (SPEC §6 order): model allowed → input guardrails →
//! routing rules. Produces the model to route, its fallbacks and any redacted messages.

use super::request::RequestHead;
use super::view::ProxyView;
use super::Gateway;
use crate::admission::decide::{choose_route, RuleResult};
use crate::admission::guard;
use crate::admission::messages;
use crate::admission::route::check_model;
use crate::error::{ApiError, ErrorType};
use crate::guardrails::config::{Action, OnError};
use crate::plan::{GuardDetect, GuardrailPlan, KeyPlan, Plan};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::borrow::Cow;
use std::sync::Arc;

pub struct Inbound<'r> {
    pub model: Cow<'r, str>,
    /// `model` was chosen by a rule or alias and may use any provider.
    pub from_policy: bool,
    /// Models to try when `model` fails: the rule's, the request's, the alias's.
    pub fallbacks: Vec<Cow<'r, str>>,
    /// The messages after input redaction, when a guardrail changed them.
    pub redacted_messages: Option<String>,
    /// Guardrails that flagged the request (`x-tollgate-guardrail-flags`).
    pub flags: Vec<Arc<str>>,
    /// Every guardrail action taken on the request, for the request log.
    pub guardrail_actions: Vec<(Arc<str>, &'static str)>,
}

pub async fn apply<'p: 'r, 'r>(
    gw: &Gateway,
    plan: &'p Plan,
    key: &'p KeyPlan,
    head: &'r RequestHead<'r>,
    view: &ProxyView<'_>,
) -> Result<Inbound<'r>, ApiError> {
    check_model(plan, key, &head.model)?;
    let mut flags = Vec::new();
    let mut guardrail_actions = Vec::new();
    let mut redacted_messages = None;
    if let (false, Some(raw)) = (key.input_guardrails.is_empty(), head.messages) {
        let mut msgs: serde_json::Value = serde_json::from_str(raw.get()).map_err(|e| {
            ApiError::new(
                ErrorType::InvalidRequest,
                format!("invalid `messages`: {e}"),
            )
        })?;
        let mut texts = messages::texts(&msgs);
        let original = texts.clone();
        let mut webhooks = Vec::new();
        let report = guard::check(
            &key.input_guardrails,
            view,
            &mut texts,
            &mut || fastrand::f64(),
            &mut webhooks,
        );
        for (g, action) in report.actions() {
            gw.metrics.record_guardrail(g, action);
        }
        for g in &report.redacted_by {
            guardrail_actions.push((g.clone(), "redact"));
        }
        for g in &report.cel_errors {
            gw.metrics.record_cel_error(g);
        }
        if let Some(g) = &report.blocked_by {
            return Err(blocked(g));
        }
        for g in webhooks {
            if webhook_flags(gw, g, "input", &head.model, &texts).await {
                gw.metrics.record_guardrail(&g.name, action_name(g.action));
                match g.action {
                    Action::Block => return Err(blocked(&g.name)),
                    _ => flags.push(g.name.clone()),
                }
            }
        }
        flags.extend(report.flagged);
        if texts != original {
            messages::replace_texts(&mut msgs, &texts);
            redacted_messages = Some(msgs.to_string());
        }
    }
    let choice = choose_route(
        plan,
        key,
        &head.model,
        &head.fallbacks,
        view,
        fastrand::u64(..),
        &mut |rule, result| {
            if let RuleResult::Error(_) = result {
                gw.metrics.record_cel_error(&rule.name);
            }
        },
    );
    Ok(Inbound {
        model: choice.model,
        from_policy: choice.from_policy,
        fallbacks: choice.fallbacks,
        redacted_messages,
        flags,
        guardrail_actions,
    })
}

fn blocked(guardrail: &str) -> ApiError {
    ApiError::new(
        ErrorType::GuardrailBlocked,
        format!("request blocked by guardrail `{guardrail}`"),
    )
    .with("guardrail", guardrail.into())
}

pub(crate) fn action_name(a: Action) -> &'static str {
    match a {
        Action::Block => "block",
        Action::Redact => "redact",
        Action::Flag => "flag",
    }
}

/// Asks a webhook detector: POST `{guardrail, stage, model, texts}`, expects
/// `{"flagged": bool}`. A timeout, connection error, non-2xx or unreadable answer follows
/// `on_error`. `stage` is `input` or `output` (the outbound check uses this too).
pub(crate) async fn webhook_flags(
    gw: &Gateway,
    g: &GuardrailPlan,
    stage: &str,
    model: &str,
    texts: &[String],
) -> bool {
    let GuardDetect::Webhook {
        url,
        timeout,
        on_error,
    } = &g.detect
    else {
        return false;
    };
    let body =
        serde_json::json!({"guardrail": &*g.name, "stage": stage, "model": model, "texts": texts});
    let req = http::Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())));
    let verdict = async {
        let resp = gw
            .upstreams
            .default_client()
            .request(req.ok()?)
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["flagged"].as_bool()
    };
    match tokio::time::timeout(*timeout, verdict).await {
        Ok(Some(flagged)) => flagged,
        _ => {
            tracing::warn!(guardrail = %g.name, "guardrail webhook failed; applying on_error");
            *on_error == OnError::Block
        }
    }
}
