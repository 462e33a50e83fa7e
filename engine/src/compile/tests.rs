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
        chat_url(&plan.providers[0]),
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
fn bedrock_provider_signs_for_its_region_and_puts_the_model_in_the_url() {
    let plan = build(
        "providers: [{name: b, kind: bedrock, region: eu-west-3,
          keys: [{access_key_id: AKIDEXAMPLE, secret_access_key: s3cr3t, session_token: tok},
                 {name: api, key: ABSKapikey}]}]",
    )
    .unwrap();
    let p = &plan.providers[0];
    assert_eq!(p.wire, crate::plan::ProviderWire::Bedrock);
    assert_eq!(p.aws_region.as_deref(), Some("eu-west-3"));
    let url = |stream| {
        p.urls
            .for_request(false, stream, "anthropic.claude-3-5-sonnet-20240620-v1:0")
            .unwrap()
            .to_string()
    };
    assert_eq!(
        url(false),
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert!(url(true).ends_with("/converse-stream"));
    // Embedding models answer InvokeModel, whether or not the client asked for a stream.
    for stream in [false, true] {
        let invoke = p
            .urls
            .for_request(true, stream, "amazon.titan-embed-text-v2:0")
            .unwrap();
        assert_eq!(
            invoke.path(),
            "/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
    }
    let signing = p.keys[0].aws.as_ref().expect("the first key signs");
    assert_eq!(&*signing.access_key_id, "AKIDEXAMPLE");
    assert_eq!(signing.session_token.as_deref(), Some("tok"));
    assert!(!format!("{signing:?}").contains("s3cr3t"));
    // A Bedrock API key is a bearer token.
    assert!(p.keys[1].aws.is_none());
    assert_eq!(p.keys[1].authorization.as_bytes(), b"Bearer ABSKapikey");

    let plan = build(
        "providers: [{name: b, kind: bedrock, region: us-east-1, base_url: 'http://127.0.0.1:9/',
          keys: [{key: k}]}]",
    )
    .unwrap();
    assert_eq!(
        chat_url(&plan.providers[0]),
        "http://127.0.0.1:9/model/m/converse"
    );
}

#[test]
fn bedrock_settings_are_checked() {
    let errors = |text: &str| -> String {
        build(text)
            .unwrap_err()
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = errors("providers: [{name: b, kind: bedrock, keys: [{key: k}]}]");
    assert!(e.contains("needs a region"), "{e}");
    let e = errors("providers: [{name: b, kind: bedrock, region: 'US East'}]");
    assert!(e.contains("region `US East` may hold only"), "{e}");
    let e = errors("providers: [{name: b, kind: bedrock, region: us-east-1}]");
    assert!(e.contains("needs at least one key"), "{e}");
    let e = errors(
        "providers: [{name: b, kind: bedrock, region: us-east-1, keys: [{access_key_id: A}]}]",
    );
    assert!(
        e.contains("need both `access_key_id` and `secret_access_key`"),
        "{e}"
    );
    let e = errors(
        "providers: [{name: b, kind: bedrock, region: us-east-1,
          keys: [{key: k, access_key_id: A, secret_access_key: S}]}]",
    );
    assert!(e.contains("either `key`"), "{e}");
    let e = errors(
        "providers: [{name: o, kind: openai, region: us-east-1,
          keys: [{access_key_id: A, secret_access_key: S}]}]",
    );
    assert!(
        e.contains("`region` applies to providers of kind bedrock"),
        "{e}"
    );
    assert!(
        e.contains("`access_key_id` applies to keys of bedrock"),
        "{e}"
    );
}

#[test]
fn anthropic_provider_compiles_with_its_url_and_headers() {
    let plan = build("providers: [{name: c, kind: anthropic, keys: [{key: sk-ant}]}]").unwrap();
    let p = &plan.providers[0];
    assert_eq!(chat_url(p), "https://api.anthropic.com/v1/messages");
    assert_eq!(
        p.wire,
        crate::plan::ProviderWire::Anthropic {
            default_max_tokens: 4096
        }
    );
    assert_eq!(p.auth_header.as_str(), "x-api-key");
    assert_eq!(p.keys[0].authorization.as_bytes(), b"sk-ant");
    assert_eq!(p.fixed_headers.len(), 1);
    assert_eq!(p.fixed_headers[0].0.as_str(), "anthropic-version");
    assert_eq!(p.fixed_headers[0].1.as_bytes(), b"2023-06-01");

    let plan = build("providers: [{name: c, kind: anthropic, base_url: 'http://h:1/'}]").unwrap();
    assert_eq!(chat_url(&plan.providers[0]), "http://h:1/v1/messages");
    let plan = build("providers: [{name: o, kind: openai, keys: [{key: sk-o}]}]").unwrap();
    assert_eq!(plan.providers[0].auth_header, http::header::AUTHORIZATION);
    assert_eq!(
        plan.providers[0].keys[0].authorization.as_bytes(),
        b"Bearer sk-o"
    );
    assert!(plan.providers[0].fixed_headers.is_empty());
}

fn chat_url(p: &crate::plan::ProviderPlan) -> String {
    p.urls.for_request(false, false, "m").unwrap().to_string()
}

#[test]
fn azure_provider_puts_the_deployment_in_the_url() {
    let plan = build(
        "providers: [{name: az, kind: azure, base_url: 'https://res.openai.azure.com/',
          api_version: 2024-10-21, deployments: {gpt-4o: prod-4o}, keys: [{key: azk}]}]",
    )
    .unwrap();
    let p = &plan.providers[0];
    assert_eq!(
        p.urls.for_request(false, false, "gpt-4o").unwrap().to_string(),
        "https://res.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    );
    // A model without a mapping is its own deployment.
    assert_eq!(
        p.urls.for_request(true, false, "text-embedding-3-small").unwrap().to_string(),
        "https://res.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    );
    assert!(p.urls.for_request(false, false, "a/../b").is_err());
    assert_eq!(p.auth_header.as_str(), "api-key");
    assert_eq!(p.keys[0].authorization.as_bytes(), b"azk");
    assert_eq!(p.wire, crate::plan::ProviderWire::OpenAi);
}

#[test]
fn gemini_provider_puts_model_stream_and_embeddings_in_the_url() {
    let plan = build("providers: [{name: g, kind: gemini, keys: [{key: gk}]}]").unwrap();
    let p = &plan.providers[0];
    let url = |stream, model| {
        p.urls
            .for_request(false, stream, model)
            .map(|u| u.to_string())
    };
    assert_eq!(
        url(false, "gemini-2.5-flash").unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        url(true, "gemini-2.5-flash").unwrap(),
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(url(false, "../x").is_err());
    // Embeddings go to the batch endpoint, whatever `stream` says.
    for stream in [false, true] {
        assert_eq!(
            p.urls
                .for_request(true, stream, "text-embedding-004")
                .unwrap()
                .to_string(),
            "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents"
        );
    }
    assert!(p.urls.for_request(true, false, "a/b").is_err());
    assert_eq!(p.auth_header.as_str(), "x-goog-api-key");
    assert_eq!(p.keys[0].authorization.as_bytes(), b"gk");
    assert_eq!(p.wire, crate::plan::ProviderWire::Gemini);
}

#[test]
fn azure_settings_are_checked() {
    let errs =
        build("providers: [{name: az, kind: azure, base_url: 'https://r.example'}]").unwrap_err();
    assert!(errs[0].message.contains("needs an api_version"), "{errs:?}");
    let errs = build("providers: [{name: az, kind: azure, api_version: v1}]").unwrap_err();
    assert!(errs[0].message.contains("needs a base_url"), "{errs:?}");
    let errs = build(
        "providers: [{name: az, kind: azure, base_url: 'https://r.example', api_version: v1,
          deployments: {m: 'has space'}}]",
    )
    .unwrap_err();
    assert!(
        errs[0].message.contains("valid Azure deployment name"),
        "{errs:?}"
    );
    // Settings of one kind given to another would silently do nothing.
    let errs =
        build("providers: [{name: o, kind: openai, api_version: v1, default_max_tokens: 9}]")
            .unwrap_err();
    let text = format!("{errs:?}");
    assert!(
        text.contains("`api_version` applies to providers of kind azure"),
        "{text}"
    );
    assert!(
        text.contains("`default_max_tokens` applies to providers of kind anthropic"),
        "{text}"
    );
}

#[test]
fn anthropic_default_max_tokens_is_configurable() {
    let plan = build("providers: [{name: c, kind: anthropic, default_max_tokens: 1024}]").unwrap();
    assert_eq!(
        plan.providers[0].wire,
        crate::plan::ProviderWire::Anthropic {
            default_max_tokens: 1024
        }
    );
    let errs = build("providers: [{name: c, kind: anthropic, default_max_tokens: 0}]").unwrap_err();
    assert!(errs[0].message.contains("at least 1"), "{errs:?}");
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

#[test]
fn provider_timeouts_default_and_compile() {
    let plan = build(BASE).unwrap();
    let t = plan.providers[0].timeouts;
    let secs = std::time::Duration::from_secs;
    assert_eq!(
        (t.connect, t.first_byte, t.total, t.stream_idle),
        (secs(10), secs(600), secs(600), secs(60))
    );
    let text = BASE.replace(
        "    base_url: http://127.0.0.1:9/v1\n",
        "    base_url: http://127.0.0.1:9/v1\n    timeout: 30s\n    connect_timeout: 2s\n    stream_idle_timeout: 5s\n",
    );
    let t = build(&text).unwrap().providers[1].timeouts;
    // first_byte_timeout follows timeout when not given.
    assert_eq!(
        (t.connect, t.first_byte, t.total, t.stream_idle),
        (secs(2), secs(30), secs(30), secs(5))
    );
}

#[test]
fn bad_provider_timeouts_are_located() {
    let text = BASE.replace(
        "    base_url: http://127.0.0.1:9/v1\n",
        "    base_url: http://127.0.0.1:9/v1\n    timeout: 10s\n    first_byte_timeout: 20s\n    connect_timeout: 0ms\n    stream_idle_timeout: 2d\n",
    );
    let errs = build(&text).unwrap_err();
    let found: Vec<(usize, usize, &str)> = errs
        .iter()
        .map(|e| (e.line, e.col, e.message.as_str()))
        .collect();
    assert_eq!(found.len(), 3, "{errs:?}");
    assert_eq!((found[0].0, found[0].1), (10, 25), "{errs:?}");
    assert!(found[0]
        .2
        .contains("first_byte_timeout (20s) is longer than timeout (10s)"));
    assert_eq!((found[1].0, found[1].1), (11, 22), "{errs:?}");
    assert!(found[1].2.contains("connect_timeout must be above 0"));
    assert_eq!((found[2].0, found[2].1), (12, 26), "{errs:?}");
    assert!(found[2].2.contains("at most 24h"));
}

const MCP: &str = "\
mcp:
  servers:
    - {name: fs, transport: stdio, command: node, args: [fs.js]}
    - {name: db, transport: http, url: \"http://127.0.0.1:9/mcp\", prices: {query: 0.002, \"*\": 0.001}}
  tool_groups:
    readonly: [fs__read_*, db__query]
teams:
  - {id: support, mcp: {allow: [\"group:readonly\"], rate_limit: {requests: {limit: 5, window: 1m}}}}
virtual_keys:
  - id: vk-support
    key: s1
    team: support
    mcp: {deny: [db__*], rate_limit: {concurrent: 2}}
  - id: vk-free
    key: s2
";

#[test]
fn mcp_scopes_merge_key_and_team_and_tiers_are_bound() {
    let plan = build(MCP).unwrap();
    let support = plan.key_by_id("vk-support").unwrap();
    assert!(support.mcp.scope.permits("fs__read_file"));
    assert!(
        !support.mcp.scope.permits("db__query"),
        "the key's deny narrows the team"
    );
    assert!(
        !support.mcp.scope.permits("fs__write_file"),
        "outside the team's group"
    );
    let scopes: Vec<&str> = support.mcp.limits.iter().map(|l| &*l.scope).collect();
    assert_eq!(scopes, ["virtual_key:vk-support/mcp", "team:support/mcp"]);
    let free = plan.key_by_id("vk-free").unwrap();
    assert!(free.mcp.scope.permits("db__drop_table"));
    assert!(free.mcp.limits.is_empty());
    let db = plan.mcp.server("db").unwrap();
    assert_eq!(
        (db.price_micros("query"), db.price_micros("other")),
        (2000, 1000)
    );
}

#[test]
fn mcp_config_errors_name_the_problem() {
    let errs = |text: &str| {
        build(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let e = errs("mcp:\n  servers:\n    - {name: a__b, transport: stdio, command: x}\n");
    assert!(e.contains("t.yaml:3:"), "{e}");
    assert!(e.contains("without `__`"), "{e}");
    let e = errs("mcp:\n  servers:\n    - {name: a, transport: http, url: \"ftp://x\"}\n");
    assert!(e.contains("not an http:// or https:// URL"), "{e}");
    let e = errs("mcp:\n  servers:\n    - {name: a, transport: stdio, url: \"http://x\"}\n");
    assert!(e.contains("needs `command`"), "{e}");
    let e = errs(
        "mcp:\n  servers:\n    - {name: a, transport: http, url: \"http://x\", headers: {mcp-session-id: x}}\n",
    );
    assert!(e.contains("set by the MCP transport"), "{e}");
    let e = errs("mcp:\n  session_secret: short\n");
    assert!(e.contains("at least 16 characters"), "{e}");
}
