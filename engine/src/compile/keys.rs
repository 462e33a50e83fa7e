//! Virtual keys, teams and customers: key digests, allowed models, weighted provider tables.

use super::check_unique;
use super::providers::matcher;
use crate::config::{ConfigError, LoadedConfig};
use crate::plan::{KeyDigest, KeyPlan, ModelMatcher, ProviderPlan};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Teams and the customer each belongs to.
pub(super) struct Organisation {
    team_customer: HashMap<String, Option<Arc<str>>>,
}

impl Organisation {
    pub(super) fn compile(loaded: &LoadedConfig, errors: &mut Vec<ConfigError>) -> Organisation {
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
        let mut team_customer = HashMap::new();
        for (i, t) in cfg.teams.iter().enumerate() {
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
        Organisation { team_customer }
    }
}

pub(super) fn compile_keys(
    loaded: &LoadedConfig,
    org: &Organisation,
    providers: &[ProviderPlan],
    provider_by_name: &HashMap<String, usize>,
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
            Some(list) => matcher(loaded, &at("models"), list, errors),
        };
        let key_providers: Vec<(usize, u32)> = match &vk.providers {
            None => (0..providers.len()).map(|p| (p, 1)).collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, kp)| match provider_by_name.get(&kp.provider) {
                    Some(&p) => Some((p, kp.weight)),
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
        plans.push(KeyPlan {
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
    key_providers: &[(usize, u32)],
    providers: &[ProviderPlan],
) -> Bytes {
    let mut listed: BTreeMap<String, &str> = BTreeMap::new();
    for &(p, _) in key_providers {
        let Some(provider) = providers.get(p) else {
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
