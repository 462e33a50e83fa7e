//! The compiled decision plan: everything the hot path reads, resolved once at compile time.
//! No I/O, no locks; the whole `Plan` is swapped atomically on reload.

mod models;
mod policy;
mod weighted;

pub use models::{ModelMatcher, Patterns};
pub use policy::{GuardDetect, GuardrailPlan, KeyGuardrail, KeyRule, RulePlan};
pub use weighted::pick_weighted;

use crate::config::ProviderKind;
use crate::pricing::PriceTable;
use crate::state::{Counter, LimitKind, Window};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// SHA-256 of a virtual key secret: the only form in which keys are held in memory.
pub type KeyDigest = [u8; 32];

#[derive(Debug)]
pub struct Plan {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: usize,
    /// SHA-256 of the admin bearer token, compared in constant time.
    pub admin_token_digest: Option<KeyDigest>,
    pub auth_required: bool,
    /// Reload on config file change (taken at start).
    pub watch_config: bool,
    /// `metrics.per_key`: label request counts by virtual key.
    pub metrics_per_key: bool,
    pub providers: Vec<ProviderPlan>,
    /// Health trackers of each provider and provider key, by index. A running gateway binds
    /// its own (which outlive plans) before the plan serves.
    pub health: crate::reliability::trackers::PlanHealth,
    pub(crate) provider_by_name: HashMap<String, usize>,
    pub(crate) key_by_digest: HashMap<KeyDigest, usize>,
    pub keys: Vec<KeyPlan>,
    /// The identity of callers without a key when `auth.required: false`.
    pub anonymous: KeyPlan,
    /// The effective config with secrets redacted, pre-serialized for `/admin/config`.
    pub redacted_config: Bytes,
    pub prices: PriceTable,
    /// Output tokens reserved when a request does not bound its answer.
    pub default_output_tokens: u64,
    /// Every limit of the plan once (for `/admin/usage`), in config order.
    pub all_limits: Vec<Arc<LimitPlan>>,
    /// Whether any limit counts tokens or dollars, i.e. whether prompts must be tokenized.
    pub counts_tokens: bool,
    /// Where the memory state is saved, and how often.
    pub snapshot_file: Option<std::path::PathBuf>,
    pub snapshot_interval: Duration,
    /// One limit-free entry per provider, for routing-rule targets outside a key's
    /// `providers:` list (rules are the administrator's choice and may name any provider).
    pub unlisted_providers: Vec<KeyProvider>,
    /// `routing.aliases`: alias → ordered models (primary first).
    pub aliases: HashMap<String, Vec<Arc<str>>>,
    /// Every routing rule in file order, for `explain`.
    pub rules: Vec<Arc<RulePlan>>,
    /// Redis URL and failure policy when counters live in Redis.
    pub redis: Option<(String, crate::config::OnStateError)>,
    /// The MCP gateway: upstream servers and the limits of tool calls.
    pub mcp: crate::mcp::plan::McpPlan,
}

/// One limit of one tier, with the counter it is enforced on. Counters live in the state
/// store and outlive plans, so usage survives a reload and a changed limit applies at once.
#[derive(Debug)]
pub struct LimitPlan {
    /// `virtual_key:vk-ml`, `team:ml`, `customer:acme`, `provider:openai`,
    /// `virtual_key:vk-ml/provider:openai`.
    pub scope: Arc<str>,
    pub kind: LimitKind,
    pub window: Option<Window>,
    /// Requests, tokens, concurrent requests, or micro-dollars for budgets.
    pub limit: u64,
    pub counter: Arc<Counter>,
}

/// The limits of a set of tiers, flattened into one list.
pub type Limits = Vec<Arc<LimitPlan>>;

impl Plan {
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.provider_by_name.get(name).copied()
    }

    pub fn key_by_id(&self, id: &str) -> Option<&KeyPlan> {
        self.keys.iter().find(|k| &*k.id == id)
    }
}

#[derive(Debug)]
pub struct ProviderPlan {
    pub name: Arc<str>,
    pub kind: ProviderKind,
    /// Where chat and embeddings requests go.
    pub urls: ProviderUrls,
    pub keys: Vec<ProviderKeyPlan>,
    pub models: ModelMatcher,
    pub timeouts: ProviderTimeouts,
    /// The pooled client for this provider's connect timeout, set by the gateway when it
    /// takes the plan in (pools outlive plans); `None` in plans only checked or tested.
    pub client: Option<crate::proxy::UpstreamClient>,
    pub retries: crate::reliability::backoff::RetryPolicy,
    pub health: crate::reliability::health::HealthPolicy,
    /// The global tier of this provider.
    pub limits: Limits,
    /// Name the built-in price table knows this provider by (`openai` for kind openai).
    pub pricing_name: &'static str,
    /// The wire format this provider speaks; requests and answers are translated to and from
    /// it when it is not the client's (OpenAI) format.
    pub wire: ProviderWire,
    /// The header that carries a provider key (`authorization`, or `x-api-key` for Anthropic).
    pub auth_header: HeaderName,
    /// Headers sent on every request to this provider (`anthropic-version`), built once here.
    pub fixed_headers: Vec<(HeaderName, HeaderValue)>,
    /// Bedrock: the region requests are signed for (keys with AWS credentials sign each
    /// attempt, as the signature covers the time and the body).
    pub aws_region: Option<Box<str>>,
}

/// What a provider's chat endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderWire {
    /// OpenAI Chat Completions (kinds openai and openai_compatible): bodies pass as they are.
    OpenAi,
    /// Anthropic Messages: bodies are translated, and `max_tokens` (which Anthropic requires)
    /// is filled with `default_max_tokens` when the client set no bound.
    Anthropic { default_max_tokens: u64 },
    /// Gemini `generateContent`: bodies are translated, the model goes in the URL.
    Gemini,
    /// Bedrock Converse: bodies are translated, the model goes in the URL, requests are
    /// signed (SigV4) per attempt and streams arrive in AWS's binary event-stream framing.
    Bedrock,
}

impl ProviderPlan {
    pub fn serves(&self, model: &str) -> bool {
        self.models.matches(model)
    }
}

/// A name that can stand as one URL path segment: letters, digits, `-`, `_`, `.`, not `..`.
fn is_path_safe(name: &str) -> bool {
    !name.is_empty()
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Upstream URLs of a provider. Most have one URL per endpoint, built at compile time; Azure
/// OpenAI puts the deployment (chosen by model) in the path.
#[derive(Debug, Clone)]
pub enum ProviderUrls {
    Fixed {
        chat: Uri,
        embeddings: Uri,
    },
    /// `{base}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` for a
    /// stream, `:batchEmbedContents` for embeddings).
    Gemini {
        /// Without a trailing `/`, checked to be an http(s) URL at compile time.
        base: Box<str>,
    },
    /// `{base}/openai/deployments/{deployment}/{chat/completions|embeddings}?api-version=..`
    Azure {
        /// Without a trailing `/`, checked to be an http(s) URL at compile time.
        base: Box<str>,
        api_version: Box<str>,
        /// Deployment by model; a model not listed is its own deployment name.
        deployments: rustc_hash::FxHashMap<Box<str>, Box<str>>,
    },
    /// `{base}/model/{model id}/converse` (`/converse-stream` for a stream), `/invoke` for
    /// embeddings.
    Bedrock {
        /// Without a trailing `/`, checked to be an http(s) URL at compile time.
        base: Box<str>,
    },
}

impl ProviderUrls {
    /// The URL for one request. `Err`: the model name cannot form a URL (Azure deployments
    /// and Gemini paths come from the model name, which the client may choose).
    pub fn for_request(&self, embeddings: bool, stream: bool, model: &str) -> Result<Uri, String> {
        match self {
            ProviderUrls::Fixed {
                chat,
                embeddings: emb,
            } => Ok(if embeddings {
                emb.clone()
            } else {
                chat.clone()
            }),
            ProviderUrls::Gemini { base } => {
                if !is_path_safe(model) {
                    return Err(format!("`{model}` is not a valid Gemini model name"));
                }
                // Embeddings are never streamed: the batch endpoint answers them all at once.
                let action = if embeddings {
                    "batchEmbedContents"
                } else if stream {
                    "streamGenerateContent?alt=sse"
                } else {
                    "generateContent"
                };
                format!("{base}/v1beta/models/{model}:{action}")
                    .parse()
                    .map_err(|e| format!("bad Gemini URL for model `{model}`: {e}"))
            }
            ProviderUrls::Azure {
                base,
                api_version,
                deployments,
            } => {
                let deployment = deployments.get(model).map_or(model, |d| &**d);
                if !is_path_safe(deployment) {
                    return Err(format!(
                        "`{deployment}` is not a valid Azure deployment name (letters, digits, \
                         `-`, `_`, `.`); map the model to a deployment under `deployments`"
                    ));
                }
                let path = if embeddings {
                    "embeddings"
                } else {
                    "chat/completions"
                };
                format!("{base}/openai/deployments/{deployment}/{path}?api-version={api_version}")
                    .parse()
                    .map_err(|e| format!("bad Azure URL for deployment `{deployment}`: {e}"))
            }
            ProviderUrls::Bedrock { base } => {
                if model.is_empty() {
                    return Err("an empty model id cannot name a Bedrock model".into());
                }
                // The id is percent-encoded into one path segment, so any id is safe.
                // Embedding models answer InvokeModel only, never streamed.
                let path = if embeddings {
                    crate::translate::bedrock::invoke_path(model)
                } else {
                    crate::translate::bedrock::converse_path(model, stream)
                };
                format!("{base}{path}")
                    .parse()
                    .map_err(|e| format!("bad Bedrock URL for model `{model}`: {e}"))
            }
        }
    }
}

/// How long each phase of one attempt at a provider may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderTimeouts {
    /// TCP connect of a new connection (a pooled one needs none).
    pub connect: Duration,
    /// From sending the request until the response headers arrive, connecting included;
    /// at most `total`.
    pub first_byte: Duration,
    /// The whole attempt: headers, then the body or the stream to its end.
    pub total: Duration,
    /// Longest silence between two chunks of a stream, once the first has arrived.
    pub stream_idle: Duration,
}

#[derive(Debug)]
pub struct ProviderKeyPlan {
    pub name: Arc<str>,
    /// The value of the provider's `auth_header`: `Bearer <secret>`, or the bare secret for
    /// `x-api-key`; marked sensitive so it never prints. For a key with `aws` credentials it
    /// is the access key id, never sent: it only tells keys apart.
    pub authorization: HeaderValue,
    /// Bedrock: credentials that sign each attempt instead of a fixed header.
    pub aws: Option<crate::aws::AwsCredentials>,
    pub weight: u32,
    pub models: Option<ModelMatcher>,
}

impl ProviderKeyPlan {
    pub fn serves(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.matches(model))
    }
}

#[derive(Debug)]
pub struct KeyPlan {
    pub id: Arc<str>,
    pub team: Option<Arc<str>>,
    pub customer: Option<Arc<str>>,
    pub disabled: bool,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    pub models: ModelMatcher,
    /// The providers this key may use, weighted for bare model names, in config order.
    pub providers: Vec<KeyProvider>,
    /// The key's own tier, then its team's, then its customer's.
    pub limits: Limits,
    /// `key` as CEL sees it.
    pub attrs: crate::policy::KeyAttrs,
    /// Routing rules of this key's scopes, in the order they are tried (virtual key, team,
    /// customer, global; then priority; then file order), conditions folded for this key.
    pub rules: Vec<KeyRule>,
    pub input_guardrails: Vec<KeyGuardrail>,
    pub output_guardrails: Vec<KeyGuardrail>,
    /// `GET /v1/models` for this key, pre-serialized.
    pub models_list: Bytes,
    /// The MCP tools this key may use and the tiers of its tool calls.
    pub mcp: crate::mcp::plan::KeyMcp,
}

/// A provider as one key uses it: its weight and the provider-config tier.
#[derive(Debug)]
pub struct KeyProvider {
    pub provider: usize,
    pub weight: u32,
    pub limits: Limits,
}

impl KeyPlan {
    /// CEL's `usage`: the highest use of each kind across the key's tiers (key, team,
    /// customer), in percent of the limit, counting requests in flight.
    pub fn usage_pct(&self, now: i64) -> crate::policy::UsagePct {
        let mut pct = crate::policy::UsagePct::default();
        for l in &self.limits {
            if l.limit == 0 {
                continue;
            }
            let u = l.counter.usage_at(now);
            let p = (u.used + u.reserved) as f64 * 100.0 / l.limit as f64;
            let slot = match l.kind {
                LimitKind::Budget => &mut pct.budget_pct,
                LimitKind::Requests => &mut pct.requests_pct,
                LimitKind::Tokens => &mut pct.tokens_pct,
                LimitKind::Concurrent => continue,
            };
            *slot = slot.max(p);
        }
        pct
    }

    pub fn provider_entry(&self, provider: usize) -> Option<&KeyProvider> {
        self.providers.iter().find(|p| p.provider == provider)
    }
}
