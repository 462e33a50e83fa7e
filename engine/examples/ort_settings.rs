//! ONNX Runtime session settings for one-prompt embedding, compared in one run: the model is
//! loaded once per setting (intra-op threads 2 or 1, spinning on or off), and each prompt is
//! embedded by every session in turn, so machine noise hits all of them alike. Prints p50, p90
//! and p99 per setting (after 100 warm-up prompts).
//!
//! ```text
//! bash policies/install-embedder.sh target/embedder
//! cargo run --release -p tollgate --example ort_settings -- target/embedder [PROMPTS]
//! ```

use fastembed::{InitOptionsUserDefined, TextEmbedding};
use std::path::Path;
use std::time::Instant;
use tollgate::cache::semantic::embed::user_defined_model;

const WARM_UP: usize = 100;

fn load(dir: &str, threads: usize, spinning: bool) -> Result<TextEmbedding, String> {
    let model = user_defined_model(Path::new(dir)).map_err(|e| e.to_string())?;
    let mut options = InitOptionsUserDefined::default().with_intra_threads(threads);
    if !spinning {
        options
            .session_config
            .push(("session.intra_op.allow_spinning".into(), "0".into()));
    }
    TextEmbedding::try_new_from_user_defined(model, options).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: ort_settings MODEL_DIR [PROMPTS]")?;
    let prompts: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("PROMPTS: {e}"))?,
        None => 1500,
    };
    let _runtime = ort::init_from(format!("{dir}/libonnxruntime.so")).map_err(|e| e.to_string())?;
    let settings = [(2, true), (2, false), (1, true), (1, false)];
    let mut sessions = settings
        .iter()
        .map(|&(threads, spinning)| load(&dir, threads, spinning))
        .collect::<Result<Vec<_>, _>>()?;
    let mut millis: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    for i in 0..prompts {
        let prompt =
            format!("How do I reset the password of account number {i} on the billing portal?");
        for (k, session) in sessions.iter_mut().enumerate() {
            let started = Instant::now();
            session
                .embed(vec![prompt.as_str()], None)
                .map_err(|e| e.to_string())?;
            if i >= WARM_UP {
                millis[k].push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    println!("| intra-op threads | spinning | p50 | p90 | p99 |\n|---:|---|---:|---:|---:|");
    for ((threads, spinning), mut v) in settings.into_iter().zip(millis) {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
        let on = if spinning { "on" } else { "off" };
        println!(
            "| {threads} | {on} | {:.1} ms | {:.1} ms | {:.1} ms |",
            at(0.5),
            at(0.9),
            at(0.99)
        );
    }
    Ok(())
}
