//! Per-request decisions over the compiled plan: pure functions, no I/O.

pub mod auth;
pub mod decide;
pub mod estimate;
pub mod guard;
pub mod limits;
pub mod messages;
pub mod route;
pub mod settled;
pub mod token_cache;
pub mod tokenizer;
