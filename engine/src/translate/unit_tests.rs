//! Error cases, the Anthropic error body, usage arithmetic, round-trip properties over random
//! IR values, and a no-panic sweep over mangled inputs.

use http::StatusCode;
use serde_json::{json, Value};

use super::ir::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, Image, ImageSource, Message, Role,
    ToolArguments, ToolCall, ToolChoice, ToolDefinition, ToolResult, Usage,
};
use super::{anthropic, openai};
use crate::error::{ApiError, ErrorType};

fn openai_to_anthropic(body: Value) -> Result<Value, String> {
    openai::request_from_openai(&body)
        .and_then(|ir| anthropic::request_to_anthropic(&ir, 1024))
        .map_err(|e| e.to_string())
}

#[test]
fn bad_tool_arguments_json_is_an_error_naming_the_call() {
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}
            ]},
        ],
    });
    let err = openai_to_anthropic(body).expect_err("bad JSON must fail");
    assert!(
        err.starts_with("messages[1].content[0]: tool call `call_1`"),
        "{err}"
    );
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn tool_arguments_that_are_not_an_object_are_an_error() {
    let args = ToolArguments::Text("[1, 2]".into());
    assert!(args.to_object().is_err());
    assert_eq!(ToolArguments::Text("".into()).to_object(), Ok(json!({})));
    assert_eq!(
        ToolArguments::Text(" {\"a\":1} ".into()).to_object(),
        Ok(json!({"a": 1}))
    );
}

#[test]
fn bad_arguments_in_a_response_are_an_error() {
    let resp = ChatResponse {
        content: vec![ContentPart::ToolCall(ToolCall {
            id: "call_9".into(),
            name: "f".into(),
            arguments: ToolArguments::Text("{oops".into()),
        })],
        ..ChatResponse::default()
    };
    let err = anthropic::response_to_anthropic(&resp).expect_err("must fail");
    assert_eq!(err.path, "content[0]");
}

#[test]
fn unknown_anthropic_block_type_is_an_error_with_its_path() {
    let body = json!({
        "model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "read this"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
        ]}],
    });
    let err = anthropic::request_from_anthropic(&body).expect_err("must fail");
    assert_eq!(err.path, "messages[0].content[1].type");
    assert!(err.message.contains("`document`"), "{err}");
}

#[test]
fn thinking_blocks_are_skipped_not_refused() {
    let body = json!({
        "model": "m", "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "abc"},
                {"type": "text", "text": "a"},
            ]},
        ],
    });
    let ir = anthropic::request_from_anthropic(&body).expect("parse");
    assert_eq!(ir.messages[1].content, vec![ContentPart::Text("a".into())]);
}

#[test]
fn anthropic_system_messages_between_turns_join_the_system_prompt() {
    // Claude Code sends these under the `mid-conversation-system` beta.
    let body = json!({
        "model": "m", "max_tokens": 10,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "system", "content": "Agents: Explore, Plan"},
            {"role": "system", "content": [
                {"type": "text", "text": "Skills: none", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "user", "content": "r"},
        ],
    });
    let ir = anthropic::request_from_anthropic(&body).expect("parse");
    assert_eq!(
        ir.system,
        ["You are terse.", "Agents: Explore, Plan", "Skills: none"]
    );
    assert_eq!(
        ir.messages,
        vec![Message {
            role: Role::User,
            content: vec![ContentPart::Text("q".into()), ContentPart::Text("r".into())],
        }]
    );
    let rendered = openai::request_to_openai(&ir).expect("render");
    assert_eq!(rendered["messages"][0]["role"], "system");
    assert_eq!(rendered["messages"].as_array().map(Vec::len), Some(2));

    let image = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]},
    ]});
    let err = anthropic::request_from_anthropic(&image).expect_err("not text");
    assert_eq!(err.path, "messages[0].content[0].type");
    let robot =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]});
    let err = anthropic::request_from_anthropic(&robot).expect_err("unknown role");
    assert_eq!(err.path, "messages[0].role");
}

#[test]
fn unknown_openai_content_part_and_role_are_errors() {
    let audio = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}
    ]}]});
    let err = openai::request_from_openai(&audio).expect_err("must fail");
    assert_eq!(err.path, "messages[0].content[0].type");

    let role = json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]});
    let err = openai::request_from_openai(&role).expect_err("must fail");
    assert_eq!(err.path, "messages[0].role");

    let legacy = json!({"model": "m", "messages": [], "functions": []});
    assert!(openai::request_from_openai(&legacy).is_err());
}

#[test]
fn missing_and_mistyped_fields_are_errors() {
    let err = openai::request_from_openai(&json!({"messages": []})).expect_err("no model");
    assert_eq!(err.to_string(), "body: missing required field `model`");
    let err = openai::request_from_openai(&json!({"model": "m", "messages": "hi"}))
        .expect_err("messages not an array");
    assert_eq!(err.to_string(), "messages: expected an array, got a string");
    let err = anthropic::request_from_anthropic(&json!([1])).expect_err("not an object");
    assert_eq!(err.path, "body");
    let err = openai::request_from_openai(&json!({"model": "m", "messages": [], "max_tokens": -5}))
        .expect_err("negative max_tokens");
    assert_eq!(err.path, "max_tokens");
    let err = openai::response_from_openai(&json!({"choices": []})).expect_err("no choice");
    assert_eq!(err.path, "choices");
}

#[test]
fn anthropic_server_tools_and_openai_n_are_refused() {
    let body = json!({"model": "m", "max_tokens": 5, "messages": [],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    let err = anthropic::request_from_anthropic(&body).expect_err("server tool");
    assert_eq!(err.path, "tools[0].type");

    let err =
        openai_to_anthropic(json!({"model": "m", "messages": [], "n": 3})).expect_err("n > 1");
    assert!(err.starts_with("n:"), "{err}");
}

#[test]
fn images_in_tool_results_cannot_go_to_openai() {
    let ir = ChatRequest {
        model: "m".into(),
        messages: vec![Message {
            role: Role::Tool,
            content: vec![ContentPart::ToolResult(ToolResult {
                tool_call_id: "t".into(),
                content: vec![ContentPart::Image(Image {
                    source: ImageSource::Url("https://x/y.png".into()),
                    detail: None,
                })],
                is_error: false,
            })],
        }],
        ..ChatRequest::default()
    };
    let err = openai::request_to_openai(&ir).expect_err("must fail");
    assert_eq!(err.path, "messages[0].content[0].content[0]");
}

#[test]
fn bad_data_url_is_an_error() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}
    ]}]});
    let err = openai::request_from_openai(&body).expect_err("must fail");
    assert_eq!(err.path, "messages[0].content[0].image_url.url");
}

#[test]
fn anthropic_error_bodies() {
    assert_eq!(
        anthropic::error_body(
            StatusCode::TOO_MANY_REQUESTS,
            Some(ErrorType::RateLimited),
            "slow down"
        ),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    let by_status = |code: u16| {
        anthropic::error_type_for_status(StatusCode::from_u16(code).expect("valid status"))
    };
    assert_eq!(by_status(400), "invalid_request_error");
    assert_eq!(by_status(401), "authentication_error");
    assert_eq!(by_status(403), "permission_error");
    assert_eq!(by_status(404), "not_found_error");
    assert_eq!(by_status(413), "request_too_large");
    assert_eq!(by_status(422), "invalid_request_error");
    assert_eq!(by_status(500), "api_error");
    assert_eq!(by_status(529), "overloaded_error");
    assert_eq!(
        anthropic::error_type_for(ErrorType::MissingKey),
        "authentication_error"
    );
    assert_eq!(
        anthropic::error_type_for(ErrorType::ModelNotAllowed),
        "permission_error"
    );
    assert_eq!(
        anthropic::error_type_for(ErrorType::UpstreamError),
        "api_error"
    );

    let err =
        ApiError::new(ErrorType::BudgetExceeded, "over budget").with("scope", json!("team:ml"));
    assert_eq!(
        anthropic::api_error_body(&err),
        json!({"type": "error", "error": {"type": "billing_error", "message": "over budget", "scope": "team:ml"}})
    );
}

#[test]
fn usage_keeps_prompt_size_and_total_across_formats() {
    let anthropic_usage = json!({"id": "msg", "model": "m", "content": [], "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}});
    let ir = anthropic::response_from_anthropic(&anthropic_usage).expect("parse");
    assert_eq!(
        ir.usage,
        Some(Usage {
            input_tokens: 140,
            output_tokens: 7,
            cached_input_tokens: 100,
            cache_creation_input_tokens: 30
        })
    );
    let as_openai = openai::response_to_openai(&ir, 0);
    assert_eq!(as_openai["usage"]["prompt_tokens"], 140);
    assert_eq!(as_openai["usage"]["total_tokens"], 147);
    assert_eq!(
        as_openai["usage"]["prompt_tokens_details"]["cached_tokens"],
        100
    );
    let back = anthropic::response_to_anthropic(&ir).expect("render");
    assert_eq!(back["usage"], anthropic_usage["usage"]);

    // Inconsistent counts from a provider saturate instead of underflowing.
    let odd = ChatResponse {
        usage: Some(Usage {
            input_tokens: 5,
            output_tokens: 1,
            cached_input_tokens: 9,
            cache_creation_input_tokens: 0,
        }),
        ..ChatResponse::default()
    };
    let rendered = anthropic::response_to_anthropic(&odd).expect("render");
    assert_eq!(rendered["usage"]["input_tokens"], 0);
}

// ---------------------------------------------------------------------------------------------
// Round-trip properties over random IR values.

/// The meaning both formats can carry: what a round trip must keep.
fn request_meaning(req: &ChatRequest, keep_is_error: bool) -> ChatRequest {
    let mut out = ChatRequest {
        extras: Default::default(),
        tools: req
            .tools
            .iter()
            .map(|t| ToolDefinition {
                strict: None,
                ..t.clone()
            })
            .collect(),
        messages: Vec::new(),
        // With tools, no choice means `auto` in both formats.
        tool_choice: match (&req.tool_choice, req.tools.is_empty()) {
            (None, false) => Some(ToolChoice::Auto),
            (choice, _) => choice.clone(),
        },
        ..req.clone()
    };
    for message in &req.messages {
        let content: Vec<ContentPart> = message
            .content
            .iter()
            .filter(|p| !matches!(p, ContentPart::Text(t) if t.trim().is_empty()))
            .map(|p| part_meaning(p, keep_is_error))
            .collect();
        if content.is_empty() {
            continue;
        }
        match out.messages.last_mut() {
            Some(last) if last.role == message.role => last.content.extend(content),
            _ => out.messages.push(Message {
                role: message.role,
                content,
            }),
        }
    }
    out
}

fn part_meaning(part: &ContentPart, keep_is_error: bool) -> ContentPart {
    match part {
        ContentPart::Image(image) => ContentPart::Image(Image {
            detail: None,
            ..image.clone()
        }),
        ContentPart::ToolCall(call) => ContentPart::ToolCall(ToolCall {
            arguments: ToolArguments::Json(call.arguments.to_value().unwrap_or(Value::Null)),
            ..call.clone()
        }),
        ContentPart::ToolResult(result) => ContentPart::ToolResult(ToolResult {
            is_error: result.is_error && keep_is_error,
            ..result.clone()
        }),
        text => text.clone(),
    }
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn random_text(rng: &mut fastrand::Rng) -> String {
    let words = [
        "alpha",
        "beta",
        " gamma",
        "δέλτα",
        "\"quoted\"",
        "line\nbreak",
        "emoji 🚀",
    ];
    (0..rng.usize(1..4)).map(|_| pick(rng, &words)).collect()
}

fn random_args(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(..3) {
        0 => json!({}),
        1 => json!({"city": random_text(rng), "days": rng.u8(..10)}),
        _ => json!({"nested": {"list": [1, "two", null, true]}, "f": 1.5}),
    }
}

/// A random request that both formats can express: texts before tool calls in assistant turns,
/// text-only tool results, no `top_p` beside `temperature`.
fn random_request(rng: &mut fastrand::Rng) -> ChatRequest {
    let tool_names = ["get_weather", "read_file", "run"];
    let tools: Vec<ToolDefinition> = (0..rng.usize(..3))
        .map(|i| ToolDefinition {
            name: tool_names[i].to_string(),
            description: rng.bool().then(|| random_text(rng)),
            parameters: json!({"type": "object", "properties": {"x": {"type": "string"}}}),
            strict: None,
        })
        .collect();
    let mut messages = Vec::new();
    let mut call_id = 0;
    for _ in 0..rng.usize(1..5) {
        let mut user = vec![ContentPart::Text(random_text(rng))];
        if rng.u8(..4) == 0 {
            let source = if rng.bool() {
                ImageSource::Url("https://example.com/a.png".into())
            } else {
                ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into(),
                }
            };
            user.push(ContentPart::Image(Image {
                source,
                detail: None,
            }));
        }
        messages.push(Message {
            role: Role::User,
            content: user,
        });
        let mut assistant = Vec::new();
        if rng.bool() {
            assistant.push(ContentPart::Text(random_text(rng)));
        }
        let mut results = Vec::new();
        for _ in 0..rng.usize(..3) {
            call_id += 1;
            let id = format!("call_{call_id}");
            assistant.push(ContentPart::ToolCall(ToolCall {
                id: id.clone(),
                name: pick(rng, &tool_names).to_string(),
                arguments: if rng.bool() {
                    ToolArguments::Json(random_args(rng))
                } else {
                    ToolArguments::Text(random_args(rng).to_string())
                },
            }));
            results.push(ContentPart::ToolResult(ToolResult {
                tool_call_id: id,
                content: vec![ContentPart::Text(random_text(rng))],
                is_error: rng.bool(),
            }));
        }
        if assistant.is_empty() {
            assistant.push(ContentPart::Text(random_text(rng)));
        }
        messages.push(Message {
            role: Role::Assistant,
            content: assistant,
        });
        if !results.is_empty() {
            messages.push(Message {
                role: Role::Tool,
                content: results,
            });
        }
    }
    let has_tools = !tools.is_empty();
    let temperature = rng.bool().then(|| f64::from(rng.u8(..=10)) / 10.0);
    ChatRequest {
        model: pick(rng, &["gpt-4o", "claude-sonnet-4-5"]).to_string(),
        system: (0..rng.usize(..3)).map(|_| random_text(rng)).collect(),
        messages,
        tool_choice: has_tools
            .then(|| match rng.u8(..4) {
                0 => ToolChoice::Auto,
                1 => ToolChoice::None,
                2 => ToolChoice::Required,
                _ => ToolChoice::Tool(tools[0].name.clone()),
            })
            .filter(|_| rng.bool()),
        parallel_tool_calls: (has_tools && rng.bool()).then_some(false),
        tools,
        max_tokens: Some(rng.u64(1..100_000)),
        temperature,
        top_p: temperature.is_none().then_some(0.5).filter(|_| rng.bool()),
        stop: (0..rng.usize(..3)).map(|_| random_text(rng)).collect(),
        stream: rng.bool(),
        user: rng.bool().then(|| "user-7".to_string()),
        extras: Default::default(),
    }
}

#[test]
fn random_requests_keep_their_meaning_through_each_format() {
    let mut rng = fastrand::Rng::with_seed(0x7011_6a7e);
    for case in 0..500 {
        let mut ir = random_request(&mut rng);
        // `tool_choice: none` carries no parallel flag in Anthropic.
        let through_anthropic = anthropic::request_from_anthropic(
            &anthropic::request_to_anthropic(&ir, 4096).expect("render anthropic"),
        )
        .expect("parse anthropic");
        let mut expected = request_meaning(&ir, true);
        if expected.tool_choice == Some(ToolChoice::None) {
            expected.parallel_tool_calls = None;
        }
        assert_eq!(
            request_meaning(&through_anthropic, true),
            expected,
            "case {case} via Anthropic"
        );

        let through_openai =
            openai::request_from_openai(&openai::request_to_openai(&ir).expect("render openai"))
                .expect("parse openai");
        ir.extras = Default::default();
        assert_eq!(
            request_meaning(&through_openai, false),
            request_meaning(&ir, false),
            "case {case} via OpenAI"
        );
    }
}

fn response_meaning(resp: &ChatResponse) -> ChatResponse {
    ChatResponse {
        content: resp.content.iter().map(|p| part_meaning(p, true)).collect(),
        ..resp.clone()
    }
}

fn random_response(rng: &mut fastrand::Rng) -> ChatResponse {
    let mut content = Vec::new();
    if rng.bool() {
        content.push(ContentPart::Text(random_text(rng)));
    }
    for i in 0..rng.usize(..3) {
        content.push(ContentPart::ToolCall(ToolCall {
            id: format!("call_{i}"),
            name: "f".into(),
            arguments: ToolArguments::Json(random_args(rng)),
        }));
    }
    let input = rng.u64(..10_000);
    let cached = rng.u64(..=input);
    ChatResponse {
        id: "resp_1".into(),
        model: "m".into(),
        created: None,
        content,
        refusal: None,
        finish_reason: Some(match rng.u8(..4) {
            0 => FinishReason::Stop,
            1 => FinishReason::Length,
            2 => FinishReason::ToolCalls,
            _ => FinishReason::ContentFilter,
        }),
        stop_sequence: None,
        usage: Some(Usage {
            input_tokens: input,
            output_tokens: rng.u64(..5_000),
            cached_input_tokens: cached,
            cache_creation_input_tokens: rng.u64(..=input - cached),
        }),
    }
}

#[test]
fn random_responses_keep_their_meaning_through_each_format() {
    let mut rng = fastrand::Rng::with_seed(42);
    for case in 0..500 {
        let resp = random_response(&mut rng);
        let via_anthropic = anthropic::response_from_anthropic(
            &anthropic::response_to_anthropic(&resp).expect("render anthropic"),
        )
        .expect("parse anthropic");
        assert_eq!(
            response_meaning(&via_anthropic),
            response_meaning(&resp),
            "case {case} via Anthropic"
        );

        let via_openai =
            openai::response_from_openai(&openai::response_to_openai(&resp, 0)).expect("parse");
        let mut expected = resp.clone();
        expected.created = Some(0);
        if let Some(usage) = expected.usage.as_mut() {
            // OpenAI has no cache-write count; those tokens stay inside `prompt_tokens`.
            usage.cache_creation_input_tokens = 0;
        }
        assert_eq!(
            response_meaning(&via_openai),
            response_meaning(&expected),
            "case {case} via OpenAI"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// No panic on any input: every value inside the golden inputs is swapped for each JSON type.

fn mangled_variants(value: &Value) -> Vec<Value> {
    let replacements = [
        Value::Null,
        json!(-1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
    ];
    let mut out = Vec::new();
    let mut paths = Vec::new();
    collect_paths(value, &mut Vec::new(), &mut paths);
    for path in paths {
        for replacement in &replacements {
            let mut copy = value.clone();
            if let Some(slot) = pointer_mut(&mut copy, &path) {
                *slot = replacement.clone();
                out.push(copy);
            }
        }
    }
    out
}

fn collect_paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        prefix.push(key);
        collect_paths(child, prefix, out);
        prefix.pop();
    }
}

fn pointer_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

#[test]
fn mangled_inputs_never_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/golden");
    for dir in ["openai_to_anthropic", "anthropic_to_openai"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("golden dir");
        for entry in entries {
            let path = entry.expect("entry").path();
            let name = path.to_string_lossy().to_string();
            if name.ends_with(".expected.json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let input: Value = serde_json::from_str(&text).expect("json");
            for variant in mangled_variants(&input) {
                // Each format's parser gets every variant; results are ignored, panics are not.
                if let Ok(ir) = openai::request_from_openai(&variant) {
                    let _ = anthropic::request_to_anthropic(&ir, 1);
                    let _ = openai::request_to_openai(&ir);
                }
                if let Ok(ir) = anthropic::request_from_anthropic(&variant) {
                    let _ = anthropic::request_to_anthropic(&ir, 1);
                    let _ = openai::request_to_openai(&ir);
                }
                if let Ok(ir) = openai::response_from_openai(&variant) {
                    let _ = anthropic::response_to_anthropic(&ir);
                    let _ = openai::response_to_openai(&ir, 0);
                }
                if let Ok(ir) = anthropic::response_from_anthropic(&variant) {
                    let _ = anthropic::response_to_anthropic(&ir);
                    let _ = openai::response_to_openai(&ir, 0);
                }
            }
        }
    }
}
