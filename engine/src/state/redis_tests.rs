//! The Redis backend against a real `redis-server` started by each test on a free loopback
//! port. Without `redis-server` these tests fail (they do not skip): a missing server would
//! otherwise pass CI while testing nothing.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const JAN_31: i64 = 1_801_353_600; // 2027-01-31T00:00:00Z
const FEB_1: i64 = 1_801_440_000; // 2027-02-01T00:00:00Z

/// A private `redis-server`, killed (by PID) when dropped. Other modules' Redis tests use it too.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self::start_on(port).expect("redis-server did not start")
    }

    /// `None` if it did not answer (e.g. another process took the port first).
    fn start_on(port: u16) -> Option<RedisServer> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`redis-server` is not installed, and the Redis state tests need it: \
                 run `apt-get install redis-server` (Debian/Ubuntu) and rerun"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let mut server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(server.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            if ping(port) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url()).await.expect("connects")
}

fn tier(
    scope: &str,
    kind: LimitKind,
    window: Option<Window>,
    amount: u64,
    limit: u64,
) -> RedisTier {
    RedisTier {
        scope: Arc::from(scope),
        kind,
        window,
        amount,
        limit,
    }
}

async fn usage(s: &RedisStore, t: &RedisTier, now: i64) -> (u64, u64) {
    s.usage(&t.scope, t.kind, t.window, now)
        .await
        .expect("usage")
}

async fn ttl(s: &RedisStore, key: &str) -> i64 {
    let mut conn = s.conn.clone();
    ::redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("TTL")
}

fn denied(r: Result<RedisReservation, ReserveError>) -> Denied {
    match r {
        Err(ReserveError::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn keys_name_scope_kind_window_and_window_id() {
    let id = Window::Hour.window_id(JAN_31);
    assert_eq!(
        redis_key(
            "virtual_key:vk-ml",
            LimitKind::Tokens,
            Some(Window::Hour),
            id
        ),
        format!("tg:virtual_key:vk-ml:tokens:1h:{id}")
    );
    assert_eq!(
        redis_key("team:ml", LimitKind::Budget, Some(Window::Month), 24_288),
        "tg:team:ml:budget:1M:24288"
    );
    // Concurrency has no window: any window argument names the same key.
    assert_eq!(
        redis_key("vk:a", LimitKind::Concurrent, Some(Window::Day), 7),
        "tg:vk:a:concurrent"
    );
    assert_eq!(
        redis_key("vk:a", LimitKind::Concurrent, None, 0),
        "tg:vk:a:concurrent"
    );
}

#[test]
fn error_messages_hide_the_password() {
    assert_eq!(
        redact("redis://:s3cret@10.0.0.1:6379/0"),
        "redis://:***@10.0.0.1:6379/0"
    );
    assert_eq!(
        redact("rediss://app:s3cret@cache/1"),
        "rediss://app:***@cache/1"
    );
    assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_server_is_an_error_not_a_panic() {
    let err = RedisStore::connect("http://127.0.0.1:6379")
        .await
        .expect_err("bad scheme");
    assert!(matches!(err, StateError::InvalidUrl { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("invalid redis URL `http://127.0.0.1:6379`"),
        "{err}"
    );

    // A port nobody listens on: bind one, learn it, close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://:pw@127.0.0.1:{port}/0"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, StateError::Unavailable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "redis at redis://:***@127.0.0.1:{port}/0 is unavailable"
        )),
        "{msg}"
    );
    assert!(
        started.elapsed() < OPERATION_DEADLINE + Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_replicas_racing_admit_exactly_the_limit() {
    let server = RedisServer::start();
    // Two stores, two connections: two gateway replicas sharing the counters.
    let replicas = [store(&server).await, store(&server).await];
    let tiers = Arc::new([
        tier("vk:race", LimitKind::Requests, Some(Window::Minute), 1, 50),
        tier(
            "team:race",
            LimitKind::Tokens,
            Some(Window::Hour),
            10,
            1_000_000,
        ),
    ]);
    let now = unix_now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let replica = replicas[i % 2].clone();
        let tiers = Arc::clone(&tiers);
        tasks.push(tokio::spawn(async move {
            // Admitted reservations are held until every racer is done: settling early
            // would free room for later ones.
            match replica.reserve(&tiers[..], now).await {
                Ok(r) => Some(r),
                Err(ReserveError::Denied(d)) => {
                    assert_eq!((d.tier, d.used, d.reserved), (0, 0, 50));
                    None
                }
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut admitted = Vec::new();
    for task in tasks {
        admitted.extend(task.await.expect("task"));
    }
    assert_eq!(admitted.len(), 50);
    assert_eq!(usage(&replicas[0], &tiers[0], now).await, (0, 50));
    // All-or-nothing under the race too: the team tier holds exactly the admitted requests.
    assert_eq!(usage(&replicas[1], &tiers[1], now).await, (0, 500));
    for r in admitted {
        replicas[1]
            .settle_at(r, &[1, 7], now)
            .await
            .expect("settles");
    }
    assert_eq!(usage(&replicas[0], &tiers[0], now).await, (50, 0));
    assert_eq!(usage(&replicas[0], &tiers[1], now).await, (350, 0));
}

#[tokio::test]
async fn a_denial_on_tier_3_leaves_tiers_1_and_2_unchanged() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let tiers = [
        tier("vk:a", LimitKind::Requests, Some(Window::Minute), 1, 100),
        tier(
            "team:ml",
            LimitKind::Tokens,
            Some(Window::Day),
            5_000,
            1_000_000,
        ),
        tier(
            "customer:acme",
            LimitKind::Budget,
            Some(Window::Month),
            2_000_000,
            1_000_000,
        ),
    ];
    // Some earlier usage, so "unchanged" is not just "still empty".
    let earlier = s.reserve(&tiers[..2], JAN_31).await.expect("fits");
    s.settle_at(earlier, &[1, 700], JAN_31)
        .await
        .expect("settles");

    let d = denied(s.reserve(&tiers, JAN_31).await);
    assert_eq!(
        (d.tier, d.kind, d.window),
        (2, LimitKind::Budget, Some(Window::Month))
    );
    assert_eq!(
        (d.used, d.reserved, d.requested, d.limit),
        (0, 0, 2_000_000, 1_000_000)
    );
    assert_eq!(d.resets_at, DateTime::from_timestamp(FEB_1, 0));
    assert!(d.to_string().contains("budget limit of tier 2"), "{d}");
    assert_eq!(usage(&s, &tiers[0], JAN_31).await, (1, 0));
    assert_eq!(usage(&s, &tiers[1], JAN_31).await, (700, 0));
    assert_eq!(usage(&s, &tiers[2], JAN_31).await, (0, 0));
}

#[tokio::test]
async fn settle_replaces_the_estimate_with_the_actual_usage() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let tiers = [
        tier("vk:s", LimitKind::Requests, Some(Window::Minute), 1, 10),
        tier(
            "vk:s",
            LimitKind::Tokens,
            Some(Window::Hour),
            4_096,
            100_000,
        ),
        tier(
            "vk:s",
            LimitKind::Budget,
            Some(Window::Month),
            50_000,
            1_000_000,
        ),
        tier("vk:s", LimitKind::Concurrent, None, 1, 4),
    ];
    let r = s.reserve(&tiers, JAN_31).await.expect("fits");
    assert_eq!(usage(&s, &tiers[1], JAN_31).await, (0, 4_096));
    assert_eq!(usage(&s, &tiers[3], JAN_31).await, (0, 1));
    // The budget tier has no entry in `actual`: it is charged its estimate.
    s.settle_at(r, &[1, 1_234, 0, 99], JAN_31)
        .await
        .expect("settles");
    assert_eq!(usage(&s, &tiers[0], JAN_31).await, (1, 0));
    assert_eq!(usage(&s, &tiers[1], JAN_31).await, (1_234, 0));
    assert_eq!(usage(&s, &tiers[2], JAN_31).await, (0, 0));
    // Concurrency gives its slot back and never counts usage.
    assert_eq!(usage(&s, &tiers[3], JAN_31).await, (0, 0));

    let r = s.reserve(&tiers, JAN_31).await.expect("fits");
    s.settle_at(r, &[1, 10], JAN_31).await.expect("settles");
    assert_eq!(
        usage(&s, &tiers[2], JAN_31).await,
        (50_000, 0),
        "estimate charged"
    );

    // Release gives everything back without charging.
    let r = s.reserve(&tiers, JAN_31).await.expect("fits");
    s.release(r).await.expect("releases");
    assert_eq!(usage(&s, &tiers[0], JAN_31).await, (2, 0));
    assert_eq!(usage(&s, &tiers[1], JAN_31).await, (1_244, 0));
    assert_eq!(usage(&s, &tiers[3], JAN_31).await, (0, 0));
}

#[tokio::test]
async fn keys_carry_a_ttl_to_the_end_of_their_window() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let now = JAN_31 + 3_600 + 17; // 01:00:17
    let tiers = [
        tier("vk:t", LimitKind::Tokens, Some(Window::Hour), 10, 1_000),
        tier("vk:t", LimitKind::Budget, Some(Window::Month), 10, 1_000),
        tier("vk:t", LimitKind::Concurrent, None, 1, 4),
    ];
    let r = s.reserve(&tiers, now).await.expect("fits");
    let hour = redis_key(
        "vk:t",
        LimitKind::Tokens,
        Some(Window::Hour),
        Window::Hour.window_id(now),
    );
    let month = redis_key(
        "vk:t",
        LimitKind::Budget,
        Some(Window::Month),
        Window::Month.window_id(now),
    );
    let expect_hour = 3_600 - 17 + TTL_MARGIN_SECS;
    let expect_month = FEB_1 - now + TTL_MARGIN_SECS;
    // TTL counts down in real time: allow a couple of seconds of test latency.
    assert!((expect_hour - 2..=expect_hour).contains(&ttl(&s, &hour).await));
    assert!((expect_month - 2..=expect_month).contains(&ttl(&s, &month).await));
    let concurrent = ttl(&s, "tg:vk:t:concurrent").await;
    assert!(
        (CONCURRENT_TTL_SECS - 2..=CONCURRENT_TTL_SECS).contains(&concurrent),
        "{concurrent}"
    );
    s.settle_at(r, &[5, 5], now).await.expect("settles");
    assert!(ttl(&s, &hour).await > 0, "settling keeps the TTL");
}

#[tokio::test]
async fn a_new_window_starts_empty_and_a_late_settle_counts_in_it() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let budget = [tier(
        "customer:roll",
        LimitKind::Budget,
        Some(Window::Month),
        500,
        1_000,
    )];

    let january = s.reserve(&budget, JAN_31).await.expect("fits");
    let full = [RedisTier {
        amount: 600,
        ..budget[0].clone()
    }];
    assert_eq!(denied(s.reserve(&full, JAN_31).await).reserved, 500);
    // February: a fresh key, so the same request fits.
    let february = s.reserve(&full, FEB_1).await.expect("new window");
    assert_eq!(
        (january.window_id(0), february.window_id(0)),
        (
            Some(Window::Month.window_id(JAN_31)),
            Some(Window::Month.window_id(FEB_1))
        )
    );
    // January's request finishes in February: its reservation leaves January, its usage
    // counts in February.
    s.settle_at(january, &[200], FEB_1).await.expect("settles");
    assert_eq!(usage(&s, &budget[0], JAN_31).await, (0, 0));
    assert_eq!(usage(&s, &budget[0], FEB_1).await, (200, 600));
    s.settle_at(february, &[600], FEB_1).await.expect("settles");
    assert_eq!(usage(&s, &budget[0], FEB_1).await, (800, 0));
    assert_eq!(denied(s.reserve(&budget, FEB_1).await).used, 800);
    // A replica whose clock still says January charges February, never rolling back.
    let small = [RedisTier {
        amount: 100,
        ..budget[0].clone()
    }];
    let r = s.reserve(&small, FEB_1).await.expect("fits");
    s.settle_at(r, &[100], JAN_31).await.expect("settles");
    assert_eq!(usage(&s, &budget[0], FEB_1).await, (900, 0));
}

#[tokio::test]
async fn a_key_named_by_two_tiers_counts_both_amounts() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let t = tier("vk:dup", LimitKind::Tokens, Some(Window::Hour), 60, 100);
    let d = denied(s.reserve(&[t.clone(), t.clone()], JAN_31).await);
    assert_eq!((d.tier, d.reserved), (1, 60));
    assert_eq!(usage(&s, &t, JAN_31).await, (0, 0));
    // A limit of u64::MAX (unlimited) and an amount beyond MAX_AMOUNT do not break the script.
    let huge = RedisTier {
        amount: u64::MAX,
        limit: u64::MAX,
        ..t.clone()
    };
    let r = s.reserve(&[huge], JAN_31).await.expect("unlimited");
    assert_eq!(r.amount(0), Some(MAX_AMOUNT));
    s.release(r).await.expect("releases");
    assert_eq!(usage(&s, &t, JAN_31).await, (0, 0));
}

#[tokio::test]
async fn usage_many_lists_counters_in_the_order_asked() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let tiers = [
        tier("vk:u", LimitKind::Requests, Some(Window::Day), 1, 10),
        tier("vk:u", LimitKind::Concurrent, None, 1, 10),
    ];
    let done = s.reserve(&tiers[..1], JAN_31).await.expect("fits");
    s.settle_at(done, &[1], JAN_31).await.expect("settles");
    let held = s.reserve(&tiers, JAN_31).await.expect("fits");
    let key = |t: &RedisTier| CounterKey {
        scope: Arc::clone(&t.scope),
        kind: t.kind,
        window: t.window,
    };
    let never = CounterKey {
        scope: Arc::from("vk:none"),
        ..key(&tiers[0])
    };
    let listed = s
        .usage_many(&[key(&tiers[1]), never, key(&tiers[0])], JAN_31)
        .await
        .expect("lists");
    let day = Window::Day.window_id(JAN_31);
    assert_eq!(
        listed,
        [
            Usage {
                window_id: 0,
                used: 0,
                reserved: 1
            },
            Usage {
                window_id: day,
                used: 0,
                reserved: 0
            },
            Usage {
                window_id: day,
                used: 1,
                reserved: 1
            },
        ]
    );
    s.release(held).await.expect("releases");
}

#[tokio::test]
async fn a_dropped_reservation_is_charged_its_estimate_and_frees_its_slot() {
    let server = RedisServer::start();
    let s = store(&server).await;
    let now = unix_now();
    let tiers = [
        tier("vk:d", LimitKind::Tokens, Some(Window::Hour), 300, 1_000),
        tier("vk:d", LimitKind::Concurrent, None, 1, 1),
    ];
    drop(s.reserve(&tiers, now).await.expect("fits"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while usage(&s, &tiers[1], now).await != (0, 0) {
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(usage(&s, &tiers[0], now).await, (300, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_down_is_unavailable_and_the_store_reconnects() {
    let mut server = RedisServer::start();
    let s = store(&server).await;
    let t = [tier(
        "vk:down",
        LimitKind::Requests,
        Some(Window::Minute),
        1,
        10,
    )];
    let r = s.reserve(&t, JAN_31).await.expect("up");
    server.stop();

    let started = Instant::now();
    match s.reserve(&t, JAN_31).await {
        Err(ReserveError::Unavailable(msg)) => assert!(msg.contains("unavailable"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() <= OPERATION_DEADLINE + Duration::from_millis(500));
    let err = s.settle_at(r, &[1], JAN_31).await.expect_err("down");
    assert!(matches!(err, StateError::Unavailable { .. }), "{err}");
    assert!(s
        .usage("vk:down", LimitKind::Requests, Some(Window::Minute), JAN_31)
        .await
        .is_err());

    // The same port comes back (empty: no persistence): the same store works again.
    let _server = RedisServer::start_on(server.port).expect("restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.reserve(&t, JAN_31).await {
            Ok(r) => break s.release(r).await.expect("releases"),
            Err(e) => assert!(Instant::now() < deadline, "never reconnected: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
