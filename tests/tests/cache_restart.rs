//! The in-process response cache outlives a restart when `state.snapshot_file` is set: the
//! answers and the semantic index are saved beside the usage snapshot at shutdown and loaded
//! at start, so repeated and paraphrased questions are still answered without a provider call.
//! A damaged cache file never keeps the gateway from starting.

use serde_json::{json, Value};
use tollgate_e2e::{post_json, Gateway, Mock};

fn config(mock: &Mock, snapshot: &std::path::Path, cache: &str) -> String {
    format!(
        "state: {{kind: memory, snapshot_file: '{}'}}
cache: {cache}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
virtual_keys:
  - {{id: vk, key: key-a}}
",
        snapshot.display(),
        mock.base_url()
    )
}

fn ask(gw: &Gateway, text: &str) -> tollgate_e2e::Reply {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer key-a")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn cache_of(r: &tollgate_e2e::Reply) -> &str {
    r.header("x-tollgate-cache").unwrap_or("none")
}

fn answer_of(r: &tollgate_e2e::Reply) -> Value {
    r.json()["choices"].clone()
}

#[test]
fn exact_answers_are_served_after_a_restart_without_a_provider_call() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");
    let cfg = config(&mock, &snapshot, "{mode: exact, ttl: 1h}");

    let gw = Gateway::start(&cfg);
    let first = ask(&gw, "What is a gateway?");
    assert_eq!(cache_of(&first), "miss");
    gw.stop();
    assert!(
        dir.path().join("state.json.cache").exists(),
        "cache saved beside the snapshot at shutdown"
    );

    let gw = Gateway::start(&cfg);
    let again = ask(&gw, "What is a gateway?");
    assert_eq!(cache_of(&again), "hit-exact", "{:?}", again.headers);
    assert_eq!(answer_of(&again), answer_of(&first));
    assert_eq!(
        mock.requests().len(),
        1,
        "only the first request reached the provider"
    );
    // A different question still goes upstream.
    assert_eq!(cache_of(&ask(&gw, "What is a proxy?")), "miss");
}

#[test]
fn a_damaged_cache_file_is_moved_aside_and_the_gateway_starts_empty() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");
    let file = dir.path().join("state.json.cache");
    let cfg = config(&mock, &snapshot, "{mode: exact, ttl: 1h}");

    let gw = Gateway::start(&cfg);
    ask(&gw, "What is a gateway?");
    gw.stop();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let gw = Gateway::start(&cfg);
    assert_eq!(cache_of(&ask(&gw, "What is a gateway?")), "miss");
    let log = gw.stop_and_output();
    assert!(
        log.contains("response cache not restored") && log.contains("checksum mismatch"),
        "{log}"
    );
    let aside = dir.path().join("state.json.cache.unreadable");
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        bytes,
        "the damaged file is kept for a look"
    );
    // The answer given since was saved into a fresh, readable file.
    let gw = Gateway::start(&cfg);
    assert_eq!(cache_of(&ask(&gw, "What is a gateway?")), "hit-exact");
}

#[cfg(feature = "semantic")]
#[test]
fn paraphrases_hit_the_restored_semantic_index() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");
    let cache = format!(
        "{{mode: semantic, threshold: 0.8, embedder: {{kind: fastembed, model_dir: '{}'}}}}",
        tollgate_e2e::embedder_dir().display()
    );
    let cfg = config(&mock, &snapshot, &cache);

    let gw = Gateway::start(&cfg);
    let first = ask(&gw, "How do I reset my password?");
    assert_eq!(cache_of(&first), "miss");
    gw.stop();

    let gw = Gateway::start(&cfg);
    let again = ask(&gw, "How can I reset my password?");
    assert_eq!(cache_of(&again), "hit-semantic", "{:?}", again.headers);
    assert_eq!(answer_of(&again), answer_of(&first));
    assert_eq!(mock.requests().len(), 1);
}
