//! Multi-tier reservation behaviour and the concurrency properties of the memory backend.

use super::*;
use chrono::DateTime;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

const JAN_31: i64 = 1_801_353_600; // 2027-01-31T00:00:00Z
const FEB_1: i64 = 1_801_440_000; // 2027-02-01T00:00:00Z

fn usage(c: &Counter, now: i64) -> (u64, u64) {
    let u = c.usage_at(now);
    (u.used, u.reserved)
}

#[test]
fn a_request_passes_only_if_every_tier_passes_and_a_refusal_takes_nothing() {
    let key = Counter::new(LimitKind::Requests, Window::Minute);
    let team = Counter::new(LimitKind::Tokens, Window::Day);
    let customer = Counter::new(LimitKind::Budget, Window::Month);
    let tiers = [
        Tier::new(&key, 1, 100),
        Tier::new(&team, 5_000, 1_000_000),
        Tier::new(&customer, 2_000_000, 1_000_000),
    ];
    let denied = reserve_at(&tiers, JAN_31).expect_err("customer budget too small");
    assert_eq!(denied.tier, 2);
    assert_eq!(denied.kind, LimitKind::Budget);
    assert_eq!(denied.window, Some(Window::Month));
    assert_eq!((denied.used, denied.reserved), (0, 0));
    assert_eq!((denied.requested, denied.limit), (2_000_000, 1_000_000));
    assert_eq!(
        denied.resets_at,
        DateTime::parse_from_rfc3339("2027-02-01T00:00:00Z")
            .ok()
            .map(|t| t.to_utc())
    );
    assert_eq!(
        denied.retry_after_secs(DateTime::from_timestamp(JAN_31, 0).expect("valid")),
        Some(86_400)
    );
    assert!(
        denied.to_string().contains("budget limit of tier 2"),
        "{denied}"
    );
    // The tiers before the refusing one were rolled back.
    assert_eq!(usage(&key, JAN_31), (0, 0));
    assert_eq!(usage(&team, JAN_31), (0, 0));
}

#[test]
fn settle_replaces_each_estimate_with_the_actual_usage() {
    let requests = Counter::new(LimitKind::Requests, Window::Minute);
    let tokens = Counter::new(LimitKind::Tokens, Window::Hour);
    let budget = Counter::new(LimitKind::Budget, Window::Month);
    let inflight = Counter::concurrent();
    let tiers = [
        Tier::new(&requests, 1, 10),
        Tier::new(&tokens, 4_096, 100_000),
        Tier::new(&budget, 40_000, 5_000_000),
        Tier::new(&inflight, 1, 4),
    ];
    let r = reserve_at(&tiers, JAN_31).expect("fits");
    assert_eq!(r.len(), 4);
    assert_eq!(usage(&tokens, JAN_31), (0, 4_096));
    assert_eq!(usage(&inflight, JAN_31), (0, 1));
    settle_at_helper(r, &[1, 1_234, 9_876, 1]);
    assert_eq!(usage(&requests, JAN_31), (1, 0));
    assert_eq!(usage(&tokens, JAN_31), (1_234, 0));
    assert_eq!(usage(&budget, JAN_31), (9_876, 0));
    assert_eq!(usage(&inflight, JAN_31), (0, 0));
}

fn settle_at_helper(r: Reservation<&Counter>, actual: &[u64]) {
    r.settle_at(actual, JAN_31);
}

#[test]
fn an_actual_above_the_estimate_is_charged_in_full_and_blocks_later_requests() {
    let budget = Counter::new(LimitKind::Budget, Window::Month);
    let r = reserve_at(&[Tier::new(&budget, 100, 1_000)], JAN_31).expect("fits");
    r.settle_at(&[1_500], JAN_31);
    assert_eq!(usage(&budget, JAN_31), (1_500, 0));
    let denied = reserve_at(&[Tier::new(&budget, 0, 1_000)], JAN_31).expect_err("over budget");
    assert_eq!(denied.used, 1_500);
}

#[test]
fn missing_actuals_charge_the_estimate_and_release_charges_nothing() {
    let tokens = Counter::new(LimitKind::Tokens, Window::Hour);
    let budget = Counter::new(LimitKind::Budget, Window::Month);
    let tiers = [
        Tier::new(&tokens, 300, 1_000),
        Tier::new(&budget, 50, 1_000),
    ];
    reserve_at(&tiers, JAN_31)
        .expect("fits")
        .settle_at(&[120], JAN_31);
    assert_eq!(usage(&tokens, JAN_31), (120, 0));
    assert_eq!(usage(&budget, JAN_31), (50, 0));
    reserve_at(&tiers, JAN_31).expect("fits").release();
    assert_eq!(usage(&tokens, JAN_31), (120, 0));
    assert_eq!(usage(&budget, JAN_31), (50, 0));
}

#[test]
fn a_dropped_reservation_is_charged_at_its_estimate() {
    let tokens = Counter::new(LimitKind::Tokens, Window::Year);
    let inflight = Counter::concurrent();
    let now = unix_now();
    {
        let _forgotten =
            reserve(&[Tier::new(&tokens, 777, 1_000), Tier::new(&inflight, 1, 1)]).expect("fits");
        assert!(reserve(&[Tier::new(&inflight, 1, 1)]).is_err());
    }
    assert_eq!(usage(&tokens, now), (777, 0));
    assert_eq!(usage(&inflight, now), (0, 0), "the slot is free again");
}

#[test]
fn more_tiers_than_fit_inline_still_work() {
    let counters: Vec<Counter> = (0..INLINE_TIERS + 4)
        .map(|_| Counter::new(LimitKind::Requests, Window::Minute))
        .collect();
    let tiers: Vec<Tier<&Counter>> = counters.iter().map(|c| Tier::new(c, 1, 1)).collect();
    let r = reserve_at(&tiers, JAN_31).expect("fits");
    assert_eq!(r.len(), INLINE_TIERS + 4);
    let denied = reserve_at(&tiers, JAN_31).expect_err("all full");
    assert_eq!(denied.tier, 0);
    r.settle_at(&[], JAN_31);
    assert!(counters.iter().all(|c| usage(c, JAN_31) == (1, 0)));
}

#[test]
fn an_owned_reservation_can_be_settled_on_another_thread() {
    let store = MemoryStore::new();
    let tokens = store.counter("vk:a", LimitKind::Tokens, Window::Day);
    let r = reserve_at(&[Tier::new(Arc::clone(&tokens), 500, 1_000)], JAN_31).expect("fits");
    thread::spawn(move || r.settle_at(&[321], JAN_31))
        .join()
        .expect("settler thread");
    assert_eq!(usage(&tokens, JAN_31), (321, 0));
}

#[test]
fn racing_threads_admit_exactly_the_limit() {
    const THREADS: usize = 8;
    const ATTEMPTS: usize = 1_000;
    const LIMIT: u64 = 500;
    let counter = Counter::new(LimitKind::Requests, Window::Hour);
    let admitted = AtomicUsize::new(0);
    let start = Barrier::new(THREADS);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                start.wait();
                for _ in 0..ATTEMPTS {
                    if let Ok(r) = reserve_at(&[Tier::new(&counter, 1, LIMIT)], JAN_31) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::mem::forget(r); // keep it in flight until the end
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::Relaxed), LIMIT as usize);
    assert_eq!(usage(&counter, JAN_31), (0, LIMIT));
}

#[test]
fn forty_concurrent_requests_against_a_budget_for_four_admit_four() {
    const REQUESTS: usize = 40;
    const COST: u64 = 250_000; // $0.25 each against a $1.00 budget
    let key_requests = Counter::new(LimitKind::Requests, Window::Minute);
    let key_tokens = Counter::new(LimitKind::Tokens, Window::Hour);
    let inflight = Counter::concurrent();
    let budget = Counter::new(LimitKind::Budget, Window::Month);
    let start = Barrier::new(REQUESTS);
    let admitted = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..REQUESTS {
            s.spawn(|| {
                let tiers = [
                    Tier::new(&key_requests, 1, 1_000),
                    Tier::new(&key_tokens, 2_000, 1_000_000),
                    Tier::new(&inflight, 1, 100),
                    Tier::new(&budget, COST, 1_000_000),
                ];
                start.wait();
                if let Ok(r) = reserve_at(&tiers, JAN_31) {
                    admitted.fetch_add(1, Ordering::Relaxed);
                    std::mem::forget(r);
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::Relaxed), 4);
    assert_eq!(usage(&budget, JAN_31), (0, 1_000_000));
    // Denied requests left nothing behind on the tiers they passed.
    assert_eq!(usage(&key_requests, JAN_31), (0, 4));
    assert_eq!(usage(&key_tokens, JAN_31), (0, 8_000));
    assert_eq!(usage(&inflight, JAN_31), (0, 4));
}

/// Reserve and settle churn on a `concurrent` tier: never more than the limit in flight, and
/// everything given back at the end.
#[test]
fn in_flight_never_exceeds_the_concurrency_limit_under_churn() {
    const LIMIT: u64 = 3;
    let inflight = Counter::concurrent();
    let tokens = Counter::new(LimitKind::Tokens, Window::Hour);
    let now_in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let served = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    let tiers = [
                        Tier::new(&tokens, 10, u64::MAX),
                        Tier::new(&inflight, 1, LIMIT),
                    ];
                    if let Ok(r) = reserve_at(&tiers, JAN_31) {
                        let n = now_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        now_in_flight.fetch_sub(1, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::Relaxed);
                        r.settle_at(&[7, 1], JAN_31);
                    }
                }
            });
        }
    });
    assert!(peak.load(Ordering::SeqCst) <= LIMIT as usize);
    assert_eq!(usage(&inflight, JAN_31), (0, 0));
    let served = served.load(Ordering::Relaxed) as u64;
    assert_eq!(usage(&tokens, JAN_31), (7 * served, 0));
}

/// Many threads reach a counter full of January usage at the first instant of February: one
/// of them rolls it over, and no reservation of the new month is lost to that reset.
#[test]
fn a_rollover_under_contention_loses_no_reservation_of_the_new_window() {
    const LIMIT: u64 = 1_000;
    let budget = Counter::new(LimitKind::Budget, Window::Month);
    reserve_at(&[Tier::new(&budget, LIMIT, LIMIT)], JAN_31)
        .expect("fits")
        .settle_at(&[LIMIT], JAN_31);
    assert!(reserve_at(&[Tier::new(&budget, 1, LIMIT)], JAN_31).is_err());

    let admitted = AtomicUsize::new(0);
    let start = Barrier::new(8);
    thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                start.wait();
                for _ in 0..250 {
                    if let Ok(r) = reserve_at(&[Tier::new(&budget, 1, LIMIT)], FEB_1) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::mem::forget(r);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.load(Ordering::Relaxed), LIMIT as usize);
    assert_eq!(usage(&budget, FEB_1), (0, LIMIT));
}
