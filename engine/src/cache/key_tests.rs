use super::*;
use serde_json::json;

const CHAT: &str = "/v1/chat/completions";

fn key_with(
    endpoint: &str,
    body: &Value,
    scope: ScopeId<'_>,
    ns: Option<&str>,
    history: usize,
) -> CacheKey {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    CacheKey::new(&KeyInput {
        endpoint,
        model,
        body,
        scope,
        namespace: ns,
        history,
    })
}

fn key(body: &Value) -> CacheKey {
    key_with(CHAT, body, ScopeId::Key("vk-1"), None, 3)
}

/// The raw text a client sent, parsed as the gateway parses it.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn chat() -> Value {
    json!({
        "model": "gpt-4o",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"}
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    })
}

#[test]
fn field_order_does_not_matter_at_any_depth() {
    let a = parsed(
        r#"{"model":"gpt-4o","temperature":0.2,"messages":[{"role":"user","content":"hi"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","required":["x"]}}}]}"#,
    );
    let b = parsed(
        r#"{"tools":[{"function":{"parameters":{"required":["x"],"type":"object"},"name":"f"},"type":"function"}],
            "messages":[{"content":"hi","role":"user"}],"temperature":0.2,"model":"gpt-4o"}"#,
    );
    assert_eq!(key(&a), key(&b));
}

#[test]
fn whitespace_in_the_conversation_does_not_matter() {
    let a = json!({"model": "m", "messages": [{"role": "user", "content": "What is\n\n the  capital?"}]});
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "  What is the capital? \t"}]});
    assert_eq!(key(&a), key(&b));
    // Text parts of multimodal content and Anthropic's top-level system too.
    let a = json!({"model": "m", "system": " Be  brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi  there"}]}]});
    let b = json!({"model": "m", "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there\n"}]}]});
    let anthropic = "/anthropic/v1/messages";
    assert_eq!(
        key_with(anthropic, &a, ScopeId::Global, None, 3),
        key_with(anthropic, &b, ScopeId::Global, None, 3)
    );
    // But words still have to match.
    let c = json!({"model": "m", "messages": [{"role": "user", "content": "Whatis the capital?"}]});
    let d =
        json!({"model": "m", "messages": [{"role": "user", "content": "What is the capital?"}]});
    assert_ne!(key(&c), key(&d));
}

#[test]
fn parameters_keep_their_whitespace() {
    let a = json!({"model": "m", "stop": ["\n"], "messages": [{"role": "user", "content": "hi"}]});
    let b = json!({"model": "m", "stop": [" "], "messages": [{"role": "user", "content": "hi"}]});
    assert_ne!(key(&a), key(&b));
}

#[test]
fn anything_that_changes_the_answer_changes_the_key() {
    let base = chat();
    let k = key(&base);
    type Change = fn(&mut Value);
    let variants: &[(&str, Change)] = &[
        ("model", |v| v["model"] = json!("gpt-4o-mini")),
        ("temperature", |v| v["temperature"] = json!(0.3)),
        ("new param", |v| v["max_tokens"] = json!(10)),
        ("nested param", |v| {
            v["response_format"]["json_schema"]["schema"]["properties"]["city"]["type"] =
                json!("number")
        }),
        ("user message", |v| {
            v["messages"][1]["content"] = json!("What is the capital of Spain?")
        }),
        ("system message", |v| {
            v["messages"][0]["content"] = json!("Be verbose.")
        }),
        ("role", |v| v["messages"][1]["role"] = json!("assistant")),
        ("stream", |v| v["stream"] = json!(true)),
    ];
    for (what, change) in variants {
        let mut v = base.clone();
        change(&mut v);
        assert_ne!(key(&v).exact, k.exact, "{what}");
    }
}

#[test]
fn bookkeeping_fields_do_not_split_the_cache() {
    let mut v = chat();
    v["user"] = json!("alice");
    v["metadata"] = json!({"trace": "abc"});
    v["store"] = json!(true);
    v["stream"] = json!(false);
    v["seed"] = Value::Null;
    v["messages"][1]["cache_control"] = json!({"type": "ephemeral"});
    assert_eq!(key(&v), key(&chat()));
    // `1` and `1.0` are the same temperature.
    let a = parsed(r#"{"model":"m","temperature":1,"messages":[]}"#);
    let b = parsed(r#"{"model":"m","temperature":1.0,"messages":[]}"#);
    assert_eq!(key(&a), key(&b));
}

#[test]
fn scope_namespace_and_format_separate_entries() {
    let v = chat();
    let k = key_with(CHAT, &v, ScopeId::Key("vk-1"), None, 3);
    let others = [
        key_with(CHAT, &v, ScopeId::Key("vk-2"), None, 3),
        key_with(CHAT, &v, ScopeId::Team("vk-1"), None, 3),
        key_with(CHAT, &v, ScopeId::Global, None, 3),
        key_with(CHAT, &v, ScopeId::Key("vk-1"), Some("tenant-a"), 3),
        key_with("/anthropic/v1/messages", &v, ScopeId::Key("vk-1"), None, 3),
    ];
    for other in others {
        assert_ne!(other.exact, k.exact);
        assert_ne!(other.partition, k.partition);
    }
    let a = key_with(CHAT, &v, ScopeId::Key("vk-1"), Some("tenant-a"), 3);
    let b = key_with(CHAT, &v, ScopeId::Key("vk-1"), Some("tenant-b"), 3);
    assert_ne!(a.exact, b.exact);
    // Scope and namespace are not parameters: a semantic layer sees the same params hash.
    assert_eq!(a.params, k.params);
    assert_eq!(others[0].params, k.params);
    assert_ne!(others[4].params, k.params);
}

#[test]
fn params_hash_ignores_the_conversation() {
    let mut v = chat();
    let k = key(&v);
    v["messages"][1]["content"] = json!("Something else entirely");
    let other = key(&v);
    assert_eq!(other.params, k.params);
    assert_eq!(other.partition, k.partition);
    assert_ne!(other.exact, k.exact);
}

#[test]
fn only_the_last_history_turns_count() {
    let turns = |first: &str| {
        json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": first},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "And the capital?"}
        ]})
    };
    let (a, b) = (turns("Tell me about France"), turns("Tell me about Spain"));
    let k = |v: &Value, h| key_with(CHAT, v, ScopeId::Global, None, h);
    assert_eq!(k(&a, 1), k(&b, 1));
    assert_eq!(k(&a, 2), k(&b, 2));
    assert_ne!(k(&a, 3), k(&b, 3));
    // History 1 still sees the last turn, and the system prompt.
    let mut c = a.clone();
    c["messages"][3]["content"] = json!("And the river?");
    assert_ne!(k(&a, 1), k(&c, 1));
    let mut d = a.clone();
    d["messages"][0]["content"] = json!("Be verbose.");
    assert_ne!(k(&a, 1), k(&d, 1));
    // A conversation shorter than `history` is keyed whole.
    let short = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(k(&short, 1), k(&short, 5));
}

#[test]
fn embedding_inputs_are_never_truncated() {
    let a = json!({"model": "e", "input": ["a", "b", "c", "d"]});
    let b = json!({"model": "e", "input": ["z", "b", "c", "d"]});
    let k = |v: &Value| key_with("/v1/embeddings", v, ScopeId::Global, None, 1);
    assert_ne!(k(&a), k(&b));
}

#[test]
fn structure_is_part_of_the_key() {
    // Same text spread differently over values must not collide.
    let a = json!({"model": "m", "messages": [{"role": "user", "content": ["ab", "c"]}]});
    let b = json!({"model": "m", "messages": [{"role": "user", "content": ["a", "bc"]}]});
    assert_ne!(key(&a), key(&b));
    let a = json!({"model": "m", "n": "1", "messages": []});
    let b = json!({"model": "m", "n": 1, "messages": []});
    assert_ne!(key(&a), key(&b));
}

#[test]
fn scope_ids_never_widen() {
    let s = |scope: CacheScope, team, customer| scope.id("vk", team, customer);
    assert_eq!(s(CacheScope::Key, Some("t"), Some("c")), ScopeId::Key("vk"));
    assert_eq!(
        s(CacheScope::Team, Some("t"), Some("c")),
        ScopeId::Team("t")
    );
    assert_eq!(s(CacheScope::Team, None, Some("c")), ScopeId::Key("vk"));
    assert_eq!(
        s(CacheScope::Customer, Some("t"), Some("c")),
        ScopeId::Customer("c")
    );
    assert_eq!(s(CacheScope::Customer, Some("t"), None), ScopeId::Team("t"));
    assert_eq!(s(CacheScope::Customer, None, None), ScopeId::Key("vk"));
    assert_eq!(s(CacheScope::Global, None, None), ScopeId::Global);
}

#[test]
fn keys_print_as_32_hex_digits() {
    let k = key(&chat());
    let hex = k.exact.to_string();
    assert_eq!(hex.len(), 32);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn digits_split_the_semantic_partition_and_nothing_else() {
    let body = serde_json::json!({"messages": [{"role": "user", "content": "x"}]});
    let input = KeyInput {
        endpoint: "chat",
        model: "m",
        body: &body,
        scope: ScopeId::Key("vk"),
        namespace: None,
        history: 1,
    };
    let key = CacheKey::new(&input);
    assert_eq!(key.with_digits_of("how do I reset my password"), key);
    let a = key.with_digits_of("order #10432 is late");
    assert_ne!(a.partition, key.partition);
    assert_eq!((a.exact, a.params), (key.exact, key.params));
    assert_eq!(a, key.with_digits_of("my order 10432 has not come"));
    assert_ne!(a, key.with_digits_of("order #10487 is late"));
    // Order counts: swapped amounts are another question.
    assert_ne!(
        key.with_digits_of("charged 49, costs 29"),
        key.with_digits_of("charged 29, costs 49")
    );
    // Runs are kept apart: 1 then 23 is not 12 then 3.
    assert_ne!(
        key.with_digits_of("1 and 23"),
        key.with_digits_of("12 and 3")
    );
}
