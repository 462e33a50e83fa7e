//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), which Bedrock's
//! ConverseStream uses instead of SSE: byte chunks split anywhere in, whole messages out.
//!
//! A message is a 12-byte prelude (total length u32 BE, headers length u32 BE, CRC32 of those
//! 8 bytes), the headers, the payload, and a CRC32 of everything before it. A header is a name
//! (u8 length, bytes), a type byte and a value whose size follows from the type. Both CRCs are
//! checked and the total length is bounded before anything is buffered, so a corrupted or
//! hostile stream fails with an error instead of a panic or an unbounded buffer. After an error
//! the framing is lost: everything that follows is refused.

use super::StreamError;

/// Messages over this size are refused. ConverseStream events are a few hundred bytes; AWS
/// itself caps event-stream messages at 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Prelude (12 bytes) + message CRC (4 bytes): the size of a message with no headers and no
/// payload.
const MIN_MESSAGE_BYTES: usize = 16;
const PRELUDE_BYTES: usize = 12;

/// A header value, by its wire type number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// One whole event-stream message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of a string header (`:event-type`, `:message-type`, ...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Incremental event-stream parser. Feed chunks with [`EventStreamDecoder::feed`], then call
/// [`EventStreamDecoder::finish`] once the body has ended.
#[derive(Debug)]
pub struct EventStreamDecoder {
    /// Bytes of the message being read.
    buf: Vec<u8>,
    max_message_bytes: usize,
    failed: Option<StreamError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl EventStreamDecoder {
    pub fn new(max_message_bytes: usize) -> Self {
        EventStreamDecoder {
            buf: Vec::new(),
            // A bound below the smallest message would refuse everything; keep it usable.
            max_message_bytes: max_message_bytes.max(MIN_MESSAGE_BYTES),
            failed: None,
        }
    }

    /// Parses `chunk`, appending every message it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Message>) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.buf.extend_from_slice(chunk);
        let mut consumed = 0;
        let result = loop {
            match parse_one(&self.buf[consumed..], self.max_message_bytes) {
                Ok(Some((message, used))) => {
                    out.push(message);
                    consumed += used;
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        self.buf.drain(..consumed);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.buf = Vec::new();
        }
        result
    }

    /// The body ended: bytes of an unfinished message are an error.
    pub fn finish(&mut self, _out: &mut Vec<Message>) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let err = invalid(format!(
            "stream ended inside a message ({} bytes left over)",
            self.buf.len()
        ));
        self.failed = Some(err.clone());
        self.buf = Vec::new();
        Err(err)
    }
}

fn invalid(message: impl Into<String>) -> StreamError {
    StreamError::InvalidFrame(message.into())
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// One message from the start of `buf`, with the bytes it took; `None` when more bytes are
/// needed. The prelude is validated as soon as it is complete, so a bad length is refused
/// before the decoder waits for (and buffers) the bytes it announces.
fn parse_one(buf: &[u8], max: usize) -> Result<Option<(Message, usize)>, StreamError> {
    if buf.len() < PRELUDE_BYTES {
        return Ok(None);
    }
    let total = u32_at(buf, 0) as usize;
    let headers_len = u32_at(buf, 4) as usize;
    let prelude_crc = u32_at(buf, 8);
    if crc32fast::hash(&buf[..8]) != prelude_crc {
        return Err(invalid("prelude CRC mismatch"));
    }
    if total > max {
        return Err(StreamError::FrameTooLarge { limit: max });
    }
    if total < MIN_MESSAGE_BYTES || headers_len > total - MIN_MESSAGE_BYTES {
        return Err(invalid(format!(
            "impossible lengths (total {total}, headers {headers_len})"
        )));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let message_crc = u32_at(buf, total - 4);
    if crc32fast::hash(&buf[..total - 4]) != message_crc {
        return Err(invalid("message CRC mismatch"));
    }
    let headers_end = PRELUDE_BYTES + headers_len;
    let headers = parse_headers(&buf[PRELUDE_BYTES..headers_end])?;
    let payload = buf[headers_end..total - 4].to_vec();
    Ok(Some((Message { headers, payload }, total)))
}

/// Reads `n` bytes from the front of `bytes`, or fails: a header may not run past its block.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], StreamError> {
    if bytes.len() < n {
        return Err(invalid("header runs past the header block"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn parse_headers(mut bytes: &[u8]) -> Result<Vec<(String, HeaderValue)>, StreamError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name_len = take(&mut bytes, 1)?[0] as usize;
        let name = std::str::from_utf8(take(&mut bytes, name_len)?)
            .map_err(|_| invalid("header name is not UTF-8"))?
            .to_owned();
        let kind = take(&mut bytes, 1)?[0];
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes([take(&mut bytes, 1)?[0]])),
            3 => {
                let b = take(&mut bytes, 2)?;
                HeaderValue::Short(i16::from_be_bytes([b[0], b[1]]))
            }
            4 => {
                let b = take(&mut bytes, 4)?;
                HeaderValue::Int(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            5 | 8 => {
                let b = take(&mut bytes, 8)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                let n = i64::from_be_bytes(raw);
                if kind == 5 {
                    HeaderValue::Long(n)
                } else {
                    HeaderValue::Timestamp(n)
                }
            }
            6 | 7 => {
                let b = take(&mut bytes, 2)?;
                let len = u16::from_be_bytes([b[0], b[1]]) as usize;
                let data = take(&mut bytes, len)?;
                if kind == 6 {
                    HeaderValue::Bytes(data.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(data)
                            .map_err(|_| invalid(format!("header `{name}` is not UTF-8")))?
                            .to_owned(),
                    )
                }
            }
            9 => {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(take(&mut bytes, 16)?);
                HeaderValue::Uuid(raw)
            }
            other => return Err(invalid(format!("header `{name}` has unknown type {other}"))),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Test-only encoder: builds well-formed messages so tests can feed real frames.
#[cfg(test)]
pub(crate) fn encode_message(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        header_bytes.push(name.len() as u8);
        header_bytes.extend_from_slice(name.as_bytes());
        match value {
            HeaderValue::Bool(true) => header_bytes.push(0),
            HeaderValue::Bool(false) => header_bytes.push(1),
            HeaderValue::Byte(n) => {
                header_bytes.push(2);
                header_bytes.extend_from_slice(&n.to_be_bytes());
            }
            HeaderValue::Short(n) => {
                header_bytes.push(3);
                header_bytes.extend_from_slice(&n.to_be_bytes());
            }
            HeaderValue::Int(n) => {
                header_bytes.push(4);
                header_bytes.extend_from_slice(&n.to_be_bytes());
            }
            HeaderValue::Long(n) => {
                header_bytes.push(5);
                header_bytes.extend_from_slice(&n.to_be_bytes());
            }
            HeaderValue::Bytes(data) => {
                header_bytes.push(6);
                header_bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
                header_bytes.extend_from_slice(data);
            }
            HeaderValue::String(text) => {
                header_bytes.push(7);
                header_bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
                header_bytes.extend_from_slice(text.as_bytes());
            }
            HeaderValue::Timestamp(n) => {
                header_bytes.push(8);
                header_bytes.extend_from_slice(&n.to_be_bytes());
            }
            HeaderValue::Uuid(raw) => {
                header_bytes.push(9);
                header_bytes.extend_from_slice(raw);
            }
        }
    }
    let total = MIN_MESSAGE_BYTES + header_bytes.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode_message(
            &[
                (":message-type", HeaderValue::String("event".into())),
                (":event-type", HeaderValue::String(kind.into())),
                (
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn every_header_type_round_trips() {
        let headers = [
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-3)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(70_000)),
            ("l", HeaderValue::Long(-5_000_000_000)),
            ("y", HeaderValue::Bytes(vec![0, 255, 7])),
            ("str", HeaderValue::String("héllo".into())),
            ("ts", HeaderValue::Timestamp(1_700_000_000_000)),
            ("u", HeaderValue::Uuid([9; 16])),
        ];
        let bytes = encode_message(&headers, b"{}");
        let mut out = Vec::new();
        EventStreamDecoder::default()
            .feed(&bytes, &mut out)
            .expect("valid message");
        assert_eq!(out.len(), 1);
        let want: Vec<(String, HeaderValue)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        assert_eq!(out[0].headers, want);
        assert_eq!(out[0].payload, b"{}");
        assert_eq!(out[0].header_str("str"), Some("héllo"));
        assert_eq!(out[0].header_str("i"), None);
    }

    #[test]
    fn messages_split_at_every_byte_offset_decode_the_same() {
        let mut input = event("messageStart", r#"{"role":"assistant"}"#);
        input.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        let mut whole = Vec::new();
        EventStreamDecoder::default()
            .feed(&input, &mut whole)
            .expect("valid");
        assert_eq!(whole.len(), 2);
        for split in 0..=input.len() {
            let mut decoder = EventStreamDecoder::default();
            let mut out = Vec::new();
            decoder.feed(&input[..split], &mut out).expect("valid head");
            decoder.feed(&input[split..], &mut out).expect("valid tail");
            decoder.finish(&mut out).expect("nothing left over");
            assert_eq!(out, whole, "split at {split}");
        }
        let mut decoder = EventStreamDecoder::default();
        let mut out = Vec::new();
        for byte in input.chunks(1) {
            decoder.feed(byte, &mut out).expect("valid byte");
        }
        assert_eq!(out, whole);
    }

    #[test]
    fn corrupted_crcs_lengths_and_truncation_are_errors() {
        let good = event("messageStart", r#"{"role":"assistant"}"#);
        // Every single flipped bit is caught by one of the two CRCs (or the length checks).
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let mut decoder = EventStreamDecoder::default();
                let mut out = Vec::new();
                let fed = decoder.feed(&bad, &mut out);
                let finished = decoder.finish(&mut out);
                assert!(
                    fed.is_err() || finished.is_err(),
                    "flip at {at}/{bit} accepted"
                );
                assert!(out.is_empty());
            }
        }
        let mut decoder = EventStreamDecoder::default();
        let mut out = Vec::new();
        decoder
            .feed(&good[..good.len() - 1], &mut out)
            .expect("partial");
        assert!(matches!(
            decoder.finish(&mut out),
            Err(StreamError::InvalidFrame(_))
        ));
    }

    #[test]
    fn oversized_messages_are_refused_from_the_prelude() {
        let big = event("contentBlockDelta", &"x".repeat(200));
        let mut decoder = EventStreamDecoder::new(100);
        let mut out = Vec::new();
        assert_eq!(
            decoder.feed(&big[..12], &mut out),
            Err(StreamError::FrameTooLarge { limit: 100 })
        );
        // The framing is lost: what follows is refused too.
        assert!(decoder.feed(&event("messageStop", "{}"), &mut out).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0xE5E5);
        let good = event("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        for round in 0..5000 {
            let mut input: Vec<u8> = if round % 2 == 0 {
                (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect()
            } else {
                good.clone()
            };
            for _ in 0..rng.usize(0..4) {
                if input.is_empty() {
                    break;
                }
                let at = rng.usize(..input.len());
                input[at] = rng.u8(..);
            }
            let mut decoder = EventStreamDecoder::new(1024);
            let mut out = Vec::new();
            let _ = decoder.feed(&input, &mut out);
            let _ = decoder.finish(&mut out);
        }
    }
}
