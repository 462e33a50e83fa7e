//! Gemini `generateContent` / `streamGenerateContent` / `batchEmbedContents` shapes, model list
//! and Google errors.

use bytes::Bytes;

use super::body::SseWriter;
use super::json::{float, num, raw, string};
use super::openai::unit_vector;
use super::reply::{Answer, Content, TOOL_ARGUMENTS};

/// One `GenerateContentResponse`; `last` adds the finish reason and full usage, as Gemini does on
/// the final stream chunk.
fn response(b: &mut Vec<u8>, a: &Answer, part: &dyn Fn(&mut Vec<u8>), last: bool) {
    raw(b, r#"{"candidates":[{"content":{"parts":["#);
    part(b);
    raw(b, r#"],"role":"model"}"#);
    if last {
        raw(b, r#","finishReason":"STOP""#);
    }
    raw(b, r#","index":0}],"usageMetadata":{"promptTokenCount":"#);
    num(b, a.prompt_tokens);
    if last {
        let completion = a.completion_tokens();
        raw(b, r#","candidatesTokenCount":"#);
        num(b, completion);
        raw(b, r#","totalTokenCount":"#);
        num(b, a.prompt_tokens + completion);
    } else {
        raw(b, r#","totalTokenCount":"#);
        num(b, a.prompt_tokens);
    }
    raw(b, r#"},"modelVersion":"#);
    string(b, a.model);
    raw(b, r#","responseId":"mock-"#);
    num(b, a.id);
    raw(b, r#""}"#);
}

fn text_part(b: &mut Vec<u8>, text_json: &str) {
    raw(b, r#"{"text":"#);
    raw(b, text_json);
    raw(b, "}");
}

fn call_part(b: &mut Vec<u8>, name: &str) {
    raw(b, r#"{"functionCall":{"name":"#);
    string(b, name);
    raw(b, r#","args":"#);
    raw(b, TOOL_ARGUMENTS);
    raw(b, "}}");
}

pub fn generate(a: &Answer) -> Vec<u8> {
    let mut b = Vec::with_capacity(400);
    match a.content {
        Content::Text(reply) => response(&mut b, a, &|b| text_part(b, &reply.json), true),
        Content::Tool { name } => response(&mut b, a, &|b| call_part(b, name), true),
    }
    b
}

/// Streamed responses, one per piece. With `sse` (`?alt=sse`) each is a `data:` event; without it
/// Gemini streams one JSON array, so the frames are `[`, `,`-separated elements and `]`.
/// Function calls are not split: Gemini sends a call whole in one chunk.
pub fn stream(a: &Answer, sse: bool) -> Vec<Bytes> {
    // `None` stands for the whole function call, which is never split.
    let pieces: Vec<Option<&str>> = match a.content {
        Content::Text(reply) => reply.pieces_json.iter().map(|p| Some(p.as_str())).collect(),
        Content::Tool { .. } => vec![None],
    };
    let count = pieces.len();
    let mut w = SseWriter::with_capacity(count * 330, count);
    for (i, piece) in pieces.into_iter().enumerate() {
        let last = i + 1 == count;
        let write = |b: &mut Vec<u8>| match (piece, &a.content) {
            (Some(text), _) => response(b, a, &|b| text_part(b, text), last),
            (None, Content::Tool { name }) => response(b, a, &|b| call_part(b, name), last),
            (None, Content::Text(_)) => {}
        };
        if sse {
            w.event(None, write);
        } else {
            w.raw(|b| {
                raw(b, if i == 0 { "[" } else { ",\r\n" });
                write(b);
                if last {
                    raw(b, "]");
                }
            });
        }
    }
    w.into_frames()
}

/// Components of a vector when the request names no `outputDimensionality` (as the OpenAI
/// mock's vectors have), and the most a request may ask for.
pub const DEFAULT_DIMENSIONS: usize = 8;
pub const MAX_DIMENSIONS: usize = 4096;

/// A `batchEmbedContents` answer: per request, in order, the unit vector of its text's hash
/// with its number of components, so equal texts embed equally and different ones almost never
/// do. Like Gemini's, the answer counts no tokens.
pub fn batch_embeddings(vectors: &[(u64, usize)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(32 + vectors.len() * 120);
    raw(&mut b, r#"{"embeddings":["#);
    for (i, &(hash, dims)) in vectors.iter().enumerate() {
        if i > 0 {
            raw(&mut b, ",");
        }
        raw(&mut b, r#"{"values":["#);
        for (j, v) in unit_vector(hash, dims).iter().enumerate() {
            if j > 0 {
                raw(&mut b, ",");
            }
            float(&mut b, *v);
        }
        raw(&mut b, "]}");
    }
    raw(&mut b, "]}");
    b
}

pub const MODELS: &str = r#"{"models":[{"name":"models/gemini-2.0-flash","displayName":"Gemini 2.0 Flash (mock)","supportedGenerationMethods":["generateContent","streamGenerateContent","countTokens"]},{"name":"models/gemini-2.5-pro","displayName":"Gemini 2.5 Pro (mock)","supportedGenerationMethods":["generateContent","streamGenerateContent","countTokens"]}]}"#;

fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status < 500 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

pub fn error(status: u16, message: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(120);
    raw(&mut b, r#"{"error":{"code":"#);
    num(&mut b, status);
    raw(&mut b, r#","message":"#);
    string(&mut b, message);
    raw(&mut b, r#","status":""#);
    raw(&mut b, status_name(status));
    raw(&mut b, r#""}}"#);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::reply::Replies;
    use serde_json::Value;

    fn answer<'a>(replies: &'a Replies, content: Content<'a>) -> Answer<'a> {
        Answer {
            id: 9,
            created: 1,
            model: "gemini-2.0-flash",
            prompt_tokens: 2,
            content,
            replies,
        }
    }

    #[test]
    fn generate_shape() {
        let r = Replies::new(5);
        let v: Value =
            serde_json::from_slice(&generate(&answer(&r, Content::Text(r.for_cap(None))))).unwrap();
        let cand = &v["candidates"][0];
        assert_eq!(
            cand["content"]["parts"][0]["text"],
            "mock reply 3 4 5 6 7 8 9 10"
        );
        assert_eq!(cand["finishReason"], "STOP");
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 10);
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 12);
    }

    #[test]
    fn sse_and_array_streams_carry_the_same_text() {
        let r = Replies::new(3);
        let a = answer(&r, Content::Text(r.for_cap(None)));
        let sse: Vec<Value> = stream(&a, true)
            .iter()
            .map(|f| {
                let s = std::str::from_utf8(f).unwrap();
                serde_json::from_str(s.strip_prefix("data: ").unwrap().trim_end()).unwrap()
            })
            .collect();
        let text: String = sse
            .iter()
            .map(|c| {
                c["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text, "mock reply 3 4 5 6 7 8 9 10");
        assert_eq!(sse[2]["candidates"][0]["finishReason"], "STOP");
        assert!(sse[0]["candidates"][0].get("finishReason").is_none());

        let array: Vec<u8> = stream(&a, false).concat();
        let v: Value = serde_json::from_slice(&array).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
    }

    #[test]
    fn function_call_is_one_chunk() {
        let r = Replies::new(3);
        let a = answer(
            &r,
            Content::Tool {
                name: "get_weather",
            },
        );
        let frames = stream(&a, true);
        assert_eq!(frames.len(), 1);
        let v: Value = serde_json::from_slice(&generate(&a)).unwrap();
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["city"],
            "Paris"
        );
    }

    #[test]
    fn batch_embeddings_are_unit_vectors_per_text() {
        let v: Value =
            serde_json::from_slice(&batch_embeddings(&[(1, 8), (2, 8), (1, 8), (1, 3)])).unwrap();
        let vectors: Vec<Vec<f64>> = v["embeddings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(vectors.len(), 4);
        assert_eq!(vectors[0], vectors[2]);
        assert_ne!(vectors[0], vectors[1]);
        assert_eq!(vectors[3].len(), 3);
        for vector in &vectors {
            let norm: f64 = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
        }
    }

    #[test]
    fn errors_have_google_shape() {
        let v: Value = serde_json::from_slice(&error(429, "slow down")).unwrap();
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert!(serde_json::from_str::<Value>(MODELS).is_ok());
    }
}
