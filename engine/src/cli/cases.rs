//! Policy test case files (SPEC §9): parsed strictly (unknown fields are errors), with a
//! source map so every later complaint points at `file:line:col` too.
//!
//! ```yaml
//! config: ../tollgate.yaml            # relative to this file
//! cases:
//!   - name: premium header goes to vllm
//!     key: vk-ml                       # key id; omit for a request without a key
//!     headers: {x-tier: premium}
//!     body: {model: gpt-4o, messages: [{role: user, content: hi}]}
//!     usage: {"virtual_key:vk-ml": {budget_usd: 10, requests: 3, tokens: 100}}
//!     now: 2026-11-22T10:00:00Z       # optional; default: the current time
//!     expect: {route: vllm/llama-3.1-70b, fallbacks: [openai/gpt-4o]}
//! ```

use super::usage::ScopeUsage;
use crate::config::{ConfigError, SourceMap};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFileText {
    config: String,
    #[serde(default)]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Virtual key id (no secret needed); `None` sends no key.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    /// An OpenAI chat completions request body (or `mcp:` instead, for a tool call).
    #[serde(default)]
    pub body: serde_json::Value,
    /// An MCP tool call through `/mcp`: `{tool: fs__read_file, arguments: {...}}`.
    #[serde(default)]
    pub mcp: Option<ToolCallCase>,
    /// Counter state before the request, by scope.
    #[serde(default)]
    pub usage: BTreeMap<String, ScopeUsage>,
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallCase {
    /// The public tool name, `server__tool`.
    pub tool: String,
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A header value: YAML may write `x-n: 5` or `x-debug: true`; headers are text either way.
#[derive(Debug, Clone)]
pub struct HeaderValue(pub String);

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Int(i64),
            Float(f64),
            Bool(bool),
        }
        Ok(HeaderValue(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }))
    }
}

/// What a case checks; only the fields given are compared.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `provider/model` the request is admitted to.
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub fallbacks: Option<Vec<String>>,
    #[serde(default)]
    pub status: Option<u16>,
    /// The error type (`guardrail_blocked`, `budget_exceeded`, ...).
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    /// The guardrail that blocked.
    #[serde(default)]
    pub guardrail: Option<String>,
    /// The rule that matched; `null` (or `~`) expects that none did.
    #[serde(default, deserialize_with = "present")]
    pub rule: Option<Option<String>>,
    /// The last user message as the provider would receive it, after redaction.
    #[serde(default)]
    pub redacted: Option<String>,
    /// Guardrails that flagged the request (exact list, in order).
    #[serde(default)]
    pub flagged: Option<Vec<String>>,
    /// MCP: the tool call's arguments as the server would receive them, after redaction.
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.route.is_none()
            && self.fallbacks.is_none()
            && self.status.is_none()
            && self.error_type.is_none()
            && self.guardrail.is_none()
            && self.rule.is_none()
            && self.redacted.is_none()
            && self.flagged.is_none()
            && self.arguments.is_none()
    }
}

/// Distinguishes a field written as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One parsed case file.
#[derive(Debug)]
pub struct CaseFile {
    pub path: PathBuf,
    /// The config, resolved against the case file's directory.
    pub config: PathBuf,
    pub cases: Vec<Case>,
    source: SourceMap,
}

impl CaseFile {
    /// An error at `path` within this file (e.g. `cases[2].key`).
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.source.locate(path);
        ConfigError {
            file: self.path.display().to_string(),
            line: pos.map_or(1, |p| p.line),
            col: pos.map_or(1, |p| p.col),
            message: message.into(),
        }
    }

    /// Line of case `i`, for `FAIL` lines.
    pub fn case_line(&self, i: usize) -> usize {
        self.source
            .locate(&format!("cases[{i}]"))
            .map_or(1, |p| p.line)
    }
}

/// Reads and checks one case file. Errors are located in it.
pub fn load(path: &Path) -> Result<CaseFile, Vec<ConfigError>> {
    let origin = path.display().to_string();
    let at = |line: usize, col: usize, message: String| ConfigError {
        file: origin.clone(),
        line,
        col,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![at(1, 1, format!("cannot read case file: {e}"))])?;
    let parsed: CaseFileText = yaml_serde::from_str(&text).map_err(|e| {
        let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let msg = e.to_string();
        let msg = msg.rfind(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
        vec![at(line, col, msg.to_string())]
    })?;
    let file = CaseFile {
        path: path.to_path_buf(),
        config: path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&parsed.config),
        cases: parsed.cases,
        source: SourceMap::build(&text),
    };
    let mut errors = Vec::new();
    if file.cases.is_empty() {
        errors.push(file.error_at("cases", "the file has no cases"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, case) in file.cases.iter().enumerate() {
        if case.expect.is_empty() {
            errors.push(file.error_at(
                &format!("cases[{i}].expect"),
                format!("case `{}` expects nothing: give route, fallbacks, status, type, guardrail, rule, redacted, flagged or arguments", case.name),
            ));
        }
        if !seen.insert(case.name.as_str()) {
            errors.push(file.error_at(
                &format!("cases[{i}].name"),
                format!("duplicate case name `{}`", case.name),
            ));
        }
        match (&case.mcp, &case.body) {
            (None, serde_json::Value::Object(_)) => {}
            (None, _) => errors.push(file.error_at(
                &format!("cases[{i}].body"),
                "body must be an object (an OpenAI chat completions request), or give `mcp: {tool, arguments}` for a tool call",
            )),
            (Some(_), serde_json::Value::Null) => {}
            (Some(_), _) => errors.push(file.error_at(
                &format!("cases[{i}].mcp"),
                "a case is either a chat request (`body`) or a tool call (`mcp`), not both",
            )),
        }
        if let Some(call) = &case.mcp {
            if !matches!(
                call.arguments,
                serde_json::Value::Object(_) | serde_json::Value::Null
            ) {
                errors.push(file.error_at(
                    &format!("cases[{i}].mcp.arguments"),
                    "tool call arguments must be an object",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// The case files named by `paths`: files as given, directories searched (recursively) for
/// `*.yaml`, `*.yml` and `*.json`, sorted so runs are reproducible.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            walk(p, &mut out).map_err(|e| format!("{}: {e}", p.display()))?;
            if out.len() == before {
                return Err(format!("{}: no case files (*.yaml) found", p.display()));
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile_dir::Dir, PathBuf) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.0.join("cases.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A throwaway directory (the engine has no tempfile dependency).
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p =
                    std::env::temp_dir().join(format!("tollgate-cases-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn parses_cases_and_resolves_the_config_beside_the_file() {
        let (_d, path) = write(
            "config: ../tollgate.yaml\ncases:\n  - name: a\n    key: vk\n    headers: {x-n: 5, x-tier: premium}\n    body: {model: m, messages: []}\n    usage: {\"team:ml\": {budget_usd: 1.5}}\n    expect: {route: p/m, rule: ~}\n",
        );
        let f = load(&path).unwrap();
        assert_eq!(f.config, path.parent().unwrap().join("../tollgate.yaml"));
        let c = &f.cases[0];
        assert_eq!(c.headers["x-n"].0, "5");
        assert_eq!(c.usage["team:ml"].budget_usd, Some(1.5));
        assert_eq!(c.expect.rule, Some(None));
        assert_eq!(c.expect.route.as_deref(), Some("p/m"));
        assert!(c.expect.status.is_none());
    }

    #[test]
    fn unknown_fields_are_located() {
        let (_d, path) = write(
            "config: x.yaml\ncases:\n  - name: a\n    body: {model: m}\n    expect: {route: p/m, stauts: 200}\n",
        );
        let e = &load(&path).unwrap_err()[0];
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("unknown field `stauts`"), "{e}");
    }

    #[test]
    fn empty_expectations_and_duplicates_are_refused() {
        let (_d, path) = write(
            "config: x.yaml\ncases:\n  - name: a\n    body: {model: m}\n    expect: {}\n  - name: a\n    body: {model: m}\n    expect: {status: 200}\n",
        );
        let errors = load(&path).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, 5);
        assert!(errors[1].message.contains("duplicate case name"));
        assert_eq!(errors[1].line, 6);
    }
}
