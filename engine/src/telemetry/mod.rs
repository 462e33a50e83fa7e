//! Metrics the gateway exports on the admin port.

mod histogram;
mod metrics;
mod usage;

pub use histogram::Histogram;
pub use metrics::{escape as escape_label, Endpoint, Metrics, RequestOutcome};
pub use usage::{TokenCounts, UsageMetrics};
