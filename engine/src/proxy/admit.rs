//! Admission of one request before any byte goes upstream: route, estimate, reserve on every
//! tier. A provider whose own tier (provider-config or global) is exhausted drops out and the
//! next candidate is tried; the request fails only when none remains.

use super::view::ProxyView;
use crate::admission::limits::{self, Admitted, Estimate, Ledger};
use crate::admission::route::{self, price_of, Route};
use crate::error::ApiError;
use crate::plan::{KeyPlan, Plan};
use smallvec::SmallVec;

pub struct Admission<'p, 'r> {
    pub route: Route<'p, 'r>,
    pub admitted: Admitted,
    pub prompt_tokens: u64,
}

/// What to admit: a model routing chose, and where it may not go.
pub struct Target<'r, 't> {
    pub model: &'r str,
    /// A rule or alias chose the model: the key's model and provider lists do not restrict it.
    pub from_policy: bool,
    /// Providers already tried for this model (a fallback round): not candidates again.
    pub already_tried: &'t [usize],
}

pub async fn admit<'p, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    view: &ProxyView<'r>,
    target: Target<'r, '_>,
    now: i64,
    ledger: Ledger<'_>,
) -> Result<Admission<'p, 'r>, ApiError> {
    let Target {
        model,
        from_policy,
        already_tried,
    } = target;
    let head = view.head;
    // Tokenizing costs microseconds: only when some limit counts tokens or dollars (or a
    // rule or guardrail already asked for the count, which the view keeps).
    let prompt_tokens = if plan.counts_tokens {
        view.estimated_prompt_tokens()
    } else {
        0
    };
    let output_tokens = if head.input.is_some() && head.messages.is_none() {
        0 // embeddings produce no output tokens
    } else {
        head.max_output_tokens.unwrap_or(plan.default_output_tokens)
    };
    let roll = fastrand::u64(..);
    let mut excluded: SmallVec<[usize; 4]> = SmallVec::from_slice(already_tried);
    loop {
        let route = route::resolve_checked(plan, key, model, roll, &excluded, from_policy)?;
        let estimate = Estimate {
            prompt_tokens,
            output_tokens,
            price: price_of(plan, &route),
            flat_micros: 0,
        };
        match limits::reserve(
            ledger,
            &route.key_provider.limits,
            &key.limits,
            &route.provider.limits,
            &estimate,
            now,
        )
        .await
        {
            Ok(admitted) => {
                return Ok(Admission {
                    route,
                    admitted,
                    prompt_tokens,
                })
            }
            Err(refusal) => {
                let pinned = route.pinned;
                let provider = route.provider_index;
                let can_drop_out = refusal.provider_tier() && !pinned;
                let err = refusal.into_error(chrono::Utc::now());
                if !can_drop_out || !has_other_candidate(plan, key, model, provider, &excluded) {
                    return Err(err);
                }
                excluded.push(provider);
            }
        }
    }
}

/// Whether a provider other than `provider` (and those already excluded) serves `model`.
fn has_other_candidate(
    plan: &Plan,
    key: &KeyPlan,
    model: &str,
    provider: usize,
    excluded: &[usize],
) -> bool {
    key.providers.iter().any(|kp| {
        kp.provider != provider
            && !excluded.contains(&kp.provider)
            && plan.providers[kp.provider].serves(model)
    })
}
