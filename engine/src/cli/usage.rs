//! Counter state given by a test case (`usage:`), loaded into a fresh store before the case
//! runs, so budget- and rate-dependent policy can be tested without traffic.

use crate::plan::Plan;
use crate::state::{
    reserve_at, Counter, CounterSnapshot, LimitKind, MemoryStore, Reservation, Snapshot, Tier,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The usage of one scope (`virtual_key:vk-ml`, `team:ml`, `provider:openai`, ...) in its
/// current window, in the units of the config: dollars, requests, tokens, requests in flight.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeUsage {
    #[serde(default)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub concurrent: Option<u64>,
}

/// Concurrency slots held for the duration of a case (dropping them frees the slots).
pub struct HeldSlots {
    _slots: Vec<Reservation<Arc<Counter>>>,
}

/// A usage entry the plan cannot place: `(scope, field, message)`.
pub type UsageError = (String, &'static str, String);

/// Loads `usage` into the counters `plan` was compiled against (`store`). The window of each
/// entry is the one the plan's limit for that scope and kind uses; an entry naming a scope and
/// kind without a limit is an error, since it could never affect a decision.
pub fn apply(
    plan: &Plan,
    store: &MemoryStore,
    usage: &BTreeMap<String, ScopeUsage>,
    now: i64,
) -> Result<HeldSlots, Vec<UsageError>> {
    let mut errors = Vec::new();
    let mut counters = Vec::new();
    let mut slots = Vec::new();
    for (scope, u) in usage {
        let budget = match u.budget_usd {
            Some(usd) if !(usd.is_finite() && usd >= 0.0) => {
                errors.push((
                    scope.clone(),
                    "budget_usd",
                    format!("budget_usd must be a non-negative number of dollars, got {usd}"),
                ));
                None
            }
            usd => usd.map(|usd| (usd * 1e6).round() as u64),
        };
        let wanted = [
            ("budget_usd", LimitKind::Budget, budget),
            ("requests", LimitKind::Requests, u.requests),
            ("tokens", LimitKind::Tokens, u.tokens),
            ("concurrent", LimitKind::Concurrent, u.concurrent),
        ];
        for (field, kind, amount) in wanted {
            let Some(amount) = amount else { continue };
            let limits: Vec<_> = plan
                .all_limits
                .iter()
                .filter(|l| &*l.scope == scope && l.kind == kind)
                .collect();
            if limits.is_empty() {
                errors.push((
                    scope.clone(),
                    field,
                    format!(
                        "the config has no {field} limit for `{scope}`; known scopes: {}",
                        known_scopes(plan, kind)
                    ),
                ));
            }
            for l in limits {
                match l.window {
                    Some(window) => counters.push(CounterSnapshot {
                        scope: scope.clone(),
                        kind,
                        window,
                        window_id: window.window_id(now),
                        used: amount,
                    }),
                    // Requests in flight are reservations, not usage: hold that many slots.
                    None => {
                        let tier = Tier::new(l.counter.clone(), amount, u64::MAX);
                        if let Ok(held) = reserve_at(&[tier], now) {
                            slots.push(held);
                        }
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The plan's limits hold counters from `store`; restoring names the same counters.
    store.restore(&Snapshot::new(counters));
    Ok(HeldSlots { _slots: slots })
}

/// The scopes that have a limit of `kind`, for an error message.
fn known_scopes(plan: &Plan, kind: LimitKind) -> String {
    let mut scopes: Vec<&str> = plan
        .all_limits
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| &*l.scope)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    if scopes.is_empty() {
        "none".into()
    } else {
        scopes.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_with;
    use crate::config::{load_str, ConfigFormat};

    const NOW: i64 = 1_801_353_600;

    #[test]
    fn usage_lands_in_the_plans_counters_in_the_current_window() {
        let loaded = load_str(
            "providers: [{name: o, kind: openai, keys: [{key: k}]}]\nvirtual_keys:\n  - {id: vk, key: s, budget: {limit_usd: 10, window: 1w}, rate_limit: {requests: {limit: 5, window: 1m}, concurrent: 2}}\n",
            "t.yaml",
            ConfigFormat::Yaml,
        )
        .unwrap();
        let store = MemoryStore::new();
        let plan = compile_with(&loaded, &store).unwrap();
        let usage: BTreeMap<String, ScopeUsage> = [(
            "virtual_key:vk".to_string(),
            ScopeUsage {
                budget_usd: Some(2.5),
                requests: Some(3),
                concurrent: Some(2),
                ..Default::default()
            },
        )]
        .into();
        let _held = apply(&plan, &store, &usage, NOW).unwrap();
        let used = |kind: LimitKind| {
            let l = plan.all_limits.iter().find(|l| l.kind == kind).unwrap();
            let u = l.counter.usage_at(NOW);
            (u.used, u.reserved)
        };
        assert_eq!(used(LimitKind::Budget), (2_500_000, 0));
        assert_eq!(used(LimitKind::Requests), (3, 0));
        assert_eq!(used(LimitKind::Concurrent), (0, 2));

        let wrong: BTreeMap<String, ScopeUsage> = [(
            "team:none".to_string(),
            ScopeUsage {
                tokens: Some(1),
                ..Default::default()
            },
        )]
        .into();
        let errors = apply(&plan, &store, &wrong, NOW).err().unwrap();
        assert_eq!(errors[0].1, "tokens");
        assert!(errors[0].2.contains("no tokens limit for `team:none`"));
    }
}
