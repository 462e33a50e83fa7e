//! Per-request decisions over the compiled plan: pure functions, no I/O.

pub mod auth;
pub mod estimate;
pub mod limits;
pub mod route;
