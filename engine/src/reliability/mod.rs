//! Keeping requests alive when upstreams misbehave: retry backoff, provider and provider key
//! health, and the trackers bound into each plan.

pub mod backoff;
pub mod health;
pub mod keys;
pub mod trackers;
