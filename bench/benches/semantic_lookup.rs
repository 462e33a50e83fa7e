//! The semantic cache's lookup cost: embedding one prompt with the real model, the nearest-
//! neighbour search over an index of 100,000 entries in one partition (the worst case: a
//! partition is one tenant's entries for one model and parameter set), and both together, as
//! a request pays them. Reports p50/p99 over many lookups rather than a mean, since the target
//! is a tail latency.
//!
//! Needs the model: `bash policies/install-embedder.sh target/embedder` (or set
//! `TOLLGATE_EMBEDDER_DIR`). Run: `cargo bench -p tollgate-bench --bench semantic_lookup`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::cache::semantic::embed::Embedder;
use tollgate::cache::semantic::{normalise, EmbeddedIndex};
use tollgate::cache::Hash128;
use tollgate::telemetry::Histogram;

const ENTRIES: usize = 100_000;
const LOOKUPS: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  (n={})",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

/// Questions of the length a support bot or FAQ sees, all different.
fn question(i: usize) -> String {
    const TOPICS: [&str; 8] = [
        "reset my password",
        "change the billing address on my invoice",
        "export my data as CSV",
        "add a teammate to the workspace",
        "cancel the annual plan",
        "enable single sign-on",
        "rotate an API key",
        "see last month's usage",
    ];
    format!("user: How do I {} (case {i})?", TOPICS[i % TOPICS.len()])
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let dir = std::env::var_os("TOLLGATE_EMBEDDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/embedder"))
        });
    let embedder = match Embedder::load(&dir, None, Arc::new(Histogram::default())) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}\nrun: bash policies/install-embedder.sh target/embedder");
            std::process::exit(2);
        }
    };
    let dims = embedder.dimensions;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // An index of random unit vectors (their content does not change the search cost).
    let partition = Hash128([7; 16]);
    let index = EmbeddedIndex::new(dims, ENTRIES + 1);
    let mut rng = fastrand::Rng::with_seed(1);
    for i in 0..ENTRIES {
        let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() - 0.5).collect();
        normalise(&mut v);
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        index.insert(partition, &v, Hash128(key), u64::MAX, 0);
    }

    // Warm the model and the caches.
    for i in 0..20 {
        rt.block_on(embedder.embed(question(i))).expect("embeds");
    }
    let mut search = Vec::with_capacity(LOOKUPS);
    let mut embed = Vec::with_capacity(LOOKUPS);
    let mut both = Vec::with_capacity(LOOKUPS);
    for i in 0..LOOKUPS {
        let started = Instant::now();
        let v = rt.block_on(embedder.embed(question(i))).expect("embeds");
        let embedded = started.elapsed();
        let hit = index.nearest(partition, &v, 1);
        let total = started.elapsed();
        std::hint::black_box(hit);
        embed.push(embedded);
        search.push(total - embedded);
        both.push(total);
    }
    println!("semantic lookup, {ENTRIES} entries of {dims} dimensions in one partition:");
    report("embed one prompt", embed);
    report("search the index", search);
    report("embed + search", both);
}
