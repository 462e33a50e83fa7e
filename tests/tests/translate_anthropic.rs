//! OpenAI clients reaching a provider of `kind: anthropic`: the gateway translates the request
//! to Anthropic Messages and the answer (whole or streamed) back to Chat Completions. The mock
//! records what it received, so each test checks both sides of the translation.

use serde_json::{json, Value};
use tollgate_e2e::{post_json, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-claude";
const PROVIDER_KEY: &str = "sk-ant-test-key";
const MODEL: &str = "claude-sonnet-4-6";

fn config(mock: &Mock) -> String {
    format!(
        "providers:
  - name: claude
    kind: anthropic
    base_url: {}
    keys: [{{name: main, key: {PROVIDER_KEY}}}]
    retries: {{max: 2, backoff: 10ms}}
virtual_keys:
  - {{id: vk-claude, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
",
        mock.url
    )
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer vk-secret-claude")]
}

/// Runs a Python script with the official OpenAI SDK pointed at the gateway; returns the JSON
/// it prints on its last line.
fn sdk(gw: &Gateway, body: &str) -> Value {
    let script = format!(
        "import json, openai\nclient = openai.OpenAI(base_url=\"{}/v1\", api_key=\"{VK}\", max_retries=0)\n{body}",
        gw.url
    );
    python_json(&["openai"], &script)
}

#[test]
fn sdk_chat_reaches_anthropic_and_gets_openai_answer() {
    let mock = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
r = client.chat.completions.create(model="{MODEL}", messages=[
    {{"role": "system", "content": "You are terse."}},
    {{"role": "user", "content": "Say hello to the gateway"}}])
print(json.dumps({{"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
    "object": r.object, "usage": r.usage.model_dump()}}))
"#
        ),
    );
    assert_eq!(got["object"], "chat.completion");
    assert_eq!(got["finish"], "stop");
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let req = &seen[0];
    assert_eq!(req["path"], "/v1/messages");
    assert_eq!(req["headers"]["x-api-key"], PROVIDER_KEY);
    assert_eq!(req["headers"]["anthropic-version"], "2023-06-01");
    assert!(
        req["headers"].get("authorization").is_none(),
        "no bearer header to Anthropic: {req}"
    );
    let body = recorded_body(req);
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["max_tokens"], 4096, "the documented default: {body}");
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Say hello to the gateway"}]}])
    );

    // The same Anthropic request straight to the mock: its usage is what the client was told.
    let direct = post_json(&format!("{}/v1/messages", mock.url), &[], &body).json();
    assert_eq!(
        got["usage"]["prompt_tokens"],
        direct["usage"]["input_tokens"]
    );
    assert_eq!(
        got["usage"]["completion_tokens"],
        direct["usage"]["output_tokens"]
    );
    let total = got["usage"]["total_tokens"].as_u64().unwrap();
    assert!(total > 0);
    assert_eq!(gw.used("virtual_key:vk-claude", "tokens"), json!(total));
}

#[test]
fn sdk_stream_from_anthropic_yields_text_and_usage_and_is_charged() {
    let mock = Mock::start(&["--format", "anthropic", "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
def run(include_usage):
    extra = {{"stream_options": {{"include_usage": True}}}} if include_usage else {{}}
    text, usage, finish, chunks = "", None, None, 0
    for c in client.chat.completions.create(model="{MODEL}", stream=True,
            messages=[{{"role": "user", "content": "Tell me a story please"}}], **extra):
        chunks += 1
        if c.usage is not None:
            usage = c.usage.model_dump()
        for ch in c.choices:
            text += ch.delta.content or ""
            finish = ch.finish_reason or finish
    return {{"text": text, "usage": usage, "finish": finish, "chunks": chunks}}
whole = client.chat.completions.create(model="{MODEL}",
    messages=[{{"role": "user", "content": "Tell me a story please"}}]).choices[0].message.content
print(json.dumps({{"with": run(True), "without": run(False), "whole": whole}}))
"#
        ),
    );
    let with = &got["with"];
    assert_eq!(with["text"], got["whole"], "streamed text = whole answer");
    assert!(with["text"].as_str().unwrap().starts_with("mock reply"));
    assert_eq!(with["finish"], "stop");
    assert!(with["chunks"].as_u64().unwrap() > 3, "{got}");
    let usage = &with["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{got}");
    let per_stream = usage["total_tokens"].as_u64().unwrap();
    // Without include_usage the client gets no usage chunk, yet the gateway still reads one.
    assert_eq!(got["without"]["usage"], Value::Null, "{got}");
    assert_eq!(got["without"]["text"], with["text"]);
    let whole_tokens = per_stream; // the non-stream request has the same prompt and answer
    assert_eq!(
        gw.used("virtual_key:vk-claude", "tokens"),
        json!(2 * per_stream + whole_tokens)
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    // The whole answer was asked for first, then the two streams.
    assert_eq!(recorded_body(&seen[0]).get("stream"), None);
    let body = recorded_body(&seen[1]);
    assert_eq!(body["stream"], true);
    assert!(
        body.get("stream_options").is_none(),
        "OpenAI-only field not sent: {body}"
    );
}

#[test]
fn sdk_tool_calls_round_trip_through_anthropic() {
    let mock = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
tools = [{{"type": "function", "function": {{"name": "get_weather", "description": "Weather of a city",
    "parameters": {{"type": "object", "properties": {{"city": {{"type": "string"}}}}, "required": ["city"]}}}}}}]
ask = {{"role": "user", "content": "What is the weather in Paris?"}}
r = client.chat.completions.create(model="{MODEL}", messages=[ask], tools=tools)
m = r.choices[0].message
call = m.tool_calls[0]
follow = client.chat.completions.create(model="{MODEL}", tools=tools, messages=[ask,
    m.model_dump(exclude_none=True),
    {{"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"}}])
name, args, cid = None, "", None
for c in client.chat.completions.create(model="{MODEL}", messages=[ask], tools=tools, stream=True):
    for ch in c.choices:
        for tc in ch.delta.tool_calls or []:
            name = tc.function.name or name
            cid = tc.id or cid
            args += tc.function.arguments or ""
print(json.dumps({{"finish": r.choices[0].finish_reason, "id": call.id, "name": call.function.name,
    "args": json.loads(call.function.arguments), "follow": follow.choices[0].message.content,
    "stream": {{"name": name, "args": json.loads(args), "id": cid}}}}))
"#
        ),
    );
    assert_eq!(got["finish"], "tool_calls", "{got}");
    assert_eq!(got["name"], "get_weather");
    assert_eq!(got["args"], json!({"city": "Paris"}));
    assert_eq!(got["stream"]["name"], "get_weather");
    assert_eq!(got["stream"]["args"], json!({"city": "Paris"}));
    assert!(got["follow"].as_str().unwrap().starts_with("mock reply"));

    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    let first = recorded_body(&seen[0]);
    assert_eq!(first["tools"][0]["name"], "get_weather");
    assert_eq!(
        first["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    let follow = recorded_body(&seen[1]);
    let id = got["id"].as_str().unwrap();
    let msgs = follow["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{follow}");
    assert_eq!(msgs[1]["role"], "assistant");
    let tool_use = msgs[1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("tool_use block");
    assert_eq!(tool_use["id"], id);
    assert_eq!(tool_use["input"], json!({"city": "Paris"}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], id);
}

#[test]
fn untranslatable_request_is_refused_before_the_provider() {
    let mock = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&mock));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &json!({"model": MODEL, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{not json"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "invalid_request");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("messages[1]") && msg.contains("JSON"), "{msg}");

    let e = post_json(
        &format!("{}/v1/embeddings", gw.url),
        &auth(),
        &json!({"model": MODEL, "input": "hello"}),
    );
    assert_eq!(e.status, 400, "{}", e.body);
    assert_eq!(e.error_type(), "invalid_request");
    assert!(e.body.contains("no embeddings"), "{}", e.body);
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

#[test]
fn anthropic_errors_reach_the_client_in_openai_shape() {
    // A 400 is the caller's problem: passed through (in the OpenAI shape), not retried.
    let mock = Mock::start(&[
        "--format",
        "anthropic",
        "--fail-first",
        "1",
        "--fail-status",
        "400",
    ]);
    let gw = Gateway::start(&config(&mock));
    let url = format!("{}/v1/chat/completions", gw.url);
    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let r = post_json(&url, &auth(), &chat);
    assert_eq!(r.status, 400, "{}", r.body);
    let reply = r.json();
    assert!(
        reply.get("type").is_none(),
        "not Anthropic's envelope: {}",
        r.body
    );
    let err = &reply["error"];
    assert_eq!(err["type"], "invalid_request_error", "{}", r.body);
    assert_eq!(err["code"], "invalid_request_error", "{}", r.body);
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(mock.requests().len(), 1);

    // Anthropic's 529 (overloaded) is retried like any 5xx; the retry's answer is translated.
    let mock = Mock::start(&[
        "--format",
        "anthropic",
        "--fail-first",
        "1",
        "--fail-status",
        "529",
    ]);
    let gw = Gateway::start(&config(&mock));
    let url = format!("{}/v1/chat/completions", gw.url);
    let r = post_json(
        &url,
        &auth(),
        &json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-attempts"), Some("2"));
    assert!(
        r.body.contains("\"object\":\"chat.completion.chunk\""),
        "{}",
        r.body
    );
    assert!(r.body.ends_with("data: [DONE]\n\n"), "{}", r.body);
}

#[test]
fn configured_default_max_tokens_fills_a_missing_bound() {
    let mock = Mock::start(&["--format", "anthropic"]);
    let config =
        config(&mock).replace("    retries:", "    default_max_tokens: 1234\n    retries:");
    let gw = Gateway::start(&config);
    let url = format!("{}/v1/chat/completions", gw.url);
    let ask = |extra: Value| {
        let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let reply = post_json(&url, &auth(), &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        recorded_body(mock.requests().last().unwrap())
    };
    assert_eq!(ask(json!({}))["max_tokens"], 1234);
    // The client's own bound wins.
    assert_eq!(ask(json!({"max_tokens": 77}))["max_tokens"], 77);
}
