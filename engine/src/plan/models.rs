//! Allowed-model sets: exact names, `*`, and `regex:` patterns compiled once.

use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};

#[derive(Debug, Default)]
pub struct ModelMatcher {
    any: bool,
    /// Fx rather than SipHash: probed for every request's model, and the names come from the
    /// config, not from callers who could pick colliding keys.
    exact: FxHashSet<String>,
    patterns: Vec<Regex>,
}

/// Compiled `regex:` patterns by their source, for one compile: keys that repeat a pattern
/// share one compiled program (a clone shares it) instead of holding ~12 KB each.
#[derive(Default)]
pub struct Patterns(FxHashMap<String, Regex>);

impl Patterns {
    fn get(&mut self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(re) = self.0.get(pattern) {
            return Ok(re.clone());
        }
        let re = Regex::new(pattern)?;
        self.0.insert(pattern.to_string(), re.clone());
        Ok(re)
    }
}

impl ModelMatcher {
    pub fn any() -> ModelMatcher {
        ModelMatcher {
            any: true,
            ..Default::default()
        }
    }

    /// Builds a matcher from config entries; returns the index and message of each bad regex.
    pub fn compile(
        entries: &[String],
        patterns: &mut Patterns,
    ) -> Result<ModelMatcher, Vec<(usize, String)>> {
        let mut m = ModelMatcher::default();
        let mut errors = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if entry == "*" {
                m.any = true;
            } else if let Some(pattern) = entry.strip_prefix("regex:") {
                match patterns.get(pattern) {
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
        ModelMatcher::compile(
            &entries.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &mut Patterns::default(),
        )
        .unwrap()
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
        let mut patterns = Patterns::default();
        let err =
            ModelMatcher::compile(&["ok".into(), "regex:(".into()], &mut patterns).unwrap_err();
        assert_eq!(err[0].0, 1);
        assert!(err[0].1.contains("invalid model regex"));
        // A bad pattern is not remembered as good: the next key that repeats it is refused too.
        let again = ModelMatcher::compile(&["regex:(".into()], &mut patterns).unwrap_err();
        assert_eq!(again[0].0, 0);
    }

    #[test]
    fn keys_sharing_a_pattern_each_match_by_it() {
        let mut patterns = Patterns::default();
        let list = |entries: &[&str]| entries.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = ModelMatcher::compile(&list(&["regex:^gpt-4o(-mini)?$"]), &mut patterns).unwrap();
        let b =
            ModelMatcher::compile(&list(&["x", "regex:^gpt-4o(-mini)?$"]), &mut patterns).unwrap();
        let c = ModelMatcher::compile(&list(&["regex:^o3$"]), &mut patterns).unwrap();
        for set in [&a, &b] {
            assert!(set.matches("gpt-4o-mini") && !set.matches("o3"));
        }
        assert!(b.matches("x") && !a.matches("x"));
        assert!(c.matches("o3") && !c.matches("gpt-4o"));
    }
}
