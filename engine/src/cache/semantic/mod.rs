//! The semantic layer of the response cache (`mode: semantic`), tried after an exact miss: the
//! conversation in scope is embedded by a local model (`embed`, behind the `semantic` cargo
//! feature) and the nearest earlier request of the same partition — same endpoint, model,
//! parameters, scope and namespace, see `CacheKey::partition` — is looked up in a vector index
//! (`index`). A neighbour at least `threshold` similar (cosine) points at the exact key of its
//! stored answer, which the exact store then serves; so an answer lives once, in the exact
//! store, and expires there.

mod codes;
#[cfg(feature = "semantic")]
pub mod embed;
pub mod index;
#[cfg(feature = "qdrant")]
mod qdrant_index;
mod redis_index;
mod text;

pub use index::{EmbeddedIndex, Neighbour};
#[cfg(feature = "qdrant")]
pub use qdrant_index::QdrantIndex;
pub use redis_index::RedisIndex;
pub use text::{digit_runs, semantic_text};

use super::{unix_ms_now, CacheConfig, CacheKey, CacheStoreConfig, IndexConfig};
use crate::telemetry::Histogram;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

/// Entries the embedded index holds at most, by default.
pub const DEFAULT_INDEX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemanticError {
    /// The layer cannot start: a missing model file or library, or a build without it.
    #[error("semantic cache: {0}")]
    Setup(String),
    #[error("semantic cache: embedding failed: {0}")]
    Embedding(String),
    #[error("semantic cache: the embedder is busy")]
    Busy,
    #[error("semantic cache: the embedder has stopped")]
    Stopped,
    /// The index (a remote one) failed a lookup or a write.
    #[error("semantic cache: index: {0}")]
    Index(String),
}

/// A write to a shared index, run by the caller off the response path.
pub type IndexWrite = Pin<Box<dyn Future<Output = Result<(), SemanticError>> + Send>>;

/// Where the vectors live. (Without the `semantic` feature no layer is ever opened.)
#[derive(Debug)]
#[cfg_attr(not(feature = "semantic"), allow(dead_code))]
enum VectorIndex {
    Embedded(EmbeddedIndex),
    Redis(RedisIndex),
    #[cfg(feature = "qdrant")]
    Qdrant(QdrantIndex),
}

#[cfg_attr(not(feature = "semantic"), allow(dead_code))]
impl VectorIndex {
    /// The index `config` asks for (the embedded one when it names none), for vectors of
    /// `dims` dimensions.
    fn open(config: &CacheConfig, dims: usize) -> Result<VectorIndex, SemanticError> {
        match &config.index {
            None => Ok(VectorIndex::Embedded(EmbeddedIndex::new(
                dims,
                DEFAULT_INDEX_ENTRIES,
            ))),
            Some(IndexConfig::Embedded { max_entries }) => Ok(VectorIndex::Embedded(
                EmbeddedIndex::new(dims, *max_entries),
            )),
            Some(IndexConfig::Redis { url, collection }) => {
                let store_url = shared_store_url(config)?;
                let url = url.as_deref().unwrap_or(store_url);
                let collection = collection.as_deref().unwrap_or(DEFAULT_COLLECTION);
                Ok(VectorIndex::Redis(RedisIndex::new(url, collection)?))
            }
            #[cfg(feature = "qdrant")]
            Some(IndexConfig::Qdrant {
                url,
                collection,
                api_key,
            }) => {
                shared_store_url(config)?;
                Ok(VectorIndex::Qdrant(QdrantIndex::new(
                    url,
                    collection,
                    api_key.as_deref(),
                    dims,
                )?))
            }
            #[cfg(not(feature = "qdrant"))]
            Some(IndexConfig::Qdrant { .. }) => Err(SemanticError::Setup(QDRANT_NOT_BUILT.into())),
        }
    }
}

/// The answers' Redis URL: a shared index needs them shared too, since replicas sharing the
/// vectors but not the answers they point at would mostly miss.
fn shared_store_url(config: &CacheConfig) -> Result<&str, SemanticError> {
    match &config.store {
        CacheStoreConfig::Redis { url, .. } => Ok(url),
        _ => Err(SemanticError::Setup(SHARED_INDEX_NEEDS_REDIS_STORE.into())),
    }
}

/// Why a build without the `qdrant` feature refuses `index: {kind: qdrant}`.
pub const QDRANT_NOT_BUILT: &str = "`index: {kind: qdrant}` is not available in this build \
     (built without the `qdrant` feature); rebuild with `--features qdrant`";

/// Why a shared index (`redis`, `qdrant`) is refused beside an in-process store.
pub const SHARED_INDEX_NEEDS_REDIS_STORE: &str = "a shared `index` (redis, qdrant) needs the \
     answers shared too: `store: {kind: redis, url: ...}`";

/// Key prefix of a Redis index without `collection`.
pub const DEFAULT_COLLECTION: &str = "tollgate";

/// The embedder and the index, shared by every request.
#[derive(Debug)]
pub struct SemanticLayer {
    #[cfg(feature = "semantic")]
    embedder: embed::Embedder,
    index: VectorIndex,
    /// Seconds per embedding batch.
    pub embedding_latency: Arc<Histogram>,
}

/// What a semantic lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticLookup {
    /// The nearest entry at or above the threshold.
    pub hit: Option<Neighbour>,
    /// The request's embedding, to index its answer under once it is stored. `None` when
    /// embedding failed (then the answer is stored for exact hits only).
    pub vector: Option<Arc<[f32]>>,
    /// The embedder or the index failed (the lookup is then a miss).
    pub failed: bool,
}

impl SemanticLayer {
    /// Loads the configured embedder (paths relative to `base_dir`) and opens the index.
    #[cfg(feature = "semantic")]
    pub fn open(config: &CacheConfig, base_dir: &Path) -> Result<SemanticLayer, SemanticError> {
        let Some(super::EmbedderConfig::Fastembed {
            model_dir,
            onnxruntime,
        }) = &config.embedder
        else {
            return Err(SemanticError::Setup(
                "`mode: semantic` needs `cache.embedder: {kind: fastembed, model_dir: ...}`".into(),
            ));
        };
        let latency = Arc::new(Histogram::default());
        let embedder = embed::Embedder::load(
            &base_dir.join(model_dir),
            onnxruntime.as_deref().map(|p| base_dir.join(p)).as_deref(),
            Arc::clone(&latency),
        )?;
        Ok(SemanticLayer {
            index: VectorIndex::open(config, embedder.dimensions)?,
            embedder,
            embedding_latency: latency,
        })
    }

    /// Without the `semantic` feature there is no embedder: asking for one is an error.
    #[cfg(not(feature = "semantic"))]
    pub fn open(_config: &CacheConfig, _base_dir: &Path) -> Result<SemanticLayer, SemanticError> {
        Err(SemanticError::Setup(
            "this tollgate was built without the semantic cache; rebuild with \
             `--features semantic` or use `mode: exact`"
                .into(),
        ))
    }

    /// Embeds `text` and finds its nearest neighbour in `key`'s partition.
    pub async fn lookup(&self, key: &CacheKey, text: String, threshold: f32) -> SemanticLookup {
        let vector = match self.embed(text).await {
            Ok(v) => Arc::<[f32]>::from(v),
            Err(e) => {
                tracing::warn!(error = %e, "semantic lookup skipped");
                return SemanticLookup {
                    hit: None,
                    vector: None,
                    failed: true,
                };
            }
        };
        let nearest = match &self.index {
            VectorIndex::Embedded(index) => {
                Ok(index.nearest(key.partition, &vector, unix_ms_now()))
            }
            VectorIndex::Redis(index) => index.nearest(key.partition, &vector, unix_ms_now()).await,
            #[cfg(feature = "qdrant")]
            VectorIndex::Qdrant(index) => {
                index.nearest(key.partition, &vector, unix_ms_now()).await
            }
        };
        let (hit, failed) = match nearest {
            Ok(n) => (n.filter(|n| n.similarity >= threshold), false),
            Err(e) => {
                tracing::warn!(error = %e, "semantic lookup failed; treated as a miss");
                (None, true)
            }
        };
        SemanticLookup {
            hit,
            vector: Some(vector),
            failed,
        }
    }

    /// Indexes a stored answer under the embedding of the request it answers. The embedded
    /// index is written in place; a remote index's write is returned, for the caller to run
    /// off the response path.
    pub fn remember(
        &self,
        key: &CacheKey,
        vector: Arc<[f32]>,
        expires_ms: u64,
    ) -> Option<IndexWrite> {
        let (partition, exact) = (key.partition, key.exact);
        match &self.index {
            VectorIndex::Embedded(index) => {
                index.insert(partition, &vector, exact, expires_ms, unix_ms_now());
                None
            }
            VectorIndex::Redis(index) => {
                let index = index.clone();
                Some(Box::pin(async move {
                    index
                        .insert(partition, &vector, exact, expires_ms, unix_ms_now())
                        .await
                }))
            }
            #[cfg(feature = "qdrant")]
            VectorIndex::Qdrant(index) => {
                let index = index.clone();
                Some(Box::pin(async move {
                    index
                        .insert(partition, &vector, exact, expires_ms, unix_ms_now())
                        .await
                }))
            }
        }
    }

    /// The in-process index, the only one this process saves and restores.
    pub(crate) fn embedded_index(&self) -> Option<&EmbeddedIndex> {
        match &self.index {
            VectorIndex::Embedded(index) => Some(index),
            _ => None,
        }
    }

    /// Whether a shared index answers now (for `/readyz`); the embedded one always does.
    pub async fn ping(&self) -> Result<(), SemanticError> {
        match &self.index {
            VectorIndex::Embedded(_) => Ok(()),
            VectorIndex::Redis(index) => index.ping().await,
            #[cfg(feature = "qdrant")]
            VectorIndex::Qdrant(index) => index.ping().await,
        }
    }

    /// Entries in the embedded index; `None` for a shared one, whose size is Redis's to tell.
    pub fn index_len(&self) -> Option<usize> {
        match &self.index {
            VectorIndex::Embedded(index) => Some(index.len()),
            _ => None,
        }
    }

    #[cfg(feature = "semantic")]
    async fn embed(&self, text: String) -> Result<Vec<f32>, SemanticError> {
        self.embedder.embed(text).await
    }

    #[cfg(not(feature = "semantic"))]
    async fn embed(&self, _text: String) -> Result<Vec<f32>, SemanticError> {
        Err(SemanticError::Stopped)
    }
}

/// Scales `v` to unit length, so cosine similarity is a dot product.
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
