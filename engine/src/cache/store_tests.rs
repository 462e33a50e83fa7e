use super::*;
use crate::cache::entry::tests::sample;
use crate::state::redis::tests::RedisServer;

fn k(n: u8) -> Hash128 {
    Hash128([n; 16])
}

/// Sample entries are dated in 2027; stores check expiry against today.
fn fresh(body: &'static str, ttl: Duration) -> Entry {
    let mut e = sample(body, false);
    e.created_at_ms = unix_ms_now();
    e.ttl = ttl;
    e
}

#[tokio::test]
async fn memory_entries_expire_after_their_ttl() {
    let store = CacheStore::Memory(MemoryStore::new(100));
    let short = Duration::from_millis(50);
    store.put(&k(1), fresh("{}", short), short).await.unwrap();
    let long = Duration::from_secs(60);
    store.put(&k(2), fresh("{}", long), long).await.unwrap();
    assert!(store.get(&k(1)).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.get(&k(1)).await.unwrap(), None);
    assert!(store.get(&k(2)).await.unwrap().is_some());
    assert_eq!(store.get(&k(3)).await.unwrap(), None);
}

#[tokio::test]
async fn memory_store_holds_at_most_max_entries() {
    let memory = MemoryStore::new(10);
    let ttl = Duration::from_secs(60);
    for n in 0..100 {
        memory.put(&k(n), fresh("{}", ttl), ttl);
    }
    assert!(memory.len() <= 10, "{} entries", memory.len());
    assert!(!memory.is_empty());
}

#[tokio::test]
async fn memory_store_replaces_an_entry_and_its_ttl() {
    let store = CacheStore::Memory(MemoryStore::new(10));
    let long = Duration::from_secs(60);
    store.put(&k(1), fresh("old", long), long).await.unwrap();
    let short = Duration::from_millis(50);
    store.put(&k(1), fresh("new", short), short).await.unwrap();
    let got = store.get(&k(1)).await.unwrap().unwrap();
    assert_eq!(got.body, Bytes::from_static(b"new"));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.get(&k(1)).await.unwrap(), None);
}

#[tokio::test]
async fn entries_past_their_own_ttl_are_misses_even_if_the_store_kept_them() {
    let store = CacheStore::Memory(MemoryStore::new(10));
    let mut stale = fresh("{}", Duration::from_secs(1));
    stale.created_at_ms -= 5_000;
    store
        .put(&k(1), stale, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(store.get(&k(1)).await.unwrap(), None);
}

#[tokio::test]
async fn redis_round_trip_and_ttl() {
    let server = RedisServer::start();
    let store = CacheStore::from_config(&CacheStoreConfig::Redis { url: server.url() }).unwrap();
    let ttl = Duration::from_secs(60);
    let mut streamed = sample("data: {\"a\":1}\n\ndata: [DONE]\n\n", true);
    streamed.created_at_ms = unix_ms_now();
    streamed.ttl = ttl;
    store.put(&k(1), streamed.clone(), ttl).await.unwrap();
    assert_eq!(store.get(&k(1)).await.unwrap(), Some(streamed));
    assert_eq!(store.get(&k(2)).await.unwrap(), None);

    // The key layout and the TTL as Redis sees them.
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let name = format!("{REDIS_PREFIX}{}", k(1));
    let pttl: i64 = ::redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "PTTL {pttl}");

    let short = Duration::from_millis(50);
    store.put(&k(3), fresh("{}", short), short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.get(&k(3)).await.unwrap(), None);

    // Something else under our prefix is an error (counted as a miss), not a panic.
    let _: () = ::redis::cmd("SET")
        .arg(format!("{REDIS_PREFIX}{}", k(4)))
        .arg("not an entry")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&k(4)).await,
        Err(CacheError::Corrupt(_))
    ));
}

#[tokio::test]
async fn redis_down_fails_fast() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    // Creating the store does not need the server.
    let store = CacheStore::from_config(&CacheStoreConfig::Redis { url }).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), store.get(&k(1)))
        .await
        .expect("get returned instead of hanging");
    assert!(
        matches!(got, Err(CacheError::Unavailable { .. })),
        "{got:?}"
    );
    let key = k(1);
    let put = store.put(
        &key,
        fresh("{}", Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    assert!(tokio::time::timeout(Duration::from_secs(5), put)
        .await
        .unwrap()
        .is_err());
}

#[test]
fn bad_redis_urls_are_refused_up_front() {
    let err = CacheStore::from_config(&CacheStoreConfig::Redis {
        url: "http://u:secret@example.com".into(),
    })
    .unwrap_err();
    assert!(matches!(err, CacheError::InvalidUrl { .. }));
    assert!(!err.to_string().contains("secret"), "{err}");
}
