//! Virtual keys, teams and customers: key digests, allowed models, weighted provider tables.

use super::check_unique;
use super::limits::LimitRegistry;
use super::policy::PolicySet;
use super::providers::matcher;
use crate::config::{ConfigError, LoadedConfig};
use crate::plan::{KeyDigest, KeyPlan, KeyProvider, Limits, ModelMatcher, Patterns, ProviderPlan};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Teams, the customer each belongs to, and the limits of both tiers.
pub(super) struct Organisation {
    team_customer: HashMap<String, Option<Arc<str>>>,
    team_limits: HashMap<String, Limits>,
    customer_limits: HashMap<String, Limits>,
    team_mcp: super::mcp::TeamAccess,
}

impl Organisation {
    pub(super) fn compile(
        loaded: &LoadedConfig,
        limits: &mut LimitRegistry,
        errors: &mut Vec<ConfigError>,
    ) -> Organisation {
        let cfg = &loaded.config;
        check_unique(
            loaded,
            "customer id",
            cfg.customers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("customers[{i}].id"), c.id.as_str())),
            errors,
        );
        check_unique(
            loaded,
            "team id",
            cfg.teams
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("teams[{i}].id"), t.id.as_str())),
            errors,
        );
        let mut customer_limits = HashMap::new();
        for (i, c) in cfg.customers.iter().enumerate() {
            let tier = limits.tier(
                loaded,
                &format!("customers[{i}]"),
                &format!("customer:{}", c.id),
                c.rate_limit.as_ref(),
                c.budget.as_ref(),
                errors,
            );
            customer_limits.insert(c.id.clone(), tier);
        }
        let mut team_customer = HashMap::new();
        let mut team_limits = HashMap::new();
        let mut team_mcp = HashMap::new();
        for (i, t) in cfg.teams.iter().enumerate() {
            let tier = limits.tier(
                loaded,
                &format!("teams[{i}]"),
                &format!("team:{}", t.id),
                t.rate_limit.as_ref(),
                t.budget.as_ref(),
                errors,
            );
            team_limits.insert(t.id.clone(), tier);
            if let Some(access) = &t.mcp {
                let compiled = super::mcp::compile_access(
                    loaded,
                    &format!("teams[{i}]"),
                    &format!("team:{}/mcp", t.id),
                    access,
                    limits,
                    errors,
                );
                if let Some(a) = compiled {
                    team_mcp.insert(t.id.clone(), Arc::new(a));
                }
            }
            if let Some(c) = &t.customer {
                if !cfg.customers.iter().any(|x| &x.id == c) {
                    errors.push(loaded.error_at(
                        &format!("teams[{i}].customer"),
                        format!("team `{}` names unknown customer `{c}`", t.id),
                    ));
                }
            }
            team_customer.insert(t.id.clone(), t.customer.as_deref().map(Arc::from));
        }
        Organisation {
            team_customer,
            team_limits,
            customer_limits,
            team_mcp,
        }
    }
}

pub(super) fn compile_keys(
    loaded: &LoadedConfig,
    org: &Organisation,
    providers: &[ProviderPlan],
    provider_by_name: &HashMap<String, usize>,
    policies: &PolicySet,
    limits: &mut LimitRegistry,
    errors: &mut Vec<ConfigError>,
) -> (Vec<KeyPlan>, HashMap<KeyDigest, usize>) {
    let cfg = &loaded.config;
    check_unique(
        loaded,
        "virtual key id",
        cfg.virtual_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("virtual_keys[{i}].id"), k.id.as_str())),
        errors,
    );
    let mut plans = Vec::with_capacity(cfg.virtual_keys.len());
    let mut by_digest = HashMap::with_capacity(cfg.virtual_keys.len());
    let mut patterns = Patterns::default();
    for (i, vk) in cfg.virtual_keys.iter().enumerate() {
        let at = |field: &str| format!("virtual_keys[{i}].{field}");
        let digest: Option<KeyDigest> = match (&vk.key, &vk.key_sha256) {
            (Some(secret), None) if !secret.is_empty() => Some(Sha256::digest(secret).into()),
            (Some(_), None) => {
                errors.push(loaded.error_at(
                    &at("key"),
                    format!("virtual key `{}` has an empty key", vk.id),
                ));
                None
            }
            (None, Some(hex_digest)) => {
                let mut d = [0u8; 32];
                match hex::decode_to_slice(hex_digest.trim(), &mut d) {
                    Ok(()) => Some(d),
                    Err(_) => {
                        errors.push(loaded.error_at(
                            &at("key_sha256"),
                            format!(
                                "key_sha256 of `{}` must be 64 hex characters (sha256 of the key)",
                                vk.id
                            ),
                        ));
                        None
                    }
                }
            }
            (Some(_), Some(_)) => {
                errors.push(loaded.error_at(
                    &at("key_sha256"),
                    format!(
                        "virtual key `{}` sets both key and key_sha256; keep one",
                        vk.id
                    ),
                ));
                None
            }
            (None, None) => {
                errors.push(loaded.error_at(
                    &format!("virtual_keys[{i}]"),
                    format!("virtual key `{}` needs `key` or `key_sha256`", vk.id),
                ));
                None
            }
        };
        if let Some(d) = digest {
            if by_digest.insert(d, i).is_some() {
                errors.push(loaded.error_at(
                    &at("id"),
                    format!("virtual key `{}` has the same secret as another key", vk.id),
                ));
            }
        }

        let customer = match &vk.team {
            Some(team) => match org.team_customer.get(team) {
                Some(c) => c.clone(),
                None => {
                    errors.push(loaded.error_at(
                        &at("team"),
                        format!("virtual key `{}` names unknown team `{team}`", vk.id),
                    ));
                    None
                }
            },
            None => None,
        };

        let models = match &vk.models {
            None => ModelMatcher::any(),
            Some(list) => matcher(loaded, &at("models"), list, &mut patterns, errors),
        };
        let key_providers: Vec<KeyProvider> = match &vk.providers {
            None => (0..providers.len())
                .map(|provider| KeyProvider {
                    provider,
                    weight: 1,
                    limits: Vec::new(),
                })
                .collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, kp)| match provider_by_name.get(&kp.provider) {
                    Some(&provider) => Some(KeyProvider {
                        provider,
                        weight: kp.weight,
                        limits: limits.tier(
                            loaded,
                            &format!("virtual_keys[{i}].providers[{j}]"),
                            &format!("virtual_key:{}/provider:{}", vk.id, kp.provider),
                            kp.rate_limit.as_ref(),
                            kp.budget.as_ref(),
                            errors,
                        ),
                    }),
                    None => {
                        errors.push(loaded.error_at(
                            &format!("virtual_keys[{i}].providers[{j}].provider"),
                            format!(
                                "virtual key `{}` names unknown provider `{}`",
                                vk.id, kp.provider
                            ),
                        ));
                        None
                    }
                })
                .collect(),
        };
        // The key's own tier first, then team, then customer: a refusal names the narrowest.
        let mut key_limits = limits.tier(
            loaded,
            &format!("virtual_keys[{i}]"),
            &format!("virtual_key:{}", vk.id),
            vk.rate_limit.as_ref(),
            vk.budget.as_ref(),
            errors,
        );
        if let Some(team) = &vk.team {
            key_limits.extend(org.team_limits.get(team).into_iter().flatten().cloned());
        }
        if let Some(c) = &customer {
            key_limits.extend(org.customer_limits.get(&**c).into_iter().flatten().cloned());
        }
        let attrs = crate::policy::KeyAttrs {
            id: vk.id.as_str().into(),
            team: vk.team.as_deref().map(Arc::from),
            customer: customer.clone(),
            metadata: vk.metadata.clone(),
        };
        let (rules, input_guardrails, output_guardrails) = policies.for_key(&attrs);
        let own_mcp = vk.mcp.as_ref().and_then(|access| {
            super::mcp::compile_access(
                loaded,
                &format!("virtual_keys[{i}]"),
                &format!("virtual_key:{}/mcp", vk.id),
                access,
                limits,
                errors,
            )
        });
        let team_mcp = vk.team.as_ref().and_then(|t| org.team_mcp.get(t));
        let mcp = super::mcp::key_mcp(own_mcp, team_mcp.map(|a| &**a));
        plans.push(KeyPlan {
            mcp,
            attrs,
            rules,
            input_guardrails,
            output_guardrails,
            limits: key_limits,
            id: vk.id.as_str().into(),
            team: vk.team.as_deref().map(Arc::from),
            customer,
            disabled: vk.disabled,
            expires_at: vk.expires_at.map(|t| t.timestamp()),
            models_list: models_list(&models, &key_providers, providers),
            models,
            providers: key_providers,
        });
    }
    (plans, by_digest)
}

/// The OpenAI `GET /v1/models` body for a key: every exactly-named model the key may use that
/// one of its providers serves (or that the key names, when a provider serves any model).
pub(super) fn models_list(
    allowed: &ModelMatcher,
    key_providers: &[KeyProvider],
    providers: &[ProviderPlan],
) -> Bytes {
    let mut listed: BTreeMap<String, &str> = BTreeMap::new();
    for kp in key_providers {
        let Some(provider) = providers.get(kp.provider) else {
            continue; // a provider that failed to compile; the plan is discarded anyway
        };
        for m in provider.models.exact_names() {
            if allowed.matches(m) {
                listed.entry(m.to_string()).or_insert(&provider.name);
            }
        }
        if provider.models.is_any() {
            for m in allowed.exact_names() {
                listed.entry(m.to_string()).or_insert(&provider.name);
            }
        }
    }
    let data: Vec<serde_json::Value> = listed
        .into_iter()
        .map(|(id, owner)| {
            serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
        })
        .collect();
    Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string())
}
