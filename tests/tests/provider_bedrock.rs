//! Providers of `kind: bedrock`: OpenAI and Anthropic clients reach the Converse API at
//! `/model/{id}/converse` (or `/converse-stream`, answered in AWS's binary event-stream
//! framing), each attempt signed with SigV4 for the configured region — checked here against
//! botocore's own signer — or sent with a Bedrock API key; answers, streams, tool calls, usage
//! and AWS errors come back in the client's format. Embeddings reach Titan and Cohere models
//! through InvokeModel (`/model/{id}/invoke`).

use serde_json::{json, Value};
use tollgate_e2e::{post_json, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-bedrock";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const ACCESS_KEY: &str = "AKIDTOLLGATETEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION: &str = "session-token-for-test";

fn config(mock: &Mock) -> String {
    format!(
        "providers:
  - name: br
    kind: bedrock
    region: us-west-2
    base_url: {}
    keys:
      - {{access_key_id: {ACCESS_KEY}, secret_access_key: '{SECRET}', session_token: {SESSION}}}
virtual_keys:
  - {{id: vk-b, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}},
      budget: {{limit_usd: 10, window: 1d}}}}
",
        mock.url
    )
}

fn sdk(gw: &Gateway, body: &str) -> Value {
    let script = format!(
        "import json, openai\nclient = openai.OpenAI(base_url=\"{}/v1\", api_key=\"{VK}\", max_retries=0)\n{body}",
        gw.url
    );
    python_json(&["openai"], &script)
}

/// Recomputes the signature of a request the mock recorded with botocore (the AWS SDK's own
/// signer), from the same credentials, region and `x-amz-date`, over the headers the
/// gateway says it signed. Returns (the gateway's Authorization, botocore's).
fn botocore_signature(mock: &Mock, recorded: &Value) -> (String, String) {
    let script = format!(
        r#"
import json
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
rec = json.loads({recorded:?})
h = rec["headers"]
signed = h["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
url = "{base}" + rec["path"] + ("?" + rec["query"] if rec.get("query") else "")
req = AWSRequest(method="POST", url=url, data=rec["body"].encode(),
                 headers={{n: h[n] for n in signed if n != "host"}})
req.context["timestamp"] = h["x-amz-date"]
auth = SigV4Auth(Credentials("{ACCESS_KEY}", "{SECRET}", "{SESSION}"), "bedrock", "us-west-2")
canonical = auth.canonical_request(req)
signature = auth.signature(auth.string_to_sign(req, canonical), req)
print(json.dumps({{"gateway": h["authorization"], "signature": signature, "signed": signed}}))
"#,
        recorded = recorded.to_string(),
        base = mock.url,
    );
    let got = python_json(&["botocore"], &script);
    (
        got["gateway"].as_str().unwrap().to_owned(),
        got["signature"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn openai_sdk_reaches_bedrock_signed_whole_and_streamed_and_is_charged() {
    let mock = Mock::start(&["--format", "bedrock", "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
msgs = [{{"role": "system", "content": "Be terse."}}, {{"role": "user", "content": "Say hello"}}]
r = client.chat.completions.create(model="{MODEL}", messages=msgs, max_tokens=50)
text, usage, finish, model = "", None, None, None
for c in client.chat.completions.create(model="{MODEL}", messages=msgs, stream=True,
        stream_options={{"include_usage": True}}):
    model = c.model or model
    if c.usage is not None:
        usage = c.usage.model_dump()
    for ch in c.choices:
        text += ch.delta.content or ""
        finish = ch.finish_reason or finish
print(json.dumps({{"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
    "id": r.id, "model": r.model, "usage": r.usage.model_dump(), "streamed": text,
    "stream_usage": usage, "stream_finish": finish, "stream_model": model}}))
"#
        ),
    );
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["finish"], "stop");
    // Converse answers name neither; the gateway fills in its own id and the routed model.
    assert!(
        got["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{got}"
    );
    assert_eq!(got["model"], MODEL);
    assert_eq!(got["stream_model"], MODEL);
    assert_eq!(got["streamed"], got["text"], "{got}");
    assert_eq!(got["stream_finish"], "stop");
    let whole = got["usage"]["total_tokens"].as_u64().unwrap();
    let streamed = got["stream_usage"]["total_tokens"].as_u64().unwrap();
    assert!(whole > 0 && streamed > 0, "{got}");
    assert_eq!(
        gw.used("virtual_key:vk-b", "tokens"),
        json!(whole + streamed)
    );
    // Priced from the built-in Bedrock table ($3 in / $15 out per 1M tokens).
    let prompt = got["usage"]["prompt_tokens"].as_f64().unwrap()
        + got["stream_usage"]["prompt_tokens"].as_f64().unwrap();
    let completion = got["usage"]["completion_tokens"].as_f64().unwrap()
        + got["stream_usage"]["completion_tokens"].as_f64().unwrap();
    let spent = gw.used("virtual_key:vk-b", "budget_usd").as_f64().unwrap();
    let expected = (prompt * 3.0 + completion * 15.0) / 1e6;
    assert!((spent - expected).abs() < 1e-9, "{spent} vs {expected}");

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    // The `:` of the model id is percent-encoded in the path.
    let path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse";
    assert_eq!(seen[0]["path"], path);
    assert_eq!(seen[1]["path"], format!("{path}-stream"));
    let body = recorded_body(&seen[0]);
    assert_eq!(body["system"], json!([{"text": "Be terse."}]));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text": "Say hello"}]}])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 50);
    assert!(
        body.get("model").is_none(),
        "the model is in the URL: {body}"
    );

    for request in &seen {
        let headers = &request["headers"];
        assert_eq!(headers["x-amz-security-token"], SESSION);
        let (gateway, botocore) = botocore_signature(&mock, request);
        assert!(
            gateway.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{}/us-west-2/bedrock/aws4_request",
                &headers["x-amz-date"].as_str().unwrap()[..8]
            )),
            "{gateway}"
        );
        assert!(
            gateway.ends_with(&format!("Signature={botocore}")),
            "botocore signs the same request as {botocore}, the gateway sent {gateway}"
        );
        assert!(!request.to_string().contains(VK));
        assert!(!request.to_string().contains(SECRET));
    }
}

#[test]
fn tool_calls_round_trip_and_anthropic_clients_reach_bedrock_too() {
    let mock = Mock::start(&["--format", "bedrock"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
tools = [{{"type": "function", "function": {{"name": "get_weather", "description": "Weather",
    "parameters": {{"type": "object", "properties": {{"city": {{"type": "string"}}}}}}}}}}]
ask = {{"role": "user", "content": "What is the weather in Paris?"}}
r = client.chat.completions.create(model="{MODEL}", messages=[ask], tools=tools)
m = r.choices[0].message
call = m.tool_calls[0]
follow = client.chat.completions.create(model="{MODEL}", tools=tools, messages=[ask,
    m.model_dump(exclude_none=True),
    {{"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"}}])
name, args = None, ""
for c in client.chat.completions.create(model="{MODEL}", messages=[ask], tools=tools, stream=True):
    for ch in c.choices:
        for tc in ch.delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
print(json.dumps({{"finish": r.choices[0].finish_reason, "name": call.function.name,
    "id": call.id, "args": json.loads(call.function.arguments),
    "follow": follow.choices[0].message.content, "stream_name": name,
    "stream_args": json.loads(args)}}))
"#
        ),
    );
    assert_eq!(got["finish"], "tool_calls", "{got}");
    assert_eq!(got["name"], "get_weather");
    assert_eq!(got["args"], json!({"city": "Paris"}));
    assert!(
        got["follow"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["stream_name"], "get_weather");
    assert_eq!(got["stream_args"], got["args"]);
    // The result went back as a toolResult in a user turn, under the call's id.
    let follow = recorded_body(&mock.requests()[1]);
    let messages = follow["messages"].as_array().unwrap();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][0]["toolUse"]["name"], "get_weather");
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"][0]["toolResult"]["toolUseId"],
        got["id"]
    );
    assert_eq!(
        follow["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );

    // The Anthropic SDK, through /anthropic, reaches the same provider.
    let script = format!(
        r#"
import json, anthropic
client = anthropic.Anthropic(base_url="{}/anthropic", api_key="{VK}", max_retries=0)
msgs = [{{"role": "user", "content": "Say hello"}}]
r = client.messages.create(model="{MODEL}", max_tokens=64, messages=msgs)
text = ""
with client.messages.stream(model="{MODEL}", max_tokens=64, messages=msgs) as s:
    for t in s.text_stream:
        text += t
    final = s.get_final_message()
print(json.dumps({{"text": r.content[0].text, "stop": r.stop_reason,
    "input": r.usage.input_tokens, "streamed": text, "stream_stop": final.stop_reason}}))
"#,
        gw.url
    );
    let got = python_json(&["anthropic"], &script);
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["stop"], "end_turn");
    assert!(got["input"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(got["streamed"], got["text"]);
    assert_eq!(got["stream_stop"], "end_turn");
}

#[test]
fn aws_errors_keep_the_exception_and_api_keys_are_bearer_tokens() {
    let mock = Mock::start(&["--fail-first", "1", "--fail-status", "400"]);
    let gw = Gateway::start(&format!(
        "providers:
  - {{name: br, kind: bedrock, region: eu-central-1, base_url: {}, keys: [{{key: ABSKbedrockapikey}}]}}
virtual_keys:
  - {{id: vk-b, key: {VK}}}
",
        mock.url
    ));
    let auth = [("authorization", "Bearer vk-secret-bedrock")];
    let chat = json!({"model": "amazon.nova-lite-v1:0",
        "messages": [{"role": "user", "content": "hi"}]});
    let url = format!("{}/v1/chat/completions", gw.url);
    let r = post_json(&url, &auth, &chat);
    assert_eq!(r.status, 400, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "ValidationException", "{}", r.body);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Bedrock ValidationException (HTTP 400): mock failure"),
        "{}",
        r.body
    );

    let r = post_json(&url, &auth, &chat);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = mock.requests();
    assert_eq!(
        seen[1]["headers"]["authorization"],
        "Bearer ABSKbedrockapikey"
    );
    assert!(seen[1]["headers"].get("x-amz-date").is_none());
}

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

#[test]
fn openai_sdk_embeds_with_titan_and_cohere_through_invoke_model_signed_and_charged() {
    let mock = Mock::start(&["--format", "bedrock"]);
    let gw = Gateway::start(&config(&mock));
    // Long, repetitive texts: the mock's token count (4 characters a token) is then far from
    // the gateway's own estimate, so the usage shows whose count was taken.
    let got = sdk(
        &gw,
        &format!(
            r#"
import base64, struct
long_a, long_b = "tollgate " * 40, "embedding " * 30
t = client.embeddings.create(model="{TITAN}", input=long_a, dimensions=256, encoding_format="float")
raw = client.embeddings.with_raw_response.create(model="{TITAN}", input=[long_a], dimensions=256)
b64 = json.loads(raw.text)["data"][0]["embedding"]
c = client.embeddings.create(model="{COHERE}", input=[long_a, long_b, long_a], encoding_format="float")
q = client.embeddings.create(model="{COHERE}", input=long_b, extra_body={{"input_type": "search_query"}})
try:
    client.embeddings.create(model="{TITAN}", input=["one", "two"])
    refused = None
except openai.BadRequestError as e:
    refused = {{"status": e.status_code, "body": e.body}}
print(json.dumps({{"titan": t.data[0].embedding, "titan_usage": t.usage.model_dump(),
    "titan_b64": list(struct.unpack("<256f", base64.b64decode(b64))),
    "cohere": [d.embedding for d in c.data], "cohere_indexes": [d.index for d in c.data],
    "cohere_usage": c.usage.model_dump(), "query_len": len(q.data[0].embedding),
    "query_usage": q.usage.model_dump(), "model": t.model, "refused": refused}}))
"#
        ),
    );
    let titan: Vec<f64> = serde_json::from_value(got["titan"].clone()).unwrap();
    assert_eq!(titan.len(), 256, "Titan's own dimensions were asked for");
    let norm: f64 = titan.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let b64: Vec<f64> = serde_json::from_value(got["titan_b64"].clone()).unwrap();
    assert!(titan.iter().zip(&b64).all(|(x, y)| (x - y).abs() < 1e-6));
    assert_eq!(got["model"], TITAN);
    // Titan counts the input's tokens in its answer: 360 characters, 90 by the mock's rule.
    assert_eq!(got["titan_usage"]["prompt_tokens"], 90, "{got}");
    let cohere: Vec<Vec<f64>> = serde_json::from_value(got["cohere"].clone()).unwrap();
    assert_eq!(cohere.len(), 3);
    assert_eq!(got["cohere_indexes"], json!([0, 1, 2]));
    assert_eq!(cohere[0], cohere[2], "equal texts embed equally, in order");
    assert_ne!(cohere[0], cohere[1]);
    assert_eq!(cohere[0].len(), 1024);
    // Cohere's count comes in Bedrock's header: (360 + 300 + 360) / 4.
    assert_eq!(got["cohere_usage"]["prompt_tokens"], 255, "{got}");
    assert_eq!(got["query_len"], 1024);
    assert_eq!(got["query_usage"]["prompt_tokens"], 75, "{got}");
    // Several texts for Titan, which embeds one per call: the client's error, nothing sent.
    assert_eq!(got["refused"]["status"], 400, "{got}");
    let message = got["refused"]["body"]["message"].as_str().unwrap();
    assert!(message.contains("one text per call"), "{message}");

    let seen = mock.requests();
    assert_eq!(seen.len(), 4, "the refused request never reached Bedrock");
    let titan_path = "/model/amazon.titan-embed-text-v2%3A0/invoke";
    assert_eq!(seen[0]["path"], titan_path);
    assert_eq!(seen[1]["path"], titan_path);
    assert_eq!(seen[2]["path"], format!("/model/{COHERE}/invoke"));
    let long_a = "tollgate ".repeat(40);
    let long_b = "embedding ".repeat(30);
    assert_eq!(
        recorded_body(&seen[0]),
        json!({"inputText": long_a, "dimensions": 256})
    );
    assert_eq!(
        recorded_body(&seen[2]),
        json!({"texts": [long_a, long_b, long_a], "input_type": "search_document"})
    );
    assert_eq!(
        recorded_body(&seen[3]),
        json!({"texts": [long_b], "input_type": "search_query"})
    );
    for request in &seen {
        let (gateway, botocore) = botocore_signature(&mock, request);
        assert!(
            gateway.ends_with(&format!("Signature={botocore}")),
            "botocore signs the same request as {botocore}, the gateway sent {gateway}"
        );
        assert!(!request.to_string().contains(VK));
    }

    // The reported tokens are what the key is charged, at the built-in Bedrock prices
    // (Titan v2 $0.02, Cohere v3 $0.10 per 1M input tokens), each call in whole micro-dollars
    // rounded up.
    assert_eq!(
        gw.used("virtual_key:vk-b", "tokens"),
        json!(90 + 90 + 255 + 75)
    );
    let spent = gw.used("virtual_key:vk-b", "budget_usd").as_f64().unwrap();
    let micros: f64 = [(90.0, 0.02), (90.0, 0.02), (255.0, 0.10), (75.0, 0.10)]
        .iter()
        .map(|(tokens, price)| f64::ceil(tokens * price))
        .sum();
    assert!(
        (spent - micros / 1e6).abs() < 1e-12,
        "{spent} vs {micros} µ$"
    );
}

#[test]
fn bedrock_embedding_errors_and_unknown_models_reach_the_client_in_openai_shape() {
    let mock = Mock::start(&["--format", "bedrock"]);
    let gw = Gateway::start(&config(&mock));
    let auth = [("authorization", "Bearer vk-secret-bedrock")];
    let url = format!("{}/v1/embeddings", gw.url);
    // A model whose id names no embedding family: refused before sending, saying which are.
    let r = post_json(&url, &auth, &json!({"model": MODEL, "input": "hi"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_type(), "invalid_request");
    assert!(r.body.contains("cohere.embed-"), "{}", r.body);
    assert!(mock.requests().is_empty());
    // A setting the model refuses comes back as Bedrock's ValidationException.
    let r = post_json(
        &url,
        &auth,
        &json!({"model": TITAN, "input": "hi", "dimensions": 100}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "ValidationException", "{}", r.body);
    assert!(
        error["message"].as_str().unwrap().contains("dimensions"),
        "{}",
        r.body
    );
    assert_eq!(mock.requests().len(), 1);
}
