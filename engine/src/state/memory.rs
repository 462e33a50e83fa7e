//! The `memory` state backend: every counter of the process, by (scope, kind, window).
//!
//! The compiler asks for counter handles once per plan build and stores them in the plan, so
//! the hot path never looks a counter up by name. The store outlives plans: a reload that
//! keeps a key keeps its counters and their usage.

use super::counter::{Counter, LimitKind};
use super::snapshot::{CounterSnapshot, Snapshot};
use super::window::Window;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    pub scope: Arc<str>,
    pub kind: LimitKind,
    /// `None` for `concurrent`.
    pub window: Option<Window>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    // Lock-free map: handing out counters during a reload never blocks a snapshot writer.
    counters: papaya::HashMap<CounterKey, Arc<Counter>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The counter of `scope` for `kind` over `window`, created on first use. The same
    /// arguments always return the same counter. `concurrent` ignores the window.
    pub fn counter(&self, scope: &str, kind: LimitKind, window: Window) -> Arc<Counter> {
        let window = (kind != LimitKind::Concurrent).then_some(window);
        let key = CounterKey {
            scope: Arc::from(scope),
            kind,
            window,
        };
        let make = || {
            Arc::new(match window {
                Some(w) => Counter::new(kind, w),
                None => Counter::concurrent(),
            })
        };
        Arc::clone(self.counters.pin().get_or_insert_with(key, make))
    }

    /// The `concurrent` counter of `scope`.
    pub fn concurrent(&self, scope: &str) -> Arc<Counter> {
        self.counter(scope, LimitKind::Concurrent, Window::Minute)
    }

    pub fn len(&self) -> usize {
        self.counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Every windowed counter with usage, sorted so the file diffs cleanly between writes.
    pub fn snapshot(&self) -> Snapshot {
        let mut counters: Vec<CounterSnapshot> = self
            .counters
            .pin()
            .iter()
            .filter_map(|(key, counter)| {
                let window = key.window?;
                let (window_id, used) = counter.persisted();
                (used > 0).then(|| CounterSnapshot {
                    scope: key.scope.to_string(),
                    kind: key.kind,
                    window,
                    window_id,
                    used,
                })
            })
            .collect();
        counters.sort_by(|a, b| {
            (&a.scope, a.kind, a.window, a.window_id).cmp(&(
                &b.scope,
                b.kind,
                b.window,
                b.window_id,
            ))
        });
        Snapshot::new(counters)
    }

    /// Loads persisted usage into the counters it names (creating them). Entries of an older
    /// window than a counter already has are ignored; returns how many entries were applied.
    pub fn restore(&self, snapshot: &Snapshot) -> usize {
        let mut applied = 0;
        for entry in &snapshot.counters {
            if entry.kind == LimitKind::Concurrent {
                continue;
            }
            let counter = self.counter(&entry.scope, entry.kind, entry.window);
            counter.restore(entry.window_id, entry.used);
            applied += 1;
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::limits::{reserve_at, Tier};

    const NOW: i64 = 1_801_353_600; // 2027-01-31T00:00:00Z

    fn spend(counter: &Counter, amount: u64) {
        reserve_at(&[Tier::new(counter, amount, u64::MAX)], NOW)
            .expect("no limit")
            .settle_at(&[amount], NOW);
    }

    #[test]
    fn the_same_key_returns_the_same_counter() {
        let store = MemoryStore::new();
        let a = store.counter("team:ml", LimitKind::Budget, Window::Month);
        let b = store.counter("team:ml", LimitKind::Budget, Window::Month);
        assert!(Arc::ptr_eq(&a, &b));
        let other = store.counter("team:ml", LimitKind::Budget, Window::Week);
        assert!(!Arc::ptr_eq(&a, &other));
        // Concurrency has no window: any window argument names the same counter.
        let c1 = store.counter("vk:a", LimitKind::Concurrent, Window::Day);
        assert!(Arc::ptr_eq(&c1, &store.concurrent("vk:a")));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn snapshot_keeps_used_but_not_reservations_or_concurrency() {
        let store = MemoryStore::new();
        let budget = store.counter("customer:acme", LimitKind::Budget, Window::Month);
        let tokens = store.counter("vk:vk-ml", LimitKind::Tokens, Window::Hour);
        let idle = store.counter("vk:vk-ml", LimitKind::Requests, Window::Minute);
        let inflight = store.concurrent("vk:vk-ml");
        spend(&budget, 1_250_000);
        spend(&tokens, 42);
        let held = reserve_at(
            &[
                Tier::new(&*tokens, 1_000, u64::MAX),
                Tier::new(&*inflight, 1, 4),
            ],
            NOW,
        )
        .expect("fits");

        let snap = store.snapshot();
        let json = serde_json::to_value(&snap).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "counters": [
                    {"scope": "customer:acme", "kind": "budget", "window": "1M",
                     "window_id": 2027 * 12, "used": 1_250_000},
                    {"scope": "vk:vk-ml", "kind": "tokens", "window": "1h",
                     "window_id": NOW / 3600, "used": 42},
                ]
            })
        );
        held.release();
        let _ = idle;
    }

    #[test]
    fn restore_brings_usage_back_into_a_fresh_store() {
        let before = MemoryStore::new();
        spend(
            &before.counter("team:ml", LimitKind::Budget, Window::Month),
            900,
        );
        spend(
            &before.counter("team:ml", LimitKind::Requests, Window::Day),
            3,
        );
        let json = serde_json::to_string(&before.snapshot()).expect("serializes");

        let after = MemoryStore::new();
        let snap: Snapshot = serde_json::from_str(&json).expect("parses");
        assert_eq!(after.restore(&snap), 2);
        let budget = after.counter("team:ml", LimitKind::Budget, Window::Month);
        assert_eq!(budget.usage_at(NOW).used, 900);
        // The restored usage counts against the limit: 900 + 101 > 1000.
        assert!(reserve_at(&[Tier::new(&*budget, 101, 1_000)], NOW).is_err());
        assert!(reserve_at(&[Tier::new(&*budget, 100, 1_000)], NOW).is_ok());
        // A snapshot from a passed window restores, then reads as empty now.
        let next_month = NOW + 31 * 86_400;
        assert_eq!(budget.usage_at(next_month).used, 0);
    }

    #[test]
    fn snapshot_files_round_trip_and_bad_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("tollgate-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("state.json");
        assert!(Snapshot::read_file(&path)
            .expect("missing is fine")
            .is_none());

        let store = MemoryStore::new();
        spend(&store.counter("vk:a", LimitKind::Tokens, Window::Week), 7);
        store.snapshot().write_file(&path).expect("writes");
        let back = Snapshot::read_file(&path).expect("reads").expect("exists");
        assert_eq!(back, store.snapshot());

        std::fs::write(&path, b"{\"version\": 1, \"counters\": [{\"scope\": 1}]}").expect("write");
        let err = Snapshot::read_file(&path).expect_err("invalid").to_string();
        assert!(
            err.contains("state.json") && err.contains("not valid"),
            "{err}"
        );
        std::fs::write(&path, b"{\"version\": 9, \"counters\": []}").expect("write");
        let err = Snapshot::read_file(&path).expect_err("version").to_string();
        assert!(err.contains("version 9"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
