//! Converse details the golden files do not show: refusals, merging and error messages.

use serde_json::json;

use super::*;
use crate::translate::ir::{
    ChatRequest, ContentPart, FinishReason, Image, ImageSource, Message, Role, ToolChoice,
    ToolDefinition, ToolResult,
};

fn user(parts: Vec<ContentPart>) -> Message {
    Message {
        role: Role::User,
        content: parts,
    }
}

#[test]
fn image_urls_and_unknown_image_types_are_refused() {
    let mut req = ChatRequest {
        messages: vec![user(vec![ContentPart::Image(Image {
            source: ImageSource::Url("https://example.com/cat.png".into()),
            detail: None,
        })])],
        ..ChatRequest::default()
    };
    let err = request_to_bedrock(&req).expect_err("URL refused");
    assert_eq!(err.path, "messages[0].content[0]");
    assert!(err.message.contains("inline data only"), "{err}");

    req.messages = vec![user(vec![ContentPart::Image(Image {
        source: ImageSource::Base64 {
            media_type: "image/tiff".into(),
            data: "AAAA".into(),
        },
        detail: None,
    })])];
    let err = request_to_bedrock(&req).expect_err("tiff refused");
    assert!(err.message.contains("image/tiff"), "{err}");
}

#[test]
fn tool_choice_none_keeps_the_tools_but_sends_no_choice() {
    let req = ChatRequest {
        messages: vec![user(vec![ContentPart::Text("hi".into())])],
        tools: vec![ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
        }],
        tool_choice: Some(ToolChoice::None),
        ..ChatRequest::default()
    };
    let body = request_to_bedrock(&req).expect("renders");
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]})
    );
}

#[test]
fn tool_results_and_user_text_merge_into_one_user_turn() {
    let req = ChatRequest {
        messages: vec![
            Message {
                role: Role::Tool,
                content: vec![ContentPart::ToolResult(ToolResult {
                    tool_call_id: "t1".into(),
                    content: vec![],
                    is_error: true,
                })],
            },
            user(vec![ContentPart::Text("and now?".into())]),
            user(vec![ContentPart::Text("  ".into())]),
        ],
        ..ChatRequest::default()
    };
    let body = request_to_bedrock(&req).expect("renders");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"json": {}}], "status": "error"}},
            {"text": "and now?"}
        ]}])
    );
}

#[test]
fn n_above_one_is_refused() {
    let mut req = ChatRequest::default();
    req.extras.openai.insert("n".into(), 2.into());
    assert!(request_to_bedrock(&req).is_err());
}

#[test]
fn guardrail_stops_are_content_filters_and_unknown_blocks_fail() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "blocked"}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}
    });
    let resp = response_from_bedrock(&body).expect("parses");
    assert_eq!(resp.finish_reason, Some(FinishReason::ContentFilter));
    let usage = resp.usage.expect("usage");
    assert_eq!((usage.input_tokens, usage.output_tokens), (3, 1));

    let body = json!({"output": {"message": {"role": "assistant", "content": [{"video": {}}]}}});
    let err = response_from_bedrock(&body).expect_err("unknown block");
    assert_eq!(err.path, "output.message.content[0]");
}

#[test]
fn error_messages_name_the_exception() {
    assert_eq!(
        error_message(
            400,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"The model returned the following errors: bad"}"#
        ),
        "Bedrock ValidationException (HTTP 400): The model returned the following errors: bad"
    );
    assert_eq!(
        error_message(403, None, br#"{"Message":"denied"}"#),
        "Bedrock error (HTTP 403): denied"
    );
    assert_eq!(
        error_message(502, Some("aws.protocols#BadGateway"), b"<html>oops</html>"),
        "Bedrock BadGateway (HTTP 502): <html>oops</html>"
    );
    assert_eq!(
        error_message(500, Some(""), b""),
        "Bedrock error (HTTP 500)"
    );
}

/// Every golden Converse response survives Converse → IR → Converse → IR unchanged.
#[test]
fn golden_responses_survive_their_own_format() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/golden/bedrock_to_openai");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".response.json") {
            continue;
        }
        let input: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let ir = response_from_bedrock(&input).expect("parse");
        let rendered = response_to_bedrock(&ir).expect("render");
        assert_eq!(
            rendered["usage"]["totalTokens"], input["usage"]["totalTokens"],
            "{name}: the total is the same in both directions"
        );
        let again = response_from_bedrock(&rendered).expect("reparse");
        assert_eq!(ir, again, "{name}");
        seen += 1;
    }
    assert!(seen >= 4);
}

/// Every golden request reaches a fixed point: OpenAI → IR → Converse → IR → Converse gives the
/// same Converse body twice, so `request_from_bedrock` reads back all that is written.
#[test]
fn golden_requests_survive_their_own_format() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/translate/golden/openai_to_bedrock");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".request.json") || name.ends_with(".expected.json") {
            continue;
        }
        let input: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let ir = crate::translate::openai::request_from_openai(&input).expect("parse");
        let body = request_to_bedrock(&ir).expect("render");
        let again = request_from_bedrock(&body, &ir.model).expect("reparse");
        assert_eq!(
            request_to_bedrock(&again).expect("render again"),
            body,
            "{name}"
        );
        seen += 1;
    }
    assert!(seen >= 4);
}

#[test]
fn converse_fields_without_an_ir_place_are_refused() {
    let body = json!({"messages": [], "guardrailConfig": {"guardrailIdentifier": "g"}});
    let err = request_from_bedrock(&body, "m").expect_err("refused");
    assert_eq!(err.path, "guardrailConfig");
}
