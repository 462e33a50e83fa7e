//! Metrics the gateway exports on the admin port.

mod histogram;
mod metrics;

pub use histogram::Histogram;
pub use metrics::{Endpoint, Metrics, RequestOutcome};
