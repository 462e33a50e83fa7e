//! `tollgate test [PATH...]`: runs policy test cases (SPEC §9) against the compiled plan,
//! with no network. Prints `ok   NAME` or `FAIL NAME` per case (a failure lists expected vs
//! actual for each field that differs), then `N passed, M failed`. Exit 1 on any failure, or
//! on a case file or config that cannot be used (its errors are printed as file:line:col).

use super::cases::{self, Case, CaseFile, Expect};
use super::decide::{decide, Call};
use super::trace::Decision;
use super::usage;
use crate::compile::{compile, compile_with};
use crate::config::{load_file, ConfigError, LoadedConfig};
use crate::state::MemoryStore;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where `tollgate test` looks without arguments.
pub const DEFAULT_PATH: &str = "policies/tests";

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    /// A case file or config could not be used.
    broken: bool,
}

pub fn run(paths: &[PathBuf]) -> ExitCode {
    let default = [PathBuf::from(DEFAULT_PATH)];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut tally = Tally::default();
    match cases::collect(paths) {
        Ok(files) => {
            // Several case files usually share one config: load and check it once.
            let mut configs: HashMap<PathBuf, Option<LoadedConfig>> = HashMap::new();
            for path in files {
                run_file(&path, &mut configs, &mut tally);
            }
        }
        Err(e) => {
            eprintln!("{e}");
            tally.broken = true;
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 || tally.broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_file(
    path: &std::path::Path,
    configs: &mut HashMap<PathBuf, Option<LoadedConfig>>,
    tally: &mut Tally,
) {
    let file = match cases::load(path) {
        Ok(f) => f,
        Err(errors) => return report_broken(&errors, tally),
    };
    let loaded = configs.entry(file.config.clone()).or_insert_with(|| {
        match load_file(&file.config).and_then(checked) {
            Ok(loaded) => Some(loaded),
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!(
                    "{}: config `{}` has errors; its cases were not run",
                    file.path.display(),
                    file.config.display()
                );
                None
            }
        }
    });
    let Some(loaded) = loaded else {
        tally.broken = true;
        return;
    };
    for (i, case) in file.cases.iter().enumerate() {
        match run_case(&file, i, case, loaded) {
            Ok((failures, notes)) if failures.is_empty() => {
                tally.passed += 1;
                println!("ok   {}", case.name);
                print_indented(&notes);
            }
            Ok((failures, notes)) => {
                tally.failed += 1;
                println!(
                    "FAIL {} ({}:{})",
                    case.name,
                    path.display(),
                    file.case_line(i)
                );
                print_indented(&failures);
                print_indented(&notes);
            }
            Err(errors) => {
                tally.failed += 1;
                println!(
                    "FAIL {} ({}:{})",
                    case.name,
                    path.display(),
                    file.case_line(i)
                );
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                print_indented(&lines);
            }
        }
    }
}

/// A config is usable when it also compiles; the per-case compiles then cannot fail.
fn checked(loaded: LoadedConfig) -> Result<LoadedConfig, Vec<ConfigError>> {
    compile(&loaded).map(|_| loaded)
}

fn report_broken(errors: &[ConfigError], tally: &mut Tally) {
    for e in errors {
        eprintln!("{e}");
    }
    tally.broken = true;
}

fn print_indented(lines: &[String]) {
    for l in lines {
        println!("       {l}");
    }
}

type CaseReport = (Vec<String>, Vec<String>);

/// Runs one case on a fresh plan and counter store. `Ok((differences, notes))`, or the
/// located errors that kept the case from running.
fn run_case(
    file: &CaseFile,
    i: usize,
    case: &Case,
    loaded: &LoadedConfig,
) -> Result<CaseReport, Vec<ConfigError>> {
    let store = MemoryStore::new();
    let plan = compile_with(loaded, &store).map_err(|e| e.to_vec())?;
    let now = case.now.unwrap_or_else(chrono::Utc::now);
    let _slots = usage::apply(&plan, &store, &case.usage, now.timestamp()).map_err(|errors| {
        errors
            .into_iter()
            .map(|(scope, field, msg)| {
                file.error_at(&format!("cases[{i}].usage.{scope}.{field}"), msg)
            })
            .collect::<Vec<_>>()
    })?;
    let headers: BTreeMap<String, String> = case
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.0.clone()))
        .collect();
    let body = serde_json::to_vec(&case.body).unwrap_or_default();
    let call = Call {
        key: case.key.as_deref(),
        headers: &headers,
        body: &body,
        now,
    };
    let decision = match &case.mcp {
        Some(tool) => super::decide_tool::decide_tool(&plan, &call, &tool.tool, &tool.arguments),
        None => decide(&plan, loaded, &call),
    }
    .map_err(|msg| vec![file.error_at(&format!("cases[{i}].key"), msg)])?;
    let mut failures = compare(&case.expect, &decision);
    if !failures.is_empty() {
        failures.push(format!("(actual result: {})", decision.outcome.summary()));
    }
    let notes = decision
        .webhooks_not_evaluated
        .iter()
        .map(|g| format!("note: webhook guardrail `{g}` was not called (no network in tests); treated as not flagged"))
        .collect();
    Ok((failures, notes))
}

/// `field: expected X, got Y` for each expectation that does not hold.
pub fn compare(expect: &Expect, d: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |field: &str, expected: String, actual: String| {
        if expected != actual {
            out.push(format!("{field}: expected {expected}, got {actual}"));
        }
    };
    let none = || "none".to_string();
    if let Some(route) = &expect.route {
        let actual = d.route.as_ref().map_or_else(none, |r| r.route.clone());
        check("route", route.clone(), actual);
    }
    if let Some(fallbacks) = &expect.fallbacks {
        check("fallbacks", list(fallbacks), list(&d.fallbacks));
    }
    if let Some(status) = expect.status {
        check("status", status.to_string(), d.outcome.status.to_string());
    }
    if let Some(t) = &expect.error_type {
        let actual = d.outcome.error_type.clone().unwrap_or_else(none);
        check("type", t.clone(), actual);
    }
    if let Some(g) = &expect.guardrail {
        let actual = d.outcome.guardrail.clone().unwrap_or_else(none);
        check("guardrail", g.clone(), actual);
    }
    if let Some(rule) = &expect.rule {
        let expected = rule.clone().unwrap_or_else(none);
        check("rule", expected, d.rule.clone().unwrap_or_else(none));
    }
    if let Some(text) = &expect.redacted {
        let actual = d.last_user_text.as_deref().map_or_else(none, quoted);
        check("redacted", quoted(text), actual);
    }
    if let Some(flagged) = &expect.flagged {
        check("flagged", list(flagged), list(&d.flagged));
    }
    if let Some(args) = &expect.arguments {
        let actual = d
            .tool_arguments
            .as_ref()
            .map_or_else(none, ToString::to_string);
        check("arguments", args.to_string(), actual);
    }
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::trace::{Outcome, RouteInfo};

    #[test]
    fn only_given_fields_are_compared_and_differences_are_named() {
        let d = Decision {
            route: Some(RouteInfo {
                route: "vllm/llama".into(),
                provider: "vllm".into(),
                upstream_model: "llama".into(),
                provider_key: None,
                pinned: true,
                from_policy: true,
            }),
            fallbacks: vec!["openai/gpt-4o".into()],
            rule: Some("premium".into()),
            outcome: Outcome::admitted(),
            ..Default::default()
        };
        let pass = Expect {
            route: Some("vllm/llama".into()),
            status: Some(200),
            ..Default::default()
        };
        assert!(compare(&pass, &d).is_empty());
        let fail = Expect {
            route: Some("openai/gpt-4o-mini".into()),
            fallbacks: Some(vec![]),
            rule: Some(None),
            ..Default::default()
        };
        assert_eq!(
            compare(&fail, &d),
            [
                "route: expected openai/gpt-4o-mini, got vllm/llama",
                "fallbacks: expected [], got [openai/gpt-4o]",
                "rule: expected none, got premium",
            ]
        );
    }
}
