//! Limits and budgets of one request: reserve an estimate on every tier at once before the
//! call, settle the actual usage after it (SPEC §6 "Accounting").

use super::estimate::Usage;
use super::settled::SettledUsage;
use crate::config::OnStateError;
use crate::error::{ApiError, ErrorType};
use crate::plan::{LimitPlan, Limits};
use crate::pricing::Price;
use crate::state::{
    reserve_at, Counter, Denied, LimitKind, RedisReservation, RedisStore, RedisTier, Reservation,
    ReserveError, Tier, INLINE_TIERS,
};
use chrono::{DateTime, Utc};
use smallvec::SmallVec;
use std::sync::Arc;

/// What one request is expected to use, before the call.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub prompt_tokens: u64,
    /// The answer's bound: `max_tokens` or the configured default.
    pub output_tokens: u64,
    pub price: Option<Price>,
    /// A fixed charge per call in micro-dollars, on top of any token price (MCP tool calls).
    pub flat_micros: u64,
}

impl Estimate {
    fn cost_micros(&self) -> u64 {
        self.flat_micros
            + self.price.map_or(0, |p| {
                p.cost_micros(self.prompt_tokens, 0, self.output_tokens)
            })
    }

    fn amount(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::Requests | LimitKind::Concurrent => 1,
            LimitKind::Tokens => self.prompt_tokens + self.output_tokens,
            LimitKind::Budget => self.cost_micros(),
        }
    }
}

/// Where counters live for this gateway.
#[derive(Clone, Copy)]
pub enum Ledger<'a> {
    /// In-process atomics, bound into the plan's `LimitPlan`s.
    Memory,
    /// Redis, shared by replicas; `on_error` decides when it cannot be reached.
    Redis(&'a RedisStore, OnStateError),
}

/// A request admitted on all its tiers; settle it (or drop it, which charges the estimate).
pub struct Admitted {
    held: Held,
    limits: SmallVec<[Arc<LimitPlan>; INLINE_TIERS]>,
    pub price: Option<Price>,
    flat_micros: u64,
    /// Where the settlement is reported, for metrics and the request log.
    report: Option<Arc<SettledUsage>>,
}

// The memory reservation is the hot path and stays inline (no allocation per request);
// the size difference to the other variants is the point.
#[allow(clippy::large_enum_variant)]
enum Held {
    Memory(Reservation<Arc<Counter>>),
    Redis(RedisStore, RedisReservation),
    /// Redis was unreachable and `on_error: allow` let the request through unmetered.
    Unmetered,
}

/// Why a request was refused.
pub enum Refusal {
    Limit {
        denied: Denied,
        limit: Arc<LimitPlan>,
        /// The refusing tier belongs to the provider, so another provider may still serve.
        provider_tier: bool,
    },
    /// The state store could not be reached and `on_error: deny` applies.
    Unavailable(String),
}

impl Refusal {
    pub fn provider_tier(&self) -> bool {
        matches!(
            self,
            Refusal::Limit {
                provider_tier: true,
                ..
            }
        )
    }
}

/// Reserves `estimate` on the provider-config tier, the key's tiers (key, team, customer)
/// and the provider's global tier, all or nothing.
pub async fn reserve(
    ledger: Ledger<'_>,
    provider_config: &Limits,
    key: &Limits,
    provider: &Limits,
    estimate: &Estimate,
    now: i64,
) -> Result<Admitted, Refusal> {
    let limits: SmallVec<[Arc<LimitPlan>; INLINE_TIERS]> = provider_config
        .iter()
        .chain(key)
        .chain(provider)
        .cloned()
        .collect();
    let refused = |denied: Denied, limits: &[Arc<LimitPlan>]| {
        let idx = denied.tier;
        Refusal::Limit {
            limit: limits[idx].clone(),
            provider_tier: idx < provider_config.len() || idx >= provider_config.len() + key.len(),
            denied,
        }
    };
    let held = match ledger {
        _ if limits.is_empty() => Held::Unmetered,
        Ledger::Memory => {
            let tiers: SmallVec<[Tier<Arc<Counter>>; INLINE_TIERS]> = limits
                .iter()
                .map(|l| Tier::new(l.counter.clone(), estimate.amount(l.kind), l.limit))
                .collect();
            match reserve_at(&tiers, now) {
                Ok(r) => Held::Memory(r),
                Err(denied) => return Err(refused(denied, &limits)),
            }
        }
        Ledger::Redis(store, on_error) => {
            let tiers: SmallVec<[RedisTier; INLINE_TIERS]> = limits
                .iter()
                .map(|l| RedisTier {
                    scope: l.scope.clone(),
                    kind: l.kind,
                    window: l.window,
                    amount: estimate.amount(l.kind),
                    limit: l.limit,
                })
                .collect();
            match store.reserve(&tiers, now).await {
                Ok(r) => Held::Redis(store.clone(), r),
                Err(ReserveError::Denied(denied)) => return Err(refused(denied, &limits)),
                Err(ReserveError::Unavailable(msg)) => match on_error {
                    OnStateError::Deny => return Err(Refusal::Unavailable(msg)),
                    OnStateError::Allow => {
                        tracing::warn!(error = %msg, "state store unavailable; request admitted unmetered (on_error: allow)");
                        Held::Unmetered
                    }
                },
            }
        }
    };
    Ok(Admitted {
        held,
        limits,
        price: estimate.price,
        flat_micros: estimate.flat_micros,
        report: None,
    })
}

impl Admitted {
    /// Reports the settlement to `cell` as well.
    pub fn report_to(&mut self, cell: Arc<SettledUsage>) {
        self.report = Some(cell);
    }

    /// Sets the fixed charge settled for this call (the estimate's, unless the call turned
    /// out not to owe it, like a tool call that failed before the tool ran).
    pub fn with_flat_charge(mut self, micros: u64) -> Admitted {
        self.flat_micros = micros;
        self
    }

    /// Replaces the estimate by what the call used. `None` when nothing was consumed
    /// (the provider failed): the request still counts against request limits.
    pub fn settle(self, usage: Option<Usage>) {
        let usage = usage.unwrap_or_default();
        let cost = self.flat_micros
            + self.price.map_or(0, |p| {
                p.cost_micros(usage.prompt, usage.cached, usage.completion)
            });
        if let Some(cell) = &self.report {
            cell.record(usage, cost);
        }
        let actual: SmallVec<[u64; INLINE_TIERS]> = self
            .limits
            .iter()
            .map(|l| match l.kind {
                LimitKind::Requests => 1,
                LimitKind::Concurrent => 0,
                LimitKind::Tokens => usage.total(),
                LimitKind::Budget => cost,
            })
            .collect();
        match self.held {
            Held::Memory(r) => r.settle(&actual),
            // Off the response path: the caller does not wait for Redis.
            Held::Redis(store, r) => {
                tokio::spawn(async move {
                    if let Err(e) = store.settle(r, &actual).await {
                        tracing::warn!(error = %e, "usage could not be settled in Redis");
                    }
                });
            }
            Held::Unmetered => {}
        }
    }

    /// The tightest `requests` and `tokens` limits of this request, for `x-ratelimit-*`.
    /// Only known without a round trip for memory counters; Redis answers carry none.
    pub fn tightest(&self, now: i64) -> [Option<Headroom>; 2] {
        if !matches!(self.held, Held::Memory(_)) {
            return [None, None];
        }
        let pick = |kind: LimitKind| {
            self.limits
                .iter()
                .filter(|l| l.kind == kind)
                .map(|l| {
                    let u = l.counter.usage_at(now);
                    Headroom {
                        limit: l.limit,
                        remaining: l.limit.saturating_sub(u.used + u.reserved),
                        reset_secs: l
                            .counter
                            .resets_at_unix(u.window_id)
                            .map_or(0, |at| (at - now).max(0) as u64),
                    }
                })
                .min_by_key(|h| h.remaining)
        };
        [pick(LimitKind::Requests), pick(LimitKind::Tokens)]
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Headroom {
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

impl Refusal {
    /// 402 `budget_exceeded` or 429 `rate_limited`, naming scope, limit kind, used, limit
    /// and reset time (SPEC §4).
    pub fn into_error(self, now: DateTime<Utc>) -> ApiError {
        let (d, l) = match &self {
            Refusal::Limit { denied, limit, .. } => (denied, limit),
            Refusal::Unavailable(msg) => {
                return ApiError::new(
                    ErrorType::StateUnavailable,
                    format!("usage counters are unavailable, so the request cannot be metered (state.on_error: deny): {msg}"),
                )
            }
        };
        let window = l.window.map_or(String::new(), |w| format!(" per {w}"));
        let resets = d
            .resets_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let resets_text = resets
            .as_deref()
            .map_or(String::new(), |r| format!(", resets {r}"));
        let (scope_kind, scope_id) = l.scope.split_once(':').unwrap_or(("", &l.scope));
        let mut err = match l.kind {
            LimitKind::Budget => {
                let usd = |m: u64| m as f64 / 1e6;
                ApiError::new(
                    ErrorType::BudgetExceeded,
                    format!(
                        "budget exceeded for {scope_kind} {scope_id} (${:.6} used + ${:.6} in flight of ${:.2}{window}{resets_text})",
                        usd(d.used),
                        usd(d.reserved),
                        usd(d.limit)
                    ),
                )
                .with("used", usd(d.used).into())
                .with("limit", usd(d.limit).into())
                .with("in_flight", usd(d.reserved).into())
            }
            kind => {
                let what = match kind {
                    LimitKind::Tokens => "token",
                    LimitKind::Concurrent => "concurrency",
                    _ => "request",
                };
                ApiError::new(
                    ErrorType::RateLimited,
                    format!(
                        "{what} limit exceeded for {scope_kind} {scope_id} ({}/{}{window}{resets_text})",
                        d.used + d.reserved,
                        d.limit
                    ),
                )
                .with("used", d.used.into())
                .with("limit", d.limit.into())
                .with("in_flight", d.reserved.into())
            }
        };
        err = err
            .with("scope", l.scope.to_string().into())
            .with("limit_kind", kind_label(l.kind).into())
            .with("resets_at", resets.into());
        if l.kind != LimitKind::Budget {
            // A concurrency slot frees when a request ends: retry soon.
            err.retry_after = Some(d.retry_after_secs(now).unwrap_or(1).max(1));
        }
        err
    }
}

/// The name of a limit kind in errors and `/admin/usage` (budgets are in dollars).
pub fn kind_label(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::Budget => "budget_usd",
        other => other.as_str(),
    }
}
