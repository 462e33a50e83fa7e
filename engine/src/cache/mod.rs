//! The response cache (SPEC §10).

pub mod config;
pub mod entry;
pub mod key;
pub mod store;

pub use config::{
    CacheConfig, CacheDirectives, CacheMode, CacheScope, CacheStoreConfig, DirectiveError,
    EffectiveCache, EmbedderConfig, IndexConfig,
};
pub use entry::{CachedUsage, CorruptEntry, Entry};
pub use key::{CacheKey, Hash128, KeyInput, ScopeId, EXCLUDED_PARAMS};
pub use store::{CacheError, CacheStore, MemoryStore, RedisCacheStore};
