//! OpenAI-compatible traffic through the real gateway to a mock provider.

use serde_json::json;
use tollgate_e2e::{get, post_json, Gateway, Mock};

const VK: &str = "vk-secret-alpha";

fn config(mock: &Mock, extra_provider: Option<&Mock>) -> String {
    let mut text = format!(
        "providers:
  - name: mock
    kind: openai_compatible
    base_url: {}
    keys: [{{name: primary, key: sk-provider-one}}]
    models: [gpt-4o-mini, text-embedding-3-small]
",
        mock.base_url()
    );
    if let Some(second) = extra_provider {
        text.push_str(&format!(
            "  - {{name: second, kind: openai_compatible, base_url: {}, models: [gpt-4o-mini], keys: [{{key: sk-provider-two}}]}}\n",
            second.base_url()
        ));
    }
    text.push_str(&format!(
        "virtual_keys:
  - {{id: vk-alpha, key: {VK}, models: [gpt-4o-mini, text-embedding-3-small]}}
"
    ));
    text
}

fn chat(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello to the gateway"}]})
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer vk-secret-alpha")]
}

#[test]
fn non_stream_answer_arrives_intact_with_gateway_headers() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let via_gateway = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &chat("gpt-4o-mini", false),
    );
    assert_eq!(via_gateway.status, 200, "{}", via_gateway.body);
    let direct = post_json(
        &format!("{}/v1/chat/completions", mock.url),
        &[],
        &chat("gpt-4o-mini", false),
    );
    let (a, b) = (via_gateway.json(), direct.json());
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(a["usage"], b["usage"]);
    assert_eq!(a["model"], "gpt-4o-mini");
    assert_eq!(via_gateway.header("x-tollgate-provider"), Some("mock"));
    assert_eq!(via_gateway.header("x-tollgate-model"), Some("gpt-4o-mini"));
    assert_eq!(via_gateway.header("x-tollgate-attempts"), Some("1"));
    assert_eq!(
        via_gateway.header("x-tollgate-request-id").map(str::len),
        Some(32)
    );
}

#[test]
fn upstream_sees_the_provider_key_and_never_the_virtual_key() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let headers = [
        ("authorization", "Bearer vk-secret-alpha"),
        ("x-custom-trace", "vk-secret-alpha"),
    ];
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &headers,
        &chat("gpt-4o-mini", false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = mock.requests();
    let last = seen.last().expect("mock saw the request");
    assert_eq!(last["headers"]["authorization"], "Bearer sk-provider-one");
    let everything = last.to_string();
    assert!(
        !everything.contains(VK),
        "virtual key leaked upstream: {everything}"
    );
}

#[test]
fn stream_is_relayed_chunk_by_chunk() {
    let mock = Mock::start(&["--stream-chunks", "4", "--chunk-delay", "300ms"]);
    let gw = Gateway::start(&config(&mock, None));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &chat("gpt-4o-mini", true),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/event-stream"));
    let events: Vec<&str> = r
        .body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .collect();
    assert_eq!(events.last().map(|e| e.trim()), Some("data: [DONE]"));
    let content: String = events
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("chunk is JSON"))
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let direct = post_json(
        &format!("{}/v1/chat/completions", mock.url),
        &[],
        &chat("gpt-4o-mini", false),
    );
    assert_eq!(
        content,
        direct.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
    );
    // A buffering proxy would deliver the first byte only when the whole ~1.2 s stream is done.
    assert!(
        r.first_byte_after + std::time::Duration::from_millis(600) < r.total,
        "first byte after {:?}, whole stream {:?}: the stream was buffered",
        r.first_byte_after,
        r.total
    );
}

#[test]
fn provider_prefix_is_stripped_before_upstream() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &chat("mock/gpt-4o-mini", false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body: serde_json::Value =
        serde_json::from_str(mock.requests().last().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["messages"][0]["content"], "Say hello to the gateway");
}

#[test]
fn bare_model_is_split_across_the_keys_providers() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, Some(&b)));
    let mut seen = std::collections::HashMap::new();
    for _ in 0..40 {
        let r = post_json(
            &format!("{}/v1/chat/completions", gw.url),
            &auth(),
            &chat("gpt-4o-mini", false),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        *seen
            .entry(r.header("x-tollgate-provider").unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        2,
        "both providers should serve an equal-weight split: {seen:?}"
    );
    assert_eq!(
        b.requests().last().unwrap()["headers"]["authorization"],
        "Bearer sk-provider-two"
    );
}

#[test]
fn embeddings_are_proxied() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let r = post_json(&format!("{}/v1/embeddings", gw.url), &auth(), &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"].as_array().map(Vec::len), Some(2));
    assert!(mock.requests().last().unwrap()["path"]
        .as_str()
        .unwrap()
        .ends_with("/v1/embeddings"));
}

#[test]
fn models_lists_what_the_key_may_use() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let r = get(&format!("{}/v1/models", gw.url), &auth());
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small"]);
    assert_eq!(get(&format!("{}/v1/models", gw.url), &[]).status, 401);
}

#[test]
fn openai_prefixed_paths_are_aliases() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    let r = post_json(
        &format!("{}/openai/v1/chat/completions", gw.url),
        &auth(),
        &chat("gpt-4o-mini", false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(&format!("{}/openai/v1/models", gw.url), &auth()).status,
        200
    );
}

#[test]
fn health_endpoints_answer() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    assert_eq!(
        get(&format!("{}/healthz", gw.url), &[]).json()["status"],
        "ok"
    );
    assert_eq!(
        get(&format!("{}/readyz", gw.url), &[]).json()["status"],
        "ready"
    );
}

#[test]
fn every_key_header_form_authenticates() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, None));
    for header in ["x-tollgate-key", "x-api-key", "x-goog-api-key", "api-key"] {
        let r = post_json(
            &format!("{}/v1/chat/completions", gw.url),
            &[(header, VK)],
            &chat("gpt-4o-mini", false),
        );
        assert_eq!(r.status, 200, "{header}: {}", r.body);
    }
}

#[test]
fn anonymous_callers_pass_when_auth_is_not_required() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "auth: {{required: false}}\n{}",
        config(&mock, None)
    ));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[],
        &chat("mock/gpt-4o-mini", false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
