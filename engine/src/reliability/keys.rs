//! Which provider key an attempt uses. A key whose circuit is open is benched: skipped when
//! the first key is chosen and when a failure moves to the next one, unless every key is
//! benched, in which case they are used anyway (a benched key may still work; refusing the
//! request surely would not).

use super::health::{Health, HealthPolicy};
use super::trackers::ProviderHealth;
use crate::plan::{pick_weighted, ProviderKeyPlan, ProviderPlan};
use smallvec::SmallVec;

/// The keys of one provider that serve the request's model, with their trackers, and the
/// one in use.
pub struct KeyRing<'p> {
    keys: SmallVec<[(&'p ProviderKeyPlan, Option<&'p Health>); 4]>,
    policy: &'p HealthPolicy,
    at: usize,
}

impl<'p> KeyRing<'p> {
    /// Starts at `first` (routing's weighted choice) if it is not benched, else at a weighted
    /// choice among the keys that are not.
    pub fn new(
        provider: &'p ProviderPlan,
        health: Option<&'p ProviderHealth>,
        model: &str,
        first: Option<&ProviderKeyPlan>,
        now: u64,
    ) -> KeyRing<'p> {
        let keys: SmallVec<[_; 4]> = provider
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.serves(model))
            .map(|(i, k)| (k, health.and_then(|h| h.key(i))))
            .collect();
        let mut ring = KeyRing {
            keys,
            policy: &provider.health,
            at: 0,
        };
        ring.at = first
            .and_then(|f| ring.keys.iter().position(|(k, _)| std::ptr::eq(*k, f)))
            .unwrap_or(0);
        if !ring.admits(ring.at, now) {
            let roll = fastrand::u64(..);
            let open = (0..ring.keys.len())
                .filter(|&i| ring.admits(i, now))
                .map(|i| (i, ring.keys[i].0.weight));
            if let Some(i) = pick_weighted(open, roll) {
                ring.at = i;
            }
        }
        ring
    }

    /// The key to use now; `None` for a provider without keys.
    pub fn current(&self) -> Option<&'p ProviderKeyPlan> {
        self.keys.get(self.at).map(|(k, _)| *k)
    }

    /// The health of the key in use.
    pub fn tracker(&self) -> Option<&'p Health> {
        self.keys.get(self.at).and_then(|(_, h)| *h)
    }

    /// After a failure: to the next key that is not benched. `rotate` (the key itself was
    /// refused or rate limited) moves on even when every other key is benched; otherwise the
    /// ring stays on the current key unless it has just been benched and another is not.
    pub fn advance(&mut self, now: u64, rotate: bool) {
        let n = self.keys.len();
        if n == 0 || (!rotate && self.admits(self.at, now)) {
            return;
        }
        let next = (1..n)
            .map(|d| (self.at + d) % n)
            .find(|&i| self.admits(i, now));
        match next {
            Some(i) => self.at = i,
            None if rotate => self.at = (self.at + 1) % n,
            None => {}
        }
    }

    fn admits(&self, i: usize, now: u64) -> bool {
        self.keys
            .get(i)
            .is_some_and(|(_, h)| h.is_none_or(|h| h.admits(self.policy, now, fastrand::f64())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use crate::config::{load_str, ConfigFormat};
    use crate::plan::Plan;
    use crate::reliability::trackers::HealthRegistry;

    fn plan() -> Plan {
        let text = "providers:\n  - {name: p, kind: openai_compatible, base_url: 'http://127.0.0.1:1/v1', keys: [{name: a, key: ka}, {name: b, key: kb}, {name: c, key: kc, models: [other]}]}\n  - {name: local, kind: openai_compatible, base_url: 'http://127.0.0.1:1/v1'}\nvirtual_keys: [{id: vk, key: s}]\n";
        compile(&load_str(text, "t.yaml", ConfigFormat::Yaml).unwrap()).unwrap()
    }

    fn name(ring: &KeyRing) -> String {
        ring.current()
            .map(|k| k.name.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_benched_first_key_is_skipped_until_every_key_is_benched() {
        let plan = plan();
        let health = HealthRegistry::default().bind(&plan.providers);
        let (p, h) = (&plan.providers[0], health.provider(0));
        let a = Some(&p.keys[0]);
        assert_eq!(name(&KeyRing::new(p, h, "m", a, 100)), "a");
        h.unwrap().key(0).unwrap().trip(100);
        for _ in 0..20 {
            assert_eq!(name(&KeyRing::new(p, h, "m", a, 100)), "b");
        }
        // `c` does not serve `m`: with `b` benched too, `a` is used anyway.
        h.unwrap().key(1).unwrap().trip(100);
        assert_eq!(name(&KeyRing::new(p, h, "m", a, 100)), "a");
    }

    #[test]
    fn a_failure_moves_past_benched_keys() {
        let plan = plan();
        let health = HealthRegistry::default().bind(&plan.providers);
        let (p, h) = (&plan.providers[0], health.provider(0));
        let mut ring = KeyRing::new(p, h, "m", Some(&p.keys[0]), 100);
        ring.advance(100, false);
        assert_eq!(name(&ring), "a", "a 5xx on a healthy key stays on it");
        ring.advance(100, true);
        assert_eq!(name(&ring), "b", "a 429 rotates");
        h.unwrap().key(0).unwrap().trip(100);
        h.unwrap().key(1).unwrap().trip(100);
        ring.advance(100, false);
        assert_eq!(name(&ring), "b", "nowhere better to go");
        ring.advance(100, true);
        assert_eq!(name(&ring), "a", "a rotation still rotates");
    }

    #[test]
    fn providers_without_keys_have_none() {
        let plan = plan();
        let mut ring = KeyRing::new(&plan.providers[1], None, "m", None, 0);
        assert!(ring.current().is_none() && ring.tracker().is_none());
        ring.advance(0, true);
        assert!(ring.current().is_none());
    }
}
