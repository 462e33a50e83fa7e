//! One request through the decision functions of the live path, in its order, without
//! network: key → body → model allowed → input guardrails → routing rules → route and limits
//! (SPEC §6). Weighted choices are deterministic here: each takes its first candidate with a
//! weight above 0, so a test has one answer. `sample_rate` counts as sampled, and webhook
//! guardrails are not called (reported as not evaluated, i.e. not flagged).

use super::request::{last_user_text, request_data};
use super::trace::{
    Decision, Dropped, GuardTrace, KeyInfo, LimitInfo, Outcome, RouteInfo, RuleTrace,
};
use crate::admission::auth;
use crate::admission::decide::{choose_route, RuleResult};
use crate::admission::estimate::chat_prompt_tokens;
use crate::admission::guard::{self, GuardStep};
use crate::admission::limits::{self, kind_label, Estimate, Ledger};
use crate::admission::messages;
use crate::admission::route::price_of;
use crate::admission::route::{check_model, resolve_checked, Route};
use crate::config::LoadedConfig;
use crate::error::{ApiError, ErrorType};
use crate::guardrails::config::Action;
use crate::plan::{KeyPlan, LimitPlan, Plan};
use crate::proxy::parse_head;
use crate::state::LimitKind;
use crate::telemetry::Endpoint;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// The random number every weighted choice gets: 0 picks the first weighted candidate.
const ROLL: u64 = 0;

/// One request to decide.
pub struct Call<'a> {
    /// The virtual key id; `None` when the request presents no key.
    pub key: Option<&'a str>,
    /// Lower-case names.
    pub headers: &'a BTreeMap<String, String>,
    /// An OpenAI chat completions body.
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

/// Decides `call` over `plan`. `Err` only when the call names a key the config does not have
/// (a mistake in the test or command line, not a decision).
pub fn decide(plan: &Plan, loaded: &LoadedConfig, call: &Call<'_>) -> Result<Decision, String> {
    let mut d = Decision::default();
    match resolve_key(plan, call)? {
        Ok(key) => {
            d.key = Some(KeyInfo::of(key));
            if let Err(e) = run(plan, loaded, key, call, &mut d) {
                d.outcome = Outcome::refused(&e);
            }
        }
        Err(e) => d.outcome = Outcome::refused(&e),
    }
    Ok(d)
}

/// The key a test case or command line names (`anonymous`: the key of requests without one,
/// when the config lets them in), or, with none named, what the gateway does for a request
/// without a key. Outer `Err`: the config has no such key (a mistake in the case, not a
/// decision); inner `Err`: the gateway's refusal.
pub(super) fn resolve_key<'p>(
    plan: &'p Plan,
    call: &Call<'_>,
) -> Result<Result<&'p KeyPlan, ApiError>, String> {
    let now = call.now.timestamp();
    let Some(id) = call.key else {
        return Ok(auth::authenticate(plan, &http::HeaderMap::new(), now));
    };
    let key = match plan.key_by_id(id) {
        Some(k) => k,
        None if id == "anonymous" && !plan.auth_required => &plan.anonymous,
        None => return Err(format!("unknown virtual key `{id}`")),
    };
    Ok(auth::check_usable(key, now).map(|()| key))
}

impl KeyInfo {
    pub(super) fn of(key: &KeyPlan) -> KeyInfo {
        KeyInfo {
            id: key.id.to_string(),
            team: key.team.as_deref().map(str::to_string),
            customer: key.customer.as_deref().map(str::to_string),
        }
    }
}

/// The stages after authentication; an `Err` is the refusal the client would get.
fn run<'p>(
    plan: &'p Plan,
    loaded: &LoadedConfig,
    key: &'p KeyPlan,
    call: &Call<'_>,
    d: &mut Decision,
) -> Result<(), ApiError> {
    let head = parse_head(call.body, Endpoint::Chat)?;
    let view = request_data(&head, call.headers, call.body, key, call.now);
    d.model = Some(head.model.to_string());
    d.last_user_text = Some(view.prompt.clone());
    let allowed = check_model(plan, key, &head.model);
    d.model_allowed = Some(allowed.is_ok());
    allowed?;

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
        let mut steps = Vec::new();
        let report = guard::check_traced(
            &key.input_guardrails,
            &view,
            &mut texts,
            &mut || 0.0, // always drawn: a test checks what the guardrail does when it runs
            &mut webhooks,
            |g, step| steps.push(guard_trace(loaded, g, &step)),
        );
        d.guardrails = steps;
        d.webhooks_not_evaluated = webhooks.iter().map(|g| g.name.to_string()).collect();
        if let Some(g) = &report.blocked_by {
            return Err(ApiError::new(
                ErrorType::GuardrailBlocked,
                format!("request blocked by guardrail `{g}`"),
            )
            .with("guardrail", (**g).into()));
        }
        d.flagged = report.flagged.iter().map(|g| g.to_string()).collect();
        if texts != original {
            messages::replace_texts(&mut msgs, &texts);
            let after = messages::role_and_text(&msgs);
            d.last_user_text = Some(last_user_text(&after).to_string());
        }
    }

    let mut evaluated = 0;
    let choice = choose_route(
        plan,
        key,
        &head.model,
        &head.fallbacks,
        &view,
        ROLL,
        &mut |rule, result| {
            evaluated += 1;
            let (result, detail) = match result {
                RuleResult::Matched => ("matched", None),
                RuleResult::NotMatched => ("not_matched", None),
                RuleResult::Error(e) => ("cel_error", Some(e.clone())),
            };
            d.rules.push(rule_trace(loaded, rule, result, detail));
        },
    );
    for kr in &key.rules[evaluated..] {
        d.rules
            .push(rule_trace(loaded, &kr.rule, "not_reached", None));
    }
    not_applicable_rules(loaded, plan, key, &mut d.rules);
    d.rule = choice.rule.map(|r| r.name.to_string());
    d.targets = choice.rule.map_or_else(Vec::new, |r| {
        r.targets.iter().map(|(m, w)| (m.to_string(), *w)).collect()
    });

    let (route, excluded) = admit(plan, key, &head, &choice.model, choice.from_policy, call, d)?;
    d.fallbacks = choice.fallbacks.iter().map(|f| f.to_string()).collect();
    let routed = format!("{}/{}", route.provider.name, route.model);
    if !route.pinned {
        // Then the key's other weighted providers that serve the model (SPEC §6).
        for kp in &key.providers {
            let provider = &plan.providers[kp.provider];
            let other = format!("{}/{}", provider.name, route.model);
            if kp.provider != route.provider_index
                && !excluded.contains(&kp.provider)
                && provider.serves(route.model)
                && other != routed
                && !d.fallbacks.contains(&other)
            {
                d.fallbacks.push(other);
            }
        }
    }
    d.route = Some(RouteInfo {
        route: routed,
        provider: route.provider.name.to_string(),
        upstream_model: route.model.to_string(),
        provider_key: route.provider_key.map(|k| k.name.to_string()),
        pinned: route.pinned,
        from_policy: choice.from_policy,
    });
    d.outcome = Outcome::admitted();
    Ok(())
}

/// Route and reserve, as proxy/admit.rs does: a provider whose own tier is exhausted drops
/// out and the next candidate is tried. Returns the route and the providers that dropped out.
fn admit<'p, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    head: &crate::proxy::RequestHead<'_>,
    model: &'r str,
    from_policy: bool,
    call: &Call<'_>,
    d: &mut Decision,
) -> Result<(Route<'p, 'r>, Vec<usize>), ApiError> {
    let now = call.now.timestamp();
    let prompt_tokens = match (plan.counts_tokens, head.messages) {
        (true, Some(m)) => chat_prompt_tokens(m),
        _ => 0,
    };
    let output_tokens = head.max_output_tokens.unwrap_or(plan.default_output_tokens);
    let mut excluded = Vec::new();
    loop {
        let route = resolve_checked(plan, key, model, ROLL, &excluded, from_policy)?;
        let estimate = Estimate {
            prompt_tokens,
            output_tokens,
            price: price_of(plan, &route),
            flat_micros: 0,
        };
        d.limits = limit_infos(&route, key, now);
        let reserved = ready(limits::reserve(
            Ledger::Memory,
            &route.key_provider.limits,
            &key.limits,
            &route.provider.limits,
            &estimate,
            now,
        ))
        .ok_or_else(|| {
            ApiError::new(
                ErrorType::StateUnavailable,
                "memory counters did not answer at once",
            )
        })?;
        match reserved {
            // The reservation is dropped with the throwaway store; nothing is sent.
            Ok(_admitted) => return Ok((route, excluded)),
            Err(refusal) => {
                let can_drop_out = refusal.provider_tier() && !route.pinned;
                let err = refusal.into_error(call.now);
                let provider = route.provider_index;
                let other = key.providers.iter().any(|kp| {
                    kp.provider != provider
                        && !excluded.contains(&kp.provider)
                        && plan.providers[kp.provider].serves(model)
                });
                if !can_drop_out || !other {
                    return Err(err);
                }
                d.dropped.push(Dropped {
                    provider: route.provider.name.to_string(),
                    reason: err.message,
                });
                excluded.push(provider);
            }
        }
    }
}

/// Polls a future that never waits (memory counters) to completion without a runtime.
pub(super) fn ready<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

fn limit_infos(route: &Route, key: &KeyPlan, now: i64) -> Vec<LimitInfo> {
    let tiers = [
        ("provider-config", &route.key_provider.limits),
        ("key", &key.limits),
        ("provider", &route.provider.limits),
    ];
    let mut out = Vec::new();
    for (tier, limits) in tiers {
        for l in limits.iter() {
            out.push(limit_info(tier, l, now));
        }
    }
    out
}

fn limit_info(tier: &'static str, l: &LimitPlan, now: i64) -> LimitInfo {
    let u = l.counter.usage_at(now);
    let amount = |n: u64| match l.kind {
        LimitKind::Budget => serde_json::Value::from(n as f64 / 1e6),
        _ => serde_json::Value::from(n),
    };
    LimitInfo {
        tier,
        scope: l.scope.to_string(),
        kind: kind_label(l.kind),
        window: l.window.map(|w| w.as_str().to_string()),
        limit: amount(l.limit),
        used: amount(u.used),
        reserved: amount(u.reserved),
    }
}

fn guard_trace(
    loaded: &LoadedConfig,
    g: &crate::plan::GuardrailPlan,
    step: &GuardStep<'_>,
) -> GuardTrace {
    let (result, error) = match step {
        GuardStep::WhenFalse => ("when_false", None),
        GuardStep::CelError(e) => ("cel_error", Some(e.to_string())),
        GuardStep::NotSampled => ("not_sampled", None),
        GuardStep::Webhook => ("webhook_not_evaluated", None),
        GuardStep::Checked { detected: true } => ("detected", None),
        GuardStep::Checked { detected: false } => ("not_detected", None),
    };
    GuardTrace {
        name: g.name.to_string(),
        action: match g.action {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Flag => "flag",
        },
        when: loaded
            .config
            .guardrails
            .iter()
            .find(|c| *c.name == *g.name)
            .and_then(|c| c.when.clone()),
        sample_rate: g.sample_rate,
        result,
        error,
    }
}

fn rule_trace(
    loaded: &LoadedConfig,
    rule: &crate::plan::RulePlan,
    result: &'static str,
    detail: Option<String>,
) -> RuleTrace {
    // Rule names are unique (check enforces it), so the name finds the config entry.
    let entry = loaded
        .config
        .routing
        .rules
        .iter()
        .position(|r| *r.name == *rule.name);
    RuleTrace {
        name: rule.name.to_string(),
        scope: rule.scope.to_string(),
        priority: entry.map(|i| loaded.config.routing.rules[i].priority),
        line: entry.map_or(0, |i| loaded.line_of(&format!("routing.rules[{i}]"))),
        when: rule.when.as_ref().map(|w| w.source().to_string()),
        result,
        detail,
    }
}

/// Rules of the config that are not in this key's list, with the reason.
fn not_applicable_rules(
    loaded: &LoadedConfig,
    plan: &Plan,
    key: &KeyPlan,
    out: &mut Vec<RuleTrace>,
) {
    for rule in &plan.rules {
        if key.rules.iter().any(|kr| Arc::ptr_eq(&kr.rule, rule)) {
            continue;
        }
        let in_scope = match rule.scope.split_once(':') {
            None => true,
            Some(("virtual_key", id)) => *key.id == *id,
            Some(("team", t)) => key.team.as_deref() == Some(t),
            Some(("customer", c)) => key.customer.as_deref() == Some(c),
            Some(_) => false,
        };
        let why = if in_scope {
            format!("its condition is false for every request of key `{}` (decided at compile time from `key`)", key.id)
        } else {
            format!("scope `{}` does not cover key `{}`", rule.scope, key.id)
        };
        out.push(rule_trace(loaded, rule, "not_applicable", Some(why)));
    }
}
