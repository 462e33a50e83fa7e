//! The admission decision for one request against a plan of 1,000 virtual keys: who is calling
//! (`authenticate`: header lookup, SHA-256 of the key, hash-map probe, expiry) and where the
//! call goes (`resolve`: allowed models, provider pin or weighted split, provider key).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use tollgate::admission::{auth, route};
use tollgate::compile::compile;
use tollgate::config::{load_str, ConfigFormat};
use tollgate::plan::Plan;
use tollgate_bench::{generate, secret, Spec};

/// Unix time inside every key's validity (some expire in 2099).
const NOW: i64 = 1_800_000_000;

fn plan_1k() -> Plan {
    let text = generate(&Spec::default()).yaml;
    let loaded = load_str(&text, "bench.yaml", ConfigFormat::Yaml).expect("parses");
    compile(&loaded).expect("compiles")
}

fn headers_for(i: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    // What an OpenAI SDK sends besides the key; the key header is found among them.
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert(
        "user-agent",
        HeaderValue::from_static("OpenAI/Python 1.99.0"),
    );
    h.insert("x-stainless-lang", HeaderValue::from_static("python"));
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", secret(i))).expect("header"),
    );
    h
}

fn admission(c: &mut Criterion) {
    let plan = plan_1k();
    assert_eq!(plan.keys.len(), 1_000);
    // Key 500: exact model list, one provider. Key 501: any model, pins `mock-a/`.
    // Key 502: a regex allow-list and an 80/20 weighted split.
    let cases = [
        ("exact_models_one_provider", 500, "gpt-4o-mini"),
        ("pinned_provider_prefix", 501, "mock-a/gpt-4o-mini"),
        ("regex_models_weighted_split", 502, "gpt-4o-mini"),
    ];
    let mut group = c.benchmark_group("admission_1k_keys");
    let h = headers_for(500);
    group.bench_function("authenticate", |b| {
        b.iter(|| auth::authenticate(black_box(&plan), black_box(&h), NOW).expect("known key"))
    });
    for (name, i, model) in cases {
        let h = headers_for(i);
        let mut roll = 0u64;
        group.bench_function(format!("authenticate_and_resolve/{name}"), |b| {
            b.iter(|| {
                roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let key =
                    auth::authenticate(black_box(&plan), black_box(&h), NOW).expect("known key");
                let r = route::resolve(&plan, key, black_box(model), roll, &[]).expect("routed");
                black_box(r.provider_key.is_some())
            })
        });
    }
    let unknown = {
        let mut h = headers_for(0);
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer tg-not-a-key"),
        );
        h
    };
    group.bench_function("authenticate_unknown_key", |b| {
        b.iter(|| {
            auth::authenticate(black_box(&plan), black_box(&unknown), NOW).expect_err("unknown")
        })
    });
    group.finish();
}

criterion_group!(benches, admission);
criterion_main!(benches);
