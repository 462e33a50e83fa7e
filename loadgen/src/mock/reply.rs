//! The deterministic reply every format sends, prepared once at startup.
//!
//! The text is `mock reply 3 4 … N`: every word after the first two is its own position, so the
//! last number is the word count (= completion tokens) and a reply is recognisable in any log.
//! Replies for every possible length are pre-rendered, already JSON-escaped and already cut into
//! stream pieces, so answering a request only copies bytes.
//!
//! `--reply TEXT` replaces that text with a fixed one (say, one containing an email address, to
//! test output guardrails): it is cut into stream pieces by characters, not words, so a word can
//! span pieces, and it ignores token caps.

/// Replies are at least this long unless the request caps tokens lower.
const DEFAULT_WORDS: usize = 10;
/// A reply never shrinks below "mock reply", even under `max_tokens: 1`, so it stays recognisable.
const MIN_WORDS: usize = 2;

/// The tool call arguments the mock always produces.
pub const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;

pub struct Reply {
    /// Number of words, reported as completion tokens.
    pub words: u64,
    /// JSON string literal (with quotes) of the whole text.
    pub json: String,
    /// JSON string literals of the stream pieces; concatenated they give the text.
    pub pieces_json: Vec<String>,
}

pub struct Replies {
    /// Index = word count; entries below `MIN_WORDS` are unused.
    by_words: Vec<Reply>,
    /// Stream pieces of the tool call arguments, as JSON string literals.
    pub tool_pieces_json: Vec<String>,
    /// Tool call arguments as a JSON string literal (OpenAI sends arguments as a string).
    pub tool_arguments_json: String,
    /// `--reply TEXT`: sent whatever the request asks.
    fixed: Option<Reply>,
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Splits `items` into exactly `n` consecutive groups whose sizes differ by at most one.
/// Groups are empty when there are fewer items than groups.
fn split_even<T>(items: &[T], n: usize) -> impl Iterator<Item = &[T]> {
    let len = items.len();
    (0..n).map(move |i| &items[i * len / n..(i + 1) * len / n])
}

/// A fixed text cut into `chunks` pieces of (nearly) equal character counts.
fn render_fixed(text: &str, chunks: usize) -> Reply {
    let chars: Vec<char> = text.chars().collect();
    Reply {
        words: text.split_whitespace().count().max(1) as u64,
        json: json_str(text),
        pieces_json: split_even(&chars, chunks)
            .map(|group| json_str(&group.iter().collect::<String>()))
            .collect(),
    }
}

fn render(words: usize, chunks: usize) -> Reply {
    let tokens: Vec<String> = (1..=words)
        .map(|i| match i {
            1 => "mock".to_owned(),
            2 => "reply".to_owned(),
            n => n.to_string(),
        })
        .collect();
    let text = tokens.join(" ");
    let mut seen = 0usize;
    let pieces_json = split_even(&tokens, chunks)
        .map(|group| {
            let mut piece = String::new();
            for word in group {
                if seen > 0 {
                    piece.push(' ');
                }
                piece.push_str(word);
                seen += 1;
            }
            json_str(&piece)
        })
        .collect();
    Reply {
        words: words as u64,
        json: json_str(&text),
        pieces_json,
    }
}

impl Replies {
    /// `chunks` is the number of stream pieces (`--stream-chunks`); replies get at least that many
    /// words so no piece is empty by default.
    pub fn new(chunks: usize) -> Self {
        let chunks = chunks.max(1);
        let max_words = DEFAULT_WORDS.max(chunks);
        let by_words = (0..=max_words).map(|w| render(w, chunks)).collect();
        let chars: Vec<char> = TOOL_ARGUMENTS.chars().collect();
        let tool_pieces_json = split_even(&chars, chunks)
            .map(|group| json_str(&group.iter().collect::<String>()))
            .collect();
        Replies {
            by_words,
            tool_pieces_json,
            tool_arguments_json: json_str(TOOL_ARGUMENTS),
            fixed: None,
        }
    }

    /// Answers `text` to every request instead of `mock reply 3 4 …`, cut into as many stream
    /// pieces as the numbered reply would be.
    pub fn with_fixed(mut self, text: &str) -> Self {
        let chunks = self.by_words[MIN_WORDS].pieces_json.len();
        self.fixed = Some(render_fixed(text, chunks));
        self
    }

    /// The reply for a request, honouring its output token cap when it has one.
    pub fn for_cap(&self, max_tokens: Option<u64>) -> &Reply {
        if let Some(fixed) = &self.fixed {
            return fixed;
        }
        let max_words = self.by_words.len() - 1;
        let words = match max_tokens {
            Some(cap) => (cap.min(max_words as u64) as usize).max(MIN_WORDS),
            None => max_words,
        };
        &self.by_words[words]
    }

    /// Completion tokens charged for a tool call (4 characters per token, like prompts).
    pub fn tool_tokens(&self) -> u64 {
        (TOOL_ARGUMENTS.len() / 4).max(1) as u64
    }
}

/// What the model "says": text, or a call of the request's first tool.
pub enum Content<'a> {
    Text(&'a Reply),
    Tool { name: &'a str },
}

/// Everything a format module needs to render one answer.
pub struct Answer<'a> {
    /// Unique per response, used in ids (`chatcmpl-mock-7`, `msg_mock_7`, ...).
    pub id: u64,
    /// Unix seconds.
    pub created: u64,
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub content: Content<'a>,
    pub replies: &'a Replies,
}

impl Answer<'_> {
    pub fn completion_tokens(&self) -> u64 {
        match self.content {
            Content::Text(reply) => reply.words,
            Content::Tool { .. } => self.replies.tool_tokens(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unquote(pieces: &[String]) -> String {
        pieces
            .iter()
            .map(|p| serde_json::from_str::<String>(p).unwrap())
            .collect()
    }

    #[test]
    fn default_reply_counts_its_words() {
        let r = Replies::new(5);
        let reply = r.for_cap(None);
        assert_eq!(reply.json, "\"mock reply 3 4 5 6 7 8 9 10\"");
        assert_eq!(reply.words, 10);
        assert_eq!(reply.pieces_json.len(), 5);
    }

    #[test]
    fn pieces_concatenate_to_the_whole_text() {
        for chunks in [1, 3, 5, 10, 17] {
            let r = Replies::new(chunks);
            for cap in [None, Some(1), Some(3), Some(1000)] {
                let reply = r.for_cap(cap);
                let whole: String = serde_json::from_str(&reply.json).unwrap();
                assert_eq!(unquote(&reply.pieces_json), whole);
                assert_eq!(reply.pieces_json.len(), chunks);
                assert_eq!(whole.split(' ').count() as u64, reply.words);
            }
            assert_eq!(unquote(&r.tool_pieces_json), TOOL_ARGUMENTS);
        }
    }

    #[test]
    fn caps_clamp_between_two_and_default() {
        let r = Replies::new(5);
        assert_eq!(r.for_cap(Some(0)).words, 2);
        assert_eq!(r.for_cap(Some(4)).words, 4);
        assert_eq!(r.for_cap(Some(99)).words, 10);
        assert_eq!(Replies::new(20).for_cap(None).words, 20);
    }

    #[test]
    fn fixed_reply_is_cut_by_characters_and_ignores_caps() {
        let text = "write to jane.doe@example.com é";
        let r = Replies::new(2).with_fixed(text);
        let reply = r.for_cap(Some(1));
        assert_eq!(serde_json::from_str::<String>(&reply.json).unwrap(), text);
        assert_eq!(reply.words, 4);
        assert_eq!(
            unquote(&reply.pieces_json[..1]),
            "write to jane.d",
            "the address spans both pieces"
        );
        assert_eq!(unquote(&reply.pieces_json), text);
        assert_eq!(
            Replies::new(5)
                .with_fixed("")
                .for_cap(None)
                .pieces_json
                .len(),
            5
        );
    }
}
