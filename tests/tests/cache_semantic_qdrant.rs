//! The semantic cache shared through a Qdrant collection (`index: {kind: qdrant}`). No Qdrant
//! server is installable from the package registries this project builds from, so this runs
//! against the server `QDRANT_URL` names (its gRPC port, e.g. `http://127.0.0.1:6334`) and
//! says it was skipped otherwise; docs/BENCHMARKS.md and the README say how to run it.
#![cfg(feature = "semantic")]

use serde_json::json;
use tollgate_e2e::{embedder_dir, get, post_json, Gateway, Mock, RedisServer};

fn qdrant_url() -> Option<String> {
    let url = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("QDRANT_URL is not set: the Qdrant index test did not run");
    }
    url
}

fn ask(gw: &Gateway, key: &str, text: &str) -> String {
    let auth = format!("Bearer {key}");
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", auth.as_str())],
        &json!({"model": "m", "messages": [{"role": "user", "content": text}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-tollgate-cache").unwrap_or("none").to_string()
}

#[test]
fn a_paraphrase_at_one_gateway_is_answered_from_what_another_stored_via_qdrant() {
    let Some(qdrant) = qdrant_url() else { return };
    let redis = RedisServer::start();
    let mock = Mock::start(&[]);
    // A collection of its own per run, so earlier runs' points never answer.
    let collection = format!("tollgate_test_{}", std::process::id());
    let config = format!(
        "cache:
  mode: semantic
  threshold: 0.8
  embedder: {{kind: fastembed, model_dir: '{}'}}
  store: {{kind: redis, url: '{}'}}
  index: {{kind: qdrant, url: '{qdrant}', collection: {collection}}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
virtual_keys:
  - {{id: vk-a, key: key-a}}
  - {{id: vk-b, key: key-b}}
",
        embedder_dir().display(),
        redis.url(),
        mock.base_url()
    );
    let (one, two) = (Gateway::start(&config), Gateway::start(&config));
    assert_eq!(ask(&one, "key-a", "How do I reset my password?"), "miss");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = get(&format!("{}/metrics", one.admin_url), &[]).body;
        if metrics.contains("tollgate_cache_stores_total 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The point is written after the answer; Qdrant makes it searchable shortly after.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = ask(&two, "key-a", "How can I reset my password?");
        if seen == "hit-semantic" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(seen, "hit-semantic");
    assert_eq!(ask(&two, "key-b", "How can I reset my password?"), "miss");
    assert_eq!(ask(&one, "key-a", "What is the capital of France?"), "miss");
}

#[test]
fn a_qdrant_index_beside_in_process_answers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        "cache:
  mode: semantic
  embedder: {kind: fastembed, model_dir: ./m}
  index: {kind: qdrant, url: 'http://127.0.0.1:6334'}
",
    )
    .unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("store: {kind: redis"), "{said}");
}

#[test]
fn qdrant_down_turns_lookups_into_misses_not_failures() {
    // Nothing listens on this port: every index call fails fast, the requests still succeed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = RedisServer::start();
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "cache:
  mode: semantic
  embedder: {{kind: fastembed, model_dir: '{}'}}
  store: {{kind: redis, url: '{}'}}
  index: {{kind: qdrant, url: 'http://127.0.0.1:{port}'}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
virtual_keys:
  - {{id: vk-a, key: key-a}}
",
        embedder_dir().display(),
        redis.url(),
        mock.base_url()
    ));
    assert_eq!(ask(&gw, "key-a", "How do I reset my password?"), "miss");
    assert_eq!(ask(&gw, "key-a", "How can I reset my password?"), "miss");
    assert_eq!(mock.requests().len(), 2);
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        !metrics.contains("tollgate_cache_total{result=\"error\"} 0"),
        "{metrics}"
    );
}
