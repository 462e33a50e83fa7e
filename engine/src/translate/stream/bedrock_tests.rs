//! Bedrock ConverseStream upstreams: binary event-stream transcripts built here with the
//! test-only encoder, translated to both client formats and compared with
//! `golden/bedrock_to_<client>/<case>.expected.sse` (`TOLLGATE_BLESS=1` rewrites them; review
//! every rewritten file by hand). Then chunking invariance and corrupted frames.

use std::path::Path;

use serde_json::Value;

use super::eventstream::{encode_message, HeaderValue};
use super::sse::SseDecoder;
use super::{EncoderOptions, StreamTranslator, WireFormat};

fn event(kind: &str, payload: &str) -> Vec<u8> {
    encode_message(
        &[
            (":event-type", HeaderValue::String(kind.into())),
            (
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            (":message-type", HeaderValue::String("event".into())),
        ],
        payload.as_bytes(),
    )
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    encode_message(
        &[
            (":exception-type", HeaderValue::String(kind.into())),
            (
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            (":message-type", HeaderValue::String("exception".into())),
        ],
        serde_json::json!({ "message": message })
            .to_string()
            .as_bytes(),
    )
}

/// Text, then two tool calls with their arguments in fragments, then usage with cache counts.
fn text_and_tools() -> Vec<u8> {
    [
        event("messageStart", r#"{"p":"abcdefghij","role":"assistant"}"#),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Checking "},"p":"abc"}"#,
        ),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"both."},"p":"abcdefg"}"#,
        ),
        event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"ab"}"#),
        event(
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_w1","name":"get_weather"}},"p":"a"}"#,
        ),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}},"p":"abcd"}"#,
        ),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}},"p":"abcd"}"#,
        ),
        event("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        event(
            "contentBlockStart",
            r#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_t2","name":"get_time"}}}"#,
        ),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}}"#,
        ),
        event("contentBlockStop", r#"{"contentBlockIndex":2}"#),
        event("messageStop", r#"{"stopReason":"tool_use","p":"abcdef"}"#),
        event(
            "metadata",
            r#"{"usage":{"inputTokens":6,"outputTokens":41,"totalTokens":2047,"cacheReadInputTokens":1920,"cacheWriteInputTokens":80},"metrics":{"latencyMs":812},"p":"abc"}"#,
        ),
    ]
    .concat()
}

fn text_then_throttled() -> Vec<u8> {
    [
        event("messageStart", r#"{"role":"assistant"}"#),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Once upon"}}"#,
        ),
        exception("throttlingException", "Too many requests, please wait."),
    ]
    .concat()
}

fn max_tokens() -> Vec<u8> {
    [
        event("messageStart", r#"{"role":"assistant"}"#),
        event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"The history of"}}"#,
        ),
        event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        event("messageStop", r#"{"stopReason":"max_tokens"}"#),
        event(
            "metadata",
            r#"{"usage":{"inputTokens":20,"outputTokens":3,"totalTokens":23},"metrics":{"latencyMs":90}}"#,
        ),
    ]
    .concat()
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("text_and_tools", text_and_tools()),
        ("text_then_throttled", text_then_throttled()),
        ("max_tokens", max_tokens()),
    ]
}

const CLIENTS: [(&str, WireFormat); 2] = [
    ("bedrock_to_openai", WireFormat::OpenAi),
    ("bedrock_to_anthropic", WireFormat::Anthropic),
];

fn options() -> EncoderOptions {
    EncoderOptions {
        created: 1_700_000_000,
        include_usage: true,
        ..EncoderOptions::default()
    }
}

fn translate_chunks<'a>(client: WireFormat, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut translator = StreamTranslator::new(WireFormat::Bedrock, client, options());
    let mut out = Vec::new();
    for chunk in chunks {
        translator.feed(chunk, &mut out);
    }
    translator.finish(&mut out);
    out
}

fn parse_transcript(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    decoder.feed(bytes, &mut events).expect("transcript frames");
    decoder.finish(&mut events).expect("transcript frames");
    events
        .into_iter()
        .map(|e| {
            let payload = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data));
            (e.event, payload)
        })
        .collect()
}

#[test]
fn bedrock_transcripts_translate_to_the_expected_events() {
    let bless = std::env::var("TOLLGATE_BLESS").is_ok_and(|v| v == "1");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/stream/golden");
    for (dir, client) in CLIENTS {
        for (name, input) in cases() {
            let path = root.join(dir).join(format!("{name}.expected.sse"));
            let output = translate_chunks(client, [input.as_slice()]);
            if bless {
                std::fs::create_dir_all(root.join(dir)).expect("golden dir");
                std::fs::write(&path, &output).expect("expected file is writable");
                continue;
            }
            let expected = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (TOLLGATE_BLESS=1 creates it)", path.display())
            });
            assert_eq!(
                parse_transcript(&output),
                parse_transcript(&expected),
                "{dir}/{name}"
            );
        }
    }
}

#[test]
fn any_chunking_of_the_binary_input_gives_the_same_output() {
    for (_, client) in CLIENTS {
        for (name, input) in cases() {
            let whole = translate_chunks(client, [input.as_slice()]);
            for split in 0..=input.len() {
                let (head, tail) = input.split_at(split);
                assert!(
                    translate_chunks(client, [head, tail]) == whole,
                    "{name}: split at byte {split} differs"
                );
            }
            assert!(
                translate_chunks(client, input.chunks(1)) == whole,
                "{name}: byte-by-byte feed differs"
            );
        }
    }
}

#[test]
fn usage_reaches_the_translator_with_cache_counts_in_the_input() {
    let mut translator = StreamTranslator::new(WireFormat::Bedrock, WireFormat::OpenAi, options());
    let mut out = Vec::new();
    translator.feed(&text_and_tools(), &mut out);
    // `metadata` ends the answer: no need to wait for the body's end.
    assert!(translator.is_ended());
    let usage = translator.usage();
    assert_eq!(
        (
            usage.input,
            usage.cached_input,
            usage.cache_creation,
            usage.output
        ),
        (Some(2006), Some(1920), Some(80), Some(41))
    );
}

/// The error event of a client transcript, if its last event is one.
fn last_error(client: WireFormat, output: &[u8]) -> Option<Value> {
    let events = parse_transcript(output);
    let (name, payload) = events.last()?.clone();
    match client {
        WireFormat::Anthropic if name.as_deref() == Some("error") => Some(payload),
        WireFormat::OpenAi if payload.get("error").is_some() => Some(payload),
        _ => None,
    }
}

#[test]
fn a_corrupted_crc_becomes_an_error_event_after_the_good_events() {
    let input = text_and_tools();
    let first_two = event("messageStart", r#"{"p":"abcdefghij","role":"assistant"}"#).len()
        + event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Checking "},"p":"abc"}"#,
        )
        .len();
    for (corrupt_at, what) in [
        (first_two + 8, "prelude CRC"),
        (first_two + 30, "message CRC"),
    ] {
        let mut bad = input.clone();
        bad[corrupt_at] ^= 0x40;
        for (_, client) in CLIENTS {
            let output = translate_chunks(client, [bad.as_slice()]);
            let error = last_error(client, &output).unwrap_or_else(|| {
                panic!(
                    "{what}: no error event in {}",
                    String::from_utf8_lossy(&output)
                )
            });
            assert!(
                error.to_string().contains("CRC mismatch"),
                "{what}: {error}"
            );
            assert!(
                String::from_utf8_lossy(&output).contains("Checking "),
                "{what}: the text before the bad frame is kept"
            );
        }
    }
}

#[test]
fn garbage_never_panics_and_always_ends_the_client_stream() {
    let mut rng = fastrand::Rng::with_seed(0xB3D0C);
    let sources = cases();
    for round in 0..2000 {
        let mut input = if round % 3 == 0 {
            (0..rng.usize(0..120)).map(|_| rng.u8(..)).collect()
        } else {
            sources[rng.usize(..sources.len())].1.clone()
        };
        for _ in 0..rng.usize(0..4) {
            if input.is_empty() {
                break;
            }
            let at = rng.usize(..input.len());
            match rng.u8(..3) {
                0 => input[at] ^= 1 << rng.u8(..8),
                1 => input.truncate(at),
                _ => {
                    input.remove(at);
                }
            }
        }
        for (_, client) in CLIENTS {
            let mut chunks = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(rng.usize(1..=rest.len().min(50)));
                chunks.push(chunk);
                rest = tail;
            }
            let output = translate_chunks(client, chunks);
            let events = parse_transcript(&output);
            let (name, payload) = events.last().expect("the client stream is never empty");
            let ended = payload == "[DONE]"
                || payload.get("error").is_some()
                || matches!(name.as_deref(), Some("message_stop") | Some("error"));
            assert!(ended, "stream ends with {name:?} {payload}");
        }
    }
}

#[test]
fn the_caller_names_the_response_id_and_model() {
    let mut translator = StreamTranslator::new(WireFormat::Bedrock, WireFormat::OpenAi, options());
    translator.set_response_identity(
        "chatcmpl-gw-1".into(),
        "anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
    );
    let mut out = Vec::new();
    translator.feed(&max_tokens(), &mut out);
    let events = parse_transcript(&out);
    assert_eq!(events[0].1["id"], "chatcmpl-gw-1");
    assert_eq!(
        events[0].1["model"],
        "anthropic.claude-3-5-sonnet-20240620-v1:0"
    );
}

#[test]
fn bedrock_is_not_a_client_format() {
    let err = StreamTranslator::try_new(WireFormat::OpenAi, WireFormat::Bedrock, options())
        .expect_err("no Bedrock encoder");
    assert!(err.to_string().contains("upstream-only"), "{err}");
}
