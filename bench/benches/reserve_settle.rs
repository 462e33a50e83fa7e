//! Reserve + settle of one request on four tiers (requests/1m, tokens/1h, budget/1M,
//! concurrent) with the memory backend: the per-request cost of limits and budgets.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::state::{reserve, reserve_at, unix_now, LimitKind, MemoryStore, Tier, Window};

fn reserve_settle(c: &mut Criterion) {
    let store = MemoryStore::new();
    let requests = store.counter("vk:bench", LimitKind::Requests, Window::Minute);
    let tokens = store.counter("vk:bench", LimitKind::Tokens, Window::Hour);
    let budget = store.counter("team:bench", LimitKind::Budget, Window::Month);
    let inflight = store.concurrent("vk:bench");
    let tiers = [
        Tier::new(&*requests, 1, u64::MAX),
        Tier::new(&*tokens, 1_200, u64::MAX),
        Tier::new(&*budget, 9_000, u64::MAX),
        Tier::new(&*inflight, 1, 1_000),
    ];
    let actual = [1, 950, 7_125, 1];

    let mut group = c.benchmark_group("reserve_settle");
    group.bench_function("4_tiers", |b| {
        b.iter(|| {
            let r = reserve(black_box(&tiers)).expect("admitted");
            r.settle(black_box(&actual));
        })
    });
    let now = unix_now();
    group.bench_function("4_tiers_fixed_clock", |b| {
        b.iter(|| {
            let r = reserve_at(black_box(&tiers), now).expect("admitted");
            r.settle_at(black_box(&actual), now);
        })
    });
    // The last tier refuses: three reservations are made and rolled back.
    let full = store.concurrent("vk:full");
    let denied_tiers = [
        Tier::new(&*requests, 1, u64::MAX),
        Tier::new(&*tokens, 1_200, u64::MAX),
        Tier::new(&*budget, 9_000, u64::MAX),
        Tier::new(&*full, 1, 0),
    ];
    group.bench_function("4_tiers_denied", |b| {
        b.iter(|| reserve_at(black_box(&denied_tiers), now).expect_err("denied"))
    });
    group.finish();
}

criterion_group!(benches, reserve_settle);
criterion_main!(benches);
