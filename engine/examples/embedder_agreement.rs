//! How far two installs of the embedding model agree: every question of
//! `bench/paraphrases.tsv` embedded by both, and the cosine of each question's two embeddings
//! (min, 1st percentile, mean). Used to check a re-quantized model against the packaged one.
//!
//! ```text
//! cargo run --release -p tollgate --example embedder_agreement -- DIR_A DIR_B [QUESTIONS]
//! ```
//!
//! Both directories are laid out as `policies/install-embedder.sh` leaves them; the ONNX
//! Runtime library is DIR_A's. QUESTIONS (default 200) caps how many questions are embedded.

use fastembed::{InitOptionsUserDefined, TextEmbedding};
use std::path::Path;
use tollgate::cache::semantic::embed::user_defined_model;

fn load(dir: &str) -> Result<TextEmbedding, String> {
    let model = user_defined_model(Path::new(dir)).map_err(|e| e.to_string())?;
    TextEmbedding::try_new_from_user_defined(model, InitOptionsUserDefined::default())
        .map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
        return Err("usage: embedder_agreement DIR_A DIR_B [QUESTIONS]".into());
    };
    let limit: usize = match args.get(2) {
        Some(n) => n.parse().map_err(|e| format!("QUESTIONS: {e}"))?,
        None => 200,
    };
    let pairs = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/paraphrases.tsv");
    let text = std::fs::read_to_string(pairs).map_err(|e| format!("{pairs}: {e}"))?;
    let questions: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .flat_map(|l| l.split('\t').skip(1))
        .take(limit)
        .collect();
    let _runtime = ort::init_from(format!("{a}/libonnxruntime.so")).map_err(|e| e.to_string())?;
    let (mut model_a, mut model_b) = (load(a)?, load(b)?);
    let mut cosines = Vec::with_capacity(questions.len());
    for q in &questions {
        let va = model_a.embed(vec![*q], None).map_err(|e| e.to_string())?;
        let vb = model_b.embed(vec![*q], None).map_err(|e| e.to_string())?;
        let dot: f32 = va[0].iter().zip(&vb[0]).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        cosines.push(dot / (norm(&va[0]) * norm(&vb[0])));
    }
    if cosines.is_empty() {
        return Err(format!("no questions in {pairs}"));
    }
    cosines.sort_by(f32::total_cmp);
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    println!(
        "{} questions: cosine min {:.4}, 1st percentile {:.4}, mean {:.4}",
        cosines.len(),
        cosines[0],
        cosines[(cosines.len() - 1) / 100],
        mean
    );
    Ok(())
}
