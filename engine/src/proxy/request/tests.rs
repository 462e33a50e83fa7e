use super::*;

fn err(body: &str, endpoint: Endpoint) -> String {
    parse_head(body.as_bytes(), endpoint).unwrap_err().message
}

#[test]
fn rewrites_only_the_model_value() {
    let body = Bytes::from_static(
        br#"{"messages":[{"role":"user","content":"model \"x\""}], "model" : "openai/gpt-4o","stream":false}"#,
    );
    let head = parse_head(&body, Endpoint::Chat).unwrap();
    assert!(!head.stream);
    assert_eq!(head.model, "openai/gpt-4o");
    let out = head.upstream_body(&body, "gpt-4o", None);
    assert_eq!(
        &out[..],
        &br#"{"messages":[{"role":"user","content":"model \"x\""}], "model" : "gpt-4o","stream":false}"#[..]
    );
    let same = head.upstream_body(&body, "openai/gpt-4o", None);
    assert_eq!(
        same.as_ptr(),
        body.as_ptr(),
        "unchanged bodies are not copied"
    );
}

#[test]
fn streams_get_usage_forced_on() {
    let body = Bytes::from_static(br#" {"model":"p/m","stream":true,"messages":[]}"#);
    let head = parse_head(&body, Endpoint::Chat).unwrap();
    assert!(!head.client_wants_usage);
    let out = head.upstream_body(&body, "m", None);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(v["model"], "m");

    let body = Bytes::from_static(
        br#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]}"#,
    );
    let out = parse_head(&body, Endpoint::Chat)
        .unwrap()
        .upstream_body(&body, "m", None);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["stream_options"],
        serde_json::json!({"include_obfuscation": false, "include_usage": true})
    );

    let body = Bytes::from_static(
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#,
    );
    let head = parse_head(&body, Endpoint::Chat).unwrap();
    assert!(head.client_wants_usage);
    assert_eq!(head.upstream_body(&body, "m", None).as_ptr(), body.as_ptr());
}

#[test]
fn reads_the_output_bound() {
    let body = br#"{"model":"m","messages":[],"max_tokens":50,"max_completion_tokens":70}"#;
    assert_eq!(
        parse_head(body, Endpoint::Chat).unwrap().max_output_tokens,
        Some(70)
    );
    let body = br#"{"model":"m","messages":[],"max_tokens":50}"#;
    assert_eq!(
        parse_head(body, Endpoint::Chat).unwrap().max_output_tokens,
        Some(50)
    );
}

#[test]
fn escaped_model_names_are_decoded() {
    let body = Bytes::from_static(br#"{"model":"a\/b","messages":[]}"#);
    assert_eq!(parse_head(&body, Endpoint::Chat).unwrap().model, "a/b");
}

#[test]
fn malformed_json_says_where() {
    let m = err("{\"model\": \"x\",\n \"messages\": [}", Endpoint::Chat);
    assert!(m.contains("line 2 column"), "{m}");
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    assert!(err(r#"{"messages":[]}"#, Endpoint::Chat).contains("`model`"));
    assert!(err(r#"{"model":"m"}"#, Endpoint::Chat).contains("`messages`"));
    assert!(err(r#"{"model":"m","messages":"hi"}"#, Endpoint::Chat).contains("must be an array"));
    assert!(err(r#"{"model":3,"messages":[]}"#, Endpoint::Chat).contains("must be a string"));
    assert!(err(
        r#"{"model":"m","messages":[],"stream":"yes"}"#,
        Endpoint::Chat
    )
    .contains("boolean"));
    assert!(err(
        r#"{"model":"m","messages":[],"max_tokens":-1}"#,
        Endpoint::Chat
    )
    .contains("expected u64"));
    assert!(err(r#"{"model":"m"}"#, Endpoint::Embeddings).contains("`input`"));
    assert!(err("[1,2]", Endpoint::Chat).contains("JSON object"));
    assert!(err("", Endpoint::Chat).contains("empty"));
}

#[test]
fn fallbacks_never_go_upstream_and_messages_can_be_replaced() {
    let body = Bytes::from_static(
        br#"{"model":"a","fallbacks":["b","c"],"messages":[{"role":"user","content":"x"}]}"#,
    );
    let head = parse_head(&body, Endpoint::Chat).unwrap();
    assert_eq!(head.fallbacks, ["b", "c"]);
    let out = head.upstream_body(&body, "a", Some(r#"[{"role":"user","content":"y"}]"#));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v.get("fallbacks").is_none());
    assert_eq!(v["messages"][0]["content"], "y");

    let body =
        Bytes::from_static(br#"{"model":"a","messages":[{"role":"user","content":"x"}],"n":1}"#);
    let head = parse_head(&body, Endpoint::Chat).unwrap();
    let out = head.upstream_body(&body, "a", Some(r#"[{"role":"user","content":"y"}]"#));
    assert_eq!(
        &out[..],
        br#"{"model":"a","messages":[{"role":"user","content":"y"}],"n":1}"#
    );
}
