//! Health trackers bound into a plan: one per provider and one per provider key, indexed like
//! `Plan::providers` and `ProviderPlan::keys`, so the request path reaches them without a
//! lookup by name. They come from a registry that outlives plans, like usage counters: a
//! reload keeps every open circuit and benched key.

use super::health::Health;
use crate::plan::ProviderPlan;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

/// The trackers of one provider.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    pub provider: Arc<Health>,
    /// By position in `ProviderPlan::keys`.
    pub keys: Vec<Arc<Health>>,
}

impl ProviderHealth {
    pub fn key(&self, index: usize) -> Option<&Health> {
        self.keys.get(index).map(|h| &**h)
    }
}

/// The trackers of one plan, by provider index.
#[derive(Debug, Default)]
pub struct PlanHealth {
    providers: Vec<ProviderHealth>,
}

impl PlanHealth {
    /// Trackers of their own, shared with nothing: for plans compiled outside a running
    /// gateway (`check`, `test`, `explain`, unit tests). The gateway binds its own.
    pub fn fresh(providers: &[ProviderPlan]) -> PlanHealth {
        PlanHealth {
            providers: providers
                .iter()
                .map(|p| ProviderHealth {
                    provider: Arc::default(),
                    keys: p.keys.iter().map(|_| Arc::default()).collect(),
                })
                .collect(),
        }
    }

    pub fn provider(&self, index: usize) -> Option<&ProviderHealth> {
        self.providers.get(index)
    }
}

/// What a tracker stands for across reloads: a provider by name; a key by its provider, its
/// name and a digest of its secret, so a key whose secret is replaced starts with a clean
/// record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TrackerId {
    Provider(Arc<str>),
    Key(Arc<str>, Arc<str>, u64),
}

/// Every tracker of the running gateway. Only reloads touch it; requests read the trackers
/// bound into their plan.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    trackers: papaya::HashMap<TrackerId, Arc<Health>>,
}

impl HealthRegistry {
    /// The trackers for a plan's `providers`, reusing those of earlier plans. Trackers of
    /// providers and keys the plan no longer has are dropped, so repeated reloads do not
    /// accumulate them.
    pub fn bind(&self, providers: &[ProviderPlan]) -> PlanHealth {
        let map = self.trackers.pin();
        let mut live = HashSet::new();
        let mut get = |id: TrackerId| {
            live.insert(id.clone());
            map.get_or_insert_with(id, Arc::default).clone()
        };
        let bound = providers
            .iter()
            .map(|p| ProviderHealth {
                provider: get(TrackerId::Provider(p.name.clone())),
                keys: p
                    .keys
                    .iter()
                    .map(|k| {
                        let mut h = DefaultHasher::new();
                        k.authorization.as_bytes().hash(&mut h);
                        get(TrackerId::Key(p.name.clone(), k.name.clone(), h.finish()))
                    })
                    .collect(),
            })
            .collect();
        map.retain(|id, _| live.contains(id));
        PlanHealth { providers: bound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use crate::config::{load_str, ConfigFormat};
    use crate::plan::Plan;
    use crate::reliability::health::{Circuit, HealthPolicy};

    fn plan(keys: &str) -> Plan {
        let text = format!(
            "providers:\n  - {{name: p, kind: openai_compatible, base_url: 'http://127.0.0.1:1/v1', keys: [{keys}]}}\nvirtual_keys: [{{id: vk, key: s}}]\n"
        );
        compile(&load_str(&text, "t.yaml", ConfigFormat::Yaml).unwrap()).unwrap()
    }

    #[test]
    fn a_reload_keeps_state_unless_the_key_changed() {
        let registry = HealthRegistry::default();
        let policy = HealthPolicy::default();
        let first = registry.bind(&plan("{name: a, key: ka}, {name: b, key: kb}").providers);
        first.provider(0).unwrap().provider.trip(100);
        for k in 0..2 {
            first.provider(0).unwrap().key(k).unwrap().trip(100);
        }
        // `b` got a new secret; `a` is unchanged.
        let second = registry.bind(&plan("{name: a, key: ka}, {name: b, key: kb2}").providers);
        let p = second.provider(0).unwrap();
        assert_eq!(p.provider.circuit(&policy, 101), Circuit::Open);
        assert_eq!(p.key(0).unwrap().circuit(&policy, 101), Circuit::Open);
        assert_eq!(p.key(1).unwrap().circuit(&policy, 101), Circuit::Closed);
        assert!(p.key(2).is_none());
        // The replaced key's tracker is gone from the registry: 1 provider + 2 keys.
        assert_eq!(registry.trackers.pin().len(), 3);
    }
}
