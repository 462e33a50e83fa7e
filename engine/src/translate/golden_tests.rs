//! Golden tests: every `<case>.request.json` / `<case>.response.json` under `golden/<from>_to_<to>/`
//! is translated and compared (as parsed JSON) with `<case>.request.expected.json` /
//! `<case>.response.expected.json` beside it. `TOLLGATE_BLESS=1 cargo test -p tollgate --lib
//! translate` rewrites the expected files; review every change by hand, they must be bodies the
//! real APIs accept.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{anthropic, bedrock, gemini, openai, responses};

/// The output bound sent to Anthropic when an OpenAI request has none.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The `created` stamped on OpenAI responses made from Anthropic ones (which carry no time).
const CREATED: u64 = 1_763_800_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/translate/golden")
}

fn translate(direction: &str, kind: &str, input: &Value) -> Result<Value, String> {
    let result =
        match (direction, kind) {
            ("openai_to_anthropic", "request") => openai::request_from_openai(input)
                .and_then(|ir| anthropic::request_to_anthropic(&ir, DEFAULT_MAX_TOKENS)),
            ("anthropic_to_openai", "request") => anthropic::request_from_anthropic(input)
                .and_then(|ir| openai::request_to_openai(&ir)),
            ("openai_to_anthropic", "response") => openai::response_from_openai(input)
                .and_then(|ir| anthropic::response_to_anthropic(&ir)),
            ("anthropic_to_openai", "response") => anthropic::response_from_anthropic(input)
                .map(|ir| openai::response_to_openai(&ir, CREATED)),
            ("responses_to_openai", "request") => responses::request_from_responses(input)
                .and_then(|ir| openai::request_to_openai(&ir)),
            ("responses_to_anthropic", "request") => responses::request_from_responses(input)
                .and_then(|ir| anthropic::request_to_anthropic(&ir, DEFAULT_MAX_TOKENS)),
            ("openai_to_gemini", "request") => {
                openai::request_from_openai(input).and_then(|ir| gemini::request_to_gemini(&ir))
            }
            ("gemini_to_openai", "request") => {
                gemini::request_from_gemini(input, "gemini-2.5-flash")
                    .and_then(|ir| openai::request_to_openai(&ir))
            }
            ("gemini_to_openai", "response") => gemini::response_from_gemini(input)
                .map(|ir| openai::response_to_openai(&ir, CREATED)),
            ("openai_to_responses", "response") => openai::response_from_openai(input)
                .map(|ir| responses::response_to_responses(&ir, CREATED, &[])),
            ("openai_to_bedrock", "request") => {
                openai::request_from_openai(input).and_then(|ir| bedrock::request_to_bedrock(&ir))
            }
            ("bedrock_to_openai", "response") => bedrock::response_from_bedrock(input)
                .map(|ir| openai::response_to_openai(&ir, CREATED)),
            _ => return Err(format!("unknown golden direction {direction}/{kind}")),
        };
    result.map_err(|e| e.to_string())
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every golden input of a direction, as (case path without suffix, kind).
fn cases(direction: &str) -> Vec<(PathBuf, &'static str)> {
    let dir = golden_dir().join(direction);
    let mut found = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for kind in ["request", "response"] {
            if let Some(case) = name.strip_suffix(&format!(".{kind}.json")) {
                found.push((dir.join(case), kind));
            }
        }
    }
    found.sort();
    found
}

fn run_direction(direction: &str) {
    let bless = std::env::var("TOLLGATE_BLESS").is_ok_and(|v| v == "1");
    let cases = cases(direction);
    assert!(!cases.is_empty(), "no golden cases for {direction}");
    let mut failures = Vec::new();
    for (case, kind) in cases {
        let input_path = case.with_extension(format!("{kind}.json"));
        let expected_path = case.with_extension(format!("{kind}.expected.json"));
        let input = read_json(&input_path);
        let actual = match translate(direction, kind, &input) {
            Ok(actual) => actual,
            Err(e) => {
                failures.push(format!("{}: translation failed: {e}", input_path.display()));
                continue;
            }
        };
        if bless {
            let text = serde_json::to_string_pretty(&actual).expect("serialize") + "\n";
            std::fs::write(&expected_path, text).expect("write expected file");
            continue;
        }
        if !expected_path.exists() {
            failures.push(format!("{}: missing", expected_path.display()));
            continue;
        }
        let expected = read_json(&expected_path);
        if actual != expected {
            failures.push(format!(
                "{}: differs\n  expected: {expected}\n  actual:   {actual}",
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden failure(s) (TOLLGATE_BLESS=1 rewrites, then review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_openai_to_anthropic() {
    run_direction("openai_to_anthropic");
}

#[test]
fn golden_anthropic_to_openai() {
    run_direction("anthropic_to_openai");
}

#[test]
fn golden_openai_to_gemini() {
    run_direction("openai_to_gemini");
}

#[test]
fn golden_gemini_to_openai() {
    run_direction("gemini_to_openai");
}

#[test]
fn golden_responses_to_openai() {
    run_direction("responses_to_openai");
}

#[test]
fn golden_responses_to_anthropic() {
    run_direction("responses_to_anthropic");
}

#[test]
fn golden_openai_to_responses() {
    run_direction("openai_to_responses");
}

#[test]
fn golden_openai_to_bedrock() {
    run_direction("openai_to_bedrock");
}

#[test]
fn golden_bedrock_to_openai() {
    run_direction("bedrock_to_openai");
}

/// Every golden input also goes through its own format and back with its meaning intact:
/// parse → render → parse gives the same IR.
#[test]
fn golden_inputs_survive_their_own_format() {
    for (case, kind) in cases("openai_to_anthropic") {
        let input = read_json(&case.with_extension(format!("{kind}.json")));
        if kind == "request" {
            let ir = openai::request_from_openai(&input).expect("parse");
            let again =
                openai::request_from_openai(&openai::request_to_openai(&ir).expect("render"))
                    .expect("reparse");
            assert_eq!(ir, again, "{}", case.display());
        } else {
            let ir = openai::response_from_openai(&input).expect("parse");
            let again = openai::response_from_openai(&openai::response_to_openai(&ir, CREATED))
                .expect("reparse");
            assert_eq!(ir, again, "{}", case.display());
        }
    }
    for (case, kind) in cases("anthropic_to_openai") {
        let input = read_json(&case.with_extension(format!("{kind}.json")));
        if kind == "request" {
            let ir = anthropic::request_from_anthropic(&input).expect("parse");
            let rendered =
                anthropic::request_to_anthropic(&ir, DEFAULT_MAX_TOKENS).expect("render");
            let again = anthropic::request_from_anthropic(&rendered).expect("reparse");
            assert_eq!(ir, again, "{}", case.display());
        } else {
            let ir = anthropic::response_from_anthropic(&input).expect("parse");
            let rendered = anthropic::response_to_anthropic(&ir).expect("render");
            let again = anthropic::response_from_anthropic(&rendered).expect("reparse");
            assert_eq!(ir, again, "{}", case.display());
        }
    }
}
