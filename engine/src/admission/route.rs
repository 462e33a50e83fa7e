//! Where a request goes: `provider/model` or a bare model through the key's weighted providers.

use crate::error::{ApiError, ErrorType};
use crate::plan::{pick_weighted, KeyPlan, KeyProvider, Plan, ProviderKeyPlan, ProviderPlan};

#[derive(Debug)]
pub struct Route<'p, 'r> {
    pub provider: &'p ProviderPlan,
    pub provider_index: usize,
    /// The key's entry for this provider: its provider-config tier.
    pub key_provider: &'p KeyProvider,
    /// The request named the provider (`provider/model`): no other may serve it.
    pub pinned: bool,
    /// The model name the provider is asked for (the request's, minus any provider prefix).
    pub model: &'r str,
    /// The provider credential to use; `None` when the provider has no keys (e.g. local vLLM).
    pub provider_key: Option<&'p ProviderKeyPlan>,
}

/// Whether the key may ask for `requested` (`provider/model` is allowed when either the whole
/// string or the bare model is).
pub fn check_model(plan: &Plan, key: &KeyPlan, requested: &str) -> Result<(), ApiError> {
    let bare = requested
        .split_once('/')
        .filter(|(p, _)| plan.provider_index(p).is_some())
        .map(|(_, m)| m);
    if key.models.matches(requested) || bare.is_some_and(|m| key.models.matches(m)) {
        Ok(())
    } else {
        Err(not_allowed(key, requested))
    }
}

/// Picks the route for `requested`. `roll` is a uniform random number for weighted choices;
/// providers in `excluded` (refused by their own limits) are not candidates. `checked`: the
/// model is already known to be allowed (the request's, checked first, or a routing rule's
/// target, which policy chose).
pub fn resolve<'p, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    requested: &'r str,
    roll: u64,
    excluded: &[usize],
) -> Result<Route<'p, 'r>, ApiError> {
    resolve_checked(plan, key, requested, roll, excluded, false)
}

pub fn resolve_checked<'p, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    requested: &'r str,
    roll: u64,
    excluded: &[usize],
    checked: bool,
) -> Result<Route<'p, 'r>, ApiError> {
    // A prefix that names a provider pins the request to it; otherwise the whole string is a
    // model name (e.g. `meta-llama/Llama-3` on an openai_compatible server).
    if let Some((prefix, bare)) = requested.split_once('/') {
        if let Some(p) = plan.provider_index(prefix) {
            if !(checked || key.models.matches(requested) || key.models.matches(bare)) {
                return Err(not_allowed(key, requested));
            }
            let listed = key.provider_entry(p);
            let Some(key_provider) =
                listed.or_else(|| checked.then(|| &plan.unlisted_providers[p]))
            else {
                return Err(ApiError::new(
                    ErrorType::ModelNotAllowed,
                    format!("virtual key `{}` may not use provider `{prefix}`", key.id),
                ));
            };
            let provider = &plan.providers[p];
            if !provider.serves(bare) {
                return Err(ApiError::new(
                    ErrorType::InvalidRequest,
                    format!("provider `{prefix}` does not serve model `{bare}`"),
                ));
            }
            return Ok(Route {
                provider,
                provider_index: p,
                key_provider,
                pinned: true,
                model: bare,
                provider_key: pick_key(provider, bare, roll),
            });
        }
    }
    if !checked && !key.models.matches(requested) {
        return Err(not_allowed(key, requested));
    }
    let candidates = key
        .providers
        .iter()
        .filter(|kp| {
            !excluded.contains(&kp.provider) && plan.providers[kp.provider].serves(requested)
        })
        .map(|kp| (kp, kp.weight));
    let Some(key_provider) = pick_weighted(candidates, roll) else {
        return Err(ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "no provider available to virtual key `{}` serves model `{requested}`",
                key.id
            ),
        ));
    };
    let provider = &plan.providers[key_provider.provider];
    Ok(Route {
        provider,
        provider_index: key_provider.provider,
        key_provider,
        pinned: false,
        model: requested,
        provider_key: pick_key(provider, requested, roll >> 16),
    })
}

/// What a route costs: the configured price for the provider's name, else the built-in one
/// for its kind (`openai/gpt-4o`), else the bare model's.
pub fn price_of(plan: &Plan, route: &Route) -> Option<crate::pricing::Price> {
    plan.prices
        .price(&route.provider.name, route.model)
        .or_else(|| plan.prices.price(route.provider.pricing_name, route.model))
}

fn pick_key<'p>(provider: &'p ProviderPlan, model: &str, roll: u64) -> Option<&'p ProviderKeyPlan> {
    let eligible = provider
        .keys
        .iter()
        .filter(|k| k.serves(model))
        .map(|k| (k, k.weight));
    pick_weighted(eligible, roll)
}

fn not_allowed(key: &KeyPlan, model: &str) -> ApiError {
    ApiError::new(
        ErrorType::ModelNotAllowed,
        format!("virtual key `{}` may not use model `{model}`", key.id),
    )
    .with("model", model.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use crate::config::{load_str, ConfigFormat};

    fn plan() -> Plan {
        let text = "\
providers:
  - {name: openai, kind: openai, models: [gpt-4o, gpt-4o-mini], keys: [{name: a, key: ka}, {name: b, key: kb, models: [gpt-4o-mini]}]}
  - {name: local, kind: openai_compatible, base_url: 'http://127.0.0.1:1/v1', models: ['*']}
virtual_keys:
  - {id: vk, key: s, models: [gpt-4o, gpt-4o-mini, 'regex:^llama'], providers: [{provider: openai, weight: 80}, {provider: local, weight: 20}]}
  - {id: only-local, key: t, providers: [{provider: local}]}
";
        compile(&load_str(text, "t.yaml", ConfigFormat::Yaml).unwrap()).unwrap()
    }

    #[test]
    fn prefixed_model_pins_the_provider_and_strips_the_prefix() {
        let plan = plan();
        let key = plan.key_by_id("vk").unwrap();
        let r = resolve(&plan, key, "local/llama-3", 0, &[]).unwrap();
        assert_eq!((&*r.provider.name, r.model), ("local", "llama-3"));
    }

    #[test]
    fn bare_model_only_goes_to_providers_that_serve_it() {
        let plan = plan();
        let key = plan.key_by_id("vk").unwrap();
        for roll in 0..100 {
            let r = resolve(&plan, key, "llama-3", roll, &[]).unwrap();
            assert_eq!(&*r.provider.name, "local");
        }
        let to_openai = (0..100)
            .filter(|&roll| {
                &*resolve(&plan, key, "gpt-4o", roll, &[])
                    .unwrap()
                    .provider
                    .name
                    == "openai"
            })
            .count();
        assert_eq!(to_openai, 80);
        for roll in 0..100 {
            let r = resolve(&plan, key, "gpt-4o", roll, &[0]).unwrap();
            assert_eq!(
                &*r.provider.name, "local",
                "an excluded provider is never picked"
            );
        }
    }

    #[test]
    fn provider_keys_restricted_by_model() {
        let plan = plan();
        let key = plan.key_by_id("vk").unwrap();
        for roll in 0..50u64 {
            let r = resolve(&plan, key, "openai/gpt-4o", roll << 16, &[]).unwrap();
            assert_eq!(&*r.provider_key.unwrap().name, "a");
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let plan = plan();
        let vk = plan.key_by_id("vk").unwrap();
        let e = resolve(&plan, vk, "gpt-5", 0, &[]).unwrap_err();
        assert_eq!(e.kind, ErrorType::ModelNotAllowed);
        let local_only = plan.key_by_id("only-local").unwrap();
        let e = resolve(&plan, local_only, "openai/gpt-4o", 0, &[]).unwrap_err();
        assert!(
            e.message.contains("may not use provider `openai`"),
            "{}",
            e.message
        );
        let e = resolve(&plan, vk, "openai/llama-3", 0, &[]).unwrap_err();
        assert_eq!(e.kind, ErrorType::InvalidRequest);
    }
}
