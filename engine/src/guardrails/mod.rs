//! Guardrail detectors and actions on text (SPEC §7): `regex`, `keywords` and `pii` detectors
//! compiled once, redaction of whole texts and of streams whose matches may span chunks.
//! `cel` and `webhook` detectors are not text scanners; the plan evaluates those.
//!
//! Redaction replaces a match with `[REDACTED:<LABEL>]`. The label of a PII match is its kind
//! (`EMAIL`, `PHONE`, `CREDIT_CARD`, `IBAN`, `IPV4`, `US_SSN`); the label of a regex or keyword
//! match is the guardrail's name in upper case, with every character other than a letter or
//! digit turned into `_` (`no-cloud-secrets` → `[REDACTED:NO_CLOUD_SECRETS]`).

pub mod config;
mod patterns;
mod pii;
mod stream;

pub use config::{Action, DetectConfig, GuardrailConfig, OnError, Stage, WebhookConfig};
pub use patterns::{KeywordDetector, RegexDetector, MAX_STREAM_HOLD};
pub use pii::{PiiDetector, PiiKind};
pub use stream::StreamRedactor;

use std::sync::Arc;

/// What a match is, for its redaction label and for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    Pii(PiiKind),
    /// A regex or keyword match, labelled after its guardrail.
    Named(Arc<str>),
}

impl Kind {
    /// The label of a regex/keyword guardrail named `name`.
    pub fn named(name: &str) -> Kind {
        let label: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Kind::Named(label.into())
    }

    pub fn label(&self) -> &str {
        match self {
            Kind::Pii(k) => k.label(),
            Kind::Named(label) => label,
        }
    }
}

/// A match: byte offsets into the scanned text, on character boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    #[error("regex #{index} `{pattern}` is invalid: {message}")]
    Regex {
        index: usize,
        pattern: String,
        message: String,
    },
    #[error("`{0}` needs at least one entry")]
    Empty(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// A text detector, compiled once at config load.
#[derive(Debug, Clone)]
pub enum Detector {
    Regex(RegexDetector),
    Keywords(KeywordDetector),
    Pii(PiiDetector),
}

impl Detector {
    /// Regexes of the guardrail `name` (the name labels its redactions).
    pub fn regex(name: &str, patterns: &[impl AsRef<str>]) -> Result<Detector, GuardrailError> {
        RegexDetector::new(Kind::named(name), patterns).map(Detector::Regex)
    }

    pub fn keywords(name: &str, words: &[impl AsRef<str>]) -> Result<Detector, GuardrailError> {
        KeywordDetector::new(Kind::named(name), words).map(Detector::Keywords)
    }

    pub fn pii(kinds: &[PiiKind]) -> Result<Detector, GuardrailError> {
        if kinds.is_empty() {
            return Err(GuardrailError::Empty("pii"));
        }
        Ok(Detector::Pii(PiiDetector::new(kinds)))
    }

    /// The text detector of a guardrail's `detect` block; `None` for `cel` and `webhook`.
    pub fn from_config(
        name: &str,
        detect: &DetectConfig,
    ) -> Result<Option<Detector>, GuardrailError> {
        Ok(Some(match detect {
            DetectConfig::Regex(patterns) => Detector::regex(name, patterns)?,
            DetectConfig::Keywords(words) => Detector::keywords(name, words)?,
            DetectConfig::Pii(kinds) => Detector::pii(kinds)?,
            DetectConfig::Cel(_) | DetectConfig::Webhook(_) => return Ok(None),
        }))
    }

    /// Whether `text` has any match: the check for `block` and `flag`.
    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Detector::Regex(d) => d.is_match(text),
            Detector::Keywords(d) => d.is_match(text),
            Detector::Pii(_) => !self.find(text).is_empty(),
        }
    }

    /// Every match, sorted by start, without overlaps (leftmost, then longest, wins).
    pub fn find(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        self.find_into(text, &mut out);
        resolve_overlaps(out)
    }

    fn find_into(&self, text: &str, out: &mut Vec<Match>) {
        match self {
            Detector::Regex(d) => d.find_into(text, out),
            Detector::Keywords(d) => d.find_into(text, out),
            Detector::Pii(d) => d.find_into(text, out),
        }
    }

    /// The offset from which the end of `text` could still be (the start of) a match that
    /// more text would complete or change. Everything before it is final.
    fn hold_from(&self, text: &str) -> usize {
        match self {
            Detector::Regex(d) => text.len().saturating_sub(d.hold()),
            Detector::Keywords(d) => text.len().saturating_sub(d.hold()),
            Detector::Pii(d) => d.hold_from(text),
        }
    }
}

/// Matches of several detectors (say two redacting guardrails) merged for one `redact` call.
pub fn find_all(detectors: &[&Detector], text: &str) -> Vec<Match> {
    let mut out = Vec::new();
    for d in detectors {
        d.find_into(text, &mut out);
    }
    resolve_overlaps(out)
}

/// Sorted by start; of overlapping matches the leftmost, then the longest, is kept.
pub(crate) fn resolve_overlaps(mut matches: Vec<Match>) -> Vec<Match> {
    matches.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut end = 0;
    matches.retain(|m| {
        let keep = m.start >= end && m.end > m.start;
        if keep {
            end = m.end;
        }
        keep
    });
    matches
}

/// `text` with each match replaced by `[REDACTED:<LABEL>]`. Matches are expected as `find`
/// returns them; others are sorted and de-overlapped first.
pub fn redact(text: &str, matches: &[Match]) -> String {
    let ordered = matches
        .windows(2)
        .all(|w| w[0].end <= w[1].start && w[0].start < w[0].end);
    if !ordered {
        return redact(text, &resolve_overlaps(matches.to_vec()));
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in matches {
        out.push_str(&text[at..m.start]);
        out.push_str("[REDACTED:");
        out.push_str(m.kind.label());
        out.push(']');
        at = m.end;
    }
    out.push_str(&text[at..]);
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn next_char(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_with_kind_labels() {
        let d = Detector::pii(&PiiKind::ALL).unwrap();
        let text = "mail jane@example.com, card 4111 1111 1111 1111, ip 10.0.0.1.";
        assert_eq!(
            redact(text, &d.find(text)),
            "mail [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD], ip [REDACTED:IPV4]."
        );
        let d = Detector::regex("no-cloud-secrets", &["AKIA[0-9A-Z]{16}"]).unwrap();
        let text = "key AKIAABCDEFGHIJKLMNOP!";
        assert_eq!(
            redact(text, &d.find(text)),
            "key [REDACTED:NO_CLOUD_SECRETS]!"
        );
        assert_eq!(redact("plain", &[]), "plain");
    }

    #[test]
    fn matches_of_several_detectors_merge() {
        let pii = Detector::pii(&[PiiKind::Email]).unwrap();
        let words = Detector::keywords("secret words", &["falcon"]).unwrap();
        let text = "falcon@example.com and falcon";
        let matches = find_all(&[&pii, &words], text);
        assert_eq!(
            redact(text, &matches),
            "[REDACTED:EMAIL] and [REDACTED:SECRET_WORDS]"
        );
        // Unsorted input is handled too.
        let reversed: Vec<Match> = matches.into_iter().rev().collect();
        assert_eq!(
            redact(text, &reversed),
            "[REDACTED:EMAIL] and [REDACTED:SECRET_WORDS]"
        );
    }

    #[test]
    fn detectors_from_config() {
        let d = Detector::from_config("x", &DetectConfig::Pii(vec![PiiKind::Ipv4])).unwrap();
        assert!(d.unwrap().is_match("host 10.1.2.3"));
        assert!(
            Detector::from_config("x", &DetectConfig::Cel("true".into()))
                .unwrap()
                .is_none()
        );
        assert!(Detector::from_config("x", &DetectConfig::Pii(vec![])).is_err());
    }
}
