//! Retries and key rotation against faulty mock providers.

use serde_json::json;
use tollgate_e2e::{get, post_json, Gateway, Mock};

fn config(mock: &Mock, retries: &str, keys: &str) -> String {
    format!(
        "providers:
  - {{name: p, kind: openai_compatible, base_url: {}, timeout: 300ms, retries: {retries}, keys: [{keys}]}}
virtual_keys: [{{id: vk, key: k}}]
",
        mock.base_url()
    )
}

fn chat(gw: &Gateway) -> tollgate_e2e::Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
}

#[test]
fn a_500_then_success_is_retried_invisibly() {
    let mock = Mock::start(&["--fail-first", "2", "--fail-status", "500"]);
    let gw = Gateway::start(&config(
        &mock,
        "{max: 2, backoff: 10ms}",
        "{name: main, key: sk-1}",
    ));
    let r = chat(&gw);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-attempts"), Some("3"));
    assert_eq!(mock.requests().len(), 3);
    let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        m.contains("tollgate_retries_total{provider=\"p\"} 2"),
        "{m}"
    );
}

#[test]
fn a_refused_key_rotates_to_the_next() {
    let mock = Mock::start(&["--fail-keys", "sk-bad"]);
    let gw = Gateway::start(&config(
        &mock,
        "{max: 1, backoff: 10ms}",
        "{name: first, key: sk-bad, weight: 1000000}, {name: second, key: sk-good, weight: 1}",
    ));
    let r = chat(&gw);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen: Vec<String> = mock
        .requests()
        .iter()
        .map(|q| q["headers"]["authorization"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["Bearer sk-bad", "Bearer sk-good"]);
}

#[test]
fn every_attempt_is_listed_when_all_fail() {
    let mock = Mock::start(&["--fail-rate", "1", "--fail-status", "503"]);
    let gw = Gateway::start(&config(
        &mock,
        "{max: 2, backoff: 5ms}",
        "{name: main, key: sk-1}",
    ));
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (502, "upstream_error"),
        "{}",
        r.body
    );
    let attempts = r.json()["error"]["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert!(attempts
        .iter()
        .all(|a| a["status"] == 503 && a["key"] == "main"));
    assert!(!r.body.contains("sk-1"));
}

#[test]
fn retries_respect_the_provider_timeout_and_end_in_504() {
    let mock = Mock::start(&["--latency", "10s"]);
    let gw = Gateway::start(&config(&mock, "{max: 1, backoff: 5ms}", "{key: sk-1}"));
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (504, "upstream_timeout"),
        "{}",
        r.body
    );
    assert_eq!(
        r.json()["error"]["attempts"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(r.total < std::time::Duration::from_secs(5), "{:?}", r.total);
}

#[test]
fn client_errors_are_not_retried() {
    let mock = Mock::start(&["--fail-rate", "1", "--fail-status", "400"]);
    let gw = Gateway::start(&config(&mock, "{max: 3, backoff: 5ms}", "{key: sk-1}"));
    assert_eq!(chat(&gw).status, 400);
    assert_eq!(mock.requests().len(), 1);
}
