//! Every error row of the contract, with its status and `type`, through the real gateway.

use serde_json::json;
use tollgate_e2e::{post_json, post_raw, Gateway, Mock};

const AUTH: [(&str, &str); 1] = [("authorization", "Bearer vk-good")];

fn config(base_url: &str, timeout: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0, max_body_bytes: 2KiB}}
providers:
  - {{name: mock, kind: openai_compatible, base_url: {base_url}, timeout: {timeout}, keys: [{{name: main, key: sk-up}}]}}
virtual_keys:
  - {{id: vk-good, key: vk-good, models: [gpt-4o-mini]}}
  - {{id: vk-off, key: vk-off, disabled: true}}
  - {{id: vk-old, key: vk-old, expires_at: 2020-01-01T00:00:00Z}}
"
    )
}

/// A mock started with `mock_args` behind a gateway whose provider times out after `timeout`.
fn setup(mock_args: &[&str], timeout: &str) -> (Mock, Gateway) {
    let mock = Mock::start(mock_args);
    let gw = Gateway::start(&config(&mock.base_url(), timeout));
    (mock, gw)
}

fn chat() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

fn url(gw: &Gateway) -> String {
    format!("{}/v1/chat/completions", gw.url)
}

#[test]
fn request_errors() {
    let (mock, gw) = setup(&[], "5s");

    let r = post_raw(
        &url(&gw),
        &AUTH,
        b"{\"model\": \"gpt-4o-mini\",\n \"messages\": [}",
    );
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "invalid_request")
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{}",
        r.body
    );

    let r = post_json(&url(&gw), &AUTH, &json!({"messages": []}));
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "invalid_request")
    );
    assert!(r.body.contains("`model`"));

    let r = post_json(&url(&gw), &AUTH, &json!({"model": "gpt-4o-mini"}));
    assert!(r.body.contains("`messages`"), "{}", r.body);

    let r = post_json(&url(&gw), &AUTH, &json!({"model": 4, "messages": []}));
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (400, "invalid_request")
    );

    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let r = post_json(&url(&gw), &AUTH, &big);
    assert_eq!((r.status, r.error_type().as_str()), (413, "body_too_large"));

    assert!(
        mock.requests().is_empty(),
        "no refused request may reach the provider"
    );
}

#[test]
fn key_errors() {
    let (_mock, gw) = setup(&[], "5s");
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, u16, &str); 5] = [
        (&[], 401, "missing_key"),
        (&[("authorization", "Bearer not-a-key")], 401, "invalid_key"),
        (&[("authorization", "Bearer vk-off")], 401, "invalid_key"),
        (&[("authorization", "Bearer vk-old")], 401, "invalid_key"),
        (&[("x-api-key", "vk-good")], 200, ""),
    ];
    for (headers, status, kind) in cases {
        let r = post_json(&url(&gw), headers, &chat());
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        if status != 200 {
            assert_eq!(r.error_type(), kind, "{headers:?}");
        }
    }
    let r = post_json(&url(&gw), &[("authorization", "Bearer vk-old")], &chat());
    assert!(
        r.body.contains("expired at 2020-01-01T00:00:00Z"),
        "{}",
        r.body
    );
}

#[test]
fn model_not_allowed_names_the_model() {
    let (mock, gw) = setup(&[], "5s");
    let r = post_json(
        &url(&gw),
        &AUTH,
        &json!({"model": "gpt-4o", "messages": []}),
    );
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (403, "model_not_allowed")
    );
    assert_eq!(r.json()["error"]["model"], "gpt-4o");
    assert!(mock.requests().is_empty());
}

#[test]
fn upstream_failure_is_502_listing_the_attempt() {
    let (_mock, gw) = setup(&["--fail-rate", "1", "--fail-status", "500"], "5s");
    let r = post_json(&url(&gw), &AUTH, &chat());
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (502, "upstream_error"),
        "{}",
        r.body
    );
    let attempt = &r.json()["error"]["attempts"][0];
    assert_eq!(attempt["provider"], "mock");
    assert_eq!(attempt["status"], 500);
    assert_eq!(attempt["key"], "main");
    assert!(!r.body.contains("sk-up"), "provider key leaked: {}", r.body);
}

#[test]
fn unreachable_provider_is_502() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::start(&config(&format!("http://127.0.0.1:{port}/v1"), "5s"));
    let r = post_json(&url(&gw), &AUTH, &chat());
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (502, "upstream_error"),
        "{}",
        r.body
    );
    assert!(r.json()["error"]["attempts"][0]["status"].is_null());
}

#[test]
fn slow_provider_is_504_within_the_provider_timeout() {
    let (_mock, gw) = setup(&["--latency", "10s"], "300ms");
    let r = post_json(&url(&gw), &AUTH, &chat());
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (504, "upstream_timeout"),
        "{}",
        r.body
    );
    assert!(
        r.total < std::time::Duration::from_secs(5),
        "took {:?}",
        r.total
    );
}

#[test]
fn provider_client_errors_pass_through() {
    let (_mock, gw) = setup(&["--fail-rate", "1", "--fail-status", "400"], "5s");
    let r = post_json(&url(&gw), &AUTH, &chat());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.header("x-tollgate-provider"), Some("mock"));
}

#[test]
fn unknown_paths_are_404_json() {
    let (_mock, gw) = setup(&[], "5s");
    let r = post_json(&format!("{}/v2/nothing", gw.url), &AUTH, &chat());
    assert_eq!((r.status, r.error_type().as_str()), (404, "not_found"));
}
