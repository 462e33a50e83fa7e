use super::*;
use crate::cache::{CacheConfig, CacheDirectives, CacheMode, CachedUsage, Lookup, ScopeId};
use serde_json::json;
use std::time::Duration;

fn exact_cache() -> ResponseCache {
    let config = CacheConfig {
        mode: CacheMode::Exact,
        ..CacheConfig::default()
    };
    ResponseCache::from_config(config, Path::new(".")).unwrap()
}

fn answer(text: &str, ttl: Duration) -> Entry {
    Entry {
        status: 200,
        content_type: Some("application/json".into()),
        body: Bytes::from(format!(
            r#"{{"choices":[{{"message":{{"content":"{text}"}}}}]}}"#
        )),
        stream: false,
        usage: CachedUsage {
            prompt_tokens: 9,
            completion_tokens: 1,
        },
        created_at_ms: unix_ms_now(),
        ttl,
        provider: "openai".into(),
        model: "gpt-4o".into(),
    }
}

fn key(c: &ResponseCache, question: &str) -> crate::cache::CacheKey {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": question}]});
    c.key(
        "/v1/chat/completions",
        "gpt-4o",
        &body,
        ScopeId::Key("vk"),
        None,
    )
}

#[tokio::test]
async fn answers_survive_a_save_and_restore_and_expired_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json.cache");
    let before = exact_cache();
    let (paris, rome) = (key(&before, "France?"), key(&before, "Italy?"));
    before.store(paris, answer("Paris", Duration::from_secs(60)), None);
    before.store(rome, answer("Rome", Duration::from_millis(1)), None);
    std::thread::sleep(Duration::from_millis(5));
    let saved = before.save_to(&file).unwrap();
    assert_eq!(
        saved,
        Persisted {
            answers: 1,
            vectors: 0
        }
    );

    let after = exact_cache();
    let restored = after.restore_from(&file).unwrap();
    assert_eq!(
        restored,
        Some(Persisted {
            answers: 1,
            vectors: 0
        })
    );
    let on = CacheDirectives::default();
    let Lookup::Hit(hit) = after.lookup(&on, &paris).await else {
        panic!("the saved answer is served after the restart");
    };
    assert_eq!(hit.body, answer("Paris", Duration::ZERO).body);
    assert_eq!(after.lookup(&on, &rome).await, Lookup::Miss);
}

#[test]
fn no_file_is_a_first_start_and_a_damaged_file_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c");
    let c = exact_cache();
    assert_eq!(c.restore_from(&file).unwrap(), None);

    c.store(key(&c, "q"), answer("a", Duration::from_secs(60)), None);
    c.save_to(&file).unwrap();
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    std::fs::write(&file, &flipped).unwrap();
    let err = exact_cache().restore_from(&file).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");

    std::fs::write(&file, &good[..good.len() - 3]).unwrap();
    let err = exact_cache().restore_from(&file).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");

    std::fs::write(&file, b"{\"version\": 1}").unwrap();
    let err = exact_cache().restore_from(&file).unwrap_err().to_string();
    assert!(err.contains("not a tollgate cache file"), "{err}");
}

#[test]
fn the_cache_file_sits_beside_the_snapshot() {
    assert_eq!(
        cache_file_for(Path::new("/var/lib/tollgate/state.json")),
        Path::new("/var/lib/tollgate/state.json.cache")
    );
}
