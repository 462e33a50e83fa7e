//! The request-body work on the forward path: parse the few fields the gateway needs
//! (`model`, `stream`, presence of `messages`) without building a JSON tree, then produce the
//! upstream body (the original bytes, or a copy with only the model value spliced). The last
//! case is the whole per-request decision: authenticate, parse, route, body.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use tollgate::admission::{auth, route};
use tollgate::compile::compile;
use tollgate::config::{load_str, ConfigFormat};
use tollgate::proxy::parse_head;
use tollgate::telemetry::Endpoint;
use tollgate_bench::{generate, secret, Spec};

/// A chat request as SDKs write it (model first, then messages, then options) whose user
/// message is `content_bytes` long.
fn chat_body(model: &str, content_bytes: usize) -> Bytes {
    let text = "lorem ipsum dolor sit amet ".repeat(content_bytes / 27 + 1);
    let content = &text[..content_bytes];
    Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{content}"}}],"temperature":0.2,"max_tokens":256,"stream":false}}"#
    ))
}

fn request_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_head");
    for size in [64usize, 4 << 10, 64 << 10] {
        for (case, model, upstream) in [
            ("unchanged_model", "gpt-4o-mini", "gpt-4o-mini"),
            ("rewritten_model", "mock-a/gpt-4o-mini", "gpt-4o-mini"),
        ] {
            let body = chat_body(model, size);
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new(case, size), &body, |b, body| {
                b.iter(|| {
                    let head = parse_head(black_box(body), Endpoint::Chat).expect("parses");
                    head.upstream_body(body, black_box(upstream), None)
                })
            });
        }
    }
    group.finish();

    let text = generate(&Spec::default()).yaml;
    let plan = compile(&load_str(&text, "bench.yaml", ConfigFormat::Yaml).expect("parses"))
        .expect("compiles");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", secret(501))).expect("header"),
    );
    let body = chat_body("mock-a/gpt-4o-mini", 64);
    let mut roll = 0u64;
    let mut group = c.benchmark_group("decision_1k_keys");
    group.bench_function("authenticate_parse_resolve_body", |b| {
        b.iter(|| {
            roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let key = auth::authenticate(black_box(&plan), black_box(&headers), 1_800_000_000)
                .expect("known key");
            let head = parse_head(black_box(&body), Endpoint::Chat).expect("parses");
            let r = route::resolve(&plan, key, &head.model, roll, &[]).expect("routed");
            head.upstream_body(&body, r.model, None)
        })
    });
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
