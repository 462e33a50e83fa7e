//! Config → `Plan`. All fallible work happens here, so swapping a plan in can never fail.
//! Every problem is collected (not just the first) with the place it is written.

mod keys;
mod providers;
mod redact;

use crate::config::{ConfigError, LoadedConfig};
use crate::plan::{KeyPlan, ModelMatcher, Plan};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

pub fn compile(loaded: &LoadedConfig) -> Result<Plan, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let cfg = &loaded.config;

    let mut addr = |path: &str, text: &str| -> SocketAddr {
        text.parse().unwrap_or_else(|e| {
            errors.push(loaded.error_at(path, format!("invalid address `{text}`: {e}")));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let listen = addr("server.listen", &cfg.server.listen);
    let admin_listen = addr("server.admin_listen", &cfg.server.admin_listen);
    let max_body_bytes = usize::try_from(cfg.server.max_body_bytes.0).unwrap_or(usize::MAX);
    if max_body_bytes == 0 {
        errors.push(loaded.error_at("server.max_body_bytes", "max_body_bytes must be above 0"));
    }
    let admin_token_digest = cfg.server.admin_token.as_deref().map(|t| {
        if t.is_empty() {
            errors.push(loaded.error_at("server.admin_token", "admin_token is empty"));
        }
        Sha256::digest(t.as_bytes()).into()
    });

    let providers = providers::compile_providers(loaded, &mut errors);
    // Indexed by position in the config, so a provider with its own error does not also
    // produce "unknown provider" errors wherever it is referenced. Indices are only used
    // for a plan that compiled without errors, where both lists line up.
    let provider_by_name: HashMap<String, usize> = cfg
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();

    let org = keys::Organisation::compile(loaded, &mut errors);
    let (keys, key_by_digest) =
        keys::compile_keys(loaded, &org, &providers, &provider_by_name, &mut errors);

    let all_providers: Vec<(usize, u32)> = (0..providers.len()).map(|i| (i, 1)).collect();
    let anonymous = KeyPlan {
        id: "anonymous".into(),
        team: None,
        customer: None,
        // Anonymous callers exist only when `auth.required: false`.
        disabled: cfg.auth.required,
        expires_at: None,
        models: ModelMatcher::any(),
        models_list: keys::models_list(&ModelMatcher::any(), &all_providers, &providers),
        providers: all_providers,
    };

    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.col));
        return Err(errors);
    }
    Ok(Plan {
        listen,
        admin_listen,
        max_body_bytes,
        admin_token_digest,
        auth_required: cfg.auth.required,
        redacted_config: redact::redacted_config(cfg),
        providers,
        provider_by_name,
        key_by_digest,
        keys,
        anonymous,
    })
}

/// Reports every repeated id in `ids` (with its config path) as an error at its second use.
fn check_unique<'a>(
    loaded: &LoadedConfig,
    what: &str,
    ids: impl Iterator<Item = (String, &'a str)>,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen = HashSet::new();
    for (path, id) in ids {
        if !seen.insert(id) {
            errors.push(loaded.error_at(&path, format!("duplicate {what} `{id}`")));
        }
    }
}

#[cfg(test)]
mod tests;
