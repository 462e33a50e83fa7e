use super::*;
use crate::cache::entry::unix_ms_now;
use crate::state::redis::tests::RedisServer;
use bytes::Bytes;
use serde_json::json;
use std::time::Duration;

fn cache(mode: CacheMode) -> ResponseCache {
    let config = CacheConfig {
        mode,
        ..CacheConfig::default()
    };
    ResponseCache::from_config(config, std::path::Path::new(".")).unwrap()
}

fn answer(status: u16) -> Entry {
    Entry {
        status,
        content_type: Some("application/json".into()),
        body: Bytes::from_static(br#"{"choices":[{"message":{"content":"Paris"}}]}"#),
        stream: false,
        usage: CachedUsage {
            prompt_tokens: 9,
            completion_tokens: 1,
        },
        created_at_ms: unix_ms_now(),
        ttl: Duration::from_secs(60),
        provider: "openai".into(),
        model: "gpt-4o".into(),
    }
}

fn key_of(c: &ResponseCache, text: &str) -> CacheKey {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]});
    c.key(
        "/v1/chat/completions",
        "gpt-4o",
        &body,
        ScopeId::Key("vk"),
        None,
    )
}

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_stored_answer_is_hit_by_the_same_request() {
    let c = cache(CacheMode::Exact);
    let on = CacheDirectives::default();
    let key = key_of(&c, "capital of France?");
    assert_eq!(c.lookup(&on, &key).await, Lookup::Miss);
    // The in-process store is written in place: the very next lookup sees it.
    assert!(c.store(key, answer(200), None).is_none());
    assert_eq!(
        c.lookup(&on, &key).await,
        Lookup::Hit(answer_like(&c, &key).await)
    );
    // Whitespace differences hit the same entry.
    let same = key_of(&c, "  capital   of France? ");
    assert!(matches!(c.lookup(&on, &same).await, Lookup::Hit(_)));
    assert_eq!(
        c.lookup(&on, &key_of(&c, "capital of Spain?")).await,
        Lookup::Miss
    );
    let m = c.metrics();
    assert_eq!((count(&m.hits_exact), count(&m.misses)), (2, 2));
    assert_eq!((count(&m.stores), count(&m.errors)), (1, 0));
}

/// The entry as stored (its `created_at_ms` is set by the test, so read it back).
async fn answer_like(c: &ResponseCache, key: &CacheKey) -> Entry {
    c.store.get(&key.exact).await.unwrap().unwrap()
}

#[tokio::test]
async fn directives_turn_caching_on_and_off_per_request() {
    let off = cache(CacheMode::Off);
    let key = key_of(&off, "hi");
    assert_eq!(
        off.lookup(&CacheDirectives::default(), &key).await,
        Lookup::Bypass
    );
    let exact = CacheDirectives {
        mode: Some(CacheMode::Exact),
        ..Default::default()
    };
    assert_eq!(off.lookup(&exact, &key).await, Lookup::Miss);

    let on = cache(CacheMode::Exact);
    let opt_out = CacheDirectives {
        mode: Some(CacheMode::Off),
        ..Default::default()
    };
    assert_eq!(on.lookup(&opt_out, &key).await, Lookup::Bypass);
    assert_eq!(count(&on.metrics().misses), 0);
    let ttl = on.effective(&CacheDirectives {
        ttl: Some(Duration::from_secs(5)),
        ..Default::default()
    });
    assert_eq!(ttl.ttl, Duration::from_secs(5));
}

#[tokio::test]
async fn failed_answers_are_not_stored() {
    let c = cache(CacheMode::Exact);
    let key = key_of(&c, "hi");
    for status in [400, 429, 500, 503] {
        assert!(c.store(key, answer(status), None).is_none());
    }
    assert_eq!(
        c.lookup(&CacheDirectives::default(), &key).await,
        Lookup::Miss
    );
    assert_eq!(count(&c.metrics().stores), 0);
}

#[tokio::test]
async fn a_dead_store_is_a_counted_miss() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let config = CacheConfig {
        mode: CacheMode::Exact,
        store: CacheStoreConfig::Redis { url },
        ..CacheConfig::default()
    };
    let c = ResponseCache::from_config(config, std::path::Path::new(".")).unwrap();
    let key = key_of(&c, "hi");
    assert_eq!(
        c.lookup(&CacheDirectives::default(), &key).await,
        Lookup::Miss
    );
    c.store(key, answer(200), None).unwrap().await.unwrap();
    let m = c.metrics();
    assert_eq!(
        (count(&m.misses), count(&m.errors), count(&m.stores)),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn redis_backed_cache_serves_other_replicas() {
    let server = RedisServer::start();
    let replica = || {
        ResponseCache::from_config(
            CacheConfig {
                mode: CacheMode::Exact,
                store: CacheStoreConfig::Redis { url: server.url() },
                ..CacheConfig::default()
            },
            std::path::Path::new("."),
        )
        .unwrap()
    };
    let (a, b) = (replica(), replica());
    let key = key_of(&a, "hi");
    a.store(key, answer(200), None).unwrap().await.unwrap();
    match b.lookup(&CacheDirectives::default(), &key).await {
        Lookup::Hit(e) => assert_eq!(e.body, answer(200).body),
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn semantic_mode_without_an_embedder_does_not_start() {
    let err = ResponseCache::from_config(
        CacheConfig {
            mode: CacheMode::Semantic,
            ..CacheConfig::default()
        },
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(err.contains("needs `cache.embedder"), "{err}");
}
