//! Golden transcripts (`golden/<upstream>_to_<client>/<case>.input.sse` → `<case>.expected.sse`),
//! chunk-split invariance, and garbage robustness. `TOLLGATE_BLESS=1` rewrites the expected
//! files from the current output; review every rewritten file by hand before keeping it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::sse::SseDecoder;
use super::{EncoderOptions, StreamTranslator, WireFormat};

const DIRECTIONS: [(&str, WireFormat, WireFormat); 7] = [
    (
        "openai_to_anthropic",
        WireFormat::OpenAi,
        WireFormat::Anthropic,
    ),
    (
        "anthropic_to_openai",
        WireFormat::Anthropic,
        WireFormat::OpenAi,
    ),
    (
        "openai_to_responses",
        WireFormat::OpenAi,
        WireFormat::Responses,
    ),
    (
        "anthropic_to_responses",
        WireFormat::Anthropic,
        WireFormat::Responses,
    ),
    ("gemini_to_openai", WireFormat::Gemini, WireFormat::OpenAi),
    ("openai_to_gemini", WireFormat::OpenAi, WireFormat::Gemini),
    (
        "anthropic_to_gemini",
        WireFormat::Anthropic,
        WireFormat::Gemini,
    ),
];

struct Case {
    name: String,
    upstream: WireFormat,
    client: WireFormat,
    input: Vec<u8>,
    expected_path: PathBuf,
}

fn golden_cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/stream/golden");
    let mut cases = Vec::new();
    for (dir, upstream, client) in DIRECTIONS {
        let dir_path = root.join(dir);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir_path)
            .unwrap_or_else(|err| panic!("{}: {err}", dir_path.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.to_string_lossy().ends_with(".input.sse"))
            .collect();
        inputs.sort();
        for input_path in inputs {
            let file = input_path.file_name().unwrap_or_default().to_string_lossy();
            let stem = file.trim_end_matches(".input.sse").to_owned();
            cases.push(Case {
                name: format!("{dir}/{stem}"),
                upstream,
                client,
                input: std::fs::read(&input_path).expect("golden input is readable"),
                expected_path: dir_path.join(format!("{stem}.expected.sse")),
            });
        }
    }
    assert!(
        cases.len() >= 12,
        "golden cases missing under {}",
        root.display()
    );
    cases
}

fn options() -> EncoderOptions {
    EncoderOptions {
        created: 1_700_000_000,
        include_usage: true,
        ..EncoderOptions::default()
    }
}

fn translate_chunks<'a>(
    upstream: WireFormat,
    client: WireFormat,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut translator = StreamTranslator::new(upstream, client, options());
    let mut out = Vec::new();
    for chunk in chunks {
        translator.feed(chunk, &mut out);
    }
    translator.finish(&mut out);
    out
}

fn translate(case: &Case) -> Vec<u8> {
    translate_chunks(case.upstream, case.client, [case.input.as_slice()])
}

/// A transcript as (event name, payload) pairs; JSON payloads are parsed so that key order and
/// spacing do not matter, anything else (`[DONE]`) is kept as a string.
fn parse_transcript(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let mut decoder = SseDecoder::default();
    let mut events = Vec::new();
    decoder.feed(bytes, &mut events).expect("transcript frames");
    decoder.finish(&mut events).expect("transcript frames");
    events
        .into_iter()
        .map(|event| {
            let payload = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
            (event.event, payload)
        })
        .collect()
}

#[test]
fn golden_transcripts_translate_to_the_expected_events() {
    let bless = std::env::var("TOLLGATE_BLESS").is_ok_and(|v| v == "1");
    for case in golden_cases() {
        let output = translate(&case);
        if bless {
            std::fs::write(&case.expected_path, &output).expect("expected file is writable");
            continue;
        }
        let expected = std::fs::read(&case.expected_path).unwrap_or_else(|err| {
            panic!(
                "{}: {err} (run with TOLLGATE_BLESS=1 to create it)",
                case.name
            )
        });
        let (got, want) = (parse_transcript(&output), parse_transcript(&expected));
        for (position, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "{}: event {position} differs", case.name);
        }
        assert_eq!(got.len(), want.len(), "{}: event count differs", case.name);
    }
}

#[test]
fn any_chunking_of_the_input_gives_the_same_output() {
    let mut rng = fastrand::Rng::with_seed(0x5EED);
    for case in golden_cases() {
        let whole = translate(&case);
        let input = case.input.as_slice();
        for split in 0..=input.len() {
            let (head, tail) = input.split_at(split);
            let output = translate_chunks(case.upstream, case.client, [head, tail]);
            assert!(
                output == whole,
                "{}: split at byte {split} differs",
                case.name
            );
        }
        let bytewise = translate_chunks(case.upstream, case.client, input.chunks(1));
        assert!(
            bytewise == whole,
            "{}: byte-by-byte feed differs",
            case.name
        );
        for _ in 0..50 {
            let chunks = random_chunks(&mut rng, input);
            let output = translate_chunks(case.upstream, case.client, chunks.iter().copied());
            assert!(
                output == whole,
                "{}: random chunking {chunks:?} differs",
                case.name
            );
        }
    }
}

fn random_chunks<'a>(rng: &mut fastrand::Rng, mut input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    while !input.is_empty() {
        let (chunk, rest) = input.split_at(rng.usize(1..=input.len().min(64)));
        chunks.push(chunk);
        input = rest;
    }
    chunks
}

/// Whatever the upstream sends, the client gets well-formed events in its own format that end
/// with the format's terminator or an error event — and the translator never panics.
#[test]
fn garbage_and_mangled_input_never_panics_and_always_ends_the_stream() {
    let mut rng = fastrand::Rng::with_seed(0xBAD5EED);
    let cases = golden_cases();
    const ALPHABET: &[&[u8]] = &[
        b"data: ",
        b"event: ",
        b"\n",
        b"\r\n",
        b"\r",
        b"\n\n",
        b":",
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b",",
        b"[DONE]",
        b"\"type\":",
        b"\"message_start\"",
        b"\"index\":",
        b"0",
        b"-1",
        b"99999999999",
        b"\"choices\":",
        b"\"delta\":",
        b"\xff",
        b"\xe2\x98",
        b"\"error\":",
        b"null",
        b"ping",
        b"\"tool_calls\":",
        b"\"content_block_delta\"",
        b"1e400",
    ];
    for round in 0..3000 {
        let input: Vec<u8> = if round % 2 == 0 {
            let mut bytes = Vec::new();
            for _ in 0..rng.usize(0..80) {
                if rng.bool() {
                    bytes.extend_from_slice(ALPHABET[rng.usize(..ALPHABET.len())]);
                } else {
                    bytes.push(rng.u8(..));
                }
            }
            bytes
        } else {
            let source = rng.usize(..cases.len());
            mangle(&mut rng, &cases[source].input)
        };
        for (_, upstream, client) in DIRECTIONS {
            for client in [client, upstream] {
                let chunks = random_chunks(&mut rng, &input);
                let output = translate_chunks(upstream, client, chunks.iter().copied());
                assert_stream_is_complete(client, &output, &input);
            }
        }
    }
}

fn mangle(rng: &mut fastrand::Rng, input: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..rng.usize(1..6) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.usize(..bytes.len());
        match rng.u8(..4) {
            0 => bytes[at] = rng.u8(..),
            1 => {
                let end = (at + rng.usize(..40)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => bytes.truncate(at),
            _ => {
                let end = (at + rng.usize(..200)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    bytes
}

/// The events that end a Responses stream.
fn is_responses_end(name: Option<&str>) -> bool {
    matches!(
        name,
        Some("response.completed" | "response.incomplete" | "response.failed")
    )
}

fn assert_stream_is_complete(client: WireFormat, output: &[u8], input: &[u8]) {
    let context = || String::from_utf8_lossy(input).into_owned();
    assert!(
        std::str::from_utf8(output).is_ok(),
        "output not UTF-8 for {:?}",
        context()
    );
    let events = parse_transcript(output);
    for (_, payload) in &events {
        assert!(
            payload.is_object() || payload == "[DONE]",
            "non-JSON payload {payload} for {:?}",
            context()
        );
    }
    let last = events.last().expect("the client stream is never empty");
    let terminated = match client {
        WireFormat::OpenAi => last.1 == "[DONE]" || last.1.get("error").is_some(),
        WireFormat::Anthropic => {
            matches!(last.0.as_deref(), Some("message_stop") | Some("error"))
        }
        WireFormat::Responses => is_responses_end(last.0.as_deref()),
        // Gemini streams just end; the last chunk has the finish reason, or is an error.
        WireFormat::Gemini => {
            last.1.get("error").is_some() || last.1.pointer("/candidates/0/finishReason").is_some()
        }
        WireFormat::Bedrock => unreachable!("Bedrock is never a client format"),
    };
    assert!(terminated, "stream ends with {last:?} for {:?}", context());
    let terminators = events
        .iter()
        .filter(|(name, payload)| {
            payload == "[DONE]"
                || payload.get("error").is_some()
                || matches!(name.as_deref(), Some("message_stop"))
                || (client == WireFormat::Responses && is_responses_end(name.as_deref()))
                || (client == WireFormat::Gemini
                    && payload.pointer("/candidates/0/finishReason").is_some())
        })
        .count();
    assert_eq!(
        terminators,
        1,
        "one terminator expected for {:?}",
        context()
    );
}

#[test]
fn an_oversized_upstream_event_becomes_an_error_for_the_client() {
    let options = EncoderOptions {
        max_event_bytes: 64,
        ..options()
    };
    let mut translator = StreamTranslator::new(WireFormat::OpenAi, WireFormat::Anthropic, options);
    let mut out = Vec::new();
    translator.feed(b"data: ", &mut out);
    translator.feed(&[b'x'; 100], &mut out);
    assert!(translator.is_ended());
    let events = parse_transcript(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0.as_deref(), Some("error"));
    assert_eq!(events[0].1["error"]["type"], "upstream_error");
}

#[test]
fn a_cut_off_stream_ends_with_an_error_but_a_missing_done_after_finish_does_not() {
    let text_chunk =
        br#"data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
    let cut = translate_chunks(WireFormat::OpenAi, WireFormat::OpenAi, [&text_chunk[..]]);
    let events = parse_transcript(&cut);
    assert_eq!(
        events.last().map(|e| &e.1["error"]["type"]),
        Some(&Value::from("upstream_error"))
    );

    let finish = br#"data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    let input = [&text_chunk[..], b"\n\n", &finish[..], b"\n\n"];
    let events = parse_transcript(&translate_chunks(
        WireFormat::OpenAi,
        WireFormat::Anthropic,
        input,
    ));
    let names: Vec<_> = events.iter().filter_map(|e| e.0.as_deref()).collect();
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(
        events[names.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
}

#[test]
fn anthropic_usage_reported_at_the_start_reaches_message_start_and_the_translator() {
    let case = golden_cases()
        .into_iter()
        .find(|case| case.name == "anthropic_to_openai/cached_usage")
        .expect("cached_usage golden case");
    let mut translator =
        StreamTranslator::new(WireFormat::Anthropic, WireFormat::Anthropic, options());
    let mut out = Vec::new();
    translator.feed(&case.input, &mut out);
    translator.finish(&mut out);
    let events = parse_transcript(&out);
    let start_usage = &events[0].1["message"]["usage"];
    assert_eq!(start_usage["input_tokens"], 6);
    assert_eq!(start_usage["cache_read_input_tokens"], 1920);
    assert_eq!(start_usage["cache_creation_input_tokens"], 80);
    let usage = translator.usage();
    assert_eq!(
        (
            usage.input,
            usage.cached_input,
            usage.cache_creation,
            usage.output
        ),
        (Some(2006), Some(1920), Some(80), Some(300))
    );
}
