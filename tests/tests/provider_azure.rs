//! Providers of `kind: azure`: the request goes to the deployment's URL with the configured
//! `api-version` and the key in `api-key`, in the OpenAI wire format, and the OpenAI SDK gets
//! the answer unchanged. The mock records what it received.

use serde_json::{json, Value};
use tollgate_e2e::{post_json, Gateway, Mock};

const VK: &str = "vk-secret-azure";

fn config(mock: &Mock) -> String {
    format!(
        "providers:
  - name: az
    kind: azure
    base_url: {}/
    api_version: 2024-10-21
    deployments: {{gpt-4o: prod-gpt4o}}
    keys: [{{name: main, key: az-secret-key}}]
virtual_keys:
  - {{id: vk-az, key: {VK}}}
",
        mock.url
    )
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer vk-secret-azure")]
}

#[test]
fn chat_goes_to_the_mapped_deployment_with_api_key() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock));
    let reply = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["object"], "chat.completion");
    assert_eq!(reply.header("x-tollgate-provider"), Some("az"));

    let seen = mock.requests();
    let last: &Value = seen.last().expect("the mock saw the request");
    assert_eq!(
        last["path"], "/openai/deployments/prod-gpt4o/chat/completions",
        "{last}"
    );
    assert_eq!(last["query"], "api-version=2024-10-21");
    assert_eq!(last["headers"]["api-key"], "az-secret-key");
    assert!(
        last["headers"].get("authorization").is_none(),
        "the caller's key must not travel upstream: {last}"
    );
}

#[test]
fn unmapped_model_is_its_own_deployment_and_bad_names_are_refused() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock));
    let reply = post_json(
        &format!("{}/v1/embeddings", gw.url),
        &auth(),
        &json!({"model": "text-embedding-3-small", "input": "hello"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let seen = mock.requests();
    assert_eq!(
        seen.last().unwrap()["path"],
        "/openai/deployments/text-embedding-3-small/embeddings"
    );

    // A model name that cannot be a deployment never reaches the provider.
    let reply = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth(),
        &json!({"model": "gpt 4o?x=1", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.error_type(), "invalid_request");
    assert!(
        reply.body.contains("Azure deployment name"),
        "{}",
        reply.body
    );
    assert_eq!(mock.requests().len(), seen.len());
}
