//! Metrics the gateway exports on the admin port.

mod histogram;
mod metrics;
mod otlp;
mod trace_context;
mod usage;

pub use histogram::Histogram;
pub use metrics::{escape as escape_label, Endpoint, Metrics, RequestOutcome};
pub use otlp::{encode as encode_otlp, Attr, SpanData, TraceCounters, TraceExporter, TracesConfig};
pub use trace_context::{new_span_id, TraceContext};
pub use usage::{TokenCounts, UsageMetrics};
