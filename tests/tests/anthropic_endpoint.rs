//! Anthropic clients on `POST /anthropic/v1/messages` (what Claude Code and the `anthropic`
//! SDKs call): the gateway translates the request to OpenAI Chat at the door, runs its usual
//! pipeline, and answers (whole, streamed, or an error) in Anthropic's shape, whatever format
//! the provider speaks. The mock records what it received, so each test checks both sides.

use serde_json::{json, Value};
use tollgate_e2e::{post_json, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-anthropic-client";
const MODEL: &str = "claude-sonnet-4-6";

fn config(mock: &Mock, kind: &str, limits: &str) -> String {
    let (kind, base) = if kind == "anthropic" {
        ("kind: anthropic", mock.url.clone())
    } else {
        ("kind: openai", mock.base_url())
    };
    format!(
        "providers:
  - name: up
    {kind}
    base_url: {base}
    keys: [{{name: main, key: sk-up}}]
    retries: {{max: 0}}
virtual_keys:
  - {{id: vk-a, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}{limits}}}}}
"
    )
}

/// Runs a Python script with the official Anthropic SDK pointed at the gateway (`key` as its
/// API key); returns the JSON it prints on its last line.
fn sdk(gw: &Gateway, key: &str, body: &str) -> Value {
    let script = format!(
        "import json, anthropic\nclient = anthropic.Anthropic(base_url=\"{}/anthropic\", api_key=\"{key}\", max_retries=0)\n{body}",
        gw.url
    );
    python_json(&["anthropic"], &script)
}

const CREATE: &str = r#"
m = client.messages.create(model="MODEL", max_tokens=100, system="You are terse.",
    messages=[{"role": "user", "content": "Say hello to the gateway"}])
print(json.dumps({"type": m.type, "text": m.content[0].text, "stop": m.stop_reason,
    "usage": {"in": m.usage.input_tokens, "out": m.usage.output_tokens}}))
"#;

const STREAM: &str = r#"
with client.messages.stream(model="MODEL", max_tokens=100,
        messages=[{"role": "user", "content": "Tell me a story please"}]) as s:
    text = "".join(s.text_stream)
    m = s.get_final_message()
print(json.dumps({"text": text, "final": m.content[0].text, "stop": m.stop_reason,
    "usage": {"in": m.usage.input_tokens, "out": m.usage.output_tokens}}))
"#;

#[test]
fn sdk_create_reaches_an_openai_provider() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "openai", ""));
    let got = sdk(&gw, VK, &CREATE.replace("MODEL", MODEL));
    assert_eq!(got["type"], "message");
    assert_eq!(got["stop"], "end_turn");
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    let body = recorded_body(&seen[0]);
    assert_eq!(body["model"], MODEL);
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "You are terse."},
               {"role": "user", "content": "Say hello to the gateway"}])
    );
    // The same OpenAI request straight to the mock: its usage is what the client was told.
    let direct = post_json(&format!("{}/chat/completions", mock.base_url()), &[], &body).json();
    assert_eq!(got["usage"]["in"], direct["usage"]["prompt_tokens"]);
    assert_eq!(got["usage"]["out"], direct["usage"]["completion_tokens"]);
    assert!(got["usage"]["out"].as_u64().unwrap() > 0);
}

#[test]
fn sdk_stream_from_an_openai_provider_has_text_usage_and_is_charged() {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock, "openai", ""));
    let got = sdk(&gw, VK, &STREAM.replace("MODEL", MODEL));
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["text"], got["final"]);
    assert_eq!(got["stop"], "end_turn");
    let (input, output) = (
        got["usage"]["in"].as_u64().unwrap(),
        got["usage"]["out"].as_u64().unwrap(),
    );
    assert!(input > 0 && output > 0, "{got}");
    assert_eq!(
        gw.used("virtual_key:vk-a", "tokens"),
        json!(input + output),
        "the stream's usage is what was charged"
    );
    let body = recorded_body(&mock.requests()[0]);
    assert_eq!(body["stream"], true);
}

#[test]
fn sdk_tool_use_round_trip() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "openai", ""));
    let got = sdk(
        &gw,
        VK,
        &format!(
            r#"
tools = [{{"name": "get_weather", "description": "Weather of a city",
    "input_schema": {{"type": "object", "properties": {{"city": {{"type": "string"}}}}, "required": ["city"]}}}}]
ask = {{"role": "user", "content": "What is the weather in Paris?"}}
m = client.messages.create(model="{MODEL}", max_tokens=100, messages=[ask], tools=tools)
use = [b for b in m.content if b.type == "tool_use"][0]
follow = client.messages.create(model="{MODEL}", max_tokens=100, tools=tools, messages=[ask,
    {{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]}},
    {{"role": "user", "content": [{{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}}]}}])
print(json.dumps({{"stop": m.stop_reason, "name": use.name, "input": use.input, "id": use.id,
    "follow": follow.type}}))
"#
        ),
    );
    assert_eq!(got["stop"], "tool_use", "{got}");
    assert_eq!(got["name"], "get_weather");
    assert_eq!(got["input"], json!({"city": "Paris"}));
    assert_eq!(got["follow"], "message");
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        recorded_body(&seen[0])["tools"][0]["function"]["name"],
        "get_weather"
    );
    let follow = recorded_body(&seen[1]);
    let msgs = follow["messages"].as_array().unwrap();
    assert_eq!(msgs[1]["tool_calls"][0]["id"], got["id"], "{follow}");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], got["id"]);
}

#[test]
fn sdk_reaches_an_anthropic_provider_whole_and_streamed() {
    let mock = Mock::start(&["--format", "anthropic", "--stream-chunks", "3"]);
    let gw = Gateway::start(&config(&mock, "anthropic", ""));
    let whole = sdk(&gw, VK, &CREATE.replace("MODEL", MODEL));
    assert_eq!(whole["stop"], "end_turn");
    assert!(whole["text"].as_str().unwrap().starts_with("mock reply"));
    assert!(whole["usage"]["out"].as_u64().unwrap() > 0);
    let streamed = sdk(&gw, VK, &STREAM.replace("MODEL", MODEL));
    assert!(streamed["text"].as_str().unwrap().starts_with("mock reply"));
    assert_eq!(streamed["text"], streamed["final"]);
    assert!(streamed["usage"]["in"].as_u64().unwrap() > 0, "{streamed}");
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["path"], "/v1/messages");
    let body = recorded_body(&seen[0]);
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(recorded_body(&seen[1])["stream"], true);
}

#[test]
fn errors_take_the_anthropic_shape() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(
        &mock,
        "openai",
        ", requests: {limit: 1, window: 1h}",
    ));
    let url = format!("{}/anthropic/v1/messages", gw.url);
    let req = json!({"model": MODEL, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});

    let bad = post_json(&url, &[("x-api-key", "nope")], &req);
    assert_eq!(bad.status, 401);
    let v = bad.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert!(v["error"]["message"].as_str().is_some());

    let got = sdk(
        &gw,
        "nope",
        &format!(
            r#"
try:
    client.messages.create(model="{MODEL}", max_tokens=10, messages=[{{"role": "user", "content": "hi"}}])
    print(json.dumps({{"raised": None}}))
except anthropic.AuthenticationError as e:
    print(json.dumps({{"raised": "AuthenticationError", "status": e.status_code, "body": e.body}}))
"#
        ),
    );
    assert_eq!(got["raised"], "AuthenticationError", "{got}");
    assert_eq!(got["status"], 401);

    // The one request the key may make, then a refusal.
    let first = post_json(&url, &[("authorization", &format!("Bearer {VK}"))], &req);
    assert_eq!(first.status, 200, "{}", first.json());
    let limited = post_json(&url, &[("x-api-key", VK)], &req);
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    let v = limited.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");

    let malformed = post_raw_json(&url, b"{\"model\": ");
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["error"]["type"], "invalid_request_error");
}

fn post_raw_json(url: &str, body: &[u8]) -> tollgate_e2e::Reply {
    tollgate_e2e::post_raw(url, &[("x-api-key", VK)], body)
}

#[test]
fn count_tokens_estimates_after_auth() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "openai", ""));
    let url = format!("{}/anthropic/v1/messages/count_tokens", gw.url);
    let short = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let long = json!({"model": MODEL, "system": "Be brief.",
        "messages": [{"role": "user", "content": "a much longer question about many things"}]});
    let n = |body: &Value| {
        let r = post_json(&url, &[("x-api-key", VK)], body);
        assert_eq!(r.status, 200);
        r.json()["input_tokens"].as_u64().expect("input_tokens")
    };
    let (a, b) = (n(&short), n(&long));
    assert!(a > 0 && b > a, "{a} {b}");
    let denied = post_json(&url, &[("x-api-key", "nope")], &short);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["type"], "authentication_error");
    assert!(mock.requests().is_empty(), "nothing sent upstream");

    let got = sdk(
        &gw,
        VK,
        &format!(
            r#"
r = client.messages.count_tokens(model="{MODEL}", messages=[{{"role": "user", "content": "hi"}}])
print(json.dumps({{"n": r.input_tokens}}))
"#
        ),
    );
    assert_eq!(got["n"], json!(a));
}
