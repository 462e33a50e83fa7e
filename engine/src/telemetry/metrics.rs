//! Request counters keyed by label values in a lock-free map; series are created on first use
//! and capped so caller-chosen model names cannot grow memory without bound.

use super::histogram::Histogram;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const MAX_REQUEST_SERIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Embeddings,
    Models,
    /// MCP tool calls (`provider` = server, `model` = tool).
    Mcp,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Models => "models",
            Endpoint::Mcp => "mcp",
        }
    }
}

/// What one request did, as the metrics see it.
pub struct RequestOutcome<'a> {
    pub endpoint: Endpoint,
    pub provider: &'a str,
    pub model: &'a str,
    /// The virtual key's id, with `metrics.per_key` on; `None` leaves the label out.
    pub key: Option<&'a str>,
    pub status: u16,
    pub total: Duration,
    /// Time inside the gateway: total minus the wait for upstream.
    pub overhead: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SeriesKey {
    endpoint: Endpoint,
    status: u16,
    labels_hash: u64,
}

#[derive(Debug)]
struct Series {
    provider: Box<str>,
    model: Box<str>,
    key: Option<Box<str>>,
    count: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: papaya::HashMap<SeriesKey, Series>,
    pub request_duration: Histogram,
    pub overhead: Histogram,
    /// Requests refused by a limit, by (scope kind, limit kind).
    limit_rejections: papaya::HashMap<(&'static str, &'static str), AtomicU64>,
    /// Guardrail actions by (guardrail, action); names come from the config (bounded).
    guardrail_actions: papaya::HashMap<(Box<str>, &'static str), AtomicU64>,
    /// Retries by provider name (names come from the config: bounded).
    retries: papaya::HashMap<Box<str>, AtomicU64>,
    /// Moves to a fallback target, by (provider that failed, provider tried next). Provider
    /// names come from the config (bounded), and the plan's `Arc`s are shared, not copied.
    fallbacks: papaya::HashMap<(Arc<str>, Arc<str>), AtomicU64>,
    /// Runtime CEL errors by rule or guardrail name.
    cel_errors: papaya::HashMap<Box<str>, AtomicU64>,
    /// Requests whose model had no price (they cost $0 against budgets).
    pub unpriced_requests: AtomicU64,
    pub config_reloads_ok: AtomicU64,
    pub config_reloads_failed: AtomicU64,
    /// Tokens, cost and provider latencies of answered requests.
    pub usage: super::usage::UsageMetrics,
}

impl Metrics {
    pub fn record(&self, o: &RequestOutcome) {
        self.request_duration.record(o.total);
        self.overhead.record(o.overhead);
        let requests = self.requests.pin();
        let (provider, model, key) = if requests.len() >= MAX_REQUEST_SERIES {
            ("other", "other", o.key.map(|_| "other"))
        } else {
            (o.provider, o.model, o.key)
        };
        let mut h = DefaultHasher::new();
        (provider, model, key).hash(&mut h);
        let series_key = SeriesKey {
            endpoint: o.endpoint,
            status: o.status,
            labels_hash: h.finish(),
        };
        let series = requests.get_or_insert_with(series_key, || Series {
            provider: provider.into(),
            model: model.into(),
            key: key.map(Into::into),
            count: AtomicU64::new(0),
        });
        series.count.fetch_add(1, Relaxed);
    }

    /// Counts a refusal by a limit. Label values come from fixed sets (bounded cardinality).
    pub fn record_rejection(&self, scope: &str, limit_kind: &str) {
        let scope_kind = match scope.split_once(':').map(|(k, _)| k) {
            Some("virtual_key") if scope.contains("/provider:") => "provider_config",
            Some("virtual_key") => "virtual_key",
            Some("team") => "team",
            Some("customer") => "customer",
            Some("provider") => "provider",
            _ => "other",
        };
        let limit_kind = match limit_kind {
            "requests" => "requests",
            "tokens" => "tokens",
            "budget_usd" => "budget_usd",
            "concurrent" => "concurrent",
            _ => "other",
        };
        self.limit_rejections
            .pin()
            .get_or_insert_with((scope_kind, limit_kind), || AtomicU64::new(0))
            .fetch_add(1, Relaxed);
    }

    pub fn record_guardrail(&self, guardrail: &str, action: &'static str) {
        self.guardrail_actions
            .pin()
            .get_or_insert_with((guardrail.into(), action), || AtomicU64::new(0))
            .fetch_add(1, Relaxed);
    }

    pub fn record_retry(&self, provider: &str) {
        self.retries
            .pin()
            .get_or_insert_with(provider.into(), || AtomicU64::new(0))
            .fetch_add(1, Relaxed);
    }

    pub fn record_fallback(&self, from: &Arc<str>, to: &Arc<str>) {
        self.fallbacks
            .pin()
            .get_or_insert_with((from.clone(), to.clone()), || AtomicU64::new(0))
            .fetch_add(1, Relaxed);
    }

    pub fn record_cel_error(&self, rule: &str) {
        self.cel_errors
            .pin()
            .get_or_insert_with(rule.into(), || AtomicU64::new(0))
            .fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP tollgate_requests_total Requests handled, by endpoint, provider, model and status.\n");
        out.push_str("# TYPE tollgate_requests_total counter\n");
        let requests = self.requests.pin();
        let mut lines: Vec<String> = requests
            .iter()
            .map(|(k, s)| {
                let key = s
                    .key
                    .as_deref()
                    .map(|k| format!(",key=\"{}\"", escape(k)))
                    .unwrap_or_default();
                format!(
                    "tollgate_requests_total{{endpoint=\"{}\",provider=\"{}\",model=\"{}\",status=\"{}\"{key}}} {}",
                    k.endpoint.as_str(),
                    escape(&s.provider),
                    escape(&s.model),
                    k.status,
                    s.count.load(Relaxed)
                )
            })
            .collect();
        lines.sort();
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_request_duration_seconds Time from request received to response headers sent.\n");
        out.push_str("# TYPE tollgate_request_duration_seconds histogram\n");
        self.request_duration
            .render(&mut out, "tollgate_request_duration_seconds", "");
        out.push_str("# HELP tollgate_overhead_seconds Time spent inside the gateway, excluding the wait for upstream.\n");
        out.push_str("# TYPE tollgate_overhead_seconds histogram\n");
        self.overhead
            .render(&mut out, "tollgate_overhead_seconds", "");
        self.usage.render(&mut out);
        out.push_str(
            "# HELP tollgate_limit_rejections_total Requests refused by a rate limit or budget.\n",
        );
        out.push_str("# TYPE tollgate_limit_rejections_total counter\n");
        let rejections = self.limit_rejections.pin();
        let mut lines: Vec<String> = rejections
            .iter()
            .map(|((scope, kind), n)| {
                format!(
                    "tollgate_limit_rejections_total{{scope_kind=\"{scope}\",limit_kind=\"{kind}\"}} {}",
                    n.load(Relaxed)
                )
            })
            .collect();
        lines.sort();
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_guardrail_actions_total Guardrail actions taken.\n");
        out.push_str("# TYPE tollgate_guardrail_actions_total counter\n");
        let actions = self.guardrail_actions.pin();
        let mut lines: Vec<String> = actions
            .iter()
            .map(|((g, a), n)| {
                format!(
                    "tollgate_guardrail_actions_total{{guardrail=\"{}\",action=\"{a}\"}} {}",
                    escape(g),
                    n.load(Relaxed)
                )
            })
            .collect();
        let cel = self.cel_errors.pin();
        let mut cel_lines: Vec<String> = cel
            .iter()
            .map(|(r, n)| {
                format!(
                    "tollgate_cel_errors_total{{rule=\"{}\"}} {}",
                    escape(r),
                    n.load(Relaxed)
                )
            })
            .collect();
        lines.sort();
        cel_lines.sort();
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_cel_errors_total Runtime CEL errors (the condition counted as false).\n");
        out.push_str("# TYPE tollgate_cel_errors_total counter\n");
        for l in cel_lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_retries_total Upstream attempts retried, by provider.\n");
        out.push_str("# TYPE tollgate_retries_total counter\n");
        let retries = self.retries.pin();
        let mut retry_lines: Vec<String> = retries
            .iter()
            .map(|(p, n)| {
                format!(
                    "tollgate_retries_total{{provider=\"{}\"}} {}",
                    escape(p),
                    n.load(Relaxed)
                )
            })
            .collect();
        retry_lines.sort();
        for l in retry_lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_fallbacks_total Requests moved to a fallback target, by the provider that failed and the one tried next.\n");
        out.push_str("# TYPE tollgate_fallbacks_total counter\n");
        let fallbacks = self.fallbacks.pin();
        let mut fallback_lines: Vec<String> = fallbacks
            .iter()
            .map(|((from, to), n)| {
                format!(
                    "tollgate_fallbacks_total{{from=\"{}\",to=\"{}\"}} {}",
                    escape(from),
                    escape(to),
                    n.load(Relaxed)
                )
            })
            .collect();
        fallback_lines.sort();
        for l in fallback_lines {
            out.push_str(&l);
            out.push('\n');
        }
        out.push_str("# HELP tollgate_unpriced_requests_total Requests for a model with no price (counted as $0).\n");
        out.push_str("# TYPE tollgate_unpriced_requests_total counter\n");
        let _ = writeln!(
            out,
            "tollgate_unpriced_requests_total {}",
            self.unpriced_requests.load(Relaxed)
        );
        out.push_str("# HELP tollgate_config_reloads_total Config reloads by result.\n");
        out.push_str("# TYPE tollgate_config_reloads_total counter\n");
        let _ = writeln!(
            out,
            "tollgate_config_reloads_total{{result=\"ok\"}} {}\ntollgate_config_reloads_total{{result=\"error\"}} {}",
            self.config_reloads_ok.load(Relaxed),
            self.config_reloads_failed.load(Relaxed)
        );
        out
    }
}

/// Label values are caller-influenced (model names): escape per the exposition format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(model: &str, status: u16) -> RequestOutcome<'_> {
        RequestOutcome {
            endpoint: Endpoint::Chat,
            provider: "openai",
            model,
            key: None,
            status,
            total: Duration::from_millis(3),
            overhead: Duration::from_micros(20),
        }
    }

    #[test]
    fn counts_by_labels() {
        let m = Metrics::default();
        m.record(&outcome("gpt-4o", 200));
        m.record(&outcome("gpt-4o", 200));
        m.record(&outcome("gpt-\"x", 502));
        let text = m.render();
        assert!(text.contains("tollgate_requests_total{endpoint=\"chat\",provider=\"openai\",model=\"gpt-4o\",status=\"200\"} 2\n"), "{text}");
        assert!(
            text.contains("model=\"gpt-\\\"x\",status=\"502\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("tollgate_overhead_seconds_count 3\n"));
    }

    #[test]
    fn fallbacks_are_counted_by_provider_pair() {
        let m = Metrics::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        m.record_fallback(&a, &b);
        m.record_fallback(&a, &b);
        m.record_fallback(&b, &a);
        let text = m.render();
        assert!(
            text.contains("tollgate_fallbacks_total{from=\"a\",to=\"b\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("tollgate_fallbacks_total{from=\"b\",to=\"a\"} 1\n"));
    }

    #[test]
    fn per_key_labels_only_when_given() {
        let m = Metrics::default();
        m.record(&RequestOutcome {
            key: Some("vk-a"),
            ..outcome("gpt-4o", 200)
        });
        m.record(&outcome("gpt-4o", 200));
        let text = m.render();
        assert!(
            text.contains("model=\"gpt-4o\",status=\"200\",key=\"vk-a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("model=\"gpt-4o\",status=\"200\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn series_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_REQUEST_SERIES + 5 {
            m.record(&outcome(&format!("m{i}"), 200));
        }
        assert!(m.render().contains("model=\"other\",status=\"200\"} 5\n"));
    }
}
