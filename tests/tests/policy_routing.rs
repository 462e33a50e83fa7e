//! Routing rules, aliases and input guardrails through the real gateway.

use serde_json::json;
use tollgate_e2e::{get, post_json, Gateway, Mock};

fn config(a: &Mock, b: &Mock, extra: &str) -> String {
    format!(
        "pricing: {{m: {{input: 1000, output: 1000}}}}
providers:
  - {{name: a, kind: openai_compatible, base_url: {a}, models: ['*']}}
  - {{name: b, kind: openai_compatible, base_url: {b}, models: ['*']}}
teams: [{{id: ml, budget: {{limit_usd: 0.05, window: 1d}}}}]
virtual_keys:
  - {{id: vk-plain, key: k-plain, providers: [{{provider: a}}]}}
  - {{id: vk-special, key: k-special, providers: [{{provider: a}}]}}
  - {{id: vk-ml, key: k-ml, team: ml, providers: [{{provider: a}}]}}
routing:
  aliases: {{fast: [b/fast-primary, a/fast-second]}}
  rules:
    - name: premium-header
      when: 'headers[?\"x-tier\"].orValue(\"\") == \"premium\"'
      targets: [{{model: b/premium-model}}]
    - name: special-key-first
      scope: virtual_key:vk-special
      when: '\"x-tier\" in headers'
      targets: [{{model: a/special-model}}]
    - name: ml-over-half-budget
      scope: team:ml
      when: 'usage.budget_pct >= 50'
      targets: [{{model: b/cheap-model}}]
    - name: broken-at-runtime
      when: 'headers[\"x-missing\"] == \"1\"'
      targets: [{{model: b/never}}]
{extra}",
        a = a.base_url(),
        b = b.base_url()
    )
}

fn chat(
    gw: &Gateway,
    key: &str,
    headers: &[(&str, &str)],
    model: &str,
    content: &str,
) -> tollgate_e2e::Reply {
    let auth = format!("Bearer {key}");
    let mut h: Vec<(&str, &str)> = vec![("authorization", &auth)];
    h.extend_from_slice(headers);
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &h,
        &json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": content}]}),
    )
}

fn routed(r: &tollgate_e2e::Reply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.header("x-tollgate-provider").unwrap().to_string(),
        r.header("x-tollgate-model").unwrap().to_string(),
    )
}

fn pair(p: &str, m: &str) -> (String, String) {
    (p.to_string(), m.to_string())
}

#[test]
fn header_rule_routes_and_a_key_scoped_rule_beats_it() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    let premium = [("x-tier", "premium")];
    assert_eq!(
        routed(&chat(&gw, "k-plain", &premium, "gpt-x", "hi")),
        pair("b", "premium-model")
    );
    assert_eq!(
        routed(&chat(&gw, "k-plain", &[], "gpt-x", "hi")),
        pair("a", "gpt-x")
    );
    assert_eq!(
        routed(&chat(&gw, "k-special", &premium, "gpt-x", "hi")),
        pair("a", "special-model")
    );
    let sent: serde_json::Value =
        serde_json::from_str(b.requests()[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["model"], "premium-model");
}

#[test]
fn budget_use_rule_switches_model() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    let mut models = Vec::new();
    for _ in 0..4 {
        let r = chat(&gw, "k-ml", &[], "m", "hello there");
        if r.status != 200 {
            break;
        }
        models.push(routed(&r));
    }
    assert_eq!(
        models[0],
        pair("a", "m"),
        "under half the budget: the requested model"
    );
    assert!(
        models.contains(&pair("b", "cheap-model")),
        "past half the team budget the rule switches: {models:?}"
    );
}

#[test]
fn alias_expands_to_its_primary() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    // vk-plain may only use provider a, but an alias is the administrator's routing.
    assert_eq!(
        routed(&chat(&gw, "k-plain", &[], "fast", "hi")),
        pair("b", "fast-primary")
    );
}

#[test]
fn a_runtime_cel_error_is_no_match_and_is_counted() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    assert_eq!(
        routed(&chat(&gw, "k-plain", &[], "gpt-x", "hi")),
        pair("a", "gpt-x")
    );
    let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        m.contains("tollgate_cel_errors_total{rule=\"broken-at-runtime\"} 1"),
        "{m}"
    );
}

const GUARDRAILS: &str = "guardrails:
  - name: no-cloud-secrets
    detect: {regex: ['AKIA[0-9A-Z]{16}']}
    action: block
  - name: pii
    detect: {pii: [email, credit_card]}
    action: redact
  - name: legal
    detect: {keywords: [lawsuit]}
    action: flag
  - name: long-prompts
    when: 'key.id != \"vk-special\"'
    detect: {cel: 'prompt_tokens > 200'}
    action: block
";

#[test]
fn block_sends_nothing_upstream() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, GUARDRAILS));
    let r = chat(
        &gw,
        "k-plain",
        &[],
        "gpt-x",
        "my key is AKIAABCDEFGHIJKLMNOP ok",
    );
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (403, "guardrail_blocked"),
        "{}",
        r.body
    );
    assert_eq!(r.json()["error"]["guardrail"], "no-cloud-secrets");
    assert!(a.requests().is_empty() && b.requests().is_empty());

    let long = "word ".repeat(400);
    let r = chat(&gw, "k-plain", &[], "gpt-x", &long);
    assert_eq!(r.json()["error"]["guardrail"], "long-prompts");
    // The `when` folds to false for vk-special: its long prompt passes.
    assert_eq!(chat(&gw, "k-special", &[], "gpt-x", &long).status, 200);
    let m = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        m.contains(
            "tollgate_guardrail_actions_total{guardrail=\"no-cloud-secrets\",action=\"block\"} 1"
        ),
        "{m}"
    );
}

#[test]
fn input_redaction_reaches_the_provider_redacted() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, GUARDRAILS));
    let r = chat(
        &gw,
        "k-plain",
        &[],
        "gpt-x",
        "mail jane.doe@example.com about card 4111 1111 1111 1111",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sent: serde_json::Value =
        serde_json::from_str(a.requests()[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][0]["content"],
        "mail [REDACTED:EMAIL] about card [REDACTED:CREDIT_CARD]"
    );
    assert!(!a.requests()[0]["body"]
        .as_str()
        .unwrap()
        .contains("jane.doe"));
}

#[test]
fn flag_lets_the_request_through_and_says_so() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, GUARDRAILS));
    let r = chat(
        &gw,
        "k-plain",
        &[],
        "gpt-x",
        "about the Lawsuit, please summarise",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-tollgate-guardrail-flags"), Some("legal"));
    assert_eq!(
        chat(&gw, "k-plain", &[], "gpt-x", "nothing here").header("x-tollgate-guardrail-flags"),
        None
    );
}

#[test]
fn body_fallbacks_are_not_sent_upstream() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", "Bearer k-plain")],
        &json!({"model": "gpt-x", "fallbacks": ["b/other"], "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let sent: serde_json::Value =
        serde_json::from_str(a.requests()[0]["body"].as_str().unwrap()).unwrap();
    assert!(sent.get("fallbacks").is_none(), "{sent}");
}

#[test]
fn a_client_cannot_pin_a_provider_outside_its_list() {
    let (a, b) = (Mock::start(&[]), Mock::start(&[]));
    let gw = Gateway::start(&config(&a, &b, ""));
    let r = chat(&gw, "k-plain", &[], "b/gpt-x", "hi");
    assert_eq!(
        (r.status, r.error_type().as_str()),
        (403, "model_not_allowed"),
        "{}",
        r.body
    );
}
