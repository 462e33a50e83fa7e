//! Allowed-model sets: exact names, `*`, and `regex:` patterns compiled once.

use regex::Regex;
use rustc_hash::FxHashSet;

#[derive(Debug, Default)]
pub struct ModelMatcher {
    any: bool,
    /// Fx rather than SipHash: probed for every request's model, and the names come from the
    /// config, not from callers who could pick colliding keys.
    exact: FxHashSet<String>,
    patterns: Vec<Regex>,
}

impl ModelMatcher {
    pub fn any() -> ModelMatcher {
        ModelMatcher {
            any: true,
            ..Default::default()
        }
    }

    /// Builds a matcher from config entries; returns the index and message of each bad regex.
    pub fn compile(entries: &[String]) -> Result<ModelMatcher, Vec<(usize, String)>> {
        let mut m = ModelMatcher::default();
        let mut errors = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry == "*" {
                m.any = true;
            } else if let Some(pattern) = entry.strip_prefix("regex:") {
                match Regex::new(pattern) {
                    Ok(re) => m.patterns.push(re),
                    Err(e) => errors.push((i, format!("invalid model regex `{pattern}`: {e}"))),
                }
            } else if entry.is_empty() {
                errors.push((i, "empty model name".to_string()));
            } else {
                m.exact.insert(entry.clone());
            }
        }
        if errors.is_empty() {
            Ok(m)
        } else {
            Err(errors)
        }
    }

    pub fn matches(&self, model: &str) -> bool {
        self.any || self.exact.contains(model) || self.patterns.iter().any(|p| p.is_match(model))
    }

    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The exact names, sorted, for listings.
    pub fn exact_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.exact.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(entries: &[&str]) -> ModelMatcher {
        ModelMatcher::compile(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_star_and_regex() {
        let set = m(&["gpt-4o", "regex:^claude-.*-4-6$"]);
        assert!(set.matches("gpt-4o"));
        assert!(!set.matches("gpt-4o-mini"));
        assert!(set.matches("claude-sonnet-4-6"));
        assert!(!set.matches("claude-sonnet-4-5"));
        assert!(m(&["*"]).matches("anything"));
        assert!(!m(&[]).matches("gpt-4o"));
    }

    #[test]
    fn bad_regex_names_its_entry() {
        let err = ModelMatcher::compile(&["ok".into(), "regex:(".into()]).unwrap_err();
        assert_eq!(err[0].0, 1);
        assert!(err[0].1.contains("invalid model regex"));
    }
}
