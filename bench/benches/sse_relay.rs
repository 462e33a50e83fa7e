//! The SSE relay's work per streamed answer: cut the upstream bytes into whole events, read
//! each chunk's text length (what an abandoned stream is charged) and the usage chunk, hide
//! the usage chunk the gateway asked for, and pass everything else on. A 100-chunk OpenAI
//! stream, as the provider's frames arrive: one event per frame, or 64-byte frames that split
//! events anywhere.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tollgate::proxy::EventScanner;

const CHUNKS: usize = 100;

/// The events of one streamed chat answer, each as its own frame.
fn events() -> Vec<Bytes> {
    let mut out = Vec::with_capacity(CHUNKS + 2);
    for i in 0..CHUNKS {
        out.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1800000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"
        )));
    }
    out.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1800000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":100,\"total_tokens\":112}}\n\n",
    ));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// The same bytes cut into frames of `size`, ignoring event boundaries.
fn reframed(events: &[Bytes], size: usize) -> Vec<Bytes> {
    let all: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
    all.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn relay(c: &mut Criterion) {
    let per_event = events();
    let total: usize = per_event.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("sse_relay_100_chunks");
    group.throughput(Throughput::Bytes(total as u64));
    for (name, frames) in [
        ("one_event_per_frame", per_event.clone()),
        ("64_byte_frames", reframed(&per_event, 64)),
    ] {
        group.bench_with_input(BenchmarkId::new("scan", name), &frames, |b, frames| {
            b.iter(|| {
                let mut scanner = EventScanner::new(true);
                let mut forwarded = 0;
                for f in frames {
                    if let Some(out) = scanner.push(black_box(f.clone())) {
                        forwarded += out.len();
                    }
                }
                assert!(scanner.done && scanner.usage.is_some());
                assert_eq!(scanner.content_chars, 690);
                forwarded
            })
        });
    }
    group.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
