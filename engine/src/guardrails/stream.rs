//! Redaction of streamed text. Deltas arrive a few characters at a time and a match may span
//! several of them, so each push emits only the text that no future delta can change and holds
//! back the rest: for PII, the trailing run of characters a match could be made of (nothing
//! after a space or punctuation mark that cannot be part of one); for regexes and keywords, the
//! longest possible match (capped at `MAX_STREAM_HOLD` for unbounded patterns). The output is
//! then the same as redacting the whole text at once.

use super::{find_all, redact, Detector, Match};
use std::sync::Arc;

/// Bytes of already emitted text kept before the held tail, so a rescan sees the character
/// before a candidate (word boundaries) exactly as a whole-text scan would.
const CONTEXT: usize = 16;

pub struct StreamRedactor {
    detectors: Vec<Arc<Detector>>,
    buf: String,
    /// `buf[..emitted]` was already emitted and is kept only as context.
    emitted: usize,
}

impl StreamRedactor {
    pub fn new(detectors: Vec<Arc<Detector>>) -> StreamRedactor {
        StreamRedactor {
            detectors,
            buf: String::new(),
            emitted: 0,
        }
    }

    /// Takes the next delta; returns the redacted text that is now final (possibly empty).
    pub fn push(&mut self, delta: &str) -> String {
        self.buf.push_str(delta);
        let hold_from = self
            .detectors
            .iter()
            .map(|d| d.hold_from(&self.buf))
            .min()
            .unwrap_or(self.buf.len());
        let mut cut = floor_boundary(&self.buf, hold_from.max(self.emitted));
        let matches = self.matches();
        // A final match that straddles the cut (another detector holds from inside it) waits
        // whole for the next push rather than being emitted half.
        if let Some(m) = matches.iter().find(|m| m.start < cut && m.end > cut) {
            cut = m.start.max(self.emitted);
        }
        let out = self.emit(&matches, cut);
        let keep_from = floor_boundary(&self.buf, cut.saturating_sub(CONTEXT));
        self.buf.drain(..keep_from);
        self.emitted = cut - keep_from;
        out
    }

    /// The end of the stream: everything held back, redacted.
    pub fn finish(&mut self) -> String {
        let matches = self.matches();
        let out = self.emit(&matches, self.buf.len());
        self.buf.clear();
        self.emitted = 0;
        out
    }

    /// Bytes received but not yet emitted.
    pub fn held(&self) -> usize {
        self.buf.len() - self.emitted
    }

    /// Matches in the buffer that touch unemitted text. One reaching back into the context
    /// (possible only for unusual patterns) is clipped to start at the unemitted text: better
    /// to over-redact than to leak.
    fn matches(&self) -> Vec<Match> {
        let detectors: Vec<&Detector> = self.detectors.iter().map(|d| &**d).collect();
        let mut matches = find_all(&detectors, &self.buf);
        matches.retain_mut(|m| {
            m.start = m.start.max(self.emitted);
            m.end > m.start
        });
        matches
    }

    /// `buf[emitted..cut]`, redacted with the matches inside it.
    fn emit(&self, matches: &[Match], cut: usize) -> String {
        let inside: Vec<Match> = matches
            .iter()
            .filter(|m| m.end <= cut)
            .map(|m| Match {
                start: m.start - self.emitted,
                end: m.end - self.emitted,
                kind: m.kind.clone(),
            })
            .collect();
        redact(&self.buf[self.emitted..cut], &inside)
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::super::PiiKind;
    use super::*;

    fn detectors() -> Vec<Arc<Detector>> {
        vec![
            Arc::new(Detector::pii(&PiiKind::ALL).unwrap()),
            Arc::new(Detector::regex("secrets", &["AKIA[0-9A-Z]{16}"]).unwrap()),
            Arc::new(Detector::keywords("words", &["falcon"]).unwrap()),
        ]
    }

    fn whole(text: &str) -> String {
        let d = detectors();
        let refs: Vec<&Detector> = d.iter().map(|d| &**d).collect();
        redact(text, &find_all(&refs, text))
    }

    fn streamed(chunks: &[&str]) -> String {
        let mut r = StreamRedactor::new(detectors());
        let mut out: String = chunks.iter().map(|c| r.push(c)).collect();
        out.push_str(&r.finish());
        out
    }

    #[test]
    fn email_split_across_two_and_three_chunks() {
        assert_eq!(
            streamed(&["write to jane.do", "e@example.com please"]),
            "write to [REDACTED:EMAIL] please"
        );
        assert_eq!(
            streamed(&["write to ja", "ne.doe@exam", "ple.com please"]),
            "write to [REDACTED:EMAIL] please"
        );
        // The domain grows in the next chunk: the match is not cut short at ".co".
        assert_eq!(streamed(&["x a@b.co", "m"]), "x [REDACTED:EMAIL]");
    }

    #[test]
    fn card_number_split() {
        assert_eq!(
            streamed(&["card 4111 11", "11 1111 1111 thanks"]),
            "card [REDACTED:CREDIT_CARD] thanks"
        );
        assert_eq!(
            streamed(&["card 4111 1111 1111 111", "1"]),
            "card [REDACTED:CREDIT_CARD]"
        );
    }

    #[test]
    fn no_match_passes_through_and_emits_all_but_the_held_tail() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let mut r = StreamRedactor::new(detectors());
        let (mut fed, mut out) = (0, String::new());
        for chunk in text.as_bytes().chunks(7) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            fed += chunk.len();
            out.push_str(&r.push(chunk));
            // Emitted + held is exactly what came in, and emitted is a prefix of the input.
            assert_eq!(out.len() + r.held(), fed);
            assert!(text.starts_with(&out));
            // Bounded by the longest possible match, not the length of the stream.
            assert!(r.held() <= 260, "held {}", r.held());
        }
        out.push_str(&r.finish());
        assert_eq!(out, text);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn pii_only_stream_holds_little_after_a_word_break() {
        let mut r = StreamRedactor::new(vec![Arc::new(Detector::pii(&PiiKind::ALL).unwrap())]);
        assert_eq!(r.push("hello there, "), "hello there,");
        assert_eq!(r.held(), 1);
        assert_eq!(r.push("world!"), " world!");
    }

    #[test]
    fn every_chunking_matches_whole_text_redaction() {
        let text = "Hi, I'm jane.doe@example.com (+44 20 7946 0958); card 4111-1111-1111-1111, \
                    IBAN GB82 WEST 1234 5698 7654 32, from 10.0.0.1 with AKIAABCDEFGHIJKLMNOP. \
                    ssn 123-45-6789 — falcon ✓ é";
        let want = whole(text);
        assert!(want.matches("[REDACTED:").count() >= 8, "{want}");
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        for &i in &bounds {
            assert_eq!(streamed(&[&text[..i], &text[i..]]), want, "split at {i}");
        }
        for &i in bounds.iter().step_by(7) {
            for &j in bounds.iter().filter(|j| **j >= i).step_by(5) {
                let chunks = [&text[..i], &text[i..j], &text[j..]];
                assert_eq!(streamed(&chunks), want, "split at {i}, {j}");
            }
        }
        // Many small random chunks.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < text.len() {
                let mut next = (at + rng.usize(1..12)).min(text.len());
                while !text.is_char_boundary(next) {
                    next += 1;
                }
                chunks.push(&text[at..next]);
                at = next;
            }
            assert_eq!(streamed(&chunks), want);
        }
    }
}
