//! The semantic cache through the real gateway, with the real embedding model
//! (all-MiniLM-L6-v2 from PyPI, installed by policies/install-embedder.sh): a paraphrase hits
//! with its similarity reported, an unrelated question misses, and a hit never crosses models,
//! parameters or tenants; a streamed answer is replayed to the OpenAI SDK; a missing model is
//! a clear startup error.
#![cfg(feature = "semantic")]

use serde_json::{json, Value};
use std::process::Command;
use tollgate_e2e::{embedder_dir, get, post_json, python_json, Gateway, Mock};

fn config(mock: &Mock, extra: &str) -> String {
    format!(
        "cache: {{mode: semantic, threshold: 0.8, embedder: {{kind: fastembed, model_dir: '{}'}}{extra}}}
providers:
  - {{name: p, kind: openai_compatible, base_url: {}}}
virtual_keys:
  - {{id: vk-a, key: key-a}}
  - {{id: vk-b, key: key-b}}
",
        embedder_dir().display(),
        mock.base_url()
    )
}

fn ask(gw: &Gateway, key: &str, body: &Value) -> tollgate_e2e::Reply {
    let auth = format!("Bearer {key}");
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", auth.as_str())],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn question(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn cache_of(r: &tollgate_e2e::Reply) -> &str {
    r.header("x-tollgate-cache").unwrap_or("none")
}

#[test]
fn paraphrases_hit_and_unrelated_questions_models_or_tenants_miss() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""));
    let first = ask(&gw, "key-a", &question("m", "How do I reset my password?"));
    assert_eq!(cache_of(&first), "miss");

    let again = ask(&gw, "key-a", &question("m", "How can I reset my password?"));
    assert_eq!(cache_of(&again), "hit-semantic", "{:?}", again.headers);
    let similarity: f32 = again
        .header("x-tollgate-cache-similarity")
        .expect("similarity reported")
        .parse()
        .unwrap();
    assert!((0.8..=1.0001).contains(&similarity), "{similarity}");
    assert_eq!(again.json()["choices"], first.json()["choices"]);
    // The same question, word for word, is an exact hit.
    let exact = ask(&gw, "key-a", &question("m", "How do I reset my password?"));
    assert_eq!(cache_of(&exact), "hit-exact");

    for (key, body, why) in [
        (
            "key-a",
            question("m", "What is the capital of France?"),
            "unrelated",
        ),
        (
            "key-a",
            question("m2", "How can I reset my password?"),
            "another model",
        ),
        (
            "key-b",
            question("m", "How can I reset my password?"),
            "another key",
        ),
        (
            "key-a",
            json!({"model": "m", "temperature": 1.5,
                "messages": [{"role": "user", "content": "How can I reset my password?"}]}),
            "other parameters",
        ),
    ] {
        let r = ask(&gw, key, &body);
        assert_eq!(cache_of(&r), "miss", "{why}");
    }
    // Every miss reached the provider, no hit did.
    assert_eq!(mock.requests().len(), 5);

    let metrics = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    assert!(
        metrics.contains("tollgate_cache_total{result=\"hit-semantic\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_cache_index_entries 5"),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_cache_embedding_seconds_count"));
}

#[test]
fn a_question_with_other_numbers_never_hits_semantically() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, ""));
    let asked = ask(
        &gw,
        "key-a",
        &question("m", "My order #10432 hasn't arrived yet."),
    );
    assert_eq!(cache_of(&asked), "miss");
    // The same numbers in other words: answered from the cache.
    let same = ask(
        &gw,
        "key-a",
        &question("m", "My order #10432 still has not arrived."),
    );
    assert_eq!(cache_of(&same), "hit-semantic", "{:?}", same.headers);
    // Another order number embeds almost identically, but is another question.
    let other = ask(
        &gw,
        "key-a",
        &question("m", "My order #10487 hasn't arrived yet."),
    );
    assert_eq!(cache_of(&other), "miss", "{:?}", other.headers);
    // Without digits on either side, meaning alone decides, as before.
    let plain = ask(&gw, "key-a", &question("m", "How do I reset my password?"));
    assert_eq!(cache_of(&plain), "miss");
    let reworded = ask(&gw, "key-a", &question("m", "How can I reset my password?"));
    assert_eq!(cache_of(&reworded), "hit-semantic");
}

#[test]
fn a_streamed_answer_is_replayed_to_the_sdk_for_a_paraphrase() {
    let mock = Mock::start(&["--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock, ""));
    let got = python_json(
        &["openai"],
        &format!(
            r#"
import json, openai
client = openai.OpenAI(base_url="{}/v1", api_key="key-a", max_retries=0)
out = []
for q in ["Which plan includes single sign-on?", "Which plan has single sign-on included?"]:
    raw = client.chat.completions.with_raw_response.create(model="m", stream=True,
        messages=[{{"role": "user", "content": q}}])
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    out.append({{"cache": raw.headers.get("x-tollgate-cache"), "text": text}})
print(json.dumps(out))
"#,
            gw.url
        ),
    );
    assert_eq!(got[0]["cache"], "miss", "{got}");
    assert_eq!(got[1]["cache"], "hit-semantic", "{got}");
    assert!(got[0]["text"].as_str().unwrap().starts_with("mock reply"));
    assert_eq!(got[1]["text"], got[0]["text"]);
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn a_missing_model_is_a_startup_error_and_no_embedder_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(
        &path,
        "cache: {mode: semantic, embedder: {kind: fastembed, model_dir: ./nowhere}}\n",
    )
    .unwrap();
    let out = Command::new(tollgate_e2e::bin_path("tollgate"))
        .args(["serve", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere"), "{err}");
    assert!(err.contains("install-embedder.sh"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(&path, "cache: {mode: semantic}\n").unwrap();
    let out = tollgate_e2e::run_tollgate(&["check", "-c", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("needs `embedder"), "{said}");
}
