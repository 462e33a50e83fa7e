//! Providers: upstream URLs, keys as ready-made auth headers, served models.

use super::check_unique;
use super::limits::LimitRegistry;
use crate::aws::AwsCredentials;
use crate::config::units::DurationStr;
use crate::config::{ConfigError, LoadedConfig, ProviderConfig, ProviderKind};
use crate::plan::{
    ModelMatcher, Patterns, ProviderKeyPlan, ProviderPlan, ProviderTimeouts, ProviderUrls,
    ProviderWire,
};
use crate::reliability::backoff::RetryPolicy;
use crate::reliability::health::HealthPolicy;
use http::{HeaderName, HeaderValue, Uri};
use std::time::Duration;

/// A new connection comes up within seconds or not at all; a model may think for minutes
/// before its first token, hence the long total; a stream that has started and then says
/// nothing for a minute has stalled.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The Messages API version every Anthropic request names (the only one there is).
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` sent to Anthropic, which requires one, when the client set no bound: enough
/// for a long answer on every current Claude model.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 4096;
/// Longer than any sensible attempt, and far from overflowing deadline arithmetic.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub(super) fn compile_providers(
    loaded: &LoadedConfig,
    limits: &mut LimitRegistry,
    errors: &mut Vec<ConfigError>,
) -> Vec<ProviderPlan> {
    let cfg = &loaded.config;
    check_unique(
        loaded,
        "provider name",
        cfg.providers
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("providers[{i}].name"), p.name.as_str())),
        errors,
    );
    let mut out = Vec::with_capacity(cfg.providers.len());
    let mut patterns = Patterns::default();
    for (i, p) in cfg.providers.iter().enumerate() {
        let at = |field: &str| format!("providers[{i}].{field}");
        if p.name.is_empty() || p.name.contains('/') {
            errors.push(loaded.error_at(
                &at("name"),
                format!(
                    "provider name `{}` must be non-empty and contain no `/`",
                    p.name
                ),
            ));
        }
        let default_base = match p.kind {
            ProviderKind::Openai => Some("https://api.openai.com/v1"),
            ProviderKind::OpenaiCompatible => None,
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            // An Azure resource has its own host; there is no default.
            ProviderKind::Azure => None,
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
            ProviderKind::Bedrock => None,
        };
        let wire = wire_of(p, loaded, i, errors);
        let aws_region = match bedrock_region(loaded, i, p, errors) {
            Ok(region) => region,
            Err(()) => continue,
        };
        let regional_base = aws_region
            .as_deref()
            .map(|r| format!("https://bedrock-runtime.{r}.amazonaws.com"));
        let Some(base) = p
            .base_url
            .as_deref()
            .or(default_base)
            .or(regional_base.as_deref())
        else {
            errors.push(loaded.error_at(
                &format!("providers[{i}]"),
                format!(
                    "provider `{}` of kind {} needs a base_url",
                    p.name,
                    kind_name(p.kind)
                ),
            ));
            continue;
        };
        let Some(urls) = compile_urls(loaded, i, p, base, wire, errors) else {
            continue;
        };
        let models = match &p.models {
            None => ModelMatcher::any(),
            Some(list) => matcher(loaded, &at("models"), list, &mut patterns, errors),
        };
        let mut keys = Vec::with_capacity(p.keys.len());
        if wire == ProviderWire::Bedrock && p.keys.is_empty() {
            errors.push(loaded.error_at(
                &at("keys"),
                "a bedrock provider needs at least one key: `access_key_id` with \
                 `secret_access_key` (signed requests), or `key` (a Bedrock API key)",
            ));
        }
        for (k, key) in p.keys.iter().enumerate() {
            let kat = format!("providers[{i}].keys[{k}]");
            let Some(aws) = aws_credentials(loaded, &kat, p.kind, key, errors) else {
                continue;
            };
            if aws.is_none() && key.key.is_empty() {
                errors.push(loaded.error_at(&format!("{kat}.key"), "provider key is empty"));
                continue;
            }
            // OpenAI's and Bedrock's bearer header wraps the key; Azure, Anthropic and Gemini
            // send it bare. A signing key's value only tells keys apart (see ProviderKeyPlan).
            let value = match (&aws, wire) {
                (Some(aws), _) => aws.access_key_id.to_string(),
                (None, ProviderWire::OpenAi | ProviderWire::Bedrock)
                    if p.kind != ProviderKind::Azure =>
                {
                    format!("Bearer {}", key.key)
                }
                _ => key.key.clone(),
            };
            let Ok(mut authorization) = HeaderValue::from_str(&value) else {
                errors.push(loaded.error_at(
                    &format!("{kat}.key"),
                    "provider key contains characters not allowed in an HTTP header",
                ));
                continue;
            };
            authorization.set_sensitive(true);
            keys.push(ProviderKeyPlan {
                name: key.name.clone().unwrap_or_else(|| format!("key{k}")).into(),
                authorization,
                aws,
                weight: key.weight,
                models: key.models.as_ref().map(|list| {
                    matcher(
                        loaded,
                        &format!("{kat}.models"),
                        list,
                        &mut patterns,
                        errors,
                    )
                }),
            });
        }
        let tier = limits.tier(
            loaded,
            &format!("providers[{i}]"),
            &format!("provider:{}", p.name),
            p.rate_limit.as_ref(),
            p.budget.as_ref(),
            errors,
        );
        let defaults = RetryPolicy::default();
        let retries = p.retries.as_ref().map_or(defaults, |r| RetryPolicy {
            max: r.max.unwrap_or(defaults.max),
            backoff: r.backoff.map_or(defaults.backoff, |d| d.0),
            max_backoff: r.max_backoff.map_or(defaults.max_backoff, |d| d.0),
        });
        if retries.max > 10 {
            errors.push(loaded.error_at(
                &at("retries.max"),
                "retries.max above 10 would hold a request for minutes; use fallbacks",
            ));
        }
        let hd = HealthPolicy::default();
        let health = p.health.as_ref().map_or(hd, |h| HealthPolicy {
            failure_threshold: h.failure_threshold.unwrap_or(hd.failure_threshold),
            min_requests: h.min_requests.unwrap_or(hd.min_requests),
            cooldown_secs: h
                .cooldown
                .map_or(hd.cooldown_secs, |d| d.0.as_secs().max(1)),
            probe_share: h.probe_share.unwrap_or(hd.probe_share),
        });
        if !(0.0..=1.0).contains(&health.failure_threshold)
            || !(0.0..=1.0).contains(&health.probe_share)
        {
            errors.push(loaded.error_at(
                &at("health"),
                "health failure_threshold and probe_share must be between 0 and 1",
            ));
        }
        out.push(ProviderPlan {
            retries,
            health,
            limits: tier,
            pricing_name: kind_name(p.kind),
            wire,
            auth_header: match (wire, p.kind) {
                (_, ProviderKind::Azure) => HeaderName::from_static("api-key"),
                (ProviderWire::OpenAi | ProviderWire::Bedrock, _) => http::header::AUTHORIZATION,
                (ProviderWire::Anthropic { .. }, _) => HeaderName::from_static("x-api-key"),
                (ProviderWire::Gemini, _) => HeaderName::from_static("x-goog-api-key"),
            },
            fixed_headers: match wire {
                ProviderWire::OpenAi | ProviderWire::Gemini | ProviderWire::Bedrock => Vec::new(),
                ProviderWire::Anthropic { .. } => vec![(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                )],
            },
            name: p.name.as_str().into(),
            kind: p.kind,
            urls,
            keys,
            models,
            timeouts: compile_timeouts(loaded, i, p, errors),
            client: None,
            aws_region,
        });
    }
    out
}

/// `timeout`, `connect_timeout`, `first_byte_timeout`, `stream_idle_timeout`: each above 0
/// and at most 24h; the wait for headers cannot outlast the whole attempt.
fn compile_timeouts(
    loaded: &LoadedConfig,
    i: usize,
    p: &ProviderConfig,
    errors: &mut Vec<ConfigError>,
) -> ProviderTimeouts {
    let mut field = |name: &str, value: Option<DurationStr>, default: Duration| {
        let Some(DurationStr(d)) = value else {
            return default;
        };
        if d.is_zero() || d > MAX_TIMEOUT {
            errors.push(loaded.error_at(
                &format!("providers[{i}].{name}"),
                format!("{name} must be above 0 and at most 24h (got {d:?})"),
            ));
            return default;
        }
        d
    };
    let total = field("timeout", p.timeout, DEFAULT_TIMEOUT);
    let connect = field(
        "connect_timeout",
        p.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let first_byte = field("first_byte_timeout", p.first_byte_timeout, total);
    let stream_idle = field(
        "stream_idle_timeout",
        p.stream_idle_timeout,
        DEFAULT_STREAM_IDLE_TIMEOUT,
    );
    if first_byte > total {
        errors.push(loaded.error_at(
            &format!("providers[{i}].first_byte_timeout"),
            format!(
                "first_byte_timeout ({first_byte:?}) is longer than timeout ({total:?}), which \
                 bounds the whole attempt: lower it or raise timeout"
            ),
        ));
    }
    ProviderTimeouts {
        connect,
        first_byte,
        total,
        stream_idle,
    }
}

pub(super) fn matcher(
    loaded: &LoadedConfig,
    path: &str,
    list: &[String],
    patterns: &mut Patterns,
    errors: &mut Vec<ConfigError>,
) -> ModelMatcher {
    ModelMatcher::compile(list, patterns).unwrap_or_else(|bad| {
        for (idx, msg) in bad {
            errors.push(loaded.error_at(&format!("{path}[{idx}]"), msg));
        }
        ModelMatcher::default()
    })
}

/// The provider's wire format, and the settings that belong to one kind only: given to
/// another kind they would silently do nothing, so they are errors.
fn wire_of(
    p: &ProviderConfig,
    loaded: &LoadedConfig,
    i: usize,
    errors: &mut Vec<ConfigError>,
) -> ProviderWire {
    let misplaced = |field: &str, owner: &str, errors: &mut Vec<ConfigError>| {
        errors.push(loaded.error_at(
            &format!("providers[{i}].{field}"),
            format!(
                "`{field}` applies to providers of kind {owner}, not {}",
                kind_name(p.kind)
            ),
        ));
    };
    if p.kind != ProviderKind::Azure {
        if p.api_version.is_some() {
            misplaced("api_version", "azure", errors);
        }
        if !p.deployments.is_empty() {
            misplaced("deployments", "azure", errors);
        }
    }
    match p.kind {
        ProviderKind::Anthropic => {
            let default_max_tokens = p.default_max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS);
            if default_max_tokens == 0 {
                errors.push(loaded.error_at(
                    &format!("providers[{i}].default_max_tokens"),
                    "default_max_tokens must be at least 1",
                ));
            }
            ProviderWire::Anthropic { default_max_tokens }
        }
        kind => {
            if p.default_max_tokens.is_some() {
                misplaced("default_max_tokens", "anthropic", errors);
            }
            match kind {
                ProviderKind::Gemini => ProviderWire::Gemini,
                ProviderKind::Bedrock => ProviderWire::Bedrock,
                _ => ProviderWire::OpenAi,
            }
        }
    }
}

/// Checks `base` is an http(s) URL and builds the provider's endpoint URLs from it.
fn compile_urls(
    loaded: &LoadedConfig,
    i: usize,
    p: &ProviderConfig,
    base: &str,
    wire: ProviderWire,
    errors: &mut Vec<ConfigError>,
) -> Option<ProviderUrls> {
    let base = base.trim_end_matches('/');
    let url = |suffix: &str| -> Option<Uri> {
        let text = format!("{base}{suffix}");
        match text.parse::<Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                Some(u)
            }
            _ => None,
        }
    };
    let bad_base = |errors: &mut Vec<ConfigError>| {
        errors.push(loaded.error_at(
            &format!("providers[{i}].base_url"),
            format!("invalid base_url `{base}`: expected an http:// or https:// URL"),
        ));
    };
    if p.kind == ProviderKind::Azure {
        // Checked once here, so a request-time URL can only fail on the deployment name.
        if url("/openai").is_none() {
            bad_base(errors);
            return None;
        }
        let Some(api_version) = p.api_version.as_deref().filter(|v| !v.is_empty()) else {
            errors.push(loaded.error_at(
                &format!("providers[{i}]"),
                format!(
                    "provider `{}` of kind azure needs an api_version (e.g. 2024-10-21)",
                    p.name
                ),
            ));
            return None;
        };
        if !api_version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            errors.push(loaded.error_at(
                &format!("providers[{i}].api_version"),
                format!("api_version `{api_version}` may hold only letters, digits and `-`"),
            ));
            return None;
        }
        let urls = ProviderUrls::Azure {
            base: base.into(),
            api_version: api_version.into(),
            deployments: p
                .deployments
                .iter()
                .map(|(m, d)| (m.as_str().into(), d.as_str().into()))
                .collect(),
        };
        for model in p.deployments.keys() {
            if let Err(msg) = urls.for_request(false, false, model) {
                errors.push(loaded.error_at(&format!("providers[{i}].deployments.{model}"), msg));
            }
        }
        return Some(urls);
    }
    if wire == ProviderWire::Gemini {
        if url("/v1beta").is_none() {
            bad_base(errors);
            return None;
        }
        return Some(ProviderUrls::Gemini { base: base.into() });
    }
    if wire == ProviderWire::Bedrock {
        if url("/model").is_none() {
            bad_base(errors);
            return None;
        }
        return Some(ProviderUrls::Bedrock { base: base.into() });
    }
    // Anthropic's base URL is the host (its SDKs append `/v1/messages`); it has no
    // embeddings, and the proxy refuses them before any URL is used.
    let (chat_path, embeddings_path) = match wire {
        ProviderWire::Anthropic { .. } => ("/v1/messages", "/v1/messages"),
        _ => ("/chat/completions", "/embeddings"),
    };
    let (Some(chat), Some(embeddings)) = (url(chat_path), url(embeddings_path)) else {
        bad_base(errors);
        return None;
    };
    Some(ProviderUrls::Fixed { chat, embeddings })
}

fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::OpenaiCompatible => "openai_compatible",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gemini",
        ProviderKind::Azure => "azure",
        ProviderKind::Bedrock => "bedrock",
    }
}

/// Bedrock's `region`: required for kind bedrock (it is part of every signature), refused
/// elsewhere. `Err`: the provider cannot be compiled.
fn bedrock_region(
    loaded: &LoadedConfig,
    i: usize,
    p: &ProviderConfig,
    errors: &mut Vec<ConfigError>,
) -> Result<Option<Box<str>>, ()> {
    let at = format!("providers[{i}].region");
    match (p.kind, p.region.as_deref()) {
        (ProviderKind::Bedrock, None | Some("")) => {
            errors.push(loaded.error_at(
                &format!("providers[{i}]"),
                format!(
                    "provider `{}` of kind bedrock needs a region (e.g. us-east-1)",
                    p.name
                ),
            ));
            Err(())
        }
        (ProviderKind::Bedrock, Some(region)) => {
            if region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                Ok(Some(region.into()))
            } else {
                errors.push(loaded.error_at(
                    &at,
                    format!("region `{region}` may hold only lowercase letters, digits and `-`"),
                ));
                Err(())
            }
        }
        (kind, Some(_)) => {
            errors.push(loaded.error_at(
                &at,
                format!(
                    "`region` applies to providers of kind bedrock, not {}",
                    kind_name(kind)
                ),
            ));
            Ok(None)
        }
        (_, None) => Ok(None),
    }
}

/// A key's AWS credentials: `Some(Some(..))` for a Bedrock key that signs, `Some(None)` for a
/// key without them, `None` when they are incomplete, mixed with `key`, or given to a
/// provider that is not Bedrock (each an error).
fn aws_credentials(
    loaded: &LoadedConfig,
    kat: &str,
    kind: ProviderKind,
    key: &crate::config::ProviderKeyConfig,
    errors: &mut Vec<ConfigError>,
) -> Option<Option<AwsCredentials>> {
    let given = [
        ("access_key_id", key.access_key_id.is_some()),
        ("secret_access_key", key.secret_access_key.is_some()),
        ("session_token", key.session_token.is_some()),
    ];
    if !given.iter().any(|(_, set)| *set) {
        return Some(None);
    }
    if kind != ProviderKind::Bedrock {
        for (field, _) in given.iter().filter(|(_, set)| *set) {
            errors.push(loaded.error_at(
                &format!("{kat}.{field}"),
                format!(
                    "`{field}` applies to keys of bedrock providers, not {}",
                    kind_name(kind)
                ),
            ));
        }
        return None;
    }
    let (id, secret) = match (&key.access_key_id, &key.secret_access_key) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => (id, secret),
        _ => {
            errors.push(loaded.error_at(
                kat,
                "AWS credentials need both `access_key_id` and `secret_access_key`, non-empty",
            ));
            return None;
        }
    };
    if !key.key.is_empty() {
        errors.push(loaded.error_at(
            &format!("{kat}.key"),
            "give either `key` (a Bedrock API key) or AWS credentials, not both",
        ));
        return None;
    }
    Some(Some(AwsCredentials {
        access_key_id: id.as_str().into(),
        secret_access_key: secret.as_str().into(),
        session_token: key.session_token.as_deref().map(Into::into),
    }))
}
