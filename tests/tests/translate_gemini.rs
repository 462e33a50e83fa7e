//! OpenAI clients reaching a provider of `kind: gemini`: the request goes to
//! `/v1beta/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`) with the key in
//! `x-goog-api-key`, and the answer comes back as Chat Completions, whole or streamed, tool
//! calls included; usage reaches the key's counters. Embeddings go to `:batchEmbedContents`, one
//! request per input, and come back as an OpenAI list (base64 when asked) with the gateway's
//! estimate as usage. Gemini clients' embeddings (`:embedContent`, `:batchEmbedContents`) reach
//! OpenAI-format and Gemini providers and come back in Gemini's shape.

use serde_json::{json, Value};
use tollgate_e2e::log_traffic::all_records;
use tollgate_e2e::{post_json, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-gemini";
const MODEL: &str = "gemini-2.5-flash";

fn config(mock: &Mock) -> String {
    format!(
        "providers:
  - {{name: g, kind: gemini, base_url: {}, keys: [{{key: goog-secret}}]}}
virtual_keys:
  - {{id: vk-g, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
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

#[test]
fn sdk_chat_and_stream_reach_gemini_and_are_charged() {
    let mock = Mock::start(&["--format", "gemini", "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
msgs = [{{"role": "system", "content": "Be terse."}}, {{"role": "user", "content": "Say hello"}}]
r = client.chat.completions.create(model="{MODEL}", messages=msgs, max_tokens=50)
text, usage, finish = "", None, None
for c in client.chat.completions.create(model="{MODEL}", messages=msgs, stream=True,
        stream_options={{"include_usage": True}}):
    if c.usage is not None:
        usage = c.usage.model_dump()
    for ch in c.choices:
        text += ch.delta.content or ""
        finish = ch.finish_reason or finish
print(json.dumps({{"text": r.choices[0].message.content, "finish": r.choices[0].finish_reason,
    "usage": r.usage.model_dump(), "streamed": text, "stream_usage": usage,
    "stream_finish": finish}}))
"#
        ),
    );
    assert!(
        got["text"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["finish"], "stop");
    assert_eq!(got["streamed"], got["text"], "{got}");
    assert_eq!(got["stream_finish"], "stop");
    let whole = got["usage"]["total_tokens"].as_u64().unwrap();
    let streamed = got["stream_usage"]["total_tokens"].as_u64().unwrap();
    assert!(whole > 0 && streamed > 0, "{got}");
    assert_eq!(
        gw.used("virtual_key:vk-g", "tokens"),
        json!(whole + streamed)
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0]["path"],
        format!("/v1beta/models/{MODEL}:generateContent")
    );
    assert_eq!(
        seen[1]["path"],
        format!("/v1beta/models/{MODEL}:streamGenerateContent")
    );
    assert_eq!(seen[1]["query"], "alt=sse");
    assert_eq!(seen[0]["headers"]["x-goog-api-key"], "goog-secret");
    assert!(seen[0]["headers"].get("authorization").is_none());
    let body = recorded_body(&seen[0]);
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be terse."}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello"}]}])
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 50);
    assert!(
        body.get("model").is_none(),
        "the model is in the URL: {body}"
    );
}

#[test]
fn sdk_tool_calls_round_trip_through_gemini() {
    let mock = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
tools = [{{"type": "function", "function": {{"name": "get_weather", "description": "Weather",
    "parameters": {{"type": "object", "properties": {{"city": {{"type": "string"}}}},
                    "required": ["city"], "additionalProperties": False}}}}}}]
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
    "args": json.loads(call.function.arguments), "follow": follow.choices[0].message.content,
    "stream_name": name, "stream_args": json.loads(args)}}))
"#
        ),
    );
    assert_eq!(got["finish"], "tool_calls", "{got}");
    assert_eq!(got["name"], "get_weather");
    assert!(got["args"].is_object(), "{got}");
    assert!(
        got["follow"].as_str().unwrap().starts_with("mock reply"),
        "{got}"
    );
    assert_eq!(got["stream_name"], "get_weather");
    assert_eq!(got["stream_args"], got["args"]);
    // The tool result went back as a functionResponse naming the function.
    let follow = recorded_body(&mock.requests()[1]);
    let contents = follow["contents"].as_array().unwrap();
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"result": "18 C and sunny"}})
    );
    // JSON Schema keywords Gemini refuses are left out of the declaration.
    let decl = &follow["tools"][0]["functionDeclarations"][0];
    assert!(
        decl["parameters"].get("additionalProperties").is_none(),
        "{decl}"
    );
}

#[test]
fn link_images_and_token_arrays_are_refused_before_sending() {
    let mock = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&config(&mock));
    let auth = [("authorization", "Bearer vk-secret-gemini")];
    let r = post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &auth,
        &json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("inline"), "{}", r.body);
    // Gemini embeds text only: pre-tokenized inputs cannot be carried.
    for input in [json!([[1, 2, 3]]), json!([1, 2])] {
        let r = post_json(
            &format!("{}/v1/embeddings", gw.url),
            &auth,
            &json!({"model": EMBEDDING_MODEL, "input": input}),
        );
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.error_type(), "invalid_request", "{}", r.body);
        assert!(r.body.contains("token arrays"), "{}", r.body);
    }
    assert!(mock.requests().is_empty());
}

const EMBEDDING_MODEL: &str = "gemini-embedding-001";

#[test]
fn sdk_embeddings_reach_gemini_as_one_batch_and_are_counted() {
    let mock = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&config(&mock));
    // The SDK asks for base64 unless told otherwise and decodes it itself; the raw answer shows
    // what came over the wire.
    let got = sdk(
        &gw,
        &format!(
            r#"
raw = client.embeddings.with_raw_response.create(model="{EMBEDDING_MODEL}", input=["a", "b", "a"])
wire = json.loads(raw.text)
r = raw.parse()
f = client.embeddings.create(model="{EMBEDDING_MODEL}", input=["a", "b", "a"], encoding_format="float")
print(json.dumps({{"wire": [d["embedding"] for d in wire["data"]],
    "vectors": [d.embedding for d in r.data], "indexes": [d.index for d in r.data],
    "floats": [d.embedding for d in f.data], "model": r.model, "usage": r.usage.model_dump(),
    "float_usage": f.usage.model_dump()}}))
"#
        ),
    );
    assert!(
        got["wire"].as_array().unwrap().iter().all(Value::is_string),
        "the default answer is base64: {got}"
    );
    let vectors: Vec<Vec<f64>> = serde_json::from_value(got["vectors"].clone()).unwrap();
    assert_eq!(vectors.len(), 3, "{got}");
    assert_eq!(got["indexes"], json!([0, 1, 2]));
    assert_eq!(vectors[0], vectors[2], "equal inputs embed equally");
    assert_ne!(vectors[0], vectors[1], "different inputs differ");
    let norm: f64 = vectors[1].iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    // base64 carries the same vectors as floats, to f32 precision.
    let floats: Vec<Vec<f64>> = serde_json::from_value(got["floats"].clone()).unwrap();
    for (b, f) in vectors.iter().zip(&floats) {
        assert_eq!(b.len(), f.len());
        assert!(b.iter().zip(f).all(|(x, y)| (x - y).abs() < 1e-6), "{got}");
    }
    assert_eq!(got["model"], EMBEDDING_MODEL);
    let prompt = got["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 0, "{got}");
    assert_eq!(got["usage"]["total_tokens"], prompt);
    assert_eq!(got["float_usage"], got["usage"]);

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0]["path"],
        format!("/v1beta/models/{EMBEDDING_MODEL}:batchEmbedContents")
    );
    assert_eq!(seen[0]["headers"]["x-goog-api-key"], "goog-secret");
    assert!(seen[0]["headers"].get("authorization").is_none());
    let body = recorded_body(&seen[0]);
    let requests = body["requests"].as_array().unwrap();
    let texts: Vec<&Value> = requests
        .iter()
        .map(|r| &r["content"]["parts"][0]["text"])
        .collect();
    assert_eq!(texts, [&json!("a"), &json!("b"), &json!("a")], "{body}");
    assert!(requests
        .iter()
        .all(|r| r["model"] == format!("models/{EMBEDDING_MODEL}")));
    assert!(body.get("encoding_format").is_none(), "{body}");

    // The estimate was settled as the usage: on the key's token counter and in the log.
    assert_eq!(gw.used("virtual_key:vk-g", "tokens"), json!(2 * prompt));
    let records = all_records(&gw, "&key=vk-g", 2);
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["endpoint"], "embeddings", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["provider"], "g", "{r}");
        assert_eq!(r["prompt_tokens"], prompt, "{r}");
        assert_eq!(r["completion_tokens"], 0, "{r}");
    }
}

#[test]
fn embedding_dimensions_reach_gemini_as_output_dimensionality() {
    let mock = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&config(&mock));
    let got = sdk(
        &gw,
        &format!(
            r#"
r = client.embeddings.create(model="{EMBEDDING_MODEL}", input=["x", "y"], dimensions=5)
print(json.dumps({{"sizes": [len(d.embedding) for d in r.data]}}))
"#
        ),
    );
    // The mock answers with vectors of the size asked for.
    assert_eq!(got["sizes"], json!([5, 5]), "{got}");
    let body = recorded_body(&mock.requests()[0]);
    for r in body["requests"].as_array().unwrap() {
        assert_eq!(r["outputDimensionality"], 5, "{body}");
    }
    assert!(body.get("dimensions").is_none(), "{body}");
}

#[test]
fn gemini_embedding_errors_reach_openai_clients_in_the_openai_shape() {
    let mock = Mock::start(&[
        "--format",
        "gemini",
        "--fail-first",
        "1",
        "--fail-status",
        "400",
    ]);
    let gw = Gateway::start(&config(&mock));
    let r = post_json(
        &format!("{}/v1/embeddings", gw.url),
        &[("authorization", "Bearer vk-secret-gemini")],
        &json!({"model": EMBEDDING_MODEL, "input": "hi"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let e = r.json();
    assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
    assert_eq!(e["error"]["message"], "mock failure (--fail-first)", "{e}");
}

/// Runs `body` with the official `google-genai` SDK pointed at the gateway's `/genai`.
fn genai_sdk(gw: &Gateway, body: &str) -> Value {
    let script = format!(
        "import json\nfrom google import genai\nfrom google.genai import types\n\
         client = genai.Client(api_key=\"{VK}\", http_options={{\"base_url\": \"{}/genai\"}})\n{body}",
        gw.url
    );
    python_json(&["google-genai:google.genai"], &script)
}

/// A gateway with an OpenAI-format provider and an Anthropic one, for Gemini clients.
fn other_formats(openai: &Mock, anthropic: &Mock) -> String {
    format!(
        "providers:
  - {{name: oai, kind: openai_compatible, base_url: {}, models: [gpt-4o-mini]}}
  - {{name: claude, kind: anthropic, base_url: {}, keys: [{{key: sk-ant}}], models: [claude-sonnet-4-6]}}
virtual_keys:
  - {{id: vk-g, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
",
        openai.base_url(),
        anthropic.url
    )
}

#[test]
fn genai_sdk_reaches_openai_and_anthropic_providers() {
    let openai = Mock::start(&["--stream-chunks", "4"]);
    let anthropic = Mock::start(&["--format", "anthropic", "--stream-chunks", "4"]);
    let gw = Gateway::start(&other_formats(&openai, &anthropic));
    let got = genai_sdk(
        &gw,
        r#"
out = {}
tool = types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather",
    description="Weather", parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
    "required": ["city"]})])
cfg = types.GenerateContentConfig(system_instruction="Be terse.", max_output_tokens=60)
for model in ["gpt-4o-mini", "claude-sonnet-4-6"]:
    r = client.models.generate_content(model=model, contents="Say hello", config=cfg)
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model=model,
        contents="Say hello", config=cfg))
    t = client.models.generate_content(model=model, contents="What is the weather in Paris?",
        config=types.GenerateContentConfig(tools=[tool]))
    call = t.function_calls[0]
    out[model] = {"text": r.text, "streamed": text, "prompt": r.usage_metadata.prompt_token_count,
        "finish": r.candidates[0].finish_reason.value, "call": call.name, "args": call.args}
bad = genai.Client(api_key="not-a-key", http_options={"base_url": client._api_client._http_options.base_url})
try:
    bad.models.generate_content(model="gpt-4o-mini", contents="hi")
    out["error"] = None
except Exception as e:
    out["error"] = {"code": getattr(e, "code", None), "status": getattr(e, "status", None),
                    "message": getattr(e, "message", None)}
print(json.dumps(out))
"#,
    );
    for model in ["gpt-4o-mini", "claude-sonnet-4-6"] {
        let g = &got[model];
        assert!(g["text"].as_str().unwrap().starts_with("mock reply"), "{g}");
        assert_eq!(g["streamed"], g["text"], "{g}");
        assert!(g["prompt"].as_u64().unwrap() > 0, "{g}");
        assert_eq!(g["finish"], "STOP", "{g}");
        assert_eq!(g["call"], "get_weather", "{g}");
        assert!(g["args"].is_object(), "{g}");
    }
    // The system instruction reached the OpenAI provider as its system message.
    let first = recorded_body(&openai.requests()[0]);
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert_eq!(first["max_completion_tokens"], 60);
    // A request the gateway refuses answers in Google's error shape, which the SDK reads.
    assert_eq!(got["error"]["code"], 401, "{got}");
    assert_eq!(got["error"]["status"], "UNAUTHENTICATED", "{got}");
    assert!(
        got["error"]["message"].as_str().unwrap().contains("key"),
        "{got}"
    );
}

/// A gateway with an OpenAI-format embeddings provider and a Gemini one, for Gemini clients'
/// embeddings; `vk-narrow` may use the OpenAI model only.
fn embedding_providers(openai: &Mock, gemini: &Mock) -> String {
    format!(
        "providers:
  - {{name: oai, kind: openai_compatible, base_url: {}, models: [text-embedding-3-small]}}
  - {{name: g, kind: gemini, base_url: {}, keys: [{{key: goog-secret}}], models: [{EMBEDDING_MODEL}]}}
virtual_keys:
  - {{id: vk-g, key: {VK}, rate_limit: {{tokens: {{limit: 1000000, window: 1h}}}}}}
  - {{id: vk-narrow, key: vk-narrow, models: [text-embedding-3-small]}}
",
        openai.base_url(),
        gemini.url
    )
}

const OPENAI_EMBEDDING_MODEL: &str = "text-embedding-3-small";

#[test]
fn genai_sdk_embeddings_reach_openai_and_gemini_providers_and_are_counted() {
    let openai = Mock::start(&[]);
    let gemini = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&embedding_providers(&openai, &gemini));
    // The SDK calls `:batchEmbedContents` (one request per content) for a Gemini API key.
    let got = genai_sdk(
        &gw,
        &format!(
            r#"
out = {{}}
for model in ["{OPENAI_EMBEDDING_MODEL}", "{EMBEDDING_MODEL}"]:
    r = client.models.embed_content(model=model, contents=["a", "b", "a"])
    sized = client.models.embed_content(model=model, contents="sized",
        config=types.EmbedContentConfig(output_dimensionality=5, task_type="RETRIEVAL_DOCUMENT"))
    out[model] = {{"vectors": [e.values for e in r.embeddings],
        "sized": [len(e.values) for e in sized.embeddings]}}
print(json.dumps(out))
"#
        ),
    );
    for model in [OPENAI_EMBEDDING_MODEL, EMBEDDING_MODEL] {
        let vectors: Vec<Vec<f64>> = serde_json::from_value(got[model]["vectors"].clone()).unwrap();
        assert_eq!(vectors.len(), 3, "{got}");
        assert_eq!(vectors[0], vectors[2], "equal inputs embed equally: {got}");
        assert_ne!(vectors[0], vectors[1], "different inputs differ: {got}");
        let norm: f64 = vectors[1].iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    // The OpenAI mock embeds in 8 components whatever is asked; the Gemini mock honours the size.
    assert_eq!(got[OPENAI_EMBEDDING_MODEL]["sized"], json!([8]), "{got}");
    assert_eq!(got[EMBEDDING_MODEL]["sized"], json!([5]), "{got}");

    // The OpenAI provider got OpenAI embeddings requests: the texts in order, the size as
    // `dimensions`, floats (no `encoding_format`), nothing Gemini-only.
    let seen = openai.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/v1/embeddings"));
    assert_eq!(
        recorded_body(&seen[0]),
        json!({"model": OPENAI_EMBEDDING_MODEL, "input": ["a", "b", "a"]})
    );
    assert_eq!(
        recorded_body(&seen[1]),
        json!({"model": OPENAI_EMBEDDING_MODEL, "input": ["sized"], "dimensions": 5})
    );
    // The vectors the SDK got are the provider's, unchanged.
    let direct = post_json(
        &format!("{}/embeddings", openai.base_url()),
        &[],
        &json!({"model": OPENAI_EMBEDDING_MODEL, "input": ["a", "b"]}),
    )
    .json();
    assert_eq!(
        got[OPENAI_EMBEDDING_MODEL]["vectors"][1],
        direct["data"][1]["embedding"]
    );
    assert_eq!(
        got[OPENAI_EMBEDDING_MODEL]["vectors"][0],
        direct["data"][0]["embedding"]
    );

    // The Gemini provider got `batchEmbedContents` for the URL's model.
    let seen = gemini.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0]["path"],
        format!("/v1beta/models/{EMBEDDING_MODEL}:batchEmbedContents")
    );
    assert_eq!(seen[0]["headers"]["x-goog-api-key"], "goog-secret");
    let body = recorded_body(&seen[0]);
    let texts: Vec<&Value> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["content"]["parts"][0]["text"])
        .collect();
    assert_eq!(texts, [&json!("a"), &json!("b"), &json!("a")], "{body}");
    let sized = recorded_body(&seen[1]);
    assert_eq!(sized["requests"][0]["outputDimensionality"], 5, "{sized}");

    // Each call is an embeddings request in the log, and its tokens are on the key's counter:
    // the OpenAI provider's reported usage, the gateway's estimate for Gemini.
    let records = all_records(&gw, "&key=vk-g", 4);
    assert_eq!(records.len(), 4);
    let mut total = 0;
    for r in &records {
        assert_eq!(r["endpoint"], "embeddings", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["provider"] == "oai" || r["provider"] == "g", "{r}");
        let prompt = r["prompt_tokens"].as_u64().unwrap();
        assert!(prompt > 0, "{r}");
        assert_eq!(r["completion_tokens"], 0, "{r}");
        total += prompt;
    }
    assert_eq!(gw.used("virtual_key:vk-g", "tokens"), json!(total));
}

#[test]
fn embed_content_answers_one_embedding_from_either_provider() {
    let openai = Mock::start(&[]);
    let gemini = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&embedding_providers(&openai, &gemini));
    let auth = [("x-goog-api-key", VK)];
    let body = json!({"content": {"role": "user", "parts": [{"text": "hello"}, {"text": "world"}]},
                      "outputDimensionality": 3, "taskType": "RETRIEVAL_QUERY"});
    for (model, size) in [(OPENAI_EMBEDDING_MODEL, 8), (EMBEDDING_MODEL, 3)] {
        let r = post_json(
            &format!("{}/genai/v1beta/models/{model}:embedContent", gw.url),
            &auth,
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let values = v["embedding"]["values"].as_array().unwrap();
        assert_eq!(values.len(), size, "{v}");
        assert!(values.iter().all(Value::is_number), "{v}");
        assert_eq!(v.as_object().unwrap().len(), 1, "only `embedding`: {v}");
    }
    // The parts were joined into one input.
    assert_eq!(
        recorded_body(&openai.requests()[0]),
        json!({"model": OPENAI_EMBEDDING_MODEL, "input": ["hello\nworld"], "dimensions": 3})
    );
    let sent = recorded_body(&gemini.requests()[0]);
    assert_eq!(
        sent["requests"],
        json!([{"model": format!("models/{EMBEDDING_MODEL}"),
                "content": {"parts": [{"text": "hello\nworld"}]}, "outputDimensionality": 3}])
    );
    let records = all_records(&gw, "&key=vk-g", 2);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["endpoint"] == "embeddings"));
}

#[test]
fn gemini_embeddings_errors_take_the_google_shape() {
    let openai = Mock::start(&[]);
    let gemini = Mock::start(&["--format", "gemini"]);
    let gw = Gateway::start(&embedding_providers(&openai, &gemini));
    let auth = [("x-goog-api-key", VK)];
    let url =
        |model: &str, method: &str| format!("{}/genai/v1beta/models/{model}:{method}", gw.url);
    let image = json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}});
    let bad = [
        (
            "embedContent",
            json!({"content": {"parts": [{"text": "a"}, image]}}),
            "content.parts[1]",
        ),
        (
            "embedContent",
            json!({"taskType": "CLUSTERING"}),
            "`content`",
        ),
        ("batchEmbedContents", json!({"requests": []}), "requests"),
        (
            "batchEmbedContents",
            json!({"requests": [
                {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
                {"content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8}]}),
            "requests[1].outputDimensionality",
        ),
    ];
    for model in [OPENAI_EMBEDDING_MODEL, EMBEDDING_MODEL] {
        for (method, body, field) in &bad {
            let r = post_json(&url(model, method), &auth, body);
            assert_eq!(r.status, 400, "{}", r.body);
            let e = r.json();
            assert_eq!(e["error"]["code"], 400, "{e}");
            assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{field}: {message}");
        }
    }
    assert!(openai.requests().is_empty());
    assert!(gemini.requests().is_empty());

    // A key that may not use the model is refused in Google's shape, which the SDK reads.
    let got = genai_sdk(
        &gw,
        &format!(
            r#"
narrow = genai.Client(api_key="vk-narrow",
    http_options={{"base_url": client._api_client._http_options.base_url}})
try:
    narrow.models.embed_content(model="{EMBEDDING_MODEL}", contents=["a"])
    out = None
except Exception as e:
    out = {{"code": getattr(e, "code", None), "status": getattr(e, "status", None),
           "message": getattr(e, "message", None)}}
print(json.dumps({{"error": out,
    "allowed": len(narrow.models.embed_content(model="{OPENAI_EMBEDDING_MODEL}",
        contents=["a"]).embeddings)}}))
"#
        ),
    );
    assert_eq!(got["error"]["code"], 403, "{got}");
    assert_eq!(got["error"]["status"], "PERMISSION_DENIED", "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains(EMBEDDING_MODEL),
        "{got}"
    );
    assert_eq!(got["allowed"], 1, "{got}");
    assert!(gemini.requests().is_empty());
    let records = all_records(&gw, "&key=vk-narrow", 2);
    assert!(
        records
            .iter()
            .any(|r| r["status"] == 403 && r["endpoint"] == "embeddings"),
        "{records:?}"
    );
}
