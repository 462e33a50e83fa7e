//! `semantic-quality`: how well a semantic-cache threshold separates paraphrases from near
//! misses, on a labelled set of question pairs (`bench/paraphrases.tsv`).
//!
//! ```text
//! semantic-quality [--pairs FILE] [--embedder DIR] [--onnxruntime FILE] [--threshold X]
//!                  [--min-hit-rate R] [--max-false-hit-rate R] [--json OUT]
//! ```
//!
//! Each question is embedded as the gateway embeds a one-message chat (`user: <question>`,
//! through `semantic_text`) by the gateway's own embedder, and each pair is scored by the
//! cosine of its two embeddings. A pair is a hit by the gateway's rule: cosine at or above the
//! threshold and the same numbers written in digits (the gateway never crosses them).
//! Reported: the hit rate (share of `same` pairs that hit) and the false-hit rate (share of
//! `different` pairs that hit) at
//! `--threshold` (default: the gateway's default threshold), a sweep over 0.80..0.99, and the
//! pairs on the wrong side, and the rates by cosine alone for comparison. `--min-hit-rate` and
//! `--max-false-hit-rate` make it a gate.
//!
//! Exit status: 0 measured (and the gate, if any, met); 1 the gate was not met; 2 bad
//! arguments, a malformed pairs file, or an embedder that does not load.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tollgate::cache::semantic::embed::Embedder;
use tollgate::cache::semantic::semantic_text;
use tollgate::cache::DEFAULT_THRESHOLD;
use tollgate::telemetry::Histogram;
use tollgate_bench::paraphrase::{digits_match, parse_pairs, sweep_thresholds, Label, Pair, Rates};

const USAGE: &str = "usage: semantic-quality [--pairs FILE] [--embedder DIR] [--onnxruntime FILE] \
[--threshold X] [--min-hit-rate R] [--max-false-hit-rate R] [--json OUT]";

/// Why the run stopped without a measurement.
struct Failure(String);

struct Args {
    pairs: PathBuf,
    embedder: PathBuf,
    onnxruntime: Option<PathBuf>,
    threshold: f32,
    min_hit_rate: Option<f64>,
    max_false_hit_rate: Option<f64>,
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Failure(e)) => {
            eprintln!("semantic-quality: {e}");
            ExitCode::from(2)
        }
    }
}

/// `Ok(false)` when a gate was not met.
fn run(args: Vec<String>) -> Result<bool, Failure> {
    let Some(args) = parse_args(args)? else {
        return Ok(true);
    };
    // The file is checked before the model loads, so a typo costs no model load.
    let text = std::fs::read_to_string(&args.pairs)
        .map_err(|e| Failure(format!("cannot read {}: {e}", args.pairs.display())))?;
    let pairs =
        parse_pairs(&text).map_err(|e| Failure(format!("{}: {e}", args.pairs.display())))?;
    let embedder = Embedder::load(
        &args.embedder,
        args.onnxruntime.as_deref(),
        Arc::new(Histogram::default()),
    )
    .map_err(|e| {
        Failure(format!(
            "{e}\ninstall the model with: bash policies/install-embedder.sh {}",
            args.embedder.display()
        ))
    })?;
    let cosines = score(&embedder, &pairs)?;
    // What the gateway compares against the threshold: nothing crosses different numbers.
    let similarities: Vec<f32> = pairs
        .iter()
        .zip(&cosines)
        .map(|(p, &s)| if digits_match(&p.a, &p.b) { s } else { 0.0 })
        .collect();
    let measured = Measured::new(&pairs, &cosines, &similarities, args.threshold);
    print_report(&args, &pairs, &similarities, &measured);
    if let Some(out) = &args.json {
        let report = json_report(&args, &pairs, &cosines, &measured);
        let text = serde_json::to_string_pretty(&report).expect("a JSON value serialises");
        std::fs::write(out, text + "\n")
            .map_err(|e| Failure(format!("cannot write {}: {e}", out.display())))?;
    }
    Ok(gate(&args, &measured.chosen))
}

/// The rates at the chosen threshold and across the sweep by the gateway's rule, and at the
/// chosen threshold by cosine alone.
struct Measured {
    chosen: Rates,
    sweep: Vec<Rates>,
    /// Had questions with different numbers been compared by cosine alone (what the digit
    /// rule changes).
    cosine_only: Rates,
}

impl Measured {
    /// `similarities`: the cosines with pairs of different numbers at 0, as the gateway sees them.
    fn new(pairs: &[Pair], cosines: &[f32], similarities: &[f32], threshold: f32) -> Measured {
        let labelled = |values: &[f32]| -> Vec<(Label, f32)> {
            pairs
                .iter()
                .zip(values)
                .map(|(p, s)| (p.label, *s))
                .collect()
        };
        let scores = labelled(similarities);
        Measured {
            chosen: Rates::at(threshold, &scores),
            sweep: sweep_thresholds()
                .into_iter()
                .map(|t| Rates::at(t, &scores))
                .collect(),
            cosine_only: Rates::at(threshold, &labelled(cosines)),
        }
    }
}

fn parse_args(args: Vec<String>) -> Result<Option<Args>, Failure> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut parsed = Args {
        pairs: manifest.join("paraphrases.tsv"),
        embedder: std::env::var_os("TOLLGATE_EMBEDDER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../target/embedder")),
        onnxruntime: None,
        threshold: DEFAULT_THRESHOLD,
        min_hit_rate: None,
        max_false_hit_rate: None,
        json: None,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Failure(format!("{flag} needs a value\n{USAGE}")))
        };
        match flag.as_str() {
            "--pairs" => parsed.pairs = value()?.into(),
            "--embedder" => parsed.embedder = value()?.into(),
            "--onnxruntime" => parsed.onnxruntime = Some(value()?.into()),
            "--json" => parsed.json = Some(value()?.into()),
            "--threshold" => {
                let v = value()?;
                parsed.threshold = match v.parse::<f32>() {
                    Ok(t) if t > 0.0 && t <= 1.0 => t,
                    _ => return Err(number_error(&flag, &v, "above 0 and at most 1")),
                };
            }
            "--min-hit-rate" => parsed.min_hit_rate = Some(rate(&flag, &value()?)?),
            "--max-false-hit-rate" => parsed.max_false_hit_rate = Some(rate(&flag, &value()?)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(Failure(format!("unknown argument `{other}`\n{USAGE}"))),
        }
    }
    Ok(Some(parsed))
}

/// A share, from 0 to 1.
fn rate(flag: &str, v: &str) -> Result<f64, Failure> {
    match v.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(number_error(flag, v, "from 0 to 1 (e.g. 0.05 for 5 %)")),
    }
}

fn number_error(flag: &str, v: &str, range: &str) -> Failure {
    Failure(format!("{flag} takes a number {range}, got `{v}`"))
}

/// The cosine of each pair, in order. Each distinct question is embedded once.
fn score(embedder: &Embedder, pairs: &[Pair]) -> Result<Vec<f32>, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Failure(format!("cannot start a runtime: {e}")))?;
    let mut vectors: HashMap<&str, Vec<f32>> = HashMap::new();
    for question in pairs.iter().flat_map(|p| [p.a.as_str(), p.b.as_str()]) {
        if vectors.contains_key(question) {
            continue;
        }
        let body = json!({"messages": [{"role": "user", "content": question}]});
        let text = semantic_text(&body, 1)
            .ok_or_else(|| Failure(format!("`{question}` has no text to embed")))?;
        let vector = runtime
            .block_on(embedder.embed(text))
            .map_err(|e| Failure(format!("cannot embed `{question}`: {e}")))?;
        vectors.insert(question, vector);
    }
    // The embedder returns unit vectors, so the dot product is the cosine.
    Ok(pairs
        .iter()
        .map(|p| {
            let (a, b) = (&vectors[p.a.as_str()], &vectors[p.b.as_str()]);
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
        })
        .collect())
}

fn percent(r: f64) -> String {
    format!("{:.1} %", r * 100.0)
}

/// The hit and false-hit rates with their counts: "41.8 % (82/196)", "22.5 % (39/173)".
fn rate_cells(r: &Rates) -> [String; 2] {
    [
        format!("{} ({}/{})", percent(r.hit_rate()), r.hits, r.same),
        format!(
            "{} ({}/{})",
            percent(r.false_hit_rate()),
            r.false_hits,
            r.different
        ),
    ]
}

/// "hit rate 41.8 % (82/196), false-hit rate 22.5 % (39/173)"
fn rates_text(r: &Rates) -> String {
    let [hit, false_hit] = rate_cells(r);
    format!("hit rate {hit}, false-hit rate {false_hit}")
}

fn print_report(args: &Args, pairs: &[Pair], sims: &[f32], m: &Measured) {
    let chosen = &m.chosen;
    println!(
        "{} pairs ({} same, {} different) from {}",
        pairs.len(),
        chosen.same,
        chosen.different,
        args.pairs.display()
    );
    println!("threshold {:.2}: {}", chosen.threshold, rates_text(chosen));
    println!(
        "by cosine alone (questions with different numbers compared too): {}",
        rates_text(&m.cosine_only)
    );
    println!("\n| threshold | hit rate | false-hit rate |\n|---:|---:|---:|");
    for r in &m.sweep {
        let [hit, false_hit] = rate_cells(r);
        println!("| {:.2} | {hit} | {false_hit} |", r.threshold);
    }
    // The pairs on the wrong side of the threshold, closest to it first.
    for (label, title) in [
        (
            Label::Different,
            "false hits (near misses at or above the threshold)",
        ),
        (Label::Same, "missed paraphrases (below the threshold)"),
    ] {
        let mut wrong: Vec<(&Pair, f32)> = pairs
            .iter()
            .zip(sims.iter().copied())
            .filter(|(p, s)| {
                p.label == label && (*s >= chosen.threshold) == (label == Label::Different)
            })
            .collect();
        wrong.sort_by(|x, y| match label {
            Label::Different => x.1.total_cmp(&y.1),
            Label::Same => y.1.total_cmp(&x.1),
        });
        println!("\n{title}: {}", wrong.len());
        for (p, s) in wrong {
            println!("  {s:.3}  line {:>3}  {} | {}", p.line, p.a, p.b);
        }
    }
}

/// An `f32` as the decimal it prints as (0.92, not 0.9200000166893005).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn rates_json(r: &Rates) -> Value {
    json!({
        "threshold": decimal(r.threshold),
        "hit_rate": r.hit_rate(),
        "hits": r.hits,
        "false_hit_rate": r.false_hit_rate(),
        "false_hits": r.false_hits,
    })
}

/// `sims`: each pair's cosine (the digit rule is in `digits_match` beside it).
fn json_report(args: &Args, pairs: &[Pair], sims: &[f32], m: &Measured) -> Value {
    let r = &m.chosen;
    let scores: Vec<Value> = pairs
        .iter()
        .zip(sims)
        .map(|(p, s)| {
            json!({"line": p.line, "label": p.label.as_str(), "similarity": decimal(*s),
                   "digits_match": digits_match(&p.a, &p.b), "a": p.a, "b": p.b})
        })
        .collect();
    json!({
        "pairs_file": args.pairs.display().to_string(),
        "pairs": pairs.len(),
        "same": r.same,
        "different": r.different,
        "threshold": decimal(r.threshold),
        "hit_rate": r.hit_rate(),
        "hits": r.hits,
        "false_hit_rate": r.false_hit_rate(),
        "false_hits": r.false_hits,
        "cosine_only": rates_json(&m.cosine_only),
        "sweep": m.sweep.iter().map(rates_json).collect::<Vec<_>>(),
        "scores": scores,
    })
}

/// Whether the measured rates meet the limits asked for; prints each one missed.
fn gate(args: &Args, r: &Rates) -> bool {
    let mut met = true;
    if let Some(min) = args.min_hit_rate {
        if r.hit_rate() < min {
            eprintln!(
                "semantic-quality: gate failed: hit rate {} is below --min-hit-rate {}",
                percent(r.hit_rate()),
                percent(min)
            );
            met = false;
        }
    }
    if let Some(max) = args.max_false_hit_rate {
        if r.false_hit_rate() > max {
            eprintln!(
                "semantic-quality: gate failed: false-hit rate {} is above --max-false-hit-rate {}",
                percent(r.false_hit_rate()),
                percent(max)
            );
            met = false;
        }
    }
    met
}
