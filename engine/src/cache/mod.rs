//! The response cache (SPEC §10). This module holds the exact layer: a request's canonical
//! hash (`key`) looks up a stored answer (`store`) that is replayed as-is. Semantic caching
//! slots in after an exact miss: `CacheKey::partition` is the filter its index searches
//! within and `CacheKey::exact` is what a semantic neighbour points back to, so a semantic
//! hit is served by the same `CacheStore::get`.
//!
//! Writes happen off the response path (a spawned task) and are bounded: when too many are
//! in flight, new ones are dropped and counted rather than queued.

pub mod config;
pub mod entry;
pub mod key;
pub mod persist;
pub mod semantic;
pub mod store;

pub use config::{
    CacheConfig, CacheDirectives, CacheMode, CacheScope, CacheStoreConfig, DirectiveError,
    EffectiveCache, EmbedderConfig, IndexConfig, DEFAULT_THRESHOLD,
};
pub use entry::{unix_ms_now, CachedUsage, CorruptEntry, Entry};
pub use key::{CacheKey, Hash128, KeyInput, ScopeId, EXCLUDED_PARAMS};
pub use persist::{cache_file_for, PersistError, Persisted};
pub use store::{CacheError, CacheStore, MemoryStore, RedisCacheStore};

use semantic::SemanticLayer;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Writes allowed in flight at once before new ones are dropped.
const MAX_PENDING_STORES: usize = 1024;

/// Counters for the metrics endpoint. Monotonic; read with `Ordering::Relaxed`.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    pub hits_exact: AtomicU64,
    pub hits_semantic: AtomicU64,
    pub misses: AtomicU64,
    /// Lookups or writes the store failed (each failed lookup is also a miss).
    pub errors: AtomicU64,
    pub stores: AtomicU64,
    /// Writes skipped because `MAX_PENDING_STORES` were already in flight.
    pub stores_dropped: AtomicU64,
}

impl CacheMetrics {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(Entry),
    /// Not found (or the store failed): call upstream, then `ResponseCache::store`.
    Miss,
    /// Caching is off for this request: neither look up nor store.
    Bypass,
}

/// The cache as the proxy sees it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResponseCache {
    config: Arc<CacheConfig>,
    store: CacheStore,
    metrics: Arc<CacheMetrics>,
    pending: Arc<Semaphore>,
    /// Present when `mode: semantic` or an embedder is configured.
    semantic: Option<Arc<SemanticLayer>>,
}

/// What the semantic layer found for a request that missed the exact layer.
pub struct SemanticFound {
    /// The stored answer of the nearest similar request, and its similarity.
    pub hit: Option<(Entry, f32)>,
    /// The request's embedding, to index its own answer under.
    pub vector: Option<Arc<[f32]>>,
}

impl ResponseCache {
    /// The configured cache with its configured store, and the semantic layer when the config
    /// asks for one (model paths relative to `base_dir`). Fails on a malformed store URL, or
    /// when the semantic layer cannot load its model.
    pub fn from_config(config: CacheConfig, base_dir: &Path) -> Result<ResponseCache, String> {
        let store = CacheStore::from_config(&config.store).map_err(|e| e.to_string())?;
        let wants_semantic = config.mode == CacheMode::Semantic || config.embedder.is_some();
        let semantic = if wants_semantic {
            let layer = SemanticLayer::open(&config, base_dir).map_err(|e| e.to_string())?;
            Some(Arc::new(layer))
        } else {
            None
        };
        let mut cache = ResponseCache::with_store(config, store);
        cache.semantic = semantic;
        Ok(cache)
    }

    pub fn with_store(config: CacheConfig, store: CacheStore) -> ResponseCache {
        ResponseCache {
            config: Arc::new(config),
            store,
            metrics: Arc::default(),
            pending: Arc::new(Semaphore::new(MAX_PENDING_STORES)),
            semantic: None,
        }
    }

    /// Each shared store this cache uses (`cache` for a Redis response store, `vector_index`
    /// for a Redis or Qdrant index) with why it does not answer now, if it does not; for
    /// `/readyz`. In-process stores always answer and are not listed.
    pub async fn check_stores(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out = Vec::new();
        if let CacheStore::Redis(_) = &self.store {
            out.push((
                "cache",
                self.store.ping().await.err().map(|e| e.to_string()),
            ));
        }
        if let Some(semantic) = self.semantic.as_ref().filter(|s| s.index_len().is_none()) {
            let answer = semantic.ping().await.err().map(|e| e.to_string());
            out.push(("vector_index", answer));
        }
        out
    }

    pub fn semantic(&self) -> Option<&Arc<SemanticLayer>> {
        self.semantic.as_ref()
    }

    /// After an exact miss: the stored answer of the most similar earlier request of the same
    /// partition, at or above `threshold`. `None` without a semantic layer or conversation
    /// text. A neighbour whose answer has left the store is a miss.
    pub async fn semantic_lookup(
        &self,
        key: &CacheKey,
        text: Option<String>,
        threshold: f32,
    ) -> Option<SemanticFound> {
        let layer = self.semantic.as_ref()?;
        let found = layer.lookup(key, text?, threshold).await;
        if found.failed {
            CacheMetrics::add(&self.metrics.errors);
        }
        let hit = match found.hit {
            Some(n) => match self.store.get(&n.exact).await {
                Ok(Some(entry)) => Some((entry, n.similarity)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "cache lookup failed; treated as a miss");
                    CacheMetrics::add(&self.metrics.errors);
                    None
                }
            },
            None => None,
        };
        if hit.is_some() {
            // The exact layer counted this request as a miss; it is a hit after all.
            self.metrics.misses.fetch_sub(1, Ordering::Relaxed);
            CacheMetrics::add(&self.metrics.hits_semantic);
        }
        Some(SemanticFound {
            hit,
            vector: found.vector,
        })
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Shared with the metrics endpoint.
    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.metrics
    }

    /// Mode, TTL and threshold for a request with these directives.
    pub fn effective(&self, directives: &CacheDirectives) -> EffectiveCache {
        self.config.effective(directives)
    }

    /// The key of a request, with the configured history. The caller resolves the scope id
    /// with `self.config().scope.id(..)` and passes the directives' namespace.
    pub fn key(
        &self,
        endpoint: &str,
        model: &str,
        body: &serde_json::Value,
        scope: ScopeId<'_>,
        namespace: Option<&str>,
    ) -> CacheKey {
        CacheKey::new(&KeyInput {
            endpoint,
            model,
            body,
            scope,
            namespace,
            history: self.config.history,
        })
    }

    /// Looks the request up. A store error is logged, counted, and answered as a miss: the
    /// cache never fails a request.
    pub async fn lookup(&self, directives: &CacheDirectives, key: &CacheKey) -> Lookup {
        if self.effective(directives).mode == CacheMode::Off {
            return Lookup::Bypass;
        }
        match self.store.get(&key.exact).await {
            Ok(Some(entry)) => {
                CacheMetrics::add(&self.metrics.hits_exact);
                Lookup::Hit(entry)
            }
            Ok(None) => {
                CacheMetrics::add(&self.metrics.misses);
                Lookup::Miss
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache lookup failed; treated as a miss");
                CacheMetrics::add(&self.metrics.errors);
                CacheMetrics::add(&self.metrics.misses);
                Lookup::Miss
            }
        }
    }

    /// Stores an answer for `entry.ttl`: in place for the in-process store, in a background
    /// task for Redis (so it needs a Tokio runtime). Only successful answers are kept: an
    /// error replayed for the TTL would outlive its cause. Returns the task, if one was
    /// started; callers normally drop it.
    pub fn store(
        &self,
        key: CacheKey,
        entry: Entry,
        vector: Option<Arc<[f32]>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !(200..300).contains(&entry.status) || entry.ttl.is_zero() {
            return None;
        }
        // Indexed for the semantic layer with the same lifetime as the stored answer.
        let index_write = match (&self.semantic, vector) {
            (Some(layer), Some(v)) => {
                let expires =
                    entry.created_at_ms + u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX);
                layer.remember(&key, v, expires)
            }
            _ => None,
        };
        // The in-process store is a cheap map insert: done inline, so a client repeating its
        // request right after the answer always hits (read-your-writes). Only remote writes
        // (a Redis store or index) happen in a task.
        let mut remote_entry = Some(entry);
        if let CacheStore::Memory(memory) = &self.store {
            if let Some(entry) = remote_entry.take() {
                let ttl = entry.ttl;
                memory.put(&key.exact, entry, ttl);
                CacheMetrics::add(&self.metrics.stores);
            }
            index_write.as_ref()?;
        }
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            CacheMetrics::add(&self.metrics.stores_dropped);
            return None;
        };
        let store = self.store.clone();
        let metrics = Arc::clone(&self.metrics);
        Some(tokio::spawn(async move {
            if let Some(entry) = remote_entry {
                let ttl = entry.ttl;
                match store.put(&key.exact, entry, ttl).await {
                    Ok(()) => CacheMetrics::add(&metrics.stores),
                    Err(e) => {
                        tracing::warn!(error = %e, "cache write failed");
                        CacheMetrics::add(&metrics.errors);
                        // An index entry pointing at an answer that is not there is no use.
                        return;
                    }
                }
            }
            // After the answer is stored, so a replica finding the vector finds the answer.
            if let Some(write) = index_write {
                if let Err(e) = write.await {
                    tracing::warn!(error = %e, "semantic index write failed");
                    CacheMetrics::add(&metrics.errors);
                }
            }
            drop(permit);
        }))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
