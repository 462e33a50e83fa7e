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
mod text;

pub use index::{EmbeddedIndex, Neighbour};
pub use text::semantic_text;

use super::{unix_ms_now, CacheKey, EmbedderConfig, IndexConfig};
use crate::telemetry::Histogram;
use std::path::Path;
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
}

/// The embedder and the index, shared by every request.
#[derive(Debug)]
pub struct SemanticLayer {
    #[cfg(feature = "semantic")]
    embedder: embed::Embedder,
    index: EmbeddedIndex,
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
}

impl SemanticLayer {
    /// Loads the configured embedder (paths relative to `base_dir`) and creates the index.
    #[cfg(feature = "semantic")]
    pub fn open(
        embedder: Option<&EmbedderConfig>,
        index: Option<&IndexConfig>,
        base_dir: &Path,
    ) -> Result<SemanticLayer, SemanticError> {
        let Some(EmbedderConfig::Fastembed {
            model_dir,
            onnxruntime,
        }) = embedder
        else {
            return Err(SemanticError::Setup(
                "`mode: semantic` needs `cache.embedder: {kind: fastembed, model_dir: ...}`".into(),
            ));
        };
        let max_entries = match index {
            None => DEFAULT_INDEX_ENTRIES,
            Some(IndexConfig::Embedded { max_entries }) => *max_entries,
            Some(other) => {
                return Err(SemanticError::Setup(format!(
                    "index kind `{}` is not available yet; use `index: {{kind: embedded}}`",
                    other.kind_name()
                )))
            }
        };
        let latency = Arc::new(Histogram::default());
        let embedder = embed::Embedder::load(
            &base_dir.join(model_dir),
            onnxruntime.as_deref().map(|p| base_dir.join(p)).as_deref(),
            Arc::clone(&latency),
        )?;
        Ok(SemanticLayer {
            index: EmbeddedIndex::new(embedder.dimensions, max_entries),
            embedder,
            embedding_latency: latency,
        })
    }

    /// Without the `semantic` feature there is no embedder: asking for one is an error.
    #[cfg(not(feature = "semantic"))]
    pub fn open(
        _embedder: Option<&EmbedderConfig>,
        _index: Option<&IndexConfig>,
        _base_dir: &Path,
    ) -> Result<SemanticLayer, SemanticError> {
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
                };
            }
        };
        let hit = self
            .index
            .nearest(key.partition, &vector, unix_ms_now())
            .filter(|n| n.similarity >= threshold);
        SemanticLookup {
            hit,
            vector: Some(vector),
        }
    }

    /// Indexes a stored answer under the embedding of the request it answers.
    pub fn remember(&self, key: &CacheKey, vector: &[f32], expires_ms: u64) {
        self.index
            .insert(key.partition, vector, key.exact, expires_ms, unix_ms_now());
    }

    pub fn index_len(&self) -> usize {
        self.index.len()
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
