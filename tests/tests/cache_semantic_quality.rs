//! The semantic cache's quality check (`semantic-quality`, in tollgate-bench) with the real
//! embedding model: a malformed pairs file or argument is refused with exit 2 and a message
//! naming the line or flag; the gate exits 1 when a rate is not met and 0 when it is; the
//! shipped paraphrase set parses, with at least 200 pairs of both labels.
#![cfg(feature = "semantic")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tollgate_e2e::{bin_path, embedder_dir};

fn quality(args: &[&str]) -> Output {
    Command::new(bin_path("semantic-quality"))
        .args(args)
        .output()
        .expect("run semantic-quality")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn malformed_input_exits_2_naming_the_line_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let good = "# a comment\nsame\tHow do I X?\tHow can I X?\ndifferent\tIs it 1?\tIs it 2?\n";
    let good = write(dir.path(), "good.tsv", good);
    for (name, text, says) in [
        (
            "columns.tsv",
            "# header\nsame\ta\tb\nsame\tonly two columns\n",
            "columns.tsv: line 3: expected 3 tab-separated columns",
        ),
        (
            "label.tsv",
            "same\ta\tb\n\nmaybe\ta\tb\n",
            "label.tsv: line 3: unknown label `maybe`",
        ),
        (
            "empty.tsv",
            "same\ta\tb\ndifferent\t\tb\n",
            "empty.tsv: line 2: question_a is empty",
        ),
        (
            "one-label.tsv",
            "same\ta\tb\n",
            "one-label.tsv: no `different` pairs",
        ),
    ] {
        let path = write(dir.path(), name, text);
        let out = quality(&["--pairs", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
    }
    let good = good.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--pairs", good, "--threshold", "high"],
            "--threshold takes a number above 0 and at most 1, got `high`",
        ),
        (
            vec!["--pairs", good, "--threshold", "1.5"],
            "--threshold takes a number",
        ),
        (
            vec!["--pairs", good, "--min-hit-rate", "90%"],
            "--min-hit-rate takes a number from 0 to 1",
        ),
        (
            vec!["--pairs", good, "--max-false-hit-rate", "-0.1"],
            "--max-false-hit-rate takes a number from 0 to 1",
        ),
        (vec!["--pairs", good, "--json"], "--json needs a value"),
        (
            vec!["--pairs", good, "--colour"],
            "unknown argument `--colour`",
        ),
        (
            vec!["--pairs", "/nonexistent/pairs.tsv"],
            "cannot read /nonexistent/pairs.tsv",
        ),
    ] {
        let out = quality(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // Not text at all: refused, not a panic.
    let bytes = dir.path().join("binary.tsv");
    std::fs::write(&bytes, b"same\t\xff\xfe\tb\n").unwrap();
    let out = quality(&["--pairs", bytes.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("binary.tsv"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn the_gate_exits_1_when_a_rate_is_not_met_and_0_when_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // One paraphrase identical to its question (similarity 1), one only loosely worded alike
    // (well below 0.99), and a pair of unrelated questions (far below any threshold).
    let pairs = write(
        dir.path(),
        "pairs.tsv",
        "same\tHow do I reset my password?\tHow do I reset my password?\n\
         same\tHow do I reset my password?\tI forgot my password, what now?\n\
         different\tWhat is the capital of France?\tHow do I bake sourdough bread?\n",
    );
    let (pairs, model) = (pairs.to_str().unwrap(), embedder_dir());
    let model = model.to_str().unwrap();
    let json = dir.path().join("report.json");
    let run = |extra: &[&str]| {
        let mut args = vec!["--pairs", pairs, "--embedder", model, "--threshold", "0.99"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", json.to_str().unwrap()]);
        quality(&args)
    };

    let out = run(&["--min-hit-rate", "1.0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gate failed: hit rate 50.0 % is below --min-hit-rate 100.0 %"),
        "{}",
        stderr(&out)
    );

    let out = run(&["--min-hit-rate", "0.5", "--max-false-hit-rate", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("threshold 0.99: hit rate 50.0 % (1/2), false-hit rate 0.0 % (0/1)"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["hits"], 1);
    assert_eq!(report["false_hits"], 0);
    assert_eq!(report["sweep"].as_array().unwrap().len(), 20);
    let identical = report["scores"][0]["similarity"].as_f64().unwrap();
    assert!(identical > 0.999, "{identical}");
}

#[test]
fn the_shipped_paraphrase_set_parses_with_both_labels() {
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/paraphrases.tsv");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let model = embedder_dir();
    let out = quality(&[
        "--pairs",
        set.to_str().unwrap(),
        "--embedder",
        model.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let count = |field: &str| report[field].as_u64().unwrap();
    assert!(count("pairs") >= 200, "{}", count("pairs"));
    assert_eq!(count("same") + count("different"), count("pairs"));
    // Roughly half and half, so neither rate rests on a handful of pairs.
    for label in ["same", "different"] {
        assert!(
            count(label) * 3 >= count("pairs"),
            "{label}: {}",
            count(label)
        );
    }
}
