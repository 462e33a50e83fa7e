//! Config → `Plan`. All fallible work happens here, so swapping a plan in can never fail.
//! Every problem is collected (not just the first) with the place it is written.

mod keys;
mod limits;
mod mcp;
mod policy;
mod providers;
mod redact;

use crate::config::{ConfigError, LoadedConfig, StateConfig};
use crate::plan::{KeyPlan, KeyProvider, ModelMatcher, Plan};
use crate::pricing::PriceTable;
use crate::state::{LimitKind, MemoryStore};
use limits::LimitRegistry;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Compiles with a private counter store: for `check`, `test` and benchmarks.
pub fn compile(loaded: &LoadedConfig) -> Result<Plan, Vec<ConfigError>> {
    compile_with(loaded, &MemoryStore::new())
}

/// Compiles against the gateway's counter store, so limits bind to counters that keep their
/// usage across reloads.
pub fn compile_with(loaded: &LoadedConfig, store: &MemoryStore) -> Result<Plan, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut limits = LimitRegistry::new(store);
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

    let providers = providers::compile_providers(loaded, &mut limits, &mut errors);
    // Indexed by position in the config, so a provider with its own error does not also
    // produce "unknown provider" errors wherever it is referenced. Indices are only used
    // for a plan that compiled without errors, where both lists line up.
    let provider_by_name: HashMap<String, usize> = cfg
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();

    let mcp = mcp::compile_mcp(loaded, &mut limits, &mut errors);
    let org = keys::Organisation::compile(loaded, &mut limits, &mut errors);
    let known = policy::Known {
        keys: cfg.virtual_keys.iter().map(|k| k.id.as_str()).collect(),
        teams: cfg.teams.iter().map(|t| t.id.as_str()).collect(),
        customers: cfg.customers.iter().map(|c| c.id.as_str()).collect(),
    };
    let policies = policy::compile_policy(loaded, &known, &mut errors);
    let (keys, key_by_digest) = keys::compile_keys(
        loaded,
        &org,
        &providers,
        &provider_by_name,
        &policies,
        &mut limits,
        &mut errors,
    );

    let all_providers: Vec<KeyProvider> = (0..providers.len())
        .map(|provider| KeyProvider {
            provider,
            weight: 1,
            limits: Vec::new(),
        })
        .collect();
    let anonymous_attrs = crate::policy::KeyAttrs {
        id: "anonymous".into(),
        ..Default::default()
    };
    let (rules, input_guardrails, output_guardrails) = policies.for_key(&anonymous_attrs);
    let anonymous = KeyPlan {
        attrs: anonymous_attrs,
        rules,
        input_guardrails,
        output_guardrails,
        id: "anonymous".into(),
        team: None,
        customer: None,
        // Anonymous callers exist only when `auth.required: false`.
        disabled: cfg.auth.required,
        expires_at: None,
        models: ModelMatcher::any(),
        limits: Vec::new(),
        models_list: keys::models_list(&ModelMatcher::any(), &all_providers, &providers),
        providers: all_providers,
        mcp: Default::default(),
    };

    let provider_count = providers.len();
    let prices = PriceTable::builtin()
        .with_overrides(&cfg.pricing)
        .unwrap_or_else(|e| {
            errors
                .push(loaded.error_at(&format!("pricing.{}.{}", e.model, e.field), e.to_string()));
            PriceTable::builtin()
        });
    let all_limits = limits.all;
    let (snapshot_file, snapshot_interval, redis) = match &cfg.state {
        StateConfig::Memory {
            snapshot_file,
            snapshot_interval,
        } => (
            snapshot_file.as_ref().map(|f| loaded.base_dir.join(f)),
            snapshot_interval.map_or(std::time::Duration::from_secs(5), |d| d.0),
            None,
        ),
        StateConfig::Redis { url, on_error } => {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
            {
                errors.push(loaded.error_at(
                    "state.url",
                    format!("invalid Redis URL `{url}`: expected redis://host:port/db"),
                ));
            }
            (
                None,
                std::time::Duration::from_secs(5),
                Some((url.clone(), *on_error)),
            )
        }
    };
    if snapshot_interval.is_zero() {
        errors.push(loaded.error_at(
            "state.snapshot_interval",
            "snapshot_interval must be above 0",
        ));
    }
    if let Some(endpoint) = &cfg.traces.endpoint {
        let ok = endpoint
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !ok {
            errors.push(loaded.error_at(
                "traces.endpoint",
                format!("traces.endpoint `{endpoint}` is not an http:// or https:// URL"),
            ));
        }
    }
    check_semantic_cache(loaded, &cfg.cache, &mut errors);
    check_logs(loaded, &cfg.logs, &mut errors);
    let counts_tokens = all_limits
        .iter()
        .any(|l| matches!(l.kind, LimitKind::Tokens | LimitKind::Budget));

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
        watch_config: cfg.server.watch_config,
        metrics_per_key: cfg.metrics.per_key,
        redacted_config: redact::redacted_config(cfg),
        health: crate::reliability::trackers::PlanHealth::fresh(&providers),
        providers,
        provider_by_name,
        key_by_digest,
        keys,
        anonymous,
        prices,
        default_output_tokens: cfg.accounting.default_output_tokens,
        all_limits,
        counts_tokens,
        snapshot_file,
        snapshot_interval,
        redis,
        unlisted_providers: (0..provider_count)
            .map(|provider| KeyProvider {
                provider,
                weight: 1,
                limits: Vec::new(),
            })
            .collect(),
        aliases: policies.aliases,
        rules: policies.file_order,
        mcp,
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

/// `mode: semantic` needs an embedder, a build with the `semantic` feature, and an index kind
/// this build has; the model itself is loaded (and its files checked) when the gateway starts.
/// The request log is opened once at start, but its config is checked with everything else
/// so `tollgate check` catches it.
fn check_logs(
    loaded: &LoadedConfig,
    logs: &crate::reqlog::LogsConfig,
    errors: &mut Vec<ConfigError>,
) {
    for (field, message) in logs.problems() {
        errors.push(loaded.error_at(&format!("logs.{field}"), message));
    }
    if logs.kind == crate::reqlog::LogStoreKind::Postgres && !cfg!(feature = "postgres") {
        errors.push(loaded.error_at(
            "logs.kind",
            "`kind: postgres` is not available in this build (built without the `postgres` \
             feature); rebuild with `--features postgres` or use `kind: sqlite`",
        ));
    }
}

fn check_semantic_cache(
    loaded: &LoadedConfig,
    cache: &crate::cache::CacheConfig,
    errors: &mut Vec<ConfigError>,
) {
    let semantic = cache.mode == crate::cache::CacheMode::Semantic;
    if semantic && cache.embedder.is_none() {
        errors.push(loaded.error_at(
            "cache",
            "`mode: semantic` needs `embedder: {kind: fastembed, model_dir: ...}` \
             (see policies/install-embedder.sh)",
        ));
    }
    if (semantic || cache.embedder.is_some()) && !cfg!(feature = "semantic") {
        errors.push(loaded.error_at(
            "cache",
            "the semantic cache is not available in this build (built without the `semantic` \
             feature); rebuild with `--features semantic` or use `mode: exact`",
        ));
    }
    use crate::cache::{CacheStoreConfig, IndexConfig};
    let shared = matches!(
        cache.index,
        Some(IndexConfig::Redis { .. } | IndexConfig::Qdrant { .. })
    );
    if shared && !matches!(cache.store, CacheStoreConfig::Redis { .. }) {
        errors.push(loaded.error_at(
            "cache.store",
            crate::cache::semantic::SHARED_INDEX_NEEDS_REDIS_STORE,
        ));
    }
    match &cache.index {
        Some(IndexConfig::Qdrant { .. }) if !cfg!(feature = "qdrant") => {
            errors.push(
                loaded.error_at("cache.index.kind", crate::cache::semantic::QDRANT_NOT_BUILT),
            );
        }
        _ => {}
    }
}
