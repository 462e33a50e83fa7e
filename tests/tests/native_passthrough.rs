//! A client reaching a provider of its own format (Anthropic → `kind: anthropic`, Gemini →
//! `kind: gemini`): the provider gets the client's bytes and the client gets the provider's, so
//! what OpenAI Chat cannot carry (extended thinking and its signatures, `cache_control`,
//! `metadata`, safety settings) survives. Usage is still charged, and the gateway's own edits
//! (an input redaction) still reach the provider.

use serde_json::{json, Value};
use tollgate_e2e::{numbers_masked, post_raw, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-native";
const CLAUDE: &str = "claude-sonnet-4-6";
const GEMINI: &str = "gemini-2.5-flash";

fn config(anthropic: &Mock, gemini: &Mock, extra: &str) -> String {
    format!(
        "providers:
  - {{name: claude, kind: anthropic, base_url: {}, keys: [{{key: sk-ant}}], models: [{CLAUDE}], retries: {{max: 0}}}}
  - {{name: g, kind: gemini, base_url: {}, keys: [{{key: goog}}], models: [{GEMINI}], retries: {{max: 0}}}}
virtual_keys:
  - {{id: vk-n, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
{extra}",
        anthropic.url, gemini.url
    )
}

fn mocks() -> (Mock, Mock) {
    (
        Mock::start(&["--format", "anthropic", "--stream-chunks", "3"]),
        Mock::start(&["--format", "gemini", "--stream-chunks", "3"]),
    )
}

/// The official Anthropic SDK with extended thinking, a cached system block, metadata and a
/// beta header: once whole, once streamed.
const THINKING_CALLS: &str = r#"
kw = dict(model="MODEL", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
    system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    metadata={"user_id": "u-42"}, messages=[{"role": "user", "content": "Say hello"}],
    extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
m = client.messages.create(**kw)
with client.messages.stream(**kw) as s:
    kinds = sorted({e.type for e in s})
    f = s.get_final_message()
print(json.dumps({"whole": m.model_dump(), "streamed": f.model_dump(), "kinds": kinds}))
"#;

#[test]
fn anthropic_sdk_keeps_thinking_signatures_and_cache_control_whole_and_streamed() {
    let (anthropic, gemini) = mocks();
    let gw = Gateway::start(&config(&anthropic, &gemini, ""));
    let script = format!(
        "import json, anthropic\nclient = anthropic.Anthropic(base_url=\"{}/anthropic\", api_key=\"{VK}\", max_retries=0)\n{}",
        gw.url,
        THINKING_CALLS.replace("MODEL", CLAUDE)
    );
    let got = python_json(&["anthropic"], &script);
    for answer in [&got["whole"], &got["streamed"]] {
        let content = &answer["content"];
        assert_eq!(content[0]["type"], "thinking", "{answer}");
        assert_eq!(content[0]["thinking"], "Mock reasoning before the answer.");
        let signature = content[0]["signature"].as_str().unwrap_or("");
        assert!(signature.starts_with("mock-signature-"), "{answer}");
        assert_eq!(content[1]["type"], "text");
        assert!(content[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("mock reply"));
    }
    let kinds = got["kinds"].as_array().unwrap();
    for kind in ["thinking", "signature", "text"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} event: {got}");
    }

    // Both calls are charged what the provider reported.
    let tokens = |m: &Value| {
        m["usage"]["input_tokens"].as_u64().unwrap() + m["usage"]["output_tokens"].as_u64().unwrap()
    };
    let charged = tokens(&got["whole"]) + tokens(&got["streamed"]);
    assert!(charged > 0);
    assert_eq!(gw.used("virtual_key:vk-n", "tokens"), json!(charged));

    let seen = anthropic.requests();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        let body = recorded_body(request);
        assert_eq!(body["thinking"]["budget_tokens"], 1024, "{body}");
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(body["metadata"]["user_id"], "u-42");
        assert_eq!(
            request["headers"]["anthropic-beta"],
            "interleaved-thinking-2025-05-14"
        );
        // The provider's key, never the caller's.
        assert_eq!(request["headers"]["x-api-key"], "sk-ant");
    }
    assert_eq!(recorded_body(&seen[1])["stream"], true);
}

/// What the mock answers differs between two calls only in its numbering.
fn masked(body: &str) -> String {
    numbers_masked(body, &["msg_mock_", "mock-signature-", "mock reply "])
}

#[test]
fn anthropic_bytes_pass_both_ways_untouched() {
    let (anthropic, gemini) = mocks();
    let gw = Gateway::start(&config(&anthropic, &gemini, ""));
    // Odd spacing and key order, and a field the gateway does not model.
    let request = format!(
        r#"{{"stream": true,  "max_tokens":2048, "model":"{CLAUDE}","thinking":{{"type":"enabled","budget_tokens":1024}},"messages":[{{"role":"user","content":[{{"type":"text","text":"hi","cache_control":{{"type":"ephemeral","ttl":"1h"}}}}]}}],"service_tier":"auto"}}"#
    );
    let url = format!("{}/anthropic/v1/messages", gw.url);
    let via = post_raw(&url, &[("x-api-key", VK)], request.as_bytes());
    assert_eq!(via.status, 200, "{}", via.body);
    assert_eq!(via.header("content-type"), Some("text/event-stream"));
    let direct = post_raw(
        &format!("{}/v1/messages", anthropic.url),
        &[("x-api-key", "sk-ant")],
        request.as_bytes(),
    );
    assert_eq!(masked(&via.body), masked(&direct.body));
    assert!(via.body.contains("signature_delta"), "{}", via.body);

    let seen = anthropic.requests();
    assert_eq!(seen[0]["body"], request, "the client's bytes, exactly");

    // Whole answers too.
    let whole = request.replace(r#""stream": true,"#, "");
    let via = post_raw(&url, &[("x-api-key", VK)], whole.as_bytes());
    assert_eq!(via.status, 200, "{}", via.body);
    let direct = post_raw(
        &format!("{}/v1/messages", anthropic.url),
        &[("x-api-key", "sk-ant")],
        whole.as_bytes(),
    );
    assert_eq!(masked(&via.body), masked(&direct.body));
    assert_eq!(via.header("x-tollgate-provider"), Some("claude"));
}

#[test]
fn a_provider_error_reaches_an_anthropic_client_as_the_provider_wrote_it() {
    let anthropic = Mock::start(&["--format", "anthropic", "--fault", "status:400"]);
    let gemini = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&config(&anthropic, &gemini, ""));
    let request = format!(
        r#"{{"model":"{CLAUDE}","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let direct = post_raw(
        &format!("{}/v1/messages", anthropic.url),
        &[("x-api-key", "sk-ant")],
        request.as_bytes(),
    );
    assert_eq!(direct.status, 400);
    let via = post_raw(
        &format!("{}/anthropic/v1/messages", gw.url),
        &[("x-api-key", VK)],
        request.as_bytes(),
    );
    assert_eq!(via.status, 400);
    assert_eq!(via.body, direct.body);
    assert_eq!(via.json()["type"], "error");
}

#[test]
fn an_input_redaction_still_reaches_an_anthropic_provider() {
    let (anthropic, gemini) = mocks();
    let guardrails = "guardrails:
  - {name: pii, stage: input, detect: {pii: [email]}, action: redact}
";
    let gw = Gateway::start(&config(&anthropic, &gemini, guardrails));
    let request = json!({"model": CLAUDE, "max_tokens": 50,
        "messages": [{"role": "user", "content": "mail jane.doe@example.com now"}]});
    let via = post_raw(
        &format!("{}/anthropic/v1/messages", gw.url),
        &[("x-api-key", VK)],
        request.to_string().as_bytes(),
    );
    assert_eq!(via.status, 200, "{}", via.body);
    assert_eq!(via.json()["type"], "message");
    let sent = anthropic.requests()[0]["body"].as_str().unwrap().to_owned();
    assert!(!sent.contains("jane.doe@example.com"), "{sent}");
}

#[test]
fn gemini_bytes_pass_both_ways_and_usage_is_charged() {
    let (anthropic, gemini) = mocks();
    let gw = Gateway::start(&config(&anthropic, &gemini, ""));
    let request = r#"{"contents": [{"role":"user","parts":[{"text":"Say hello"}]}],
 "safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_ONLY_HIGH"}],
 "generationConfig":{"maxOutputTokens":64,"thinkingConfig":{"thinkingBudget":0}}}"#;
    // The same request through the gateway and to the mock directly.
    let both = |path: &str| {
        let via = post_raw(
            &format!("{}/genai{path}", gw.url),
            &[("x-goog-api-key", VK)],
            request.as_bytes(),
        );
        assert_eq!(via.status, 200, "{}", via.body);
        let direct = post_raw(
            &format!("{}{path}", gemini.url),
            &[("x-goog-api-key", "goog")],
            request.as_bytes(),
        );
        (via, direct)
    };
    let (via, direct) = both(&format!("/v1beta/models/{GEMINI}:generateContent"));
    let mask = |b: &str| numbers_masked(b, &["\"responseId\":\"mock-", "mock reply "]);
    assert_eq!(mask(&via.body), mask(&direct.body));
    let whole_tokens = via.json()["usageMetadata"]["totalTokenCount"]
        .as_u64()
        .unwrap();

    let (via, direct) = both(&format!(
        "/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse"
    ));
    assert_eq!(mask(&via.body), mask(&direct.body));
    let last: Value = via
        .body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .last()
        .expect("a streamed chunk");
    let stream_tokens = last["usageMetadata"]["totalTokenCount"].as_u64().unwrap();
    assert_eq!(
        gw.used("virtual_key:vk-n", "tokens"),
        json!(whole_tokens + stream_tokens)
    );

    let seen = gemini.requests();
    // The gateway's calls, then the direct ones, each with the client's bytes exactly.
    assert_eq!(seen[0]["body"], request);
    assert_eq!(seen[2]["body"], request);
    assert_eq!(seen[0]["headers"]["x-goog-api-key"], "goog");
}
