//! Tier limits: config `rate_limit` / `budget` → `LimitPlan`s bound to counters in the store.
//! Each (scope, kind, window) gets one `LimitPlan`, shared by every key that reaches it.

use crate::config::{BudgetConfig, ConfigError, LoadedConfig, RateLimitConfig};
use crate::plan::{LimitPlan, Limits};
use crate::state::{LimitKind, MemoryStore, Window, MAX_AMOUNT};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) struct LimitRegistry<'s> {
    store: &'s MemoryStore,
    seen: HashMap<(Arc<str>, LimitKind, Option<Window>), Arc<LimitPlan>>,
    /// Every distinct limit, in the order first met.
    pub(super) all: Limits,
}

impl<'s> LimitRegistry<'s> {
    pub(super) fn new(store: &'s MemoryStore) -> LimitRegistry<'s> {
        LimitRegistry {
            store,
            seen: HashMap::new(),
            all: Vec::new(),
        }
    }

    /// The limits of one tier. `path` locates the tier's config object for errors.
    pub(super) fn tier(
        &mut self,
        loaded: &LoadedConfig,
        path: &str,
        scope: &str,
        rate: Option<&RateLimitConfig>,
        budget: Option<&BudgetConfig>,
        errors: &mut Vec<ConfigError>,
    ) -> Limits {
        let scope: Arc<str> = scope.into();
        let mut out = Vec::new();
        if let Some(rate) = rate {
            if let Some(r) = &rate.requests {
                out.push(self.limit(&scope, LimitKind::Requests, Some(r.window), r.limit));
            }
            if let Some(t) = &rate.tokens {
                out.push(self.limit(&scope, LimitKind::Tokens, Some(t.window), t.limit));
            }
            if let Some(c) = rate.concurrent {
                out.push(self.limit(&scope, LimitKind::Concurrent, None, c));
            }
            let too_big = [
                rate.requests.as_ref().map(|r| r.limit),
                rate.tokens.as_ref().map(|t| t.limit),
                rate.concurrent,
            ]
            .into_iter()
            .flatten()
            .any(|l| l > MAX_AMOUNT);
            if too_big {
                errors.push(loaded.error_at(
                    &format!("{path}.rate_limit"),
                    format!("limits above {MAX_AMOUNT} are not supported"),
                ));
            }
        }
        if let Some(b) = budget {
            if !b.limit_usd.is_finite()
                || b.limit_usd < 0.0
                || b.limit_usd * 1e6 > MAX_AMOUNT as f64
            {
                errors.push(loaded.error_at(
                    &format!("{path}.budget.limit_usd"),
                    format!(
                        "budget limit_usd must be a non-negative number of dollars, got {}",
                        b.limit_usd
                    ),
                ));
            } else {
                let micros = (b.limit_usd * 1e6).round() as u64;
                out.push(self.limit(&scope, LimitKind::Budget, Some(b.window), micros));
            }
        }
        out
    }

    fn limit(
        &mut self,
        scope: &Arc<str>,
        kind: LimitKind,
        window: Option<Window>,
        limit: u64,
    ) -> Arc<LimitPlan> {
        let key = (scope.clone(), kind, window);
        if let Some(existing) = self.seen.get(&key) {
            return existing.clone();
        }
        let counter = match window {
            Some(w) => self.store.counter(scope, kind, w),
            None => self.store.concurrent(scope),
        };
        let plan = Arc::new(LimitPlan {
            scope: scope.clone(),
            kind,
            window,
            limit,
            counter,
        });
        self.seen.insert(key, plan.clone());
        self.all.push(plan.clone());
        plan
    }
}
