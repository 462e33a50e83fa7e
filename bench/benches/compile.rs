//! Plan compile for 10,000 virtual keys (50 teams, 10 customers, three providers): what a
//! reload costs. With the full policy (limits on every tier, 1,000 routing rules folded per
//! key, 5 guardrails) and with keys only. YAML parsing and compiling are measured apart and
//! together.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tollgate::compile::compile;
use tollgate::config::{load_str, ConfigFormat};
use tollgate_bench::{generate, Policy, Spec};

fn compile_10k(c: &mut Criterion) {
    for (name, spec) in [
        (
            "compile_10k_keys_1k_rules",
            Spec {
                keys: 10_000,
                rules: 1_000,
                ..Spec::default()
            },
        ),
        (
            "compile_10k_keys_only",
            Spec {
                keys: 10_000,
                policy: Policy::KeysOnly,
                ..Spec::default()
            },
        ),
    ] {
        let text = generate(&spec).yaml;
        let loaded = load_str(&text, "bench.yaml", ConfigFormat::Yaml).expect("parses");
        assert_eq!(compile(&loaded).expect("compiles").keys.len(), 10_000);

        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(15));
        group.bench_function("parse_yaml", |b| {
            b.iter(|| load_str(black_box(&text), "bench.yaml", ConfigFormat::Yaml).expect("parses"))
        });
        group.bench_function("compile", |b| {
            b.iter(|| compile(black_box(&loaded)).expect("compiles"))
        });
        group.bench_function("parse_and_compile", |b| {
            b.iter(|| {
                let loaded =
                    load_str(black_box(&text), "bench.yaml", ConfigFormat::Yaml).expect("parses");
                compile(&loaded).expect("compiles")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, compile_10k);
criterion_main!(benches);
