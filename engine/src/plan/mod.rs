//! The compiled decision plan: everything the hot path reads, resolved once at compile time.
//! No I/O, no locks; the whole `Plan` is swapped atomically on reload.

mod models;
mod weighted;

pub use models::ModelMatcher;
pub use weighted::pick_weighted;

use crate::config::ProviderKind;
use bytes::Bytes;
use http::{HeaderValue, Uri};
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
    pub providers: Vec<ProviderPlan>,
    pub(crate) provider_by_name: HashMap<String, usize>,
    pub(crate) key_by_digest: HashMap<KeyDigest, usize>,
    pub keys: Vec<KeyPlan>,
    /// The identity of callers without a key when `auth.required: false`.
    pub anonymous: KeyPlan,
    /// The effective config with secrets redacted, pre-serialized for `/admin/config`.
    pub redacted_config: Bytes,
}

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
    pub chat_url: Uri,
    pub embeddings_url: Uri,
    pub keys: Vec<ProviderKeyPlan>,
    pub models: ModelMatcher,
    pub timeout: Duration,
}

impl ProviderPlan {
    pub fn serves(&self, model: &str) -> bool {
        self.models.matches(model)
    }
}

#[derive(Debug)]
pub struct ProviderKeyPlan {
    pub name: Arc<str>,
    /// `Bearer <secret>`, marked sensitive so it never prints.
    pub authorization: HeaderValue,
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
    /// (provider index, weight) for bare model names, in config order.
    pub providers: Vec<(usize, u32)>,
    /// `GET /v1/models` for this key, pre-serialized.
    pub models_list: Bytes,
}

impl KeyPlan {
    pub fn may_use_provider(&self, provider: usize) -> bool {
        self.providers.iter().any(|(p, _)| *p == provider)
    }
}
