//! The response cache (SPEC §10).

pub mod config;

pub use config::{
    CacheConfig, CacheDirectives, CacheMode, CacheScope, CacheStoreConfig, DirectiveError,
    EffectiveCache, EmbedderConfig, IndexConfig,
};
