//! The paraphrase set of the semantic cache's quality check (`bench/paraphrases.tsv`, read by
//! the `semantic-quality` binary): parsing, and the two rates a threshold is judged by. A hit
//! on a `same` pair is the cache doing its job; a hit on a `different` pair serves a wrong
//! answer, so the false-hit rate is the one to keep low.

use std::fmt;
use tollgate::cache::semantic::digit_runs;

/// Whether a cached answer to one question is a correct answer to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A true paraphrase: a hit is wanted.
    Same,
    /// A near miss: worded alike, answered differently; a hit is a wrong answer.
    Different,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Same => "same",
            Label::Different => "different",
        }
    }
}

/// One line of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// 1-based line number in the file, for reports and errors.
    pub line: usize,
    pub label: Label,
    pub a: String,
    pub b: String,
}

/// What the parser refused: a line, or (`line: None`) the set as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// Parses `label<TAB>question_a<TAB>question_b` lines; `#` lines and blank lines are skipped.
/// The set needs both labels, since each rate is measured on one of them.
pub fn parse_pairs(text: &str) -> Result<Vec<Pair>, ParseError> {
    let mut pairs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.trim_end_matches('\r');
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let bad = |reason: String| ParseError {
            line: Some(line),
            reason,
        };
        let columns: Vec<&str> = content.split('\t').collect();
        let [label, a, b] = columns[..] else {
            return Err(bad(format!(
                "expected 3 tab-separated columns (label, question_a, question_b), found {}",
                columns.len()
            )));
        };
        let label = match label.trim() {
            "same" => Label::Same,
            "different" => Label::Different,
            other => {
                return Err(bad(format!(
                    "unknown label `{other}`: use `same` or `different`"
                )))
            }
        };
        let (a, b) = (a.trim(), b.trim());
        for (name, q) in [("question_a", a), ("question_b", b)] {
            if q.is_empty() {
                return Err(bad(format!("{name} is empty")));
            }
        }
        pairs.push(Pair {
            line,
            label,
            a: a.to_owned(),
            b: b.to_owned(),
        });
    }
    for label in [Label::Same, Label::Different] {
        if !pairs.iter().any(|p| p.label == label) {
            return Err(ParseError {
                line: None,
                reason: format!(
                    "no `{}` pairs: the set needs both labels to measure both rates",
                    label.as_str()
                ),
            });
        }
    }
    Ok(pairs)
}

/// How a threshold does on the set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub threshold: f32,
    /// `same` pairs at or above the threshold, of `same`.
    pub hits: usize,
    pub same: usize,
    /// `different` pairs at or above the threshold, of `different`.
    pub false_hits: usize,
    pub different: usize,
}

impl Rates {
    /// Counts hits at `threshold` over `(label, similarity)` scores, with the gateway's rule:
    /// a hit is a similarity at or above the threshold.
    pub fn at(threshold: f32, scores: &[(Label, f32)]) -> Rates {
        let mut r = Rates {
            threshold,
            hits: 0,
            same: 0,
            false_hits: 0,
            different: 0,
        };
        for &(label, similarity) in scores {
            let hit = similarity >= threshold;
            match label {
                Label::Same => {
                    r.same += 1;
                    r.hits += usize::from(hit);
                }
                Label::Different => {
                    r.different += 1;
                    r.false_hits += usize::from(hit);
                }
            }
        }
        r
    }

    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.same)
    }

    pub fn false_hit_rate(&self) -> f64 {
        ratio(self.false_hits, self.different)
    }
}

fn ratio(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// Whether the gateway may answer `b` with `a`'s cached answer as far as numbers go: both
/// write the same numbers in digits, in order (none on either side counts as the same). The
/// gateway keeps other numbers in another semantic partition (`CacheKey::with_digits_of`).
pub fn digits_match(a: &str, b: &str) -> bool {
    digit_runs(a).eq(digit_runs(b))
}

/// The thresholds of the sweep: 0.80 to 0.99 in steps of 0.01.
pub fn sweep_thresholds() -> Vec<f32> {
    (80..=99).map(|c| c as f32 / 100.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_with_comments_blank_lines_and_crlf() {
        let text =
            "# header\n\nsame\tHow do I X?\t How can I X? \r\n  # note\ndifferent\tA 1\tA 2\n";
        let pairs = parse_pairs(text).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            pairs[0],
            Pair {
                line: 3,
                label: Label::Same,
                a: "How do I X?".into(),
                b: "How can I X?".into(),
            }
        );
        assert_eq!((pairs[1].line, pairs[1].label), (5, Label::Different));
    }

    #[test]
    fn bad_lines_are_named_with_the_reason() {
        for (text, line, says) in [
            ("same\tonly two\n", Some(1), "found 2"),
            ("same\ta\tb\ndifferent\ta\tb\tc\n", Some(2), "found 4"),
            ("# h\nmaybe\ta\tb\n", Some(2), "unknown label `maybe`"),
            ("same\ta\t  \n", Some(1), "question_b is empty"),
            ("same\ta\tb\n", None, "no `different` pairs"),
            ("# nothing\n", None, "no `same` pairs"),
        ] {
            let err = parse_pairs(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.reason.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn rates_count_at_or_above_the_threshold() {
        let scores = [
            (Label::Same, 0.95),
            (Label::Same, 0.90),
            (Label::Same, 0.70),
            (Label::Different, 0.90),
            (Label::Different, 0.50),
        ];
        let r = Rates::at(0.90, &scores);
        assert_eq!((r.hits, r.same, r.false_hits, r.different), (2, 3, 1, 2));
        assert!((r.hit_rate() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.false_hit_rate(), 0.5);
        assert_eq!(Rates::at(0.99, &scores).hits, 0);
    }

    #[test]
    fn digits_match_only_the_same_numbers_in_the_same_order() {
        assert!(!digits_match("order #10432", "order #10487"));
        assert!(!digits_match(
            "charged $49, costs $29",
            "charged $29, costs $49"
        ));
        assert!(digits_match("port 8080 on Linux", "port 8080 on Windows"));
        assert!(!digits_match("every five minutes", "every 5 minutes"));
        assert!(digits_match("no numbers", "none here"));
    }

    #[test]
    fn the_sweep_runs_from_0_80_to_0_99() {
        let t = sweep_thresholds();
        assert_eq!(t.len(), 20);
        assert_eq!((t[0], t[19]), (0.80, 0.99));
    }
}
