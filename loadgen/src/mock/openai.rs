//! OpenAI wire shapes: chat completions (whole and streamed), embeddings, model list, errors.

use bytes::Bytes;

use super::body::SseWriter;
use super::json::{float, num, raw, string};
use super::reply::{Answer, Content};

pub fn completion(a: &Answer) -> Vec<u8> {
    let mut b = Vec::with_capacity(512);
    raw(&mut b, r#"{"id":"chatcmpl-mock-"#);
    num(&mut b, a.id);
    raw(&mut b, r#"","object":"chat.completion","created":"#);
    num(&mut b, a.created);
    raw(&mut b, r#","model":"#);
    string(&mut b, a.model);
    raw(
        &mut b,
        r#","choices":[{"index":0,"message":{"role":"assistant","content":"#,
    );
    match a.content {
        Content::Text(reply) => {
            raw(&mut b, &reply.json);
            raw(
                &mut b,
                r#","refusal":null},"logprobs":null,"finish_reason":"stop"}]"#,
            );
        }
        Content::Tool { name } => {
            raw(&mut b, r#"null,"tool_calls":[{"id":"call_mock_"#);
            num(&mut b, a.id);
            raw(&mut b, r#"","type":"function","function":{"name":"#);
            string(&mut b, name);
            raw(&mut b, r#","arguments":"#);
            raw(&mut b, &a.replies.tool_arguments_json);
            raw(
                &mut b,
                r#"}}]},"logprobs":null,"finish_reason":"tool_calls"}]"#,
            );
        }
    }
    raw(&mut b, r#","usage":"#);
    usage(&mut b, a);
    raw(&mut b, r#","system_fingerprint":"fp_mock"}"#);
    b
}

fn usage(b: &mut Vec<u8>, a: &Answer) {
    let completion = a.completion_tokens();
    raw(b, r#"{"prompt_tokens":"#);
    num(b, a.prompt_tokens);
    raw(b, r#","completion_tokens":"#);
    num(b, completion);
    raw(b, r#","total_tokens":"#);
    num(b, a.prompt_tokens + completion);
    raw(b, "}");
}

/// The stream: one chunk per piece (the first also carries the role), a chunk with the finish
/// reason, the usage chunk when the client asked for it, then `[DONE]`.
pub fn stream(a: &Answer, include_usage: bool) -> Vec<Bytes> {
    let mut head = Vec::with_capacity(160);
    raw(&mut head, r#"{"id":"chatcmpl-mock-"#);
    num(&mut head, a.id);
    raw(
        &mut head,
        r#"","object":"chat.completion.chunk","created":"#,
    );
    num(&mut head, a.created);
    raw(&mut head, r#","model":"#);
    string(&mut head, a.model);
    raw(&mut head, r#","system_fingerprint":"fp_mock","choices":["#);
    // With include_usage, OpenAI sends `"usage":null` on every chunk before the usage chunk.
    let tail = if include_usage {
        r#"],"usage":null}"#
    } else {
        "]}"
    };

    let (pieces, finish) = match a.content {
        Content::Text(reply) => (&reply.pieces_json, "stop"),
        Content::Tool { .. } => (&a.replies.tool_pieces_json, "tool_calls"),
    };
    let mut w = SseWriter::with_capacity(pieces.len() * (head.len() + 120) + 400, pieces.len() + 3);
    let chunk = |w: &mut SseWriter, choice: &dyn Fn(&mut Vec<u8>)| {
        w.event(None, |b| {
            b.extend_from_slice(&head);
            choice(b);
            raw(b, tail);
        })
    };
    for (i, piece) in pieces.iter().enumerate() {
        chunk(&mut w, &|b: &mut Vec<u8>| {
            raw(b, r#"{"index":0,"delta":{"#);
            match a.content {
                Content::Text(_) => {
                    if i == 0 {
                        raw(b, r#""role":"assistant","#);
                    }
                    raw(b, r#""content":"#);
                    raw(b, piece);
                }
                Content::Tool { name } => {
                    if i == 0 {
                        raw(
                            b,
                            r#""role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_mock_"#,
                        );
                        num(b, a.id);
                        raw(b, r#"","type":"function","function":{"name":"#);
                        string(b, name);
                        raw(b, r#","arguments":"#);
                    } else {
                        raw(b, r#""tool_calls":[{"index":0,"function":{"arguments":"#);
                    }
                    raw(b, piece);
                    raw(b, "}}]");
                }
            }
            raw(b, r#"},"logprobs":null,"finish_reason":null}"#);
        });
    }
    chunk(&mut w, &|b: &mut Vec<u8>| {
        raw(
            b,
            r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":""#,
        );
        raw(b, finish);
        raw(b, r#""}"#);
    });
    if include_usage {
        w.event(None, |b| {
            b.extend_from_slice(&head);
            raw(b, r#"],"usage":"#);
            usage(b, a);
            raw(b, "}");
        });
    }
    w.event(None, |b| raw(b, "[DONE]"));
    w.into_frames()
}

/// One vector of 8 floats per input, derived from the input's hash so equal inputs embed equally
/// (useful for cache tests) and different inputs almost never do.
pub fn embeddings(model: &str, hashes: &[u64], prompt_tokens: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + hashes.len() * 120);
    raw(&mut b, r#"{"object":"list","data":["#);
    for (i, &h) in hashes.iter().enumerate() {
        if i > 0 {
            raw(&mut b, ",");
        }
        raw(&mut b, r#"{"object":"embedding","index":"#);
        num(&mut b, i);
        raw(&mut b, r#","embedding":["#);
        for (j, v) in unit_vector(h, 8).iter().enumerate() {
            if j > 0 {
                raw(&mut b, ",");
            }
            float(&mut b, *v);
        }
        raw(&mut b, "]}");
    }
    raw(&mut b, r#"],"model":"#);
    string(&mut b, model);
    raw(&mut b, r#","usage":{"prompt_tokens":"#);
    num(&mut b, prompt_tokens);
    raw(&mut b, r#","total_tokens":"#);
    num(&mut b, prompt_tokens);
    raw(&mut b, "}}");
    b
}

/// A vector of `dims` components and length 1, a function of `seed` and `dims` alone.
pub(super) fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    // splitmix64: a few multiply/xor steps turn the hash into well-spread components.
    let mut state = seed;
    let mut v = vec![0f32; dims];
    for x in &mut v {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *x = (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

pub const MODELS: &str = r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"loadgen-mock"},{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"loadgen-mock"},{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"loadgen-mock"}]}"#;

pub fn error(status: u16, message: &str) -> Vec<u8> {
    let (kind, code) = match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    };
    let mut b = Vec::with_capacity(160);
    raw(&mut b, r#"{"error":{"message":"#);
    string(&mut b, message);
    raw(&mut b, r#","type":""#);
    raw(&mut b, kind);
    raw(&mut b, r#"","param":null,"code":"#);
    match code {
        Some(code) => string(&mut b, code),
        None => raw(&mut b, "null"),
    }
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
            id: 7,
            created: 1,
            model: "gpt-\"x\"",
            prompt_tokens: 3,
            content,
            replies,
        }
    }

    fn events(frames: &[Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let s = std::str::from_utf8(f).unwrap();
                s.strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn completion_is_valid_and_echoes_model() {
        let r = Replies::new(5);
        let v: Value =
            serde_json::from_slice(&completion(&answer(&r, Content::Text(r.for_cap(None)))))
                .unwrap();
        assert_eq!(v["model"], "gpt-\"x\"");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "mock reply 3 4 5 6 7 8 9 10"
        );
        assert_eq!(v["usage"]["completion_tokens"], 10);
        assert_eq!(v["usage"]["total_tokens"], 13);
    }

    #[test]
    fn stream_concatenates_to_completion_and_ends_with_usage_then_done() {
        let r = Replies::new(5);
        let a = answer(&r, Content::Text(r.for_cap(None)));
        let ev = events(&stream(&a, true));
        assert_eq!(ev.len(), 5 + 3);
        assert_eq!(ev.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = ev[..ev.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks[..5]
            .iter()
            .map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text, "mock reply 3 4 5 6 7 8 9 10");
        assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[6]["choices"].as_array().unwrap().len(), 0);
        assert_eq!(chunks[6]["usage"]["completion_tokens"], 10);

        let ev = events(&stream(&a, false));
        assert_eq!(ev.len(), 5 + 2);
        assert!(!ev[5].contains("usage"));
    }

    #[test]
    fn tool_calls_stream_their_arguments() {
        let r = Replies::new(3);
        let a = answer(
            &r,
            Content::Tool {
                name: "get_weather",
            },
        );
        let v: Value = serde_json::from_slice(&completion(&a)).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);

        let ev = events(&stream(&a, false));
        let args: String = ev[..3]
            .iter()
            .map(|e| {
                let c: Value = serde_json::from_str(e).unwrap();
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(args, r#"{"city":"Paris"}"#);
        assert!(ev[3].contains(r#""finish_reason":"tool_calls""#));
    }

    #[test]
    fn embeddings_are_unit_vectors_per_input() {
        let v: Value = serde_json::from_slice(&embeddings("e", &[1, 2, 1], 3)).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        let vec0: Vec<f64> = data[0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(vec0.len(), 8);
        let norm: f64 = vec0.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-3);
        assert_eq!(data[0]["embedding"], data[2]["embedding"]);
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    }

    #[test]
    fn errors_have_openai_shape() {
        let v: Value = serde_json::from_slice(&error(429, "mock failure")).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let v: Value = serde_json::from_slice(&error(503, "x")).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert!(serde_json::from_str::<Value>(MODELS).is_ok());
    }
}
