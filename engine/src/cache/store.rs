//! Where exact entries live: in process (bounded, per-entry TTL) or in Redis (shared by
//! replicas). Every failure is an `Err` the caller counts as a miss; nothing here panics or
//! waits long on a dead server.

use super::config::CacheStoreConfig;
use super::entry::{unix_ms_now, CorruptEntry, Entry};
use super::key::Hash128;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Client;
use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every Redis key of the cache starts with this.
pub const REDIS_PREFIX: &str = "tollgate:cache:";

/// A lookup waits at most this long for Redis: past it, the upstream call is the faster
/// answer. Reconnection is not retried within a request for the same reason.
pub(crate) const REDIS_DEADLINE: Duration = Duration::from_millis(500);
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("invalid cache redis URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cache store {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    #[error(transparent)]
    Corrupt(#[from] CorruptEntry),
}

/// The exact-entry store. Cheap to clone: clones share the same entries or connection.
#[derive(Clone, Debug)]
pub enum CacheStore {
    Memory(MemoryStore),
    Redis(RedisCacheStore),
}

impl CacheStore {
    /// Builds the configured store. A Redis store connects lazily, so a cache Redis that is
    /// down at start costs misses, not the gateway; only a malformed URL fails here.
    pub fn from_config(config: &CacheStoreConfig) -> Result<CacheStore, CacheError> {
        Ok(match config {
            CacheStoreConfig::Memory { max_entries } => {
                CacheStore::Memory(MemoryStore::new(*max_entries))
            }
            CacheStoreConfig::Redis { url } => CacheStore::Redis(RedisCacheStore::new(url)?),
        })
    }

    /// Whether the store answers now (for `/readyz`); memory always does.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match self {
            CacheStore::Memory(_) => Ok(()),
            CacheStore::Redis(r) => r.ping().await,
        }
    }

    pub async fn get(&self, key: &Hash128) -> Result<Option<Entry>, CacheError> {
        let found = match self {
            CacheStore::Memory(m) => Ok(m.get(key)),
            CacheStore::Redis(r) => r.get(key).await,
        }?;
        // An entry the store kept a little too long is still a miss.
        Ok(found.filter(|e| e.remaining(unix_ms_now()).is_some()))
    }

    pub async fn put(&self, key: &Hash128, entry: Entry, ttl: Duration) -> Result<(), CacheError> {
        match self {
            CacheStore::Memory(m) => {
                m.put(key, entry, ttl);
                Ok(())
            }
            CacheStore::Redis(r) => r.put(key, &entry, ttl).await,
        }
    }
}

#[derive(Clone)]
struct Stored {
    entry: Arc<Entry>,
    ttl: Duration,
}

/// Each entry expires after the TTL it was stored with (requests may set their own).
struct PerEntryTtl;

impl Expiry<u128, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &u128, v: &Stored, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &u128,
        v: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// In-process entries, at most `max_entries` of them (least recently and least frequently
/// used go first).
#[derive(Clone)]
pub struct MemoryStore {
    entries: Cache<u128, Stored>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryStore {
    pub fn new(max_entries: u64) -> MemoryStore {
        MemoryStore {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    pub fn get(&self, key: &Hash128) -> Option<Entry> {
        self.entries
            .get(&key.as_u128())
            .map(|s| Entry::clone(&s.entry))
    }

    pub fn put(&self, key: &Hash128, entry: Entry, ttl: Duration) {
        let stored = Stored {
            entry: Arc::new(entry),
            ttl,
        };
        self.entries.insert(key.as_u128(), stored);
    }

    /// Calls `f` with each entry held (expired ones may still be among them).
    pub fn for_each(&self, mut f: impl FnMut(Hash128, &Entry)) {
        for (key, stored) in self.entries.iter() {
            f(Hash128(key.to_be_bytes()), &stored.entry);
        }
    }

    /// Entries held; eventually consistent with inserts and evictions.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A connection to `url` opened on first use, with the cache's deadlines, and the URL without
/// its password (for messages). Shared by the exact store and the Redis vector index.
pub(crate) fn connect_lazily(url: &str) -> Result<(ConnectionManager, Arc<str>), CacheError> {
    let shown: Arc<str> = Arc::from(crate::state::redis::redact(url));
    let invalid = |reason: String| CacheError::InvalidUrl {
        url: shown.to_string(),
        reason,
    };
    let client = Client::open(url).map_err(|e| invalid(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
        .set_response_timeout(Some(REDIS_DEADLINE))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(100));
    let conn = ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| invalid(e.to_string()))?;
    Ok((conn, shown))
}

/// Entries in Redis under `tollgate:cache:{hex key}`, each a `SET … PX ttl` of the entry's
/// wire form, so Redis expires them and `maxmemory-policy` can evict them.
#[derive(Clone)]
pub struct RedisCacheStore {
    conn: ConnectionManager,
    /// Without its password, for messages.
    url: Arc<str>,
}

impl fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheStore")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisCacheStore {
    /// Parses `url` and prepares a connection opened on first use.
    pub fn new(url: &str) -> Result<RedisCacheStore, CacheError> {
        let (conn, shown) = connect_lazily(url)?;
        Ok(RedisCacheStore { conn, url: shown })
    }

    fn redis_key(key: &Hash128) -> String {
        format!("{REDIS_PREFIX}{key}")
    }

    fn unavailable(&self, reason: impl fmt::Display) -> CacheError {
        CacheError::Unavailable {
            url: self.url.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Bounds a command by `REDIS_DEADLINE`, reconnection included.
    async fn run<T>(
        &self,
        what: &str,
        cmd: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(REDIS_DEADLINE, cmd).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.unavailable(format!("{what}: {e}"))),
            Err(_) => Err(self.unavailable(format!("{what}: no reply within {REDIS_DEADLINE:?}"))),
        }
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let ping = ::redis::cmd("PING");
        self.run("PING", ping.query_async::<()>(&mut conn)).await
    }

    pub async fn get(&self, key: &Hash128) -> Result<Option<Entry>, CacheError> {
        let mut conn = self.conn.clone();
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(Self::redis_key(key));
        let raw: Option<Vec<u8>> = self.run("GET", cmd.query_async(&mut conn)).await?;
        match raw {
            Some(bytes) => Ok(Some(Entry::decode(Bytes::from(bytes))?)),
            None => Ok(None),
        }
    }

    pub async fn put(&self, key: &Hash128, entry: &Entry, ttl: Duration) -> Result<(), CacheError> {
        // Redis rejects `PX 0`; a sub-millisecond TTL rounds up rather than failing.
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(Self::redis_key(key))
            .arg(entry.encode().as_ref())
            .arg("PX")
            .arg(px);
        self.run("SET", cmd.query_async::<()>(&mut conn)).await
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
