use super::compile;
use crate::config::{load_str, ConfigError, ConfigFormat};
use crate::plan::Plan;

fn build(text: &str) -> Result<Plan, Vec<ConfigError>> {
    compile(&load_str(text, "t.yaml", ConfigFormat::Yaml).expect("parses"))
}

const BASE: &str = "\
providers:
  - name: openai
    kind: openai
    keys: [{name: k1, key: sk-one}]
    models: [gpt-4o, gpt-4o-mini]
  - name: local
    kind: openai_compatible
    base_url: http://127.0.0.1:9/v1
teams: [{id: ml}]
virtual_keys:
  - id: vk-ml
    key: secret-ml
    team: ml
    models: [gpt-4o, \"regex:^llama\"]
    providers: [{provider: openai, weight: 3}, {provider: local}]
";

#[test]
fn compiles_keys_providers_and_models() {
    let plan = build(BASE).unwrap();
    assert_eq!(plan.providers.len(), 2);
    assert_eq!(
        plan.providers[0].chat_url.to_string(),
        "https://api.openai.com/v1/chat/completions"
    );
    let key = plan.key_by_id("vk-ml").unwrap();
    let weights: Vec<(usize, u32)> = key
        .providers
        .iter()
        .map(|p| (p.provider, p.weight))
        .collect();
    assert_eq!(weights, vec![(0, 3), (1, 1)]);
    assert!(key.models.matches("llama-3"));
    let listed: serde_json::Value = serde_json::from_slice(&key.models_list).unwrap();
    assert_eq!(listed["data"][0]["id"], "gpt-4o");
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[test]
fn unknown_provider_on_a_key_is_located() {
    let text = BASE.replace("{provider: local}", "{provider: nope}");
    let errs = build(&text).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].col), (15, 59));
    assert!(errs[0].message.contains("unknown provider `nope`"));
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = BASE
        .replace("team: ml", "team: nobody")
        .replace("\"regex:^llama\"", "\"regex:(\"")
        .replace("base_url: http://127.0.0.1:9/v1", "base_url: ftp://x");
    let errs = build(&text).unwrap_err();
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![8, 13, 14], "{errs:?}");
    assert!(errs[0].message.contains("invalid base_url"));
    assert!(errs[1].message.contains("unknown team `nobody`"));
    assert!(errs[2].message.contains("invalid model regex"));
}

#[test]
fn key_needs_exactly_one_secret_form() {
    let errs = build(&BASE.replace("key: secret-ml", "key_sha256: nothex")).unwrap_err();
    assert!(errs[0].message.contains("64 hex"));
    let errs = build(&BASE.replace("    key: secret-ml\n", "")).unwrap_err();
    assert!(errs[0].message.contains("needs `key` or `key_sha256`"));
}

#[test]
fn duplicate_ids_and_secrets_are_refused() {
    let text = format!("{BASE}  - id: vk-ml\n    key: secret-ml\n");
    let errs = build(&text).unwrap_err();
    assert!(errs
        .iter()
        .any(|e| e.message.contains("duplicate virtual key id `vk-ml`")));
    assert!(errs.iter().any(|e| e.message.contains("same secret")));
}

#[test]
fn unsupported_provider_kind_says_so() {
    let errs = build("providers: [{name: a, kind: bedrock}]").unwrap_err();
    assert!(errs[0].message.contains("`bedrock` is not supported yet"));
}

#[test]
fn redacted_config_hides_secrets() {
    let plan = build(BASE).unwrap();
    let text = String::from_utf8(plan.redacted_config.to_vec()).unwrap();
    assert!(
        !text.contains("sk-one") && !text.contains("secret-ml"),
        "{text}"
    );
    assert!(text.contains("[REDACTED]"));
}
