//! `tollgate explain`: the decision trace of one request — key, model, each input guardrail,
//! each rule in the key's order with its result, the route and fallbacks, and the limits of
//! the route's tiers. Human-readable, or JSON with `--json`.

use super::decide::{decide, Call};
use super::trace::{Decision, GuardTrace, RuleTrace};
use crate::compile::compile_with;
use crate::config::load_file;
use crate::state::{MemoryStore, Snapshot};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct ExplainArgs {
    pub config: PathBuf,
    /// A JSON request body; `-` reads standard input.
    pub request: PathBuf,
    pub key: Option<String>,
    /// `name: value`.
    pub headers: Vec<String>,
    pub json: bool,
    /// A usage snapshot (the `state.snapshot_file` format) to decide against.
    pub state: Option<PathBuf>,
}

pub fn run(args: &ExplainArgs) -> ExitCode {
    match explain(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn explain(args: &ExplainArgs) -> Result<String, Vec<String>> {
    let strings = |errors: Vec<crate::config::ConfigError>| {
        errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let loaded = load_file(&args.config).map_err(strings)?;
    let store = MemoryStore::new();
    let plan = compile_with(&loaded, &store).map_err(strings)?;
    if let Some(path) = &args.state {
        match Snapshot::read_file(path) {
            Ok(Some(snapshot)) => {
                store.restore(&snapshot);
            }
            Ok(None) => return Err(vec![format!("{}: no such state file", path.display())]),
            Err(e) => return Err(vec![e.to_string()]),
        }
    }
    if args.key.is_none() && plan.auth_required {
        return Err(vec![format!(
            "{}: auth.required is true, so name the caller with --key ID (one of: {})",
            args.config.display(),
            key_ids(&plan)
        )]);
    }
    let body = read_request(&args.request).map_err(|e| vec![e])?;
    let headers = parse_headers(&args.headers).map_err(|e| vec![e])?;
    let call = Call {
        key: args.key.as_deref(),
        headers: &headers,
        body: &body,
        now: chrono::Utc::now(),
    };
    let d = decide(&plan, &loaded, &call).map_err(|e| {
        vec![format!(
            "{e} in {} (known: {})",
            args.config.display(),
            key_ids(&plan)
        )]
    })?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&d).map_err(|e| vec![e.to_string()])?;
        text.push('\n');
        Ok(text)
    } else {
        Ok(render(&d))
    }
}

fn key_ids(plan: &crate::plan::Plan) -> String {
    let ids: Vec<&str> = plan.keys.iter().map(|k| &*k.id).collect();
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

fn read_request(path: &Path) -> Result<Vec<u8>, String> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read the request from standard input: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("{}: cannot read request: {e}", path.display()))
}

/// `-H 'x-tier: premium'` → lower-case name, trimmed value.
fn parse_headers(raw: &[String]) -> Result<BTreeMap<String, String>, String> {
    raw.iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .filter(|(n, _)| !n.trim().is_empty())
                .ok_or_else(|| format!("header `{h}` is not of the form `name: value`"))?;
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect()
}

/// The trace as text. Sections stop where the request stopped.
pub fn render(d: &Decision) -> String {
    let mut out = String::new();
    let o = &mut out;
    match &d.key {
        Some(k) => {
            let mut who = Vec::new();
            if let Some(t) = &k.team {
                who.push(format!("team {t}"));
            }
            if let Some(c) = &k.customer {
                who.push(format!("customer {c}"));
            }
            let who = if who.is_empty() {
                String::new()
            } else {
                format!(" ({})", who.join(", "))
            };
            line(o, "key", &format!("{}{who}", k.id));
        }
        None => line(o, "key", "not resolved"),
    }
    if let Some(model) = &d.model {
        let verdict = match d.model_allowed {
            Some(true) => "allowed for this key",
            Some(false) => "NOT allowed for this key",
            None => "not checked",
        };
        line(o, "model", &format!("{model}: {verdict}"));
    }
    if d.model_allowed == Some(true) {
        guardrails(o, d);
        rules(o, d);
    }
    if let Some(r) = &d.route {
        let by = d
            .rule
            .as_deref()
            .map_or(String::new(), |r| format!(" by rule `{r}`"));
        let key = r
            .provider_key
            .as_deref()
            .unwrap_or("none (keyless provider)");
        line(o, "route", &format!("{}{by}", r.route));
        line(
            o,
            "",
            &format!(
                "provider {}, upstream model {}, provider key {key}{}",
                r.provider,
                r.upstream_model,
                if r.pinned { ", pinned" } else { "" }
            ),
        );
        if d.targets.len() > 1 {
            let weights: Vec<String> = d.targets.iter().map(|(m, w)| format!("{m} ×{w}")).collect();
            line(
                o,
                "",
                &format!(
                    "targets {} (traffic splits by weight; shown: the first)",
                    weights.join(", ")
                ),
            );
        }
        let fallbacks = if d.fallbacks.is_empty() {
            "none".to_string()
        } else {
            d.fallbacks.join(", ")
        };
        line(o, "fallbacks", &fallbacks);
    }
    for dr in &d.dropped {
        line(o, "dropped", &format!("{}: {}", dr.provider, dr.reason));
    }
    if !d.limits.is_empty() {
        let _ = writeln!(o, "limits (use before this request)");
        let rows: Vec<Vec<String>> = d
            .limits
            .iter()
            .map(|l| {
                vec![
                    l.scope.clone(),
                    l.kind.to_string(),
                    l.window.clone().unwrap_or_else(|| "-".into()),
                    format!("limit {}", amount(l.kind, &l.limit)),
                    format!("used {}", amount(l.kind, &l.used)),
                    format!("in flight {}", amount(l.kind, &l.reserved)),
                ]
            })
            .collect();
        table(o, &rows);
    } else if d.route.is_some() {
        line(o, "limits", "none apply");
    }
    let result = match d.outcome.status {
        200 => "200 admitted".to_string(),
        _ => d.outcome.summary(),
    };
    line(o, "result", &result);
    out
}

fn guardrails(o: &mut String, d: &Decision) {
    if d.guardrails.is_empty() {
        line(o, "guardrails", "none apply to this key");
        return;
    }
    let _ = writeln!(o, "guardrails (input, in order)");
    let rows: Vec<Vec<String>> = d.guardrails.iter().map(guard_row).collect();
    table(o, &rows);
    if let (Some(text), true) = (
        &d.last_user_text,
        d.guardrails
            .iter()
            .any(|g| g.action == "redact" && g.result == "detected"),
    ) {
        let _ = writeln!(o, "  last user message after redaction: {text:?}");
    }
}

fn guard_row(g: &GuardTrace) -> Vec<String> {
    let result = match g.result {
        "when_false" => "skipped: `when` is false".to_string(),
        "cel_error" => format!(
            "skipped: CEL error ({})",
            g.error.as_deref().unwrap_or("unknown")
        ),
        "not_sampled" => "skipped: not sampled".to_string(),
        "webhook_not_evaluated" => {
            "webhook not called (no network): treated as not flagged".to_string()
        }
        "detected" => format!("DETECTED → {}", g.action),
        _ => "not detected".to_string(),
    };
    let mut extra = Vec::new();
    if let Some(w) = &g.when {
        extra.push(format!("when {w}"));
    }
    if g.sample_rate < 1.0 {
        extra.push(format!(
            "sample_rate {} (counted as sampled)",
            g.sample_rate
        ));
    }
    vec![
        g.name.clone(),
        g.action.to_string(),
        result,
        extra.join("; "),
    ]
}

fn rules(o: &mut String, d: &Decision) {
    if d.rules.is_empty() {
        line(o, "rules", "none in the config");
        return;
    }
    let id = d.key.as_ref().map_or("", |k| k.id.as_str());
    let _ = writeln!(o, "rules (in the order tried for {id}; first match wins)");
    let rows: Vec<Vec<String>> = d.rules.iter().map(rule_row).collect();
    table(o, &rows);
}

fn rule_row(r: &RuleTrace) -> Vec<String> {
    let result = match r.result {
        "matched" => "MATCHED".to_string(),
        "not_matched" => "not matched".to_string(),
        "cel_error" => format!(
            "CEL error, not matched: {}",
            r.detail.as_deref().unwrap_or("")
        ),
        "not_reached" => "not reached".to_string(),
        _ => format!("not applicable: {}", r.detail.as_deref().unwrap_or("")),
    };
    vec![
        r.name.clone(),
        r.scope.clone(),
        r.priority
            .map_or(String::new(), |p| format!("priority {p}")),
        format!("line {}", r.line),
        result,
        r.when
            .as_deref()
            .map_or("always".to_string(), |w| format!("when {w}")),
    ]
}

/// Dollars for budgets (`$2.5`), plain counts otherwise.
fn amount(kind: &str, v: &serde_json::Value) -> String {
    match (kind, v.as_f64()) {
        ("budget_usd", Some(usd)) => format!("${usd}"),
        _ => v.to_string(),
    }
}

fn line(o: &mut String, label: &str, text: &str) {
    let _ = writeln!(o, "{label:<10} {text}");
}

/// Rows indented two spaces, columns padded to their widest cell.
fn table(o: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut text = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(text, " {cell:<w$}", w = widths[c]);
        }
        let _ = writeln!(o, "{}", text.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_lower_cased_and_checked() {
        let h = parse_headers(&["X-Tier:  premium ".into(), "a: b: c".into()]).unwrap();
        assert_eq!(h["x-tier"], "premium");
        assert_eq!(h["a"], "b: c");
        assert!(parse_headers(&["no-colon".into()]).is_err());
        assert!(parse_headers(&[": v".into()]).is_err());
    }
}
