//! User-supplied detectors: a list of regexes, and a list of keywords.

use super::{is_word, next_char, prev_char, GuardrailError, Kind, Match};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};

/// A match longer than this can be missed when a stream splits it (see `StreamRedactor`).
pub const MAX_STREAM_HOLD: usize = 256;

/// Bytes held back after the longest possible match: the character after a match decides
/// `\b`, `$` and word boundaries, and may be up to 4 bytes long.
const LOOKAHEAD: usize = 4;

/// `regex: [...]`: compiled once; a `RegexSet` answers "anything here?" in one pass and tells
/// which patterns to run for positions.
#[derive(Debug, Clone)]
pub struct RegexDetector {
    set: RegexSet,
    regexes: Vec<Regex>,
    kind: Kind,
    hold: usize,
}

impl RegexDetector {
    pub fn new(kind: Kind, patterns: &[impl AsRef<str>]) -> Result<RegexDetector, GuardrailError> {
        if patterns.is_empty() {
            return Err(GuardrailError::Empty("regex"));
        }
        let mut regexes = Vec::with_capacity(patterns.len());
        let mut hold = 0;
        for (index, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            let invalid = |e: &dyn std::fmt::Display| GuardrailError::Regex {
                index,
                pattern: p.to_owned(),
                message: e.to_string(),
            };
            regexes.push(Regex::new(p).map_err(|e| invalid(&e))?);
            // The longest text the pattern can match bounds what a stream must hold back;
            // unbounded patterns (`.*`) are capped.
            let hir = regex_syntax::parse(p).map_err(|e| invalid(&e))?;
            // A pattern that matches "" matches every text: a block would block everything.
            if hir.properties().minimum_len() == Some(0) {
                return Err(invalid(&"it matches the empty string"));
            }
            let max = hir.properties().maximum_len().unwrap_or(MAX_STREAM_HOLD);
            hold = hold.max(max.min(MAX_STREAM_HOLD) + LOOKAHEAD);
        }
        let set = RegexSet::new(patterns.iter().map(AsRef::as_ref)).map_err(|e| {
            GuardrailError::Regex {
                index: 0,
                pattern: String::new(),
                message: e.to_string(),
            }
        })?;
        Ok(RegexDetector {
            set,
            regexes,
            kind,
            hold,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    pub(super) fn find_into(&self, text: &str, out: &mut Vec<Match>) {
        for i in self.set.matches(text).iter() {
            out.extend(self.regexes[i].find_iter(text).map(|m| Match {
                start: m.start(),
                end: m.end(),
                kind: self.kind.clone(),
            }));
        }
    }

    pub(super) fn hold(&self) -> usize {
        self.hold
    }
}

/// `keywords: [...]`: ASCII case-insensitive, whole words only — "class" does not match in
/// "classic". A keyword that begins or ends with a non-word character ("c++") needs no
/// boundary on that side. Non-ASCII letters match exactly as written.
#[derive(Debug, Clone)]
pub struct KeywordDetector {
    automaton: AhoCorasick,
    kind: Kind,
    hold: usize,
}

impl KeywordDetector {
    pub fn new(kind: Kind, words: &[impl AsRef<str>]) -> Result<KeywordDetector, GuardrailError> {
        let words: Vec<&str> = words
            .iter()
            .map(AsRef::as_ref)
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Err(GuardrailError::Empty("keywords"));
        }
        // Overlapping search needs the standard match kind: a boundary-failing long keyword
        // must not hide a shorter one that fits ("cat" in "cat-like" when "cat-l" is listed).
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| GuardrailError::Invalid(format!("keywords: {e}")))?;
        let longest = words.iter().map(|w| w.len()).max().unwrap_or(0);
        Ok(KeywordDetector {
            automaton,
            kind,
            hold: longest.min(MAX_STREAM_HOLD) + LOOKAHEAD,
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.automaton
            .find_overlapping_iter(text)
            .any(|m| self.whole_word(text, m.start(), m.end()))
    }

    pub(super) fn find_into(&self, text: &str, out: &mut Vec<Match>) {
        out.extend(
            self.automaton
                .find_overlapping_iter(text)
                .filter(|m| self.whole_word(text, m.start(), m.end()))
                .map(|m| Match {
                    start: m.start(),
                    end: m.end(),
                    kind: self.kind.clone(),
                }),
        );
    }

    fn whole_word(&self, text: &str, start: usize, end: usize) -> bool {
        // ASCII case folding never changes byte lengths, so offsets are char boundaries.
        let word = &text[start..end];
        let starts_word = word.chars().next().is_some_and(is_word);
        let ends_word = word.chars().next_back().is_some_and(is_word);
        let joined_before = starts_word && prev_char(text, start).is_some_and(is_word);
        let joined_after = ends_word && next_char(text, end).is_some_and(is_word);
        !joined_before && !joined_after
    }

    pub(super) fn hold(&self) -> usize {
        self.hold
    }
}

#[cfg(test)]
mod tests {
    use super::super::{resolve_overlaps, Detector};
    use super::*;

    fn found(d: &Detector, text: &str) -> Vec<String> {
        d.find(text)
            .iter()
            .map(|m| text[m.start..m.end].to_string())
            .collect()
    }

    #[test]
    fn regex_list_finds_every_pattern() {
        let d = Detector::regex(
            "no-cloud-secrets",
            &["AKIA[0-9A-Z]{16}", "ghp_[A-Za-z0-9]{36}"],
        )
        .unwrap();
        let token = format!("ghp_{}", "a".repeat(36));
        let text = format!("aws AKIAABCDEFGHIJKLMNOP and gh {token}");
        assert!(d.is_match(&text));
        assert_eq!(found(&d, &text), ["AKIAABCDEFGHIJKLMNOP", token.as_str()]);
        assert!(!d.is_match("nothing to see"));
        let Detector::Regex(r) = &d else { panic!() };
        assert_eq!(r.hold(), 40 + LOOKAHEAD);
    }

    #[test]
    fn invalid_regex_names_the_pattern() {
        let e = Detector::regex("x", &["ok", "(unclosed"]).unwrap_err();
        assert!(matches!(&e, GuardrailError::Regex { index: 1, .. }), "{e}");
        assert!(e.to_string().contains("(unclosed"), "{e}");
        assert!(Detector::regex("x", &[] as &[&str]).is_err());
        let e = Detector::regex("x", &["a*"]).unwrap_err();
        assert!(e.to_string().contains("empty string"), "{e}");
    }

    #[test]
    fn keywords_are_case_insensitive_whole_words() {
        let d = Detector::keywords("internal", &["Project Falcon", "class", "c++"]).unwrap();
        assert_eq!(
            found(&d, "about PROJECT FALCON: the class uses C++."),
            ["PROJECT FALCON", "class", "C++"]
        );
        assert!(found(&d, "classic subclass falconry").is_empty());
        assert!(!d.is_match("classic"));
        assert!(d.is_match("a class."));
        // A word-boundary failure of one keyword does not hide another.
        let d = Detector::keywords("k", &["cat", "cat-l"]).unwrap();
        assert_eq!(found(&d, "a cat-like thing"), ["cat"]);
        assert!(Detector::keywords("k", &[""]).is_err());
    }

    #[test]
    fn overlaps_keep_the_leftmost_longest() {
        let k = Kind::Named("K".into());
        let m = |start, end| Match {
            start,
            end,
            kind: k.clone(),
        };
        let got = resolve_overlaps(vec![m(5, 8), m(0, 3), m(0, 6), m(7, 10), m(10, 12)]);
        assert_eq!(got, vec![m(0, 6), m(7, 10), m(10, 12)]);
    }
}
