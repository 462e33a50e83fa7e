//! Anthropic Messages API shapes: message, the named-event stream, token count, models, errors.

use bytes::Bytes;

use super::body::SseWriter;
use super::json::{num, raw, string};
use super::reply::{Answer, Content, TOOL_ARGUMENTS};

fn stop_reason(a: &Answer) -> &'static str {
    match a.content {
        Content::Text(_) => "end_turn",
        Content::Tool { .. } => "tool_use",
    }
}

fn message_head(b: &mut Vec<u8>, a: &Answer) {
    raw(b, r#"{"id":"msg_mock_"#);
    num(b, a.id);
    raw(b, r#"","type":"message","role":"assistant","model":"#);
    string(b, a.model);
}

fn tool_block_head(b: &mut Vec<u8>, a: &Answer, name: &str) {
    raw(b, r#"{"type":"tool_use","id":"toolu_mock_"#);
    num(b, a.id);
    raw(b, r#"","name":"#);
    string(b, name);
}

/// The text of the thinking block answered when extended thinking is on.
const THINKING: &str = "Mock reasoning before the answer.";

/// A signed thinking block as Anthropic returns it; clients send it back on the next turn, so
/// a proxy must carry it (signature included) untouched.
fn thinking_block(b: &mut Vec<u8>, a: &Answer) {
    raw(b, r#"{"type":"thinking","thinking":"#);
    string(b, THINKING);
    raw(b, r#","signature":"mock-signature-"#);
    num(b, a.id);
    raw(b, r#""}"#);
}

/// `thinking`: the request enabled extended thinking; the answer starts with a thinking block.
pub fn message(a: &Answer, thinking: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    message_head(&mut b, a);
    raw(&mut b, r#","content":["#);
    if thinking {
        thinking_block(&mut b, a);
        raw(&mut b, ",");
    }
    match a.content {
        Content::Text(reply) => {
            raw(&mut b, r#"{"type":"text","text":"#);
            raw(&mut b, &reply.json);
            raw(&mut b, "}");
        }
        Content::Tool { name } => {
            tool_block_head(&mut b, a, name);
            raw(&mut b, r#","input":"#);
            raw(&mut b, TOOL_ARGUMENTS);
            raw(&mut b, "}");
        }
    }
    raw(&mut b, r#"],"stop_reason":""#);
    raw(&mut b, stop_reason(a));
    raw(&mut b, r#"","stop_sequence":null,"usage":{"input_tokens":"#);
    num(&mut b, a.prompt_tokens);
    raw(&mut b, r#","output_tokens":"#);
    num(&mut b, a.completion_tokens());
    raw(&mut b, "}}");
    b
}

/// message_start, content_block_start, ping, content_block_delta × N, content_block_stop,
/// message_delta, message_stop — the order Anthropic sends them in. With `thinking`, a
/// thinking block (thinking_delta, signature_delta) comes first at index 0.
pub fn stream(a: &Answer, thinking: bool) -> Vec<Bytes> {
    let pieces = match a.content {
        Content::Text(reply) => &reply.pieces_json,
        Content::Tool { .. } => &a.replies.tool_pieces_json,
    };
    let mut w = SseWriter::with_capacity(600 + pieces.len() * 110, pieces.len() + 6);
    w.event(Some("message_start"), |b| {
        raw(b, r#"{"type":"message_start","message":"#);
        message_head(b, a);
        raw(
            b,
            r#","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":"#,
        );
        num(b, a.prompt_tokens);
        raw(b, r#","output_tokens":1}}}"#);
    });
    let index = if thinking {
        stream_thinking(&mut w, a);
        "1"
    } else {
        "0"
    };
    w.event(Some("content_block_start"), |b| {
        raw(b, r#"{"type":"content_block_start","index":"#);
        raw(b, index);
        raw(b, r#","content_block":"#);
        match a.content {
            Content::Text(_) => raw(b, r#"{"type":"text","text":""}"#),
            Content::Tool { name } => {
                tool_block_head(b, a, name);
                raw(b, r#","input":{}}"#);
            }
        }
        raw(b, "}");
    });
    w.event(Some("ping"), |b| raw(b, r#"{"type":"ping"}"#));
    for piece in pieces {
        w.event(Some("content_block_delta"), |b| {
            raw(b, r#"{"type":"content_block_delta","index":"#);
            raw(b, index);
            raw(b, r#","delta":"#);
            match a.content {
                Content::Text(_) => raw(b, r#"{"type":"text_delta","text":"#),
                Content::Tool { .. } => raw(b, r#"{"type":"input_json_delta","partial_json":"#),
            }
            raw(b, piece);
            raw(b, "}}");
        });
    }
    w.event(Some("content_block_stop"), |b| {
        raw(b, r#"{"type":"content_block_stop","index":"#);
        raw(b, index);
        raw(b, "}");
    });
    w.event(Some("message_delta"), |b| {
        raw(b, r#"{"type":"message_delta","delta":{"stop_reason":""#);
        raw(b, stop_reason(a));
        raw(b, r#"","stop_sequence":null},"usage":{"output_tokens":"#);
        num(b, a.completion_tokens());
        raw(b, "}}");
    });
    w.event(Some("message_stop"), |b| {
        raw(b, r#"{"type":"message_stop"}"#)
    });
    w.into_frames()
}

/// The thinking block's events at index 0: start, the text, the signature, stop.
fn stream_thinking(w: &mut SseWriter, a: &Answer) {
    w.event(Some("content_block_start"), |b| {
        raw(
            b,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        );
    });
    w.event(Some("content_block_delta"), |b| {
        raw(
            b,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"#,
        );
        string(b, THINKING);
        raw(b, "}}");
    });
    w.event(Some("content_block_delta"), |b| {
        raw(
            b,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"mock-signature-"#,
        );
        num(b, a.id);
        raw(b, r#""}}"#);
    });
    w.event(Some("content_block_stop"), |b| {
        raw(b, r#"{"type":"content_block_stop","index":0}"#)
    });
}

pub fn count_tokens(input_tokens: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    raw(&mut b, r#"{"input_tokens":"#);
    num(&mut b, input_tokens);
    raw(&mut b, "}");
    b
}

pub const MODELS: &str = r#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5 (mock)","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5 (mock)","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-haiku-4-5"}"#;

pub fn error(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ if status < 500 => "invalid_request_error",
        _ => "api_error",
    };
    let mut b = Vec::with_capacity(120);
    raw(&mut b, r#"{"type":"error","error":{"type":""#);
    raw(&mut b, kind);
    raw(&mut b, r#"","message":"#);
    string(&mut b, message);
    raw(&mut b, "}}");
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::reply::Replies;
    use serde_json::Value;

    fn answer<'a>(replies: &'a Replies, content: Content<'a>) -> Answer<'a> {
        Answer {
            id: 3,
            created: 1,
            model: "claude-x",
            prompt_tokens: 5,
            content,
            replies,
        }
    }

    /// (event name, data) pairs, checking the framing on the way.
    fn events(frames: &[Bytes]) -> Vec<(String, Value)> {
        frames
            .iter()
            .map(|f| {
                let s = std::str::from_utf8(f).unwrap();
                let s = s.strip_suffix("\n\n").unwrap();
                let (event, data) = s.split_once('\n').unwrap();
                let name = event.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[test]
    fn message_shape() {
        let r = Replies::new(5);
        let v: Value = serde_json::from_slice(&message(
            &answer(&r, Content::Text(r.for_cap(Some(4)))),
            false,
        ))
        .unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "mock reply 3 4");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 4);
    }

    #[test]
    fn stream_event_order_and_text() {
        let r = Replies::new(4);
        let ev = events(&stream(&answer(&r, Content::Text(r.for_cap(None))), false));
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let text: String = ev[3..7]
            .iter()
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "mock reply 3 4 5 6 7 8 9 10");
        assert_eq!(ev[8].1["usage"]["output_tokens"], 10);
    }

    #[test]
    fn thinking_comes_first_signed_whole_and_streamed() {
        let r = Replies::new(2);
        let a = answer(&r, Content::Text(r.for_cap(None)));
        let v: Value = serde_json::from_slice(&message(&a, true)).unwrap();
        assert_eq!(v["content"][0]["type"], "thinking");
        assert_eq!(v["content"][0]["signature"], "mock-signature-3");
        assert_eq!(v["content"][1]["text"], "mock reply 3 4 5 6 7 8 9 10");
        let ev = events(&stream(&a, true));
        assert_eq!(ev[1].1["content_block"]["type"], "thinking");
        assert_eq!(ev[2].1["delta"]["thinking"], THINKING);
        assert_eq!(ev[3].1["delta"]["signature"], "mock-signature-3");
        assert_eq!(ev[4].1["index"], 0);
        // The text block follows at index 1, start to stop.
        assert_eq!(ev[5].1["index"], 1);
        assert_eq!(ev[5].1["content_block"]["type"], "text");
        assert!(ev[6..]
            .iter()
            .all(|(n, d)| n != "content_block_delta" || d["index"] == 1));
    }

    #[test]
    fn tool_use_streams_partial_json() {
        let r = Replies::new(3);
        let a = answer(
            &r,
            Content::Tool {
                name: "get_weather",
            },
        );
        let v: Value = serde_json::from_slice(&message(&a, false)).unwrap();
        assert_eq!(v["content"][0]["input"]["city"], "Paris");
        assert_eq!(v["stop_reason"], "tool_use");
        let ev = events(&stream(&a, false));
        assert_eq!(ev[1].1["content_block"]["name"], "get_weather");
        let json: String = ev[3..6]
            .iter()
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(json, TOOL_ARGUMENTS);
        assert_eq!(ev[7].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn errors_have_anthropic_shape() {
        let v: Value = serde_json::from_slice(&error(529, "busy")).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
        assert!(serde_json::from_str::<Value>(MODELS).is_ok());
    }
}
