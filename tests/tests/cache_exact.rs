//! The exact response cache through the real gateway: hits whatever the JSON field order, never
//! across models, parameters or tenants, streamed answers replayed to the official SDKs, TTLs,
//! a Redis store shared by two gateways, and a cache that fails open.

use serde_json::{json, Value};
use std::time::Duration;
use tollgate_e2e::{get, post_raw, python_json, Gateway, Mock, RedisServer};

const PRICING: &str = "pricing: {m: {input: 1000, output: 1000}}\n";

fn config(mock: &Mock, cache: &str) -> String {
    format!(
        "{PRICING}cache: {cache}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
teams: [{{id: t}}]
virtual_keys:
  - {{id: vk-a, key: key-a, team: t, rate_limit: {{requests: {{limit: 100, window: 1m}}}}}}
  - {{id: vk-b, key: key-b, team: t}}
",
        mock.base_url()
    )
}

fn chat_raw(gw: &Gateway, key: &str, body: &str, extra: &[(&str, &str)]) -> tollgate_e2e::Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    post_raw(
        &format!("{}/v1/chat/completions", gw.url),
        &headers,
        body.as_bytes(),
    )
}

fn chat(gw: &Gateway, key: &str, body: &Value) -> tollgate_e2e::Reply {
    chat_raw(gw, key, &body.to_string(), &[])
}

fn cache_of(r: &tollgate_e2e::Reply) -> &str {
    r.header("x-tollgate-cache").unwrap_or("none")
}

#[test]
fn reordered_fields_hit_and_other_models_params_or_keys_never_do() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, "{mode: exact, ttl: 1h}"));
    let first = chat_raw(
        &gw,
        "key-a",
        r#"{"model":"m","temperature":0.2,"messages":[{"role":"user","content":"What is  a gateway?"}]}"#,
        &[],
    );
    assert_eq!(
        (first.status, cache_of(&first)),
        (200, "miss"),
        "{}",
        first.body
    );
    // Same request, fields reordered and whitespace changed.
    let again = chat_raw(
        &gw,
        "key-a",
        r#"{"messages":[{"content":"What is a gateway?","role":"user"}],"temperature":0.2,"model":"m"}"#,
        &[],
    );
    assert_eq!(cache_of(&again), "hit-exact", "{}", again.body);
    assert_eq!(again.json()["choices"], first.json()["choices"]);
    assert_eq!(
        mock.requests().len(),
        1,
        "the hit never reached the provider"
    );

    let base = json!({"model": "m", "temperature": 0.2,
                      "messages": [{"role": "user", "content": "What is a gateway?"}]});
    let mut other_temp = base.clone();
    other_temp["temperature"] = json!(0.9);
    let mut other_model = base.clone();
    other_model["model"] = json!("m2");
    for (key, body) in [
        ("key-a", &other_temp),
        ("key-a", &other_model),
        ("key-b", &base),
    ] {
        let r = chat(&gw, key, body);
        assert_eq!((r.status, cache_of(&r)), (200, "miss"), "{key} {body}");
    }
    assert_eq!(mock.requests().len(), 4);

    // A hit is logged, counted against the request limit, and costs nothing.
    assert_eq!(gw.used("virtual_key:vk-a", "requests"), json!(4));
    // The log is written in batches: wait for the record.
    let mut logs = Value::Null;
    for _ in 0..100 {
        logs = get(
            &format!("{}/admin/logs?key=vk-a&cache=hit-exact", gw.admin_url),
            &[],
        )
        .json();
        if logs["records"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let hit = &logs["records"][0];
    assert_eq!(hit["cache"], "hit-exact", "{logs}");
    assert_eq!(hit["cost_usd"], 0.0);
    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        metrics.contains("tollgate_cache_total{result=\"hit-exact\"} 1"),
        "{metrics}"
    );
}

#[test]
fn streams_are_replayed_to_the_sdks_and_ttls_expire() {
    let mock = Mock::start(&["--stream-chunks", "5"]);
    let gw = Gateway::start(&config(&mock, "{mode: exact, ttl: 1h}"));
    let got = python_json(
        &["openai"],
        &format!(
            r#"
import json, openai
client = openai.OpenAI(base_url="{}/v1", api_key="key-a", max_retries=0)
def run():
    raw = client.chat.completions.with_raw_response.create(model="m", stream=True,
        messages=[{{"role": "user", "content": "tell me a story"}}])
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return {{"cache": raw.headers.get("x-tollgate-cache"), "text": text}}
print(json.dumps([run(), run()]))
"#,
            gw.url
        ),
    );
    assert_eq!(got[0]["cache"], "miss", "{got}");
    assert_eq!(got[1]["cache"], "hit-exact", "{got}");
    assert_eq!(got[0]["text"], got[1]["text"]);
    assert!(got[1]["text"].as_str().unwrap().starts_with("mock reply"));
    assert_eq!(mock.requests().len(), 1);

    // The same question from an Anthropic client is its own entry, replayed in its format.
    let anthropic = python_json(
        &["anthropic"],
        &format!(
            r#"
import json, anthropic
client = anthropic.Anthropic(base_url="{}/anthropic", api_key="key-a", max_retries=0)
def run():
    with client.messages.stream(model="m", max_tokens=50,
            messages=[{{"role": "user", "content": "tell me a story"}}]) as s:
        return s.get_final_message().content[0].text
print(json.dumps([run(), run()]))
"#,
            gw.url
        ),
    );
    assert_eq!(anthropic[0], anthropic[1], "{anthropic}");
    assert_eq!(mock.requests().len(), 2);

    // A per-request TTL: gone after it passes.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "short-lived"}]});
    let ttl = [("x-tollgate-cache-ttl", "1s")];
    let r = chat_raw(&gw, "key-a", &body.to_string(), &ttl);
    assert_eq!(cache_of(&r), "miss");
    let r = chat_raw(&gw, "key-a", &body.to_string(), &ttl);
    assert_eq!(cache_of(&r), "hit-exact");
    std::thread::sleep(Duration::from_millis(1300));
    let r = chat_raw(&gw, "key-a", &body.to_string(), &ttl);
    assert_eq!(cache_of(&r), "miss");
    // Bad directives are the client's error.
    let r = chat_raw(
        &gw,
        "key-a",
        &body.to_string(),
        &[("x-tollgate-cache-ttl", "soon")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("x-tollgate-cache-ttl"), "{}", r.body);
    let r = chat_raw(
        &gw,
        "key-a",
        &body.to_string(),
        &[("x-tollgate-cache", "off")],
    );
    assert_eq!(cache_of(&r), "off");
}

#[test]
fn redis_store_is_shared_by_two_gateways_and_failing_redis_means_miss() {
    let mut redis = RedisServer::start();
    let mock = Mock::start(&[]);
    let cache = format!(
        "{{mode: exact, scope: team, store: {{kind: redis, url: '{}'}}}}",
        redis.url()
    );
    let one = Gateway::start(&config(&mock, &cache));
    let two = Gateway::start(&config(&mock, &cache));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "shared answer"}]});
    let r = chat(&one, "key-a", &body);
    assert_eq!(cache_of(&r), "miss");
    // Written off the response path: give the write a moment.
    let mut hit = None;
    for _ in 0..50 {
        let r = chat(&two, "key-b", &body);
        if cache_of(&r) == "hit-exact" {
            hit = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let hit = hit.expect("the second gateway (another key of the same team) hit");
    assert_eq!(hit.json()["choices"], r.json()["choices"]);

    redis.kill();
    let r = chat(
        &one,
        "key-a",
        &json!({"model": "m", "messages": [{"role": "user", "content": "redis is down"}]}),
    );
    assert_eq!((r.status, cache_of(&r)), (200, "miss"), "{}", r.body);
    let metrics = get(&format!("{}/metrics", one.admin_url), &[]).body;
    assert!(
        !metrics.contains("tollgate_cache_total{result=\"error\"} 0"),
        "{metrics}"
    );
}

#[test]
fn semantic_mode_without_an_embedder_is_refused_rather_than_quietly_exact() {
    let mock = Mock::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, config(&mock, "{mode: semantic}")).unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`mode: semantic` needs `embedder"), "{err}");
}

#[test]
fn hits_can_be_left_out_of_request_limits() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&format!(
        "cache: {{mode: exact, count_hits_against_limits: false}}
providers: [{{name: p, kind: openai_compatible, base_url: {}}}]
virtual_keys:
  - {{id: vk-a, key: key-a, rate_limit: {{requests: {{limit: 2, window: 1m}}}}}}
",
        mock.base_url()
    ));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "free repeats"}]});
    let first = chat(&gw, "key-a", &body);
    assert_eq!((first.status, cache_of(&first)), (200, "miss"));
    for _ in 0..3 {
        let r = chat(&gw, "key-a", &body);
        assert_eq!((r.status, cache_of(&r)), (200, "hit-exact"), "{}", r.body);
    }
    assert_eq!(gw.used("virtual_key:vk-a", "requests"), json!(1));
    // A new question still meets the limit as usual.
    let other = json!({"model": "m", "messages": [{"role": "user", "content": "another"}]});
    assert_eq!(chat(&gw, "key-a", &other).status, 200);
    assert_eq!(
        chat(
            &gw,
            "key-a",
            &json!({"model": "m", "messages": [{"role": "user", "content": "third"}]})
        )
        .status,
        429
    );
}
