//! Keeping requests alive when upstreams misbehave: retry backoff and provider health.

pub mod backoff;
pub mod health;
