//! Server-sent events framing: byte chunks split anywhere in, whole events out.
//!
//! Follows the WHATWG event-stream rules that matter for LLM APIs: lines end in `\n`, `\r\n` or
//! a lone `\r` (a terminator may itself be split across chunks); a blank line ends an event;
//! `data:` lines of one event are joined with `\n`; `event:` names it; `:` lines are comments;
//! `id:`/`retry:` and unknown fields are ignored. One event may hold at most `max_event_bytes`,
//! so a peer that never sends a blank line cannot make the gateway buffer without bound.

use super::StreamError;

/// Events over this size are refused; real chunks are a few hundred bytes, and even a whole
/// tool-call argument object sent in one event stays far below it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// One whole server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser. Feed chunks with [`SseDecoder::feed`], then call
/// [`SseDecoder::finish`] once the body has ended.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes of the line being read (its terminator not seen yet).
    line: Vec<u8>,
    /// The event being assembled.
    event: Option<String>,
    data: String,
    has_data: bool,
    /// Bytes taken by the event being assembled, including the partial line.
    event_bytes: usize,
    max_event_bytes: usize,
    /// The previous chunk ended in `\r`: a `\n` that opens the next chunk belongs to it.
    skip_lf: bool,
    /// Nothing read yet, so a UTF-8 byte order mark is still to be skipped.
    at_start: bool,
    /// Set after an error: the framing is lost, so everything after is refused.
    failed: Option<StreamError>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            event_bytes: 0,
            max_event_bytes,
            skip_lf: false,
            at_start: true,
            failed: None,
        }
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.at_start && !chunk.is_empty() {
            // The BOM may straddle chunks only in theory; upstreams do not send one at all.
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
            self.at_start = false;
        }
        if self.skip_lf && !chunk.is_empty() {
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
            self.skip_lf = false;
        }
        while !chunk.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                self.take_bytes(chunk)?;
                break;
            };
            self.take_bytes(&chunk[..end])?;
            let terminator = chunk[end];
            chunk = &chunk[end + 1..];
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            self.end_line(out)?;
        }
        Ok(())
    }

    /// The body ended: a last line or event left without its blank line is still delivered,
    /// since some upstreams close the connection right after their final `data:` line.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.line.is_empty() {
            self.end_line(out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn take_bytes(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.event_bytes = self.event_bytes.saturating_add(bytes.len());
        if self.event_bytes > self.max_event_bytes {
            return Err(self.fail(StreamError::EventTooLarge {
                limit: self.max_event_bytes,
            }));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn fail(&mut self, err: StreamError) -> StreamError {
        self.failed = Some(err.clone());
        self.line = Vec::new();
        self.data = String::new();
        err
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        if self.line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = match std::str::from_utf8(&self.line) {
            Ok(line) => line,
            Err(_) => return Err(self.fail(StreamError::InvalidUtf8)),
        };
        if !line.starts_with(':') {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.event = Some(value.to_owned()),
                _ => {}
            }
        }
        self.line.clear();
        Ok(())
    }

    /// Ends the event being assembled; an event without any `data:` line is not delivered.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
        self.event_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, StreamError> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn every_line_terminator_and_split_gives_the_same_events() {
        let lf = b"event: a\ndata: 1\n\n: comment\ndata: x\ndata:y\n\n".to_vec();
        let expected = vec![event(Some("a"), "1"), event(None, "x\ny")];
        for input in [
            lf.clone(),
            String::from_utf8_lossy(&lf)
                .replace('\n', "\r\n")
                .into_bytes(),
            String::from_utf8_lossy(&lf)
                .replace('\n', "\r")
                .into_bytes(),
        ] {
            for split in 0..=input.len() {
                let (a, b) = input.split_at(split);
                assert_eq!(
                    parse_chunks(&[a, b]),
                    Ok(expected.clone()),
                    "split at {split}"
                );
            }
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_delivered_at_finish() {
        assert_eq!(
            parse_chunks(&[b"data: [DONE]"]),
            Ok(vec![event(None, "[DONE]")])
        );
    }

    #[test]
    fn an_event_without_data_is_not_delivered() {
        assert_eq!(parse_chunks(&[b"event: ping\n\n: hi\n\n"]), Ok(vec![]));
    }

    #[test]
    fn an_oversized_event_is_refused_and_stays_refused() {
        let mut decoder = SseDecoder::new(16);
        let mut out = Vec::new();
        assert_eq!(decoder.feed(b"data: 0123456789", &mut out), Ok(()));
        let err = Err(StreamError::EventTooLarge { limit: 16 });
        assert_eq!(decoder.feed(b"abcdef", &mut out), err);
        assert_eq!(decoder.feed(b"\n\n", &mut out), err);
        assert!(out.is_empty());
    }

    #[test]
    fn the_limit_is_per_event_not_per_stream() {
        let mut decoder = SseDecoder::new(16);
        let mut out = Vec::new();
        for _ in 0..100 {
            assert_eq!(decoder.feed(b"data: 0123456\n\n", &mut out), Ok(()));
        }
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn invalid_utf8_is_an_error_but_utf8_split_across_chunks_is_not() {
        let snowman = "data: \u{2603}\n\n".as_bytes();
        assert_eq!(
            parse_chunks(&[&snowman[..7], &snowman[7..]]),
            Ok(vec![event(None, "\u{2603}")])
        );
        assert_eq!(
            parse_chunks(&[b"data: \xff\n\n"]),
            Err(StreamError::InvalidUtf8)
        );
    }
}
