//! `POST /v1/responses` (and `/openai/v1/responses`, Codex CLI's base URL) with the official
//! OpenAI SDK's `client.responses`: whole and streamed answers, function and custom tools
//! round-tripped,
//! OpenAI-format and Anthropic providers behind it, usage charged.

use serde_json::{json, Value};
use tollgate_e2e::{post_json, python_json, recorded_body, Gateway, Mock};

const VK: &str = "vk-secret-responses";

fn config(openai: &Mock, anthropic: &Mock) -> String {
    format!(
        "providers:
  - {{name: oai, kind: openai_compatible, base_url: {}, models: [gpt-4o-mini]}}
  - {{name: claude, kind: anthropic, base_url: {}, keys: [{{key: sk-ant}}], models: [claude-sonnet-4-6]}}
virtual_keys:
  - {{id: vk-r, key: {VK}, rate_limit: {{requests: {{limit: 1000, window: 1m}}}}}}
",
        openai.base_url(),
        anthropic.url
    )
}

/// Runs `body` with an OpenAI client whose base URL is the gateway's `/openai/v1`; returns the
/// JSON printed on the last line.
fn sdk(gw: &Gateway, body: &str) -> Value {
    let script = format!(
        "import json, openai\nclient = openai.OpenAI(base_url=\"{}/openai/v1\", api_key=\"{VK}\", max_retries=0)\n{body}",
        gw.url
    );
    python_json(&["openai"], &script)
}

#[test]
fn whole_and_streamed_answers_from_both_provider_formats() {
    let openai = Mock::start(&["--stream-chunks", "4"]);
    let anthropic = Mock::start(&["--format", "anthropic", "--stream-chunks", "4"]);
    let gw = Gateway::start(&config(&openai, &anthropic));
    let got = sdk(
        &gw,
        r#"
out = {}
for model in ["gpt-4o-mini", "claude-sonnet-4-6"]:
    r = client.responses.create(model=model, instructions="Be terse.", input="Say hello")
    kinds, text, final = [], "", None
    for e in client.responses.create(model=model, input="Say hello", stream=True):
        kinds.append(e.type)
        if e.type == "response.output_text.delta":
            text += e.delta
        if e.type == "response.completed":
            final = e.response
    with client.responses.stream(model=model, input="Say hello") as s:
        helper = s.get_final_response().output_text
    out[model] = {"text": r.output_text, "status": r.status, "object": r.object,
        "usage": r.usage.model_dump(), "kinds": kinds, "streamed": text,
        "final_text": final.output_text, "final_usage": final.usage.model_dump(),
        "helper": helper}
print(json.dumps(out))
"#,
    );
    for model in ["gpt-4o-mini", "claude-sonnet-4-6"] {
        let g = &got[model];
        assert_eq!(g["object"], "response", "{g}");
        assert_eq!(g["status"], "completed", "{g}");
        assert!(g["text"].as_str().unwrap().starts_with("mock reply"), "{g}");
        assert!(g["usage"]["input_tokens"].as_u64().unwrap() > 0, "{g}");
        assert_eq!(
            g["streamed"], g["text"],
            "streamed text = whole answer: {g}"
        );
        assert_eq!(g["final_text"], g["text"], "{g}");
        assert_eq!(g["helper"], g["text"], "{g}");
        assert!(
            g["final_usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{g}"
        );
        let kinds: Vec<&str> = g["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(
            &kinds[..2],
            ["response.created", "response.in_progress"],
            "{g}"
        );
        assert_eq!(kinds.last(), Some(&"response.completed"), "{g}");
        assert!(kinds.contains(&"response.output_item.done"), "{g}");
    }
    // The instructions reached the OpenAI provider as its system message.
    let first = recorded_body(&openai.requests()[0]);
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert!(first.get("instructions").is_none(), "{first}");
    // Every answered request was charged to the key.
    let used = gw.used("virtual_key:vk-r", "requests");
    assert_eq!(used, json!(6));
}

#[test]
fn function_tools_round_trip_as_codex_sends_them() {
    let openai = Mock::start(&[]);
    let anthropic = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&openai, &anthropic));
    let got = sdk(
        &gw,
        r#"
tools = [{"type": "function", "name": "shell", "description": "Run a command",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                         "required": ["command"]}}]
out = {}
for model in ["gpt-4o-mini", "claude-sonnet-4-6"]:
    ask = [{"role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}]
    r = client.responses.create(model=model, input=ask, tools=tools, store=False)
    call = [o for o in r.output if o.type == "function_call"][0]
    follow = client.responses.create(model=model, tools=tools, store=False, input=ask + [
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt b.txt"}])
    args, name = "", None
    for e in client.responses.create(model=model, input=ask, tools=tools, stream=True):
        if e.type == "response.function_call_arguments.delta":
            args += e.delta
        if e.type == "response.output_item.added" and e.item.type == "function_call":
            name = e.item.name
    out[model] = {"name": call.name, "args": json.loads(call.arguments), "call_id": call.call_id,
        "follow": follow.output_text, "stream_name": name, "stream_args": json.loads(args)}
print(json.dumps(out))
"#,
    );
    for model in ["gpt-4o-mini", "claude-sonnet-4-6"] {
        let g = &got[model];
        assert_eq!(g["name"], "shell", "{g}");
        assert!(g["args"].is_object(), "{g}");
        assert!(!g["call_id"].as_str().unwrap().is_empty(), "{g}");
        assert!(
            g["follow"].as_str().unwrap().starts_with("mock reply"),
            "{g}"
        );
        assert_eq!(g["stream_name"], "shell", "{g}");
        assert_eq!(g["stream_args"], g["args"], "{g}");
    }
    // The function output reached Anthropic as a tool_result for the same call.
    let follow = recorded_body(&anthropic.requests()[1]);
    let last = follow["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "user", "{follow}");
    assert_eq!(last["content"][0]["type"], "tool_result", "{follow}");
    assert_eq!(
        last["content"][0]["tool_use_id"],
        got["claude-sonnet-4-6"]["call_id"]
    );
}

#[test]
fn custom_tools_round_trip_as_codex_sends_apply_patch() {
    let openai = Mock::start(&["--stream-chunks", "3"]);
    let anthropic = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&openai, &anthropic));
    // The mock calls the first tool when asked about the weather: here the function the
    // gateway made of the custom tool.
    let got = sdk(
        &gw,
        r#"
tools = [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
          "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]
ask = [{"role": "user", "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}]
r = client.responses.create(model="gpt-4o-mini", input=ask, tools=tools, store=False)
call = [o for o in r.output if o.type == "custom_tool_call"][0]
follow = client.responses.create(model="gpt-4o-mini", tools=tools, store=False, input=ask + [
    {"type": "custom_tool_call", "call_id": call.call_id, "name": call.name, "input": call.input},
    {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done!"}])
kinds, delta, done, added = [], "", None, None
for e in client.responses.create(model="gpt-4o-mini", input=ask, tools=tools, stream=True):
    kinds.append(e.type)
    if e.type == "response.custom_tool_call_input.delta":
        delta += e.delta
    if e.type == "response.custom_tool_call_input.done":
        done = e.input
    if e.type == "response.output_item.added":
        added = e.item.model_dump()
with client.responses.stream(model="gpt-4o-mini", input=ask, tools=tools) as s:
    final = s.get_final_response().output[0].model_dump()
print(json.dumps({"types": [o.type for o in r.output], "name": call.name, "input": call.input,
    "call_id": call.call_id, "follow": follow.output_text, "kinds": kinds, "delta": delta,
    "done": done, "added": added, "final": final}))
"#,
    );
    assert_eq!(got["types"], json!(["custom_tool_call"]), "{got}");
    assert_eq!(got["name"], "apply_patch", "{got}");
    // The mock's arguments hold no `input` string, so they come back as the input text.
    let input = got["input"].as_str().unwrap();
    assert!(!input.is_empty(), "{got}");
    assert!(got["follow"].as_str().unwrap().starts_with("mock reply"));
    assert_eq!(got["added"]["type"], "custom_tool_call", "{got}");
    assert_eq!(got["added"]["name"], "apply_patch", "{got}");
    assert_eq!(got["delta"], input, "{got}");
    assert_eq!(got["done"], input, "{got}");
    assert_eq!(got["final"]["type"], "custom_tool_call", "{got}");
    assert_eq!(got["final"]["input"], input, "{got}");
    let kinds: Vec<&str> = got["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|k| k.contains("tool_call") || k.contains("output_item"))
        .collect();
    assert_eq!(
        kinds,
        [
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
        ],
        "{got}"
    );
    // Upstream, the custom tool was a function with one string parameter, `input`...
    let first = recorded_body(&openai.requests()[0]);
    let function = &first["tools"][0]["function"];
    assert_eq!(function["name"], "apply_patch", "{first}");
    assert_eq!(
        function["parameters"]["properties"]["input"]["type"],
        "string"
    );
    assert_eq!(function["parameters"]["required"], json!(["input"]));
    assert!(function["description"]
        .as_str()
        .unwrap()
        .contains("start: /.+/"));
    // ...and the call given back was an assistant tool call with `{"input": ...}` arguments,
    // its output a tool message.
    let follow = recorded_body(&openai.requests()[1]);
    let messages = follow["messages"].as_array().unwrap();
    let call = &messages[messages.len() - 2]["tool_calls"][0];
    assert_eq!(call["id"], got["call_id"], "{follow}");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"input": input}));
    assert_eq!(
        messages[messages.len() - 1],
        json!({"role": "tool", "tool_call_id": got["call_id"], "content": "Done!"})
    );
}

#[test]
fn stateful_and_builtin_requests_are_refused_clearly() {
    let openai = Mock::start(&[]);
    let anthropic = Mock::start(&["--format", "anthropic"]);
    let gw = Gateway::start(&config(&openai, &anthropic));
    let url = format!("{}/v1/responses", gw.url);
    let auth = [("authorization", "Bearer vk-secret-responses")];
    for (body, needle) in [
        (
            json!({"model": "gpt-4o-mini", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "gpt-4o-mini", "input": "hi", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (json!({"model": "gpt-4o-mini"}), "input"),
    ] {
        let r = post_json(&url, &auth, &body);
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.error_type(), "invalid_request");
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    assert!(openai.requests().is_empty());
}
