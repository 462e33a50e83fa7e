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
pub mod store;

pub use config::{
    CacheConfig, CacheDirectives, CacheMode, CacheScope, CacheStoreConfig, DirectiveError,
    EffectiveCache, EmbedderConfig, IndexConfig,
};
pub use entry::{unix_ms_now, CachedUsage, CorruptEntry, Entry};
pub use key::{CacheKey, Hash128, KeyInput, ScopeId, EXCLUDED_PARAMS};
pub use store::{CacheError, CacheStore, MemoryStore, RedisCacheStore};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Writes allowed in flight at once before new ones are dropped.
const MAX_PENDING_STORES: usize = 1024;

/// Counters for the metrics endpoint. Monotonic; read with `Ordering::Relaxed`.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    pub hits_exact: AtomicU64,
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
}

impl ResponseCache {
    /// The configured cache with its configured store. Fails only on a malformed store URL.
    pub fn from_config(config: CacheConfig) -> Result<ResponseCache, CacheError> {
        let store = CacheStore::from_config(&config.store)?;
        Ok(ResponseCache::with_store(config, store))
    }

    pub fn with_store(config: CacheConfig, store: CacheStore) -> ResponseCache {
        ResponseCache {
            config: Arc::new(config),
            store,
            metrics: Arc::default(),
            pending: Arc::new(Semaphore::new(MAX_PENDING_STORES)),
        }
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
    pub fn store(&self, key: CacheKey, entry: Entry) -> Option<tokio::task::JoinHandle<()>> {
        if !(200..300).contains(&entry.status) || entry.ttl.is_zero() {
            return None;
        }
        // The in-process store is a cheap map insert: done inline, so a client repeating its
        // request right after the answer always hits (read-your-writes). Only a remote store
        // is written from a task.
        if let CacheStore::Memory(memory) = &self.store {
            let ttl = entry.ttl;
            memory.put(&key.exact, entry, ttl);
            CacheMetrics::add(&self.metrics.stores);
            return None;
        }
        let Ok(permit) = Arc::clone(&self.pending).try_acquire_owned() else {
            CacheMetrics::add(&self.metrics.stores_dropped);
            return None;
        };
        let store = self.store.clone();
        let metrics = Arc::clone(&self.metrics);
        Some(tokio::spawn(async move {
            let ttl = entry.ttl;
            match store.put(&key.exact, entry, ttl).await {
                Ok(()) => CacheMetrics::add(&metrics.stores),
                Err(e) => {
                    tracing::warn!(error = %e, "cache write failed");
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
