//! Bedrock Converse shapes: `/model/{id}/converse` answers, `/converse-stream` answers in AWS's
//! binary event-stream framing, and AWS errors (the exception named in `x-amzn-ErrorType`).

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

fn usage(b: &mut Vec<u8>, a: &Answer) {
    let completion = a.completion_tokens();
    raw(b, r#"{"inputTokens":"#);
    num(b, a.prompt_tokens);
    raw(b, r#","outputTokens":"#);
    num(b, completion);
    raw(b, r#","totalTokens":"#);
    num(b, a.prompt_tokens + completion);
    raw(b, "}");
}

fn tool_use_id(b: &mut Vec<u8>, a: &Answer) {
    raw(b, r#""toolUseId":"tooluse_mock_"#);
    num(b, a.id);
    raw(b, "\"");
}

pub fn converse(a: &Answer) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    raw(
        &mut b,
        r#"{"output":{"message":{"role":"assistant","content":["#,
    );
    match a.content {
        Content::Text(reply) => {
            raw(&mut b, r#"{"text":"#);
            raw(&mut b, &reply.json);
            raw(&mut b, "}");
        }
        Content::Tool { name } => {
            raw(&mut b, r#"{"toolUse":{"#);
            tool_use_id(&mut b, a);
            raw(&mut b, r#","name":"#);
            string(&mut b, name);
            raw(&mut b, r#","input":"#);
            raw(&mut b, TOOL_ARGUMENTS);
            raw(&mut b, "}}");
        }
    }
    raw(&mut b, r#"]}},"stopReason":""#);
    raw(&mut b, stop_reason(a));
    raw(&mut b, r#"","usage":"#);
    usage(&mut b, a);
    raw(&mut b, r#","metrics":{"latencyMs":1}}"#);
    b
}

/// messageStart, (contentBlockStart for a tool,) contentBlockDelta × N, contentBlockStop,
/// messageStop, metadata: the order ConverseStream sends them in, one event-stream message each.
pub fn converse_stream(a: &Answer) -> Vec<Bytes> {
    let pieces = match a.content {
        Content::Text(reply) => &reply.pieces_json,
        Content::Tool { .. } => &a.replies.tool_pieces_json,
    };
    let mut w = SseWriter::with_capacity(800 + pieces.len() * 140, pieces.len() + 6);
    let mut event = |name: &str, payload: &dyn Fn(&mut Vec<u8>)| {
        let mut json = Vec::with_capacity(160);
        payload(&mut json);
        w.raw(|b| encode_event(b, name, &json));
    };
    event("messageStart", &|b| raw(b, r#"{"role":"assistant"}"#));
    if let Content::Tool { name } = a.content {
        event("contentBlockStart", &|b| {
            raw(b, r#"{"start":{"toolUse":{"#);
            tool_use_id(b, a);
            raw(b, r#","name":"#);
            string(b, name);
            raw(b, r#"}},"contentBlockIndex":0}"#);
        });
    }
    for piece in pieces {
        event("contentBlockDelta", &|b| {
            match a.content {
                Content::Text(_) => {
                    raw(b, r#"{"delta":{"text":"#);
                    raw(b, piece);
                }
                Content::Tool { .. } => {
                    raw(b, r#"{"delta":{"toolUse":{"input":"#);
                    raw(b, piece);
                    raw(b, "}");
                }
            }
            raw(b, r#"},"contentBlockIndex":0}"#);
        });
    }
    event("contentBlockStop", &|b| {
        raw(b, r#"{"contentBlockIndex":0}"#)
    });
    event("messageStop", &|b| {
        raw(b, r#"{"stopReason":""#);
        raw(b, stop_reason(a));
        raw(b, r#""}"#);
    });
    event("metadata", &|b| {
        raw(b, r#"{"usage":"#);
        usage(b, a);
        raw(b, r#","metrics":{"latencyMs":1}}"#);
    });
    w.into_frames()
}

/// One event-stream message: prelude (total length, headers length, CRC), string headers
/// `:event-type`, `:content-type` and `:message-type`, the JSON payload, then the CRC of all.
fn encode_event(b: &mut Vec<u8>, event_type: &str, payload: &[u8]) {
    let headers: [(&str, &str); 3] = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ];
    let headers_len: usize = headers.iter().map(|(n, v)| 1 + n.len() + 3 + v.len()).sum();
    let total = 12 + headers_len + payload.len() + 4;
    let start = b.len();
    b.extend_from_slice(&(total as u32).to_be_bytes());
    b.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&b[start..start + 8]);
    b.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        // Header value type 7: a string with a 16-bit length.
        b.push(7);
        b.extend_from_slice(&(value.len() as u16).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b.extend_from_slice(payload);
    let crc = crc32fast::hash(&b[start..]);
    b.extend_from_slice(&crc.to_be_bytes());
}

pub const MODELS: &str = r#"{"modelSummaries":[{"modelId":"anthropic.claude-3-5-sonnet-20240620-v1:0","modelName":"Claude 3.5 Sonnet (mock)","providerName":"Anthropic"},{"modelId":"amazon.nova-lite-v1:0","modelName":"Nova Lite (mock)","providerName":"Amazon"}]}"#;

/// The exception AWS names for a status, sent in `x-amzn-ErrorType`.
pub fn exception(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ if status < 500 => "ValidationException",
        _ => "InternalServerException",
    }
}

pub fn error(message: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(60 + message.len());
    raw(&mut b, r#"{"message":"#);
    string(&mut b, message);
    raw(&mut b, "}");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads messages back by their prelude, checking both CRCs: (event type, payload).
    fn decode(frames: &[Bytes]) -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        for frame in frames {
            let f = &frame[..];
            let total = u32::from_be_bytes(f[0..4].try_into().unwrap()) as usize;
            let headers_len = u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
            assert_eq!(total, f.len(), "one message per frame");
            assert_eq!(
                crc32fast::hash(&f[..8]),
                u32::from_be_bytes(f[8..12].try_into().unwrap())
            );
            assert_eq!(
                crc32fast::hash(&f[..total - 4]),
                u32::from_be_bytes(f[total - 4..].try_into().unwrap())
            );
            let name_len = f[12] as usize;
            assert_eq!(&f[13..13 + name_len], b":event-type");
            let value_len =
                u16::from_be_bytes(f[14 + name_len..16 + name_len].try_into().unwrap()) as usize;
            let value = &f[16 + name_len..16 + name_len + value_len];
            let payload = &f[12 + headers_len..total - 4];
            out.push((
                String::from_utf8(value.to_vec()).unwrap(),
                serde_json::from_slice(payload).unwrap(),
            ));
        }
        out
    }

    #[test]
    fn a_text_stream_is_framed_events_in_converse_order_with_usage_last() {
        let replies = super::super::reply::Replies::new(3);
        let a = Answer {
            id: 4,
            created: 0,
            model: "m",
            prompt_tokens: 7,
            content: Content::Text(replies.for_cap(None)),
            replies: &replies,
        };
        let events = decode(&converse_stream(&a));
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "messageStart");
        assert_eq!(
            &names[names.len() - 3..],
            ["contentBlockStop", "messageStop", "metadata"]
        );
        let text: String = events
            .iter()
            .filter_map(|(_, v)| v.pointer("/delta/text").and_then(|t| t.as_str()))
            .collect();
        let whole: serde_json::Value = serde_json::from_slice(&converse(&a)).unwrap();
        assert_eq!(
            whole.pointer("/output/message/content/0/text").unwrap(),
            &serde_json::Value::from(text)
        );
        let last = &events[events.len() - 1].1;
        assert_eq!(last["usage"]["inputTokens"], 7);
        assert_eq!(last["usage"], whole["usage"]);
    }

    #[test]
    fn a_tool_call_streams_its_arguments_as_a_json_string() {
        let replies = super::super::reply::Replies::new(3);
        let a = Answer {
            id: 9,
            created: 0,
            model: "m",
            prompt_tokens: 7,
            content: Content::Tool {
                name: "get_weather",
            },
            replies: &replies,
        };
        let events = decode(&converse_stream(&a));
        assert_eq!(
            events[1].1["start"]["toolUse"]["name"], "get_weather",
            "{events:?}"
        );
        let args: String = events
            .iter()
            .filter_map(|(_, v)| v.pointer("/delta/toolUse/input").and_then(|t| t.as_str()))
            .collect();
        assert_eq!(args, TOOL_ARGUMENTS);
        assert_eq!(events[events.len() - 2].1["stopReason"], "tool_use");
    }
}
