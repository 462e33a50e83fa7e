//! What answered requests used and cost, by provider and model, and how long providers took:
//! `tollgate_tokens_total`, `tollgate_cost_usd_total`, `tollgate_upstream_duration_seconds` and
//! `tollgate_ttft_seconds`. Provider names come from the config (bounded); model names from
//! callers, so (provider, model) series are capped like request series.

use super::histogram::Histogram;
use super::metrics::escape;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

const MAX_MODEL_SERIES: usize = 10_000;

#[derive(Debug)]
struct Spent {
    provider: Arc<str>,
    model: Box<str>,
    prompt: AtomicU64,
    cached: AtomicU64,
    completion: AtomicU64,
    cost_micros: AtomicU64,
}

#[derive(Debug, Default)]
pub struct UsageMetrics {
    /// By a hash of (provider, model), so the hot path looks up without allocating; the
    /// names are kept in the value.
    spent: papaya::HashMap<u64, Spent>,
    upstream: papaya::HashMap<Arc<str>, Histogram>,
    ttft: papaya::HashMap<Arc<str>, Histogram>,
}

/// Token counts of one answered request.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenCounts {
    /// Every prompt token, cached ones included.
    pub prompt: u64,
    pub cached: u64,
    pub completion: u64,
}

impl UsageMetrics {
    pub fn record_usage(
        &self,
        provider: &Arc<str>,
        model: &str,
        tokens: TokenCounts,
        cost_micros: u64,
    ) {
        let spent = self.spent.pin();
        let hash = |model: &str| {
            let mut h = DefaultHasher::new();
            (&**provider, model).hash(&mut h);
            h.finish()
        };
        let mut key = hash(model);
        let mut model = model;
        if spent.len() >= MAX_MODEL_SERIES && spent.get(&key).is_none() {
            model = "other";
            key = hash(model);
        }
        let series = spent.get_or_insert_with(key, || Spent {
            provider: provider.clone(),
            model: model.into(),
            prompt: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            completion: AtomicU64::new(0),
            cost_micros: AtomicU64::new(0),
        });
        series.prompt.fetch_add(tokens.prompt, Relaxed);
        series.cached.fetch_add(tokens.cached, Relaxed);
        series.completion.fetch_add(tokens.completion, Relaxed);
        series.cost_micros.fetch_add(cost_micros, Relaxed);
    }

    /// From sending to a provider until its answer (headers of a stream, body of the rest).
    pub fn record_upstream(&self, provider: &Arc<str>, took: Duration) {
        self.upstream
            .pin()
            .get_or_insert_with(provider.clone(), Histogram::default)
            .record(took);
    }

    /// From the request's arrival until the first bytes of a streamed answer left.
    pub fn record_ttft(&self, provider: &Arc<str>, took: Duration) {
        self.ttft
            .pin()
            .get_or_insert_with(provider.clone(), Histogram::default)
            .record(took);
    }

    pub fn render(&self, out: &mut String) {
        let spent = self.spent.pin();
        let mut tokens = Vec::new();
        let mut cost = Vec::new();
        for s in spent.values() {
            let labels = format!(
                "provider=\"{}\",model=\"{}\"",
                escape(&s.provider),
                escape(&s.model)
            );
            for (kind, n) in [
                ("prompt", &s.prompt),
                ("cached", &s.cached),
                ("completion", &s.completion),
            ] {
                tokens.push(format!(
                    "tollgate_tokens_total{{{labels},kind=\"{kind}\"}} {}",
                    n.load(Relaxed)
                ));
            }
            cost.push(format!(
                "tollgate_cost_usd_total{{{labels}}} {}",
                s.cost_micros.load(Relaxed) as f64 / 1e6
            ));
        }
        tokens.sort();
        cost.sort();
        out.push_str("# HELP tollgate_tokens_total Tokens used by answered requests; prompt includes cached.\n");
        out.push_str("# TYPE tollgate_tokens_total counter\n");
        for l in tokens {
            let _ = writeln!(out, "{l}");
        }
        out.push_str("# HELP tollgate_cost_usd_total Cost of answered requests in US dollars.\n");
        out.push_str("# TYPE tollgate_cost_usd_total counter\n");
        for l in cost {
            let _ = writeln!(out, "{l}");
        }
        for (map, name, help) in [
            (
                &self.upstream,
                "tollgate_upstream_duration_seconds",
                "Time from sending to a provider until its answer (stream: its headers).",
            ),
            (
                &self.ttft,
                "tollgate_ttft_seconds",
                "Time from request arrival to the first bytes of a streamed answer.",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let pinned = map.pin();
            let mut providers: Vec<(&Arc<str>, &Histogram)> = pinned.iter().collect();
            providers.sort_by(|a, b| a.0.cmp(b.0));
            for (provider, h) in providers {
                h.render(out, name, &format!("provider=\"{}\"", escape(provider)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_cost_add_up_by_provider_and_model() {
        let m = UsageMetrics::default();
        let p: Arc<str> = "openai".into();
        let t = TokenCounts {
            prompt: 10,
            cached: 4,
            completion: 5,
        };
        m.record_usage(&p, "gpt-4o", t, 1_500);
        m.record_usage(&p, "gpt-4o", t, 1_500);
        m.record_upstream(&p, Duration::from_millis(20));
        m.record_ttft(&p, Duration::from_millis(30));
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "tollgate_tokens_total{provider=\"openai\",model=\"gpt-4o\",kind=\"prompt\"} 20\n",
            "tollgate_tokens_total{provider=\"openai\",model=\"gpt-4o\",kind=\"cached\"} 8\n",
            "tollgate_tokens_total{provider=\"openai\",model=\"gpt-4o\",kind=\"completion\"} 10\n",
            "tollgate_cost_usd_total{provider=\"openai\",model=\"gpt-4o\"} 0.003\n",
            "tollgate_upstream_duration_seconds_count{provider=\"openai\"} 1\n",
            "tollgate_ttft_seconds_count{provider=\"openai\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line} in\n{out}");
        }
    }
}
