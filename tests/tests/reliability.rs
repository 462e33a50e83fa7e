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
fn a_429_rotates_to_the_providers_next_key() {
    let mock = Mock::start(&["--fail-keys", "sk-bad", "--fail-keys-status", "429"]);
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
fn a_revoked_key_rotates_too() {
    let mock = Mock::start(&["--fail-keys", "sk-bad"]);
    let gw = Gateway::start(&config(
        &mock,
        "{max: 1, backoff: 10ms}",
        "{name: first, key: sk-bad, weight: 1000000}, {name: second, key: sk-good, weight: 1}",
    ));
    assert_eq!(chat(&gw).status, 200);
    assert_eq!(
        mock.requests()[0]["headers"]["authorization"],
        "Bearer sk-bad"
    );
    assert_eq!(
        mock.requests()[1]["headers"]["authorization"],
        "Bearer sk-good"
    );
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

fn two_providers(bad: &Mock, good: &Mock) -> String {
    format!(
        "providers:
  - {{name: bad, kind: openai_compatible, base_url: {}, retries: {{max: 1, backoff: 5ms}}, keys: [{{name: kb, key: sk-b}}]}}
  - {{name: good, kind: openai_compatible, base_url: {}, retries: {{max: 1, backoff: 5ms}}}}
virtual_keys:
  - {{id: vk, key: k, providers: [{{provider: bad, weight: 1000000}}, {{provider: good, weight: 1}}]}}
",
        bad.base_url(),
        good.base_url()
    )
}

fn chat_body(gw: &Gateway, body: serde_json::Value) -> tollgate_e2e::Reply {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k")],
        &body,
    )
}

#[test]
fn body_fallbacks_serve_when_the_primary_fails() {
    let (bad, good) = (
        Mock::start(&["--fail-rate", "1", "--fail-status", "500"]),
        Mock::start(&[]),
    );
    let gw = Gateway::start(&two_providers(&bad, &good));
    let r = chat_body(
        &gw,
        json!({"model": "bad/m", "fallbacks": ["good/m2"], "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.header("x-tollgate-provider"),
            r.header("x-tollgate-model")
        ),
        (Some("good"), Some("m2"))
    );
    assert_eq!(
        r.header("x-tollgate-attempts"),
        Some("3"),
        "two on bad, one on good"
    );
    let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        m.contains("tollgate_fallbacks_total{from=\"bad\",to=\"good\"} 1\n"),
        "{m}"
    );
}

#[test]
fn the_remaining_weighted_providers_are_the_last_fallback() {
    let (bad, good) = (
        Mock::start(&["--fail-rate", "1", "--fail-status", "503"]),
        Mock::start(&[]),
    );
    let gw = Gateway::start(&two_providers(&bad, &good));
    let r = chat_body(
        &gw,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("good"));
}

#[test]
fn a_stream_falls_back_before_its_first_byte() {
    let (bad, good) = (
        Mock::start(&["--fail-rate", "1", "--fail-status", "500"]),
        Mock::start(&[]),
    );
    let gw = Gateway::start(&two_providers(&bad, &good));
    let r = chat_body(
        &gw,
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("good"));
    assert!(r.body.trim_end().ends_with("data: [DONE]"), "{}", r.body);
}

#[test]
fn when_every_target_fails_all_attempts_are_listed() {
    let bad = Mock::start(&["--fail-rate", "1", "--fail-status", "500"]);
    let also_bad = Mock::start(&["--fail-rate", "1", "--fail-status", "502"]);
    let gw = Gateway::start(&two_providers(&bad, &also_bad));
    let r = chat_body(
        &gw,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (502, "upstream_error"),
        "{}",
        r.body
    );
    let attempts = r.json()["error"]["attempts"].as_array().unwrap().clone();
    let providers: Vec<&str> = attempts
        .iter()
        .map(|a| a["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["bad", "bad", "good", "good"]);
    assert_eq!(r.header("x-tollgate-request-id").map(str::len), Some(32));
}

#[test]
fn a_failing_provider_is_skipped_then_trusted_again_after_it_recovers() {
    // `bad` fails its first 6 requests, then recovers. The cool-down outlasts the checks made
    // while the circuit is open, even on a loaded machine.
    let (bad, good) = (
        Mock::start(&["--fail-first", "6", "--fail-status", "500"]),
        Mock::start(&["--latency", "40ms"]),
    );
    let gw = Gateway::start(&format!(
        "providers:
  - {{name: bad, kind: openai_compatible, base_url: {}, retries: {{max: 0}}, health: {{failure_threshold: 0.5, min_requests: 3, cooldown: 3s, probe_share: 1.0}}}}
  - {{name: good, kind: openai_compatible, base_url: {}, retries: {{max: 0}}}}
virtual_keys:
  - {{id: vk, key: k, providers: [{{provider: bad, weight: 1000000}}, {{provider: good, weight: 1}}]}}
",
        bad.base_url(),
        good.base_url()
    ));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    // Three failures (each served by the fallback to `good`) open bad's circuit.
    for _ in 0..3 {
        assert_eq!(chat_body(&gw, body.clone()).status, 200);
    }
    let health = get(&format!("{}/admin/health", gw.admin_url), &[]).json();
    assert_eq!(health["providers"][0]["circuit"], "open", "{health}");
    // The window's outcomes and latency: bad failed three times; good served three answers,
    // each after the mock's 40 ms.
    let (bad_h, good_h) = (&health["providers"][0], &health["providers"][1]);
    assert_eq!(
        (&bad_h["ok"], &bad_h["failed"]),
        (&json!(0), &json!(3)),
        "{health}"
    );
    assert!(bad_h["latency_ms"].is_null(), "{health}");
    assert_eq!(
        (&good_h["ok"], &good_h["failed"]),
        (&json!(3), &json!(0)),
        "{health}"
    );
    let latency = good_h["latency_ms"].as_f64().expect("a mean latency");
    assert!((40.0..1000.0).contains(&latency), "{health}");
    let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        m.contains("tollgate_provider_healthy{provider=\"bad\"} 0"),
        "{m}"
    );
    // While open, requests go straight to `good`: bad sees nothing new.
    let before = bad.requests().len();
    for _ in 0..3 {
        let r = chat_body(&gw, body.clone());
        assert_eq!(
            (r.status, r.header("x-tollgate-attempts")),
            (200, Some("1"))
        );
    }
    assert_eq!(bad.requests().len(), before);
    // After the cool-down, probes reach `bad`; once it answers again, it is trusted again.
    let recovered = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        chat_body(&gw, body.clone());
        get(&format!("{}/admin/health", gw.admin_url), &[]).json()["providers"][0]["circuit"]
            == "closed"
    });
    assert!(
        recovered,
        "bad came back: {}",
        get(&format!("{}/admin/health", gw.admin_url), &[]).body
    );
    assert_eq!(
        chat_body(&gw, body.clone()).header("x-tollgate-provider"),
        Some("bad")
    );
}

fn key_health(gw: &Gateway) -> serde_json::Value {
    get(&format!("{}/admin/health", gw.admin_url), &[]).json()["providers"][0]["keys"].clone()
}

fn authorizations(mock: &Mock) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|q| {
            q["headers"]["authorization"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_refused_or_rate_limited_key_is_benched_and_skipped() {
    for status in ["429", "401"] {
        let mock = Mock::start(&["--fail-keys", "sk-bad", "--fail-keys-status", status]);
        let gw = Gateway::start(&config(
            &mock,
            "{max: 1, backoff: 5ms}",
            "{name: first, key: sk-bad, weight: 1000000}, {name: second, key: sk-good, weight: 1}",
        ));
        assert_eq!(chat(&gw).status, 200);
        // Routing still prefers `first` by weight, but it is benched: straight to `second`.
        for _ in 0..3 {
            let r = chat(&gw);
            assert_eq!(
                (r.status, r.header("x-tollgate-attempts")),
                (200, Some("1"))
            );
        }
        assert_eq!(
            authorizations(&mock),
            [
                "Bearer sk-bad",
                "Bearer sk-good",
                "Bearer sk-good",
                "Bearer sk-good",
                "Bearer sk-good"
            ],
            "{status}"
        );
        let health = get(&format!("{}/admin/health", gw.admin_url), &[]);
        let keys = health.json()["providers"][0]["keys"].clone();
        assert_eq!(keys[0]["key"], "first", "{keys}");
        assert_eq!(
            (&keys[0]["circuit"], &keys[0]["healthy"]),
            (&"open".into(), &false.into())
        );
        assert_eq!(keys[1]["circuit"], "closed", "{keys}");
        assert_eq!(
            health.json()["providers"][0]["circuit"],
            "closed",
            "a key problem"
        );
        assert!(!health.body.contains("sk-"), "no secret: {}", health.body);
        let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
        assert!(
            m.contains("tollgate_provider_key_healthy{provider=\"p\",key=\"first\"} 0"),
            "{m}"
        );
        // A reload keeps the bench.
        assert_eq!(
            tollgate_e2e::post_json(&format!("{}/admin/reload", gw.admin_url), &[], &json!({}))
                .status,
            200
        );
        assert_eq!(key_health(&gw)[0]["circuit"], "open");
        assert_eq!(chat(&gw).header("x-tollgate-attempts"), Some("1"));
    }
}

#[test]
fn when_every_key_is_benched_they_are_used_anyway() {
    // The first two calls are rate limited whatever the key; then the provider answers.
    let mock = Mock::start(&["--fail-first", "2", "--fail-status", "429"]);
    let gw = Gateway::start(&config(
        &mock,
        "{max: 2, backoff: 5ms, max_backoff: 10ms}",
        "{name: a, key: sk-a}, {name: b, key: sk-b}",
    ));
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.header("x-tollgate-attempts")),
        (200, Some("3")),
        "{}",
        r.body
    );
    let keys = key_health(&gw);
    assert_eq!(
        (&keys[0]["circuit"], &keys[1]["circuit"]),
        (&"open".into(), &"open".into()),
        "{keys}"
    );
    // Both benched: the request is served rather than refused.
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.header("x-tollgate-attempts")),
        (200, Some("1")),
        "{}",
        r.body
    );
}

#[test]
fn a_key_that_keeps_failing_is_benched_while_the_other_serves() {
    // Only `sk-bad` gets 500s: the provider is fine, one key is not.
    let mock = Mock::start(&["--fail-keys", "sk-bad", "--fail-keys-status", "500"]);
    let gw = Gateway::start(&format!(
        "providers:
  - {{name: p, kind: openai_compatible, base_url: {}, retries: {{max: 3, backoff: 5ms}}, health: {{min_requests: 3}}, keys: [{{name: bad, key: sk-bad, weight: 1000000}}, {{name: good, key: sk-good, weight: 1}}]}}
virtual_keys: [{{id: vk, key: k}}]
",
        mock.base_url()
    ));
    // Three 500s on `bad` bench it; the fourth attempt moves to `good`.
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.header("x-tollgate-attempts")),
        (200, Some("4")),
        "{}",
        r.body
    );
    let keys = key_health(&gw);
    assert_eq!(
        (&keys[0]["circuit"], &keys[1]["circuit"]),
        (&"open".into(), &"closed".into()),
        "{keys}"
    );
    let r = chat(&gw);
    assert_eq!(
        (r.status, r.header("x-tollgate-attempts")),
        (200, Some("1"))
    );
    assert_eq!(
        authorizations(&mock).last().map(String::as_str),
        Some("Bearer sk-good")
    );
}
